/* QEMU microvm launcher for container VMs. */
#include "server/vm/vm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/vs_fs.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

struct vm {
  pid_t pid;
  int exited;
  int status;
  vrpc_channel *ch;
  char sock[108];
  char log[4096];
  char initrd_tmp[4096]; /* concatenated initrd we created, removed on free */
  struct timespec started;
  int64_t ready_ms;
  int detached; /* QEMU left running on purpose */
  /* An adopted QEMU is not our child: once it is gone its PID can be
   * reused at once, so it is watched and signalled through a pidfd. */
  int pidfd;
  char record[120]; /* its record file, "" if none */
  int ram_shared;   /* guest RAM is a file it writes to: vm_save leaves RAM out */
};

/* "pid\nsocket\ntap tap...\n", replaced atomically. */
static int record_write(const char *path, pid_t pid, const vm_config *c, vs_err *err) {
  char text[300];
  int n = snprintf(text, sizeof text, "%d\n%s\n", (int)pid, c->agent_socket);
  for (size_t i = 0; i < c->n_nics && i < VM_MAX_NICS; i++)
    n += snprintf(text + n, sizeof text - (size_t)n, "%s%s", i ? " " : "", c->nics[i].tap);
  n += snprintf(text + n, sizeof text - (size_t)n, "\n");
  return vs_write_atomic(path, text, (size_t)n, 0600, err);
}

/* A VM's record lives beside its agent socket. */
static void record_path(vm *v, const char *agent_socket) {
  snprintf(v->record, sizeof v->record, "%s.rec", agent_socket);
}

int vm_record_read(const char *path, vm_record *r, vs_err *err) {
  memset(r, 0, sizeof *r);
  FILE *f = fopen(path, "re");
  if (!f) return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "%s", path);
  char line[3][128] = {"", "", ""};
  for (int i = 0; i < 3 && fgets(line[i], sizeof line[i], f); i++) line[i][strcspn(line[i], "\n")] = '\0';
  fclose(f);
  r->pid = (pid_t)atoi(line[0]);
  if (!line[1][0] || strlen(line[1]) >= sizeof r->socket)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: not a VM record", path);
  snprintf(r->socket, sizeof r->socket, "%s", line[1]);
  char *save = NULL;
  for (char *t = strtok_r(line[2], " ", &save); t; t = strtok_r(NULL, " ", &save)) {
    if (r->n_taps == VM_MAX_NICS || strlen(t) >= sizeof r->taps[0])
      return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: not a VM record", path);
    snprintf(r->taps[r->n_taps++], sizeof r->taps[0], "%s", t);
  }
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t since_ms(const struct timespec *t) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)(ts.tv_sec - t->tv_sec) * 1000 + (ts.tv_nsec - t->tv_nsec) / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

vm_arch vm_host_arch(void) {
#if defined(__aarch64__)
  return VM_ARCH_ARM64;
#else
  return VM_ARCH_X86_64;
#endif
}

const char *vm_arch_name(vm_arch a) {
  if (a == VM_ARCH_HOST) a = vm_host_arch();
  return a == VM_ARCH_ARM64 ? "arm64" : "x86_64";
}

const char *vm_cpu_model(vm_accel accel, vm_arch arch) {
  if (accel == VM_ACCEL_KVM) return "host";
  /* TCG arm64 "max" with pointer authentication done by QEMU's own cheap
   * algorithm instead of the architected cipher (~2x faster guest code).
   * TCG x86_64 "max" without ERMS/FSRM: with them the guest's kernel and
   * libc copy and clear memory with `rep movsb`/`rep stosb`, which TCG runs
   * one byte per iteration; without, `rep movsq` and vector loops (a guest
   * writing 128 MiB to tmpfs: 2.8x faster; reading /dev/zero: 2.9x). Both
   * are hints: code that checks for them runs without. */
  return arch == VM_ARCH_ARM64 ? "max,pauth-impdef=on" : "max,erms=off,fsrm=off";
}

int vm_arch_parse(const char *s, vm_arch *out) {
  if (!strcmp(s, "x86_64") || !strcmp(s, "amd64")) *out = VM_ARCH_X86_64;
  else if (!strcmp(s, "arm64") || !strcmp(s, "aarch64")) *out = VM_ARCH_ARM64;
  else return -1;
  return 0;
}

static vm_arch guest_arch(const vm_config *c) {
  return c->arch == VM_ARCH_HOST ? vm_host_arch() : c->arch;
}

long vm_host_tsc_khz(void) {
  FILE *f = fopen("/proc/cpuinfo", "re");
  if (!f) return 0;
  char line[512];
  double mhz = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "cpu MHz", 7) == 0) {
      char *colon = strchr(line, ':');
      if (colon) mhz = strtod(colon + 1, NULL);
      break;
    }
  }
  fclose(f);
  return (long)(mhz * 1000 + 0.5);
}

void vm_tail(const char *path, int n, char *out, size_t out_len) {
  out[0] = '\0';
  if (!path) return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  off_t size = lseek(fd, 0, SEEK_END);
  off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
  ssize_t got = pread(fd, buf, sizeof buf - 1, from);
  close(fd);
  if (got <= 0) return;
  buf[got] = '\0';
  while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r')) buf[--got] = '\0';
  char *p = buf + got;
  int lines = 0;
  while (p > buf) {
    if (p[-1] == '\n' && ++lines == n) break;
    p--;
  }
  snprintf(out, out_len, "%s", p);
}

/* ---- argv ---- */

typedef struct argv_b {
  char **v;
  size_t n, cap;
  int oom;
} argv_b;

__attribute__((format(printf, 2, 3))) static void add(argv_b *b, const char *fmt, ...) {
  if (b->n + 2 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 32;
    char **v = realloc(b->v, cap * sizeof *v);
    if (!v) {
      b->oom = 1;
      return;
    }
    b->v = v;
    b->cap = cap;
  }
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  if (!s) {
    b->oom = 1;
    return;
  }
  b->v[b->n++] = s;
  b->v[b->n] = NULL;
}

void vm_argv_free(char **argv) {
  if (!argv) return;
  for (char **p = argv; *p; p++) free(*p);
  free(argv);
}

/* QEMU's -drive/-chardev option syntax doubles commas inside values. */
static char *qesc(const char *s, char *buf, size_t n) {
  size_t k = 0;
  for (; *s && k + 2 < n; s++) {
    if (*s == ',') buf[k++] = ',';
    buf[k++] = *s;
  }
  buf[k] = '\0';
  return buf;
}

char **vm_build_argv(const vm_config *c, const char *initrd, vm_accel accel, vs_err *err) {
  if (c->n_nics > VM_MAX_NICS) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "vm: %zu NICs, at most %d", c->n_nics, VM_MAX_NICS);
    return NULL;
  }
  argv_b b = {0};
  char e1[4200];
  int arm = guest_arch(c) == VM_ARCH_ARM64;
  add(&b, "%s", c->qemu ? c->qemu : arm ? "qemu-system-aarch64" : "qemu-system-x86_64");
  add(&b, "-M");
  if (arm) /* virt: its virtio-mmio slots take the same -device virtio-*-device */
    add(&b, "virt,gic-version=max");
  else /* microvm: no PCI, no firmware option ROMs; ISA serial for the console. */
    add(&b, "microvm,x-option-roms=off,isa-serial=on,rtc=on");
  add(&b, "-accel");
  if (accel == VM_ACCEL_KVM) add(&b, "kvm");
  else if (c->tb_size_mib > 0) add(&b, "tcg,tb-size=%d", c->tb_size_mib);
  else add(&b, "tcg");
  add(&b, "-cpu");
  add(&b, "%s", vm_cpu_model(accel, arm ? VM_ARCH_ARM64 : VM_ARCH_X86_64));
  add(&b, "-smp");
  add(&b, "%d", c->vcpus > 0 ? c->vcpus : 1);
  int mib = c->memory_mib > 0 ? c->memory_mib : 256;
  add(&b, "-m");
  add(&b, "%dM", mib);
  if (c->ram_file) {
    add(&b, "-object");
    add(&b, "memory-backend-file,id=ram,size=%dM,mem-path=%s,share=%s", mib,
        qesc(c->ram_file, e1, sizeof e1), c->ram_shared ? "on" : "off");
    add(&b, "-machine");
    add(&b, "memory-backend=ram");
  }
  add(&b, "-nodefaults");
  add(&b, "-no-user-config");
  add(&b, "-nographic");
  /* A guest reset (panic, reboot without ACPI power-off) ends QEMU. */
  add(&b, "-no-reboot");
  add(&b, "-kernel");
  add(&b, "%s", c->kernel);
  if (initrd) {
    add(&b, "-initrd");
    add(&b, "%s", initrd);
  }
  char cmd[2048];
  int n = snprintf(cmd, sizeof cmd, "console=%s quiet panic=-1 rdinit=/sbin/vminitd",
                   arm ? "ttyAMA0" : "ttyS0");
  if (accel != VM_ACCEL_KVM && !arm) {
    long khz = vm_host_tsc_khz();
    if (khz > 0) n += snprintf(cmd + n, sizeof cmd - (size_t)n, " tsc_early_khz=%ld", khz);
  }
  if (c->cmdline_extra && *c->cmdline_extra)
    snprintf(cmd + n, sizeof cmd - (size_t)n, " %s", c->cmdline_extra);
  add(&b, "-append");
  add(&b, "%s", cmd);
  if (c->console_log) {
    add(&b, "-chardev");
    add(&b, "file,id=con,path=%s,append=on", qesc(c->console_log, e1, sizeof e1));
    add(&b, "-serial");
    add(&b, "chardev:con");
  } else {
    add(&b, "-serial");
    add(&b, "null");
  }
  /* Disks first so the root disk is /dev/vda. */
  size_t nd = 0;
  if (c->root_disk) {
    add(&b, "-drive");
    add(&b, "id=d0,file=%s,format=raw,if=none,cache=unsafe,discard=unmap",
        qesc(c->root_disk, e1, sizeof e1));
    add(&b, "-device");
    add(&b, "virtio-blk-device,drive=d0");
    nd++;
  }
  for (size_t i = 0; i < c->n_disks; i++, nd++) {
    add(&b, "-drive");
    add(&b, "id=d%zu,file=%s,format=raw,if=none,cache=unsafe%s", nd,
        qesc(c->disks[i].path, e1, sizeof e1), c->disks[i].read_only ? ",readonly=on" : "");
    add(&b, "-device");
    add(&b, "virtio-blk-device,drive=d%zu", nd);
  }
  add(&b, "-chardev");
  add(&b, "socket,id=agent,path=%s,server=on,wait=off", qesc(c->agent_socket, e1, sizeof e1));
  add(&b, "-device");
  add(&b, "virtio-serial-device,max_ports=2");
  add(&b, "-device");
  add(&b, "virtserialport,chardev=agent,name=vessel.agent");
  add(&b, "-device");
  add(&b, "virtio-rng-device");
  add(&b, "-device");
  add(&b, "virtio-balloon-device,free-page-reporting=%s", c->free_page_reporting ? "on" : "off");
  if (c->qmp_socket) {
    add(&b, "-qmp");
    add(&b, "unix:%s,server=on,wait=off", qesc(c->qmp_socket, e1, sizeof e1));
  }
  if (c->incoming && c->ram_file) { /* x-ignore-shared is set over QMP first */
    add(&b, "-qmp");
    add(&b, "unix:%s.qmp,server=on,wait=off", qesc(c->agent_socket, e1, sizeof e1));
    add(&b, "-incoming");
    add(&b, "defer");
  } else if (c->incoming) { /* QEMU runs "cat PATH" itself: keep the path plain */
    add(&b, "-incoming");
    add(&b, "exec:cat %s", c->incoming);
  }
  for (size_t i = 0; i < c->n_nics; i++) {
    add(&b, "-netdev");
    add(&b, "tap,id=n%zu,ifname=%s,script=no,downscript=no", i, c->nics[i].tap);
    add(&b, "-device");
    if (c->nics[i].mac)
      add(&b, "virtio-net-device,netdev=n%zu,mac=%s", i, c->nics[i].mac);
    else
      add(&b, "virtio-net-device,netdev=n%zu", i);
  }
  /* Host directories over virtio-9p (the guest mounts them by tag). */
  for (size_t i = 0; i < c->n_shares; i++) {
    add(&b, "-fsdev");
    /* multidevs=remap: files of mounts under the share (staged CRI mounts)
     * keep distinct inode numbers in the guest */
    add(&b, "local,id=fs%zu,path=%s,security_model=none,multidevs=remap%s", i,
        qesc(c->shares[i].path, e1, sizeof e1), c->shares[i].read_only ? ",readonly=on" : "");
    add(&b, "-device");
    add(&b, "virtio-9p-device,fsdev=fs%zu,mount_tag=%s", i, c->shares[i].tag);
  }
  if (b.oom) {
    vm_argv_free(b.v);
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  return b.v;
}

/* ---- lifecycle ---- */

/* 1 once QEMU is gone (and then so is its record). */
static int reap(vm *v, int block) {
  if (v->exited) return 1;
  if (v->pidfd >= 0) { /* adopted: readable once the process is gone */
    struct pollfd pf = {v->pidfd, POLLIN, 0};
    if (poll(&pf, 1, block ? 5000 : 0) > 0) v->exited = 1;
  } else {
    int st;
    if (waitpid(v->pid, &st, block ? 0 : WNOHANG) == v->pid) {
      v->exited = 1;
      v->status = st;
    }
  }
  if (v->exited && v->record[0]) {
    unlink(v->record);
    v->record[0] = '\0';
  }
  return v->exited;
}

/* The kernel's panic line, which the stack dump after it pushes out of the
 * tail, or "" if there is none. */
static void panic_line(const char *path, char *out, size_t n) {
  out[0] = '\0';
  char buf[8192];
  vm_tail(path, 80, buf, sizeof buf);
  char *p = NULL;
  for (char *q = buf; (q = strstr(q, "Kernel panic")) != NULL; q++) p = q;
  if (!p) return;
  size_t len = strcspn(p, "\r\n");
  snprintf(out, n, "%.*s\n...\n", (int)(len < n - 6 ? len : n - 6), p);
}

static int fail_with_log(vm *v, vs_code code, vs_err *err, const char *what) {
  char tail[1500], pl[256] = "";
  if (v->log[0]) panic_line(v->log, pl, sizeof pl);
  vm_tail(v->log[0] ? v->log : NULL, pl[0] ? 6 : 12, tail, sizeof tail);
  if (pl[0]) {
    char both[1500];
    snprintf(both, sizeof both, "%s%s", pl, tail);
    snprintf(tail, sizeof tail, "%s", both);
  }
  if (v->exited && WIFEXITED(v->status))
    return vs_err_set(err, code, "%s: QEMU exited with status %d; console log:\n%s", what,
                      WEXITSTATUS(v->status), tail);
  if (v->exited && WIFSIGNALED(v->status))
    return vs_err_set(err, code, "%s: QEMU killed by signal %d; console log:\n%s", what,
                      WTERMSIG(v->status), tail);
  return vs_err_set(err, code, "%s; console log:\n%s", what, tail);
}

static int concat(const char *a, const char *b, const char *out, vs_err *err) {
  int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (o < 0) return vs_err_errno(err, VS_INTERNAL, errno, "create %s", out);
  const char *in[2] = {a, b};
  char buf[65536];
  for (int i = 0; i < 2; i++) {
    int fd = open(in[i], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      close(o);
      return vs_err_errno(err, VS_NOT_FOUND, e, "open %s", in[i]);
    }
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
      if (write(o, buf, (size_t)n) != n) {
        close(fd);
        close(o);
        return vs_err_errno(err, VS_INTERNAL, errno, "write %s", out);
      }
    close(fd);
  }
  return close(o) < 0 ? vs_err_errno(err, VS_INTERNAL, errno, "close %s", out) : 0;
}

static int connect_sock(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Snapshot paths go into QEMU's option and QMP syntax, where ',' or '"'
 * would change their meaning. */
static int safe_path(const char *p) {
  for (; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          strchr("/._-", *p)))
      return 0;
  return 1;
}

/* A QMP connection past the greeting and capabilities, or NULL. QEMU
 * creates the socket while it starts: retried until timeout_ms has passed
 * or QEMU is gone. */
static vm_qmp *qmp_open(vm *v, const char *path, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  int fd;
  while ((fd = connect_sock(path)) < 0) {
    if (reap(v, 0) || now_ms() > deadline) return NULL;
    sleep_ms(2);
  }
  return vm_qmp_open(fd);
}

static const char IGNORE_SHARED[] =
    "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":"
    "[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}";

/* Restores a snapshot whose RAM is the VM's RAM file: QEMU waits
 * (-incoming defer) until told that RAM is not in the stream. */
static int restore_incoming(vm *v, const vm_config *c, vs_err *err) {
  char path[120], buf[4096], cmd[4600];
  snprintf(path, sizeof path, "%s.qmp", c->agent_socket);
  vm_qmp *q = qmp_open(v, path, 10000);
  if (!q) {
    unlink(path);
    return fail_with_log(v, VS_FAILED_PRECONDITION, err, "vm: no QMP to restore through");
  }
  snprintf(cmd, sizeof cmd,
           "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"exec:cat %s\"}}",
           c->incoming);
  int rc = 0;
  if (vm_qmp_cmd(q, IGNORE_SHARED, buf, sizeof buf) < 0 || vm_qmp_cmd(q, cmd, buf, sizeof buf) < 0)
    rc = vs_err_set(err, VS_INTERNAL, "vm: QMP restore: %.200s", buf);
  vm_qmp_close(q);
  unlink(path); /* nothing else talks to this QEMU's QMP */
  return rc;
}

vm *vm_start(const vm_config *c, vs_err *err) {
  if (c->incoming && !safe_path(c->incoming)) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "vm: snapshot path %s has unsafe characters", c->incoming);
    return NULL;
  }
  if (!c->kernel || !c->agent_socket) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "vm: kernel and agent_socket are required");
    return NULL;
  }
  if (c->accel != VM_ACCEL_KVM && c->accel != VM_ACCEL_TCG) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "vm: no accelerator decided (vm_accel_decide)");
    return NULL;
  }
  /* +4: a restore's QMP socket is <agent_socket>.qmp */
  if (strlen(c->agent_socket) + 4 >= sizeof((struct sockaddr_un *)0)->sun_path) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "vm: agent socket path too long (max 103 bytes): %s",
               c->agent_socket);
    return NULL;
  }
  if (c->ram_file && (c->free_page_reporting || (c->incoming && c->ram_shared))) {
    vs_err_set(err, VS_INVALID_ARGUMENT,
               c->free_page_reporting ? "vm: free page reporting would punch holes into the RAM file"
                                      : "vm: a restore would write into the snapshot's RAM file");
    return NULL;
  }
  const char *paths[] = {c->kernel, c->initrd, c->initrd_extra, c->root_disk};
  for (size_t i = 0; i < 4; i++)
    if (paths[i] && access(paths[i], R_OK) < 0) {
      vs_err_errno(err, VS_NOT_FOUND, errno, "vm: %s", paths[i]);
      return NULL;
    }
  vm *v = calloc(1, sizeof *v);
  if (!v) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  v->pidfd = -1;
  v->ram_shared = c->ram_file && c->ram_shared;
  snprintf(v->sock, sizeof v->sock, "%s", c->agent_socket);
  if (c->console_log) snprintf(v->log, sizeof v->log, "%s", c->console_log);
  vm_accel accel = c->accel;
  int foreign = guest_arch(c) != vm_host_arch();
  if (foreign && accel == VM_ACCEL_KVM) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "vm: an %s guest cannot use KVM on an %s host",
               vm_arch_name(c->arch), vm_arch_name(VM_ARCH_HOST));
    free(v);
    return NULL;
  }
  const char *initrd = c->initrd;
  if (c->initrd && c->initrd_extra) {
    /* QEMU takes one initrd; the kernel unpacks concatenated archives. */
    snprintf(v->initrd_tmp, sizeof v->initrd_tmp, "%s.initrd", c->agent_socket);
    if (concat(c->initrd, c->initrd_extra, v->initrd_tmp, err) < 0) {
      free(v);
      return NULL;
    }
    initrd = v->initrd_tmp;
  }
  char **argv = vm_build_argv(c, initrd, accel, err);
  if (!argv) {
    vm_free(v);
    return NULL;
  }
  unlink(c->agent_socket);
  int logfd = -1;
  if (c->console_log) {
    logfd = open(c->console_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
      vs_err_errno(err, VS_INTERNAL, errno, "vm: console log %s", c->console_log);
      vm_argv_free(argv);
      vm_free(v);
      return NULL;
    }
  }
  if (c->record) {
    record_path(v, c->agent_socket);
    if (record_write(v->record, 0, c, err) < 0) {
      v->record[0] = '\0';
      if (logfd >= 0) close(logfd);
      vm_argv_free(argv);
      vm_free(v);
      return NULL;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &v->started);
  pid_t pid = fork();
  if (pid < 0) {
    vs_err_errno(err, VS_INTERNAL, errno, "vm: fork");
    if (logfd >= 0) close(logfd);
    vm_argv_free(argv);
    vm_free(v);
    return NULL;
  }
  if (pid == 0) {
    /* Own session: a terminal's ^C or a daemon restart does not hit QEMU. */
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) dup2(null, 0);
    if (logfd >= 0) {
      dup2(logfd, 1);
      dup2(logfd, 2);
    } else if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (c->nice) setpriority(PRIO_PROCESS, 0, c->nice);
    /* No transparent huge pages: QEMU asks for them for its translation
     * cache, where each 2 MiB one is resident whole however little of it
     * holds code (measured: ~3 MiB less per idle VM). */
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    execvp(argv[0], argv);
    fprintf(stderr, "vm: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  if (logfd >= 0) close(logfd);
  vm_argv_free(argv);
  v->pid = pid;
  if (v->record[0] && record_write(v->record, pid, c, err) < 0) {
    vm_kill(v);
    vm_free(v);
    return NULL;
  }
  if (c->incoming && c->ram_file && restore_incoming(v, c, err) < 0) {
    vm_kill(v);
    vm_free(v);
    return NULL;
  }
  /* QEMU creates the listening socket during startup. */
  int64_t deadline = now_ms() + 10000;
  int fd = -1;
  while (fd < 0) {
    fd = connect_sock(v->sock);
    if (fd >= 0) break;
    if (reap(v, 0)) {
      fail_with_log(v, VS_FAILED_PRECONDITION, err, "vm: QEMU failed to start");
      vm_free(v);
      return NULL;
    }
    if (now_ms() > deadline) {
      fail_with_log(v, VS_DEADLINE_EXCEEDED, err, "vm: QEMU did not open the agent socket");
      vm_kill(v);
      vm_free(v);
      return NULL;
    }
    sleep_ms(2);
  }
  vrpc_channel_opts co = {0, c->on_call, c->on_call_arg};
  v->ch = vrpc_dial_fd(fd, &co, err);
  if (!v->ch) {
    vm_kill(v);
    vm_free(v);
    return NULL;
  }
  return v;
}

int vm_wait_ready(vm *v, int timeout_ms, vs_err *err) {
  if (!v->ch) return vs_err_set(err, VS_FAILED_PRECONDITION, "vm: not connected");
  int64_t deadline = now_ms() + timeout_ms, fresh = now_ms() + 15000;
  for (;;) {
    if (reap(v, 0)) return fail_with_log(v, VS_UNAVAILABLE, err, "vm: QEMU exited during boot");
    if (now_ms() > fresh) { /* long silent: maybe a broken connection (see vm_reconnect) */
      vs_err ignore;
      vm_reconnect(v, &ignore);
      fresh = now_ms() + 15000;
      if (!v->ch) continue;
    }
    int64_t left = deadline - now_ms();
    if (left <= 0) return fail_with_log(v, VS_DEADLINE_EXCEEDED, err, "vm: agent did not answer");
    /* Short attempts, so that a QEMU that died is noticed quickly. */
    Vessel__V1__AgentInfoRequest req = VESSEL__V1__AGENT_INFO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    vrpc_call_opts o = {left < 1000 ? left : 1000, NULL};
    vs_err e;
    if (vrpc_unary(v->ch, &vessel_v1_Agent_Info, &req.base, &resp, &o, &e) == 0) {
      vrpc_msg_free(resp);
      if (!v->ready_ms) v->ready_ms = since_ms(&v->started);
      return 0;
    }
    if (e.code != VS_DEADLINE_EXCEEDED && e.code != VS_UNAVAILABLE) {
      *err = e;
      return -1;
    }
    if (e.code == VS_UNAVAILABLE) sleep_ms(5);
  }
}

vrpc_channel *vm_channel(vm *v) { return v->ch; }
int vm_running(vm *v) { return v->pid && !reap(v, 0); }
pid_t vm_pid(vm *v) { return v->pid; }
int64_t vm_ready_ms(vm *v) { return v->ready_ms; }

void vm_kill(vm *v) {
  if (!v->pid || v->exited) return;
  if (v->pidfd >= 0) syscall(SYS_pidfd_send_signal, v->pidfd, SIGKILL, NULL, 0);
  else kill(v->pid, SIGKILL);
  reap(v, 1);
}

int vm_stop(vm *v, int timeout_ms, vs_err *err) {
  if (v->exited || !v->pid) return 0;
  if (v->ch) {
    Vessel__V1__AgentShutdownRequest req = VESSEL__V1__AGENT_SHUTDOWN_REQUEST__INIT;
    req.action = VESSEL__V1__SHUTDOWN_ACTION__SHUTDOWN_ACTION_POWEROFF;
    ProtobufCMessage *resp = NULL;
    vrpc_call_opts o = {timeout_ms, NULL};
    vs_err e;
    if (vrpc_unary(v->ch, &vessel_v1_Agent_Shutdown, &req.base, &resp, &o, &e) == 0)
      vrpc_msg_free(resp);
  }
  int64_t deadline = now_ms() + timeout_ms;
  while (!reap(v, 0) && now_ms() < deadline) sleep_ms(10);
  if (!v->exited) {
    vm_kill(v);
    (void)err;
  }
  return 0;
}

void vm_detach(vm *v) {
  if (v->ch) vrpc_channel_free(v->ch);
  v->ch = NULL;
  v->detached = 1;
}

/* 1 if pid is a QEMU serving agent_socket: its command line names it. */
static int is_our_qemu(pid_t pid, const char *agent_socket) {
  char path[64], cmd[16384];
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, cmd, sizeof cmd - 1);
  close(fd);
  if (n <= 0) return 0;
  for (ssize_t i = 0; i < n; i++)
    if (!cmd[i]) cmd[i] = ' ';
  cmd[n] = '\0';
  return strstr(cmd, "qemu-system") && strstr(cmd, agent_socket);
}

vm *vm_adopt(pid_t pid, const char *agent_socket, const char *console_log, int record,
             vs_err *err) {
  if (strlen(agent_socket) >= sizeof(((vm *)0)->sock)) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "agent socket path too long");
    return NULL;
  }
  /* The pidfd first, then the check: if the check passes, the pidfd is
   * that QEMU's, whatever happens to the PID afterwards. */
  int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
  if (pidfd < 0 || !is_our_qemu(pid, agent_socket)) {
    if (pidfd >= 0) close(pidfd);
    vs_err_set(err, VS_NOT_FOUND, "QEMU process %d is gone", (int)pid);
    return NULL;
  }
  vm *v = calloc(1, sizeof *v);
  if (!v) {
    close(pidfd);
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  v->pid = pid;
  v->pidfd = pidfd;
  snprintf(v->sock, sizeof v->sock, "%s", agent_socket);
  snprintf(v->log, sizeof v->log, "%s", console_log ? console_log : "");
  if (record) record_path(v, agent_socket);
  clock_gettime(CLOCK_MONOTONIC, &v->started);
  /* Not connected yet is fine: vm_wait_ready says whether it answers. */
  vs_err ignore;
  vm_reconnect(v, &ignore);
  return v;
}

int vm_save(vm *v, const char *qmp_socket, const char *state_path, vs_err *err) {
  if (!safe_path(state_path))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "snapshot path %s has unsafe characters", state_path);
  vm_qmp *q = qmp_open(v, qmp_socket, 0);
  char buf[4096], cmd[4600];
  int rc = 0;
  if (!q) {
    rc = vs_err_set(err, VS_UNAVAILABLE, "QMP %s: handshake failed", qmp_socket);
    goto out;
  }
  /* RAM that is a file stays out of the stream: the file is the RAM */
  if (v->ram_shared && vm_qmp_cmd(q, IGNORE_SHARED, buf, sizeof buf) < 0) {
    rc = vs_err_set(err, VS_INTERNAL, "QMP x-ignore-shared: %.200s", buf);
    goto out;
  }
  snprintf(cmd, sizeof cmd,
           "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat > %s\"}}", state_path);
  if (vm_qmp_cmd(q, cmd, buf, sizeof buf) < 0) {
    rc = vs_err_set(err, VS_INTERNAL, "QMP migrate: %.200s", buf);
    goto out;
  }
  for (int i = 0; i < 6000; i++) { /* up to 60 s */
    if (vm_qmp_cmd(q, "{\"execute\":\"query-migrate\"}", buf, sizeof buf) < 0) {
      rc = vs_err_set(err, VS_INTERNAL, "saving the VM state: %s%.200s (QEMU %s)",
                      buf[0] ? "query-migrate: " : "QMP went away", buf,
                      reap(v, 0) ? "exited" : "still running");
      goto out;
    }
    if (strstr(buf, "\"completed\"")) goto done;
    if (strstr(buf, "\"failed\"") || strstr(buf, "\"cancelled\"")) break;
    sleep_ms(10);
  }
  rc = vs_err_set(err, VS_INTERNAL, "saving the VM state failed: %.200s", buf);
  goto out;
done:
  vm_qmp_cmd(q, "{\"execute\":\"quit\"}", buf, sizeof buf);
out:
  vm_qmp_close(q);
  vm_kill(v);
  return rc;
}

void vm_renice(vm *v, int nice) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/task", (int)v->pid);
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));)
    if (e->d_name[0] != '.') setpriority(PRIO_PROCESS, (id_t)atoi(e->d_name), nice);
  if (d) closedir(d);
}

/* The guest learns of a new host connection from the bytes on its one
 * virtio-serial port: when the host reconnects before the guest saw it
 * leave, the old connection's last bytes (its server's GOAWAY) can reach
 * the new one and break it. A connection is kept once the agent answered
 * on it; a broken one is replaced by a fresh one, a few times. */
int vm_reconnect(vm *v, vs_err *err) {
  for (int attempt = 0;; attempt++) {
    if (v->ch) vrpc_channel_free(v->ch);
    v->ch = NULL;
    int fd = connect_sock(v->sock);
    if (fd < 0) return vs_err_errno(err, VS_UNAVAILABLE, errno, "vm: connect %s", v->sock);
    if (!(v->ch = vrpc_dial_fd(fd, NULL, err))) return -1;
    v->detached = 0;
    Vessel__V1__AgentInfoRequest req = VESSEL__V1__AGENT_INFO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    vrpc_call_opts o = {5000, NULL};
    vs_err e;
    int rc = vrpc_unary(v->ch, &vessel_v1_Agent_Info, &req.base, &resp, &o, &e);
    vrpc_msg_free(resp);
    /* Not answering in time is the agent's state, not a broken connection. */
    if (rc == 0 || e.code != VS_UNAVAILABLE || attempt == 4) return 0;
    sleep_ms(20);
  }
}

/* The PID of the QEMU whose command line names agent_socket, or 0. */
static pid_t find_qemu(const char *agent_socket) {
  DIR *d = opendir("/proc");
  pid_t found = 0;
  for (struct dirent *e; d && !found && (e = readdir(d));) {
    pid_t pid = (pid_t)atoi(e->d_name);
    if (pid > 0 && is_our_qemu(pid, agent_socket)) found = pid;
  }
  if (d) closedir(d);
  return found;
}

void vm_record_end(const char *path, const vm_record *r) {
  /* With no PID recorded QEMU may have been forked just before its starter
   * died: then only its command line tells. */
  pid_t pid = r->pid > 0 ? r->pid : find_qemu(r->socket);
  vs_err ignore;
  vm *v = pid > 0 ? vm_adopt(pid, r->socket, NULL, 0, &ignore) : NULL;
  if (v) {
    vm_kill(v);
    vm_free(v);
  }
  unlink(r->socket);
  unlink(path);
}

void vm_free(vm *v) {
  if (!v) return;
  if (v->ch) vrpc_channel_free(v->ch);
  if (!v->detached) {
    vm_kill(v);
    if (!v->pid && v->record[0]) unlink(v->record); /* never started */
  }
  if (v->initrd_tmp[0]) unlink(v->initrd_tmp);
  if (v->pidfd >= 0) close(v->pidfd);
  free(v);
}

int vm_console_trim(const char *path, int64_t keep) {
  int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) == 0 && (int64_t)st.st_blocks * 512 > keep + keep / 2) {
    off_t cut = (st.st_size - keep) & ~(off_t)4095;
    if (cut > 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, cut) < 0) rc = -1;
  }
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}
