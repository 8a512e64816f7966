/* The init process spec: the request merged with the image config the way
 * Docker does it (entrypoint/cmd, env, workdir, user). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/runtime/runtime_internal.h"

ProtobufCMessage *rt_copy_msg(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return NULL;
  protobuf_c_message_pack(m, buf);
  ProtobufCMessage *copy = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
  free(buf);
  return copy;
}

static void free_strv(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* Replaces a repeated string field with a copy of a + b. */
static void set_strv(char ***field, size_t *n, char *const *a, size_t na, char *const *b, size_t nb) {
  char **v = calloc(na + nb ? na + nb : 1, sizeof *v);
  size_t k = 0;
  for (size_t i = 0; v && i < na; i++) v[k++] = strdup(a[i]);
  for (size_t i = 0; v && i < nb; i++) v[k++] = strdup(b[i]);
  free_strv(*field, *n);
  *field = v;
  *n = v ? k : 0;
}

/* Unset strings may point at protobuf-c's static "": only non-empty ones
 * are ours to free (an empty malloc'd one leaks a byte). */
void rt_set_str(char **field, const char *v) {
  if (*field && **field) free(*field);
  *field = strdup(v ? v : "");
}

/* env: base, then over (same key: over wins), then defaults if missing.
 * over may be p->env itself: the new array is complete before it is freed. */
static void merge_env(Vessel__V1__ProcessSpec *p, char *const *base, size_t nb, char *const *over,
                      size_t no, const char *hostname) {
  char **v = calloc(nb + no + 2, sizeof *v);
  size_t k = 0;
  char *const *src[2] = {base, over};
  size_t cnt[2] = {nb, no};
  for (int s = 0; s < 2; s++)
    for (size_t i = 0; i < cnt[s]; i++) {
      const char *e = src[s][i];
      size_t kl = strcspn(e, "=");
      size_t j = 0;
      for (; j < k; j++)
        if (!strncmp(v[j], e, kl) && v[j][kl] == '=') break;
      if (j < k) {
        free(v[j]);
        v[j] = strdup(e);
      } else {
        v[k++] = strdup(e);
      }
    }
  int have_path = 0, have_host = 0;
  for (size_t j = 0; j < k; j++) {
    have_path |= !strncmp(v[j], "PATH=", 5);
    have_host |= !strncmp(v[j], "HOSTNAME=", 9);
  }
  if (!have_path) v[k++] = strdup("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (!have_host && hostname) {
    char buf[128];
    snprintf(buf, sizeof buf, "HOSTNAME=%s", hostname);
    v[k++] = strdup(buf);
  }
  free_strv(p->env, p->n_env);
  p->env = v;
  p->n_env = k;
}

Vessel__V1__ProcessSpec *rt_merge_spec(const Vessel__V1__ProcessSpec *req,
                                       const Vessel__V1__EntrypointOverride *ep,
                                       const oci_config *img, const char *hostname, vs_err *err) {
  Vessel__V1__ProcessSpec *p;
  if (req) {
    p = (Vessel__V1__ProcessSpec *)rt_copy_msg(&req->base);
  } else {
    p = malloc(sizeof *p);
    if (p) vessel__v1__process_spec__init(p);
  }
  if (!p) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  /* argv = entrypoint + cmd */
  char *const *entry = ep ? ep->args : img->entrypoint;
  size_t nentry = ep ? ep->n_args : img->n_entrypoint;
  char **cmd_src = req && req->n_args ? req->args : (ep ? NULL : img->cmd);
  size_t ncmd = req && req->n_args ? req->n_args : (ep ? 0 : img->n_cmd);
  char **cmd = calloc(ncmd ? ncmd : 1, sizeof *cmd); /* p->args is replaced below */
  for (size_t i = 0; cmd && i < ncmd; i++) cmd[i] = strdup(cmd_src[i]);
  set_strv(&p->args, &p->n_args, entry, nentry, cmd, ncmd);
  free_strv(cmd, ncmd);
  if (!p->n_args) {
    protobuf_c_message_free_unpacked(&p->base, NULL);
    vs_err_set(err, VS_INVALID_ARGUMENT,
               "no command: the image has no ENTRYPOINT or CMD and the request gives no args");
    return NULL;
  }
  merge_env(p, img->env, img->n_env, p->env, p->n_env, hostname);
  if (!*p->cwd) rt_set_str(&p->cwd, img->working_dir && *img->working_dir ? img->working_dir : "/");
  if (!p->user && img->user && *img->user) {
    p->user = malloc(sizeof *p->user);
    vessel__v1__user__init(p->user);
    rt_set_str(&p->user->name, img->user);
  }
  return p;
}

Vessel__V1__ProcessSpec *rt_exec_spec(const Vessel__V1__ProcessSpec *req,
                                      const Vessel__V1__ProcessSpec *init, vs_err *err) {
  if (!req || !req->n_args) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "exec needs process.args");
    return NULL;
  }
  Vessel__V1__ProcessSpec *p = (Vessel__V1__ProcessSpec *)rt_copy_msg(&req->base);
  if (!p) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  merge_env(p, init->env, init->n_env, p->env, p->n_env, NULL);
  if (!*p->cwd) rt_set_str(&p->cwd, init->cwd);
  if (!p->user && init->user)
    p->user = (Vessel__V1__User *)rt_copy_msg(&init->user->base);
  if (!p->capabilities && init->capabilities)
    p->capabilities = (Vessel__V1__Capabilities *)rt_copy_msg(&init->capabilities->base);
  /* The container's, for every process in it (as runc's): no way back. */
  if (init->no_new_privileges) p->no_new_privileges = 1;
  return p;
}

/* A signal as an image config names it ("SIGQUIT", "QUIT", "3",
 * "SIGRTMIN+3"); 0 if it names none. */
int rt_signal_number(const char *name) {
  if (!name || !*name) return 0;
  char *end;
  long n = strtol(name, &end, 10);
  if (!*end) return n > 0 && n < NSIG ? (int)n : 0;
  if (!strncasecmp(name, "SIG", 3)) name += 3;
  if (!strncasecmp(name, "RTMIN+", 6) || !strncasecmp(name, "RTMAX-", 6)) {
    n = strtol(name + 6, &end, 10);
    if (*end || n < 0 || n > SIGRTMAX - SIGRTMIN) return 0;
    return name[5] == '+' ? SIGRTMIN + (int)n : SIGRTMAX - (int)n;
  }
  for (int s = 1; s < SIGRTMIN; s++) {
    const char *a = sigabbrev_np(s);
    if (a && !strcasecmp(a, name)) return s;
  }
  return 0;
}
