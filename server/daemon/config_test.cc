#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "server/daemon/config.h"

namespace {

int Parse(std::vector<std::string> args, vd_config *c, vs_err *e) {
  // optarg points into argv: its strings outlive the call (until the next)
  static std::vector<std::string> keep;
  keep = std::move(args);
  keep.insert(keep.begin(), "vesseld");
  std::vector<char *> argv;
  for (auto &a : keep) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  return vd_config_parse(c, (int)keep.size(), argv.data(), e);
}

TEST(Config, Defaults) {
  vd_config c;
  vs_err e;
  ASSERT_EQ(Parse({}, &c, &e), 0) << e.msg;
  EXPECT_STREQ(c.root, VD_DEFAULT_ROOT);
  ASSERT_EQ(c.n_listen, 1u);
  EXPECT_STREQ(c.listen[0], VD_DEFAULT_SOCKET);
}

TEST(Config, TcpNeedsMutualTls) {
  vd_config c;
  vs_err e;
  EXPECT_EQ(Parse({"--listen", "tcp://127.0.0.1:7443"}, &c, &e), -1);
  EXPECT_NE(std::string(e.msg).find("--tls-cert"), std::string::npos);
  EXPECT_EQ(Parse({"--listen", "tcp://127.0.0.1:7443", "--tls-cert", "c", "--tls-key", "k"},
                  &c, &e),
            -1);
  EXPECT_NE(std::string(e.msg).find("--tls-client-ca"), std::string::npos);
  EXPECT_EQ(Parse({"--listen", "tcp://127.0.0.1:7443", "--tls-cert", "c", "--tls-key", "k",
                   "--tls-client-ca", "ca"},
                  &c, &e),
            0)
      << e.msg;
  EXPECT_EQ(Parse({"--listen", "tcp://127.0.0.1:7443", "--insecure-tcp"}, &c, &e), 0);
  EXPECT_EQ(c.insecure_tcp, 1);
}

TEST(Config, RejectsBadInput) {
  vd_config c;
  vs_err e;
  EXPECT_EQ(Parse({"--root", "relative"}, &c, &e), -1);
  EXPECT_EQ(Parse({"--listen", "http://x"}, &c, &e), -1);
  EXPECT_EQ(Parse({"--listen", "tcp://nohost", "--insecure-tcp"}, &c, &e), -1);
  EXPECT_EQ(Parse({"--bogus"}, &c, &e), -1);
  EXPECT_NE(std::string(e.msg).find("--bogus"), std::string::npos);
  EXPECT_EQ(Parse({"--tls-cert", "c"}, &c, &e), -1);  // TLS without TCP
  EXPECT_EQ(Parse({"stray"}, &c, &e), -1);
}

TEST(Config, CriStreaming) {
  vd_config c;
  vs_err e;
  ASSERT_EQ(Parse({}, &c, &e), 0) << e.msg;
  EXPECT_STREQ(c.cri_stream_address, "127.0.0.1:0");
  EXPECT_EQ(c.cri_stream_ttl, 0);  // the streaming server's 60 s
  ASSERT_EQ(Parse({"--cri-stream-address", "127.0.0.1:10010", "--cri-stream-url-ttl", "5"}, &c, &e), 0)
      << e.msg;
  EXPECT_STREQ(c.cri_stream_address, "127.0.0.1:10010");
  EXPECT_EQ(c.cri_stream_ttl, 5);
  for (const char *bad : {"0", "-3", "5s", "86401"}) {
    EXPECT_EQ(Parse({"--cri-stream-url-ttl", bad}, &c, &e), -1) << bad;
    EXPECT_NE(std::string(e.msg).find("--cri-stream-url-ttl"), std::string::npos) << e.msg;
  }
}

TEST(Config, SparesAndTemplateMemory) {
  vd_config c;
  vs_err e;
  ASSERT_EQ(Parse({}, &c, &e), 0) << e.msg;
  EXPECT_EQ(c.spares, 20);
  EXPECT_EQ(c.template_memory_copy, 0);
  EXPECT_EQ(c.tb_size_mib, 0);
  ASSERT_EQ(Parse({"--spares", "0", "--template-memory", "copy", "--tb-size", "64",
                   "--spares-memory", "15"}, &c, &e), 0)
      << e.msg;
  EXPECT_EQ(c.spares, 0);
  EXPECT_EQ(c.spares_memory_s, 15);
  EXPECT_EQ(c.template_memory_copy, 1);
  EXPECT_EQ(c.tb_size_mib, 64);
  EXPECT_EQ(Parse({"--spares", "-1"}, &c, &e), -1);
  EXPECT_NE(std::string(e.msg).find("--spares"), std::string::npos) << e.msg;
  EXPECT_EQ(Parse({"--template-memory", "private"}, &c, &e), -1);
  EXPECT_NE(std::string(e.msg).find("shared or copy"), std::string::npos) << e.msg;
  EXPECT_EQ(Parse({"--tb-size", "0"}, &c, &e), -1);
}

TEST(Config, GuestArch) {
  vd_config c;
  vs_err e;
  ASSERT_EQ(Parse({}, &c, &e), 0) << e.msg;
  EXPECT_EQ(c.guest_arch, VM_ARCH_HOST);
  ASSERT_EQ(Parse({"--guest-arch", "arm64"}, &c, &e), 0) << e.msg;
  EXPECT_EQ(c.guest_arch, VM_ARCH_ARM64);
  ASSERT_EQ(Parse({"--guest-arch", "aarch64"}, &c, &e), 0) << e.msg;
  EXPECT_EQ(c.guest_arch, VM_ARCH_ARM64);
  ASSERT_EQ(Parse({"--guest-arch", "amd64"}, &c, &e), 0) << e.msg;
  EXPECT_EQ(c.guest_arch, VM_ARCH_X86_64);
  EXPECT_EQ(Parse({"--guest-arch", "mips"}, &c, &e), -1);
  EXPECT_NE(std::string(e.msg).find("--guest-arch mips"), std::string::npos) << e.msg;
}

TEST(Config, MetricsListen) {
  vd_config c;
  vs_err e;
  ASSERT_EQ(Parse({}, &c, &e), 0) << e.msg;
  EXPECT_EQ(c.metrics_listen, nullptr);  // off by default
  ASSERT_EQ(Parse({"--metrics-listen", "tcp://127.0.0.1:9323"}, &c, &e), 0) << e.msg;
  EXPECT_STREQ(c.metrics_listen, "tcp://127.0.0.1:9323");
  ASSERT_EQ(Parse({"--metrics-listen", "unix:///run/vessel/metrics.sock"}, &c, &e), 0) << e.msg;
  EXPECT_STREQ(c.metrics_listen, "unix:///run/vessel/metrics.sock");
  // Plaintext TCP is fine here (read-only numbers), unlike --listen.
  ASSERT_EQ(Parse({"--metrics-listen", "tcp://0.0.0.0:9323"}, &c, &e), 0) << e.msg;
  for (const char *bad : {"127.0.0.1:9323", "tcp://127.0.0.1", "tcp://127.0.0.1:99999",
                          "unix://metrics.sock", "http://127.0.0.1:9323/metrics"}) {
    EXPECT_EQ(Parse({"--metrics-listen", bad}, &c, &e), -1) << bad;
    EXPECT_EQ(e.code, VS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.msg).find("--metrics-listen"), std::string::npos) << e.msg;
    EXPECT_NE(std::string(e.msg).find(bad), std::string::npos) << e.msg;
  }
  EXPECT_EQ(Parse({"--metrics-listen"}, &c, &e), -1);
}

}  // namespace
