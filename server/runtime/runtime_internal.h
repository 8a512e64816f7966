/* Internals shared by the runtime's files, one noun each:
 *
 *   lifecycle.c  the state machine: open/close, create, start, stop, delete,
 *                stats; owns every transition, init's exit included
 *   state.c      containers on disk and in memory: persist, load, the
 *                reference-counted list
 *   boot.c       a container's VM: boot or take one from the pool, configure
 *                the guest, re-adopt, tear down; the QEMU records
 *   vmpool.c     templates and warm spares: hands out VMs, never touches a
 *                container
 *   exec.c       processes: exec, signal, wait, resize, stdin; finished
 *                execs are forgotten
 *   copy.c       copies in and out (the agent's CopyIn/CopyOut)
 *   upkeep.c     one thread, every second: console logs kept bounded,
 *                finished execs forgotten
 *   stdio.c      the relay and attachers: reports an exit through a
 *                callback, never tears a VM down, never looks a container up
 *   events.c     events to the bus
 *   ports.c      published ports (one poller for all)
 *   hostnet.c    bridges and taps;  agent_events.c  the guest's OOM events
 *   describe.c   the API's view;    spec.c  process specs
 *   pod.c        pods: a VM (an rt_container with is_pod) holding several
 *                containers, each on a disk slot of it
 *   metrics.c    containers by state, pods, VM starts by path
 *
 * Lock order (take left before right, never the other way):
 *   pod->op  >  c->op  >  c->vm_lock  >  rt->mu  >  p->out_mu  >  c->mu  >
 *   p->stdio_mu, c->events_mu, the pool's and the ports' own locks
 * c->mu guards the container's state, its process list and every field of
 * its processes but their output (p->out_mu: log, kept output, attachers).
 */
#ifndef VESSEL_SERVER_RUNTIME_INTERNAL_H
#define VESSEL_SERVER_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdio.h>

#include "common/rpc.h"
#include "server/dns/dns.h"
#include "server/logs/logs.h"
#include "server/runtime/runtime.h"
#include "server/vm/vm.h"
#include "vessel/v1/pods.pb-c.h"

typedef enum rt_state {
  RT_CREATING = 1,
  RT_CREATED = 2,
  RT_RUNNING = 3,
  RT_STOPPING = 4,
  RT_STOPPED = 5,
} rt_state;

/* Agent calls other than booting: generous, a loaded TCG guest is slow. */
#define AGENT_TIMEOUT_MS 30000

/* A chunk of output waiting for one attacher, or kept for the first
 * attacher of an exec. */
typedef struct rt_chunk {
  struct rt_chunk *next;
  int stream;
  size_t len;
  char data[];
} rt_chunk;

struct rt_attach {
  struct rt_container *c; /* a reference, put at close */
  struct rt_proc *p;      /* counted in p->users */
  int flags;
  int wake_fd; /* eventfd: output or exit arrived */
  rt_chunk *head, *tail;
  size_t queued; /* bytes in head..tail: bounded, see stdio.c */
  struct rt_attach *next;
};

typedef struct rt_container rt_container;
typedef struct rt_proc rt_proc;

/* Disk slots a pod may have. */
#define RT_MAX_SLOTS 16

/* One network attachment: a NIC of the VM on the network's bridge (through
 * its tap) with the address leased there. The first is the guest's default
 * route, its DNS and the target of published ports. */
typedef struct rt_nic {
  char network[64], ip[16], mac[18], gateway[16], tap[16], bridge[16];
  int prefix; /* NIC i is eth<i> in the guest (rt_nic_ifname) */
} rt_nic;

/* The guest's name of NIC i: what configure_guest makes it. */
static inline void rt_nic_ifname(size_t i, char out[16]) { snprintf(out, 16, "eth%u", (unsigned)i); }
/* How the relay reports a process's end (from its thread; once). */
typedef void (*rt_exit_fn)(rt_container *c, rt_proc *p, const rt_exit *e);

struct rt_proc {
  char id[128]; /* exec ID; "" = init */
  /* under c->mu */
  int pid;
  int started, exited;
  rt_exit exit;
  int64_t exited_mono_ms; /* for forgetting finished execs */
  int64_t seen_mono_ms;   /* its exit reached a client (0 = not yet) */
  int users;              /* waiters and attachers holding p */
  /* */
  int exit_fd;              /* eventfd written once the process exited */
  pthread_mutex_t stdio_mu; /* guards stdio and stdin_*: senders vs. the relay freeing it */
  vrpc_call *stdio;         /* the agent's Stdio stream for this process */
  rt_chunk *stdin_head, *stdin_tail; /* stdin sent before the start */
  pthread_t relay;
  int relay_running; /* a relay thread to join (whoever joins clears it) */
  rt_exit_fn on_exit;
  /* output, under out_mu */
  pthread_mutex_t out_mu;
  pthread_cond_t out_cv; /* an attacher drained or left; the relay may go on */
  int out_closing;       /* the relay must not wait for attachers any more */
  int keeping;           /* exec output kept until the first attach */
  rt_chunk *kept, *kept_tail;
  size_t kept_bytes;
  lg_writer *log; /* init: the container's log (the container owns it) */
  rt_attach *attachers;
  struct rt_proc *next;
};

/* One published port (ports.c). */
typedef struct rt_port {
  char host_ip[16], container_ip[16];
  int host_port, container_port;
  int listen_fd;
} rt_port;

struct rt_container {
  struct rt_runtime *rt;
  int refs; /* under rt->mu: the list's, and one per holder */
  char id[128];
  char dir[4200];
  pthread_mutex_t mu; /* state, processes */
  pthread_mutex_t op; /* one lifecycle operation at a time */
  rt_state state;
  Vessel__V1__ContainersCreateRequest *spec; /* as created, process merged */
  char image_digest[72];
  char platform[80];
  int stop_signal; /* the image's StopSignal; 0 = SIGTERM */
  /* restart policy (lifecycle.c), under mu and in state.json */
  int manual_stop;      /* stopped by Stop: the policy does not restart it */
  int restart_due;      /* a policy restart is waiting for its delay */
  int restart_count;    /* policy restarts since the last client Start */
  int64_t restart_delay_ms;
  int64_t created_ns, started_ns, finished_ns;
  rt_exit last_exit;
  int has_exit;
  /* networks (none for "none") */
  rt_nic nics[VM_MAX_NICS];
  size_t n_nics;
  rt_port *ports;
  size_t n_ports;
  /* VM: agent calls hold vm_lock shared; tearing the VM down holds it
   * exclusively, after taking vm out of the container under mu. */
  pthread_rwlock_t vm_lock;
  vm *vm;
  char sock[4200]; /* its agent socket */
  int qemu_pid;
  int64_t boot_ms;
  int from_template;
  int starting, exit_event_pending; /* init's exit event waits for STARTED */
  vrpc_call *sync_call; /* the teardown's Agent.Sync, while in flight */
  vrpc_call **copies;   /* CopyIn/CopyOut calls in flight (copy.c) */
  size_t n_copies;
  int discard_disk;     /* being deleted: the teardown need not sync */
  /* the agent's Events stream (OOM kills), relayed to the bus */
  pthread_mutex_t events_mu;
  pthread_cond_t events_cv; /* an OOM kill was relayed */
  int oom_seen;
  vrpc_call *events_call;
  pthread_t events_thread;
  int events_running;
  int vcpus, memory_mib;
  /* Pods (pod.c). A pod is an rt_container with is_pod: its VM, networks
   * and ports, no image and no init. A container in a pod holds a
   * reference to it in pod, has no VM of its own (rt_vm_host) and runs on
   * disk slot `slot` of it. */
  char cri_log[4096]; /* init's output also written here, in the CRI's format */
  int is_pod;
  struct rt_container *pod;
  int slot;
  Vessel__V1__PodsCreateRequest *pod_spec; /* a pod's, as created */
  int n_slots;                             /* a pod's disk slots */
  char slot_owner[RT_MAX_SLOTS][128];      /* under mu: "" = free */
  rt_proc init;
  rt_proc *execs;
  lg_writer *logs;
  int deleted;
};

typedef struct rt_pool rt_pool;
typedef struct rt_ports rt_ports;

struct rt_runtime {
  rt_config cfg;
  char root[4000];
  pthread_mutex_t mu; /* the list, refcounts, bridges */
  rt_container **list;
  size_t n;
  int closing; /* vesseld is exiting: relays end quietly, VMs live on (atomic) */
  int bg;       /* auto-removals and policy restarts in flight (under mu) */
  pthread_cond_t bg_cv; /* bg dropped, or closing: a waiting restart ends */
  /* upkeep.c: its thread (stop and cv under mu) */
  pthread_t upkeep_thread;
  pthread_cond_t upkeep_cv;
  int upkeep_running, upkeep_stop;
  rt_pool *pool;   /* templates and warm spares (vmpool.c) */
  rt_ports *ports; /* the published-port proxy (ports.c) */
  char bridges[32][16]; /* bridges set up by this vesseld (skip the checks) */
  int trace_fd;         /* cfg.trace_agent_calls, opened; -1 = none */
  dns_server *dns;      /* the networks' DNS (hostnet.c) */
  size_t n_bridges;
  pthread_mutex_t emu_mu; /* one build of the emulators' disk (emulate.c) */
  /* metrics.c: series in cfg.metrics (all NULL without one) */
  mt_series *m_containers[6]; /* by rt_state */
  mt_series *m_pods;
  mt_series *m_starts[3], *m_start_secs[3]; /* by rt_start_path */
};

/* metrics.c */
/* How a container's VM started (rt_boot). */
typedef enum rt_start_path { RT_START_SPARE, RT_START_TEMPLATE, RT_START_COLD } rt_start_path;
/* The runtime's series in rt->cfg.metrics, if any. */
int rt_metrics_open(rt_runtime *rt, vs_err *err);
/* From then on, containers and pods are counted at each rendering. */
int rt_metrics_collect(rt_runtime *rt, vs_err *err);
/* A monotonic clock in seconds, for durations. */
double rt_metrics_clock(void);
/* A VM started by path, asked for at t0 (rt_metrics_clock). */
void rt_metrics_vm_start(rt_runtime *rt, rt_start_path path, double t0);

int rt_closing(rt_runtime *rt);
int64_t rt_mono_ms(void);
/* ms from now, for pthread_cond_timedwait (CLOCK_REALTIME). */
struct timespec rt_deadline(int64_t ms);
/* Runs fn(arg) on a detached thread; -1 if none could be made. */
int rt_spawn_detached(void *(*fn)(void *), void *arg);

/* The container whose VM c's processes run in: its pod, or c itself. */
static inline rt_container *rt_vm_host(rt_container *c) { return c->pod ? c->pod : c; }

/* state.c */
rt_container *rt_container_new(rt_runtime *rt);
/* A reference to the container id (or an unambiguous prefix of it); not
 * a pod (NOT_FOUND). */
rt_container *rt_get(rt_runtime *rt, const char *id, vs_err *err);
/* The same for a pod. */
rt_container *rt_get_pod(rt_runtime *rt, const char *id, vs_err *err);
void rt_ref(rt_container *c);
/* Drops a reference; the last one frees everything c holds. */
void rt_put(rt_container *c);
/* Adds c to the list (which holds the caller's reference from then on);
 * ALREADY_EXISTS if its ID is taken. */
int rt_list_add(rt_runtime *rt, rt_container *c, vs_err *err);
/* Removes c from the list and drops the list's reference. */
void rt_list_remove(rt_runtime *rt, rt_container *c);
/* References to every container, oldest first; free with rt_put_all. */
rt_container **rt_get_all(rt_runtime *rt, size_t *n);
void rt_put_all(rt_container **all, size_t n);
/* state.json (with c->mu held or before c is shared) and spec.pb. */
int rt_save(rt_container *c, vs_err *err);
/* rt_save where the caller cannot fail any more: a failure is logged. */
void rt_save_or_log(rt_container *c);
int rt_save_spec(rt_container *c, vs_err *err);
const char *rt_state_name(rt_state s);
int rt_valid_id(const char *id);
void rt_random_id(char out[128]);
/* Loads the containers under <root>/containers; those whose VM may still
 * run are listed in *readopt (references; the caller puts them). */
int rt_load(rt_runtime *rt, rt_container ***readopt, size_t *n_readopt, vs_err *err);

/* boot.c */
/* The VM of c with rootfs_src copied as its root disk (NULL: the disk a
 * stopped c kept): a warm spare, a template restore or a cold boot. */
int rt_boot(rt_container *c, const char *rootfs_src, vs_err *err);
/* The guest side of a booted VM: its NICs, and the container itself
 * (none for a pod). */
int rt_configure_guest(rt_container *c, vs_err *err);
/* The container created in the guest (of its pod, over its slot, for a
 * container in a pod). */
int rt_guest_create(rt_container *c, vs_err *err);
/* Ends c's streams on its VM's channel: exec relays, events, copies (and,
 * for a pod, all of those of its containers, their inits' too). */
void rt_end_streams(rt_container *c);
int rt_agent(rt_container *c, const vrpc_method *m, const ProtobufCMessage *req,
             ProtobufCMessage **resp, int64_t timeout_ms, vs_err *err);
/* Shuts the VM down (once, whoever calls first) after ending the exec
 * relays; not from an exec relay thread. */
void rt_teardown_vm(rt_container *c);
/* Connects again to a VM an earlier vesseld left running; -1 if it is gone. */
int rt_readopt_vm(rt_container *c, vs_err *err);
/* Ends every recorded QEMU no container owns (a vesseld that died left it). */
void rt_reap_orphans(rt_runtime *rt);
/* Leaves c's VM running for a later vesseld (at close). */
void rt_detach_vm(rt_container *c);

/* emulate.c: foreign-architecture images through user-mode emulation. */
/* The host's architecture, OCI spelling ("amd64", "arm64"). */
const char *rt_emu_host_arch(void);
/* The architecture of rt's VMs (--guest-arch), OCI spelling. */
const char *rt_native_arch(const rt_runtime *rt);
/* platform ("linux/arm64", "linux/arm/v7"): *emulated = 0 when native to
 * rt's VMs, 1 when an emulator runs it (VMs of the host's architecture
 * only); FAILED_PRECONDITION naming both platforms when neither. */
int rt_emu_check(const rt_runtime *rt, const char *platform, int *emulated, vs_err *err);
/* The emulators' read-only ext4 disk (built once per set of emulators). */
int rt_emu_disk(rt_runtime *rt, char *out, size_t n, vs_err *err);
/* In a fresh VM (its agent channel): mounts the emulators' disk (/dev/vdb)
 * and registers them with binfmt_misc. */
int rt_emu_setup(vrpc_channel *ch, vs_err *err);

/* vmpool.c: templates and warm spares, keyed by what the VM is made of. */
typedef struct rt_vm_kind {
  int vcpus, memory_mib, n_nics;
  int n_slots; /* a pod's disk slots (no root disk); 0 for a container */
  /* 9p shares tagged vol0..vol<n-1>: a template has them (unmounted, so
   * a restore may point them at other host directories) */
  int n_shares;
  /* The emulators' disk (vdb, emulate.c) of a foreign image's VM, or NULL:
   * its template has it, mounted and registered with binfmt_misc. */
  const char *emu_disk;
} rt_vm_kind;
/* Every disk a VM is made with (a root disk, a pod's slot) is this large
 * (sparse): a restored guest keeps the capacity it saw, and root
 * filesystems fit in it. */
#define RT_DISK_BYTES (64ll << 30)
/* Host directories (9p shares) a VM may have. */
#define RT_MAX_SHARES 16
/* A VM handed out by the pool: running, its agent answering, its clock and
 * entropy fresh. */
typedef struct rt_pool_vm {
  vm *v;
  char sock[4200], tap[16];
  int64_t boot_ms;
} rt_pool_vm;
/* At start: prunes templates of other inputs, removes a dead vesseld's
 * spares. At close: waits for builds, ends the spare. */
int rt_pool_open(rt_runtime *rt, vs_err *err);
void rt_pool_close(rt_runtime *rt);
/* A warm spare of kind k made the caller's VM: 1 with *out (rootfs_src in
 * its disk, now at root; its console log now at console; its tap, if any,
 * in bridge), or 0 when there is none (or it failed: it is gone). Spares
 * have at most one NIC: VMs with more restore from their template. */
int rt_pool_take_spare(rt_runtime *rt, const rt_vm_kind *k, const char *rootfs_src,
                       const char *root, const char *console, const char *bridge,
                       rt_pool_vm *out);
/* The MAC a template's NIC i has (a restored guest's until configured). */
void rt_template_mac(size_t i, char out[18]);
/* vc (the caller's disk, socket, taps) restored from kind k's template: 1
 * with out->v, or 0 when the template is not built yet (its build starts)
 * or the restore failed: cold-boot then. */
int rt_pool_restore(rt_runtime *rt, const rt_vm_kind *k, const vm_config *vc, rt_pool_vm *out);
/* With cfg.trace_agent_calls: one line per agent call (vm_config.on_call). */
void rt_trace_call(void *rt, const vrpc_method *m);
/* The settings every VM of this runtime shares. */
void rt_vm_config(rt_runtime *rt, vm_config *vc, int vcpus, int memory_mib, const char *disk,
                  const char *agent_socket, const char *console);
/* A restored guest's clock set to the host's and its crng reseeded. */
int rt_guest_refresh(vrpc_channel *ch, vs_err *err);

/* exec.c */
/* Opens init's or an exec's stdio and starts it in the guest. */
int rt_start_process(rt_container *c, rt_proc *p, rt_exit_fn on_exit, vs_err *err);
/* Forgets finished execs whose exit a client saw (or that expired). */
void rt_execs_reap(rt_container *c);
/* The process (init for ""), with c->mu held; NOT_FOUND otherwise. */
rt_proc *rt_proc_of(rt_container *c, const char *exec_id, vs_err *err);

/* upkeep.c: starts / stops the upkeep thread (console logs, finished execs). */
int rt_upkeep_open(rt_runtime *rt, vs_err *err);
void rt_upkeep_close(rt_runtime *rt);

/* lifecycle.c, shared with pod.c */
/* Background work of a container on a thread of its own (it holds a
 * reference, rt_close waits for it); fn ends with rt_bg_end(c). */
int rt_bg_start(rt_container *c, void *(*fn)(void *));
void rt_bg_end(rt_container *c);
/* Ports and networks of a VM's spec checked. */
int rt_check_vm_spec(const Vessel__V1__ContainersCreateRequest *req, vs_err *err);
/* The network part of create: an address on each network, its bridge.
 * (What was leased before a failure goes with rt_release_host.) */
int rt_attach_networks(rt_container *c, const Vessel__V1__ContainersCreateRequest *req,
                       vs_err *err);
/* Undoes what create and start set up on the host (not the directory):
 * ports, VM, taps, leases; for a container in a pod, rt_pod_leave. */
void rt_release_host(rt_container *c);
/* A create that failed (c->op held): what it set up released, c out of the
 * list, its directory gone. */
void rt_create_undo(rt_container *c);

/* describe.c */
/* The API's view of c (c->mu held; its pod's taken for the VM). */
Vessel__V1__Container *rt_describe_locked(rt_container *c);
/* The VM of c (its mu held), NULL if none runs. */
Vessel__V1__VmInfo *rt_vm_info(rt_container *c);

/* pod.c */
/* c (being created, pod_id in its spec) joins the pod: a reference in
 * c->pod and a free disk slot claimed in c->slot. NOT_FOUND,
 * FAILED_PRECONDITION (not running), RESOURCE_EXHAUSTED (no slot). */
int rt_pod_join(rt_container *c, vs_err *err);
/* Its slot's disk holds rootfs_src from now (the slot is unused in the
 * guest: written in place, the guest drops cached blocks at its mount). */
int rt_pod_fill_slot(rt_container *c, const char *rootfs_src, vs_err *err);
/* c leaves its pod: deleted in the guest (if the VM runs), its slot freed
 * (its disk emptied), the reference dropped. */
void rt_pod_leave(rt_container *c);
/* A pod whose VM died: its containers stopped, the pod STOPPED with the
 * reason (in the background: called from the VM's relay). */
void rt_pod_lost(rt_container *pod);
/* Ends the streams of the pod's containers on its VM's channel (their
 * inits' relays too), before the VM goes or is left. */
void rt_pod_end_streams(rt_container *pod);
/* The host file of a pod's slot i (out: 4400 bytes). */
void rt_pod_slot_path(rt_container *pod, int i, char *out);
/* The guest device of slot i. */
void rt_pod_slot_device(int i, char out[16]);
/* The index of the pod's volume (pod: its spec) that source is, or is a
 * path in (*rest: "" or "/sub/path"); -1 if none. */
int rt_pod_volume(const Vessel__V1__ContainersCreateRequest *pod, const char *source,
                  const char **rest);
/* A container in a pod, after a vesseld restart: c->pod set from its
 * pod_id; 0 if the pod is there. */
int rt_pod_relink(rt_container *c);

/* copy.c: cancels the copies in flight (before the VM goes). */
void rt_copies_cancel(rt_container *c);

/* spec.c */
Vessel__V1__ProcessSpec *rt_merge_spec(const Vessel__V1__ProcessSpec *req,
                                       const Vessel__V1__EntrypointOverride *ep,
                                       const oci_config *image, const char *hostname,
                                       vs_err *err);
Vessel__V1__ProcessSpec *rt_exec_spec(const Vessel__V1__ProcessSpec *req,
                                      const Vessel__V1__ProcessSpec *init, vs_err *err);
/* A signal name or number as an image's StopSignal gives it; 0 if none. */
int rt_signal_number(const char *name);
/* Replaces a string field of an unpacked message. */
void rt_set_str(char **field, const char *v);
/* Deep copy of any message (pack + unpack). */
ProtobufCMessage *rt_copy_msg(const ProtobufCMessage *m);
/* The rotation of c's log: its spec's LogConfig, else vesseld's defaults
 * (rt_config), else server/logs' (lifecycle.c). */
void rt_log_limits(const rt_container *c, int64_t *max_bytes, int32_t *max_files);

/* stdio.c */
void rt_proc_init(rt_proc *p, const char *id);
/* Opens the agent's Stdio stream of p and starts its relay, which calls
 * on_exit once the process ended or its stream broke (not when vesseld is
 * closing: the process lives on). */
int rt_proc_open_stdio(rt_container *c, rt_proc *p, rt_exit_fn on_exit, vs_err *err);
/* Records p's exit (under c->mu; 0 if it already had one) ... */
int rt_proc_set_exit_locked(rt_proc *p, const rt_exit *e);
/* ... and then, without c->mu, wakes its waiters and attachers. */
void rt_proc_wake(rt_proc *p);
/* A process that ended made ready to run again (init of a restarted
 * container): no exit, no stdin kept. Its relay was joined. */
void rt_proc_reset(rt_container *c, rt_proc *p);
/* Ends the relay (cancelling its stream) and waits for it. */
void rt_proc_join(rt_proc *p);
void rt_proc_free(rt_proc *p);

/* events.c */
void rt_now(int64_t *ns);
void rt_emit(rt_container *c, int type, const char *exec_id, const rt_exit *e);

/* agent_events.c */
int rt_agent_events_start(rt_container *c, vs_err *err);
void rt_agent_events_stop(rt_container *c);
/* Waits up to ms for the guest's OOM event (an init killed for memory: its
 * CONTAINER_OOM comes on another stream than its exit, and goes first). */
void rt_agent_events_wait_oom(rt_container *c, int ms);

/* ports.c: one poller thread proxies every published port. */
int rt_ports_open(rt_runtime *rt, vs_err *err);
void rt_ports_close(rt_runtime *rt);
int rt_ports_start(rt_container *c, vs_err *err);
void rt_ports_stop(rt_container *c);

/* hostnet.c */
/* Runs argv (no shell); -1 with its stderr in err unless it exits 0. */
int rt_run(vs_err *err, const char *const *argv);
#define RT_RUN(err, ...) rt_run(err, (const char *const[]){__VA_ARGS__, NULL})
/* A persistent tap device, up, in bridge (if not NULL); attach puts an
 * existing one in bridge and up; delete removes it. */
int rt_tap_create(const char *name, const char *bridge, vs_err *err);
/* The name of a VM's tap for its NIC i: stem (at most 14 bytes) for the
 * first, stem and a letter past hex digits ('h', 'i', ...) for the others. */
void rt_tap_name(const char *stem, size_t i, char out[16]);
int rt_tap_attach(const char *name, const char *bridge, vs_err *err);
void rt_tap_delete(const char *name);
/* The bridge of network n, ready, in nic->bridge (the VM's tap is made
 * when it boots); teardown removes every NIC's tap. */
int rt_net_setup(rt_runtime *rt, rt_nic *nic, const net_network *n, vs_err *err);
void rt_net_teardown(rt_container *c);
/* The networks' DNS server (opened with the runtime) and its lookup. */
int rt_dns_open(rt_runtime *rt, vs_err *err);

#endif
