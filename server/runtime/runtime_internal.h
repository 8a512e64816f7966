/* Internals shared by the runtime's files. */
#ifndef VESSEL_SERVER_RUNTIME_INTERNAL_H
#define VESSEL_SERVER_RUNTIME_INTERNAL_H

#include <pthread.h>

#include "common/rpc.h"
#include "server/logs/logs.h"
#include "server/runtime/runtime.h"
#include "server/vm/vm.h"

typedef enum rt_state {
  RT_CREATING = 1,
  RT_CREATED = 2,
  RT_RUNNING = 3,
  RT_STOPPING = 4,
  RT_STOPPED = 5,
} rt_state;

/* Output waiting for one attacher, or kept for late attachers of an exec. */
typedef struct rt_chunk {
  struct rt_chunk *next;
  int stream;
  size_t len;
  char data[];
} rt_chunk;

struct rt_attach {
  struct rt_container *c;
  struct rt_proc *p;
  int flags;
  int wake_fd; /* eventfd: output or exit arrived */
  rt_chunk *head, *tail;
  struct rt_attach *next;
};

typedef struct rt_proc {
  char id[128]; /* exec ID; "" = init */
  int pid;
  int started, exited;
  rt_exit exit;
  int exit_fd;       /* eventfd written once the process exited */
  pthread_mutex_t stdio_mu; /* guards stdio: senders vs. the relay freeing it */
  vrpc_call *stdio;  /* the agent's Stdio stream for this process */
  pthread_t relay;
  int relay_running;
  rt_chunk *kept, *kept_tail; /* exec output for late attachers */
  rt_chunk *stdin_head, *stdin_tail; /* stdin sent before the start */
  size_t kept_bytes;
  rt_attach *attachers;
  struct rt_proc *next;
} rt_proc;

/* One published port: a listener and its accept thread. */
/* Agent calls other than booting: generous, a loaded TCG guest is slow. */
#define AGENT_TIMEOUT_MS 30000

typedef struct rt_port {
  char host_ip[16], container_ip[16];
  int host_port, container_port;
  int listen_fd, stop_fd;
  pthread_t thread;
} rt_port;

typedef struct rt_container {
  struct rt_runtime *rt;
  char id[128];
  char dir[4200];
  pthread_mutex_t mu; /* state, processes, attachers */
  pthread_mutex_t op; /* one lifecycle operation at a time */
  rt_state state;
  Vessel__V1__ContainersCreateRequest *spec; /* as created, process merged */
  char image_digest[72];
  char platform[80];
  int64_t created_ns, started_ns, finished_ns;
  rt_exit last_exit;
  int has_exit;
  /* network */
  char network[64], ip[16], mac[18], gateway[16], tap[16], bridge[16];
  int prefix;
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
  int discard_disk;     /* being deleted: the teardown need not sync */
  /* the agent's Events stream (OOM kills), relayed to the bus */
  pthread_mutex_t events_mu;
  vrpc_call *events_call;
  pthread_t events_thread;
  int events_running;
  int vcpus, memory_mib;
  rt_proc init;
  rt_proc *execs;
  lg_writer *logs;
  int deleted;
} rt_container;

struct rt_runtime {
  rt_config cfg;
  char root[4000];
  pthread_mutex_t mu; /* the list */
  rt_container **list;
  size_t n;
  int closing; /* vesseld is exiting: relays end quietly, VMs live on */
  int building; /* template builds running */
  struct rt_spare *spare; /* a warm VM ready to be taken (templates.c) */
  int spares_building;
  unsigned spare_seq;
  char bridges[32][16]; /* bridges set up by this vesseld (skip the checks) */
  size_t n_bridges;
  rt_container **dead; /* deleted; freed at close (attachers may hold them) */
  size_t n_dead;
};

/* lifecycle.c */
rt_container *rt_find(rt_runtime *rt, const char *id, vs_err *err);
int rt_agent(rt_container *c, const vrpc_method *m, const ProtobufCMessage *req,
             ProtobufCMessage **resp, int64_t timeout_ms, vs_err *err);
void rt_now(int64_t *ns);
int rt_save(rt_container *c, vs_err *err);

/* spec.c */
Vessel__V1__ProcessSpec *rt_merge_spec(const Vessel__V1__ProcessSpec *req,
                                       const Vessel__V1__EntrypointOverride *ep,
                                       const oci_config *image, const char *hostname,
                                       vs_err *err);
Vessel__V1__ProcessSpec *rt_exec_spec(const Vessel__V1__ProcessSpec *req,
                                      const Vessel__V1__ProcessSpec *init, vs_err *err);
/* Replaces a string field of an unpacked message. */
void rt_set_str(char **field, const char *v);
/* Deep copy of any message (pack + unpack). */
ProtobufCMessage *rt_copy_msg(const ProtobufCMessage *m);

/* stdio.c */
int rt_proc_open_stdio(rt_container *c, rt_proc *p, vs_err *err);
void rt_proc_init(rt_proc *p, const char *id);
void rt_proc_finish(rt_container *c, rt_proc *p, const rt_exit *e);
void rt_proc_free(rt_proc *p);
void rt_proc_join(rt_proc *p);

/* Init's exit: rt_proc_finish stops the container (rt_stopped_locked,
 * under c->mu, before any attacher or waiter hears of the exit, so a Delete
 * right after finds it stopped), then the event goes out. */
int rt_stopped_locked(rt_container *c);
void rt_emit_container_exited(rt_container *c);
void rt_emit_process_exited(rt_container *c, rt_proc *p);
/* The settings every VM of this runtime shares. */
void rt_vm_config(rt_runtime *rt, vm_config *vc, int vcpus, int memory_mib, const char *disk,
                  const char *agent_socket, const char *console);
/* Shuts the VM down (once, whoever calls first) after ending the exec
 * relays; not from an exec relay thread. */
void rt_teardown_vm(rt_container *c);

/* templates.c */
typedef struct rt_template {
  char dir[4200], state[4300], disk[4300];
  char inputs[4096]; /* what the key hashes; kept beside the state */
  int with_nic, memory_mib, vcpus;
} rt_template;
void rt_template_paths(rt_container *c, int with_nic, rt_template *t);
/* 1 if the template's state exists; else starts building it (once) and
 * returns 0: cold-boot this time. */
int rt_template_ready(rt_container *c, rt_template *t);
const char *rt_template_mac(void);
/* Removes templates whose kernel or initramfs is not this vesseld's. */
void rt_templates_prune(rt_runtime *rt);
/* A restored guest's clock set to the host's and its crng reseeded with
 * fresh host entropy. */
int rt_guest_refresh(vrpc_channel *ch, vs_err *err);
/* Warm spares: refill restores one (in the background) if none is there;
 * take hands it over if it is of t's kind; claim makes it c's VM (c->vm,
 * c->tap, c->sock), rootfs_src copied into the disk it sees, renamed to
 * root; on failure the spare is gone and nothing of it is left in c. */
typedef struct rt_spare rt_spare;
void rt_spare_refill(rt_runtime *rt, const rt_template *t);
rt_spare *rt_spare_take(rt_runtime *rt, const rt_template *t);
int rt_spare_claim(rt_container *c, rt_spare *s, const char *rootfs_src, const char *root,
                   const char *console, vs_err *err);
/* At start: ends spares a killed vesseld left; at close: ends this one's. */
void rt_spares_open(rt_runtime *rt);
void rt_spares_close(rt_runtime *rt);

/* agent_events.c */
int rt_agent_events_start(rt_container *c, vs_err *err);
void rt_agent_events_stop(rt_container *c);

/* ports.c */
int rt_ports_start(rt_container *c, vs_err *err);
void rt_ports_stop(rt_container *c);

/* hostnet.c */
/* Runs argv (no shell); -1 with its stderr in err unless it exits 0. */
int rt_run(vs_err *err, const char *const *argv);
#define RT_RUN(err, ...) rt_run(err, (const char *const[]){__VA_ARGS__, NULL})
/* A persistent tap device, up, in bridge (if not NULL); attach puts an
 * existing one in bridge and up; delete removes it. */
int rt_tap_create(const char *name, const char *bridge, vs_err *err);
int rt_tap_attach(const char *name, const char *bridge, vs_err *err);
void rt_tap_delete(const char *name);
/* The network's bridge, ready, in c->bridge (the VM's tap is made when it
 * boots); teardown removes the tap. */
int rt_net_setup(rt_container *c, const net_network *n, vs_err *err);
void rt_net_teardown(rt_container *c);

#endif
