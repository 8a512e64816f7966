/* The container state machine: every transition of a container (create,
 * start, init's exit, stop, delete, lost at a restart) happens here, and
 * the runtime opens and closes here. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/vs_fs.h"
#include "common/vs_log.h"
#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

/* A VM's memory beyond its container's limit: the guest kernel and vminitd. */
#define GUEST_MIB 64

int rt_closing(rt_runtime *rt) { return __atomic_load_n(&rt->closing, __ATOMIC_ACQUIRE); }

void rt_default_resources(rt_runtime *rt, int64_t *milli_cpus, int64_t *memory_bytes) {
  *milli_cpus = 1000 * (int64_t)rt->cfg.vcpus;
  *memory_bytes = (int64_t)(rt->cfg.memory_mib - GUEST_MIB) << 20;
}

static int valid_mac(const char *m) {
  unsigned b[6];
  char end;
  return strlen(m) == 17 &&
         sscanf(m, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &end) == 6 &&
         !(b[0] & 1); /* not multicast */
}

/* The attachments: a NIC each (VM_MAX_NICS at most), each network once,
 * "none" alone, MACs well-formed and distinct. */
static int check_networks(const Vessel__V1__ContainersCreateRequest *req, vs_err *err) {
  size_t n = req->n_networks;
  if (n > VM_MAX_NICS)
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "networks: %zu attachments, at most %d (a NIC each)", n, VM_MAX_NICS);
  for (size_t i = 0; i < n; i++) {
    const Vessel__V1__NetworkAttachment *a = req->networks[i];
    if (!*a->network)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "networks[%zu]: the network name is empty", i);
    if (!strcmp(a->network, "none") && n > 1)
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "network \"none\" (loopback only) cannot be combined with other networks");
    if (*a->mac_address && !valid_mac(a->mac_address))
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "networks[%zu].mac_address \"%.32s\": use aa:bb:cc:dd:ee:ff (unicast)", i,
                        a->mac_address);
    for (size_t k = 0; k < i; k++) {
      if (!strcmp(req->networks[k]->network, a->network))
        return vs_err_set(err, VS_INVALID_ARGUMENT, "network %.64s is named twice", a->network);
      if (*a->mac_address && !strcasecmp(req->networks[k]->mac_address, a->mac_address))
        return vs_err_set(err, VS_INVALID_ARGUMENT, "MAC address %s is given twice", a->mac_address);
    }
  }
  return 0;
}

int rt_check_vm_spec(const Vessel__V1__ContainersCreateRequest *req, vs_err *err) {
  for (size_t i = 0; i < req->n_ports; i++) {
    const Vessel__V1__PortMapping *m = req->ports[i];
    if (m->protocol == VESSEL__V1__PORT_PROTOCOL__PORT_PROTOCOL_UDP)
      return vs_err_set(err, VS_UNIMPLEMENTED,
                        "PortMapping.protocol: UDP port publishing is not supported yet");
    if (!m->container_port || m->container_port > 65535 || m->host_port > 65535)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "port mapping %u->%u: ports are 1..65535",
                        m->host_port, m->container_port);
  }
  return check_networks(req, err);
}

/* What is the pod's is not a container's in it. */
static int check_in_pod(const Vessel__V1__ContainersCreateRequest *req, vs_err *err) {
  const char *f = req->n_networks      ? "networks"
                  : req->n_ports       ? "ports"
                  : *req->hostname     ? "hostname"
                  : req->dns           ? "dns"
                  : req->n_extra_hosts ? "extra_hosts"
                  : *req->kernel       ? "kernel"
                  : req->no_template   ? "no_template"
                                       : NULL;
  if (f)
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "%s is the pod's: not set on a container in pod %.64s", f, req->pod_id);
  return 0;
}

static int validate(const Vessel__V1__ContainersCreateRequest *req, vs_err *err) {
  if (!*req->image) return vs_err_set(err, VS_INVALID_ARGUMENT, "create needs an image");
  if (*req->id && !rt_valid_id(req->id))
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "container ID \"%s\": use [A-Za-z0-9][A-Za-z0-9_.-]{0,127}", req->id);
  const Vessel__V1__Resources *r = req->resources;
  if (r && (r->milli_cpus < 0 || r->memory_bytes < 0 || r->pids_max < 0))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "resources must not be negative");
  if (r && r->memory_bytes && r->memory_bytes < (64 << 20))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "memory_bytes %lld is below the 64 MiB minimum",
                      (long long)r->memory_bytes);
  for (size_t i = 0; i < req->n_mounts; i++) {
    const Vessel__V1__Mount *m = req->mounts[i];
    if (!*m->destination || m->destination[0] != '/')
      return vs_err_set(err, VS_INVALID_ARGUMENT, "mount destination \"%s\" must be absolute",
                        m->destination);
    if (!strcmp(m->type, "bind") || !*m->type) {
      struct stat st;
      if (!*m->source || m->source[0] != '/')
        return vs_err_set(err, VS_INVALID_ARGUMENT, "volume %s: host path \"%s\" must be absolute",
                          m->destination, m->source);
      /* a directory (a share of the VM); in a pod also a file in one of
       * its volumes (rt_pod_join checks where) */
      if (stat(m->source, &st) < 0 || !(S_ISDIR(st.st_mode) || (*req->pod_id && S_ISREG(st.st_mode))))
        return vs_err_set(err, VS_INVALID_ARGUMENT, "volume %s: host path %s is not a directory",
                          m->destination, m->source);
    } else if (strcmp(m->type, "tmpfs") != 0) {
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "mount %s: type \"%s\" (use \"bind\" for a host directory or \"tmpfs\")",
                        m->destination, m->type);
    }
  }
  const Vessel__V1__PathRestrictions *pr = req->path_restrictions;
  for (int l = 0; pr && l < 2; l++) {
    char *const *v = l ? pr->readonly : pr->masked;
    size_t n = l ? pr->n_readonly : pr->n_masked;
    if (n > 32)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "path_restrictions.%s: at most 32 paths",
                        l ? "readonly" : "masked");
    for (size_t i = 0; i < n; i++)
      if (v[i][0] != '/' || strstr(v[i], "..") || strlen(v[i]) >= 256)
        return vs_err_set(err, VS_INVALID_ARGUMENT,
                          "path_restrictions.%s: \"%s\" is not an absolute path without \"..\" "
                          "under 256 bytes", l ? "readonly" : "masked", v[i]);
  }
  const Vessel__V1__LogConfig *lc = req->log;
  if (lc && (lc->max_size_bytes < 0 || lc->max_files < 0 || lc->max_files > LG_MAX_FILES))
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "log: max_size_bytes %lld, max_files %d: give sizes >= 0 and 0..%d files (0: "
                      "vesseld's default)", (long long)lc->max_size_bytes, lc->max_files, LG_MAX_FILES);
  if (rt_check_vm_spec(req, err) < 0) return -1;
  const Vessel__V1__RestartPolicy *rp = req->restart_policy;
  if (rp) {
    const char *n = rp->name;
    if (*n && strcmp(n, "no") && strcmp(n, "on-failure") && strcmp(n, "always") &&
        strcmp(n, "unless-stopped"))
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "restart policy \"%.64s\": use no, on-failure, always or unless-stopped", n);
    if (rp->max_retries < 0 || (rp->max_retries && strcmp(n, "on-failure")))
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "restart policy max_retries %d: a count >= 0, for on-failure only",
                        rp->max_retries);
    if (*n && strcmp(n, "no") && req->auto_remove)
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "auto_remove and restart policy %s exclude each other", n);
  }
  if (*req->pod_id) return check_in_pod(req, err);
  if (*req->kernel && strcmp(req->kernel, "optimized") != 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "kernel \"%s\": this vesseld offers \"optimized\"",
                      req->kernel);
  return 0;
}

int rt_attach_networks(rt_container *c, const Vessel__V1__ContainersCreateRequest *req,
                           vs_err *err) {
  rt_runtime *rt = c->rt;
  size_t n_att = req->n_networks ? req->n_networks : 1;
  for (size_t i = 0; i < n_att; i++) {
    const Vessel__V1__NetworkAttachment *a = req->n_networks ? req->networks[i] : NULL;
    const char *netname = a ? a->network : NET_DEFAULT;
    if (!strcmp(netname, "none")) return 0;
    net_network n;
    net_lease lease;
    if (net_get(rt->cfg.networks, netname, &n, err) < 0) return -1;
    int rc = net_allocate(rt->cfg.networks, netname, c->id, a ? a->ip_address : "", &lease, err);
    if (rc == 0) {
      rt_nic *nic = &c->nics[c->n_nics++];
      snprintf(nic->network, sizeof nic->network, "%s", netname);
      snprintf(nic->ip, sizeof nic->ip, "%s", lease.ip);
      snprintf(nic->mac, sizeof nic->mac, "%s", a && *a->mac_address ? a->mac_address : lease.mac);
      snprintf(nic->gateway, sizeof nic->gateway, "%s", n.gateway);
      nic->prefix = net_prefix_len(n.subnet);
      rc = rt_net_setup(rt, nic, &n, err);
    }
    net_network_free(&n);
    if (rc < 0) return -1;
  }
  return 0;
}

void rt_create_undo(rt_container *c) {
  rt_release_host(c);
  pthread_mutex_lock(&c->mu);
  c->deleted = 1;
  pthread_mutex_unlock(&c->mu);
  rt_list_remove(c->rt, c);
  vs_rm_rf(c->dir);
}

void rt_release_host(rt_container *c) {
  if (c->pod) { /* the pod's VM and networks stay */
    rt_pod_leave(c);
    return;
  }
  rt_ports_stop(c);
  rt_teardown_vm(c);
  rt_net_teardown(c);
  for (size_t i = 0; i < c->n_nics; i++) net_release(c->rt->cfg.networks, c->nics[i].network, c->id, NULL);
  if (c->sock[0]) unlink(c->sock);
}

static int create_in(rt_container *c, const Vessel__V1__ContainersCreateRequest *req,
                     const oci_platform *plat, img_info *info, vs_err *err) {
  rt_runtime *rt = c->rt;
  if (*req->pod_id && rt_pod_join(c, err) < 0) return -1;
  char hostname[64];
  snprintf(hostname, sizeof hostname, "%.12s", c->id);
  if (!*c->spec->hostname) rt_set_str(&c->spec->hostname, hostname);
  rt_set_str(&c->spec->id, c->id);
  if (info->config.stop_signal && !(c->stop_signal = rt_signal_number(info->config.stop_signal)))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "the image's StopSignal \"%.64s\" is not a signal",
                      info->config.stop_signal);
  Vessel__V1__ProcessSpec *merged =
      rt_merge_spec(req->process, req->entrypoint, &info->config, c->spec->hostname, err);
  if (!merged) return -1;
  if (c->spec->process) protobuf_c_message_free_unpacked(&c->spec->process->base, NULL);
  c->spec->process = merged;
  char logs[4400], cached[4200], key[72];
  snprintf(logs, sizeof logs, "%s/logs", c->dir);
  if (mkdir(c->dir, 0700) < 0 || mkdir(logs, 0700) < 0)
    return vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", c->dir);
  /* The log's rotation is fixed now: vesseld's defaults may change. */
  if (!c->spec->log) {
    if (!(c->spec->log = malloc(sizeof *c->spec->log)))
      return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    vessel__v1__log_config__init(c->spec->log);
  }
  rt_log_limits(c, &c->spec->log->max_size_bytes, &c->spec->log->max_files);
  if (rt_save_spec(c, err) < 0 || rt_save(c, err) < 0) return -1;
  if (!(c->logs = lg_open(logs, c->spec->log->max_size_bytes, c->spec->log->max_files, err)))
    return -1;
  c->init.log = c->logs;
  /* rootfs: the image's cached ext4, copied (reflink or sparse) at boot */
  uint64_t free_bytes = req->rootfs_free_bytes > 0 ? (uint64_t)req->rootfs_free_bytes : 1ull << 30;
  int was_cached;
  if (img_rootfs(rt->cfg.images, req->image, plat, 0, free_bytes, cached, sizeof cached, key,
                 &was_cached, err) < 0)
    return -1;
  if (c->pod) /* its slot of the running pod's VM, then the guest's container */
    return rt_pod_fill_slot(c, cached, err) < 0 || rt_save(c, err) < 0 ? -1
                                                                       : rt_guest_create(c, err);
  if (rt_attach_networks(c, req, err) < 0) return -1;
  if (rt_boot(c, cached, err) < 0) return -1;
  /* Its QEMU and socket are on record before any slow guest work. */
  if (rt_save(c, err) < 0) return -1;
  if (rt_configure_guest(c, err) < 0 || rt_agent_events_start(c, err) < 0) return -1;
  return rt_ports_start(c, err);
}

int rt_create(rt_runtime *rt, const Vessel__V1__ContainersCreateRequest *req, char id_out[128],
              vs_err *err) {
  if (validate(req, err) < 0) return -1;
  oci_platform plat;
  memset(&plat, 0, sizeof plat);
  if (req->platform) {
    snprintf(plat.os, sizeof plat.os, "%s", req->platform->os);
    snprintf(plat.arch, sizeof plat.arch, "%s", req->platform->architecture);
    snprintf(plat.variant, sizeof plat.variant, "%s", req->platform->variant);
  }
  img_info info;
  if (img_inspect(rt->cfg.images, req->image, &plat, &info, err) < 0) return -1;
  char platform[80];
  int emulated;
  oci_platform_format(&info.platform, platform, sizeof platform);
  if (rt_emu_check(rt, platform, &emulated, err) < 0 ||
      (emulated && *req->pod_id &&
       vs_err_set(err, VS_UNIMPLEMENTED, "pod_id: a pod's containers are of the host's platform, "
                                         "not %s", platform) < 0)) {
    img_info_free(&info);
    return -1;
  }
  rt_container *c = rt_container_new(rt);
  if (!c) {
    img_info_free(&info);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  if (*req->id) snprintf(c->id, sizeof c->id, "%s", req->id);
  else rt_random_id(c->id);
  snprintf(c->dir, sizeof c->dir, "%s/containers/%s", rt->root, c->id);
  snprintf(c->image_digest, sizeof c->image_digest, "%s", info.manifest.digest);
  oci_platform_format(&info.platform, c->platform, sizeof c->platform);
  c->state = RT_CREATING;
  rt_now(&c->created_ns);
  const Vessel__V1__Resources *res = req->resources;
  c->vcpus = res && res->milli_cpus > 0 ? (int)((res->milli_cpus + 999) / 1000) : rt->cfg.vcpus;
  /* The VM gets the container's memory limit plus room for the guest kernel. */
  c->memory_mib = res && res->memory_bytes ? (int)(res->memory_bytes >> 20) + GUEST_MIB
                                           : rt->cfg.memory_mib;
  c->spec = (Vessel__V1__ContainersCreateRequest *)rt_copy_msg(&req->base);
  /* Claim the ID (ALREADY_EXISTS) before any slow work; the list holds
   * the reference from here on, and this call one more. */
  if (!c->spec || rt_list_add(rt, c, err) < 0) {
    if (!c->spec) vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    img_info_free(&info);
    rt_put(c);
    return -1;
  }
  rt_ref(c);
  pthread_mutex_lock(&c->op);
  int rc = create_in(c, req, &plat, &info, err);
  img_info_free(&info);
  if (rc < 0) {
    rt_create_undo(c);
  } else {
    pthread_mutex_lock(&c->mu);
    c->state = RT_CREATED;
    rt_save_or_log(c);
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_unlock(&c->op);
  if (rc == 0) {
    rt_emit(c, EVB_CONTAINER_CREATED, NULL, NULL);
    snprintf(id_out, 128, "%s", c->id);
  }
  rt_put(c);
  return rc;
}

/* ---- init's exit ---- */

/* With c->mu held, once init has exited (or the VM went away): the
 * container is stopped. 1 if this call stopped it. */
static int stopped_locked(rt_container *c) {
  if (c->state == RT_STOPPED || c->deleted) return 0;
  c->state = RT_STOPPED;
  c->last_exit = c->init.exit;
  c->has_exit = 1;
  c->finished_ns = c->init.exit.exited_ns;
  rt_save_or_log(c);
  return 1;
}

static void emit_exited(rt_container *c) {
  pthread_mutex_lock(&c->mu);
  rt_exit e = c->last_exit;
  pthread_mutex_unlock(&c->mu);
  rt_emit(c, EVB_CONTAINER_EXITED, NULL, &e);
}

static int delete_in(rt_container *c, int force, vs_err *err);
static void restart_if_due(rt_container *c);

/* Background work of a container (auto_remove, policy restarts) runs on
 * threads of its own (the relay that saw the exit must not join itself),
 * counted in rt->bg: rt_close waits for them. */
int rt_bg_start(rt_container *c, void *(*fn)(void *)) {
  rt_runtime *rt = c->rt;
  rt_ref(c);
  pthread_mutex_lock(&rt->mu);
  rt->bg++;
  pthread_mutex_unlock(&rt->mu);
  if (rt_spawn_detached(fn, c) == 0) return 0;
  vs_log("vesseld", VS_LOG_WARN, "container %s: no thread for its background work", c->id);
  pthread_mutex_lock(&rt->mu);
  rt->bg--;
  pthread_mutex_unlock(&rt->mu);
  rt_put(c);
  return -1;
}

void rt_bg_end(rt_container *c) {
  rt_runtime *rt = c->rt;
  rt_put(c);
  pthread_mutex_lock(&rt->mu);
  rt->bg--;
  pthread_cond_broadcast(&rt->bg_cv);
  pthread_mutex_unlock(&rt->mu);
}

/* auto_remove: a container that stopped is deleted. */
static void *auto_remove_main(void *arg) {
  rt_container *c = arg;
  vs_err err;
  if (delete_in(c, 1, &err) < 0 && err.code != VS_NOT_FOUND) /* (a Stop deleted it first) */
    vs_log("vesseld", VS_LOG_WARN, "container %s: auto_remove failed: %s", c->id, err.msg);
  rt_bg_end(c);
  return NULL;
}

static void auto_remove(rt_container *c) {
  if (c->spec->auto_remove && !rt_closing(c->rt)) rt_bg_start(c, auto_remove_main);
}

/* ---- restart policies ---- */

static const char *policy_of(const rt_container *c) {
  const Vessel__V1__RestartPolicy *rp = c->spec->restart_policy;
  return rp && *rp->name ? rp->name : "no";
}

/* With c->mu held: whether the policy restarts c after its last exit. */
static int policy_wants(const rt_container *c) {
  const char *p = policy_of(c);
  if (c->deleted || c->manual_stop || c->state != RT_STOPPED || !strcmp(p, "no")) return 0;
  if (strcmp(p, "on-failure") != 0) return 1;
  int max = c->spec->restart_policy->max_retries;
  int failed = c->last_exit.code != 0 || c->last_exit.signal != 0;
  return failed && (!max || c->restart_count < max);
}

static int start_in(rt_container *c, int by_policy, vs_err *err);

/* Waits out the delay (vesseld closing ends the wait: the restart stays
 * due, for the next vesseld), then starts c if it is still due. */
static void *restart_main(void *arg) {
  rt_container *c = arg;
  rt_runtime *rt = c->rt;
  pthread_mutex_lock(&c->mu);
  int64_t delay = c->restart_delay_ms;
  pthread_mutex_unlock(&c->mu);
  struct timespec until = rt_deadline(delay);
  pthread_mutex_lock(&rt->mu);
  while (!rt->closing && pthread_cond_timedwait(&rt->bg_cv, &rt->mu, &until) == 0) {
  }
  pthread_mutex_unlock(&rt->mu);
  pthread_mutex_lock(&c->op);
  pthread_mutex_lock(&c->mu);
  int go = !rt_closing(rt) && c->restart_due && policy_wants(c);
  if (go) {
    c->restart_due = 0;
    c->restart_count++;
    rt_save_or_log(c);
  }
  pthread_mutex_unlock(&c->mu);
  vs_err err;
  if (go && start_in(c, 1, &err) < 0) {
    vs_log("vesseld", VS_LOG_WARN, "container %s: restart %d by policy %s failed: %s", c->id,
           c->restart_count, policy_of(c), err.msg);
    pthread_mutex_unlock(&c->op);
    restart_if_due(c); /* the next try, later */
  } else {
    pthread_mutex_unlock(&c->op);
  }
  rt_bg_end(c);
  return NULL;
}

/* With c->mu held: a restart is due if the policy wants one, after the
 * backoff delay (on record: a later vesseld finds it due). 1 if so. */
static int note_restart_locked(rt_container *c) {
  if (rt_closing(c->rt) || !policy_wants(c)) return 0;
  int64_t ran_ms = (c->last_exit.exited_ns - c->started_ns) / 1000000;
  int64_t d = c->restart_delay_ms;
  c->restart_delay_ms = ran_ms >= 10000 || d <= 0 ? 100 : d >= 30000 ? 60000 : 2 * d;
  c->restart_due = 1;
  rt_save_or_log(c);
  return 1;
}

/* After init's exit (or a failed restart): the restart, if due. */
static void restart_if_due(rt_container *c) {
  pthread_mutex_lock(&c->mu);
  int due = note_restart_locked(c);
  pthread_mutex_unlock(&c->mu);
  if (due) rt_bg_start(c, restart_main);
}

/* The relay's report of init's end: the container is stopped before any
 * waiter or attacher hears of it (a Delete right after finds it stopped),
 * then the event goes out and the VM goes (and, with auto_remove, the
 * container). */
static void init_exited(rt_container *c, rt_proc *p, const rt_exit *e) {
  pthread_mutex_lock(&c->mu);
  int stopped = rt_proc_set_exit_locked(p, e) && stopped_locked(c);
  int now = stopped;
  if (stopped && c->starting) { /* rt_start emits it after STARTED */
    c->exit_event_pending = 1;
    now = 0;
  }
  pthread_mutex_unlock(&c->mu);
  rt_proc_wake(p);
  if (stopped && e->oom_killed) rt_agent_events_wait_oom(c, 2000);
  if (now) emit_exited(c);
  rt_teardown_vm(c);
  if (stopped) {
    auto_remove(c);
    restart_if_due(c);
  }
}

/* ---- start / stop / delete ---- */

/* The bridges (and DNS) of c's networks, set up if this vesseld has not yet. */
static int bridge_up(rt_container *c, vs_err *err) {
  for (size_t i = 0; i < c->n_nics; i++) {
    net_network n;
    if (net_get(c->rt->cfg.networks, c->nics[i].network, &n, err) < 0) return -1;
    int rc = rt_net_setup(c->rt, &c->nics[i], &n, err);
    net_network_free(&n);
    if (rc < 0) return -1;
  }
  return 0;
}

/* A stopped container in a pod is created again in the pod's VM over its
 * slot's disk: same ID and logs; CREATED again. */
static int recreate_in_pod(rt_container *c, vs_err *err) {
  rt_container *pod = c->pod;
  pthread_mutex_lock(&pod->mu);
  int up = pod->vm != NULL;
  pthread_mutex_unlock(&pod->mu);
  if (!up)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s: its pod %s is stopped", c->id,
                      pod->id);
  Vessel__V1__AgentDeleteContainerRequest del = VESSEL__V1__AGENT_DELETE_CONTAINER_REQUEST__INIT;
  del.container_id = c->id;
  del.force = 1;
  vs_err ignore; /* (gone already, e.g. after a vesseld restart) */
  rt_agent(c, &vessel_v1_Agent_DeleteContainer, &del.base, NULL, AGENT_TIMEOUT_MS, &ignore);
  rt_proc_reset(c, &c->init);
  pthread_mutex_lock(&pod->events_mu);
  c->oom_seen = 0;
  pthread_mutex_unlock(&pod->events_mu);
  if (rt_guest_create(c, err) < 0) return -1;
  pthread_mutex_lock(&c->mu);
  c->state = RT_CREATED;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

/* A stopped container gets a fresh VM over the root disk it kept: same
 * ID, address, logs; CREATED again. */
static int reboot_in(rt_container *c, vs_err *err) {
  if (c->pod) return recreate_in_pod(c, err);
  char root[4400];
  snprintf(root, sizeof root, "%s/rootfs.ext4", c->dir);
  if (access(root, F_OK) < 0)
    return vs_err_errno(err, VS_FAILED_PRECONDITION, errno, "container %s: root filesystem %s",
                        c->id, root);
  rt_ports_stop(c);
  rt_net_teardown(c); /* the last run's tap */
  rt_proc_reset(c, &c->init);
  pthread_mutex_lock(&c->events_mu);
  c->oom_seen = 0;
  pthread_mutex_unlock(&c->events_mu);
  if (bridge_up(c, err) < 0 || rt_boot(c, NULL, err) < 0) return -1;
  pthread_mutex_lock(&c->mu);
  rt_save_or_log(c); /* its QEMU on record */
  pthread_mutex_unlock(&c->mu);
  if (rt_configure_guest(c, err) < 0 || rt_agent_events_start(c, err) < 0 ||
      rt_ports_start(c, err) < 0) {
    rt_teardown_vm(c);
    return -1;
  }
  pthread_mutex_lock(&c->mu);
  c->state = RT_CREATED;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

/* With c->op held. by_policy: a restart policy's, which keeps the count. */
static int start_in(rt_container *c, int by_policy, vs_err *err) {
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  if (st == RT_STOPPED && !by_policy) {
    c->manual_stop = c->restart_due = c->restart_count = 0;
    c->restart_delay_ms = 0;
  }
  pthread_mutex_unlock(&c->mu);
  if (st == RT_RUNNING)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is already running", c->id);
  if (st != RT_CREATED && st != RT_STOPPED)
    return vs_err_set(err, VS_FAILED_PRECONDITION,
                      "container %s is %s; only a created or stopped container starts", c->id,
                      rt_state_name(st));
  if (*c->spec->pod_id && !c->pod)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s: its pod %s is gone", c->id,
                      c->spec->pod_id);
  if (st == RT_STOPPED && reboot_in(c, err) < 0) return -1;
  pthread_mutex_lock(&c->mu);
  c->starting = 1;
  if (!by_policy) c->manual_stop = 0;
  pthread_mutex_unlock(&c->mu);
  int rc = rt_start_process(c, &c->init, init_exited, err);
  if (rc == 0) {
    pthread_mutex_lock(&c->mu);
    if (!c->init.exited) c->state = RT_RUNNING;
    rt_now(&c->started_ns);
    rt_save_or_log(c);
    pthread_mutex_unlock(&c->mu);
    rt_emit(c, EVB_CONTAINER_STARTED, NULL, NULL);
  }
  /* An init that exited before Start returned: its event follows STARTED. */
  pthread_mutex_lock(&c->mu);
  c->starting = 0;
  int pending = c->exit_event_pending;
  c->exit_event_pending = 0;
  pthread_mutex_unlock(&c->mu);
  if (pending) emit_exited(c);
  if (rc < 0 && st == RT_STOPPED) { /* not run: stopped as before, no VM */
    rt_teardown_vm(c);
    pthread_mutex_lock(&c->mu);
    c->state = RT_STOPPED;
    rt_save_or_log(c);
    pthread_mutex_unlock(&c->mu);
  }
  return rc;
}

int rt_start(rt_runtime *rt, const char *id, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->op);
  int rc = start_in(c, 0, err);
  pthread_mutex_unlock(&c->op);
  rt_put(c);
  return rc;
}

/* 1 once init exited; 0 after ms (-1: never) or when a forced Delete is
 * waiting (the caller kills then); -1 when cancel_fd fired. */
static int wait_exit(rt_container *c, int64_t ms, int cancel_fd) {
  int64_t end = rt_mono_ms() + ms;
  for (;;) {
    int64_t left = ms < 0 ? 250 : end - rt_mono_ms();
    if (left <= 0) return 0;
    struct pollfd pf[2] = {{c->init.exit_fd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    if (poll(pf, cancel_fd >= 0 ? 2 : 1, left > 250 ? 250 : (int)left) > 0) {
      if (pf[0].revents & POLLIN) return 1;
      if (pf[1].revents & POLLIN) return -1;
    }
    pthread_mutex_lock(&c->mu);
    int killing = c->discard_disk;
    pthread_mutex_unlock(&c->mu);
    if (killing) return 0;
  }
}

static void signal_init(rt_container *c, int sig) {
  Vessel__V1__AgentSignalProcessRequest req;
  vessel__v1__agent_signal_process_request__init(&req);
  req.container_id = c->id;
  req.process_id = c->id;
  req.signal = sig;
  vs_err ignore;
  rt_agent(c, &vessel_v1_Agent_SignalProcess, &req.base, NULL, AGENT_TIMEOUT_MS, &ignore);
}

/* With c->op held. */
static int stop_in(rt_container *c, int sig, int64_t timeout_ms, int cancel_fd, rt_exit *out,
                   vs_err *err) {
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  int live = c->init.started && !c->init.exited;
  if (st == RT_RUNNING) c->state = RT_STOPPING;
  int was_manual = c->manual_stop;
  if (st != RT_CREATING) {
    c->manual_stop = 1; /* no policy restarts it */
    c->restart_due = 0;
  }
  pthread_mutex_unlock(&c->mu);
  if (st == RT_CREATING)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is still being created", c->id);
  if (live) {
    if (!sig) sig = c->stop_signal ? c->stop_signal : SIGTERM;
    if (!timeout_ms) timeout_ms = 10000;
    signal_init(c, sig);
    int r = sig == SIGKILL ? 1 : wait_exit(c, timeout_ms, cancel_fd);
    if (r < 0) { /* the caller gave up: the container runs on */
      pthread_mutex_lock(&c->mu);
      if (c->state == RT_STOPPING) c->state = RT_RUNNING;
      c->manual_stop = was_manual;
      pthread_mutex_unlock(&c->mu);
      return vs_err_set(err, VS_CANCELLED, "stop of %s cancelled; it was sent signal %d", c->id, sig);
    }
    if (r == 0) signal_init(c, SIGKILL);
    wait_exit(c, 10000, -1);
  }
  rt_proc_join(&c->init); /* its exit callback stopped the container */
  rt_teardown_vm(c);
  pthread_mutex_lock(&c->mu);
  if (!c->has_exit) { /* never started: stopping just ends the VM */
    c->has_exit = 1;
    rt_now(&c->last_exit.exited_ns);
    c->last_exit.signal = 0;
    snprintf(c->last_exit.reason, sizeof c->last_exit.reason, "stopped before it was started");
  }
  c->state = RT_STOPPED;
  rt_save_or_log(c);
  if (out) *out = c->last_exit;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

int rt_stop(rt_runtime *rt, const char *id, int sig, int64_t timeout_ms, int cancel_fd,
            rt_exit *out, vs_err *err) {
  if (sig < 0 || sig >= NSIG)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "signal %d is out of range (0..%d)", sig, NSIG - 1);
  if (timeout_ms < -1)
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "timeout_ms %lld: use -1 (never kill), 0 (10 s) or a positive value",
                      (long long)timeout_ms);
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->op);
  int rc = stop_in(c, sig, timeout_ms, cancel_fd, out, err);
  pthread_mutex_unlock(&c->op);
  /* auto_remove: also a container stopped before it ran */
  vs_err ignore;
  if (rc == 0 && c->spec->auto_remove) delete_in(c, 1, &ignore);
  rt_put(c);
  return rc;
}

static int delete_in(rt_container *c, int force, vs_err *err) {
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  if (!((st == RT_RUNNING || st == RT_STOPPING || st == RT_CREATED) && !force) &&
      st != RT_CREATING) {
    c->discard_disk = 1; /* a VM still syncing its disk for later need not */
    if (c->sync_call) vrpc_cancel(c->sync_call);
  }
  pthread_mutex_unlock(&c->mu);
  if ((st == RT_RUNNING || st == RT_STOPPING || st == RT_CREATED) && !force)
    return vs_err_set(err, VS_FAILED_PRECONDITION,
                      "container %s is %s; stop it first or delete with force", c->id,
                      rt_state_name(st));
  if (st == RT_CREATING)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is still being created", c->id);
  pthread_mutex_lock(&c->op);
  pthread_mutex_lock(&c->mu);
  int gone = c->deleted; /* deleted meanwhile (auto_remove): nothing left to do */
  pthread_mutex_unlock(&c->mu);
  if (gone) {
    pthread_mutex_unlock(&c->op);
    return vs_err_set(err, VS_NOT_FOUND, "no container %s", c->id);
  }
  int rc = stop_in(c, SIGKILL, 1, -1, NULL, err);
  if (rc == 0) {
    pthread_mutex_lock(&c->mu);
    c->deleted = 1;
    pthread_mutex_unlock(&c->mu);
    rt_list_remove(c->rt, c);
    rt_release_host(c);
    /* Its log goes now, not when the last attacher lets go. */
    pthread_mutex_lock(&c->init.out_mu);
    c->init.log = NULL;
    pthread_mutex_unlock(&c->init.out_mu);
    lg_close(c->logs);
    c->logs = NULL;
    vs_rm_rf(c->dir);
  }
  pthread_mutex_unlock(&c->op);
  if (rc == 0) rt_emit(c, EVB_CONTAINER_DELETED, NULL, NULL);
  return rc;
}

int rt_delete(rt_runtime *rt, const char *id, int force, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  int rc = delete_in(c, force, err);
  rt_put(c); /* attachers may still hold it: the last put frees it */
  return rc;
}

/* ---- open / close ---- */

/* A container whose VM did not survive vesseld's absence. */
static void mark_lost(rt_container *c, const char *why) {
  pthread_mutex_lock(&c->mu);
  c->state = RT_STOPPED;
  c->has_exit = 1;
  c->last_exit.code = -1;
  rt_now(&c->last_exit.exited_ns);
  c->finished_ns = c->last_exit.exited_ns;
  snprintf(c->last_exit.reason, sizeof c->last_exit.reason, "%s", why);
  note_restart_locked(c); /* resume_restarts starts it */
  rt_save_or_log(c);
  rt_exit e = c->last_exit;
  pthread_mutex_unlock(&c->mu);
  rt_emit(c, c->is_pod ? EVB_POD_STOPPED : EVB_CONTAINER_EXITED, NULL, &e);
}

/* A VM that outlived the previous vesseld: its agent connected again and
 * init's output relayed again. One whose QEMU is gone becomes stopped. */
static void readopt(rt_container *c) {
  vs_err err;
  if (*c->spec->pod_id) { /* its pod's VM, re-adopted first */
    int up = 0;
    if (c->pod) {
      pthread_mutex_lock(&c->pod->mu);
      up = c->pod->vm != NULL;
      pthread_mutex_unlock(&c->pod->mu);
    }
    if (!up) {
      mark_lost(c, "its pod's VM died while vesseld was not running");
      return;
    }
  } else if (rt_readopt_vm(c, &err) < 0) {
    vs_log("vesseld", VS_LOG_WARN, "container %s: VM not re-adopted: %s", c->id, err.msg);
    mark_lost(c, "the VM died while vesseld was not running");
    return;
  }
  if (c->state == RT_RUNNING && !c->is_pod) {
    c->init.started = 1;
    if (rt_proc_open_stdio(c, &c->init, init_exited, &err) < 0) {
      rt_teardown_vm(c);
      mark_lost(c, "could not re-attach to the VM after a vesseld restart");
      return;
    }
  }
  if (c->pod) return;
  if (bridge_up(c, &err) < 0 || rt_agent_events_start(c, &err) < 0 || rt_ports_start(c, &err) < 0)
    vs_log("vesseld", VS_LOG_WARN, "container %s after restart: %s", c->id, err.msg);
}

/* At start: restarts that were due when the last vesseld ended (or since:
 * a VM lost meanwhile), and "always" containers stopped by Stop (as
 * Docker's daemon start does). */
static void resume_restarts(rt_runtime *rt) {
  size_t n;
  rt_container **all = rt_get_all(rt, &n);
  for (size_t i = 0; i < n; i++) {
    rt_container *c = all[i];
    pthread_mutex_lock(&c->mu);
    if (c->state == RT_STOPPED && c->manual_stop && !strcmp(policy_of(c), "always")) {
      c->manual_stop = 0;
      c->restart_due = 1;
      c->restart_delay_ms = 0;
    }
    int due = c->state == RT_STOPPED && c->restart_due;
    pthread_mutex_unlock(&c->mu);
    if (due) rt_bg_start(c, restart_main);
  }
  rt_put_all(all, n);
}

rt_runtime *rt_open(const rt_config *cfg, vs_err *err) {
  rt_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  rt->cfg = *cfg;
  if (!rt->cfg.vcpus) rt->cfg.vcpus = 1;
  if (!rt->cfg.memory_mib) rt->cfg.memory_mib = 256;
  snprintf(rt->root, sizeof rt->root, "%s", cfg->root);
  pthread_mutex_init(&rt->mu, NULL);
  pthread_mutex_init(&rt->emu_mu, NULL);
  pthread_cond_init(&rt->bg_cv, NULL);
  rt->trace_fd = -1;
  if (cfg->trace_agent_calls &&
      (rt->trace_fd = open(cfg->trace_agent_calls, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                           0600)) < 0) {
    vs_err_errno(err, VS_INVALID_ARGUMENT, errno, "--trace-agent-calls %s", cfg->trace_agent_calls);
    rt_close(rt);
    return NULL;
  }
  char run[4200];
  snprintf(run, sizeof run, "%s/run", rt->root);
  rt_container **again = NULL;
  size_t n_again = 0;
  if (rt_metrics_open(rt, err) < 0 || vs_mkdir_p(run, 0700, err) < 0 || rt_ports_open(rt, err) < 0 ||
      rt_dns_open(rt, err) < 0 || rt_load(rt, &again, &n_again, err) < 0) {
    rt_close(rt);
    return NULL;
  }
  /* Containers in pods find their pods; pods are re-adopted first. */
  size_t n_all;
  rt_container **all = rt_get_all(rt, &n_all);
  for (size_t i = 0; i < n_all; i++)
    if (*all[i]->spec->pod_id && rt_pod_relink(all[i]) < 0)
      vs_log("vesseld", VS_LOG_WARN, "container %s: its pod %s is gone", all[i]->id,
             all[i]->spec->pod_id);
  rt_put_all(all, n_all);
  for (int pods = 1; pods >= 0; pods--)
    for (size_t i = 0; i < n_again; i++)
      if (again[i]->is_pod == pods) readopt(again[i]);
  rt_put_all(again, n_again);
  resume_restarts(rt);
  /* Every QEMU on record is a container's by now, or nobody's: ended. */
  rt_reap_orphans(rt);
  if (rt_upkeep_open(rt, err) < 0 || rt_pool_open(rt, err) < 0 || rt_metrics_collect(rt, err) < 0) {
    rt_close(rt);
    return NULL;
  }
  return rt;
}

void rt_close(rt_runtime *rt) {
  if (!rt) return;
  /* Background work ends first: waiting restarts at once (still due for
   * the next vesseld), a restart or auto-removal under way when done. */
  pthread_mutex_lock(&rt->mu);
  __atomic_store_n(&rt->closing, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&rt->bg_cv);
  while (rt->bg) pthread_cond_wait(&rt->bg_cv, &rt->mu);
  pthread_mutex_unlock(&rt->mu);
  rt_pool_close(rt);
  rt_upkeep_close(rt);
  /* Running VMs stay running: their relays end (streams first, the channel
   * after) and the connection is dropped. A restarted vesseld re-adopts
   * them. */
  size_t n;
  rt_container **all = rt_get_all(rt, &n);
  for (size_t i = 0; i < n; i++) {
    rt_ports_stop(all[i]);
    rt_detach_vm(all[i]);
    rt_list_remove(rt, all[i]);
  }
  rt_put_all(all, n);
  rt_ports_close(rt);
  dns_close(rt->dns);
  free(rt->list);
  if (rt->trace_fd >= 0) close(rt->trace_fd);
  pthread_cond_destroy(&rt->bg_cv);
  pthread_mutex_destroy(&rt->mu);
  pthread_mutex_destroy(&rt->emu_mu);
  free(rt);
}

/* ---- queries ---- */

void rt_log_limits(const rt_container *c, int64_t *max_bytes, int32_t *max_files) {
  const Vessel__V1__LogConfig *lc = c->spec->log;
  const rt_config *cfg = &c->rt->cfg;
  *max_bytes = lc && lc->max_size_bytes > 0 ? lc->max_size_bytes
               : cfg->log_max_bytes > 0     ? cfg->log_max_bytes
                                            : LG_DEFAULT_MAX_BYTES;
  *max_files = lc && lc->max_files > 0 ? lc->max_files
               : cfg->log_max_files > 0 ? cfg->log_max_files
                                        : LG_DEFAULT_MAX_FILES;
}

int rt_log_dir(rt_runtime *rt, const char *id, char *buf, size_t n, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  snprintf(buf, n, "%s/logs", c->dir);
  rt_put(c);
  return 0;
}

int rt_log_cri(rt_runtime *rt, const char *id, const char *path, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->op); /* (c->logs goes with a delete) */
  int rc = c->logs ? lg_set_cri_path(c->logs, path, err)
                   : vs_err_set(err, VS_NOT_FOUND, "no container %s", id);
  if (rc == 0) {
    pthread_mutex_lock(&c->mu);
    snprintf(c->cri_log, sizeof c->cri_log, "%s", path ? path : "");
    rc = rt_save(c, err);
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_unlock(&c->op);
  rt_put(c);
  return rc;
}

int rt_log_cri_reopen(rt_runtime *rt, const char *id, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->op);
  int rc = c->logs ? lg_reopen_cri(c->logs, err) : vs_err_set(err, VS_NOT_FOUND, "no container %s", id);
  pthread_mutex_unlock(&c->op);
  rt_put(c);
  return rc;
}

int rt_running(rt_runtime *rt, const char *id) {
  rt_container *c = rt_get(rt, id, NULL);
  if (!c) return 0;
  pthread_mutex_lock(&c->mu);
  int r = c->init.started && !c->init.exited;
  pthread_mutex_unlock(&c->mu);
  rt_put(c);
  return r;
}

void rt_counts(rt_runtime *rt, uint32_t *total, uint32_t *running, uint32_t *created,
               uint32_t *stopped) {
  *total = *running = *created = *stopped = 0;
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n; i++) {
    if (rt->list[i]->is_pod) continue;
    pthread_mutex_lock(&rt->list[i]->mu);
    rt_state s = rt->list[i]->state;
    pthread_mutex_unlock(&rt->list[i]->mu);
    (*total)++;
    if (s == RT_RUNNING) (*running)++;
    else if (s == RT_CREATED || s == RT_CREATING) (*created)++;
    else (*stopped)++;
  }
  pthread_mutex_unlock(&rt->mu);
}

static int stats_in(rt_container *c, ProtobufCMessage **stats, vs_err *err) {
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  pthread_mutex_unlock(&c->mu);
  if (st != RT_RUNNING)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is %s, not running", c->id,
                      rt_state_name(st));
  Vessel__V1__AgentStatisticsRequest req;
  vessel__v1__agent_statistics_request__init(&req);
  char *ids[1] = {c->id};
  req.container_ids = ids;
  req.n_container_ids = 1;
  ProtobufCMessage *resp;
  if (rt_agent(c, &vessel_v1_Agent_Statistics, &req.base, &resp, AGENT_TIMEOUT_MS, err) < 0)
    return -1;
  Vessel__V1__AgentStatisticsResponse *r = (Vessel__V1__AgentStatisticsResponse *)resp;
  int rc = 0;
  if (!r->n_statistics) rc = vs_err_set(err, VS_INTERNAL, "agent returned no statistics for %s", c->id);
  else *stats = rt_copy_msg(&r->statistics[0]->base);
  vrpc_msg_free(resp);
  return rc;
}

static int update_in(rt_container *c, const Vessel__V1__Resources *res, vs_err *err) {
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  pthread_mutex_unlock(&c->mu);
  if (st != RT_CREATED && st != RT_RUNNING)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is %s; only a created or running one "
                      "is updated", c->id, rt_state_name(st));
  if (res->milli_cpus < 0 || res->memory_bytes < 0 || res->pids_max < 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "resources must not be negative");
  const rt_container *h = rt_vm_host(c); /* its VM's size */
  if (res->memory_bytes > (int64_t)h->memory_mib << 20)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "memory_bytes %lld: the VM has %d MiB",
                      (long long)res->memory_bytes, h->memory_mib);
  if (res->milli_cpus > (int64_t)h->vcpus * 1000)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "milli_cpus %lld: the VM has %d vCPUs",
                      (long long)res->milli_cpus, h->vcpus);
  Vessel__V1__AgentUpdateContainerRequest req = VESSEL__V1__AGENT_UPDATE_CONTAINER_REQUEST__INIT;
  req.container_id = c->id;
  req.resources = (Vessel__V1__Resources *)res;
  if (rt_agent(c, &vessel_v1_Agent_UpdateContainer, &req.base, NULL, AGENT_TIMEOUT_MS, err) < 0)
    return -1;
  Vessel__V1__Resources *copy = (Vessel__V1__Resources *)rt_copy_msg(&res->base);
  if (!copy) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  pthread_mutex_lock(&c->mu);
  if (c->spec->resources) protobuf_c_message_free_unpacked(&c->spec->resources->base, NULL);
  c->spec->resources = copy;
  pthread_mutex_unlock(&c->mu);
  return rt_save_spec(c, err);
}

int rt_update(rt_runtime *rt, const char *id, const Vessel__V1__Resources *res, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->op);
  int rc = update_in(c, res, err);
  pthread_mutex_unlock(&c->op);
  rt_put(c);
  return rc;
}

int rt_stats(rt_runtime *rt, const char *id, ProtobufCMessage **stats, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  int rc = stats_in(c, stats, err);
  rt_put(c);
  return rc;
}
