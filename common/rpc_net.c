/* vrpc endpoints named by address: servers listening and channels dialling
 * on unix sockets, TCP and TLS. A file of its own because it alone needs
 * gRPC's TLS: a program that serves and dials only connected fds (vminitd)
 * does not link it, and its static build leaves out OpenSSL (~4.7 MB, 40%
 * of the binary, all of it unpacked from the initramfs at every cold boot). */
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>

#include "common/rpc_internal.h"
#include "common/vs_fs.h"

/* PEM material named by tls, each file read whole into a NUL-terminated
 * buffer (NULL where tls names none). */
typedef struct pem {
  char *ca, *cert, *key;
} pem;

static void pem_free(pem *m) {
  free(m->ca);
  free(m->cert);
  free(m->key);
}

static char *read_pem(const char *path, vs_err *err) {
  char *buf = vs_read_file(path, 16 << 20, NULL, err);
  if (!buf) err->code = VS_INVALID_ARGUMENT; /* a bad --tls-* option */
  return buf;
}

static int pem_load(const vrpc_tls *tls, pem *m, vs_err *err) {
  *m = (pem){NULL, NULL, NULL};
  if ((tls->ca_file && !(m->ca = read_pem(tls->ca_file, err))) ||
      (tls->cert_file && !(m->cert = read_pem(tls->cert_file, err))) ||
      (tls->key_file && !(m->key = read_pem(tls->key_file, err)))) {
    pem_free(m);
    return -1;
  }
  return 0;
}

/* "tcp://h:p" -> "h:p"; other URIs unchanged. Returns NULL if unsupported. */
static const char *target_of(const char *uri, vs_err *err) {
  if (!uri || !*uri) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "empty address");
    return NULL;
  }
  if (strncmp(uri, "tcp://", 6) == 0) return uri + 6;
  if (strncmp(uri, "unix:", 5) == 0 || strncmp(uri, "unix-abstract:", 14) == 0 ||
      strncmp(uri, "ipv4:", 5) == 0 || strncmp(uri, "ipv6:", 5) == 0 ||
      strncmp(uri, "dns:", 4) == 0)
    return uri;
  if (strstr(uri, "://")) {
    vs_err_set(err, VS_INVALID_ARGUMENT,
               "address %s: scheme not supported (use unix:///path or tcp://host:port)",
               uri);
    return NULL;
  }
  return uri; /* host:port */
}

static grpc_server_credentials *server_creds(const vrpc_tls *tls, const char *uri,
                                             vs_err *err) {
  if (!tls) return grpc_insecure_server_credentials_create();
  if (!tls->cert_file || !tls->key_file) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "TLS on %s needs a certificate and a key", uri);
    return NULL;
  }
  pem m;
  if (pem_load(tls, &m, err) < 0) return NULL;
  grpc_ssl_pem_key_cert_pair pair = {m.key, m.cert};
  grpc_server_credentials *creds = grpc_ssl_server_credentials_create_ex(
      m.ca, &pair, 1,
      m.ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
           : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
      NULL);
  if (!creds) vs_err_set(err, VS_INVALID_ARGUMENT, "%s: bad TLS material", uri);
  pem_free(&m);
  return creds;
}

int vrpc_server_listen(vrpc_server *s, const char *uri, const vrpc_tls *tls,
                       int *bound_port, vs_err *err) {
  const char *target = target_of(uri, err);
  if (!target) return -1;
  if (strncmp(target, "unix:", 5) == 0) {
    const char *p = target + 5;
    if (strncmp(p, "//", 2) == 0) p += 2;
    if (strlen(p) > 107)
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "unix socket path %s is longer than 107 bytes", p);
    if (!tls) return vrpc_server_add_listener(s, uri, target, p, NULL, NULL, err);
  }
  grpc_server_credentials *creds = server_creds(tls, uri, err);
  if (!creds) return -1;
  return vrpc_server_add_listener(s, uri, target, NULL, creds, bound_port, err);
}

static grpc_channel_credentials *client_creds(const vrpc_tls *tls, vs_err *err) {
  if (!tls) return grpc_insecure_credentials_create();
  if (!tls->cert_file != !tls->key_file) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "a client certificate needs both cert and key");
    return NULL;
  }
  pem m;
  if (pem_load(tls, &m, err) < 0) return NULL;
  grpc_ssl_pem_key_cert_pair pair = {m.key, m.cert};
  grpc_channel_credentials *creds =
      grpc_ssl_credentials_create(m.ca, m.cert ? &pair : NULL, NULL, NULL);
  if (!creds) vs_err_set(err, VS_INVALID_ARGUMENT, "bad TLS material");
  pem_free(&m);
  return creds;
}

vrpc_channel *vrpc_dial(const char *uri, const vrpc_tls *tls,
                        const vrpc_channel_opts *opts, vs_err *err) {
  const char *target = target_of(uri, err);
  if (!target) return NULL;
  grpc_channel_credentials *creds = client_creds(tls, err);
  if (!creds) return NULL;
  grpc_arg argv[4];
  grpc_channel_args args;
  vrpc_size_args(&args, argv, opts ? opts->max_message_bytes : 0);
  if (tls && tls->server_name) {
    argv[3].type = GRPC_ARG_STRING;
    argv[3].key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    argv[3].value.string = (char *)tls->server_name;
    args.num_args = 4;
  }
  return vrpc_channel_create(target, creds, &args, err);
}
