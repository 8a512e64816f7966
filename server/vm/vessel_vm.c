/* vessel-vm: boots one VM with the launcher library.
 *
 *   vessel-vm --kernel K --initrd I --socket S [--root DISK] [--console LOG]
 *             [--stock] [--initrd-extra M] [--disk D]... [--vcpus N]
 *             [--memory MIB] [--tap T] [--mac M] [--accel auto|tcg|kvm]
 *             [--arch x86_64|arm64]
 *             [--cmdline ARGS] [--timeout MS]
 *             [--exec "CMD ARGS"] [--detach]
 *
 * Waits for the agent, optionally runs CMD as a container from the root disk
 * (/dev/vda) and waits for it, then powers the VM off; --detach instead
 * leaves it running with the agent socket free for another client. Prints
 * one JSON line: pid, ready_ms (launch to agent answer), exec_ms (launch to
 * CMD exited), exit_code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/vm/vm.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int unary(vrpc_channel *ch, const vrpc_method *m, ProtobufCMessage *req,
                 ProtobufCMessage **resp, vs_err *err) {
  vrpc_call_opts o = {60000, NULL};
  ProtobufCMessage *r = NULL;
  int rc = vrpc_unary(ch, m, req, resp ? resp : &r, &o, err);
  if (!resp) vrpc_msg_free(r);
  return rc;
}

/* Runs argv in a container on /dev/vda; returns the exit code or -1. */
static int run(vrpc_channel *ch, char **argv, size_t argc, vs_err *err) {
  Vessel__V1__Mount root = VESSEL__V1__MOUNT__INIT;
  root.type = (char *)"ext4";
  root.source = (char *)"/dev/vda";
  Vessel__V1__ProcessSpec ps = VESSEL__V1__PROCESS_SPEC__INIT;
  ps.n_args = argc;
  ps.args = argv;
  Vessel__V1__AgentCreateContainerRequest cr = VESSEL__V1__AGENT_CREATE_CONTAINER_REQUEST__INIT;
  cr.container_id = (char *)"c0";
  cr.rootfs = &root;
  cr.process = &ps;
  if (unary(ch, &vessel_v1_Agent_CreateContainer, &cr.base, NULL, err) < 0) return -1;
  Vessel__V1__AgentStartProcessRequest sr = VESSEL__V1__AGENT_START_PROCESS_REQUEST__INIT;
  sr.container_id = (char *)"c0";
  if (unary(ch, &vessel_v1_Agent_StartProcess, &sr.base, NULL, err) < 0) return -1;
  Vessel__V1__AgentWaitProcessRequest wr = VESSEL__V1__AGENT_WAIT_PROCESS_REQUEST__INIT;
  wr.container_id = (char *)"c0";
  ProtobufCMessage *resp = NULL;
  if (unary(ch, &vessel_v1_Agent_WaitProcess, &wr.base, &resp, err) < 0) return -1;
  Vessel__V1__AgentWaitProcessResponse *w = (Vessel__V1__AgentWaitProcessResponse *)resp;
  int code = w->exit_status ? w->exit_status->code : -1;
  vrpc_msg_free(resp);
  return code;
}

int main(int argc, char **argv) {
  vm_config c;
  memset(&c, 0, sizeof c);
  vm_disk disks[8];
  vm_nic nics[VM_MAX_NICS];
  int timeout = 30000, detach = 0;
  const char *exec = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && ++i)
    if (OPT("--kernel")) c.kernel = v;
    else if (OPT("--initrd")) c.initrd = v;
    else if (OPT("--initrd-extra")) c.initrd_extra = v;
    else if (OPT("--socket")) c.agent_socket = v;
    else if (OPT("--root")) c.root_disk = v;
    else if (OPT("--console")) c.console_log = v;
    else if (OPT("--vcpus")) c.vcpus = atoi(v);
    else if (OPT("--memory")) c.memory_mib = atoi(v);
    else if (OPT("--tap") && c.n_nics < VM_MAX_NICS) nics[c.n_nics++] = (vm_nic){v, NULL};
    else if (OPT("--mac") && c.n_nics) nics[c.n_nics - 1].mac = v; /* of the last --tap */
    else if (OPT("--cmdline")) c.cmdline_extra = v;
    else if (OPT("--timeout")) timeout = atoi(v);
    else if (OPT("--exec")) exec = v;
    else if (OPT("--qemu")) c.qemu = v;
    else if (OPT("--disk") && c.n_disks < 8) disks[c.n_disks++] = (vm_disk){v, 0};
    else if (OPT("--accel"))
      c.accel = strcmp(v, "kvm") == 0 ? VM_ACCEL_KVM : strcmp(v, "tcg") == 0 ? VM_ACCEL_TCG : VM_ACCEL_AUTO;
    else if (OPT("--arch")) {
      if (vm_arch_parse(v, &c.arch) < 0) {
        fprintf(stderr, "vessel-vm: --arch %s: give x86_64 or arm64\n", v);
        return 2;
      }
    } else if (strcmp(a, "--stock") == 0) c.flavour = VM_KERNEL_STOCK;
    else if (strcmp(a, "--detach") == 0) detach = 1;
    else {
      fprintf(stderr, "vessel-vm: unknown or incomplete option %s\n", a);
      return 2;
    }
#undef OPT
  }
  c.disks = disks;
  c.nics = nics;
  vs_err err;
  char why[512];
  if (vm_accel_decide(c.qemu, c.arch, c.accel, 5000, &c.accel, why, sizeof why, &err) < 0) {
    fprintf(stderr, "vessel-vm: %s\n", err.msg);
    return 1;
  }
  int64_t t0 = now_ms();
  vm *v = vm_start(&c, &err);
  if (!v) {
    fprintf(stderr, "vessel-vm: %s\n", err.msg);
    return 1;
  }
  if (vm_wait_ready(v, timeout, &err) < 0) {
    fprintf(stderr, "vessel-vm: %s\n", err.msg);
    vm_free(v);
    return 1;
  }
  int64_t ready = now_ms() - t0;
  int code = -1;
  int64_t exec_ms = 0;
  if (exec) {
    char *buf = strdup(exec), *args[64];
    size_t n = 0;
    for (char *s = NULL, *t = strtok_r(buf, " ", &s); t && n < 63; t = strtok_r(NULL, " ", &s))
      args[n++] = t;
    code = run(vm_channel(v), args, n, &err);
    exec_ms = now_ms() - t0;
    free(buf);
    if (code < 0) {
      fprintf(stderr, "vessel-vm: exec: %s\n", err.msg);
      vm_stop(v, 5000, &err);
      vm_free(v);
      return 1;
    }
  }
  printf("{\"pid\": %d, \"ready_ms\": %lld, \"exec_ms\": %lld, \"exit_code\": %d}\n",
         (int)vm_pid(v), (long long)ready, (long long)exec_ms, code);
  fflush(stdout);
  if (detach) {
    vm_detach(v);
  } else {
    vm_stop(v, 10000, &err);
  }
  vm_free(v);
  return 0;
}
