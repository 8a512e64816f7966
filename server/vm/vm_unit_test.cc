// Unit tests of the launcher's pure parts (no QEMU started).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string.h>
#include <string>
#include <vector>

extern "C" {
#include "server/vm/vm.h"
}

static std::vector<std::string> Argv(const vm_config &c, vm_accel a) {
  vs_err err;
  char **v = vm_build_argv(&c, c.initrd, a, &err);
  EXPECT_NE(v, nullptr) << err.msg;
  std::vector<std::string> out;
  for (char **p = v; p && *p; p++) out.push_back(*p);
  vm_argv_free(v);
  return out;
}

static bool Has(const std::vector<std::string> &v, const std::string &s) {
  for (auto &x : v)
    if (x.find(s) != std::string::npos) return true;
  return false;
}

TEST(VmArgv, MicrovmWithDisksChannelAndNic) {
  vm_config c = {};
  c.kernel = "/k/vmlinux";
  c.initrd = "/k/initrd.cpio";
  c.agent_socket = "/tmp/a,b.sock";
  c.root_disk = "/img/root.ext4";
  vm_disk extra[] = {{"/img/data.img", 1}};
  c.disks = extra;
  c.n_disks = 1;
  c.vcpus = 2;
  c.memory_mib = 512;
  vm_nic nics[] = {{"tap0", "02:00:00:00:00:01"}, {"tap1", nullptr}};
  c.nics = nics;
  c.n_nics = 2;
  c.console_log = "/tmp/console.log";
  auto v = Argv(c, VM_ACCEL_TCG);
  EXPECT_EQ(v[0], "qemu-system-x86_64");
  EXPECT_TRUE(Has(v, "microvm"));
  EXPECT_TRUE(Has(v, "tcg"));
  EXPECT_TRUE(Has(v, "512M"));
  EXPECT_TRUE(Has(v, "file=/img/root.ext4"));
  EXPECT_TRUE(Has(v, "file=/img/data.img,format=raw,if=none,cache=unsafe,readonly=on"));
  // Commas in paths are doubled for QEMU's option parser.
  EXPECT_TRUE(Has(v, "path=/tmp/a,,b.sock"));
  EXPECT_TRUE(Has(v, "name=vessel.agent"));
  EXPECT_TRUE(Has(v, "ifname=tap0"));
  EXPECT_TRUE(Has(v, "mac=02:00:00:00:00:01"));
  EXPECT_TRUE(Has(v, "console=ttyS0"));
  // The root disk comes first, so it is /dev/vda.
  size_t root = 0, data = 0;
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i].find("root.ext4") != std::string::npos) root = i;
    if (v[i].find("data.img") != std::string::npos) data = i;
  }
  EXPECT_LT(root, data);
}

TEST(VmArgv, TscGuardOnlyUnderTcg) {
  vm_config c = {};
  c.kernel = "/k";
  c.agent_socket = "/tmp/s";
  if (vm_host_tsc_khz() > 0) {
    EXPECT_TRUE(Has(Argv(c, VM_ACCEL_TCG), "tsc_early_khz="));
  }
  auto k = Argv(c, VM_ACCEL_KVM);
  EXPECT_FALSE(Has(k, "tsc_early_khz="));
  EXPECT_TRUE(Has(k, "kvm"));
  EXPECT_TRUE(Has(k, "host"));
}

TEST(VmTail, LastLines) {
  std::string p = testing::TempDir() + "/log";
  std::ofstream(p) << "one\ntwo\nthree\nfour\n";
  char out[256];
  vm_tail(p.c_str(), 2, out, sizeof out);
  EXPECT_STREQ(out, "three\nfour");
}

// Template RAM: written to the file while the template runs, mapped
// copy-on-write by a restore (which waits for x-ignore-shared over QMP);
// every VM has the balloon, reporting freed memory only without a RAM file.
TEST(VmArgv, RamFileAndBalloon) {
  vm_config c = {};
  c.kernel = "/k/vmlinux";
  c.agent_socket = "/run/v/a.sock";
  c.memory_mib = 256;
  c.ram_file = "/t/ram";
  c.ram_shared = 1;
  auto t = Argv(c, VM_ACCEL_TCG);
  EXPECT_TRUE(Has(t, "memory-backend-file,id=ram,size=256M,mem-path=/t/ram,share=on"));
  EXPECT_TRUE(Has(t, "memory-backend=ram"));
  EXPECT_TRUE(Has(t, "virtio-balloon-device,free-page-reporting=off"));
  c.ram_shared = 0;
  c.incoming = "/t/state";
  auto r = Argv(c, VM_ACCEL_TCG);
  EXPECT_TRUE(Has(r, "mem-path=/t/ram,share=off"));
  EXPECT_TRUE(Has(r, "defer"));
  EXPECT_TRUE(Has(r, "unix:/run/v/a.sock.qmp,server=on,wait=off"));
  EXPECT_FALSE(Has(r, "exec:cat"));  // given over QMP
  vm_config a = {};
  a.kernel = "/k/vmlinux";
  a.agent_socket = "/run/v/a.sock";
  a.free_page_reporting = 1;
  a.tb_size_mib = 32;
  auto b = Argv(a, VM_ACCEL_TCG);
  EXPECT_TRUE(Has(b, "free-page-reporting=on"));
  EXPECT_FALSE(Has(b, "memory-backend"));
  EXPECT_TRUE(Has(b, "tcg,tb-size=32"));
  EXPECT_FALSE(Has(Argv(a, VM_ACCEL_KVM), "tb-size"));
}

// What QEMU 7.2 would do wrong is refused before it starts.
TEST(VmArgv, Arm64GuestOnVirt) {
  vm_config c = {};
  c.arch = VM_ARCH_ARM64;
  c.kernel = "/k/Image";
  c.agent_socket = "/tmp/s";
  c.root_disk = "/img/root.ext4";
  auto v = Argv(c, VM_ACCEL_TCG);
  EXPECT_EQ(v[0], "qemu-system-aarch64");
  EXPECT_TRUE(Has(v, "virt,gic-version=max"));
  EXPECT_FALSE(Has(v, "microvm"));
  EXPECT_TRUE(Has(v, "max,pauth-impdef=on"));
  EXPECT_TRUE(Has(v, "console=ttyAMA0"));
  EXPECT_FALSE(Has(v, "tsc_early_khz="));  // an x86 clock matter
  // The same virtio-mmio devices as on microvm.
  EXPECT_TRUE(Has(v, "virtio-blk-device,drive=d0"));
  EXPECT_TRUE(Has(v, "name=vessel.agent"));
  c.qemu = "/opt/qemu-system-aarch64";
  EXPECT_EQ(Argv(c, VM_ACCEL_TCG)[0], "/opt/qemu-system-aarch64");
}

TEST(VmArch, NamesAndParsing) {
  vm_arch a;
  ASSERT_EQ(vm_arch_parse("aarch64", &a), 0);
  EXPECT_EQ(a, VM_ARCH_ARM64);
  ASSERT_EQ(vm_arch_parse("amd64", &a), 0);
  EXPECT_EQ(a, VM_ARCH_X86_64);
  EXPECT_EQ(vm_arch_parse("riscv64", &a), -1);
  EXPECT_STREQ(vm_arch_name(VM_ARCH_ARM64), "arm64");
  EXPECT_STREQ(vm_arch_name(VM_ARCH_HOST), vm_arch_name(vm_host_arch()));
}

TEST(VmStart, ForeignGuestGetsNoKvm) {
  vm_config c = {};
  c.arch = vm_host_arch() == VM_ARCH_ARM64 ? VM_ARCH_X86_64 : VM_ARCH_ARM64;
  c.kernel = "/dev/null";
  c.agent_socket = "/tmp/vessel-vm-unit.sock";
  c.accel = VM_ACCEL_KVM;
  vs_err err;
  EXPECT_EQ(vm_start(&c, &err), nullptr);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.msg).find("cannot use KVM"), std::string::npos) << err.msg;
}

TEST(VmStart, RamFileConflictsAreRefused) {
  vm_config c = {};
  c.kernel = "/k/vmlinux";
  c.agent_socket = "/tmp/vessel-vm-unit.sock";
  c.accel = VM_ACCEL_TCG;
  c.ram_file = "/t/ram";
  c.free_page_reporting = 1;  // would punch holes into the shared file
  vs_err err;
  EXPECT_EQ(vm_start(&c, &err), nullptr);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.msg).find("punch holes"), std::string::npos) << err.msg;
  c.free_page_reporting = 0;
  c.ram_shared = 1;
  c.incoming = "/t/state";  // a restore writing into its template's RAM
  EXPECT_EQ(vm_start(&c, &err), nullptr);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
}

TEST(VmStart, MissingKernelIsNotFound) {
  vm_config c = {};
  c.kernel = "/nonexistent/vmlinux";
  c.agent_socket = "/tmp/vessel-vm-unit.sock";
  c.accel = VM_ACCEL_TCG;
  vs_err err;
  EXPECT_EQ(vm_start(&c, &err), nullptr);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
}

// A PID recorded by an earlier vesseld may belong to anything by now: a
// live process that is not a QEMU serving that socket is not adopted (and
// so never signalled).
TEST(VmAdopt, ForeignProcessIsNotAdopted) {
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  vs_err err;
  EXPECT_EQ(vm_adopt(child, "/tmp/vessel-vm-unit.sock", nullptr, 0, &err), nullptr);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
  EXPECT_EQ(kill(child, 0), 0);  // untouched
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_EQ(vm_adopt(child, "/tmp/vessel-vm-unit.sock", nullptr, 0, &err), nullptr);
}

// A record left by a vesseld that died: vm_record_end finds the process it
// names (by PID, or with no PID yet by the socket in its command line),
// ends it, and removes the record and socket; a process whose command line
// does not name the socket is left alone.
static pid_t fake_qemu(const char *sock) {
  pid_t child = fork();
  if (child == 0) {
    setpgid(0, 0);  // its sleep goes with it at the end
    execlp("sh", "sh", "-c", "sleep 1000; true", "qemu-system-fake", sock, (char *)nullptr);
    _exit(127);
  }
  for (int i = 0; i < 200; i++) {  // until exec has replaced the command line
    char path[64], cmd[512] = "";
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)child);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(cmd, 1, sizeof cmd - 1, f) : 0;
    if (f) fclose(f);
    if (n > 10 && memmem(cmd, n, "qemu-system-fake", 16)) break;
    usleep(10000);
  }
  return child;
}

static bool alive(pid_t pid) { return waitpid(pid, nullptr, WNOHANG) == 0; }

TEST(VmRecord, EndsWhatARecordNames) {
  char dir[] = "/tmp/vm-rec-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string sock = std::string(dir) + "/a.sock", rec = std::string(dir) + "/a.vm";
  std::string other = std::string(dir) + "/b.sock";
  pid_t q = fake_qemu(sock.c_str()), stranger = fake_qemu(other.c_str());
  FILE *f = fopen(rec.c_str(), "w");
  fprintf(f, "0\n%s\nvtap0 vtap1\n", sock.c_str());  // died between record and fork's PID
  fclose(f);
  vm_record r;
  vs_err err;
  ASSERT_EQ(vm_record_read(rec.c_str(), &r, &err), 0) << err.msg;
  EXPECT_EQ(r.pid, 0);
  EXPECT_EQ(std::string(r.socket), sock);
  ASSERT_EQ(r.n_taps, 2u);
  EXPECT_EQ(std::string(r.taps[0]), "vtap0");
  EXPECT_EQ(std::string(r.taps[1]), "vtap1");
  vm_record_end(rec.c_str(), &r);
  for (int i = 0; i < 100 && alive(q); i++) usleep(10000);
  EXPECT_FALSE(alive(q));
  EXPECT_TRUE(alive(stranger));
  EXPECT_NE(access(rec.c_str(), F_OK), 0);

  // With a PID: a recorded PID that is not a QEMU serving that socket is
  // not signalled.
  f = fopen(rec.c_str(), "w");
  fprintf(f, "%d\n%s\n\n", (int)stranger, sock.c_str());
  fclose(f);
  ASSERT_EQ(vm_record_read(rec.c_str(), &r, &err), 0);
  vm_record_end(rec.c_str(), &r);
  EXPECT_TRUE(alive(stranger));
  f = fopen(rec.c_str(), "w");
  fprintf(f, "%d\n%s\n\n", (int)stranger, other.c_str());
  fclose(f);
  ASSERT_EQ(vm_record_read(rec.c_str(), &r, &err), 0);
  vm_record_end(rec.c_str(), &r);
  for (int i = 0; i < 100 && alive(stranger); i++) usleep(10000);
  EXPECT_FALSE(alive(stranger));
  kill(-q, SIGKILL);
  kill(-stranger, SIGKILL);
  waitpid(q, nullptr, 0);
  waitpid(stranger, nullptr, 0);
  rmdir(dir);
}

TEST(VmConsole, TrimKeepsTheTailAndBoundsTheBlocks) {
  char tmpl[] = "/tmp/vsl-con-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string p = std::string(tmpl) + "/console.log";
  int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);  // as QEMU's append=on
  ASSERT_GE(fd, 0);
  std::string chunk(64 << 10, 'c');
  for (int i = 0; i < 64; i++) ASSERT_EQ(write(fd, chunk.data(), chunk.size()), (ssize_t)chunk.size());
  ASSERT_EQ(write(fd, "the end\n", 8), 8);
  ASSERT_EQ(vm_console_trim(p.c_str(), 1 << 20), 0);
  struct stat st;
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (64 << 16) + 8);            // size kept: appends go on
  EXPECT_LE(st.st_blocks * 512, (1 << 20) + 8192);  // blocks: about the last MiB
  // Appends after the trim land at the end, the tail is intact.
  ASSERT_EQ(write(fd, "more\n", 5), 5);
  close(fd);
  char tail[14] = {0};
  int rfd = open(p.c_str(), O_RDONLY);
  ASSERT_EQ(pread(rfd, tail, 13, st.st_size - 8), 13);
  close(rfd);
  EXPECT_STREQ(tail, "the end\nmore\n");
  // A small log is left alone.
  ASSERT_EQ(vm_console_trim(p.c_str(), 64 << 20), 0);
  EXPECT_EQ(system((std::string("rm -rf ") + tmpl).c_str()), 0);
}

// A fake QEMU on the other end of a socketpair: for each command line it
// reads, it writes the next scripted answer (pieces written separately,
// 20 ms apart, as a slow QEMU would).
struct FakeQmp {
  int fd;
  std::vector<std::vector<std::string>> answers;
  std::vector<std::string> got;
};

static void *FakeQmpMain(void *arg) {
  FakeQmp *f = static_cast<FakeQmp *>(arg);
  const char greeting[] = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n";
  if (write(f->fd, greeting, sizeof greeting - 1) < 0) return nullptr;
  std::string line;
  for (size_t i = 0; i < f->answers.size();) {
    char c;
    if (read(f->fd, &c, 1) != 1) break;
    if (c != '\n') {
      line += c;
      continue;
    }
    f->got.push_back(line);
    line.clear();
    for (auto &piece : f->answers[i++]) {
      if (write(f->fd, piece.data(), piece.size()) < 0) return nullptr;
      usleep(20000);
    }
  }
  shutdown(f->fd, SHUT_WR);
  return nullptr;
}

TEST(VmQmp, EventsAroundRepliesAndLongRepliesDoNotLoseCommands) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const std::string ev = "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": "
                         "\"MIGRATION\", \"data\": {\"status\": \"active\"}}\n";
  std::string longreply = "{\"return\": {\"status\": \"active\", \"pad\": \"" +
                          std::string(10000, 'x') + "\"}}\n";
  FakeQmp f{sv[1], {}, {}};
  f.answers = {
      {"{\"return\": {}}\n"},                      // qmp_capabilities
      {"{\"return\": {}}\n" + ev.substr(0, 40)},  // a reply, then half an event in the same read
      {ev.substr(40) + ev + "{\"return\": {\"status\": \"setup\"}}\n"},
      {longreply + ev},                           // longer than any fixed buffer
      {"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n"},
      {"{\"return\": {\"status\": \"completed\"}}\n"},
  };
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, nullptr, FakeQmpMain, &f), 0);
  vm_qmp *q = vm_qmp_open(sv[0]);
  ASSERT_NE(q, nullptr);
  char buf[4096];
  EXPECT_EQ(vm_qmp_cmd(q, "{\"execute\":\"migrate\"}", buf, sizeof buf), 0);
  EXPECT_STREQ(buf, "{\"return\": {}}\n");
  EXPECT_EQ(vm_qmp_cmd(q, "{\"execute\":\"query-migrate\"}", buf, sizeof buf), 0) << buf;
  EXPECT_NE(strstr(buf, "\"setup\""), nullptr) << buf;
  EXPECT_EQ(vm_qmp_cmd(q, "{\"execute\":\"query-migrate\"}", buf, sizeof buf), 0);
  EXPECT_EQ(strlen(buf), sizeof buf - 1);  // cut to the buffer, the rest consumed
  EXPECT_EQ(vm_qmp_cmd(q, "{\"execute\":\"bad\"}", buf, sizeof buf), -1);
  EXPECT_NE(strstr(buf, "GenericError"), nullptr) << buf;
  EXPECT_EQ(vm_qmp_cmd(q, "{\"execute\":\"query-migrate\"}", buf, sizeof buf), 0) << buf;
  EXPECT_NE(strstr(buf, "\"completed\""), nullptr) << buf;
  // The fake is done and closed its side: a broken connection is -1, "".
  EXPECT_EQ(vm_qmp_cmd(q, "{\"execute\":\"quit\"}", buf, sizeof buf), -1);
  EXPECT_STREQ(buf, "");
  vm_qmp_close(q);
  pthread_join(t, nullptr);
  close(sv[1]);
  ASSERT_EQ(f.got.size(), 6u);
  EXPECT_EQ(f.got[0], "{\"execute\":\"qmp_capabilities\"}");
  EXPECT_EQ(f.got[5], "{\"execute\":\"query-migrate\"}");
}

TEST(VmQmp, NotQmpIsRefused) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ASSERT_EQ(write(sv[1], "hello\n", 6), 6);
  close(sv[1]);
  EXPECT_EQ(vm_qmp_open(sv[0]), nullptr);  // and sv[0] is closed
  EXPECT_EQ(fcntl(sv[0], F_GETFD), -1);
}
