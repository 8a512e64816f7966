/* The state vminitd keeps: its containers and their processes, the event
 * hub, and the shutdown request. One instance lives in main() and is the
 * context of every Agent handler; it is the only shared state (what PID 1
 * inherently owns), guarded by one mutex. */
#ifndef VESSEL_GUEST_AGENT_AGENT_H
#define VESSEL_GUEST_AGENT_AGENT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/vs_err.h"
#include "guest-agent/events.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_VERSION "0.1.0"
#define AG_ID_MAX 128

typedef enum ag_pstate {
  AG_CREATED = 0, /* prepared, not started */
  AG_RUNNING = 1,
  AG_EXITED = 2,
} ag_pstate;

typedef struct ag_container ag_container;

/* One process (a container's init or an exec'd one). Strings and arrays
 * are owned; everything the child needs is prepared before fork so the
 * child only makes system calls. */
typedef struct ag_process {
  char id[AG_ID_MAX + 1];
  ag_container *ct;
  int is_init;
  ag_pstate state;
  pid_t pid;
  int exit_code; /* 128+signal when killed */
  int exit_signal;
  struct timespec exited_at;
  int oom_killed;
  int terminal;
  /* parent ends of the stdio plumbing; -1 when closed/absent */
  int stdin_w;
  int stdout_r;
  int stderr_r;
  int pty_master;
  int stdio_open; /* a Stdio stream is attached */
  int stdin_closed;
  int starting;   /* StartProcess in progress */
  int refs;       /* handlers using it outside a->mu */
  uint64_t oom_base; /* memory.events oom_kill when started */
  /* init only: the child waits on start_w before exec */
  int start_w;
  int errpipe_r;
  struct sp_exec *exec; /* prepared exec data (spawn.h) */
  struct ag_process *next;
} ag_process;

struct ag_container {
  char id[AG_ID_MAX + 1];
  char bundle[256];   /* /run/vessel/c/<id> */
  char rootfs[300];   /* <bundle>/rootfs: the mounted root disk */
  char cgroup[300];   /* /sys/fs/cgroup/vessel/<id> */
  char hostname[64];
  int rootfs_mounted;
  int creating, deleting;
  uint64_t oom_kills_seen; /* memory.events oom_kill already reported */
  ag_process *procs;  /* init first */
  struct ag_container *next;
};

typedef struct agent {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* broadcast whenever a process changes state */
  ag_container *containers;
  ev_hub events;
  int shutdown_fd;    /* eventfd: main() powers off when it fires */
  int shutdown_action; /* 1 poweroff, 2 reboot */
  /* exits of pids nobody claimed yet (the child may exit before the agent
   * records its pid); ring buffer */
  struct { pid_t pid; int status; } unclaimed[64];
  unsigned unclaimed_next;
  /* PID 1 of the PID and IPC namespaces containers may share (started on
   * first use, under mu); 0 = none yet. */
  pid_t holder;
} agent;

int ag_init(agent *a, vs_err *err);

/* Looks up under a->mu (caller holds it). process_id "" or == container id
 * means the init process. */
ag_container *ag_find_container(agent *a, const char *id);
ag_process *ag_find_process(ag_container *c, const char *process_id);

/* Validates [A-Za-z0-9][A-Za-z0-9_.-]{0,127}. */
int ag_valid_id(const char *id);

#ifdef __cplusplus
}
#endif
#endif
