/* vessel.v1.System: version, host information, disk usage. */
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

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
  r.build_info = (char *)("gcc " __VERSION__ ", protobuf-c " PROTOBUF_C_VERSION);
  return vrpc_send(call, &r.base, err);
}

/* "kvm" only with hardware virtualisation; a /dev/kvm without vmx/svm (a
 * software hypervisor) is slower than TCG or fails. */
static const char *accelerator(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return "tcg";
  char line[4096];
  int hw = 0;
  while (!hw && fgets(line, sizeof line, f))
    if (strncmp(line, "flags", 5) == 0 && (strstr(line, " vmx") || strstr(line, " svm")))
      hw = 1;
  fclose(f);
  return hw && access("/dev/kvm", R_OK | W_OK) == 0 ? "kvm" : "tcg";
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

static int info(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  vrpc_msg_free(in);

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
  r.accelerator = (char *)accelerator();
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
