/* Capability names and Docker-style add/drop resolution. */
#include "guest-agent/caps.h"

#include <string.h>
#include <strings.h>

static const char *const names[CAP_COUNT] = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
    "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
    "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL",
    "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
};

static const char *const defaults[] = {
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
    "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
    "AUDIT_WRITE",
};

int cap_from_name(const char *name) {
  if (!name) return -1;
  if (strncasecmp(name, "CAP_", 4) == 0) name += 4;
  for (int i = 0; i < CAP_COUNT; i++)
    if (strcasecmp(name, names[i]) == 0) return i;
  return -1;
}

uint64_t cap_default_set(void) {
  uint64_t s = 0;
  for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
    s |= 1ull << cap_from_name(defaults[i]);
  return s;
}

static int is_all(const char *n) {
  return strcasecmp(n, "ALL") == 0 || strcasecmp(n, "CAP_ALL") == 0;
}

static int list_mask(const char *const *l, size_t n, uint64_t *mask, int *all, vs_err *err) {
  *mask = 0;
  *all = 0;
  for (size_t i = 0; i < n; i++) {
    if (is_all(l[i])) {
      *all = 1;
      continue;
    }
    int c = cap_from_name(l[i]);
    if (c < 0) return vs_err_set(err, VS_INVALID_ARGUMENT, "unknown capability \"%s\"", l[i]);
    *mask |= 1ull << c;
  }
  return 0;
}

int cap_resolve(const char *const *add, size_t n_add, const char *const *drop,
                size_t n_drop, uint64_t *out, vs_err *err) {
  uint64_t a, d;
  int add_all, drop_all;
  if (list_mask(add, n_add, &a, &add_all, err) < 0) return -1;
  if (list_mask(drop, n_drop, &d, &drop_all, err) < 0) return -1;
  uint64_t every = (1ull << CAP_COUNT) - 1;
  if (add_all) {
    *out = every & ~d;
    return 0;
  }
  uint64_t s = drop_all ? 0 : cap_default_set() & ~d;
  *out = s | a;
  return 0;
}
