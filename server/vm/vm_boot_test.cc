// The launcher against real QEMU and the cached vessel kernel: boot and
// readiness, reconnects (a restarted vesseld), clean power-off, and the
// errors of a QEMU that cannot start or a guest that cannot boot.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

extern "C" {
#include "server/vm/vm.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"
}

static std::string KernelPath() {
  // Builds the kernel on a clean machine (cached afterwards).
  FILE *f = popen("kernel/build.sh | tail -n 1", "r");
  char buf[512] = "";
  if (f) {
    if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
    pclose(f);
  }
  std::string d(buf);
  while (!d.empty() && d.back() == '\n') d.pop_back();
  return d + "/vmlinux";
}

class VmBoot : public testing::Test {
 protected:
  void SetUp() override {
    kernel = KernelPath();
    ASSERT_EQ(access(kernel.c_str(), R_OK), 0) << "run kernel/ensure.sh first: " << kernel;
    char tmpl[] = "/tmp/vmboot-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir = tmpl;
    sock = dir + "/agent.sock";
    log = dir + "/console.log";
    memset(&cfg, 0, sizeof cfg);
    cfg.kernel = kernel.c_str();
    cfg.initrd = "guest-agent/initramfs.cpio";
    cfg.agent_socket = sock.c_str();
    cfg.console_log = log.c_str();
    char why[512];
    vs_err err;
    ASSERT_EQ(vm_accel_decide(nullptr, VM_ARCH_HOST, VM_ACCEL_AUTO, 5000, &cfg.accel, why,
                              sizeof why, &err),
              0)
        << err.msg;
  }
  void TearDown() override { system(("rm -rf " + dir).c_str()); }

  static int Info(vm *v, Vessel__V1__AgentInfoResponse **out, vs_err *err) {
    Vessel__V1__AgentInfoRequest req = VESSEL__V1__AGENT_INFO_REQUEST__INIT;
    vrpc_call_opts o = {10000, nullptr};
    return vrpc_unary(vm_channel(v), &vessel_v1_Agent_Info, &req.base, (ProtobufCMessage **)out, &o, err);
  }

  std::string kernel, dir, sock, log;
  vm_config cfg;
};

TEST_F(VmBoot, BootReconnectAndPowerOff) {
  vs_err err;
  vm *v = vm_start(&cfg, &err);
  ASSERT_NE(v, nullptr) << err.msg;
  ASSERT_EQ(vm_wait_ready(v, 60000, &err), 0) << err.msg;
  EXPECT_GT(vm_ready_ms(v), 0);
  Vessel__V1__AgentInfoResponse *info = nullptr;
  ASSERT_EQ(Info(v, &info, &err), 0) << err.msg;
  EXPECT_STREQ(info->api_version, "vessel.v1");
  EXPECT_NE(std::string(info->kernel_release).find("-vessel"), std::string::npos);
  vrpc_msg_free(&info->base);

  // vesseld restarts: the connection drops, a new one is served.
  for (int i = 0; i < 2; i++) {
    vm_detach(v);
    ASSERT_EQ(kill(vm_pid(v), 0), 0) << "detaching must leave QEMU running";
    ASSERT_EQ(vm_reconnect(v, &err), 0) << err.msg;
    info = nullptr;
    ASSERT_EQ(Info(v, &info, &err), 0) << "after reconnect " << i << ": " << err.msg;
    vrpc_msg_free(&info->base);
  }

  pid_t pid = vm_pid(v);
  ASSERT_EQ(vm_stop(v, 20000, &err), 0);
  EXPECT_NE(kill(pid, 0), 0) << "QEMU still running after stop";
  std::ifstream f(log);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("powering off"), std::string::npos) << text;
  vm_free(v);
}

TEST_F(VmBoot, QemuFailingToStartIsAClearError) {
  std::string bad = dir + "/disk-is-a-directory";
  ASSERT_EQ(mkdir(bad.c_str(), 0755), 0);
  cfg.root_disk = bad.c_str();
  vs_err err;
  vm *v = vm_start(&cfg, &err);
  if (v) {
    EXPECT_EQ(vm_wait_ready(v, 20000, &err), -1);
    vm_free(v);
  }
  EXPECT_NE(std::string(err.msg).find("QEMU"), std::string::npos) << err.msg;
  EXPECT_NE(std::string(err.msg).find("disk-is-a-directory"), std::string::npos) << err.msg;
}

TEST_F(VmBoot, GuestWithoutInitReportsTheConsole) {
  // An empty initramfs: the kernel panics, QEMU exits (-no-reboot).
  std::string empty = dir + "/empty.cpio";
  ASSERT_EQ(system(("cd " + dir + " && : | cpio -o -H newc --quiet > empty.cpio").c_str()), 0);
  cfg.initrd = empty.c_str();
  vs_err err;
  vm *v = vm_start(&cfg, &err);
  ASSERT_NE(v, nullptr) << err.msg;
  EXPECT_EQ(vm_wait_ready(v, 60000, &err), -1);
  EXPECT_EQ(err.code, VS_UNAVAILABLE) << err.msg;
  EXPECT_NE(std::string(err.msg).find("Kernel panic"), std::string::npos) << "[" << err.msg << "]";
  vm_free(v);
}
