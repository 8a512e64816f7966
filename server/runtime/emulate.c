/* Foreign-architecture images through user-mode emulation.
 *
 * An image whose platform is not the host's runs in a VM of the host's
 * architecture whose kernel hands the image's binaries to QEMU's user-mode
 * emulators (Debian's qemu-user-static) through binfmt_misc. The emulators
 * reach the guest on a read-only disk (/dev/vdb, after the root disk)
 * attached only to the VMs of such images: <root>/emulators/<key>.ext4,
 * built once from the host's emulators (the key hashes their names, sizes
 * and times). The guest registers them with flags P and F, as Debian does:
 * F, the kernel opens each interpreter at registration, so it runs inside
 * any container's mount namespace; P, the program keeps its argv[0]
 * (busybox's applets need it), which Debian's QEMU expects when its name
 * ends in "-binfmt-P", so the files are named <arch>-binfmt-P. A template of such VMs is made with the disk mounted and the
 * emulators registered: its restores have them already. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/vs_fs.h"
#include "server/ext4/ext4.h"
#include "server/oci/oci.h"
#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

#define EMU_DIR "/usr/bin"
#define EMU_MOUNT "/run/vessel/emulators"

/* ELF headers binfmt_misc matches: e_ident and e_machine, as QEMU's
 * qemu-binfmt-conf.sh gives them. */
typedef struct emu_arch {
  const char *oci;  /* OCI architecture */
  const char *qemu; /* qemu-<qemu>-static */
  const char magic[20], mask[20];
} emu_arch;

#define ELF64LE(m) {'\x7f', 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, m, 0}
#define MASK_LE {'\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', 0, '\xff', '\xff', \
                 '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xfe', '\xff', '\xff', '\xff'}

static const emu_arch ARCHES[] = {
    {"arm64", "aarch64", ELF64LE('\xb7'), MASK_LE},
    {"arm", "arm", {'\x7f', 'E', 'L', 'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, '\x28', 0}, MASK_LE},
    {"riscv64", "riscv64", ELF64LE('\xf3'), MASK_LE},
    {"ppc64le", "ppc64le", ELF64LE('\x15'), MASK_LE},
    {"s390x", "s390x",
     {'\x7f', 'E', 'L', 'F', 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, '\x16'},
     {'\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff', '\xff',
      '\xff', '\xff', '\xff', '\xff', '\xff', '\xfe', '\xff', '\xff'}},
};
#define N_ARCHES (sizeof ARCHES / sizeof *ARCHES)

const char *rt_emu_host_arch(void) {
  struct utsname u;
  if (uname(&u) < 0) return "amd64";
  if (!strcmp(u.machine, "aarch64")) return "arm64";
  return !strcmp(u.machine, "x86_64") ? "amd64" : "unknown";
}

static void emu_path(const emu_arch *a, char out[64]) {
  snprintf(out, 64, "%s/qemu-%s-static", EMU_DIR, a->qemu);
}

static const emu_arch *emu_of(const char *arch) {
  for (size_t i = 0; i < N_ARCHES; i++) {
    char p[64];
    emu_path(&ARCHES[i], p);
    if (!strcmp(ARCHES[i].oci, arch) && strcmp(arch, rt_emu_host_arch()) && access(p, X_OK) == 0)
      return &ARCHES[i];
  }
  return NULL;
}

/* The architecture of rt's VMs. */
static vm_arch guest(const rt_runtime *rt) {
  return rt->cfg.guest_arch == VM_ARCH_HOST ? vm_host_arch() : rt->cfg.guest_arch;
}

/* The emulators are host binaries: only VMs of the host's architecture can
 * run them. */
static int emulates(const rt_runtime *rt) { return guest(rt) == vm_host_arch(); }

const char *rt_native_arch(const rt_runtime *rt) {
  return guest(rt) == VM_ARCH_ARM64 ? "arm64" : "amd64";
}

int rt_emu_check(const rt_runtime *rt, const char *platform, int *emulated, vs_err *err) {
  char arch[32] = "";
  const char *slash = strchr(platform, '/');
  if (slash) snprintf(arch, sizeof arch, "%.*s", (int)strcspn(slash + 1, "/"), slash + 1);
  *emulated = 0;
  const char *native = rt_native_arch(rt);
  if (!strcmp(arch, native) || !*arch) return 0;
  if (!emulates(rt))
    return vs_err_set(err, VS_FAILED_PRECONDITION,
                      "image platform %s cannot run in this vesseld's linux/%s VMs (--guest-arch "
                      "%s: no user-mode emulators in a VM not of the host's architecture)",
                      platform, native, vm_arch_name(rt->cfg.guest_arch));
  if (strncmp(platform, "linux/", 6) != 0 || !emu_of(arch))
    return vs_err_set(err, VS_FAILED_PRECONDITION,
                      "image platform %s cannot run on this linux/%s host (no user-mode emulator "
                      "for it in " EMU_DIR ")",
                      platform, native);
  *emulated = 1;
  return 0;
}

size_t rt_emu_platforms(const rt_runtime *rt, char out[][32], size_t max) {
  size_t n = 0;
  if (n < max) snprintf(out[n++], 32, "linux/%s", rt_native_arch(rt));
  for (size_t i = 0; emulates(rt) && i < N_ARCHES && n < max; i++)
    if (emu_of(ARCHES[i].oci)) snprintf(out[n++], 32, "linux/%s", ARCHES[i].oci);
  return n;
}

/* A tar of the host's emulators at tar_path. */
static int write_tar(const char *tar_path, vs_err *err) {
  struct archive *a = archive_write_new();
  if (!a) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  archive_write_set_format_pax_restricted(a);
  int rc = archive_write_open_filename(a, tar_path) == ARCHIVE_OK
               ? 0
               : vs_err_set(err, VS_INTERNAL, "tar %s: %s", tar_path, archive_error_string(a));
  char buf[65536];
  for (size_t i = 0; rc == 0 && i < N_ARCHES; i++) {
    if (!emu_of(ARCHES[i].oci)) continue;
    char path[64];
    emu_path(&ARCHES[i], path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
      rc = vs_err_errno(err, VS_INTERNAL, errno, "open %s", path);
      if (fd >= 0) close(fd);
      break;
    }
    struct archive_entry *e = archive_entry_new();
    char name[48];
    snprintf(name, sizeof name, "%s-binfmt-P", ARCHES[i].qemu);
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, st.st_size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0755);
    if (archive_write_header(a, e) != ARCHIVE_OK)
      rc = vs_err_set(err, VS_INTERNAL, "tar %s: %s", path, archive_error_string(a));
    for (ssize_t n; rc == 0 && (n = read(fd, buf, sizeof buf)) > 0;)
      if (archive_write_data(a, buf, (size_t)n) != n)
        rc = vs_err_set(err, VS_INTERNAL, "tar %s: %s", path, archive_error_string(a));
    archive_entry_free(e);
    close(fd);
  }
  if (archive_write_close(a) != ARCHIVE_OK && rc == 0)
    rc = vs_err_set(err, VS_INTERNAL, "tar %s: %s", tar_path, archive_error_string(a));
  archive_write_free(a);
  return rc;
}

int rt_emu_disk(rt_runtime *rt, char *out, size_t n, vs_err *err) {
  char key[4096] = "binfmt-P|", d[72];
  size_t k = strlen(key);
  for (size_t i = 0; i < N_ARCHES; i++) {
    char p[64];
    struct stat st;
    emu_path(&ARCHES[i], p);
    if (emu_of(ARCHES[i].oci) && stat(p, &st) == 0)
      k += (size_t)snprintf(key + k, sizeof key - k, "%s:%lld:%lld|", p, (long long)st.st_size,
                            (long long)st.st_mtime);
  }
  oci_sha256_bytes(key, strlen(key), d);
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/emulators", rt->root);
  snprintf(out, n, "%s/%.24s.ext4", dir, d + 7);
  pthread_mutex_lock(&rt->emu_mu); /* one build; the others wait for it */
  int rc = 0;
  if (access(out, R_OK) != 0) {
    char tar[4300];
    snprintf(tar, sizeof tar, "%s/emulators.tar", dir);
    rfs_options o;
    rfs_options_init(&o);
    o.free_bytes = 1 << 20;
    rfs_layer l = {tar, NULL, RFS_COMPRESSION_NONE, NULL};
    rc = vs_mkdir_p(dir, 0700, err) < 0 || write_tar(tar, err) < 0 || rfs_build(&l, 1, out, &o, NULL, err) < 0
             ? -1
             : 0;
    unlink(tar);
    if (rc < 0) vs_err_wrap(err, "the emulators' disk");
  }
  pthread_mutex_unlock(&rt->emu_mu);
  return rc;
}

int rt_emu_setup(vrpc_channel *ch, vs_err *err) {
  Vessel__V1__Mount m = VESSEL__V1__MOUNT__INIT;
  static char *ro[1] = {"ro"};
  m.type = (char *)"ext4";
  m.source = (char *)"/dev/vdb";
  m.destination = (char *)EMU_MOUNT;
  m.options = ro;
  m.n_options = 1;
  Vessel__V1__AgentMountRequest mr = VESSEL__V1__AGENT_MOUNT_REQUEST__INIT;
  mr.mount = &m;
  mr.mkdir = 1;
  vrpc_call_opts o = {AGENT_TIMEOUT_MS, NULL};
  ProtobufCMessage *resp = NULL;
  if (vrpc_unary(ch, &vessel_v1_Agent_Mount, &mr.base, &resp, &o, err) < 0)
    return vs_err_wrap(err, "mount the emulators");
  vrpc_msg_free(resp);
  for (size_t i = 0; i < N_ARCHES; i++) {
    if (!emu_of(ARCHES[i].oci)) continue;
    char name[32], interp[128];
    snprintf(name, sizeof name, "qemu-%s", ARCHES[i].qemu);
    snprintf(interp, sizeof interp, EMU_MOUNT "/%s-binfmt-P", ARCHES[i].qemu);
    Vessel__V1__AgentSetupEmulatorRequest r = VESSEL__V1__AGENT_SETUP_EMULATOR_REQUEST__INIT;
    r.name = name;
    r.type = VESSEL__V1__BINFMT_TYPE__BINFMT_TYPE_MAGIC;
    r.magic.data = (uint8_t *)ARCHES[i].magic;
    r.magic.len = sizeof ARCHES[i].magic;
    r.mask.data = (uint8_t *)ARCHES[i].mask;
    r.mask.len = sizeof ARCHES[i].mask;
    r.interpreter = interp;
    r.flags = (char *)"PF";
    resp = NULL;
    if (vrpc_unary(ch, &vessel_v1_Agent_SetupEmulator, &r.base, &resp, &o, err) < 0)
      return vs_err_wrap(err, "register %s", name);
    vrpc_msg_free(resp);
  }
  return 0;
}
