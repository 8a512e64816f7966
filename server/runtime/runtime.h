/* runtime: containers in VMs. Each container is one QEMU VM (server/vm)
 * running vminitd; the runtime boots it on Create, drives the guest agent
 * with the same vessel.v1 messages the host API receives, relays the
 * processes' stdio to logs and attached clients, and keeps every
 * container's state on disk under <root>/containers/<id>. */
#ifndef VESSEL_SERVER_RUNTIME_RUNTIME_H
#define VESSEL_SERVER_RUNTIME_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"
#include "server/events/events.h"
#include "server/images/images.h"
#include "server/metrics/metrics.h"
#include "server/net/net.h"
#include "server/vm/vm.h"
#include "vessel/v1/containers.pb-c.h"
#include "vessel/v1/pods.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rt_config {
  const char *root;   /* vesseld's state directory */
  const char *kernel; /* guest kernel (vmlinux / bzImage) */
  const char *initrd; /* vminitd initramfs */
  const char *qemu;   /* NULL = qemu-system-x86_64 from PATH */
  int vcpus;          /* default per VM: 1 */
  int memory_mib;     /* default per VM: 256 */
  img_store *images;
  net_store *networks;
  evb_bus *events;
  /* A file that gets a line "<host RPC> <agent RPC>" for every agent call
   * (host RPC "-" when no client call runs it), or NULL: what
   * proto/README.md's host -> agent table is checked against. */
  const char *trace_agent_calls;
  /* Resolvers the networks' DNS forwards to ("ip[:port]"); none = the
   * nameservers of /etc/resolv.conf. */
  char *const *dns_upstreams;
  size_t n_dns_upstreams;
  /* VMs restored from a template load their own copy of its RAM instead
   * of mapping its RAM file copy-on-write (vmpool.c). */
  int template_memory_copy;
  int tb_size_mib; /* TCG translation cache per VM; 0 = QEMU's default */
  int max_spares;  /* warm spares at most; 0 = 20, negative = none */
  int spare_memory_s; /* how long a burst of starts sizes the pool; 0 = 120 */
  /* Every VM's accelerator (KVM or TCG), decided once by vm_accel_decide;
   * it is part of the templates' key. */
  vm_accel accel;
  /* Containers' logs rotate past log_max_bytes, log_max_files files at
   * most, unless a container's LogConfig says otherwise; 0 = server/logs'
   * defaults. */
  int64_t log_max_bytes;
  int log_max_files;
  /* The VMs' architecture (VM_ARCH_HOST: the host's). kernel/initrd must
   * be built for it; images pulled without a platform are of it. */
  vm_arch guest_arch;
  /* Where the runtime records its metrics (metrics.c), or NULL. Its
   * collector reads the runtime: stop rendering before rt_close. */
  mt_registry *metrics;
} rt_config;

typedef struct rt_runtime rt_runtime;

/* The platforms whose images rt runs, "os/arch": its VMs' own first, then
 * those the host has user-mode emulators for (emulate.c; only when the VMs
 * are of the host's architecture); how many. */
size_t rt_emu_platforms(const rt_runtime *rt, char out[][32], size_t max);

/* Loads the containers recorded under <root>/containers. */
rt_runtime *rt_open(const rt_config *cfg, vs_err *err);
/* Stops relaying and frees; running VMs are left running. */
void rt_close(rt_runtime *rt);

/* How a process ended. */
typedef struct rt_exit {
  int code, signal, oom_killed;
  int64_t exited_ns;
  char reason[128];
} rt_exit;

/* Builds the rootfs copy, boots the VM, creates the container in it (init
 * not started). id_out gets the (possibly generated) ID. */
int rt_create(rt_runtime *rt, const Vessel__V1__ContainersCreateRequest *req, char id_out[128],
              vs_err *err);
int rt_start(rt_runtime *rt, const char *id, vs_err *err);
/* Starts a process in a running container; its output is buffered until a
 * client attaches. */
int rt_exec(rt_runtime *rt, const char *id, const char *exec_id, const Vessel__V1__ProcessSpec *p,
            char exec_out[128], int *pid, vs_err *err);

/* Copies through the guest agent (Agent.CopyIn/CopyOut): no tool needed
 * in the image; the container must be CREATED or RUNNING
 * (FAILED_PRECONDITION); the agent's errors pass through (NOT_FOUND for a
 * missing path, INVALID_ARGUMENT for a corrupt archive). */
typedef struct rt_copy_in_opts {
  const char *path; /* existing directory to extract into */
  uint32_t uid, gid;
  int chown; /* every entry owned by uid:gid, else the archive's owners */
} rt_copy_in_opts;
/* Extracts a tar stream (optionally gzip'd), read from `read` until it
 * returns 0; *bytes: the stream's size. */
int rt_copy_in(rt_runtime *rt, const char *id, const rt_copy_in_opts *o,
               int (*read)(void *arg, const void **data, size_t *len, vs_err *err), void *arg,
               int64_t *bytes, vs_err *err);
/* path as a tar stream: fn gets the path's FileInfo with the first chunk
 * (NULL after), then the data. */
typedef int (*rt_copy_out_fn)(void *arg, const Vessel__V1__FileInfo *info, const void *data,
                              size_t len, vs_err *err);
int rt_copy_out(rt_runtime *rt, const char *id, const char *path, rt_copy_out_fn fn, void *arg,
                vs_err *err);
int rt_signal(rt_runtime *rt, const char *id, const char *exec_id, int sig, int all, vs_err *err);
/* Blocks until the process exited (0) or cancel_fd is readable (-1,
 * CANCELLED). */
int rt_wait(rt_runtime *rt, const char *id, const char *exec_id, int cancel_fd, rt_exit *out,
            vs_err *err);
int rt_resize(rt_runtime *rt, const char *id, const char *exec_id, uint32_t rows, uint32_t cols,
              vs_err *err);
int rt_close_stdin(rt_runtime *rt, const char *id, const char *exec_id, vs_err *err);
/* Signal (0 = image STOPSIGNAL or SIGTERM), SIGKILL after timeout_ms (0 =
 * 10 s, -1 = never; a forced Delete still kills), then the VM is shut down.
 * Stopping a stopped container returns its last exit status. cancel_fd
 * readable while waiting: CANCELLED, the container runs on. */
int rt_stop(rt_runtime *rt, const char *id, int sig, int64_t timeout_ms, int cancel_fd,
            rt_exit *out, vs_err *err);
/* Removes everything: VM, tap, IP lease, rootfs, logs. FAILED_PRECONDITION
 * while created or running unless force. */
int rt_delete(rt_runtime *rt, const char *id, int force, vs_err *err);

/* A snapshot as the API shows it; free with protobuf_c_message_free_unpacked. */
Vessel__V1__Container *rt_describe(rt_runtime *rt, const char *id, vs_err *err);
/* All containers, newest first. */
int rt_list(rt_runtime *rt, Vessel__V1__Container ***out, size_t *n, vs_err *err);
void rt_list_free(Vessel__V1__Container **list, size_t n);

/* A Timestamp message (malloc'd) of unix nanoseconds; NULL for ns <= 0. */
Google__Protobuf__Timestamp *rt_timestamp(int64_t ns);

/* An ExitStatus message of e (malloc'd). */
Vessel__V1__ExitStatus *rt_exit_msg(const rt_exit *e);

/* New cgroup limits of a CREATED or RUNNING container (0 = unlimited),
 * applied in the guest and kept in its spec. */
int rt_update(rt_runtime *rt, const char *id, const Vessel__V1__Resources *res, vs_err *err);

/* Statistics from the guest agent. */
int rt_stats(rt_runtime *rt, const char *id, ProtobufCMessage **stats, vs_err *err);

/* Removes a deleted network's bridge and firewall rules from the host. */
void rt_net_remove(rt_runtime *rt, const net_network *n);

/* What a container gets when Create leaves resources 0: milli-CPUs, and
 * memory (its VM's, less what the guest kernel needs). */
void rt_default_resources(rt_runtime *rt, int64_t *milli_cpus, int64_t *memory_bytes);

/* Counts for System.Info. */
void rt_counts(rt_runtime *rt, uint32_t *total, uint32_t *running, uint32_t *created,
               uint32_t *stopped);

/* ---- pods (several containers in one VM; see proto/vessel/v1/pods.proto) ---- */

/* Boots the pod's VM with its networks, ports and empty disk slots; RUNNING
 * when it returns. Containers join it with ContainersCreateRequest.pod_id. */
int rt_pod_create(rt_runtime *rt, const Vessel__V1__PodsCreateRequest *req, char id_out[128],
                  vs_err *err);
Vessel__V1__Pod *rt_pod_describe(rt_runtime *rt, const char *id, vs_err *err);
/* All pods, newest first; free with rt_pod_list_free. */
int rt_pod_list(rt_runtime *rt, Vessel__V1__Pod ***out, size_t *n, vs_err *err);
void rt_pod_list_free(Vessel__V1__Pod **list, size_t n);
/* Stops its containers (as rt_stop), then ends the VM. */
int rt_pod_stop(rt_runtime *rt, const char *id, int sig, int64_t timeout_ms, vs_err *err);
/* The VM (host side) and each running container (one agent call). */
int rt_pod_stats(rt_runtime *rt, const char *id, Vessel__V1__PodsStatsResponse **out, vs_err *err);
/* Deletes it (and, with force, its containers). */
int rt_pod_delete(rt_runtime *rt, const char *id, int force, vs_err *err);

/* ---- attach ---- */

typedef struct rt_attach rt_attach;

enum { RT_ATTACH_STDOUT = 1, RT_ATTACH_STDERR = 2, RT_ATTACH_STDIN = 4, RT_ATTACH_LOGS = 8 };

rt_attach *rt_attach_open(rt_runtime *rt, const char *id, const char *exec_id, int flags,
                          vs_err *err);
/* Next output: 1 with *stream (1 stdout, 2 stderr) and data (malloc'd);
 * 0 when the process exited (*exit filled); -1 when cancel_fd fired or on
 * error. */
int rt_attach_next(rt_attach *a, int cancel_fd, int *stream, char **data, size_t *len,
                   rt_exit *exit, vs_err *err);
int rt_attach_stdin(rt_attach *a, const void *data, size_t len, int eof, vs_err *err);
void rt_attach_close(rt_attach *a);

/* Init's output also written to path in the CRI's format (kubelet's
 * <log_directory>/<log_path>), kept across vesseld restarts; reopen
 * opens it again after kubelet rotated it. */
int rt_log_cri(rt_runtime *rt, const char *id, const char *path, vs_err *err);
int rt_log_cri_reopen(rt_runtime *rt, const char *id, vs_err *err);

/* The container's log directory (for Logs), and whether init still runs. */
int rt_log_dir(rt_runtime *rt, const char *id, char *buf, size_t n, vs_err *err);
int rt_running(rt_runtime *rt, const char *id);

#ifdef __cplusplus
}
#endif
#endif
