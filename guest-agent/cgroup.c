/* cgroup v2 management for containers. */
#include "guest-agent/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

int cg_update(const char *path, const cg_limits *l, vs_err *err) {
  char mem[32] = "max", cpu[64] = "max", pids[32] = "max";
  if (l->memory_bytes > 0) snprintf(mem, sizeof mem, "%" PRId64, l->memory_bytes);
  if (l->cpu_quota_us > 0) snprintf(cpu, sizeof cpu, "%" PRId64 " %" PRId64, l->cpu_quota_us, l->cpu_period_us);
  if (l->pids_max > 0) snprintf(pids, sizeof pids, "%" PRId64, l->pids_max);
  return write_str(path, "memory.max", mem, err) < 0 || write_str(path, "cpu.max", cpu, err) < 0 ||
                 write_str(path, "pids.max", pids, err) < 0
             ? -1
             : 0;
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

/* ---- device allow-list (cgroup v2: a BPF program on the cgroup) ---- */

/* runc's default rules: any node may be created (mknod), but only these
 * opened: null, zero, full, random, urandom, tty, ptmx and the ptys,
 * net/tun. Not the VM's disks, serial console or agent port. */
typedef struct dev_rule {
  int type;          /* BPF_DEVCG_DEV_CHAR or _BLOCK */
  int major, minor;  /* -1 = any */
  int access;        /* BPF_DEVCG_ACC_* bits */
} dev_rule;

#define RW (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)
static const dev_rule dev_rules[] = {
    {BPF_DEVCG_DEV_CHAR, -1, -1, BPF_DEVCG_ACC_MKNOD},
    {BPF_DEVCG_DEV_BLOCK, -1, -1, BPF_DEVCG_ACC_MKNOD},
    {BPF_DEVCG_DEV_CHAR, 1, 3, RW},   /* null */
    {BPF_DEVCG_DEV_CHAR, 1, 5, RW},   /* zero */
    {BPF_DEVCG_DEV_CHAR, 1, 7, RW},   /* full */
    {BPF_DEVCG_DEV_CHAR, 1, 8, RW},   /* random */
    {BPF_DEVCG_DEV_CHAR, 1, 9, RW},   /* urandom */
    {BPF_DEVCG_DEV_CHAR, 5, 0, RW},   /* tty */
    {BPF_DEVCG_DEV_CHAR, 5, 2, RW},   /* ptmx */
    {BPF_DEVCG_DEV_CHAR, 136, -1, RW}, /* pts/N */
    {BPF_DEVCG_DEV_CHAR, 10, 200, RW}, /* net/tun */
};
#undef RW

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  struct bpf_insn i;
  memset(&i, 0, sizeof i);
  i.code = code;
  i.dst_reg = dst;
  i.src_reg = src;
  i.off = off;
  i.imm = imm;
  return i;
}

/* r2 = type, r3 = access, r4 = major, r5 = minor; per rule a block that
 * jumps to the next one on a mismatch, else returns 1; at the end 0. */
static size_t build_filter(struct bpf_insn *p) {
  size_t n = 0;
  p[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);
  p[n++] = insn(BPF_ALU64 | BPF_AND | BPF_K, 2, 0, 0, 0xffff);
  p[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 0, 0);
  p[n++] = insn(BPF_ALU64 | BPF_RSH | BPF_K, 3, 0, 0, 16);
  p[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);
  p[n++] = insn(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);
  for (size_t r = 0; r < sizeof dev_rules / sizeof *dev_rules; r++) {
    const dev_rule *d = &dev_rules[r];
    /* type; access (r6 = r3 & ~allowed, must be 0); [major]; [minor];
     * r0 = 1; exit. A mismatch jumps past the block (L instructions). */
    int L = 6 + (d->major >= 0) + (d->minor >= 0), k = 0;
#define NEXT ((int16_t)(L - k - 1))
    p[n++] = insn(BPF_JMP | BPF_JNE | BPF_K, 2, 0, NEXT, d->type), k++;
    p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, 6, 3, 0, 0), k++;
    p[n++] = insn(BPF_ALU64 | BPF_AND | BPF_K, 6, 0, 0, ~d->access), k++;
    p[n++] = insn(BPF_JMP | BPF_JNE | BPF_K, 6, 0, NEXT, 0), k++;
    if (d->major >= 0) p[n++] = insn(BPF_JMP | BPF_JNE | BPF_K, 4, 0, NEXT, d->major), k++;
    if (d->minor >= 0) p[n++] = insn(BPF_JMP | BPF_JNE | BPF_K, 5, 0, NEXT, d->minor), k++;
#undef NEXT
    p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
    p[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  }
  p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
  p[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  return n;
}

int cg_allow_devices(const char *path, vs_err *err) {
  struct bpf_insn prog[8 + 8 * sizeof dev_rules / sizeof *dev_rules];
  size_t n = build_filter(prog);
  static char log[65536]; /* the verifier's reasons, only when it refused */
  union bpf_attr a;
  int pfd = -1;
  for (int verbose = 0; pfd < 0 && verbose < 2; verbose++) {
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    a.insns = (uint64_t)(uintptr_t)prog;
    a.insn_cnt = (uint32_t)n;
    a.license = (uint64_t)(uintptr_t) "GPL";
    if (verbose) {
      log[0] = '\0';
      a.log_buf = (uint64_t)(uintptr_t)log;
      a.log_size = sizeof log;
      a.log_level = 1;
    }
    pfd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof a);
  }
  if (pfd < 0) {
    size_t l = strlen(log);
    return vs_err_errno(err, VS_INTERNAL, errno, "device allow-list: load BPF program: %.200s",
                        l > 200 ? log + l - 200 : log);
  }
  int cfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int rc = 0;
  if (cfd < 0) {
    rc = vs_err_errno(err, VS_INTERNAL, errno, "device allow-list: open %s", path);
  } else {
    memset(&a, 0, sizeof a);
    a.target_fd = (uint32_t)cfd;
    a.attach_bpf_fd = (uint32_t)pfd;
    a.attach_type = BPF_CGROUP_DEVICE;
    if (syscall(SYS_bpf, BPF_PROG_ATTACH, &a, sizeof a) < 0)
      rc = vs_err_errno(err, VS_INTERNAL, errno, "device allow-list: attach to %s", path);
    close(cfd);
  }
  close(pfd); /* the attachment keeps the program */
  return rc;
}
