/* clientcfg: which vesseld a client talks to, and with which TLS files.
 *
 * The same rules hold in vesselctl, the Python client (vessel/config.py)
 * and the Go client (config.go); README.md "Client configuration" states
 * them. The first of these that is set picks the address:
 *   1. an explicit host or context (vesselctl --host / --context),
 *   2. VESSEL_HOST (TLS files from VESSEL_TLS_CA, _CERT, _KEY),
 *   3. VESSEL_CONTEXT, a context of the contexts file,
 *   4. the file's current context,
 *   5. unix:///run/vessel/vessel.sock.
 * Explicit TLS files (--tls-ca, --tls-cert, --tls-key) replace the three
 * that came with the address (a context's server_name, which has no flag,
 * stays). TLS applies to tcp:// only.
 *
 * The contexts file, $XDG_CONFIG_HOME/vessel/config (else
 * ~/.config/vessel/config), is JSON:
 *   {"current": "lab", "contexts": {"lab": {"host": "tcp://h:7443",
 *    "tls_ca": "ca.pem", "tls_cert": "c.pem", "tls_key": "c.key",
 *    "server_name": "optional"}}}
 * Relative TLS paths are relative to the file's directory. Keys it does
 * not know are kept when vesselctl rewrites it. The context "default" is
 * the default socket and cannot be defined. */
#ifndef VESSEL_CLIENTS_CLI_CLIENTCFG_H
#define VESSEL_CLIENTS_CLI_CLIENTCFG_H

#include <stddef.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VCFG_DEFAULT_HOST "unix:///run/vessel/vessel.sock"
#define VCFG_DEFAULT_CONTEXT "default"
#define VCFG_NAME_MAX 64

/* The contexts file, parsed. */
typedef struct vcfg_file vcfg_file;

/* One context; its strings belong to the file it came from (NULL: unset). */
typedef struct vcfg_context {
  const char *name;
  const char *host;
  const char *tls_ca;
  const char *tls_cert;
  const char *tls_key;
  const char *server_name;
} vcfg_context;

/* The file's path from the values of XDG_CONFIG_HOME and HOME (NULL or
 * empty: unset; an XDG_CONFIG_HOME that is not absolute is ignored, as the
 * XDG spec says). VS_FAILED_PRECONDITION when neither gives a directory. */
int vcfg_path(const char *xdg_config_home, const char *home, char *buf, size_t n, vs_err *err);

/* Reads and checks the file. A missing file is an empty one (saving it
 * creates it); a malformed one is VS_INVALID_ARGUMENT naming the path and
 * what is wrong. */
vcfg_file *vcfg_load(const char *path, vs_err *err);
void vcfg_free(vcfg_file *f);

const char *vcfg_file_path(const vcfg_file *f);
/* The current context's name, NULL when none is chosen. */
const char *vcfg_current(const vcfg_file *f);
/* The contexts, sorted by name: 0 <= i < vcfg_count(f). */
size_t vcfg_count(const vcfg_file *f);
void vcfg_at(const vcfg_file *f, size_t i, vcfg_context *out);
/* 0 and *out filled, or -1: VS_NOT_FOUND "unknown context ..." saying
 * which ones the file defines. */
int vcfg_find(const vcfg_file *f, const char *name, vcfg_context *out, vs_err *err);

/* Adds a context (VS_ALREADY_EXISTS if the name is taken). The name must
 * be [A-Za-z0-9][A-Za-z0-9_.-]*, at most VCFG_NAME_MAX, not "default"; the
 * host unix:///path or tcp://host:port; TLS files only with tcp://. */
int vcfg_add(vcfg_file *f, const vcfg_context *c, vs_err *err);
/* Removes one; the current context is unset if it was that one. */
int vcfg_remove(vcfg_file *f, const char *name, vs_err *err);
/* Makes name current ("default": none). */
int vcfg_use(vcfg_file *f, const char *name, vs_err *err);
/* Writes the file atomically, mode 0600 (its directory made 0700). */
int vcfg_save(const vcfg_file *f, vs_err *err);

/* What the caller was given: flags, then the environment (NULL or empty:
 * not given), and the contexts file's path (NULL: there is none, as when
 * vcfg_path found no directory). */
typedef struct vcfg_inputs {
  const char *host;
  const char *context;
  const char *tls_ca;
  const char *tls_cert;
  const char *tls_key;
  const char *env_host;
  const char *env_context;
  const char *env_tls_ca;
  const char *env_tls_cert;
  const char *env_tls_key;
  const char *path;
} vcfg_inputs;

/* Where to dial. TLS fields are "" when unset; use_tls is 1 for tcp://. */
typedef struct vcfg_endpoint {
  char host[1024];
  int use_tls;
  char tls_ca[4096];
  char tls_cert[4096];
  char tls_key[4096];
  char server_name[256];
  /* Where the address came from, for messages: "--host", "VESSEL_HOST",
   * "context \"lab\" (VESSEL_CONTEXT)", ..., "the default". */
  char source[512];
} vcfg_endpoint;

/* Applies the rules above. The file is read only when a context is needed.
 * Errors: an unknown context (VS_NOT_FOUND), a malformed file, a bad host,
 * tcp:// without a CA, --host with --context (VS_INVALID_ARGUMENT). */
int vcfg_resolve(const vcfg_inputs *in, vcfg_endpoint *out, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
