/* vminitd: PID 1 of every vessel VM.
 *
 * Mounts the pseudo filesystems, loads the stock kernel's virtio modules
 * when the initramfs carries them, brings up loopback, prepares the cgroup
 * tree, then serves vessel.v1.Agent on vsock or the "vessel.agent"
 * virtio-serial port. Every orphan in the VM is reparented here; the reaper
 * thread collects them. Shutdown syncs and powers off (or reboots). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/rpc.h"
#include "common/vs_log.h"
#include "guest-agent/agent.h"
#include "guest-agent/cgroup.h"
#include "guest-agent/channel.h"
#include "guest-agent/fs.h"
#include "guest-agent/netlink.h"
#include "guest-agent/process.h"
#include "guest-agent/service.h"

#define LOG(lvl, ...) vs_log("vminitd", lvl, __VA_ARGS__)

typedef struct early_mount {
  const char *src, *dst, *type;
  unsigned long flags;
  const char *data;
} early_mount;

static const early_mount early[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
    {"devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "mode=0620,ptmxmode=0666,gid=5"},
    {"shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"},
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate"},
};

static void mount_early(void) {
  for (size_t i = 0; i < sizeof early / sizeof *early; i++) {
    vs_err err;
    if (fs_mount(early[i].src, early[i].dst, early[i].type, early[i].flags, early[i].data, 1,
                 &err) < 0 &&
        !(errno == EBUSY))
      LOG(VS_LOG_ERROR, "%s", err.msg);
  }
  /* The kernel opens /dev/console for init only if it is in the initramfs;
   * make sure logs reach the console either way. */
  int fd = open("/dev/console", O_RDWR | O_CLOEXEC);
  if (fd >= 0) {
    dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
    if (fd > 2) close(fd);
  }
  symlink("/proc/self/fd", "/dev/fd");
  if (access("/dev/ptmx", F_OK) < 0) symlink("pts/ptmx", "/dev/ptmx");
  fs_mkdir_all("/run/vessel/c", 0755, NULL);
  fs_mkdir_all("/etc", 0755, NULL);
  if (access("/etc/resolv.conf", F_OK) < 0) fs_write_file("/etc/resolv.conf", "", 0, 0644, 0, NULL);
  if (access("/etc/hosts", F_OK) < 0) {
    const char *h = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    fs_write_file("/etc/hosts", h, strlen(h), 0644, 0, NULL);
  }
}

/* Stock kernel: its virtio drivers are modules, listed in load order in
 * /lib/modules/order by the initramfs build. */
static void load_modules(void) {
  FILE *f = fopen("/lib/modules/order", "re");
  if (!f) return;
  char name[256];
  while (fgets(name, sizeof name, f)) {
    name[strcspn(name, "\n")] = '\0';
    if (!name[0]) continue;
    char path[512];
    snprintf(path, sizeof path, "/lib/modules/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      LOG(VS_LOG_ERROR, "module %s: %s", name, strerror(errno));
      continue;
    }
    if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
      LOG(VS_LOG_ERROR, "finit_module %s: %s", name, strerror(errno));
    close(fd);
  }
  fclose(f);
}

static void loopback_up(void) {
  nl_sock s;
  vs_err err;
  if (nl_open(&s, &err) < 0) {
    LOG(VS_LOG_ERROR, "%s", err.msg);
    return;
  }
  int idx = nl_link_index("lo", &err);
  if (idx < 0 || nl_link_set(&s, idx, 1, 0, NULL, NULL, &err) < 0)
    LOG(VS_LOG_ERROR, "loopback: %s", err.msg);
  nl_close(&s);
}

static long uptime_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void power(int action) {
  sync();
  /* Stop everything so filesystems are quiet, then sync again. */
  kill(-1, SIGTERM);
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  kill(-1, SIGKILL);
  sync();
  if (action == 2) reboot(RB_AUTOBOOT);
  reboot(RB_POWER_OFF);
  /* Without ACPI power-off, a reset ends the VM (QEMU runs -no-reboot). */
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

int main(int argc, char **argv) {
  (void)argc, (void)argv;
  if (getpid() != 1) {
    fprintf(stderr, "vminitd: must run as PID 1 inside a vessel VM\n");
    return 2;
  }
  /* Every thread inherits this mask: only the reaper takes SIGCHLD, via
   * signalfd; PID 1 must not die of SIGPIPE. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  vs_log_crashes("vminitd");
  umask(022);
  long start_ms = uptime_ms();

  mount_early();
  load_modules();
  long t_mounts = uptime_ms();
  loopback_up();
  vs_err err;
  if (cg_setup(CG_ROOT, &err) < 0) LOG(VS_LOG_ERROR, "cgroups: %s", err.msg);
  long t_setup = uptime_ms();

  static agent a;
  if (ag_init(&a, &err) < 0 || pr_start_reaper(&a, &err) < 0) {
    LOG(VS_LOG_ERROR, "%s", err.msg);
    power(1);
  }
  vrpc_server *srv = vrpc_server_new(NULL, &err);
  if (!srv || svc_register(srv, &a, &err) < 0 || vrpc_health_register(srv, &err) < 0 ||
      vrpc_server_start(srv, &err) < 0) {
    LOG(VS_LOG_ERROR, "agent server: %s", err.msg);
    power(1);
  }
  long t_server = uptime_ms();
  if (ch_start(srv, CH_PORT_NAME, CH_VSOCK_PORT, 5000, &err) < 0) {
    LOG(VS_LOG_ERROR, "%s", err.msg);
    power(1);
  }
  /* Boot timeline in uptime ms, for bench/boot and boot regressions. */
  LOG(VS_LOG_INFO, "vminitd %s: started %ld, mounts %ld, setup %ld, server %ld, serving %ld ms",
      AG_VERSION, start_ms, t_mounts, t_setup, t_server, uptime_ms());
  uint64_t v;
  while (read(a.shutdown_fd, &v, sizeof v) < 0 && errno == EINTR) {
  }
  /* Let the Shutdown response reach the host before the VM goes away. */
  struct timespec ts = {0, 50 * 1000000L};
  nanosleep(&ts, NULL);
  pthread_mutex_lock(&a.mu);
  int action = a.shutdown_action;
  pthread_mutex_unlock(&a.mu);
  LOG(VS_LOG_INFO, "%s", action == 2 ? "rebooting" : "powering off");
  power(action);
  return 0;
}
