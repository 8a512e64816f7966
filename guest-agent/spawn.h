/* sp: starting processes. Everything a child needs is prepared in an
 * sp_exec (and, for a container's init, an sp_rootfs) before the clone, so
 * the child only makes system calls: vminitd is multi-threaded and a child
 * of a threaded process must not take locks (malloc, stdio).
 *
 * The child reports back over a close-on-exec status pipe:
 *   'R'            init only: namespaces and root are ready
 *   'P' pid        exec'd only: pid of the real process (the helper exits)
 *   'E' code msg   setup or exec failed (code = vs_code)
 *   EOF            exec succeeded */
#ifndef VESSEL_GUEST_AGENT_SPAWN_H
#define VESSEL_GUEST_AGENT_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "common/vs_err.h"
#include "guest-agent/user.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SP_MAX_RLIMITS 16
#define SP_MAX_MOUNTS 64
#define SP_MAX_SYSCTLS 16
#define SP_MAX_PATHS 32

typedef struct sp_exec {
  char **argv; /* NULL-terminated, owned */
  char **envp; /* NULL-terminated, owned */
  const char *path; /* PATH used to look up argv[0] (points into envp) */
  char cwd[1024];
  usr_ident user;
  int n_rlimits;
  struct {
    int resource;
    struct rlimit lim;
  } rlimits[SP_MAX_RLIMITS];
  uint64_t caps;
  int no_new_privs;
  int oom_score_adj; /* 0 = unchanged */
  int terminal;
  unsigned short rows, cols;
  /* the devpts instance's ptmx the terminal comes from: an exec's is its
   * container's (/proc/<init>/root/dev/pts/ptmx), so the process finds
   * its tty there by name; "" = the guest's */
  char ptmx[64];
  /* child ends of stdio: pipes, or the pty slave in all three */
  int stdin_r, stdout_w, stderr_w;
  int cgroup_fd; /* cgroup.procs of the container, or -1 */
} sp_exec;

typedef struct sp_mount {
  char type[32];
  char source[512];
  char target[1024]; /* absolute, inside the container */
  unsigned long flags, propagation;
  char data[512];
  int bind;
} sp_mount;

/* What the init child sets up before pivot_root. */
typedef struct sp_rootfs {
  char root[300];     /* mounted root filesystem (guest path) */
  char bundle[256];   /* holds hosts, resolv.conf, hostname to bind in */
  char hostname[64];
  int readonly;
  sp_mount mounts[SP_MAX_MOUNTS];
  /* masked and read-only paths (custom: these lists, else the defaults) */
  int custom_paths;
  char masked[SP_MAX_PATHS][256], ro_paths[SP_MAX_PATHS][256];
  size_t n_masked, n_ro_paths;
  /* sysctls of its IPC namespace, written by the child once it has it */
  struct {
    char path[160], value[96];
  } sysctls[SP_MAX_SYSCTLS];
  size_t n_sysctls;
  size_t n_mounts;
} sp_rootfs;

/* Builds an sp_exec from plain values. args/env as given; env gets PATH,
 * HOME (from user) and, with a terminal, TERM=xterm when missing. */
int sp_exec_init(sp_exec *x, const char *const *args, size_t n_args,
                 const char *const *env, size_t n_env, const char *cwd,
                 vs_err *err);
void sp_exec_free(sp_exec *x);

/* RLIMIT_* name to resource number, -1 if unknown. */
int sp_rlimit_from_name(const char *name);

/* Starts a container's init: clones into new mount/pid/uts/ipc namespaces,
 * sets up the root (rootfs), reports 'R' on status_w, then blocks until a
 * byte arrives on start_r, then execs x. Returns the child pid (parent).
 * With pid_of / ipc_of (> 0) the init joins that process's PID / IPC
 * namespace instead of a new one: a helper joins and clones it (as
 * vminitd's child, CLONE_PARENT); the helper's pid is returned and the
 * init's arrives first as 'P'. */
pid_t sp_spawn_init(const sp_rootfs *r, const sp_exec *x, int status_w, int start_r,
                    pid_t pid_of, pid_t ipc_of, vs_err *err);

/* A process that is PID 1 of new PID and IPC namespaces and only reaps
 * what is orphaned there, for containers to share (sp_spawn_init's
 * pid_of / ipc_of). vminitd's child. */
pid_t sp_spawn_holder(vs_err *err);

/* Starts a process inside the namespaces of init_pid: a helper joins them
 * and clones the real process as a sibling (CLONE_PARENT), so vminitd
 * reaps it. Returns the helper's pid; the real pid arrives as 'P'. */
pid_t sp_spawn_exec(pid_t init_pid, const sp_exec *x, int status_w, vs_err *err);

/* Parent side of the status pipe: reads one report. Returns 'R', 'P' (with
 * *pid), 'E' (err filled), 0 on EOF, -1 on read error. */
int sp_read_status(int status_r, pid_t *pid, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
