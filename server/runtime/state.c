/* Containers in memory and on disk: the reference-counted list, state.json
 * and spec.pb under <root>/containers/<id>, and loading them at start. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <jansson.h>

#include "common/vs_fs.h"
#include "common/vs_log.h"
#include "server/runtime/runtime_internal.h"

/* A spec is a ContainersCreateRequest: far below gRPC's message limit. */
#define SPEC_MAX (128u << 20)

const char *rt_state_name(rt_state s) {
  static const char *const n[] = {"", "creating", "created", "running", "stopping", "stopped"};
  return s >= RT_CREATING && s <= RT_STOPPED ? n[s] : "unknown";
}

int rt_valid_id(const char *id) { return vs_valid_name(id, 127); }

/* 64 lower-case hex digits, as the proto promises. */
void rt_random_id(char out[128]) {
  unsigned char b[32] = {0};
  for (size_t n = 0; n < sizeof b;) {
    ssize_t r = getrandom(b + n, sizeof b - n, 0);
    if (r > 0) n += (size_t)r;
    else if (errno != EINTR) break; /* no getrandom: a kernel older than vessel supports */
  }
  for (size_t i = 0; i < sizeof b; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* ---- the list ---- */

rt_container *rt_container_new(rt_runtime *rt) {
  rt_container *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->rt = rt;
  c->refs = 1;
  pthread_mutex_init(&c->mu, NULL);
  pthread_mutex_init(&c->op, NULL);
  pthread_rwlock_init(&c->vm_lock, NULL);
  pthread_mutex_init(&c->events_mu, NULL);
  pthread_cond_init(&c->events_cv, NULL);
  rt_proc_init(&c->init, "");
  c->slot = -1;
  return c;
}

/* Everything is joined by now (stop and close end the relays): only
 * memory and fds are left. */
static void container_free(rt_container *c) {
  rt_proc_free(&c->init);
  for (rt_proc *p = c->execs; p;) {
    rt_proc *n = p->next;
    rt_proc_free(p);
    free(p);
    p = n;
  }
  lg_close(c->logs);
  free(c->ports);
  free(c->copies);
  if (c->spec) protobuf_c_message_free_unpacked(&c->spec->base, NULL);
  if (c->pod_spec) protobuf_c_message_free_unpacked(&c->pod_spec->base, NULL);
  rt_put(c->pod); /* its container's reference */
  pthread_mutex_destroy(&c->mu);
  pthread_mutex_destroy(&c->op);
  pthread_rwlock_destroy(&c->vm_lock);
  pthread_mutex_destroy(&c->events_mu);
  pthread_cond_destroy(&c->events_cv);
  free(c);
}

void rt_ref(rt_container *c) {
  pthread_mutex_lock(&c->rt->mu);
  c->refs++;
  pthread_mutex_unlock(&c->rt->mu);
}

void rt_put(rt_container *c) {
  if (!c) return;
  pthread_mutex_lock(&c->rt->mu);
  int last = --c->refs == 0;
  pthread_mutex_unlock(&c->rt->mu);
  if (last) container_free(c);
}

/* A container (pod = 0) or a pod (1) by ID or unambiguous prefix. */
static rt_container *get(rt_runtime *rt, const char *id, int pod, vs_err *err) {
  const char *what = pod ? "pod" : "container";
  size_t len = strlen(id);
  pthread_mutex_lock(&rt->mu);
  rt_container *found = NULL;
  for (size_t i = 0; i < rt->n && !found; i++)
    if (rt->list[i]->is_pod == pod && !strcmp(rt->list[i]->id, id)) found = rt->list[i];
  /* An unambiguous ID prefix names one too (like docker). */
  for (size_t i = 0; i < rt->n && !found && len >= 4; i++)
    if (rt->list[i]->is_pod == pod && !strncmp(rt->list[i]->id, id, len)) {
      for (size_t k = i + 1; k < rt->n; k++)
        if (rt->list[k]->is_pod == pod && !strncmp(rt->list[k]->id, id, len)) {
          pthread_mutex_unlock(&rt->mu);
          vs_err_set(err, VS_FAILED_PRECONDITION, "%s ID prefix %s is ambiguous", what, id);
          return NULL;
        }
      found = rt->list[i];
    }
  if (found) found->refs++;
  pthread_mutex_unlock(&rt->mu);
  if (!found) vs_err_set(err, VS_NOT_FOUND, "no %s %s", what, id);
  return found;
}

rt_container *rt_get(rt_runtime *rt, const char *id, vs_err *err) { return get(rt, id, 0, err); }
rt_container *rt_get_pod(rt_runtime *rt, const char *id, vs_err *err) { return get(rt, id, 1, err); }

int rt_list_add(rt_runtime *rt, rt_container *c, vs_err *err) {
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n; i++)
    if (!strcmp(rt->list[i]->id, c->id)) {
      pthread_mutex_unlock(&rt->mu);
      return vs_err_set(err, VS_ALREADY_EXISTS, "a %s named %s exists",
                        rt->list[i]->is_pod ? "pod" : "container", c->id);
    }
  rt_container **l = realloc(rt->list, (rt->n + 1) * sizeof *l);
  if (l) {
    rt->list = l;
    rt->list[rt->n++] = c;
  }
  pthread_mutex_unlock(&rt->mu);
  return l ? 0 : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
}

void rt_list_remove(rt_runtime *rt, rt_container *c) {
  int found = 0;
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n && !found; i++)
    if (rt->list[i] == c) {
      memmove(&rt->list[i], &rt->list[i + 1], (rt->n - i - 1) * sizeof *rt->list);
      rt->n--;
      found = 1;
    }
  pthread_mutex_unlock(&rt->mu);
  if (found) rt_put(c);
}

rt_container **rt_get_all(rt_runtime *rt, size_t *n) {
  pthread_mutex_lock(&rt->mu);
  rt_container **all = malloc((rt->n ? rt->n : 1) * sizeof *all);
  *n = 0;
  for (size_t i = 0; all && i < rt->n; i++) {
    rt->list[i]->refs++;
    all[(*n)++] = rt->list[i];
  }
  pthread_mutex_unlock(&rt->mu);
  return all;
}

void rt_put_all(rt_container **all, size_t n) {
  for (size_t i = 0; i < n; i++) rt_put(all[i]);
  free(all);
}

/* ---- on disk ---- */

int rt_save(rt_container *c, vs_err *err) {
  json_t *j = json_pack(
      "{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:i,s:I,s:i,s:i}", "id", c->id, "state",
      rt_state_name(c->state), "image_digest", c->image_digest, "created_ns",
      (json_int_t)c->created_ns, "started_ns", (json_int_t)c->started_ns, "finished_ns",
      (json_int_t)c->finished_ns, "platform", c->platform, "qemu_pid", c->qemu_pid, "boot_ms",
      (json_int_t)c->boot_ms, "vcpus", c->vcpus, "memory_mib", c->memory_mib);
  json_t *nics = json_array();
  if (!j || !nics) {
    json_decref(j);
    json_decref(nics);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (size_t i = 0; i < c->n_nics; i++) {
    const rt_nic *n = &c->nics[i];
    json_array_append_new(nics, json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "network", n->network, "ip",
                                          n->ip, "mac", n->mac, "gateway", n->gateway, "tap",
                                          n->tap, "prefix", n->prefix));
  }
  json_object_set_new(j, "networks", nics);
  if (c->is_pod) json_object_set_new(j, "pod_slots", json_integer(c->n_slots));
  if (c->cri_log[0]) json_object_set_new(j, "cri_log", json_string(c->cri_log));
  if (c->pod) json_object_set_new(j, "slot", json_integer(c->slot));
  json_object_set_new(j, "init_pid", json_integer(c->init.pid));
  json_object_set_new(j, "agent_socket", json_string(c->sock));
  json_object_set_new(j, "stop_signal", json_integer(c->stop_signal));
  json_object_set_new(j, "manual_stop", json_boolean(c->manual_stop));
  json_object_set_new(j, "restart_due", json_boolean(c->restart_due));
  json_object_set_new(j, "restart_count", json_integer(c->restart_count));
  json_object_set_new(j, "restart_delay_ms", json_integer(c->restart_delay_ms));
  if (c->has_exit)
    json_object_set_new(j, "exit", json_pack("{s:i,s:i,s:b,s:I,s:s}", "code", c->last_exit.code,
                                             "signal", c->last_exit.signal, "oom",
                                             c->last_exit.oom_killed, "exited_ns",
                                             (json_int_t)c->last_exit.exited_ns, "reason",
                                             c->last_exit.reason));
  char p[4400];
  snprintf(p, sizeof p, "%s/state.json", c->dir);
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  int rc = text ? vs_write_atomic(p, text, strlen(text), 0600, err)
                : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  free(text);
  return rc;
}

void rt_save_or_log(rt_container *c) {
  vs_err err;
  if (rt_save(c, &err) < 0)
    vs_log("vesseld", VS_LOG_ERROR, "container %s: state not saved (a restarted vesseld sees an older one): %s",
           c->id, err.msg);
}

static int save_msg(rt_container *c, const char *name, const ProtobufCMessage *m, vs_err *err) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  protobuf_c_message_pack(m, buf);
  char p[4400];
  snprintf(p, sizeof p, "%s/%s", c->dir, name);
  int rc = vs_write_atomic(p, buf, n, 0600, err);
  free(buf);
  return rc;
}

/* spec.pb, and a pod's pod.pb. */
int rt_save_spec(rt_container *c, vs_err *err) {
  return save_msg(c, "spec.pb", &c->spec->base, err) < 0 ||
                 (c->pod_spec && save_msg(c, "pod.pb", &c->pod_spec->base, err) < 0)
             ? -1
             : 0;
}

#define S(j, k, dst) snprintf(dst, sizeof dst, "%s", json_string_value(json_object_get(j, k)) ?: "")

static void load_nic(json_t *n, rt_nic *nic) {
  S(n, "network", nic->network);
  S(n, "ip", nic->ip);
  S(n, "mac", nic->mac);
  S(n, "gateway", nic->gateway);
  S(n, "tap", nic->tap);
  nic->prefix = (int)json_integer_value(json_object_get(n, "prefix"));
}

/* Its attachments: "networks", or the one network an older vesseld kept
 * at the top level. */
static void load_nics(rt_container *c, json_t *j) {
  json_t *a = json_object_get(j, "networks"), *n;
  size_t i;
  json_array_foreach(a, i, n) {
    if (c->n_nics < VM_MAX_NICS) load_nic(n, &c->nics[c->n_nics++]);
  }
  if (!a && json_string_length(json_object_get(j, "network"))) load_nic(j, &c->nics[c->n_nics++]);
}

/* One container directory; NULL (logged) when it cannot be read. *live:
 * its VM may still run. */
static rt_container *load_one(rt_runtime *rt, const char *dir, const char *id, int *live) {
  char p[4400];
  vs_err err;
  size_t n = 0;
  snprintf(p, sizeof p, "%s/%s/spec.pb", dir, id);
  char *buf = vs_read_file(p, SPEC_MAX, &n, &err);
  int read_ok = buf != NULL;
  Vessel__V1__ContainersCreateRequest *spec =
      buf ? vessel__v1__containers_create_request__unpack(NULL, n, (uint8_t *)buf) : NULL;
  free(buf);
  snprintf(p, sizeof p, "%s/%s/state.json", dir, id);
  json_error_t je;
  json_t *j = spec ? json_load_file(p, 0, &je) : NULL;
  rt_container *c = j ? rt_container_new(rt) : NULL;
  if (!c) {
    vs_log("vesseld", VS_LOG_ERROR, "container %s not loaded: %s", id,
           !spec ? (read_ok ? "spec.pb does not parse" : err.msg) : j ? "out of memory" : je.text);
    if (spec) protobuf_c_message_free_unpacked(&spec->base, NULL);
    json_decref(j);
    return NULL;
  }
  snprintf(c->id, sizeof c->id, "%s", id);
  snprintf(c->dir, sizeof c->dir, "%.4000s/%.127s", dir, id);
  c->spec = spec;
  S(j, "image_digest", c->image_digest);
  S(j, "platform", c->platform);
  S(j, "agent_socket", c->sock);
  S(j, "cri_log", c->cri_log);
  load_nics(c, j);
  c->n_slots = (int)json_integer_value(json_object_get(j, "pod_slots"));
  c->slot = json_object_get(j, "slot") ? (int)json_integer_value(json_object_get(j, "slot")) : -1;
  if (c->n_slots > 0) { /* a pod */
    c->is_pod = 1;
    snprintf(p, sizeof p, "%s/%s/pod.pb", dir, id);
    char *pb = vs_read_file(p, SPEC_MAX, &n, &err);
    c->pod_spec = pb ? vessel__v1__pods_create_request__unpack(NULL, n, (uint8_t *)pb) : NULL;
    free(pb);
  }
  c->created_ns = json_integer_value(json_object_get(j, "created_ns"));
  c->started_ns = json_integer_value(json_object_get(j, "started_ns"));
  c->finished_ns = json_integer_value(json_object_get(j, "finished_ns"));
  c->boot_ms = json_integer_value(json_object_get(j, "boot_ms"));
  c->vcpus = (int)json_integer_value(json_object_get(j, "vcpus"));
  c->memory_mib = (int)json_integer_value(json_object_get(j, "memory_mib"));
  c->stop_signal = (int)json_integer_value(json_object_get(j, "stop_signal"));
  c->manual_stop = json_is_true(json_object_get(j, "manual_stop"));
  c->restart_due = json_is_true(json_object_get(j, "restart_due"));
  c->restart_count = (int)json_integer_value(json_object_get(j, "restart_count"));
  c->restart_delay_ms = json_integer_value(json_object_get(j, "restart_delay_ms"));
  json_t *x = json_object_get(j, "exit");
  const char *state = json_string_value(json_object_get(j, "state"));
  c->state = RT_STOPPED;
  *live = 0;
  if (x) {
    c->has_exit = 1;
    c->last_exit.code = (int)json_integer_value(json_object_get(x, "code"));
    c->last_exit.signal = (int)json_integer_value(json_object_get(x, "signal"));
    c->last_exit.oom_killed = json_is_true(json_object_get(x, "oom"));
    c->last_exit.exited_ns = json_integer_value(json_object_get(x, "exited_ns"));
    S(x, "reason", c->last_exit.reason);
  } else if (state && strcmp(state, "stopped") != 0) {
    c->init.pid = (int)json_integer_value(json_object_get(j, "init_pid"));
    c->state = !strcmp(state, "running") ? RT_RUNNING : RT_CREATED;
    c->qemu_pid = (int)json_integer_value(json_object_get(j, "qemu_pid"));
    *live = 1;
  }
  json_decref(j);
  snprintf(p, sizeof p, "%s/logs", c->dir);
  int64_t log_bytes;
  int32_t log_files;
  rt_log_limits(c, &log_bytes, &log_files); /* (fixed at create since LogConfig) */
  c->logs = lg_open(p, log_bytes, log_files, NULL);
  c->init.log = c->logs;
  vs_err lerr;
  if (c->logs && c->cri_log[0] && lg_set_cri_path(c->logs, c->cri_log, &lerr) < 0)
    vs_log("vesseld", VS_LOG_WARN, "container %s: %s", c->id, lerr.msg);
  return c;
}
#undef S

int rt_load(rt_runtime *rt, rt_container ***readopt, size_t *n_readopt, vs_err *err) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/containers", rt->root);
  if (vs_mkdir_p(dir, 0700, err) < 0) return -1;
  *readopt = NULL;
  *n_readopt = 0;
  DIR *d = opendir(dir);
  if (!d) return vs_err_errno(err, VS_INTERNAL, errno, "open %s", dir);
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    if (!rt_valid_id(e->d_name)) {
      vs_log("vesseld", VS_LOG_WARN, "%s/%s: not a container ID, left alone", dir, e->d_name);
      continue;
    }
    int live;
    rt_container *c = load_one(rt, dir, e->d_name, &live);
    if (!c) continue;
    vs_err lerr;
    if (rt_list_add(rt, c, &lerr) < 0) {
      vs_log("vesseld", VS_LOG_ERROR, "container %s not loaded: %s", c->id, lerr.msg);
      rt_put(c);
      continue;
    }
    if (!live) continue;
    rt_container **r = realloc(*readopt, (*n_readopt + 1) * sizeof *r);
    if (!r) {
      vs_log("vesseld", VS_LOG_ERROR, "container %s: out of memory to re-adopt its VM", c->id);
      continue;
    }
    rt_ref(c);
    *readopt = r;
    (*readopt)[(*n_readopt)++] = c;
  }
  closedir(d);
  return 0;
}
