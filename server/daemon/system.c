/* vessel.v1.System: version, host information, disk usage. */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "server/daemon/build_commit.h"
#include "server/daemon/daemon.h"
#include "vessel/v1/system.pb-c.h"
#include "vessel_proto_rpc.h"

static int version(vrpc_call *call, void *ctx, vs_err *err) {
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  vrpc_msg_free(in);
  Vessel__V1__SystemVersionResponse r;
  vessel__v1__system_version_response__init(&r);
  r.version = (char *)VESSEL_VERSION;
  r.api_version = (char *)VESSEL_API_VERSION;
  r.git_commit = (char *)VESSEL_GIT_COMMIT;
  r.build_info = (char *)("gcc " __VERSION__ ", protobuf-c " PROTOBUF_C_VERSION);
  return vrpc_send(call, &r.base, err);
}

static void os_pretty_name(char *buf, size_t n) {
  snprintf(buf, n, "Linux");
  FILE *f = fopen("/etc/os-release", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "PRETTY_NAME=", 12) == 0) {
      char *v = line + 12;
      v[strcspn(v, "\n")] = '\0';
      if (*v == '"') {
        v++;
        v[strcspn(v, "\"")] = '\0';
      }
      snprintf(buf, n, "%s", v);
      break;
    }
  }
  fclose(f);
}

static const char *oci_arch(const char *machine) {
  if (strcmp(machine, "x86_64") == 0) return "amd64";
  if (strcmp(machine, "aarch64") == 0) return "arm64";
  return machine;
}

/* "QEMU emulator version 7.2.0 (Debian 1:7.2+dfsg-7)" -> "7.2.0". */
static void probe_qemu(const char *qemu, char *out, size_t n) {
  char cmd[4200];
  out[0] = '\0';
  snprintf(cmd, sizeof cmd, "'%s' --version 2>/dev/null", qemu && *qemu ? qemu : "qemu-system-x86_64");
  if (strchr(qemu ? qemu : "", '\'')) return; /* no quoting games */
  FILE *f = popen(cmd, "r");
  if (!f) return;
  char line[256] = "";
  if (fgets(line, sizeof line, f)) {
    const char *v = strstr(line, "version ");
    if (v) snprintf(out, n, "%.*s", (int)strcspn(v + 8, " \n"), v + 8);
  }
  pclose(f);
}

/* The release from the "Linux version 6.1.192-vessel (...)" banner every
 * kernel image carries (uncompressed vmlinux; "" for a compressed one). */
static void probe_kernel(const char *path, char *out, size_t n) {
  static const char banner[] = "Linux version ";
  const size_t bl = sizeof banner - 1, overlap = 128; /* a banner split across two reads */
  out[0] = '\0';
  FILE *f = path ? fopen(path, "rb") : NULL;
  if (!f) return;
  char buf[(1 << 16) + 1];
  size_t len = 0, got;
  while (!out[0] && (got = fread(buf + len, 1, sizeof buf - 1 - len, f)) > 0) {
    len += got;
    for (const char *p = buf; !out[0] && (p = memmem(p, (size_t)(buf + len - p), banner, bl));
         p += bl) {
      const char *v = p + bl;
      size_t l = 0;
      while (v + l < buf + len && v[l] > ' ' && v[l] < 127) l++;
      if (l && v[0] >= '0' && v[0] <= '9' && v + l < buf + len) snprintf(out, n, "%.*s", (int)l, v);
    }
    size_t keep = len < overlap ? len : overlap;
    memmove(buf, buf + len - keep, keep);
    len = keep;
  }
  fclose(f);
}

/* Once, at the first Info: QEMU's version and the kernel's release. */
static void probe(vd_daemon *d) {
  pthread_mutex_lock(&d->probe_mu);
  if (!d->probed) {
    probe_qemu(d->cfg.qemu, d->qemu_version, sizeof d->qemu_version);
    probe_kernel(d->cfg.kernel, d->kernel_release, sizeof d->kernel_release);
    d->probed = 1;
  }
  pthread_mutex_unlock(&d->probe_mu);
}

static int info(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  vrpc_msg_free(in);
  probe(d);

  Vessel__V1__SystemInfoResponse r;
  vessel__v1__system_info_response__init(&r);
  struct utsname u;
  uname(&u);
  char os[256];
  os_pretty_name(os, sizeof os);
  Google__Protobuf__Timestamp started;
  google__protobuf__timestamp__init(&started);
  started.seconds = d->started.tv_sec;
  started.nanos = (int32_t)d->started.tv_nsec;

  r.root_dir = (char *)d->cfg.root;
  r.accelerator = (char *)(d->accel == VM_ACCEL_KVM ? "kvm" : "tcg");
  r.accelerator_reason = d->accel_reason;
  r.host_os = os;
  r.host_kernel = u.release;
  r.host_architecture = (char *)oci_arch(u.machine);
  r.cpus = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
  r.memory_bytes = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
  r.n_listen_addresses = d->n_listen;
  r.listen_addresses = (char **)d->listen_uris;
  r.started_at = &started;
  rt_counts(d->runtime, &r.containers, &r.containers_running, &r.containers_created,
            &r.containers_stopped);
  r.images = (uint32_t)img_count(d->images);
  net_network *nets = NULL;
  size_t n_nets = 0;
  vs_err ignore;
  if (net_list(d->networks, &nets, &n_nets, &ignore) == 0) {
    r.networks = (uint32_t)n_nets;
    for (size_t i = 0; i < n_nets; i++) net_network_free(&nets[i]);
    free(nets);
  }
  Vessel__V1__KernelInfo k;
  Vessel__V1__KernelInfo *kp[1] = {&k};
  vessel__v1__kernel_info__init(&k);
  if (d->cfg.kernel) {
    k.name = (char *)"optimized";
    k.path = (char *)d->cfg.kernel;
    k.release = d->kernel_release;
    k.architecture = r.host_architecture; /* guests run the host's architecture */
    k.is_default = 1;
    r.kernels = kp;
    r.n_kernels = 1;
  }
  r.qemu_version = d->qemu_version;
  Vessel__V1__Resources def;
  vessel__v1__resources__init(&def);
  rt_default_resources(d->runtime, &def.milli_cpus, &def.memory_bytes);
  r.default_resources = &def;
  r.template_boot = 1; /* VMs start from templates and warm spares (no_template opts out) */
  char plats[8][32];
  Vessel__V1__Platform pl[8], *plp[8];
  size_t np = rt_emu_platforms(d->runtime, plats, 8);
  for (size_t i = 0; i < np; i++) {
    vessel__v1__platform__init(&pl[i]);
    char *slash = strchr(plats[i], '/');
    *slash = '\0';
    pl[i].os = plats[i];
    pl[i].architecture = slash + 1;
    plp[i] = &pl[i];
  }
  r.platforms = plp;
  r.n_platforms = np;
  return vrpc_send(call, &r.base, err);
}

/* nftw has no user pointer; the sum lives in this thread's storage. */
static __thread int64_t du_sum;

static int du_add(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)path, (void)flag, (void)ftw;
  du_sum += (int64_t)st->st_blocks * 512;
  return 0;
}

static int64_t du(const char *root, const char *sub) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", root, sub);
  du_sum = 0;
  nftw(path, du_add, 32, FTW_PHYS | FTW_MOUNT);
  return du_sum;
}

static int disk_usage(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  vrpc_msg_free(in);
  Vessel__V1__SystemDiskUsageResponse r;
  vessel__v1__system_disk_usage_response__init(&r);
  r.content_store_bytes = du(d->cfg.root, "content");
  r.containers_bytes = du(d->cfg.root, "containers");
  r.rootfs_cache_bytes = du(d->cfg.root, "rootfs");
  return vrpc_send(call, &r.base, err);
}

int vd_system_register(vrpc_server *srv, vd_daemon *d, vs_err *err) {
  const vessel_v1_System_handlers h = {.Version = version, .Info = info, .DiskUsage = disk_usage};
  return vessel_v1_System_register(srv, &h, d, err);
}
