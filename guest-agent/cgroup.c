/* cgroup v2 management for containers. */
#include "guest-agent/cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest-agent/fs.h"

static int write_str(const char *dir, const char *file, const char *v, vs_err *err) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  if (fs_write_file(path, v, strlen(v), 0644, 0, err) < 0) return vs_err_wrap(err, "cgroup");
  return 0;
}

int cg_setup(const char *root, vs_err *err) {
  char v[512];
  if (write_str(root, "cgroup.subtree_control", "+cpu +memory +io +pids", err) < 0) return -1;
  snprintf(v, sizeof v, "%s/vessel", root);
  if (mkdir(v, 0755) < 0 && errno != EEXIST)
    return vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", v);
  return write_str(v, "cgroup.subtree_control", "+cpu +memory +io +pids", err);
}

void cg_limits_from(int64_t milli_cpus, int64_t memory_bytes, int64_t pids_max,
                    int64_t cpu_quota_us, int64_t cpu_period_us, cg_limits *out) {
  memset(out, 0, sizeof *out);
  out->memory_bytes = memory_bytes > 0 ? memory_bytes : 0;
  out->pids_max = pids_max > 0 ? pids_max : 0;
  out->cpu_period_us = cpu_period_us > 0 ? cpu_period_us : 100000;
  if (cpu_quota_us > 0)
    out->cpu_quota_us = cpu_quota_us;
  else if (milli_cpus > 0 && milli_cpus % 1000 != 0)
    out->cpu_quota_us = milli_cpus * out->cpu_period_us / 1000;
}

int cg_create(const char *path, const cg_limits *l, vs_err *err) {
  if (mkdir(path, 0755) < 0 && errno != EEXIST)
    return vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", path);
  char v[64];
  if (l->memory_bytes > 0) {
    snprintf(v, sizeof v, "%" PRId64, l->memory_bytes);
    if (write_str(path, "memory.max", v, err) < 0) return -1;
    /* No swap in the guest, but be explicit: the limit is the limit. */
    write_str(path, "memory.swap.max", "0", err);
  }
  if (l->cpu_quota_us > 0) {
    snprintf(v, sizeof v, "%" PRId64 " %" PRId64, l->cpu_quota_us, l->cpu_period_us);
    if (write_str(path, "cpu.max", v, err) < 0) return -1;
  }
  if (l->pids_max > 0) {
    snprintf(v, sizeof v, "%" PRId64, l->pids_max);
    if (write_str(path, "pids.max", v, err) < 0) return -1;
  }
  vs_err_clear(err);
  return 0;
}

int cg_read_key(const char *path, const char *file, const char *key, uint64_t *out) {
  char p[512], buf[4096];
  snprintf(p, sizeof p, "%s/%s", path, file);
  if (fs_read_small(p, buf, sizeof buf) < 0) return -1;
  size_t k = strlen(key);
  for (char *line = buf; line && *line;) {
    if (strncmp(line, key, k) == 0 && line[k] == ' ') {
      *out = strtoull(line + k + 1, NULL, 10);
      return 0;
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  return -1;
}

int cg_read_u64(const char *path, const char *file, uint64_t *out) {
  char p[512], buf[64];
  snprintf(p, sizeof p, "%s/%s", path, file);
  if (fs_read_small(p, buf, sizeof buf) < 0) return -1;
  *out = strncmp(buf, "max", 3) == 0 ? 0 : strtoull(buf, NULL, 10);
  return 0;
}

void cg_parse_io_stat(const char *text, uint64_t *rbytes, uint64_t *wbytes,
                      uint64_t *rios, uint64_t *wios) {
  *rbytes = *wbytes = *rios = *wios = 0;
  static const char *const keys[] = {"rbytes=", "wbytes=", "rios=", "wios="};
  uint64_t *outs[] = {rbytes, wbytes, rios, wios};
  for (int i = 0; i < 4; i++) {
    for (const char *p = text; (p = strstr(p, keys[i])) != NULL; p++) {
      if (p != text && p[-1] != ' ') continue;
      *outs[i] += strtoull(p + strlen(keys[i]), NULL, 10);
    }
  }
}

int cg_signal_all(const char *path, int sig) {
  char p[512];
  snprintf(p, sizeof p, "%s/cgroup.procs", path);
  FILE *f = fopen(p, "re");
  if (!f) return 0;
  int n = 0;
  long pid;
  while (fscanf(f, "%ld", &pid) == 1)
    if (kill((pid_t)pid, sig) == 0) n++;
  fclose(f);
  return n;
}

int cg_remove(const char *path, vs_err *err) {
  for (int i = 0; i < 100; i++) {
    if (rmdir(path) == 0 || errno == ENOENT) return 0;
    if (errno != EBUSY) break;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return vs_err_errno(err, VS_INTERNAL, errno, "rmdir %s", path);
}
