/* Process creation: the code that runs in cloned children. Only system
 * calls and stack buffers after a clone (see spawn.h). */
#include "guest-agent/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/capability.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* ---- parent-side preparation ---- */

static char *xstrdup(const char *s) { return strdup(s ? s : ""); }

static int env_has(char **envp, size_t n, const char *key) {
  size_t k = strlen(key);
  for (size_t i = 0; i < n; i++)
    if (strncmp(envp[i], key, k) == 0 && envp[i][k] == '=') return 1;
  return 0;
}

int sp_exec_init(sp_exec *x, const char *const *args, size_t n_args,
                 const char *const *env, size_t n_env, const char *cwd,
                 vs_err *err) {
  memset(x, 0, sizeof *x);
  x->stdin_r = x->stdout_w = x->stderr_w = x->cgroup_fd = -1;
  if (n_args == 0 || !args[0] || !args[0][0])
    return vs_err_set(err, VS_INVALID_ARGUMENT, "process args must not be empty");
  x->argv = calloc(n_args + 1, sizeof *x->argv);
  x->envp = calloc(n_env + 4, sizeof *x->envp);
  if (!x->argv || !x->envp) goto oom;
  for (size_t i = 0; i < n_args; i++)
    if (!(x->argv[i] = xstrdup(args[i]))) goto oom;
  /* Later entries win: keep only the last of each key. */
  size_t ne = 0;
  for (size_t i = 0; i < n_env; i++) {
    const char *eq = strchr(env[i], '=');
    if (!eq || eq == env[i]) continue;
    size_t k = (size_t)(eq - env[i]);
    int later = 0;
    for (size_t j = i + 1; j < n_env; j++)
      if (strncmp(env[j], env[i], k + 1) == 0) later = 1;
    if (later) continue;
    if (!(x->envp[ne++] = xstrdup(env[i]))) goto oom;
  }
  if (!env_has(x->envp, ne, "PATH") && !(x->envp[ne++] = xstrdup("PATH=" DEFAULT_PATH)))
    goto oom;
  for (size_t i = 0; i < ne; i++)
    if (strncmp(x->envp[i], "PATH=", 5) == 0) x->path = x->envp[i] + 5;
  snprintf(x->cwd, sizeof x->cwd, "%s", cwd && *cwd ? cwd : "/");
  if (x->cwd[0] != '/') {
    sp_exec_free(x);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "cwd \"%s\" is not absolute", cwd);
  }
  x->rows = 24;
  x->cols = 80;
  return 0;
oom:
  sp_exec_free(x);
  return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
}

void sp_exec_free(sp_exec *x) {
  if (x->argv)
    for (char **p = x->argv; *p; p++) free(*p);
  if (x->envp)
    for (char **p = x->envp; *p; p++) free(*p);
  free(x->argv);
  free(x->envp);
  x->argv = x->envp = NULL;
}

static const struct {
  const char *name;
  int res;
} rlimit_names[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_DATA", RLIMIT_DATA},       {"RLIMIT_STACK", RLIMIT_STACK},
    {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

int sp_rlimit_from_name(const char *name) {
  for (size_t i = 0; i < sizeof rlimit_names / sizeof *rlimit_names; i++)
    if (strcasecmp(name, rlimit_names[i].name) == 0 ||
        strcasecmp(name, rlimit_names[i].name + 7) == 0)
      return rlimit_names[i].res;
  return -1;
}

/* ---- child side: system calls only ---- */

static pid_t raw_clone(unsigned long flags) {
  /* Like fork(), but with namespace flags; the child runs on a copy of
   * the caller's stack. glibc's fork handlers do not run: the child must
   * not take locks. */
  return (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
}

static void put_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

/* 'E' code(int32) len(uint16) message; then _exit. */
__attribute__((noreturn, format(printf, 4, 5))) static void fail(int status_w, int code,
                                                                  int exit_code,
                                                                  const char *fmt, ...) {
  char msg[480];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  char buf[1 + 4 + 2 + sizeof msg];
  int32_t c = code;
  uint16_t len = (uint16_t)n;
  buf[0] = 'E';
  memcpy(buf + 1, &c, 4);
  memcpy(buf + 5, &len, 2);
  memcpy(buf + 7, msg, (size_t)n);
  put_all(status_w, buf, 7 + (size_t)n);
  _exit(exit_code);
}

static const char *errname(int e) {
  /* strerror may allocate for translations; these cover what setup hits. */
  switch (e) {
    case ENOENT: return "no such file or directory";
    case EACCES: return "permission denied";
    case EPERM: return "operation not permitted";
    case ENOTDIR: return "not a directory";
    case EINVAL: return "invalid argument";
    case EBUSY: return "device or resource busy";
    case ENOEXEC: return "exec format error";
    case EROFS: return "read-only file system";
    case ENODEV: return "no such device";
    case EEXIST: return "file exists";
    case ENOMEM: return "out of memory";
    case E2BIG: return "argument list too long";
    case ENAMETOOLONG: return "file name too long";
    case ELOOP: return "too many levels of symbolic links";
    case EISDIR: return "is a directory";
    default: return "error";
  }
}

/* Closes every fd except 0-2 and keep[]: a child that waits (an init
 * before StartProcess) must not hold other processes' pipe ends, or their
 * readers would not see EOF until it execs. */
static void keep_only(int *keep, int n) {
  for (int i = 1; i < n; i++) /* insertion sort, n is tiny */
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
      int t = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = t;
    }
  unsigned next = 3;
  for (int i = 0; i < n; i++) {
    if (keep[i] < 0 || (unsigned)keep[i] < next) continue;
    if ((unsigned)keep[i] > next) syscall(SYS_close_range, next, (unsigned)keep[i] - 1, 0);
    next = (unsigned)keep[i] + 1;
  }
  syscall(SYS_close_range, next, ~0U, 0);
}

static int mkdir_p(const char *path, mode_t mode) {
  char buf[1024];
  size_t len = strlen(path);
  if (len >= sizeof buf) return -1;
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
      *p = saved;
      if (!saved) break;
    }
  }
  return 0;
}

static void join(char *out, size_t n, const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la + lb + 1 > n) {
    out[0] = '\0';
    return;
  }
  memcpy(out, a, la);
  memcpy(out + la, b, lb + 1);
}

static void mnt(int sw, const char *root, const char *target, const char *src,
                const char *type, unsigned long flags, const char *data) {
  char path[1400];
  join(path, sizeof path, root, target);
  if (mkdir_p(path, 0755) < 0 && errno != EROFS)
    fail(sw, 13, 1, "mkdir %s: %s", target, errname(errno));
  if (mount(src, path, type, flags, data) < 0)
    fail(sw, 13, 1, "mount %s on %s: %s", type, target, errname(errno));
}

/* Creates an empty file (and parents) to bind a file over. */
static void touch(const char *path) {
  char dir[1400];
  size_t n = strlen(path);
  if (n >= sizeof dir) return;
  memcpy(dir, path, n + 1);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    mkdir_p(dir, 0755);
  }
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd >= 0) close(fd);
}

static void setup_dev(int sw, const char *root) {
  static const struct {
    const char *name;
    unsigned maj, min;
  } nodes[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
               {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
  static const struct {
    const char *name, *target;
  } links[] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
               {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
               {"ptmx", "pts/ptmx"}, {"core", "/proc/kcore"}};
  char path[1400], rel[64];
  mnt(sw, root, "/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  mode_t old = umask(0);
  for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
    snprintf(rel, sizeof rel, "/dev/%s", nodes[i].name);
    join(path, sizeof path, root, rel);
    if (mknod(path, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) < 0)
      fail(sw, 13, 1, "mknod %s: %s", rel, errname(errno));
  }
  umask(old);
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    snprintf(rel, sizeof rel, "/dev/%s", links[i].name);
    join(path, sizeof path, root, rel);
    if (symlink(links[i].target, path) < 0)
      fail(sw, 13, 1, "symlink %s: %s", rel, errname(errno));
  }
  mnt(sw, root, "/dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
      "newinstance,ptmxmode=0666,mode=0620,gid=5");
  mnt(sw, root, "/dev/shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
      "mode=1777,size=65536k");
  mnt(sw, root, "/dev/mqueue", "mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* OCI default masked and read-only paths (runtime-spec config-linux). */
static const char *const masked_paths[] = {
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static void mask_paths(const sp_rootfs *r, int sw) {
  size_t nm = r->custom_paths ? r->n_masked : sizeof masked_paths / sizeof *masked_paths;
  size_t nr = r->custom_paths ? r->n_ro_paths : sizeof readonly_paths / sizeof *readonly_paths;
  for (size_t i = 0; i < nm; i++) {
    struct stat st;
    const char *p = r->custom_paths ? r->masked[i] : masked_paths[i];
    if (stat(p, &st) < 0) continue;
    int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0k")
                                 : mount("/dev/null", p, NULL, MS_BIND, NULL);
    if (rc < 0) fail(sw, 13, 1, "mask %s: %s", p, errname(errno));
  }
  for (size_t i = 0; i < nr; i++) {
    const char *p = r->custom_paths ? r->ro_paths[i] : readonly_paths[i];
    if (access(p, F_OK) < 0) continue;
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0 ||
        mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) < 0)
      fail(sw, 13, 1, "read-only %s: %s", p, errname(errno));
  }
}

static void setup_root(const sp_rootfs *r, int sw) {
  const char *root = r->root;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    fail(sw, 13, 1, "make / private: %s", errname(errno));
  /* pivot_root refuses to move the initramfs root (it has no parent
   * mount). Make the current root a bind mount of itself first; afterwards
   * the old root is detached, so the initramfs stays unreachable. */
  if (mount("/", "/mnt", NULL, MS_BIND | MS_REC, NULL) < 0 || chroot("/mnt") < 0 || chdir("/") < 0)
    fail(sw, 13, 1, "rebind /: %s", errname(errno));
  if (r->hostname[0] && sethostname(r->hostname, strlen(r->hostname)) < 0)
    fail(sw, 13, 1, "sethostname: %s", errname(errno));
  mnt(sw, root, "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mnt(sw, root, "/sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
  mnt(sw, root, "/sys/fs/cgroup", "cgroup2", "cgroup2",
      MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME | MS_RDONLY, NULL);
  setup_dev(sw, root);
  /* hosts, resolv.conf and hostname live in the bundle so later rewrites
   * (ConfigureDns/Hosts) show through the bind mounts. */
  static const char *const etc[] = {"hosts", "resolv.conf", "hostname"};
  for (size_t i = 0; i < 3; i++) {
    char src[400], dst[1400], rel[64];
    snprintf(src, sizeof src, "%s/%s", r->bundle, etc[i]);
    if (access(src, F_OK) < 0) continue;
    snprintf(rel, sizeof rel, "/etc/%s", etc[i]);
    join(dst, sizeof dst, root, rel);
    struct stat st;
    if (lstat(dst, &st) == 0 && S_ISLNK(st.st_mode)) unlink(dst);
    touch(dst);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
      fail(sw, 13, 1, "bind %s: %s", rel, errname(errno));
  }
  for (size_t i = 0; i < r->n_mounts; i++) {
    const sp_mount *m = &r->mounts[i];
    char dst[1400];
    join(dst, sizeof dst, root, m->target);
    struct stat st;
    if (m->bind && stat(m->source, &st) == 0 && !S_ISDIR(st.st_mode))
      touch(dst);
    else if (mkdir_p(dst, 0755) < 0)
      fail(sw, 13, 1, "mkdir %s: %s", m->target, errname(errno));
    unsigned long fl = m->flags | (m->bind ? MS_BIND : 0);
    if (mount(m->source[0] ? m->source : "none", dst, m->bind ? NULL : m->type, fl,
              m->data[0] ? m->data : NULL) < 0)
      fail(sw, 3, 1, "mount %s on %s: %s", m->type, m->target, errname(errno));
    if (m->bind && (fl & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)) &&
        mount(NULL, dst, NULL, fl | MS_REMOUNT, NULL) < 0)
      fail(sw, 13, 1, "remount %s: %s", m->target, errname(errno));
    if (m->propagation && mount(NULL, dst, NULL, m->propagation, NULL) < 0)
      fail(sw, 13, 1, "propagation of %s: %s", m->target, errname(errno));
  }
  if (chdir(root) < 0) fail(sw, 13, 1, "chdir rootfs: %s", errname(errno));
  if (syscall(SYS_pivot_root, ".", ".") < 0) fail(sw, 13, 1, "pivot_root: %s", errname(errno));
  if (umount2(".", MNT_DETACH) < 0) fail(sw, 13, 1, "umount old root: %s", errname(errno));
  if (chdir("/") < 0) fail(sw, 13, 1, "chdir /: %s", errname(errno));
  mask_paths(r, sw);
  if (r->readonly && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)
    fail(sw, 13, 1, "remount / read-only: %s", errname(errno));
}

static void set_caps(int sw, uint64_t caps) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  d[0].effective = d[0].permitted = (uint32_t)caps;
  d[1].effective = d[1].permitted = (uint32_t)(caps >> 32);
  if (syscall(SYS_capset, &h, d) < 0) fail(sw, 13, 1, "capset: %s", errname(errno));
}

__attribute__((noreturn)) static void child_exec(const sp_exec *x, int sw) {
  if (setsid() < 0) fail(sw, 13, 1, "setsid: %s", errname(errno));
  if (x->terminal) {
    if (ioctl(x->stdin_r, TIOCSCTTY, 0) < 0) fail(sw, 13, 1, "TIOCSCTTY: %s", errname(errno));
    struct winsize ws = {x->rows, x->cols, 0, 0};
    ioctl(x->stdin_r, TIOCSWINSZ, &ws);
  }
  if (dup2(x->stdin_r, 0) < 0 || dup2(x->stdout_w, 1) < 0 || dup2(x->stderr_w, 2) < 0)
    fail(sw, 13, 1, "dup2: %s", errname(errno));
  if (x->cgroup_fd >= 0 && write(x->cgroup_fd, "0", 1) < 0)
    fail(sw, 13, 1, "join cgroup: %s", errname(errno));
  if (x->oom_score_adj) {
    char v[16];
    int n = snprintf(v, sizeof v, "%d", x->oom_score_adj);
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, v, (size_t)n) < 0)
      fail(sw, 3, 1, "oom_score_adj %d: %s", x->oom_score_adj, errname(errno));
    close(fd);
  }
  struct rlimit nofile = {1048576, 1048576};
  setrlimit(RLIMIT_NOFILE, &nofile);
  for (int i = 0; i < x->n_rlimits; i++)
    if (setrlimit(x->rlimits[i].resource, &x->rlimits[i].lim) < 0)
      fail(sw, 3, 1, "setrlimit %d: %s", x->rlimits[i].resource, errname(errno));
  /* cwd: created (owned by the user) when missing. */
  struct stat st;
  if (stat(x->cwd, &st) < 0) {
    if (mkdir_p(x->cwd, 0755) < 0)
      fail(sw, 5, 1, "cannot create cwd %s: %s", x->cwd, errname(errno));
    if (chown(x->cwd, x->user.uid, x->user.gid) < 0)
      fail(sw, 13, 1, "chown cwd %s: %s", x->cwd, errname(errno));
  }
  if (chdir(x->cwd) < 0) fail(sw, 5, 1, "chdir %s: %s", x->cwd, errname(errno));
  for (int c = 0; c <= 63; c++) {
    if (x->caps & (1ull << c)) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno == EINVAL) break;
  }
  /* Raw system calls: glibc's setuid() & co. broadcast the change to every
   * thread it believes exists (the parent's, which this clone lacks) and
   * would wait for them forever. */
  if (syscall(SYS_setgroups, x->user.n_groups, x->user.groups) < 0)
    fail(sw, 13, 1, "setgroups: %s", errname(errno));
  if (syscall(SYS_setgid, x->user.gid) < 0) fail(sw, 13, 1, "setgid %u: %s", x->user.gid, errname(errno));
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail(sw, 13, 1, "keepcaps: %s", errname(errno));
  if (syscall(SYS_setuid, x->user.uid) < 0) fail(sw, 13, 1, "setuid %u: %s", x->user.uid, errname(errno));
  set_caps(sw, x->caps);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (x->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    fail(sw, 13, 1, "no_new_privs: %s", errname(errno));
  /* Nothing of vminitd's leaks into the container. */
  syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  const char *file = x->argv[0];
  if (strchr(file, '/')) {
    execve(file, x->argv, x->envp);
    int e = errno;
    fail(sw, e == ENOENT ? 5 : 3, e == ENOENT ? 127 : 126, "exec %s: %s", file, errname(e));
  }
  int saw_eacces = 0;
  const char *p = x->path ? x->path : DEFAULT_PATH;
  while (*p) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char full[1024];
    if (len + strlen(file) + 2 < sizeof full) {
      memcpy(full, len ? p : ".", len ? len : 1);
      size_t n = len ? len : 1;
      full[n] = '/';
      memcpy(full + n + 1, file, strlen(file) + 1);
      execve(full, x->argv, x->envp);
      if (errno == EACCES) saw_eacces = 1;
      else if (errno != ENOENT && errno != ENOTDIR)
        fail(sw, 3, 126, "exec %s: %s", full, errname(errno));
    }
    if (!end) break;
    p = end + 1;
  }
  if (saw_eacces) fail(sw, 7, 126, "exec %s: permission denied", file);
  fail(sw, 5, 127, "executable file \"%s\" not found in $PATH", file);
}

/* The init child, in its namespaces: never returns. go_r (or -1): wait
 * for a byte first (the helper's 'P' goes before anything of ours). */
static void init_child(const sp_rootfs *r, const sp_exec *x, int status_w, int start_r,
                       int go_r) {
  int keep[] = {status_w, start_r, x->stdin_r, x->stdout_w, x->stderr_w, x->cgroup_fd, go_r};
  keep_only(keep, 7);
  if (go_r >= 0) {
    char g;
    ssize_t n;
    do n = read(go_r, &g, 1);
    while (n < 0 && errno == EINTR);
    close(go_r);
  }
  for (size_t i = 0; i < r->n_sysctls; i++) { /* this IPC namespace's own */
    int fd = open(r->sysctls[i].path, O_WRONLY | O_CLOEXEC);
    size_t len = strlen(r->sysctls[i].value);
    if (fd < 0 || write(fd, r->sysctls[i].value, len) != (ssize_t)len)
      fail(status_w, 3, 1, "sysctl %s=%s: %s", r->sysctls[i].path + 10, r->sysctls[i].value, errname(errno));
    close(fd);
  }
  setup_root(r, status_w);
  put_all(status_w, "R", 1);
  char b;
  ssize_t n;
  do n = read(start_r, &b, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) _exit(1); /* the container was deleted before start */
  child_exec(x, status_w);
}

/* Opens /proc/<pid>/ns/<name>; -1 on failure. */
static int ns_fd(pid_t pid, const char *name) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, name);
  return open(path, O_RDONLY | O_CLOEXEC);
}

pid_t sp_spawn_init(const sp_rootfs *r, const sp_exec *x, int status_w, int start_r,
                    pid_t pid_of, pid_t ipc_of, vs_err *err) {
  unsigned long own = CLONE_NEWNS | CLONE_NEWUTS | (pid_of > 0 ? 0 : CLONE_NEWPID) |
                      (ipc_of > 0 ? 0 : CLONE_NEWIPC);
  if (pid_of <= 0 && ipc_of <= 0) {
    pid_t pid = raw_clone(own | SIGCHLD);
    if (pid < 0) return vs_err_errno(err, VS_INTERNAL, errno, "clone");
    if (pid == 0) init_child(r, x, status_w, start_r, -1);
    return pid;
  }
  int pfd = pid_of > 0 ? ns_fd(pid_of, "pid") : -1, ifd = ipc_of > 0 ? ns_fd(ipc_of, "ipc") : -1;
  int go[2] = {-1, -1};
  if ((pid_of > 0 && pfd < 0) || (ipc_of > 0 && ifd < 0) || pipe2(go, O_CLOEXEC) < 0) {
    int e = errno;
    if (pfd >= 0) close(pfd);
    if (ifd >= 0) close(ifd);
    return vs_err_errno(err, VS_FAILED_PRECONDITION, e, "the shared namespaces' holder is gone");
  }
  pid_t helper = raw_clone(SIGCHLD);
  if (helper != 0) {
    int e = errno;
    if (pfd >= 0) close(pfd);
    if (ifd >= 0) close(ifd);
    close(go[0]);
    close(go[1]);
    return helper < 0 ? vs_err_errno(err, VS_INTERNAL, e, "clone") : helper;
  }
  int keep[] = {status_w, start_r, x->stdin_r, x->stdout_w, x->stderr_w, x->cgroup_fd,
                go[0], go[1], pfd, ifd};
  keep_only(keep, 10);
  if ((ifd >= 0 && setns(ifd, CLONE_NEWIPC) < 0) || (pfd >= 0 && setns(pfd, CLONE_NEWPID) < 0))
    fail(status_w, 13, 1, "join the shared namespaces: %s", errname(errno));
  /* CLONE_PARENT: vminitd's child (it reaps it); setns(pid) applies to
   * children only. */
  pid_t pid = raw_clone(CLONE_PARENT | own | SIGCHLD);
  if (pid < 0) fail(status_w, 13, 1, "clone: %s", errname(errno));
  if (pid == 0) {
    close(go[1]);
    init_child(r, x, status_w, start_r, go[0]);
  }
  char buf[5] = {'P'};
  int32_t p32 = pid;
  memcpy(buf + 1, &p32, 4);
  put_all(status_w, buf, 5);
  put_all(go[1], "g", 1);
  _exit(0);
}

pid_t sp_spawn_holder(vs_err *err) {
  pid_t pid = raw_clone(CLONE_NEWPID | CLONE_NEWIPC | SIGCHLD);
  if (pid < 0) return vs_err_errno(err, VS_INTERNAL, errno, "clone");
  if (pid > 0) return pid;
  keep_only(NULL, 0);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_SETMASK, &chld, NULL); /* only SIGCHLD matters, and it waits */
  for (;;) {
    siginfo_t si;
    sigwaitinfo(&chld, &si);
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
  }
}

pid_t sp_spawn_exec(pid_t init_pid, const sp_exec *x, int status_w, vs_err *err) {
  static const struct {
    const char *name;
    int type;
  } ns[] = {{"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"pid", CLONE_NEWPID},
            {"mnt", CLONE_NEWNS}};
  int fds[4];
  for (int i = 0; i < 4; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)init_pid, ns[i].name);
    fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) {
      int e = errno;
      while (i-- > 0) close(fds[i]);
      return vs_err_errno(err, VS_FAILED_PRECONDITION, e,
                          "container init (pid %d) is gone", (int)init_pid);
    }
  }
  /* setns(mnt) puts the caller at the namespace's root mount, which is the
   * initramfs; the container's root is where its init pivoted to. */
  char rpath[64];
  snprintf(rpath, sizeof rpath, "/proc/%d/root", (int)init_pid);
  int rootfd = open(rpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    int e = errno;
    for (int i = 0; i < 4; i++) close(fds[i]);
    return vs_err_errno(err, VS_FAILED_PRECONDITION, e, "container init (pid %d) is gone",
                        (int)init_pid);
  }
  pid_t helper = raw_clone(SIGCHLD);
  if (helper != 0) {
    int e = errno;
    close(rootfd);
    for (int i = 0; i < 4; i++) close(fds[i]);
    if (helper < 0) return vs_err_errno(err, VS_INTERNAL, e, "clone");
    return helper;
  }
  int keep[] = {status_w, fds[0], fds[1], fds[2], fds[3], rootfd,
                x->stdin_r, x->stdout_w, x->stderr_w, x->cgroup_fd};
  keep_only(keep, 10);
  for (int i = 0; i < 4; i++)
    if (setns(fds[i], ns[i].type) < 0) fail(status_w, 13, 1, "setns %s: %s", ns[i].name, errname(errno));
  if (fchdir(rootfd) < 0 || chroot(".") < 0 || chdir("/") < 0)
    fail(status_w, 13, 1, "enter container root: %s", errname(errno));
  /* CLONE_PARENT: the process is vminitd's child, inside the container's
   * PID namespace (setns(pid) applies to children only). */
  pid_t pid = raw_clone(CLONE_PARENT | SIGCHLD);
  if (pid < 0) fail(status_w, 13, 1, "clone: %s", errname(errno));
  if (pid == 0) child_exec(x, status_w);
  char buf[5] = {'P'};
  int32_t p32 = pid;
  memcpy(buf + 1, &p32, 4);
  put_all(status_w, buf, 5);
  _exit(0);
}

static int read_full(int fd, void *buf, size_t n) {
  char *p = buf;
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return got == 0 && r == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

int sp_read_status(int status_r, pid_t *pid, vs_err *err) {
  char t;
  int r = read_full(status_r, &t, 1);
  if (r == 0) return 0;
  if (r < 0) return vs_err_errno(err, VS_INTERNAL, errno, "read child status");
  if (t == 'R') return 'R';
  if (t == 'P') {
    int32_t p;
    if (read_full(status_r, &p, 4) != 1) return vs_err_set(err, VS_INTERNAL, "short child status");
    *pid = p;
    return 'P';
  }
  if (t == 'E') {
    int32_t code;
    uint16_t len;
    char msg[512];
    if (read_full(status_r, &code, 4) != 1 || read_full(status_r, &len, 2) != 1 ||
        len >= sizeof msg || (len && read_full(status_r, msg, len) != 1))
      return vs_err_set(err, VS_INTERNAL, "short child status");
    msg[len] = '\0';
    vs_err_set(err, (vs_code)code, "%s", msg);
    return 'E';
  }
  return vs_err_set(err, VS_INTERNAL, "bad child status byte 0x%02x", (unsigned char)t);
}
