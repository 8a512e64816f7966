/* A container's VM: booted (a warm spare, a template restore or a cold
 * boot), the guest configured, agent calls, re-adoption after a vesseld
 * restart, teardown; and at start, the QEMUs a dead vesseld left that no
 * container owns. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/vs_log.h"
#include "server/ext4/ext4.h"
#include "server/oci/oci.h"
#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

#define BOOT_TIMEOUT_MS 60000
/* Where a pod's VM mounts its volumes. */
#define POD_VOLUMES "/run/vessel/volumes"

int rt_agent(rt_container *c, const vrpc_method *m, const ProtobufCMessage *req,
             ProtobufCMessage **resp, int64_t timeout_ms, vs_err *err) {
  rt_container *h = rt_vm_host(c);
  pthread_rwlock_rdlock(&h->vm_lock);
  pthread_mutex_lock(&h->mu);
  vrpc_channel *ch = h->vm ? vm_channel(h->vm) : NULL;
  pthread_mutex_unlock(&h->mu);
  int rc;
  ProtobufCMessage *r = NULL;
  if (!ch) {
    rc = vs_err_set(err, VS_UNAVAILABLE, "container %s has no running VM", c->id);
  } else {
    vrpc_call_opts o = {timeout_ms, NULL};
    rc = vrpc_unary(ch, m, req, &r, &o, err);
  }
  pthread_rwlock_unlock(&h->vm_lock);
  if (resp) *resp = r;
  else vrpc_msg_free(r);
  return rc;
}

/* A VM booted for c (not a spare) is named after c's ID: its taps "vt" +
 * 12 hex digits (and a letter past the first: interface names are at most
 * 15 bytes), its agent socket under <root>/run (socket paths are at most
 * 107 bytes). */
static void vm_names(rt_container *c, char taps[VM_MAX_NICS][16], char *sock, size_t n) {
  char d[72], stem[16];
  oci_sha256_bytes(c->id, strlen(c->id), d);
  snprintf(stem, sizeof stem, "vt%.12s", d + 7);
  for (size_t i = 0; i < VM_MAX_NICS; i++) rt_tap_name(stem, i, taps[i]);
  snprintf(sock, n, "%s/run/%.16s.sock", c->rt->root, d + 7);
}

/* Host directories become 9p shares tagged vol<i> (i: the mount's index). */
static int is_volume(const Vessel__V1__Mount *m) { return !strcmp(m->type, "bind") || !*m->type; }
static int is_read_only(const Vessel__V1__Mount *m) {
  for (size_t k = 0; k < m->n_options; k++)
    if (!strcmp(m->options[k], "ro")) return 1;
  return 0;
}

int rt_boot(rt_container *c, const char *rootfs_src, vs_err *err) {
  rt_runtime *rt = c->rt;
  double t0 = rt_metrics_clock();
  char root[4400], console[4400], tags[RT_MAX_SHARES][24];
  snprintf(root, sizeof root, "%s/rootfs.ext4", c->dir);
  snprintf(console, sizeof console, "%s/console.log", c->dir);
  vm_share shares[RT_MAX_SHARES];
  size_t n_shares = 0;
  /* Volumes tagged vol0..vol<n-1> (none after a tmpfs mount, whose index
   * a tag skips): a template with that many shares serves; warm spares
   * have none. */
  int shares_in_order = 1;
  for (size_t i = 0; i < c->spec->n_mounts; i++) {
    const Vessel__V1__Mount *m = c->spec->mounts[i];
    if (!is_volume(m)) continue;
    if (n_shares == RT_MAX_SHARES)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "at most %d host-directory volumes", RT_MAX_SHARES);
    snprintf(tags[n_shares], sizeof tags[0], "vol%zu", i);
    shares[n_shares] = (vm_share){m->source, tags[n_shares], is_read_only(m)};
    shares_in_order &= i == n_shares;
    n_shares++;
  }
  /* A foreign image's VM has the emulators' disk: a template of its own
   * kind has it too (spares do not). */
  int emulated = 0;
  char emu_disk[4300];
  if (rt_emu_check(c->rt, c->platform, &emulated, err) < 0 ||
      (emulated && rt_emu_disk(c->rt, emu_disk, sizeof emu_disk, err) < 0))
    return -1;
  vm_disk emu = {emu_disk, 1};
  rt_vm_kind kind = {c->vcpus, c->memory_mib, (int)c->n_nics, c->is_pod ? c->n_slots : 0,
                     (int)n_shares, emulated ? emu_disk : NULL};
  int pooled = !c->spec->no_template && shares_in_order;
  vm_disk slots[RT_MAX_SLOTS];
  char slot_paths[RT_MAX_SLOTS][4400];
  for (int i = 0; c->is_pod && i < c->n_slots; i++) {
    rt_pod_slot_path(c, i, slot_paths[i]);
    slots[i] = (vm_disk){slot_paths[i], 0};
  }
  rt_pool_vm got;
  memset(&got, 0, sizeof got);
  if (rootfs_src && pooled && !n_shares &&
      rt_pool_take_spare(rt, &kind, rootfs_src, root, console,
                         c->n_nics ? c->nics[0].bridge : NULL, &got)) {
    pthread_mutex_lock(&c->mu);
    c->vm = got.v;
    if (c->n_nics) snprintf(c->nics[0].tap, sizeof c->nics[0].tap, "%s", got.tap);
    snprintf(c->sock, sizeof c->sock, "%s", got.sock);
    c->from_template = 1;
    c->qemu_pid = vm_pid(got.v);
    c->boot_ms = got.boot_ms;
    pthread_mutex_unlock(&c->mu);
    rt_metrics_vm_start(rt, RT_START_SPARE, t0);
    return 0;
  }
  if (rootfs_src && rfs_copy_writable(rootfs_src, root, err) < 0) return -1;
  char taps[VM_MAX_NICS][16];
  vm_nic nics[VM_MAX_NICS];
  vm_names(c, taps, c->sock, sizeof c->sock);
  unlink(c->sock);
  for (size_t i = 0; i < c->n_nics; i++) { /* (the teardown deletes those made) */
    if (rt_tap_create(taps[i], c->nics[i].bridge, err) < 0) return -1;
    snprintf(c->nics[i].tap, sizeof c->nics[i].tap, "%s", taps[i]);
    nics[i] = (vm_nic){c->nics[i].tap, c->nics[i].mac};
  }
  vm_config vc;
  rt_vm_config(rt, &vc, c->vcpus, c->memory_mib, root, c->sock, console);
  vc.nics = nics;
  vc.n_nics = c->n_nics;
  vc.shares = shares;
  vc.n_shares = n_shares;
  if (c->is_pod) { /* no root disk: the slots are vda, vdb, ... */
    vc.root_disk = NULL;
    vc.disks = slots;
    vc.n_disks = (size_t)c->n_slots;
  } else if (emulated) { /* vdb */
    vc.disks = &emu;
    vc.n_disks = 1;
  }
  int restored = pooled && rt_pool_restore(rt, &kind, &vc, &got);
  vm *v = restored ? got.v : NULL;
  /* A cold boot whose agent never answers is tried once more (under TCG
   * one now and then does not); the disk is untouched until the agent
   * mounts it. */
  for (int attempt = 0; !v; attempt++) {
    if (!(v = vm_start(&vc, err))) return -1;
    if (vm_wait_ready(v, BOOT_TIMEOUT_MS / 2, err) == 0) break;
    vm_kill(v);
    vm_free(v);
    v = NULL;
    if (attempt == 1) return vs_err_wrap(err, "boot VM of %s", c->id);
    vs_log("vesseld", VS_LOG_WARN, "container %s: VM boot failed, once more: %s", c->id, err->msg);
  }
  pthread_mutex_lock(&c->mu);
  c->vm = v;
  c->from_template = restored;
  c->qemu_pid = vm_pid(v);
  c->boot_ms = vm_ready_ms(v);
  pthread_mutex_unlock(&c->mu);
  rt_metrics_vm_start(rt, restored ? RT_START_TEMPLATE : RT_START_COLD, t0);
  return 0;
}

static int link_rename(rt_container *c, const char *from, const char *to, vs_err *err) {
  Vessel__V1__AgentLinkSetRequest req = VESSEL__V1__AGENT_LINK_SET_REQUEST__INIT;
  req.name = (char *)from;
  req.new_name = (char *)to;
  return rt_agent(c, &vessel_v1_Agent_LinkSet, &req.base, NULL, AGENT_TIMEOUT_MS, err);
}

/* NIC i is eth<i> in the guest, as the proto says (the first is eth0): the
 * guest's NICs, found by the MAC each booted with (the template's when
 * restored), renamed where the kernel numbered them otherwise (they are
 * still down). One NIC is eth0. */
static int guest_names(rt_container *c, vs_err *err) {
  if (c->n_nics < 2) return 0;
  Vessel__V1__AgentListInterfacesRequest req = VESSEL__V1__AGENT_LIST_INTERFACES_REQUEST__INIT;
  Vessel__V1__AgentListInterfacesResponse *r = NULL;
  if (rt_agent(c, &vessel_v1_Agent_ListInterfaces, &req.base, (ProtobufCMessage **)&r,
               AGENT_TIMEOUT_MS, err) < 0)
    return vs_err_wrap(err, "list the guest's interfaces");
  char names[VM_MAX_NICS][16], tmp[VM_MAX_NICS][16];
  int rc = 0;
  for (size_t i = 0; i < c->n_nics && rc == 0; i++) {
    char boot_mac[18];
    if (c->from_template) rt_template_mac(i, boot_mac);
    else snprintf(boot_mac, sizeof boot_mac, "%s", c->nics[i].mac);
    names[i][0] = '\0';
    for (size_t k = 0; k < r->n_interfaces; k++)
      if (!strcasecmp(r->interfaces[k]->mac, boot_mac))
        snprintf(names[i], sizeof names[i], "%s", r->interfaces[k]->name);
    if (!names[i][0])
      rc = vs_err_set(err, VS_INTERNAL, "the guest has no interface with MAC %s (network %s)",
                      boot_mac, c->nics[i].network);
  }
  vrpc_msg_free(&r->base);
  for (size_t i = 0; i < c->n_nics && rc == 0; i++) { /* out of the way first */
    char want[24];
    rt_nic_ifname(i, want);
    snprintf(tmp[i], sizeof tmp[i], "vsl%u", (unsigned)i);
    if (!strcmp(names[i], want)) tmp[i][0] = '\0'; /* right already */
    else rc = link_rename(c, names[i], tmp[i], err);
  }
  for (size_t i = 0; i < c->n_nics && rc == 0; i++) {
    rt_nic_ifname(i, names[i]);
    if (tmp[i][0]) rc = link_rename(c, tmp[i], names[i], err);
  }
  return rc < 0 ? vs_err_wrap(err, "name the guest's interfaces") : 0;
}

/* A pod's volumes mounted once in the VM (a 9p share takes one mount at a
 * time), under POD_VOLUMES: its containers bind them. */
static int pod_volumes(rt_container *c, vs_err *err) {
  static char *const opts[4] = {"trans=virtio", "version=9p2000.L", "msize=262144", "ro"};
  for (size_t i = 0; i < c->spec->n_mounts; i++) {
    char tag[24], dst[64];
    snprintf(tag, sizeof tag, "vol%zu", i);
    snprintf(dst, sizeof dst, POD_VOLUMES "/vol%zu", i);
    Vessel__V1__Mount m = VESSEL__V1__MOUNT__INIT;
    m.type = (char *)"9p";
    m.source = tag;
    m.destination = dst;
    m.options = (char **)opts;
    m.n_options = is_read_only(c->spec->mounts[i]) ? 4 : 3;
    Vessel__V1__AgentMountRequest req = VESSEL__V1__AGENT_MOUNT_REQUEST__INIT;
    req.mount = &m;
    req.mkdir = 1;
    if (rt_agent(c, &vessel_v1_Agent_Mount, &req.base, NULL, AGENT_TIMEOUT_MS, err) < 0)
      return vs_err_wrap(err, "mount volume %s", c->spec->mounts[i]->source);
  }
  return 0;
}

int rt_configure_guest(rt_container *c, vs_err *err) {
  if (guest_names(c, err) < 0) return -1;
  for (size_t i = 0; i < c->n_nics; i++) {
    const rt_nic *n = &c->nics[i];
    Vessel__V1__NetworkInterface nif;
    vessel__v1__network_interface__init(&nif);
    char addr[40], eth[16];
    rt_nic_ifname(i, eth);
    snprintf(addr, sizeof addr, "%s/%d", n->ip, n->prefix);
    char *addrs[1] = {addr};
    nif.name = eth;
    nif.mac = (char *)n->mac;
    nif.addresses = addrs;
    nif.n_addresses = 1;
    if (i == 0) nif.gateway_v4 = (char *)n->gateway; /* the default route: the first only */
    Vessel__V1__AgentConfigureInterfaceRequest req;
    vessel__v1__agent_configure_interface_request__init(&req);
    req.interface = &nif;
    if (rt_agent(c, &vessel_v1_Agent_ConfigureInterface, &req.base, NULL, AGENT_TIMEOUT_MS, err) < 0)
      return vs_err_wrap(err, "configure %s (network %s)", eth, n->network);
  }
  int emulated = 0;
  if (!c->is_pod && rt_emu_check(c->rt, c->platform, &emulated, err) < 0) return -1;
  if (emulated && !c->from_template) { /* a template's restore has them already */
    pthread_mutex_lock(&c->mu);
    vrpc_channel *ch = c->vm ? vm_channel(c->vm) : NULL;
    pthread_mutex_unlock(&c->mu);
    if (!ch) return vs_err_set(err, VS_UNAVAILABLE, "container %s has no running VM", c->id);
    if (rt_emu_setup(ch, err) < 0) return -1;
  }
  return c->is_pod ? pod_volumes(c, err) : rt_guest_create(c, err);
}

int rt_guest_create(rt_container *c, vs_err *err) {
  /* In a pod: its slot's disk; the pod's hostname, DNS and hosts. */
  const Vessel__V1__ContainersCreateRequest *vs = rt_vm_host(c)->spec;
  char dev[16] = "/dev/vda";
  if (c->pod) rt_pod_slot_device(c->slot, dev);
  Vessel__V1__Mount rootfs;
  vessel__v1__mount__init(&rootfs);
  rootfs.type = (char *)"ext4";
  rootfs.source = dev;
  static char *const ro[1] = {"ro"};
  if (c->spec->read_only_rootfs) {
    rootfs.options = (char **)ro;
    rootfs.n_options = 1;
  }
  Vessel__V1__AgentCreateContainerRequest req;
  vessel__v1__agent_create_container_request__init(&req);
  req.container_id = c->id;
  req.rootfs = &rootfs;
  size_t nm = c->spec->n_mounts;
  Vessel__V1__Mount *guest = calloc(nm ? nm : 1, sizeof *guest);
  Vessel__V1__Mount **gp = calloc(nm ? nm : 1, sizeof *gp);
  char(*tags)[4200] = calloc(nm ? nm : 1, sizeof *tags);
  static char *const opts[4] = {"trans=virtio", "version=9p2000.L", "msize=262144", "ro"};
  int rc;
  if (!guest || !gp || !tags) {
    rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < nm; i++) {
    const Vessel__V1__Mount *m = c->spec->mounts[i];
    guest[i] = *m;
    gp[i] = &guest[i];
    if (!is_volume(m)) continue;
    if (c->pod) { /* a bind of (a path in) the pod's mount of that volume (pod_volumes) */
      const char *rest = "";
      int k = rt_pod_volume(vs, m->source, &rest);
      snprintf(tags[i], sizeof tags[i], POD_VOLUMES "/vol%d%s", k, rest);
      guest[i].type = (char *)"bind";
      guest[i].source = tags[i];
      guest[i].options = (char **)opts + 3; /* "ro" */
      guest[i].n_options = is_read_only(m);
      continue;
    }
    snprintf(tags[i], sizeof tags[i], "vol%zu", i);
    guest[i].type = (char *)"9p";
    guest[i].source = tags[i];
    guest[i].options = (char **)opts;
    guest[i].n_options = is_read_only(m) ? 4 : 3;
  }
  req.mounts = gp;
  req.n_mounts = nm;
  req.hostname = vs->hostname;
  /* No dns given: the network's DNS (hostnet.c), else the host's
   * resolvers a VM can reach. */
  Vessel__V1__Dns dns;
  vessel__v1__dns__init(&dns);
  dns_resolv host;
  char *nsp[3], *sp[1] = {host.search};
  const rt_container *h = rt_vm_host(c);
  if (!vs->dns && h->n_nics && c->rt->dns && dns_serves(c->rt->dns, h->nics[0].gateway)) {
    nsp[0] = (char *)h->nics[0].gateway;
    dns.n_nameservers = 1;
  } else if (!vs->dns) {
    dns_resolv_conf("/etc/resolv.conf", 1, &host);
    for (size_t i = 0; i < host.n_ns; i++) nsp[i] = host.ns[i];
    dns.n_nameservers = host.n_ns;
    dns.search = sp;
    dns.n_search = host.search[0] != 0;
  }
  dns.nameservers = nsp;
  req.dns = vs->dns ? vs->dns : &dns;
  req.hosts = vs->extra_hosts;
  req.n_hosts = vs->n_extra_hosts;
  req.resources = c->spec->resources;
  req.path_restrictions = c->spec->path_restrictions;
  req.n_sysctls = c->spec->n_sysctls;
  req.sysctls = (Vessel__V1__AgentCreateContainerRequest__SysctlsEntry **)c->spec->sysctls;
  req.process = c->spec->process;
  if (c->pod && c->pod->pod_spec) {
    req.share_pid = c->pod->pod_spec->share_pid;
    req.share_ipc = c->pod->pod_spec->share_ipc;
  }
  rc = rt_agent(c, &vessel_v1_Agent_CreateContainer, &req.base, NULL, AGENT_TIMEOUT_MS, err);
out:
  free(guest);
  free(gp);
  free(tags);
  return rc;
}

/* Agent.Sync before the VM ends, so a stopped container's disk has its
 * writes; a Delete cancels it (the disk goes anyway: no need to wait). 0
 * when synced or no longer needed. */
static int sync_guest(rt_container *c, vm *v) {
  pthread_mutex_lock(&c->mu);
  int discarded = c->discard_disk; /* deleted already: no call at all */
  pthread_mutex_unlock(&c->mu);
  if (discarded) return 0;
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

void rt_end_streams(rt_container *c) {
  if (c->is_pod) rt_pod_end_streams(c); /* its containers' streams are on its channel */
  pthread_mutex_lock(&c->mu);
  size_t n = 0;
  for (rt_proc *p = c->execs; p; p = p->next) n++;
  rt_proc **ps = malloc((n ? n : 1) * sizeof *ps);
  n = 0;
  for (rt_proc *p = c->execs; ps && p; p = p->next) {
    p->users++; /* not reaped meanwhile */
    ps[n++] = p;
  }
  pthread_mutex_unlock(&c->mu);
  for (size_t i = 0; i < n; i++) rt_proc_join(ps[i]);
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < n; i++) ps[i]->users--;
  pthread_mutex_unlock(&c->mu);
  free(ps);
  rt_agent_events_stop(c);
  rt_copies_cancel(c);
}

void rt_teardown_vm(rt_container *c) {
  pthread_mutex_lock(&c->mu);
  vm *v = c->vm;
  c->vm = NULL;
  c->qemu_pid = 0;
  pthread_mutex_unlock(&c->mu);
  if (!v) return;
  rt_end_streams(c);
  pthread_rwlock_wrlock(&c->vm_lock); /* no agent call in flight any more */
  pthread_rwlock_unlock(&c->vm_lock);
  /* Nothing runs in the VM any more: flush the guest's writes to the root
   * disk, then end QEMU (a full guest power-off costs more under TCG). */
  vs_err ignore;
  if (sync_guest(c, v) == 0) vm_kill(v);
  else if (vm_stop(v, 5000, &ignore) < 0) vm_kill(v);
  vm_free(v);
}

void rt_detach_vm(rt_container *c) {
  rt_proc_join(&c->init);
  rt_end_streams(c);
  pthread_mutex_lock(&c->mu);
  vm *v = c->vm;
  c->vm = NULL;
  pthread_mutex_unlock(&c->mu);
  if (v) {
    vm_detach(v);
    vm_free(v);
  }
}

int rt_readopt_vm(rt_container *c, vs_err *err) {
  char console[4400];
  snprintf(console, sizeof console, "%s/console.log", c->dir);
  if (!c->sock[0]) { /* state of an older vesseld */
    char taps[VM_MAX_NICS][16];
    vm_names(c, taps, c->sock, sizeof c->sock);
    if (c->n_nics && !c->nics[0].tap[0]) snprintf(c->nics[0].tap, sizeof c->nics[0].tap, "%s", taps[0]);
  }
  vm *v = c->qemu_pid > 0 ? vm_adopt(c->qemu_pid, c->sock, console, 1, err) : NULL;
  if (!v && c->qemu_pid <= 0) vs_err_set(err, VS_NOT_FOUND, "no QEMU was recorded");
  if (v && vm_wait_ready(v, 10000, err) < 0) {
    vm_kill(v);
    vm_free(v);
    v = NULL;
  }
  pthread_mutex_lock(&c->mu);
  c->vm = v;
  if (!v) c->qemu_pid = 0; /* its PID is not touched: it may be another process's by now */
  pthread_mutex_unlock(&c->mu);
  return v ? 0 : -1;
}

void rt_reap_orphans(rt_runtime *rt) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/run", rt->root);
  size_t n;
  rt_container **all = rt_get_all(rt, &n);
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t l = strlen(e->d_name);
    if (l < 5 || strcmp(e->d_name + l - 4, ".rec") != 0) continue;
    char path[4500];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    vm_record r;
    vs_err err;
    if (vm_record_read(path, &r, &err) < 0) {
      vs_log("vesseld", VS_LOG_WARN, "%s", err.msg);
      unlink(path);
      continue;
    }
    int owned = 0;
    for (size_t i = 0; i < n && !owned; i++) {
      pthread_mutex_lock(&all[i]->mu);
      owned = all[i]->vm && !strcmp(all[i]->sock, r.socket);
      pthread_mutex_unlock(&all[i]->mu);
    }
    if (owned) continue;
    vs_log("vesseld", VS_LOG_INFO, "ending QEMU %d (%s): no container owns it", (int)r.pid, r.socket);
    vm_record_end(path, &r);
    for (size_t i = 0; i < r.n_taps; i++) rt_tap_delete(r.taps[i]);
  }
  if (d) closedir(d);
  rt_put_all(all, n);
}
