/* Registry credentials: vessel's own store (written by Images.Login) and the
 * Docker client configuration, including credential helper programs. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/vs_fs.h"
#include "server/registry/registry.h"

/* Docker stores Docker Hub under its v1 URL; other hosts may carry a scheme. */
static int key_matches(const char *key, const char *host) {
  const char *k = key;
  if (!strncmp(k, "https://", 8)) k += 8;
  else if (!strncmp(k, "http://", 7)) k += 7;
  size_t n = strcspn(k, "/");
  int hub = !strcmp(host, "docker.io") || !strcmp(host, "registry-1.docker.io") ||
            !strcmp(host, "index.docker.io");
  if (hub && (!strncmp(k, "index.docker.io", n) || !strncmp(k, "docker.io", n) ||
              !strncmp(k, "registry-1.docker.io", n)))
    return n == 15 || n == 9 || n == 20;
  return strlen(host) == n && !strncmp(k, host, n);
}

static int decode_auth(const char *b64, char **user, char **pass) {
  size_t n = strlen(b64);
  if (n == 0 || n > 8192) return 0;
  unsigned char *out = malloc(n);
  int len = out ? EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n) : -1;
  if (len < 0) {
    free(out);
    return 0;
  }
  while (len > 0 && out[len - 1] == '\0') len--; /* base64 padding */
  out[len] = '\0';
  char *colon = strchr((char *)out, ':');
  if (!colon) {
    free(out);
    return 0;
  }
  *colon = '\0';
  *user = strdup((char *)out);
  *pass = strdup(colon + 1);
  free(out);
  return 1;
}

/* docker-credential-<helper> get: host on stdin, JSON on stdout. */
static int run_helper(const char *helper, const char *host, char **user, char **pass, vs_err *err) {
  char prog[256];
  snprintf(prog, sizeof prog, "docker-credential-%s", helper);
  for (const char *p = helper; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
      return vs_err_set(err, VS_INVALID_ARGUMENT, "invalid credential helper name \"%s\"", helper);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) < 0) return vs_err_errno(err, VS_INTERNAL, errno, "pipe");
  if (pipe2(out, O_CLOEXEC) < 0) {
    close(in[0]), close(in[1]);
    return vs_err_errno(err, VS_INTERNAL, errno, "pipe");
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    execlp(prog, prog, "get", (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  if (pid < 0) {
    close(in[1]), close(out[0]);
    return vs_err_errno(err, VS_INTERNAL, errno, "fork");
  }
  void (*old)(int) = signal(SIGPIPE, SIG_IGN);
  ssize_t wn = write(in[1], host, strlen(host));
  (void)wn;
  close(in[1]);
  signal(SIGPIPE, old);
  char buf[16384];
  size_t got = 0;
  for (ssize_t n; got < sizeof buf - 1 && (n = read(out[0], buf + got, sizeof buf - 1 - got)) > 0;)
    got += (size_t)n;
  close(out[0]);
  buf[got] = '\0';
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 0; /* no credentials there */
  json_t *j = json_loads(buf, 0, NULL);
  const char *u = json_string_value(json_object_get(j, "Username"));
  const char *s = json_string_value(json_object_get(j, "Secret"));
  int found = 0;
  if (u && s) {
    *user = strdup(u);
    *pass = strdup(s);
    found = 1;
  }
  json_decref(j);
  return found;
}

static int from_auths(json_t *root, const char *host, char **user, char **pass) {
  const char *key;
  json_t *v;
  json_object_foreach(json_object_get(root, "auths"), key, v) {
    if (!key_matches(key, host)) continue;
    const char *auth = json_string_value(json_object_get(v, "auth"));
    if (auth && decode_auth(auth, user, pass)) return 1;
    const char *u = json_string_value(json_object_get(v, "username"));
    const char *p = json_string_value(json_object_get(v, "password"));
    if (u && p) {
      *user = strdup(u);
      *pass = strdup(p);
      return 1;
    }
  }
  return 0;
}

int reg_creds_lookup(const char *host, const char *vessel_store, const char *docker_config,
                     char **user, char **pass, vs_err *err) {
  *user = *pass = NULL;
  if (vessel_store) {
    json_t *j = json_load_file(vessel_store, 0, NULL);
    int found = j && from_auths(j, host, user, pass);
    json_decref(j);
    if (found) return 1;
  }
  if (!docker_config) return 0;
  json_t *j = json_load_file(docker_config, 0, NULL);
  if (!j) return 0;
  int found = 0;
  const char *key;
  json_t *v;
  json_object_foreach(json_object_get(j, "credHelpers"), key, v) {
    if (key_matches(key, host) && json_is_string(v)) {
      found = run_helper(json_string_value(v), host, user, pass, err);
      goto out;
    }
  }
  found = from_auths(j, host, user, pass);
  if (!found && json_is_string(json_object_get(j, "credsStore")))
    found = run_helper(json_string_value(json_object_get(j, "credsStore")), host, user, pass, err);
out:
  json_decref(j);
  return found;
}

int reg_creds_store(const char *store, const char *host, const char *user, const char *pass,
                    vs_err *err) {
  json_t *j = json_load_file(store, 0, NULL);
  if (!json_is_object(j)) {
    json_decref(j);
    j = json_object();
  }
  json_t *auths = json_object_get(j, "auths");
  if (!json_is_object(auths)) {
    auths = json_object();
    json_object_set_new(j, "auths", auths);
  }
  if (pass) {
    size_t n = strlen(user) + strlen(pass) + 2;
    char *plain = malloc(n);
    unsigned char *b64 = malloc(4 * n / 3 + 8);
    snprintf(plain, n, "%s:%s", user, pass);
    EVP_EncodeBlock(b64, (unsigned char *)plain, (int)strlen(plain));
    json_object_set_new(auths, host, json_pack("{s:s}", "auth", (char *)b64));
    free(plain);
    free(b64);
  } else {
    json_object_del(auths, host);
  }
  char *text = json_dumps(j, JSON_INDENT(2));
  json_decref(j);
  int rc = text ? vs_write_atomic(store, text, strlen(text), 0600, err)
                : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  free(text);
  return rc;
}
