/* cg: the guest's cgroup v2 tree: /sys/fs/cgroup/vessel/<container>. */
#ifndef VESSEL_GUEST_AGENT_CGROUP_H
#define VESSEL_GUEST_AGENT_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CG_ROOT "/sys/fs/cgroup"

/* Enables cpu, memory, io, pids for children of root and of root/vessel. */
int cg_setup(const char *root, vs_err *err);

typedef struct cg_limits {
  int64_t memory_bytes; /* 0 = max */
  int64_t cpu_quota_us; /* 0 = max */
  int64_t cpu_period_us; /* 0 = 100000 */
  int64_t pids_max; /* 0 = max */
} cg_limits;

/* Derives limits from Resources fields (milli_cpus fractional -> quota). */
void cg_limits_from(int64_t milli_cpus, int64_t memory_bytes, int64_t pids_max,
                    int64_t cpu_quota_us, int64_t cpu_period_us, cg_limits *out);

int cg_create(const char *path, const cg_limits *l, vs_err *err);
/* Sets every limit of an existing cgroup; 0 = unlimited ("max"). */
int cg_update(const char *path, const cg_limits *l, vs_err *err);

/* Attaches the container device allow-list to the cgroup at path (runc's
 * default: mknod anything; open only null, zero, full, random, urandom,
 * tty, ptmx, pts/N and net/tun). Needs a kernel with CONFIG_CGROUP_BPF. */
int cg_allow_devices(const char *path, vs_err *err);

/* Value of `key` in a "key value" file (memory.events, cpu.stat, ...). */
int cg_read_key(const char *path, const char *file, const char *key, uint64_t *out);

/* One number file ("max" reads as 0). */
int cg_read_u64(const char *path, const char *file, uint64_t *out);

/* Parses io.stat text, summing rbytes/wbytes/rios/wios over devices. */
void cg_parse_io_stat(const char *text, uint64_t *rbytes, uint64_t *wbytes,
                      uint64_t *rios, uint64_t *wios);

/* Sends sig to every process in the cgroup; returns how many. */
int cg_signal_all(const char *path, int sig);

/* Removes the cgroup (waits briefly for it to empty). */
int cg_remove(const char *path, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
