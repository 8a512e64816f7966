// The accelerator probe: its parts, and its guest booted for real under
// TCG (the same firmware and argv as under KVM, but for -accel/-cpu), so
// the KVM path runs code known to answer.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

extern "C" {
#include "server/vm/vm.h"
}

namespace {

class Accel : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vsaccel-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0); }
  std::string File(const std::string &name, const std::string &text, mode_t mode = 0644) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    chmod(p.c_str(), mode);
    return p;
  }
  std::string dir_;
};

std::vector<std::string> ProbeArgv(vm_accel a) {
  char **v = vm_probe_argv(nullptr, a, "/proc/self/fd/7");
  std::vector<std::string> out;
  for (char **p = v; p && *p; p++) out.push_back(*p);
  vm_argv_free(v);
  return out;
}

// The value after flag in argv, or "".
std::string After(const std::vector<std::string> &v, const std::string &flag) {
  for (size_t i = 0; i + 1 < v.size(); i++)
    if (v[i] == flag) return v[i + 1];
  return "";
}

TEST_F(Accel, HostCheckSaysWhy) {
  char why[512];
  std::string cpu_hw = File("cpuinfo-hw", "processor : 0\nflags : fpu vme de pse vmx sse\n");
  std::string cpu_sw = File("cpuinfo-sw", "processor : 0\nflags : fpu vme de pse sse hypervisor\n");
  std::string dev = File("kvm", "");  // opens read-write (a stand-in for the device)
  EXPECT_EQ(vm_kvm_host_check((dir_ + "/none").c_str(), cpu_hw.c_str(), why, sizeof why), 0);
  EXPECT_EQ(std::string(why), dir_ + "/none absent");
  EXPECT_EQ(vm_kvm_host_check(dir_.c_str(), cpu_hw.c_str(), why, sizeof why), 0);
  EXPECT_NE(std::string(why).find("Is a directory"), std::string::npos) << why;
  EXPECT_EQ(vm_kvm_host_check(dev.c_str(), cpu_sw.c_str(), why, sizeof why), 0);
  EXPECT_NE(std::string(why).find("no vmx/svm in " + cpu_sw), std::string::npos) << why;
  EXPECT_EQ(vm_kvm_host_check(dev.c_str(), cpu_hw.c_str(), why, sizeof why), 1) << why;
  std::string amd = File("cpuinfo-amd", "flags : fpu svm\n");
  EXPECT_EQ(vm_kvm_host_check(dev.c_str(), amd.c_str(), why, sizeof why), 1) << why;
}

TEST(AccelProbe, FirmwareJumpsFromTheResetVectorToTheCode) {
  std::vector<unsigned char> fw(VM_PROBE_FIRMWARE_SIZE);
  vm_probe_firmware(fw.data());
  // jmp rel16 at 0xfff0 lands on 0xff00, where the code starts (mov dx).
  ASSERT_EQ(fw[0xfff0], 0xe9);
  int rel = (int16_t)(fw[0xfff1] | fw[0xfff2] << 8);
  EXPECT_EQ(0xfff3 + rel, 0xff00);
  EXPECT_EQ(fw[0xff00], 0xba);
  EXPECT_EQ(std::string((const char *)&fw[0xff20]), VM_PROBE_ANSWER);
}

TEST(AccelProbe, ArgvUnderKvmAndTcg) {
  auto k = ProbeArgv(VM_ACCEL_KVM), t = ProbeArgv(VM_ACCEL_TCG);
  EXPECT_EQ(k[0], "qemu-system-x86_64");
  EXPECT_EQ(After(k, "-accel"), "kvm");
  EXPECT_EQ(After(k, "-cpu"), "host");  // what container VMs get under KVM
  EXPECT_EQ(After(t, "-accel"), "tcg");
  EXPECT_EQ(After(t, "-cpu"), "max,erms=off,fsrm=off");
  for (auto *v : {&k, &t}) {
    EXPECT_EQ(After(*v, "-M").rfind("microvm", 0), 0u);  // the machine VMs use
    EXPECT_EQ(After(*v, "-bios"), "/proc/self/fd/7");
    EXPECT_EQ(After(*v, "-serial"), "stdio");
    EXPECT_EQ(After(*v, "-device"), "isa-debug-exit,iobase=0xf4,iosize=4");
  }
  // Apart from the accelerator and the CPU, the same command line.
  ASSERT_EQ(k.size(), t.size());
  int differ = 0;
  for (size_t i = 0; i < k.size(); i++) differ += k[i] != t[i];
  EXPECT_EQ(differ, 2);
}

TEST(AccelProbe, GuestAnswersUnderTcg) {
  vs_err err;
  int64_t ms = -1;
  ASSERT_EQ(vm_probe_run(nullptr, VM_ACCEL_TCG, 20000, &ms, &err), 0) << err.msg;
  EXPECT_GE(ms, 0);
  EXPECT_LT(ms, 20000);
}

TEST_F(Accel, ProbeFailuresSayWhatHappened) {
  vs_err err;
  // A "QEMU" that never answers: ended at the deadline.
  std::string hang = File("hang", "#!/bin/sh\necho starting\nexec sleep 30\n", 0755);
  EXPECT_EQ(vm_probe_run(hang.c_str(), VM_ACCEL_KVM, 1000, nullptr, &err), -1);
  EXPECT_EQ(err.code, VS_DEADLINE_EXCEEDED);
  EXPECT_STREQ(err.msg, "KVM guest did not answer in 1 s: starting");
  // One that fails at once, as QEMU does when KVM cannot run the CPU.
  std::string fail = File("fail", "#!/bin/sh\necho 'error: failed to set MSR 0x10a' >&2\nexit 1\n", 0755);
  EXPECT_EQ(vm_probe_run(fail.c_str(), VM_ACCEL_KVM, 5000, nullptr, &err), -1);
  EXPECT_EQ(err.code, VS_FAILED_PRECONDITION);
  EXPECT_STREQ(err.msg, "KVM guest failed: error: failed to set MSR 0x10a");
  EXPECT_EQ(vm_probe_run("/nonexistent/qemu", VM_ACCEL_TCG, 5000, nullptr, &err), -1);
  EXPECT_NE(std::string(err.msg).find("exec /nonexistent/qemu"), std::string::npos) << err.msg;
}

// What this host decides: KVM only if its checks pass and the guest
// answers; --accel kvm refused otherwise, naming the same reason.
TEST(AccelDecide, FollowsTheHost) {
  vm_accel a = VM_ACCEL_AUTO;
  char reason[512], why[512];
  vs_err err;
  ASSERT_EQ(vm_accel_decide(nullptr, VM_ARCH_HOST, VM_ACCEL_TCG, 5000, &a, reason, sizeof reason, &err), 0);
  EXPECT_EQ(a, VM_ACCEL_TCG);
  int host_ok = vm_kvm_host_check("/dev/kvm", "/proc/cpuinfo", why, sizeof why);
  ASSERT_EQ(vm_accel_decide(nullptr, VM_ARCH_HOST, VM_ACCEL_AUTO, 5000, &a, reason, sizeof reason, &err), 0);
  int kvm_rc = vm_accel_decide(nullptr, VM_ARCH_HOST, VM_ACCEL_KVM, 5000, &a, reason, sizeof reason, &err);
  if (!host_ok) {
    EXPECT_EQ(kvm_rc, -1);
    EXPECT_EQ(err.code, VS_FAILED_PRECONDITION);
    EXPECT_EQ(std::string(err.msg), std::string("KVM is not usable: ") + why);
  } else if (kvm_rc == 0) {
    EXPECT_EQ(a, VM_ACCEL_KVM);
    EXPECT_NE(std::string(reason).find("a KVM guest answered in"), std::string::npos) << reason;
  } else {  // the host looks right but the guest did not answer
    EXPECT_NE(std::string(err.msg).find("KVM guest"), std::string::npos) << err.msg;
  }
  // auto falls back with the reason.
  ASSERT_EQ(vm_accel_decide(nullptr, VM_ARCH_HOST, VM_ACCEL_AUTO, 5000, &a, reason, sizeof reason, &err), 0);
  if (kvm_rc < 0) {
    EXPECT_EQ(a, VM_ACCEL_TCG);
    EXPECT_EQ(std::string(reason), std::string(err.msg));
  }
}

// Guests of another architecture never get KVM, whatever the host has.
TEST(AccelDecide, ForeignGuestsRunUnderTcg) {
  vm_accel a = VM_ACCEL_AUTO;
  char reason[512];
  vs_err err;
  vm_arch other = vm_host_arch() == VM_ARCH_X86_64 ? VM_ARCH_ARM64 : VM_ARCH_X86_64;
  std::string want = std::string(vm_arch_name(other)) + " guests on an " +
                     vm_arch_name(VM_ARCH_HOST) + " host run under TCG";
  ASSERT_EQ(vm_accel_decide(nullptr, other, VM_ACCEL_AUTO, 5000, &a, reason, sizeof reason, &err), 0);
  EXPECT_EQ(a, VM_ACCEL_TCG);
  EXPECT_EQ(std::string(reason), "KVM is not usable: " + want);
  EXPECT_EQ(vm_accel_decide(nullptr, other, VM_ACCEL_KVM, 5000, &a, reason, sizeof reason, &err), -1);
  EXPECT_EQ(std::string(err.msg), "KVM is not usable: " + want);
}

TEST(AccelDecide, VmStartWantsADecision) {
  vm_config c = {};
  c.kernel = "/k";
  c.agent_socket = "/tmp/s";
  vs_err err;
  EXPECT_EQ(vm_start(&c, &err), nullptr);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.msg).find("accelerator"), std::string::npos) << err.msg;
}

}  // namespace
