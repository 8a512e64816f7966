/* Container lifecycle: create (rootfs copy, network, VM boot, agent
 * CreateContainer), start, exec, signal, wait, stop, delete, and the state
 * kept on disk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/vs_fs.h"
#include "server/ext4/ext4.h"
#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

#define BOOT_TIMEOUT_MS 60000

void rt_now(int64_t *ns) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  *ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void emit(rt_container *c, int type, const char *exec_id, const rt_exit *e) {
  evb_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  snprintf(ev.container_id, sizeof ev.container_id, "%s", c->id);
  snprintf(ev.process_id, sizeof ev.process_id, "%s", exec_id ? exec_id : "");
  if (type == EVB_CONTAINER_CREATED && c->spec)
    snprintf(ev.image, sizeof ev.image, "%s", c->spec->image);
  if (e) {
    ev.has_exit = 1;
    ev.exit_code = e->code;
    ev.exit_signal = e->signal;
    ev.oom_killed = e->oom_killed;
    ev.exited_ns = e->exited_ns;
    snprintf(ev.reason, sizeof ev.reason, "%s", e->reason);
  }
  evb_publish(c->rt->cfg.events, &ev);
}

/* ---- persistence ---- */

static const char *state_name(rt_state s) {
  static const char *const n[] = {"", "creating", "created", "running", "stopping", "stopped"};
  return s >= RT_CREATING && s <= RT_STOPPED ? n[s] : "unknown";
}

/* state.json beside spec.pb; temp file + rename. Called with c->mu held or
 * before c is shared. */
int rt_save(rt_container *c, vs_err *err) {
  json_t *j = json_pack(
      "{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:i,s:i,s:I,s:i,s:i}", "id", c->id, "state",
      state_name(c->state), "image_digest", c->image_digest, "created_ns", (json_int_t)c->created_ns,
      "started_ns", (json_int_t)c->started_ns, "finished_ns", (json_int_t)c->finished_ns,
      "network", c->network, "ip", c->ip, "mac", c->mac, "gateway", c->gateway, "platform",
      c->platform, "prefix", c->prefix, "qemu_pid", c->qemu_pid, "boot_ms", (json_int_t)c->boot_ms,
      "vcpus", c->vcpus, "memory_mib", c->memory_mib);
  json_object_set_new(j, "init_pid", json_integer(c->init.pid));
  json_object_set_new(j, "agent_socket", json_string(c->sock));
  json_object_set_new(j, "tap", json_string(c->tap));
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

static int save_spec(rt_container *c, vs_err *err) {
  size_t n = protobuf_c_message_get_packed_size(&c->spec->base);
  uint8_t *buf = malloc(n ? n : 1);
  protobuf_c_message_pack(&c->spec->base, buf);
  char p[4400];
  snprintf(p, sizeof p, "%s/spec.pb", c->dir);
  int rc = vs_write_atomic(p, buf, n, 0600, err);
  free(buf);
  return rc;
}

/* ---- lookup ---- */

static int valid_id(const char *id) { return vs_valid_name(id, 127); }

rt_container *rt_find(rt_runtime *rt, const char *id, vs_err *err) {
  pthread_mutex_lock(&rt->mu);
  rt_container *found = NULL;
  for (size_t i = 0; i < rt->n && !found; i++)
    if (!strcmp(rt->list[i]->id, id)) found = rt->list[i];
  /* An unambiguous ID prefix names a container too (like docker). */
  for (size_t i = 0; i < rt->n && !found && strlen(id) >= 4; i++)
    if (!strncmp(rt->list[i]->id, id, strlen(id))) {
      for (size_t k = i + 1; k < rt->n; k++)
        if (!strncmp(rt->list[k]->id, id, strlen(id))) goto ambiguous;
      found = rt->list[i];
    }
  pthread_mutex_unlock(&rt->mu);
  if (!found) vs_err_set(err, VS_NOT_FOUND, "no container %s", id);
  return found;
ambiguous:
  pthread_mutex_unlock(&rt->mu);
  vs_err_set(err, VS_FAILED_PRECONDITION, "container ID prefix %s is ambiguous", id);
  return NULL;
}

int rt_agent(rt_container *c, const vrpc_method *m, const ProtobufCMessage *req,
             ProtobufCMessage **resp, int64_t timeout_ms, vs_err *err) {
  pthread_rwlock_rdlock(&c->vm_lock);
  pthread_mutex_lock(&c->mu);
  vrpc_channel *ch = c->vm ? vm_channel(c->vm) : NULL;
  pthread_mutex_unlock(&c->mu);
  int rc;
  ProtobufCMessage *r = NULL;
  if (!ch) {
    rc = vs_err_set(err, VS_UNAVAILABLE, "container %s has no running VM", c->id);
  } else {
    vrpc_call_opts o = {timeout_ms, NULL};
    rc = vrpc_unary(ch, m, req, &r, &o, err);
  }
  pthread_rwlock_unlock(&c->vm_lock);
  if (resp) *resp = r;
  else vrpc_msg_free(r);
  return rc;
}

/* ---- VM ---- */



/* The tap of a VM booted for c (a spare's has its own name); interface
 * names are at most 15 bytes: "vt" + 12 hex digits. */
static void tap_name(rt_container *c) {
  char d[72];
  oci_sha256_bytes(c->id, strlen(c->id), d);
  snprintf(c->tap, sizeof c->tap, "vt%.12s", d + 7);
}

/* The agent socket of a VM booted for c (a spare's has its own name). */
static void sock_path(rt_container *c, char *buf, size_t n) {
  char d[72];
  oci_sha256_bytes(c->id, strlen(c->id), d);
  snprintf(buf, n, "%s/run/%.16s.sock", c->rt->root, d + 7);
}

void rt_vm_config(rt_runtime *rt, vm_config *vc, int vcpus, int memory_mib, const char *disk,
                  const char *agent_socket, const char *console) {
  memset(vc, 0, sizeof *vc);
  vc->qemu = rt->cfg.qemu;
  vc->kernel = rt->cfg.kernel;
  vc->initrd = rt->cfg.initrd;
  vc->vcpus = vcpus;
  vc->memory_mib = memory_mib;
  vc->root_disk = disk;
  vc->agent_socket = agent_socket;
  vc->console_log = console;
}

/* The VM of c, with rootfs_src (the image's cached ext4) copied as its
 * root disk: a warm spare when one of its kind is ready, else restored from
 * a template, else (and whenever those fail) a cold boot. */
static int boot(rt_container *c, const char *rootfs_src, vs_err *err) {
  rt_runtime *rt = c->rt;
  char root[4400], console[4400];
  snprintf(root, sizeof root, "%s/rootfs.ext4", c->dir);
  snprintf(console, sizeof console, "%s/console.log", c->dir);
  vm_share shares[16];
  char tags[16][24];
  size_t n_shares = 0;
  for (size_t i = 0; i < c->spec->n_mounts && n_shares < 16; i++) {
    const Vessel__V1__Mount *m = c->spec->mounts[i];
    if (strcmp(m->type, "bind") && *m->type) continue;
    int ro = 0;
    for (size_t k = 0; k < m->n_options; k++) ro |= !strcmp(m->options[k], "ro");
    snprintf(tags[n_shares], sizeof tags[0], "vol%zu", i);
    shares[n_shares].path = m->source;
    shares[n_shares].tag = tags[n_shares];
    shares[n_shares].read_only = ro;
    n_shares++;
  }
  int with_nic = c->network[0] != 0;
  /* Not with volumes: their devices are not in a template. */
  int templ = !c->spec->no_template && !n_shares;
  rt_template t;
  c->from_template = 0;
  if (templ) {
    rt_template_paths(c, with_nic, &t);
    rt_spare *s = rt_spare_take(rt, &t);
    int64_t t0;
    rt_now(&t0);
    vs_err serr;
    if (s && rt_spare_claim(c, s, rootfs_src, root, console, &serr) == 0) {
      int64_t t1;
      rt_now(&t1);
      c->from_template = 1;
      c->qemu_pid = vm_pid(c->vm);
      c->boot_ms = (t1 - t0) / 1000000;
      rt_spare_refill(rt, &t);
      return 0;
    }
  }
  if (rfs_copy_writable(rootfs_src, root, err) < 0) return -1;
  sock_path(c, c->sock, sizeof c->sock);
  unlink(c->sock);
  if (with_nic) {
    tap_name(c);
    if (rt_tap_create(c->tap, c->bridge, err) < 0) {
      c->tap[0] = '\0';
      return -1;
    }
  }
  vm_config vc;
  rt_vm_config(rt, &vc, c->vcpus, c->memory_mib, root, c->sock, console);
  vc.tap = with_nic ? c->tap : NULL;
  vc.mac = with_nic ? c->mac : NULL;
  vc.shares = shares;
  vc.n_shares = n_shares;
  /* A failed restore falls back to a cold boot. */
  if (templ && rt_template_ready(c, &t)) {
    vm_config tc = vc;
    tc.incoming = t.state;
    tc.mac = with_nic ? rt_template_mac() : NULL; /* the guest gets c->mac after */
    vs_err terr;
    c->vm = vm_start(&tc, &terr);
    if (c->vm && vm_wait_ready(c->vm, 10000, &terr) == 0 &&
        rt_guest_refresh(vm_channel(c->vm), &terr) == 0) {
      c->from_template = 1;
      c->qemu_pid = vm_pid(c->vm);
      c->boot_ms = vm_ready_ms(c->vm);
      rt_spare_refill(rt, &t);
      return 0;
    }
    if (c->vm) {
      vm_kill(c->vm);
      vm_free(c->vm);
      c->vm = NULL;
    }
    unlink(c->sock);
  }
  c->vm = vm_start(&vc, err);
  if (!c->vm) return -1;
  if (vm_wait_ready(c->vm, BOOT_TIMEOUT_MS, err) < 0) {
    vm_kill(c->vm);
    vm_free(c->vm);
    c->vm = NULL;
    return vs_err_wrap(err, "boot VM of %s", c->id);
  }
  c->qemu_pid = vm_pid(c->vm);
  c->boot_ms = vm_ready_ms(c->vm);
  return 0;
}

/* Agent.Sync before the VM ends, so a stopped container's disk has its
 * writes; a Delete cancels it (the disk goes anyway: no need to wait). 0
 * when synced or no longer needed. */
static int sync_guest(rt_container *c, vm *v) {
  vs_err e;
  vrpc_call_opts o = {5000, NULL};
  vrpc_call *call = vm_channel(v) ? vrpc_call_start(vm_channel(v), &vessel_v1_Agent_Sync, &o, &e) : NULL;
  if (!call) return -1;
  pthread_mutex_lock(&c->mu);
  int discard = c->discard_disk;
  if (!discard) c->sync_call = call;
  pthread_mutex_unlock(&c->mu);
  int rc = 0;
  if (!discard) {
    Vessel__V1__AgentSyncRequest req;
    vessel__v1__agent_sync_request__init(&req);
    ProtobufCMessage *r = NULL;
    rc = vrpc_send(call, &req.base, &e) == 0 && vrpc_close_send(call, &e) == 0 &&
                 vrpc_recv(call, &r, &e) == 1
             ? 0
             : -1;
    vrpc_msg_free(r);
    pthread_mutex_lock(&c->mu);
    c->sync_call = NULL;
    if (c->discard_disk) rc = 0;
    pthread_mutex_unlock(&c->mu);
  }
  vrpc_call_free(call);
  return rc;
}

void rt_teardown_vm(rt_container *c) {
  pthread_mutex_lock(&c->mu);
  vm *v = c->vm;
  c->vm = NULL;
  c->qemu_pid = 0;
  pthread_mutex_unlock(&c->mu);
  if (!v) return;
  /* streams on the VM's channel end first: execs, the events relay */
  for (rt_proc *p = c->execs; p; p = p->next) rt_proc_join(p);
  rt_agent_events_stop(c);
  pthread_rwlock_wrlock(&c->vm_lock); /* no agent call in flight any more */
  pthread_rwlock_unlock(&c->vm_lock);
  /* Nothing runs in the VM any more: flush the guest's writes to the root
   * disk, then end QEMU (a full guest power-off costs more under TCG). */
  vs_err ignore;
  if (sync_guest(c, v) == 0) vm_kill(v);
  else if (vm_stop(v, 5000, &ignore) < 0) vm_kill(v);
  vm_free(v);
}


/* The guest side of a booted VM: eth0 and the container itself. */
static int configure_guest(rt_container *c, vs_err *err) {
  if (c->ip[0]) {
    Vessel__V1__NetworkInterface nif;
    vessel__v1__network_interface__init(&nif);
    char addr[40];
    snprintf(addr, sizeof addr, "%s/%d", c->ip, c->prefix);
    char *addrs[1] = {addr};
    nif.name = (char *)"eth0";
    nif.mac = c->mac;
    nif.addresses = addrs;
    nif.n_addresses = 1;
    nif.gateway_v4 = c->gateway;
    Vessel__V1__AgentConfigureInterfaceRequest req;
    vessel__v1__agent_configure_interface_request__init(&req);
    req.interface = &nif;
    if (rt_agent(c, &vessel_v1_Agent_ConfigureInterface, &req.base, NULL, AGENT_TIMEOUT_MS, err) < 0)
      return vs_err_wrap(err, "configure eth0");
  }
  Vessel__V1__Mount rootfs;
  vessel__v1__mount__init(&rootfs);
  rootfs.type = (char *)"ext4";
  rootfs.source = (char *)"/dev/vda";
  Vessel__V1__AgentCreateContainerRequest req;
  vessel__v1__agent_create_container_request__init(&req);
  req.container_id = c->id;
  req.rootfs = &rootfs;
  /* Host directories arrive as 9p shares tagged vol<i> (see boot). */
  Vessel__V1__Mount guest[64], *gp[64];
  char *opts[64][4];
  char tags[64][16];
  size_t nm = c->spec->n_mounts < 64 ? c->spec->n_mounts : 64;
  for (size_t i = 0; i < nm; i++) {
    const Vessel__V1__Mount *m = c->spec->mounts[i];
    guest[i] = *m;
    gp[i] = &guest[i];
    if (strcmp(m->type, "bind") && *m->type) continue;
    int ro = 0;
    for (size_t k = 0; k < m->n_options; k++) ro |= !strcmp(m->options[k], "ro");
    snprintf(tags[i], sizeof tags[i], "vol%zu", i);
    opts[i][0] = (char *)"trans=virtio";
    opts[i][1] = (char *)"version=9p2000.L";
    opts[i][2] = (char *)"msize=262144";
    opts[i][3] = (char *)"ro";
    guest[i].type = (char *)"9p";
    guest[i].source = tags[i];
    guest[i].options = opts[i];
    guest[i].n_options = ro ? 4 : 3;
  }
  req.mounts = gp;
  req.n_mounts = nm;
  req.hostname = c->spec->hostname;
  req.dns = c->spec->dns;
  req.hosts = c->spec->extra_hosts;
  req.n_hosts = c->spec->n_extra_hosts;
  req.resources = c->spec->resources;
  req.n_sysctls = c->spec->n_sysctls;
  req.sysctls = (Vessel__V1__AgentCreateContainerRequest__SysctlsEntry **)c->spec->sysctls;
  req.process = c->spec->process;
  return rt_agent(c, &vessel_v1_Agent_CreateContainer, &req.base, NULL, AGENT_TIMEOUT_MS, err);
}

/* ---- create ---- */

static void random_id(char out[128]) {
  unsigned char b[16];
  FILE *f = fopen("/dev/urandom", "rb");
  if (!f || fread(b, 1, sizeof b, f) != sizeof b) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    memcpy(b, &ts, sizeof b < sizeof ts ? sizeof b : sizeof ts);
  }
  if (f) fclose(f);
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static rt_container *container_new(rt_runtime *rt) {
  rt_container *c = calloc(1, sizeof *c);
  c->rt = rt;
  pthread_mutex_init(&c->mu, NULL);
  pthread_mutex_init(&c->op, NULL);
  pthread_rwlock_init(&c->vm_lock, NULL);
  pthread_mutex_init(&c->events_mu, NULL);
  rt_proc_init(&c->init, "");
  return c;
}

static void container_free(rt_container *c) {
  if (!c) return;
  rt_proc_free(&c->init);
  for (rt_proc *p = c->execs; p;) {
    rt_proc *n = p->next;
    rt_proc_free(p);
    free(p);
    p = n;
  }
  lg_close(c->logs);
  if (c->spec) protobuf_c_message_free_unpacked(&c->spec->base, NULL);
  pthread_mutex_destroy(&c->mu);
  pthread_mutex_destroy(&c->op);
  pthread_rwlock_destroy(&c->vm_lock);
  pthread_mutex_destroy(&c->events_mu);
  free(c);
}

static void list_remove(rt_runtime *rt, rt_container *c) {
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n; i++)
    if (rt->list[i] == c) {
      memmove(&rt->list[i], &rt->list[i + 1], (rt->n - i - 1) * sizeof *rt->list);
      rt->n--;
      break;
    }
  pthread_mutex_unlock(&rt->mu);
}

static int validate(const Vessel__V1__ContainersCreateRequest *req, vs_err *err) {
  if (!*req->image) return vs_err_set(err, VS_INVALID_ARGUMENT, "create needs an image");
  if (*req->id && !valid_id(req->id))
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
      if (stat(m->source, &st) < 0 || !S_ISDIR(st.st_mode))
        return vs_err_set(err, VS_INVALID_ARGUMENT, "volume %s: host path %s is not a directory",
                          m->destination, m->source);
    } else if (strcmp(m->type, "tmpfs") != 0) {
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "mount %s: type \"%s\" (use \"bind\" for a host directory or \"tmpfs\")",
                        m->destination, m->type);
    }
  }
  for (size_t i = 0; i < req->n_ports; i++) {
    const Vessel__V1__PortMapping *m = req->ports[i];
    if (m->protocol == VESSEL__V1__PORT_PROTOCOL__PORT_PROTOCOL_UDP)
      return vs_err_set(err, VS_UNIMPLEMENTED, "UDP port publishing is not supported yet");
    if (!m->container_port || m->container_port > 65535 || m->host_port > 65535)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "port mapping %u->%u: ports are 1..65535",
                        m->host_port, m->container_port);
  }
  if (req->n_networks > 1)
    return vs_err_set(err, VS_UNIMPLEMENTED, "more than one network is not supported yet");
  if (*req->kernel && strcmp(req->kernel, "optimized") != 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "kernel \"%s\": this vesseld offers \"optimized\"",
                      req->kernel);
  return 0;
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

  rt_container *c = container_new(rt);
  if (*req->id)
    snprintf(c->id, sizeof c->id, "%s", req->id);
  else
    random_id(c->id);
  snprintf(c->dir, sizeof c->dir, "%s/containers/%s", rt->root, c->id);
  snprintf(c->image_digest, sizeof c->image_digest, "%s", info.manifest.digest);
  oci_platform_format(&info.platform, c->platform, sizeof c->platform);
  c->state = RT_CREATING;
  rt_now(&c->created_ns);
  const Vessel__V1__Resources *res = req->resources;
  c->vcpus = res && res->milli_cpus > 0 ? (int)((res->milli_cpus + 999) / 1000) : rt->cfg.vcpus;
  /* The VM gets the container's memory limit plus room for the guest kernel. */
  c->memory_mib = res && res->memory_bytes ? (int)(res->memory_bytes >> 20) + 64 : rt->cfg.memory_mib;

  /* Claim the ID (ALREADY_EXISTS) before any slow work. */
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n; i++)
    if (!strcmp(rt->list[i]->id, c->id)) {
      pthread_mutex_unlock(&rt->mu);
      vs_err_set(err, VS_ALREADY_EXISTS, "a container named %s exists", c->id);
      img_info_free(&info);
      container_free(c);
      return -1;
    }
  rt_container **l = realloc(rt->list, (rt->n + 1) * sizeof *l);
  if (l) {
    rt->list = l;
    rt->list[rt->n++] = c;
  }
  pthread_mutex_unlock(&rt->mu);
  pthread_mutex_lock(&c->op);

  int rc = 0;
  char hostname[64];
  snprintf(hostname, sizeof hostname, "%.12s", c->id);
  c->spec = (Vessel__V1__ContainersCreateRequest *)rt_copy_msg(&req->base);
  if (!*c->spec->hostname) rt_set_str(&c->spec->hostname, hostname);
  rt_set_str(&c->spec->id, c->id);
  Vessel__V1__ProcessSpec *merged =
      rt_merge_spec(req->process, req->entrypoint, &info.config, c->spec->hostname, err);
  if (!merged) rc = -1;
  else {
    if (c->spec->process) protobuf_c_message_free_unpacked(&c->spec->process->base, NULL);
    c->spec->process = merged;
  }
  char logs[4400], cached[4200], key[72];
  int was_cached;
  if (rc == 0 && (mkdir(c->dir, 0700) < 0 ||
                  (snprintf(logs, sizeof logs, "%s/logs", c->dir), mkdir(logs, 0700) < 0)))
    rc = vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", c->dir);
  if (rc == 0) rc = save_spec(c, err);
  if (rc == 0) rc = rt_save(c, err);
  if (rc == 0 && !(c->logs = lg_open(logs, 0, 0, err))) rc = -1;
  /* rootfs: the image's cached ext4, copied (reflink or sparse) at boot */
  uint64_t free_bytes = req->rootfs_free_bytes > 0 ? (uint64_t)req->rootfs_free_bytes : 1ull << 30;
  if (rc == 0)
    rc = img_rootfs(rt->cfg.images, req->image, &plat, 0, free_bytes, cached, sizeof cached, key,
                    &was_cached, err);
  /* network */
  const char *netname = req->n_networks ? req->networks[0]->network : NET_DEFAULT;
  if (rc == 0 && strcmp(netname, "none") != 0) {
    net_network n;
    net_lease lease;
    if (net_get(rt->cfg.networks, netname, &n, err) < 0) {
      rc = -1;
    } else {
      const char *want = req->n_networks ? req->networks[0]->ip_address : "";
      rc = net_allocate(rt->cfg.networks, netname, c->id, want, &lease, err);
      if (rc == 0) {
        snprintf(c->network, sizeof c->network, "%s", netname);
        snprintf(c->ip, sizeof c->ip, "%s", lease.ip);
        snprintf(c->mac, sizeof c->mac, "%s",
                 req->n_networks && *req->networks[0]->mac_address ? req->networks[0]->mac_address
                                                                   : lease.mac);
        snprintf(c->gateway, sizeof c->gateway, "%s", n.gateway);
        c->prefix = net_prefix_len(n.subnet);
        rc = rt_net_setup(c, &n, err);
      }
      net_network_free(&n);
    }
  }
  char runs[4200];
  snprintf(runs, sizeof runs, "%s/run", rt->root);
  mkdir(runs, 0700);
  if (rc == 0) rc = boot(c, cached, err);
  if (rc == 0) rc = configure_guest(c, err);
  if (rc == 0) rc = rt_agent_events_start(c, err);
  if (rc == 0) rc = rt_ports_start(c, err);
  img_info_free(&info);
  if (rc < 0) {
    rt_ports_stop(c);
    rt_teardown_vm(c);
    rt_net_teardown(c);
    if (c->network[0]) net_release(rt->cfg.networks, c->network, c->id, NULL);
    pthread_mutex_unlock(&c->op);
    list_remove(rt, c);
    vs_rm_rf(c->dir);
    container_free(c);
    return -1;
  }
  pthread_mutex_lock(&c->mu);
  c->state = RT_CREATED;
  rt_save(c, NULL);
  pthread_mutex_unlock(&c->mu);
  pthread_mutex_unlock(&c->op);
  emit(c, EVB_CONTAINER_CREATED, NULL, NULL);
  snprintf(id_out, 128, "%s", c->id);
  return 0;
}

/* ---- start / exec ---- */

static int start_process(rt_container *c, rt_proc *p, vs_err *err) {
  if (rt_proc_open_stdio(c, p, err) < 0) return -1;
  Vessel__V1__AgentStartProcessRequest req;
  vessel__v1__agent_start_process_request__init(&req);
  req.container_id = c->id;
  req.process_id = p->id[0] ? p->id : c->id;
  ProtobufCMessage *resp;
  if (rt_agent(c, &vessel_v1_Agent_StartProcess, &req.base, &resp, AGENT_TIMEOUT_MS, err) < 0) {
    rt_proc_join(p);
    return -1;
  }
  pthread_mutex_lock(&c->mu);
  p->pid = ((Vessel__V1__AgentStartProcessResponse *)resp)->pid;
  p->started = 1;
  pthread_mutex_unlock(&c->mu);
  vrpc_msg_free(resp);
  return 0;
}

int rt_start(rt_runtime *rt, const char *id, vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->op);
  int rc = 0;
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  pthread_mutex_unlock(&c->mu);
  if (st == RT_RUNNING) rc = vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is already running", id);
  else if (st != RT_CREATED)
    rc = vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is %s; only a created container starts",
                    id, state_name(st));
  if (rc == 0) {
    pthread_mutex_lock(&c->mu);
    c->starting = 1;
    pthread_mutex_unlock(&c->mu);
    rc = start_process(c, &c->init, err);
  }
  if (rc == 0) {
    pthread_mutex_lock(&c->mu);
    c->state = c->init.exited ? c->state : RT_RUNNING;
    rt_now(&c->started_ns);
    rt_save(c, NULL);
    pthread_mutex_unlock(&c->mu);
    emit(c, EVB_CONTAINER_STARTED, NULL, NULL);
  }
  /* An init that exited before Start returned: its event follows STARTED. */
  pthread_mutex_lock(&c->mu);
  c->starting = 0;
  int pending = c->exit_event_pending;
  c->exit_event_pending = 0;
  pthread_mutex_unlock(&c->mu);
  if (pending) rt_emit_container_exited(c);
  pthread_mutex_unlock(&c->op);
  return rc;
}

/* exec; with att, an attacher is registered before the process starts, so
 * no output can precede it. */
static int exec_attached(rt_runtime *rt, const char *id, const char *exec_id,
                         const Vessel__V1__ProcessSpec *spec, int att_flags, rt_attach **att,
                         char exec_out[128], int *pid, vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->mu);
  int running = c->state == RT_RUNNING;
  pthread_mutex_unlock(&c->mu);
  if (!running) return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is not running", id);
  char eid[128];
  if (exec_id && *exec_id) {
    if (!valid_id(exec_id))
      return vs_err_set(err, VS_INVALID_ARGUMENT, "exec ID \"%s\" is not valid", exec_id);
    snprintf(eid, sizeof eid, "%s", exec_id);
  } else {
    random_id(eid);
    eid[12] = '\0';
  }
  Vessel__V1__ProcessSpec *p = rt_exec_spec(spec, c->spec->process, err);
  if (!p) return -1;
  rt_proc *proc = calloc(1, sizeof *proc);
  rt_proc_init(proc, eid);
  pthread_mutex_lock(&c->mu);
  for (rt_proc *q = c->execs; q; q = q->next)
    if (!strcmp(q->id, eid)) {
      pthread_mutex_unlock(&c->mu);
      protobuf_c_message_free_unpacked(&p->base, NULL);
      rt_proc_free(proc);
      free(proc);
      return vs_err_set(err, VS_ALREADY_EXISTS, "exec %s exists in %s", eid, id);
    }
  proc->next = c->execs;
  c->execs = proc;
  pthread_mutex_unlock(&c->mu);

  Vessel__V1__AgentCreateProcessRequest req;
  vessel__v1__agent_create_process_request__init(&req);
  req.container_id = c->id;
  req.process_id = eid;
  req.process = p;
  int rc = rt_agent(c, &vessel_v1_Agent_CreateProcess, &req.base, NULL, AGENT_TIMEOUT_MS, err);
  protobuf_c_message_free_unpacked(&p->base, NULL);
  if (rc == 0 && att && !(*att = rt_attach_open(rt, c->id, eid, att_flags, err))) rc = -1;
  if (rc == 0) rc = start_process(c, proc, err);
  if (rc < 0 && att && *att) {
    rt_attach_close(*att);
    *att = NULL;
  }
  if (rc < 0) { /* a failed exec leaves no trace */
    pthread_mutex_lock(&c->mu);
    for (rt_proc **q = &c->execs; *q; q = &(*q)->next)
      if (*q == proc) {
        *q = proc->next;
        break;
      }
    pthread_mutex_unlock(&c->mu);
    Vessel__V1__AgentDeleteProcessRequest d;
    vessel__v1__agent_delete_process_request__init(&d);
    d.container_id = c->id;
    d.process_id = eid;
    vs_err ignore;
    rt_agent(c, &vessel_v1_Agent_DeleteProcess, &d.base, NULL, 5000, &ignore);
    rt_proc_free(proc);
    free(proc);
    return -1;
  }
  snprintf(exec_out, 128, "%s", eid);
  *pid = proc->pid;
  emit(c, EVB_PROCESS_STARTED, eid, NULL);
  return 0;
}

static rt_proc *proc_of(rt_container *c, const char *exec_id, vs_err *err) {
  if (!exec_id || !*exec_id) return &c->init;
  for (rt_proc *p = c->execs; p; p = p->next)
    if (!strcmp(p->id, exec_id)) return p;
  vs_err_set(err, VS_NOT_FOUND, "container %s has no exec %s", c->id, exec_id);
  return NULL;
}

int rt_signal(rt_runtime *rt, const char *id, const char *exec_id, int sig, int all, vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  if (sig < 1 || sig > 64) return vs_err_set(err, VS_INVALID_ARGUMENT, "signal %d is not 1..64", sig);
  pthread_mutex_lock(&c->mu);
  rt_proc *p = proc_of(c, exec_id, err);
  int live = p && p->started && !p->exited;
  pthread_mutex_unlock(&c->mu);
  if (!p) return -1;
  if (!live) return vs_err_set(err, VS_FAILED_PRECONDITION, "process is not running");
  Vessel__V1__AgentSignalProcessRequest req;
  vessel__v1__agent_signal_process_request__init(&req);
  req.container_id = c->id;
  req.process_id = exec_id && *exec_id ? (char *)exec_id : c->id;
  req.signal = sig;
  req.all = all;
  return rt_agent(c, &vessel_v1_Agent_SignalProcess, &req.base, NULL, AGENT_TIMEOUT_MS, err);
}

int rt_wait(rt_runtime *rt, const char *id, const char *exec_id, int cancel_fd, rt_exit *out,
            vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    rt_proc *p = proc_of(c, exec_id, err);
    int done = 0, efd = -1;
    if (p) {
      /* init: a stopped container reports its last exit */
      if (p->exited) {
        *out = p->exit;
        done = 1;
      } else if (!p->id[0] && c->state == RT_STOPPED && c->has_exit) {
        *out = c->last_exit;
        done = 1;
      }
      efd = p->exit_fd;
    }
    pthread_mutex_unlock(&c->mu);
    if (!p) return -1;
    if (done) return 0;
    struct pollfd pf[2] = {{efd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    int n = poll(pf, cancel_fd >= 0 ? 2 : 1, 1000);
    if (n > 0 && (pf[1].revents & POLLIN)) return vs_err_set(err, VS_CANCELLED, "wait cancelled");
  }
}

int rt_resize(rt_runtime *rt, const char *id, const char *exec_id, uint32_t rows, uint32_t cols,
              vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  if (!rows || !cols) return vs_err_set(err, VS_INVALID_ARGUMENT, "rows and cols must be > 0");
  Vessel__V1__ConsoleSize size;
  vessel__v1__console_size__init(&size);
  size.rows = rows;
  size.cols = cols;
  Vessel__V1__AgentResizeProcessRequest req;
  vessel__v1__agent_resize_process_request__init(&req);
  req.container_id = c->id;
  req.process_id = exec_id && *exec_id ? (char *)exec_id : c->id;
  req.size = &size;
  return rt_agent(c, &vessel_v1_Agent_ResizeProcess, &req.base, NULL, AGENT_TIMEOUT_MS, err);
}

int rt_close_stdin(rt_runtime *rt, const char *id, const char *exec_id, vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  Vessel__V1__AgentCloseStdinRequest req;
  vessel__v1__agent_close_stdin_request__init(&req);
  req.container_id = c->id;
  req.process_id = exec_id && *exec_id ? (char *)exec_id : c->id;
  return rt_agent(c, &vessel_v1_Agent_CloseStdin, &req.base, NULL, AGENT_TIMEOUT_MS, err);
}

int rt_exec(rt_runtime *rt, const char *id, const char *exec_id, const Vessel__V1__ProcessSpec *spec,
            char exec_out[128], int *pid, vs_err *err) {
  return exec_attached(rt, id, exec_id, spec, 0, NULL, exec_out, pid, err);
}

/* Runs argv in the container with its output on att (a missing tar is the
 * agent's FAILED_PRECONDITION). */
static int run_tar(rt_runtime *rt, const char *id, char **argv, size_t argc, int flags,
                   rt_attach **att, char eid[128], vs_err *err) {
  Vessel__V1__ProcessSpec spec;
  vessel__v1__process_spec__init(&spec);
  spec.args = argv;
  spec.n_args = argc;
  int pid;
  return exec_attached(rt, id, NULL, &spec, flags, att, eid, &pid, err);
}

/* Drains att until exit: stdout to write (if any), stderr kept for errors. */
static int finish_tar(rt_attach *att, const char *what,
                      int (*write)(void *, const void *, size_t, vs_err *), void *arg, vs_err *err) {
  char errbuf[300] = "";
  size_t errlen = 0;
  rt_exit e;
  int rc = 0;
  for (;;) {
    int stream;
    char *data;
    size_t len;
    int r = rt_attach_next(att, -1, &stream, &data, &len, &e, err);
    if (r < 0) return -1;
    if (r == 0) break;
    if (stream == LG_STDERR) {
      size_t k = len < sizeof errbuf - 1 - errlen ? len : sizeof errbuf - 1 - errlen;
      memcpy(errbuf + errlen, data, k);
      errlen += k;
      errbuf[errlen] = '\0';
    } else if (write && rc == 0) {
      rc = write(arg, data, len, err);
    }
    free(data);
  }
  if (rc < 0) return -1;
  if (e.code != 0) {
    errbuf[strcspn(errbuf, "\n")] = '\0';
    return vs_err_set(err, e.code == 127 ? VS_FAILED_PRECONDITION : VS_INVALID_ARGUMENT,
                      "%s: tar exited %d%s%s", what, e.code, errbuf[0] ? ": " : "", errbuf);
  }
  return 0;
}

int rt_copy_in(rt_runtime *rt, const char *id, const char *dst,
               int (*read)(void *, const void **, size_t *, vs_err *), void *arg, int64_t *bytes,
               vs_err *err) {
  if (!dst || dst[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "copy destination \"%s\" must be absolute", dst);
  char *argv[] = {(char *)"tar", (char *)"-x", (char *)"-f", (char *)"-", (char *)"-C", (char *)dst};
  rt_attach *att = NULL;
  char eid[128];
  if (run_tar(rt, id, argv, 6, RT_ATTACH_STDOUT | RT_ATTACH_STDERR | RT_ATTACH_STDIN, &att, eid,
              err) < 0)
    return -1;
  int rc = 0;
  *bytes = 0;
  for (;;) {
    const void *data;
    size_t len;
    int r = read(arg, &data, &len, err);
    if (r < 0) {
      rc = -1;
      break;
    }
    if (r == 0) break;
    if (rt_attach_stdin(att, data, len, 0, err) < 0) {
      rc = -1;
      break;
    }
    *bytes += (int64_t)len;
  }
  vs_err ignore;
  rt_attach_stdin(att, "", 0, 1, &ignore); /* EOF either way: tar ends */
  if (rc < 0) rt_signal(rt, id, eid, 9, 0, &ignore);
  int frc = finish_tar(att, "copy in", NULL, NULL, rc < 0 ? &ignore : err);
  rt_attach_close(att);
  return rc < 0 ? -1 : frc;
}

int rt_copy_out(rt_runtime *rt, const char *id, const char *path,
                int (*write)(void *, const void *, size_t, vs_err *), void *arg, vs_err *err) {
  if (!path || path[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "copy source \"%s\" must be absolute", path);
  char dir[4096], base[4096];
  snprintf(dir, sizeof dir, "%s", path);
  while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/') dir[strlen(dir) - 1] = '\0';
  char *slash = strrchr(dir, '/');
  snprintf(base, sizeof base, "%s", slash[1] ? slash + 1 : ".");
  if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
  char *argv[] = {(char *)"tar", (char *)"-c", (char *)"-f", (char *)"-", (char *)"-C", dir, base};
  rt_attach *att = NULL;
  char eid[128];
  if (run_tar(rt, id, argv, 7, RT_ATTACH_STDOUT | RT_ATTACH_STDERR, &att, eid, err) < 0) return -1;
  int rc = finish_tar(att, "copy out", write, arg, err);
  rt_attach_close(att);
  return rc;
}

/* ---- exit / stop / delete ---- */

/* With c->mu held, once init has exited (or the VM went away): the
 * container is stopped. 1 if this call stopped it. */
int rt_stopped_locked(rt_container *c) {
  if (c->state == RT_STOPPED || c->deleted) return 0;
  c->state = RT_STOPPED;
  c->last_exit = c->init.exit;
  c->has_exit = 1;
  c->finished_ns = c->init.exit.exited_ns;
  rt_save(c, NULL);
  return 1;
}

void rt_emit_container_exited(rt_container *c) {
  pthread_mutex_lock(&c->mu);
  rt_exit e = c->last_exit;
  pthread_mutex_unlock(&c->mu);
  emit(c, EVB_CONTAINER_EXITED, NULL, &e);
}

void rt_emit_process_exited(rt_container *c, rt_proc *p) {
  pthread_mutex_lock(&c->mu);
  rt_exit e = p->exit;
  pthread_mutex_unlock(&c->mu);
  emit(c, EVB_PROCESS_EXITED, p->id, &e);
}

static int wait_exit(rt_container *c, int64_t ms) {
  struct pollfd pf = {c->init.exit_fd, POLLIN, 0};
  return poll(&pf, 1, ms > 0x7fffffff ? 0x7fffffff : (int)ms) > 0;
}

int rt_stop(rt_runtime *rt, const char *id, int sig, int64_t timeout_ms, rt_exit *out, vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->op);
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  int live = c->init.started && !c->init.exited;
  if (st == RT_RUNNING) c->state = RT_STOPPING;
  pthread_mutex_unlock(&c->mu);
  if (st == RT_CREATING) {
    pthread_mutex_unlock(&c->op);
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is still being created", id);
  }
  if (live) {
    if (!sig) sig = SIGTERM;
    if (timeout_ms <= 0) timeout_ms = 10000;
    vs_err ignore;
    Vessel__V1__AgentSignalProcessRequest req;
    vessel__v1__agent_signal_process_request__init(&req);
    req.container_id = c->id;
    req.process_id = c->id;
    req.signal = sig;
    rt_agent(c, &vessel_v1_Agent_SignalProcess, &req.base, NULL, AGENT_TIMEOUT_MS, &ignore);
    if (sig != SIGKILL && !wait_exit(c, timeout_ms)) {
      req.signal = SIGKILL;
      rt_agent(c, &vessel_v1_Agent_SignalProcess, &req.base, NULL, AGENT_TIMEOUT_MS, &ignore);
    }
    wait_exit(c, 10000);
  }
  rt_proc_join(&c->init); /* the relay marked the container stopped */
  rt_teardown_vm(c);
  pthread_mutex_lock(&c->mu);
  if (!c->has_exit) { /* never started: stopping just ends the VM */
    c->has_exit = 1;
    rt_now(&c->last_exit.exited_ns);
    c->last_exit.signal = 0;
    snprintf(c->last_exit.reason, sizeof c->last_exit.reason, "stopped before it was started");
  }
  c->state = RT_STOPPED;
  rt_save(c, NULL);
  if (out) *out = c->last_exit;
  pthread_mutex_unlock(&c->mu);
  pthread_mutex_unlock(&c->op);
  return 0;
}

int rt_delete(rt_runtime *rt, const char *id, int force, vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  pthread_mutex_unlock(&c->mu);
  if ((st == RT_RUNNING || st == RT_STOPPING) && !force)
    return vs_err_set(err, VS_FAILED_PRECONDITION,
                      "container %s is running; stop it first or delete with force", id);
  if (st == RT_CREATING)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is still being created", id);
  pthread_mutex_lock(&c->mu);
  c->discard_disk = 1; /* a VM still syncing its disk for later need not */
  if (c->sync_call) vrpc_cancel(c->sync_call);
  pthread_mutex_unlock(&c->mu);
  if (rt_stop(rt, id, SIGKILL, 1, NULL, err) < 0) return -1;
  pthread_mutex_lock(&c->op);
  pthread_mutex_lock(&c->mu);
  c->deleted = 1;
  pthread_mutex_unlock(&c->mu);
  list_remove(rt, c);
  rt_ports_stop(c);
  rt_net_teardown(c);
  if (c->network[0]) net_release(rt->cfg.networks, c->network, c->id, NULL);
  if (c->sock[0]) unlink(c->sock);
  vs_rm_rf(c->dir);
  pthread_mutex_unlock(&c->op);
  emit(c, EVB_CONTAINER_DELETED, NULL, NULL);
  /* Attachers and waiters may still hold c; it is freed with the runtime. */
  pthread_mutex_lock(&rt->mu);
  rt_container **g = realloc(rt->dead, (rt->n_dead + 1) * sizeof *g);
  if (g) {
    rt->dead = g;
    rt->dead[rt->n_dead++] = c;
  }
  pthread_mutex_unlock(&rt->mu);
  return 0;
}

/* ---- open / close ---- */

static void mark_lost(rt_container *c, const char *why) {
  pthread_mutex_lock(&c->mu);
  c->state = RT_STOPPED;
  c->has_exit = 1;
  c->last_exit.code = -1;
  rt_now(&c->last_exit.exited_ns);
  c->finished_ns = c->last_exit.exited_ns;
  snprintf(c->last_exit.reason, sizeof c->last_exit.reason, "%s", why);
  rt_save(c, NULL);
  rt_exit e = c->last_exit;
  pthread_mutex_unlock(&c->mu);
  emit(c, EVB_CONTAINER_EXITED, NULL, &e);
}

/* A VM that outlived the previous vesseld: connect to its agent again and
 * resume relaying init's output. One whose QEMU is gone becomes stopped. */
static void readopt_vm(rt_container *c) {
  char console[4400];
  snprintf(console, sizeof console, "%s/console.log", c->dir);
  vs_err err;
  vm *v = c->qemu_pid > 0 ? vm_adopt(c->qemu_pid, c->sock, console, &err) : NULL;
  if (v && vm_wait_ready(v, 10000, &err) < 0) {
    vm_kill(v);
    vm_free(v);
    v = NULL;
  }
  if (!v) { /* its PID is not touched: it may be another process's by now */
    c->qemu_pid = 0;
    mark_lost(c, "the VM died while vesseld was not running");
    return;
  }
  c->vm = v;
  if (c->state == RT_RUNNING) {
    c->init.started = 1;
    if (rt_proc_open_stdio(c, &c->init, &err) < 0) {
      rt_teardown_vm(c);
      mark_lost(c, "could not re-attach to the VM after a vesseld restart");
      return;
    }
  }
  vs_err ignore;
  rt_agent_events_start(c, &ignore);
  rt_ports_start(c, &ignore);
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
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/containers", rt->root);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", dir);
    free(rt);
    return NULL;
  }
  /* Containers of an earlier vesseld; the VMs of those that were created
   * or running are re-adopted below. */
  rt_container *readopt[1024];
  size_t n_readopt = 0;
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.' || !valid_id(e->d_name)) continue;
    char p[4400];
    snprintf(p, sizeof p, "%s/%.127s/spec.pb", dir, e->d_name);
    FILE *f = fopen(p, "rb");
    if (!f) continue;
    uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    Vessel__V1__ContainersCreateRequest *spec =
        vessel__v1__containers_create_request__unpack(NULL, n, buf);
    snprintf(p, sizeof p, "%s/%.127s/state.json", dir, e->d_name);
    json_t *j = json_load_file(p, 0, NULL);
    if (!spec || !j) {
      if (spec) protobuf_c_message_free_unpacked(&spec->base, NULL);
      json_decref(j);
      continue;
    }
    rt_container *c = container_new(rt);
    snprintf(c->id, sizeof c->id, "%.127s", e->d_name);
    snprintf(c->dir, sizeof c->dir, "%.4000s/%.127s", dir, e->d_name);
    c->spec = spec;
#define S(k, dst) snprintf(dst, sizeof dst, "%s", json_string_value(json_object_get(j, k)) ?: "")
    S("image_digest", c->image_digest);
    S("network", c->network);
    S("ip", c->ip);
    S("mac", c->mac);
    S("gateway", c->gateway);
    S("platform", c->platform);
    S("agent_socket", c->sock);
    S("tap", c->tap);
#undef S
    if (!c->sock[0]) sock_path(c, c->sock, sizeof c->sock);
    if (!c->tap[0] && c->network[0]) tap_name(c); /* state of an older vesseld */
    c->prefix = (int)json_integer_value(json_object_get(j, "prefix"));
    c->created_ns = json_integer_value(json_object_get(j, "created_ns"));
    c->started_ns = json_integer_value(json_object_get(j, "started_ns"));
    c->finished_ns = json_integer_value(json_object_get(j, "finished_ns"));
    c->vcpus = (int)json_integer_value(json_object_get(j, "vcpus"));
    c->memory_mib = (int)json_integer_value(json_object_get(j, "memory_mib"));
    json_t *x = json_object_get(j, "exit");
    const char *state = json_string_value(json_object_get(j, "state"));
    int qemu = (int)json_integer_value(json_object_get(j, "qemu_pid"));
    c->state = RT_STOPPED;
    if (x) {
      c->has_exit = 1;
      c->last_exit.code = (int)json_integer_value(json_object_get(x, "code"));
      c->last_exit.signal = (int)json_integer_value(json_object_get(x, "signal"));
      c->last_exit.oom_killed = json_is_true(json_object_get(x, "oom"));
      c->last_exit.exited_ns = json_integer_value(json_object_get(x, "exited_ns"));
      snprintf(c->last_exit.reason, sizeof c->last_exit.reason, "%s",
               json_string_value(json_object_get(x, "reason")) ?: "");
    } else if (state && strcmp(state, "stopped") != 0) {
      c->init.pid = (int)json_integer_value(json_object_get(j, "init_pid"));
      c->state = !strcmp(state, "running") ? RT_RUNNING : RT_CREATED;
      c->qemu_pid = qemu;
      readopt[n_readopt++] = c;
    }
    json_decref(j);
    char logs[4400];
    snprintf(logs, sizeof logs, "%s/logs", c->dir);
    c->logs = lg_open(logs, 0, 0, NULL);
    rt_container **l = realloc(rt->list, (rt->n + 1) * sizeof *l);
    if (!l) {
      container_free(c);
      continue;
    }
    rt->list = l;
    rt->list[rt->n++] = c;
  }
  if (d) closedir(d);
  for (size_t i = 0; i < n_readopt; i++) readopt_vm(readopt[i]);
  rt_templates_prune(rt);
  rt_spares_open(rt);
  return rt;
}

void rt_close(rt_runtime *rt) {
  if (!rt) return;
  pthread_mutex_lock(&rt->mu);
  rt->closing = 1;
  pthread_mutex_unlock(&rt->mu);
  for (int i = 0; i < 900; i++) { /* template and spare builds in flight finish first */
    pthread_mutex_lock(&rt->mu);
    int b = rt->building + rt->spares_building;
    pthread_mutex_unlock(&rt->mu);
    if (!b) break;
    usleep(100000);
  }
  rt_spares_close(rt);
  for (size_t i = 0; i < rt->n; i++) {
    rt_container *c = rt->list[i];
    /* Leave running VMs running: end the relays (their streams first, the
     * channel after), then drop the connection. A restarted vesseld
     * re-adopts them. */
    rt_ports_stop(c);
    rt_proc_join(&c->init);
    for (rt_proc *p = c->execs; p; p = p->next) rt_proc_join(p);
    rt_agent_events_stop(c);
    if (c->vm) {
      vm_detach(c->vm);
      vm_free(c->vm);
      c->vm = NULL;
    }
    container_free(c);
  }
  free(rt->list);
  for (size_t i = 0; i < rt->n_dead; i++) container_free(rt->dead[i]);
  free(rt->dead);
  pthread_mutex_destroy(&rt->mu);
  free(rt);
}

int rt_log_dir(rt_runtime *rt, const char *id, char *buf, size_t n, vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  snprintf(buf, n, "%s/logs", c->dir);
  return 0;
}

int rt_running(rt_runtime *rt, const char *id) {
  rt_container *c = rt_find(rt, id, NULL);
  if (!c) return 0;
  pthread_mutex_lock(&c->mu);
  int r = c->init.started && !c->init.exited;
  pthread_mutex_unlock(&c->mu);
  return r;
}

void rt_counts(rt_runtime *rt, uint32_t *total, uint32_t *running, uint32_t *created,
               uint32_t *stopped) {
  *total = *running = *created = *stopped = 0;
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n; i++) {
    rt_state s = rt->list[i]->state;
    (*total)++;
    if (s == RT_RUNNING) (*running)++;
    else if (s == RT_CREATED || s == RT_CREATING) (*created)++;
    else (*stopped)++;
  }
  pthread_mutex_unlock(&rt->mu);
}

int rt_stats(rt_runtime *rt, const char *id, ProtobufCMessage **stats, vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return -1;
  Vessel__V1__AgentStatisticsRequest req;
  vessel__v1__agent_statistics_request__init(&req);
  char *ids[1] = {c->id};
  req.container_ids = ids;
  req.n_container_ids = 1;
  ProtobufCMessage *resp;
  if (rt_agent(c, &vessel_v1_Agent_Statistics, &req.base, &resp, AGENT_TIMEOUT_MS, err) < 0)
    return -1;
  Vessel__V1__AgentStatisticsResponse *r = (Vessel__V1__AgentStatisticsResponse *)resp;
  if (!r->n_statistics) {
    vrpc_msg_free(resp);
    return vs_err_set(err, VS_INTERNAL, "agent returned no statistics for %s", id);
  }
  *stats = rt_copy_msg(&r->statistics[0]->base);
  vrpc_msg_free(resp);
  return 0;
}
