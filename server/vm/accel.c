/* Which accelerator VMs use, decided once by a real probe: KVM only when
 * /dev/kvm opens, the CPU shows vmx or svm (a /dev/kvm without them is a
 * software hypervisor: a real kernel crawls or aborts under it) and a tiny
 * guest booted under KVM, on the machine type and CPU model container VMs
 * use, answers in time. The guest is firmware of our own, independent of
 * the container kernel: at the reset vector it writes VM_PROBE_ANSWER to
 * COM1 and leaves through QEMU's isa-debug-exit port. */
#include "server/vm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROBE_EXIT 0x2a  /* written to isa-debug-exit: QEMU exits (0x2a << 1) | 1 */

int vm_kvm_host_check(const char *dev, const char *cpuinfo, char *why, size_t n) {
  if (access(dev, F_OK) < 0) {
    snprintf(why, n, "%s absent", dev);
    return 0;
  }
  int fd = open(dev, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, n, "%s: %s", dev, strerror(errno));
    return 0;
  }
  close(fd);
  FILE *f = fopen(cpuinfo, "re");
  if (!f) {
    snprintf(why, n, "%s: %s", cpuinfo, strerror(errno));
    return 0;
  }
  char line[8192];
  int hw = 0;
  while (!hw && fgets(line, sizeof line, f))
    if (strncmp(line, "flags", 5) == 0 && (strstr(line, " vmx") || strstr(line, " svm"))) hw = 1;
  fclose(f);
  if (!hw) {
    snprintf(why, n, "no vmx/svm in %s (%s is a software hypervisor here)", cpuinfo, dev);
    return 0;
  }
  why[0] = '\0';
  return 1;
}

void vm_probe_firmware(unsigned char fw[VM_PROBE_FIRMWARE_SIZE]) {
  memset(fw, 0xf4, VM_PROBE_FIRMWARE_SIZE); /* hlt everywhere else */
  /* 16-bit real mode; the firmware is mapped at 4 GiB - 64 KiB and CS's
   * base is 0xffff0000 at reset, so CS:offset is firmware[offset]. */
  static const unsigned char code[] = {
      0xba, 0xf8, 0x03,       /* 0xff00 mov dx, 0x3f8 (COM1) */
      0xbe, 0x20, 0xff,       /* 0xff03 mov si, 0xff20 (the answer) */
      0x2e, 0xac,             /* 0xff06 lodsb al, cs:[si] */
      0x84, 0xc0,             /* 0xff08 test al, al */
      0x74, 0x03,             /* 0xff0a jz 0xff0f */
      0xee,                   /* 0xff0c out dx, al */
      0xeb, 0xf7,             /* 0xff0d jmp 0xff06 */
      0xb0, PROBE_EXIT,       /* 0xff0f mov al, PROBE_EXIT */
      0xe6, 0xf4,             /* 0xff11 out 0xf4, al (isa-debug-exit) */
      0xf4,                   /* 0xff13 hlt */
      0xeb, 0xfd,             /* 0xff14 jmp 0xff13 */
  };
  memcpy(fw + 0xff00, code, sizeof code);
  memcpy(fw + 0xff20, VM_PROBE_ANSWER, sizeof VM_PROBE_ANSWER); /* with its NUL */
  static const unsigned char reset[] = {0xe9, 0x0d, 0xff}; /* 0xfff0 jmp 0xff00 */
  memcpy(fw + 0xfff0, reset, sizeof reset);
}

char **vm_probe_argv(const char *qemu, vm_accel accel, const char *firmware) {
  const char *a = accel == VM_ACCEL_KVM ? "kvm" : "tcg";
  const char *cpu = vm_cpu_model(accel, VM_ARCH_X86_64); /* as vm_build_argv */
  const char *fixed[] = {qemu && *qemu ? qemu : "qemu-system-x86_64",
                         "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=off",
                         "-accel", a, "-cpu", cpu, "-m", "16M",
                         "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                         "-bios", firmware, "-serial", "stdio",
                         "-device", "isa-debug-exit,iobase=0xf4,iosize=4"};
  size_t n = sizeof fixed / sizeof fixed[0];
  char **argv = calloc(n + 1, sizeof *argv);
  for (size_t i = 0; argv && i < n; i++)
    if (!(argv[i] = strdup(fixed[i]))) {
      vm_argv_free(argv);
      return NULL;
    }
  return argv;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* QEMU's output, one line, for a message. */
static void flatten(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) s[--n] = '\0';
  for (char *p = s; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
}

int vm_probe_run(const char *qemu, vm_accel accel, int timeout_ms, int64_t *took_ms, vs_err *err) {
  const char *name = accel == VM_ACCEL_KVM ? "KVM" : "TCG";
  int fw = memfd_create("vessel-accel-probe", MFD_CLOEXEC);
  if (fw < 0) return vs_err_errno(err, VS_INTERNAL, errno, "accel probe: memfd_create");
  unsigned char *img = malloc(VM_PROBE_FIRMWARE_SIZE);
  if (!img) {
    close(fw);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  vm_probe_firmware(img);
  ssize_t w = write(fw, img, VM_PROBE_FIRMWARE_SIZE);
  free(img);
  int out[2] = {-1, -1};
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fw); /* the child's own fd */
  char **argv = w == VM_PROBE_FIRMWARE_SIZE ? vm_probe_argv(qemu, accel, path) : NULL;
  if (!argv || pipe2(out, O_CLOEXEC) < 0) {
    vs_err_errno(err, VS_INTERNAL, argv ? errno : ENOMEM, "accel probe: setup");
    vm_argv_free(argv);
    close(fw);
    return -1;
  }
  int64_t t0 = mono_ms();
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    fcntl(fw, F_SETFD, 0); /* QEMU opens /proc/self/fd/N: keep it across exec */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int fork_errno = errno;
  vm_argv_free(argv);
  close(out[1]);
  close(fw);
  if (pid < 0) {
    close(out[0]);
    return vs_err_errno(err, VS_INTERNAL, fork_errno, "accel probe: fork");
  }
  /* Read until the answer, QEMU's end, or the deadline. */
  char buf[2048];
  size_t len = 0;
  int answered = 0, eof = 0;
  int64_t deadline = t0 + timeout_ms;
  while (!answered && !eof) {
    int64_t left = deadline - mono_ms();
    if (left <= 0) break;
    struct pollfd pf = {out[0], POLLIN, 0};
    if (poll(&pf, 1, (int)left) <= 0) continue;
    ssize_t k = read(out[0], buf + len, sizeof buf - 1 - len);
    if (k <= 0) {
      eof = 1;
      break;
    }
    len += (size_t)k;
    buf[len] = '\0';
    answered = strstr(buf, VM_PROBE_ANSWER) != NULL;
    if (len == sizeof buf - 1) { /* keep the tail */
      memmove(buf, buf + len / 2, len - len / 2 + 1);
      len -= len / 2;
    }
  }
  int64_t took = mono_ms() - t0;
  close(out[0]);
  /* It leaves by itself after answering (isa-debug-exit); else ended. */
  int status = 0;
  for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) == 0; i++) {
    if (i == 50 || !answered) kill(pid, SIGKILL);
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  buf[len] = '\0';
  flatten(buf);
  if (took_ms) *took_ms = took;
  if (answered) return 0;
  if (!eof)
    return vs_err_set(err, VS_DEADLINE_EXCEEDED, "%s guest did not answer in %d s%s%.300s", name,
                      (timeout_ms + 999) / 1000, len ? ": " : "", buf);
  return vs_err_set(err, VS_FAILED_PRECONDITION, "%s guest failed: %.300s", name,
                    len ? buf : "QEMU exited without output");
}

int vm_accel_decide(const char *qemu, vm_arch arch, vm_accel want, int timeout_ms, vm_accel *out,
                    char *reason, size_t n, vs_err *err) {
  if (want == VM_ACCEL_TCG) {
    *out = VM_ACCEL_TCG;
    snprintf(reason, n, "TCG asked for: KVM not probed");
    return 0;
  }
  char why[512];
  int64_t ms = 0;
  vs_err perr;
  if (arch != VM_ARCH_HOST && arch != vm_host_arch())
    snprintf(why, sizeof why, "%s guests on an %s host run under TCG", vm_arch_name(arch),
             vm_arch_name(VM_ARCH_HOST));
  else if (vm_host_arch() != VM_ARCH_X86_64) /* the probe guest is x86 code */
    snprintf(why, sizeof why, "KVM is probed on x86_64 hosts only");
  else if (vm_kvm_host_check("/dev/kvm", "/proc/cpuinfo", why, sizeof why) &&
           vm_probe_run(qemu, VM_ACCEL_KVM, timeout_ms, &ms, &perr) == 0) {
    *out = VM_ACCEL_KVM;
    snprintf(reason, n, "a KVM guest answered in %lld ms", (long long)ms);
    return 0;
  }
  if (!why[0]) snprintf(why, sizeof why, "%s", perr.msg);
  if (want == VM_ACCEL_KVM)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "KVM is not usable: %s", why);
  *out = VM_ACCEL_TCG;
  snprintf(reason, n, "KVM is not usable: %s", why);
  return 0;
}
