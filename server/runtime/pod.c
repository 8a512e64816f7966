/* Pods: one VM holding several containers. A pod is an rt_container with
 * is_pod: it owns the VM (booted with n_slots empty, sparse disk files as
 * /dev/vda, /dev/vdb, ...), its networks and published ports, and runs no
 * process of its own. A container created in it claims a free slot, the
 * host writes the container's root filesystem into that slot's file in
 * place while the VM runs (microvm has no disk hotplug; the guest drops
 * the device's cached blocks before mounting it), and the agent creates
 * the container over that device in the VM's network namespace. Deleting
 * the container deletes it in the guest and empties the slot's file. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/pbmap.h"
#include "common/vs_fs.h"
#include "common/vs_log.h"
#include "server/ext4/ext4.h"
#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

#define DEFAULT_SLOTS 4
#define MIN_POD_MIB 128

void rt_pod_slot_path(rt_container *pod, int i, char *out) {
  snprintf(out, 4400, "%.4300s/slot%d.img", pod->dir, i);
}

void rt_pod_slot_device(int i, char out[16]) { snprintf(out, 16, "/dev/vd%c", 'a' + i); }

/* References to the containers in pod, oldest first (free: rt_put_all). */
static rt_container **members(rt_container *pod, size_t *n) {
  rt_container **all = rt_get_all(pod->rt, n);
  size_t k = 0;
  for (size_t i = 0; i < *n; i++) {
    if (all[i]->pod == pod) all[k++] = all[i];
    else rt_put(all[i]);
  }
  *n = k;
  return all;
}

/* ---- a container in a pod ---- */

int rt_pod_volume(const Vessel__V1__ContainersCreateRequest *pod, const char *source,
                  const char **rest) {
  for (size_t k = 0; k < pod->n_mounts; k++) {
    const char *v = pod->mounts[k]->source;
    size_t n = strlen(v);
    if (!strncmp(source, v, n) && (!source[n] || (source[n] == '/' && !strstr(source + n, "/..")))) {
      *rest = source + n;
      return (int)k;
    }
  }
  return -1;
}

/* Host directories: the pod's volumes, or paths in them, only (the VM's
 * shares are fixed). */
static int check_mounts(const rt_container *c, const rt_container *pod, vs_err *err) {
  for (size_t i = 0; i < c->spec->n_mounts; i++) {
    const Vessel__V1__Mount *m = c->spec->mounts[i];
    const char *rest;
    int known = !strcmp(m->type, "tmpfs") || rt_pod_volume(pod->spec, m->source, &rest) >= 0;
    if (!known)
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "mount %s: host directory %s is not a volume of pod %s (PodsCreateRequest.volumes)",
                        m->destination, m->source, pod->id);
  }
  return 0;
}

int rt_pod_join(rt_container *c, vs_err *err) {
  rt_container *pod = rt_get_pod(c->rt, c->spec->pod_id, err);
  if (!pod) return -1;
  if (check_mounts(c, pod, err) < 0) {
    rt_put(pod);
    return -1;
  }
  pthread_mutex_lock(&pod->mu);
  int up = pod->state == RT_RUNNING && pod->vm, slot = -1;
  for (int i = 0; up && i < pod->n_slots && slot < 0; i++)
    if (!pod->slot_owner[i][0]) slot = i;
  if (slot >= 0) snprintf(pod->slot_owner[slot], sizeof pod->slot_owner[0], "%s", c->id);
  pthread_mutex_unlock(&pod->mu);
  if (!up || slot < 0) {
    if (!up)
      vs_err_set(err, VS_FAILED_PRECONDITION, "pod %s is not running", pod->id);
    else
      vs_err_set(err, VS_RESOURCE_EXHAUSTED,
                 "pod %s has no free disk slot: its %d slots hold containers "
                 "(delete one, or create the pod with more: PodsCreateRequest.slots)",
                 pod->id, pod->n_slots);
    rt_put(pod);
    return -1;
  }
  c->pod = pod; /* the reference is c's until it is freed */
  c->slot = slot;
  c->vcpus = pod->vcpus;
  c->memory_mib = pod->memory_mib;
  return 0;
}

int rt_pod_relink(rt_container *c) {
  vs_err ignore;
  rt_container *pod = rt_get_pod(c->rt, c->spec->pod_id, &ignore);
  if (!pod || c->slot < 0 || c->slot >= pod->n_slots) {
    rt_put(pod);
    return -1;
  }
  pthread_mutex_lock(&pod->mu);
  snprintf(pod->slot_owner[c->slot], sizeof pod->slot_owner[0], "%s", c->id);
  pthread_mutex_unlock(&pod->mu);
  c->pod = pod;
  return 0;
}

int rt_pod_fill_slot(rt_container *c, const char *rootfs_src, vs_err *err) {
  char path[4400];
  rt_pod_slot_path(c->pod, c->slot, path);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  int rc = fd < 0 ? vs_err_errno(err, VS_INTERNAL, errno, "open %s", path)
                  : rfs_copy_into(rootfs_src, fd, err);
  /* (the size the guest saw at boot: nothing past the copy is read) */
  if (rc == 0 && ftruncate(fd, RT_DISK_BYTES) < 0)
    rc = vs_err_errno(err, VS_INTERNAL, errno, "resize %s", path);
  if (fd >= 0) close(fd);
  return rc;
}

/* The slot's file emptied (its blocks freed), at its size. */
static int slot_clear(const char *path) {
  return truncate(path, 0) == 0 && truncate(path, RT_DISK_BYTES) == 0 ? 0 : -1;
}

void rt_pod_leave(rt_container *c) {
  rt_container *pod = c->pod;
  if (c->slot < 0) return;
  rt_proc_join(&c->init); /* its streams end before it goes in the guest */
  rt_end_streams(c);
  Vessel__V1__AgentDeleteContainerRequest del = VESSEL__V1__AGENT_DELETE_CONTAINER_REQUEST__INIT;
  del.container_id = c->id;
  del.force = 1;
  vs_err err;
  pthread_mutex_lock(&pod->mu);
  int up = pod->vm != NULL;
  pthread_mutex_unlock(&pod->mu);
  if (up && rt_agent(c, &vessel_v1_Agent_DeleteContainer, &del.base, NULL, AGENT_TIMEOUT_MS, &err) < 0 &&
      err.code != VS_NOT_FOUND)
    vs_log("vesseld", VS_LOG_WARN, "container %s: not deleted in pod %s: %s", c->id, pod->id, err.msg);
  char path[4400];
  rt_pod_slot_path(pod, c->slot, path);
  if (slot_clear(path) < 0)
    vs_log("vesseld", VS_LOG_WARN, "pod %s: slot %d not emptied: %s", pod->id, c->slot,
           strerror(errno));
  pthread_mutex_lock(&pod->mu);
  if (!strcmp(pod->slot_owner[c->slot], c->id)) pod->slot_owner[c->slot][0] = '\0';
  pthread_mutex_unlock(&pod->mu);
  c->slot = -1;
}

void rt_pod_end_streams(rt_container *pod) {
  size_t n;
  rt_container **ms = members(pod, &n);
  for (size_t i = 0; i < n; i++) {
    rt_proc_join(&ms[i]->init);
    rt_end_streams(ms[i]);
  }
  rt_put_all(ms, n);
}

/* ---- the pod ---- */

static int check(const Vessel__V1__PodsCreateRequest *req, vs_err *err) {
  if (*req->id && !rt_valid_id(req->id))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "pod ID \"%s\": use [A-Za-z0-9][A-Za-z0-9_.-]{0,127}",
                      req->id);
  for (size_t i = 0; i < req->n_volumes; i++) {
    const Vessel__V1__Mount *m = req->volumes[i];
    struct stat st;
    if ((*m->type && strcmp(m->type, "bind")) || m->source[0] != '/' || stat(m->source, &st) < 0 ||
        !S_ISDIR(st.st_mode))
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "volumes[%zu]: \"%s\" is not a host directory (an absolute path, type bind)",
                        i, m->source);
  }
  if (req->n_volumes > 16)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%zu volumes: at most 16", req->n_volumes);
  if (req->slots > RT_MAX_SLOTS)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "slots %u: 1..%d", req->slots, RT_MAX_SLOTS);
  const Vessel__V1__Resources *r = req->resources;
  if (r && (r->milli_cpus < 0 || r->memory_bytes < 0))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "resources must not be negative");
  if (r && r->memory_bytes && r->memory_bytes < ((int64_t)MIN_POD_MIB << 20))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "memory_bytes %lld: a pod's VM needs %d MiB at least",
                      (long long)r->memory_bytes, MIN_POD_MIB);
  return 0;
}

/* What the VM code reads (networks, ports, hostname, DNS, hosts, labels)
 * as a container spec: the pod's. */
static Vessel__V1__ContainersCreateRequest *vm_spec(const Vessel__V1__PodsCreateRequest *req,
                                                    const char *id) {
  Vessel__V1__ContainersCreateRequest s = VESSEL__V1__CONTAINERS_CREATE_REQUEST__INIT;
  char hostname[16];
  snprintf(hostname, sizeof hostname, "%.12s", id);
  s.id = (char *)id;
  s.hostname = *req->hostname ? req->hostname : hostname;
  s.networks = req->networks;
  s.n_networks = req->n_networks;
  s.ports = req->ports;
  s.n_ports = req->n_ports;
  s.dns = req->dns;
  s.extra_hosts = req->extra_hosts;
  s.n_extra_hosts = req->n_extra_hosts;
  s.resources = req->resources;
  s.mounts = req->volumes; /* the VM's 9p shares */
  s.n_mounts = req->n_volumes;
  s.n_labels = req->n_labels;
  s.labels = (Vessel__V1__ContainersCreateRequest__LabelsEntry **)req->labels;
  return (Vessel__V1__ContainersCreateRequest *)rt_copy_msg(&s.base);
}

static int create_in(rt_container *c, vs_err *err) {
  if (mkdir(c->dir, 0700) < 0) return vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", c->dir);
  for (int i = 0; i < c->n_slots; i++) {
    char path[4400];
    rt_pod_slot_path(c, i, path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int ok = fd >= 0 && ftruncate(fd, RT_DISK_BYTES) == 0;
    if (fd >= 0) close(fd);
    if (!ok) return vs_err_errno(err, VS_INTERNAL, errno, "create %s", path);
  }
  if (rt_save_spec(c, err) < 0 || rt_save(c, err) < 0) return -1;
  if (rt_attach_networks(c, c->spec, err) < 0 || rt_boot(c, NULL, err) < 0) return -1;
  if (rt_save(c, err) < 0) return -1; /* its QEMU on record */
  if (rt_configure_guest(c, err) < 0 || rt_agent_events_start(c, err) < 0) return -1;
  return rt_ports_start(c, err);
}

int rt_pod_create(rt_runtime *rt, const Vessel__V1__PodsCreateRequest *req, char id_out[128],
                  vs_err *err) {
  if (check(req, err) < 0) return -1;
  rt_container *c = rt_container_new(rt);
  if (!c) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  c->is_pod = 1;
  if (*req->id) snprintf(c->id, sizeof c->id, "%s", req->id);
  else rt_random_id(c->id);
  snprintf(c->dir, sizeof c->dir, "%s/containers/%s", rt->root, c->id);
  c->n_slots = req->slots ? (int)req->slots : DEFAULT_SLOTS;
  const Vessel__V1__Resources *r = req->resources;
  c->vcpus = r && r->milli_cpus > 0 ? (int)((r->milli_cpus + 999) / 1000) : rt->cfg.vcpus;
  c->memory_mib = r && r->memory_bytes ? (int)(r->memory_bytes >> 20) : rt->cfg.memory_mib;
  c->state = RT_CREATING;
  rt_now(&c->created_ns);
  c->spec = vm_spec(req, c->id);
  c->pod_spec = (Vessel__V1__PodsCreateRequest *)rt_copy_msg(&req->base);
  if (c->pod_spec) rt_set_str(&c->pod_spec->id, c->id);
  if (!c->spec || !c->pod_spec || rt_check_vm_spec(c->spec, err) < 0 || rt_list_add(rt, c, err) < 0) {
    if (!c->spec || !c->pod_spec) vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    rt_put(c);
    return -1;
  }
  rt_ref(c);
  pthread_mutex_lock(&c->op);
  int rc = create_in(c, err);
  if (rc < 0) {
    rt_create_undo(c);
  } else {
    pthread_mutex_lock(&c->mu);
    c->state = RT_RUNNING;
    rt_now(&c->started_ns);
    rt_save_or_log(c);
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_unlock(&c->op);
  if (rc == 0) {
    rt_emit(c, EVB_POD_CREATED, NULL, NULL);
    snprintf(id_out, 128, "%s", c->id);
  }
  rt_put(c);
  return rc;
}

/* With pod->op held: its VM ended (after its containers), STOPPED with
 * why. 1 if this call stopped it. */
static int end_vm(rt_container *pod, const char *why) {
  rt_teardown_vm(pod);
  rt_ports_stop(pod);
  rt_net_teardown(pod);
  pthread_mutex_lock(&pod->mu);
  int was = pod->state == RT_RUNNING;
  pod->state = RT_STOPPED;
  if (was) {
    pod->has_exit = 1;
    memset(&pod->last_exit, 0, sizeof pod->last_exit);
    rt_now(&pod->last_exit.exited_ns);
    pod->finished_ns = pod->last_exit.exited_ns;
    snprintf(pod->last_exit.reason, sizeof pod->last_exit.reason, "%s", why);
  }
  rt_save_or_log(pod);
  rt_exit e = pod->last_exit;
  pthread_mutex_unlock(&pod->mu);
  if (was) rt_emit(pod, EVB_POD_STOPPED, NULL, &e);
  return was;
}

/* With pod->op held. */
static int stop_in(rt_container *pod, int sig, int64_t timeout_ms, const char *why, vs_err *err) {
  size_t n;
  rt_container **ms = members(pod, &n);
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    vs_err e;
    if (rt_stop(pod->rt, ms[i]->id, sig, timeout_ms, -1, NULL, &e) < 0 && e.code != VS_NOT_FOUND)
      rc = vs_err_set(err, e.code, "pod %s: container %s: %s", pod->id, ms[i]->id, e.msg);
  }
  rt_put_all(ms, n);
  if (rc == 0) end_vm(pod, why);
  return rc;
}

static void *lost_main(void *arg) {
  rt_container *pod = arg;
  pthread_mutex_lock(&pod->op);
  vs_log("vesseld", VS_LOG_WARN, "pod %s: its VM ended unexpectedly", pod->id);
  /* Its containers' relays saw the end and stopped them ("connection to
   * the VM lost"); the pod follows. */
  end_vm(pod, "the pod's VM ended unexpectedly");
  pthread_mutex_unlock(&pod->op);
  rt_bg_end(pod);
  return NULL;
}

void rt_pod_lost(rt_container *pod) { rt_bg_start(pod, lost_main); }

int rt_pod_stop(rt_runtime *rt, const char *id, int sig, int64_t timeout_ms, vs_err *err) {
  if (sig < 0 || sig >= NSIG)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "signal %d is out of range (0..%d)", sig, NSIG - 1);
  if (timeout_ms < 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "timeout_ms %lld: 0 (10 s) or a positive value",
                      (long long)timeout_ms);
  rt_container *pod = rt_get_pod(rt, id, err);
  if (!pod) return -1;
  pthread_mutex_lock(&pod->op);
  int rc = stop_in(pod, sig, timeout_ms, "stopped", err);
  pthread_mutex_unlock(&pod->op);
  rt_put(pod);
  return rc;
}

int rt_pod_delete(rt_runtime *rt, const char *id, int force, vs_err *err) {
  rt_container *pod = rt_get_pod(rt, id, err);
  if (!pod) return -1;
  pthread_mutex_lock(&pod->op);
  size_t n;
  rt_container **ms = members(pod, &n);
  int rc = 0;
  if (n && !force)
    rc = vs_err_set(err, VS_FAILED_PRECONDITION,
                    "pod %s has %zu container(s); delete them first or delete with force", pod->id, n);
  for (size_t i = 0; i < n && rc == 0; i++) {
    vs_err e;
    if (rt_delete(rt, ms[i]->id, 1, &e) < 0 && e.code != VS_NOT_FOUND)
      rc = vs_err_set(err, e.code, "pod %s: container %s: %s", pod->id, ms[i]->id, e.msg);
  }
  rt_put_all(ms, n);
  if (rc == 0) {
    pthread_mutex_lock(&pod->mu);
    pod->deleted = 1;
    pod->discard_disk = 1; /* no sync: the slots go */
    pthread_mutex_unlock(&pod->mu);
    rt_list_remove(rt, pod);
    rt_release_host(pod);
    vs_rm_rf(pod->dir);
  }
  pthread_mutex_unlock(&pod->op);
  if (rc == 0) rt_emit(pod, EVB_POD_DELETED, NULL, NULL);
  rt_put(pod);
  return rc;
}

/* ---- the API's view ---- */

static Vessel__V1__Pod *describe(rt_container *pod) {
  Vessel__V1__Pod *m = malloc(sizeof *m);
  vessel__v1__pod__init(m);
  size_t n;
  rt_container **ms = members(pod, &n); /* (before pod->mu: takes rt->mu) */
  if (n) m->container_ids = calloc(n, sizeof *m->container_ids);
  for (size_t i = 0; m->container_ids && i < n; i++) m->container_ids[m->n_container_ids++] = strdup(ms[i]->id);
  rt_put_all(ms, n);
  pthread_mutex_lock(&pod->mu);
  /* The VM's parts are described as a container's would be. */
  Vessel__V1__Container *ct = rt_describe_locked(pod);
  m->id = strdup(pod->id);
  m->state = pod->state == RT_RUNNING ? VESSEL__V1__POD_STATE__POD_STATE_RUNNING
                                      : VESSEL__V1__POD_STATE__POD_STATE_STOPPED;
  m->reason = strdup(pod->state == RT_STOPPED ? pod->last_exit.reason : "");
  m->resources = calloc(1, sizeof *m->resources);
  vessel__v1__resources__init(m->resources);
  m->resources->milli_cpus = (int64_t)pod->vcpus * 1000;
  m->resources->memory_bytes = (int64_t)pod->memory_mib << 20;
  m->hostname = strdup(pod->spec->hostname);
  m->slots = (uint32_t)pod->n_slots;
  for (int i = 0; i < pod->n_slots; i++) m->free_slots += !pod->slot_owner[i][0];
  m->created_at = ct->created_at;
  ct->created_at = NULL;
  m->vm = ct->vm;
  ct->vm = NULL;
  m->n_networks = ct->n_networks;
  m->networks = ct->networks;
  ct->n_networks = 0;
  ct->networks = NULL;
  m->n_ports = ct->n_ports;
  m->ports = ct->ports;
  ct->n_ports = 0;
  ct->ports = NULL;
  const Vessel__V1__PodsCreateRequest *ps = pod->pod_spec;
  if (ps) {
    PBMAP_COPY(m, labels, vessel__v1__pod__labels_entry, ps->labels, ps->n_labels, NULL, NULL);
    PBMAP_COPY(m, annotations, vessel__v1__pod__annotations_entry, ps->annotations,
               ps->n_annotations, NULL, NULL);
  }
  pthread_mutex_unlock(&pod->mu);
  protobuf_c_message_free_unpacked(&ct->base, NULL);
  return m;
}

Vessel__V1__Pod *rt_pod_describe(rt_runtime *rt, const char *id, vs_err *err) {
  rt_container *pod = rt_get_pod(rt, id, err);
  if (!pod) return NULL;
  Vessel__V1__Pod *m = describe(pod);
  rt_put(pod);
  return m;
}

int rt_pod_list(rt_runtime *rt, Vessel__V1__Pod ***out, size_t *n, vs_err *err) {
  size_t na;
  rt_container **all = rt_get_all(rt, &na);
  *n = 0;
  *out = calloc(na ? na : 1, sizeof **out);
  for (size_t i = na; *out && i-- > 0;) /* newest first */
    if (all[i]->is_pod) (*out)[(*n)++] = describe(all[i]);
  rt_put_all(all, na);
  return *out ? 0 : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
}

void rt_pod_list_free(Vessel__V1__Pod **list, size_t n) {
  for (size_t i = 0; i < n; i++) protobuf_c_message_free_unpacked(&list[i]->base, NULL);
  free(list);
}

/* QEMU's RSS and CPU time from /proc (0 when unreadable). */
static void host_usage(int pid, uint64_t *rss, uint64_t *cpu_usec) {
  char path[64], buf[1024];
  *rss = *cpu_usec = 0;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "re");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f) fclose(f);
  buf[n] = '\0';
  const char *p = strrchr(buf, ')'); /* the command may hold spaces */
  unsigned long long ut = 0, st = 0;
  long rss_pages = 0;
  if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d "
                         "%*d %*u %*u %ld", &ut, &st, &rss_pages) == 3) {
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    *cpu_usec = (ut + st) * 1000000ull / (unsigned long long)(hz > 0 ? hz : 100);
    *rss = (uint64_t)rss_pages * (uint64_t)page;
  }
}

int rt_pod_stats(rt_runtime *rt, const char *id, Vessel__V1__PodsStatsResponse **out, vs_err *err) {
  rt_container *pod = rt_get_pod(rt, id, err);
  if (!pod) return -1;
  pthread_mutex_lock(&pod->mu);
  int up = pod->state == RT_RUNNING && pod->vm, pid = pod->qemu_pid;
  pthread_mutex_unlock(&pod->mu);
  if (!up) {
    vs_err_set(err, VS_FAILED_PRECONDITION, "pod %s is not running", pod->id);
    rt_put(pod);
    return -1;
  }
  size_t n;
  rt_container **ms = members(pod, &n);
  char **ids = calloc(n ? n : 1, sizeof *ids);
  size_t k = 0;
  for (size_t i = 0; ids && i < n; i++) {
    pthread_mutex_lock(&ms[i]->mu);
    if (ms[i]->state == RT_RUNNING) ids[k++] = ms[i]->id;
    pthread_mutex_unlock(&ms[i]->mu);
  }
  Vessel__V1__PodsStatsResponse *r = malloc(sizeof *r);
  Vessel__V1__PodVmStatistics *vm = malloc(sizeof *vm);
  int rc = ids && r && vm ? 0 : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  ProtobufCMessage *resp = NULL;
  if (rc == 0 && k) {
    Vessel__V1__AgentStatisticsRequest req = VESSEL__V1__AGENT_STATISTICS_REQUEST__INIT;
    req.container_ids = ids;
    req.n_container_ids = k;
    rc = rt_agent(pod, &vessel_v1_Agent_Statistics, &req.base, &resp, AGENT_TIMEOUT_MS, err);
  }
  if (rc == 0) {
    vessel__v1__pods_stats_response__init(r);
    vessel__v1__pod_vm_statistics__init(vm);
    host_usage(pid, &vm->host_rss_bytes, &vm->host_cpu_usec);
    vm->memory_bytes = (int64_t)pod->memory_mib << 20;
    vm->vcpus = (uint32_t)pod->vcpus;
    r->vm = vm;
    Vessel__V1__AgentStatisticsResponse *a = (Vessel__V1__AgentStatisticsResponse *)resp;
    size_t ns = a ? a->n_statistics : 0;
    r->containers = ns ? calloc(ns, sizeof *r->containers) : NULL;
    for (size_t i = 0; r->containers && i < ns; i++)
      r->containers[r->n_containers++] = (Vessel__V1__Statistics *)rt_copy_msg(&a->statistics[i]->base);
    *out = r;
  } else {
    free(r);
    free(vm);
  }
  vrpc_msg_free(resp);
  free(ids);
  rt_put_all(ms, n);
  rt_put(pod);
  return rc;
}
