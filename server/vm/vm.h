/* vm: launches one container VM under QEMU (-M microvm) and connects to its
 * guest agent (vminitd) over the virtio-serial "vessel.agent" port.
 *
 *   vm_config c = {...};
 *   vm *v = vm_start(&c, &err);          QEMU running, agent socket connected
 *   vm_wait_ready(v, 10000, &err);       agent answered Info
 *   vrpc_unary(vm_channel(v), &vessel_v1_Agent_..., ...);
 *   vm_stop(v, 5000, &err);              Agent.Shutdown, SIGKILL after timeout
 *   vm_free(v);
 *
 * The accelerator is decided once by the caller (vm_accel_decide: a real
 * probe) and given in every vm_config. Under TCG the kernel gets tsc_early_khz=<host TSC> against the microvm
 * boot hang ("Unable to calibrate against PIT"). */
#ifndef VESSEL_SERVER_VM_VM_H
#define VESSEL_SERVER_VM_VM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/rpc.h"
#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vm_flavour {
  VM_KERNEL_VESSEL = 0, /* kernel/build.sh: everything built in; vmlinux via PVH */
  VM_KERNEL_STOCK = 1,  /* Debian cloud kernel: virtio modules from the initramfs */
} vm_flavour;

typedef enum vm_accel {
  VM_ACCEL_AUTO = 0, /* only for vm_accel_decide; vm_start refuses it */
  VM_ACCEL_TCG = 1,
  VM_ACCEL_KVM = 2,
} vm_accel;

/* The guest's architecture. An arm64 guest boots kernel/build.sh's arm64
 * Image with an arm64 initramfs on qemu-system-aarch64 -M virt, under TCG
 * (a foreign guest never gets KVM; vm_accel_decide probes KVM on x86_64
 * hosts only, so an arm64 host runs its own guests under TCG too). */
typedef enum vm_arch {
  VM_ARCH_HOST = 0, /* the host's own */
  VM_ARCH_X86_64 = 1,
  VM_ARCH_ARM64 = 2,
} vm_arch;

/* The host's architecture (VM_ARCH_X86_64 or VM_ARCH_ARM64). */
vm_arch vm_host_arch(void);
/* "x86_64" / "arm64" (VM_ARCH_HOST: the host's). */
const char *vm_arch_name(vm_arch a);
/* Parses "x86_64"/"amd64" or "arm64"/"aarch64"; -1 if neither. */
int vm_arch_parse(const char *s, vm_arch *out);
/* The -cpu a VM of arch (not VM_ARCH_HOST) gets under accel. */
const char *vm_cpu_model(vm_accel accel, vm_arch arch);

typedef struct vm_disk {
  const char *path; /* raw image */
  int read_only;
} vm_disk;

/* A host directory shared into the guest over virtio-9p; the guest mounts
 * it with mount -t 9p -o trans=virtio,version=9p2000.L TAG DIR. */
typedef struct vm_share {
  const char *path;
  const char *tag; /* at most 31 bytes */
  int read_only;
} vm_share;

/* A virtio-net NIC on a host tap device. */
typedef struct vm_nic {
  const char *tap;
  const char *mac; /* NULL = QEMU's default */
} vm_nic;

/* NICs a VM may have (a tap each; the guest names them eth0, eth1, ...). */
#define VM_MAX_NICS 4

typedef struct vm_config {
  vm_arch arch;              /* the guest's */
  const char *qemu;          /* NULL = qemu-system-x86_64 / -aarch64 from PATH */
  const char *kernel;        /* vmlinux / bzImage / vmlinuz; arm64: Image */
  vm_flavour flavour;
  const char *initrd;        /* initramfs.cpio */
  const char *initrd_extra;  /* appended archive (stock kernel modules), or NULL */
  const char *cmdline_extra; /* appended to the kernel command line */
  int vcpus;                 /* 0 = 1 */
  int memory_mib;            /* 0 = 256 */
  const char *root_disk;     /* ext4 image: the guest's /dev/vda, or NULL */
  const vm_disk *disks;      /* further disks: /dev/vdb, /dev/vdc, ... */
  size_t n_disks;
  const vm_share *shares;    /* host directories for 9p mounts */
  size_t n_shares;
  const char *agent_socket;  /* unix socket QEMU listens on (< 108 bytes) */
  const vm_nic *nics;        /* virtio-net NICs, at most VM_MAX_NICS */
  size_t n_nics;
  const char *console_log;   /* guest serial console and QEMU's stderr */
  vm_accel accel;            /* KVM or TCG, from vm_accel_decide */
  /* Snapshots: qmp_socket makes QEMU listen for QMP (vm_save needs it);
   * incoming restores a state saved by vm_save instead of booting. The
   * restored VM must have the same devices (disk, NIC, ...) and memory. */
  const char *qmp_socket;
  const char *incoming;
  /* Guest RAM in a file (memory-backend-file) instead of anonymous memory.
   * ram_shared: the guest's writes go to the file (a template being built;
   * vm_save then leaves RAM out of the snapshot, which the file holds).
   * Otherwise the file is mapped copy-on-write: pages the guest never
   * writes stay shared with every other VM mapping it, so the file must not
   * change while a VM maps it (replace it by rename; unlinking is safe).
   * With incoming, the snapshot must have been saved from a VM whose RAM
   * was this file, shared (QEMU: x-ignore-shared, set over QMP at
   * <agent_socket>.qmp, which is removed once restoring began). */
  const char *ram_file;
  int ram_shared;
  /* The guest reports memory it freed (virtio-balloon free page reporting)
   * and QEMU hands it back to the host. Every VM has the balloon device
   * (a snapshot's devices must match its restore's); not with ram_file:
   * QEMU 7.2 discards RAM of a file by punching holes into the file, which
   * would zero pages of every VM sharing it. */
  int free_page_reporting;
  /* TCG's translation cache in MiB (-accel tcg,tb-size); 0: QEMU's default. */
  int tb_size_mib;
  /* Scheduling niceness of QEMU (0: vesseld's), e.g. for VMs made ahead of
   * need, which should not slow the VMs in use; vm_renice changes it. */
  int nice;
  /* Keep a record of this QEMU (vm_record) at <agent_socket>.rec from
   * before it is started until it is ended, so that a vesseld that died at
   * any moment finds every QEMU it started. */
  int record;
  /* Called as each agent call starts (a trace), or NULL. */
  void (*on_call)(void *arg, const vrpc_method *m);
  void *on_call_arg;
} vm_config;

/* What a record file holds: the QEMU's PID (0 while it is being started),
 * its agent socket (which its command line names) and its taps. */
typedef struct vm_record {
  pid_t pid;
  char socket[108];
  char taps[VM_MAX_NICS][16];
  size_t n_taps;
} vm_record;

int vm_record_read(const char *path, vm_record *r, vs_err *err);
/* Ends the QEMU a record names, if it still runs: by its PID (checked
 * against its command line through a pidfd) or, with no PID yet, by
 * finding the QEMU whose command line names the socket. Removes the
 * socket and the record file; the taps are the caller's. */
void vm_record_end(const char *path, const vm_record *r);

typedef struct vm vm;

/* Starts QEMU and connects to the agent socket. QEMU failing to start
 * (bad path, bad option, early exit) is FAILED_PRECONDITION/INTERNAL with
 * the last lines of the console log in the message. */
vm *vm_start(const vm_config *cfg, vs_err *err);

/* Waits until the agent answers Agent.Info (the VM is ready). */
int vm_wait_ready(vm *v, int timeout_ms, vs_err *err);

/* The agent channel (owned by v); NULL after vm_detach. */
vrpc_channel *vm_channel(vm *v);
pid_t vm_pid(vm *v);

/* Milliseconds from vm_start to the first Info answer (0 before). */
int64_t vm_ready_ms(vm *v);

/* Agent.Shutdown(POWEROFF), then waits up to timeout_ms for QEMU to exit
 * and SIGKILLs it after that. Returns 0 once QEMU is gone. */
int vm_stop(vm *v, int timeout_ms, vs_err *err);

/* Saves the running VM's state (devices, memory) to state_path through QMP
 * (the VM was started with qmp_socket) and then ends QEMU. Drop the agent
 * connection first (vm_detach) so the restored agent waits for a new host. */
int vm_save(vm *v, const char *qmp_socket, const char *state_path, vs_err *err);

/* Kills QEMU at once (SIGKILL) and reaps it. */
void vm_kill(vm *v);

/* 1 while QEMU runs; 0 once it has exited (it is reaped then). */
int vm_running(vm *v);

/* Drops the agent connection but leaves QEMU running (another client, e.g.
 * a restarted vesseld, may connect to the socket; the agent serves it). */
void vm_detach(vm *v);

/* A handle for a VM started by an earlier vesseld (pid and agent socket as
 * recorded then): connects to its agent. NOT_FOUND if QEMU is gone. With
 * record, its record file goes when the handle ends QEMU. */
vm *vm_adopt(pid_t pid, const char *agent_socket, const char *console_log, int record,
             vs_err *err);

/* Sets the niceness of every QEMU thread. */
void vm_renice(vm *v, int nice);

/* Reconnects to the agent socket of a running VM (replacing a new
 * connection the agent cannot answer on: see vm.c). */
int vm_reconnect(vm *v, vs_err *err);

/* Frees v; kills QEMU if it still runs and was not detached (then its
 * record file goes too). */
void vm_free(vm *v);

/* ---- the accelerator (accel.c) ---- */

/* Decides the accelerator of every VM (of guest architecture arch), once
 * (at vesseld's start):
 *   want TCG: TCG, nothing probed;
 *   want AUTO: KVM if the guests are of the host's architecture, the host
 *     is x86_64 (the probe guest is x86 code), /dev/kvm opens read-write,
 *     /proc/cpuinfo shows vmx or svm, and the probe guest answers under KVM
 *     within timeout_ms; else TCG, reason saying why KVM is not usable;
 *   want KVM: the same checks; KVM not usable is FAILED_PRECONDITION with
 *     the reason.
 * reason gets a sentence for people ("KVM is not usable: /dev/kvm absent",
 * "a KVM guest answered in 80 ms"). */
int vm_accel_decide(const char *qemu, vm_arch arch, vm_accel want, int timeout_ms, vm_accel *out,
                    char *reason, size_t n, vs_err *err);

/* The probe's parts, exposed for tests. */
/* 1 if dev opens read-write and cpuinfo's flags show vmx or svm; else 0
 * with why ("/dev/kvm absent", "no vmx/svm in /proc/cpuinfo ..."). */
int vm_kvm_host_check(const char *dev, const char *cpuinfo, char *why, size_t n);
/* The probe guest: firmware that, from the x86 reset vector in real mode,
 * writes VM_PROBE_ANSWER to COM1 (0x3f8), then 0x2a to isa-debug-exit
 * (0xf4): QEMU exits with status 85. */
#define VM_PROBE_FIRMWARE_SIZE 65536
#define VM_PROBE_ANSWER "vessel accel probe: ok\n"
void vm_probe_firmware(unsigned char fw[VM_PROBE_FIRMWARE_SIZE]);
/* QEMU's argv for it (microvm, the CPU model VMs get under accel; COM1 on
 * stdout); free with vm_argv_free. */
char **vm_probe_argv(const char *qemu, vm_accel accel, const char *firmware);
/* Boots the probe guest under accel: 0 once it answered (took_ms: from
 * QEMU's start), else DEADLINE_EXCEEDED ("KVM guest did not answer in N s")
 * or FAILED_PRECONDITION (QEMU failed), with QEMU's output. */
int vm_probe_run(const char *qemu, vm_accel accel, int timeout_ms, int64_t *took_ms, vs_err *err);

/* Helpers exposed for tests. */
/* Host TSC frequency in kHz from /proc/cpuinfo, 0 if unknown. */
long vm_host_tsc_khz(void);
/* Builds QEMU's argv (NULL-terminated, strings owned by the returned
 * array's storage; free with vm_argv_free). */
char **vm_build_argv(const vm_config *cfg, const char *initrd, vm_accel accel, vs_err *err);
void vm_argv_free(char **argv);
/* Last n lines of a file into out (for error messages). */
void vm_tail(const char *path, int n, char *out, size_t out_len);

/* QMP (qmp.c): QEMU's monitor protocol, one command at a time. */
typedef struct vm_qmp vm_qmp;
/* Takes fd, a connected QMP socket: reads QEMU's greeting and negotiates
 * capabilities. NULL (fd closed) if that fails. */
vm_qmp *vm_qmp_open(int fd);
/* Sends one command (a JSON object on one line) and reads its reply,
 * skipping the events QEMU sends meanwhile. 0 for {"return": ...}, -1 for
 * {"error": ...} or a connection that broke; reply (may be NULL) gets the
 * reply's line, cut to n bytes, or "". */
int vm_qmp_cmd(vm_qmp *q, const char *json, char *reply, size_t n);
void vm_qmp_close(vm_qmp *q);

/* Bounds what a console log costs on disk: when it holds much more than
 * keep bytes, all but its last keep bytes (4 KiB-aligned) become a hole.
 * QEMU appends on (O_APPEND): the file's size grows, its blocks do not.
 * 0, or -1 with errno. */
int vm_console_trim(const char *path, int64_t keep);

#ifdef __cplusplus
}
#endif
#endif
