#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
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

// A config file in a fresh temporary directory.
class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vsd-conf-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/vesseld.conf";
  }
  void TearDown() override {
    vd_config_free(&c_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  void Write(const std::string &text) { std::ofstream(path_) << text; }
  int ParseWith(std::vector<std::string> extra) {
    vd_config_free(&c_);
    std::vector<std::string> args = {"--config", path_};
    args.insert(args.end(), extra.begin(), extra.end());
    return Parse(args, &c_, &e_);
  }
  std::string dir_, path_;
  vd_config c_ = {};
  vs_err e_;
};

TEST_F(ConfigFile, EveryFlagByItsName) {
  Write(
      "# vesseld settings\n"
      "\n"
      "root = /srv/vessel\n"
      "listen = unix:///run/v/a.sock\n"
      "  listen=unix:///run/v/b.sock  \n"
      "listen = tcp://127.0.0.1:7443\n"
      "insecure-tcp = true\n"
      "kernel = \"/boot/vmlinux\"\n"
      "dns-upstream = 192.0.2.1\n"
      "dns-upstream = 192.0.2.2:5353\n"
      "spares = 4\n"
      "template-memory = copy\n"
      "pull-min-speed = 100/5\n"
      "accel = tcg\n"
      "log-max-size = 512K\n"
      "log-max-files = 7\n");
  ASSERT_EQ(ParseWith({}), 0) << e_.msg;
  EXPECT_STREQ(c_.root, "/srv/vessel");
  ASSERT_EQ(c_.n_listen, 3u);
  EXPECT_STREQ(c_.listen[0], "unix:///run/v/a.sock");
  EXPECT_STREQ(c_.listen[1], "unix:///run/v/b.sock");
  EXPECT_EQ(c_.insecure_tcp, 1);
  EXPECT_STREQ(c_.kernel, "/boot/vmlinux");  // quotes stripped
  ASSERT_EQ(c_.n_dns_upstreams, 2u);
  EXPECT_STREQ(c_.dns_upstreams[1], "192.0.2.2:5353");
  EXPECT_EQ(c_.spares, 4);
  EXPECT_EQ(c_.template_memory_copy, 1);
  EXPECT_EQ(c_.pull_min_speed, 100);
  EXPECT_EQ(c_.pull_min_speed_secs, 5);
  EXPECT_STREQ(c_.accel, "tcg");
  EXPECT_EQ(c_.log_max_bytes, 512 * 1024);
  EXPECT_EQ(c_.log_max_files, 7);
}

TEST_F(ConfigFile, CommandLineWins) {
  Write("root = /srv/vessel\nlisten = unix:///run/v/a.sock\nlisten = unix:///run/v/b.sock\n"
        "spares = 4\ndns-upstream = 192.0.2.1\n");
  ASSERT_EQ(ParseWith({"--spares", "9", "--root=/other"}), 0) << e_.msg;
  EXPECT_STREQ(c_.root, "/other");
  EXPECT_EQ(c_.spares, 9);
  EXPECT_EQ(c_.n_listen, 2u);  // not given on the command line: the file's
  // A repeatable flag on the command line replaces the file's list.
  ASSERT_EQ(ParseWith({"--listen", "unix:///tmp/x.sock", "--listen", "unix:///tmp/y.sock"}), 0)
      << e_.msg;
  ASSERT_EQ(c_.n_listen, 2u);
  EXPECT_STREQ(c_.listen[0], "unix:///tmp/x.sock");
  EXPECT_STREQ(c_.listen[1], "unix:///tmp/y.sock");
  EXPECT_EQ(c_.n_dns_upstreams, 1u);
  // --config may come anywhere on the command line.
  vd_config_free(&c_);
  ASSERT_EQ(Parse({"--spares", "2", "--config", path_}, &c_, &e_), 0) << e_.msg;
  EXPECT_EQ(c_.spares, 2);
  EXPECT_STREQ(c_.root, "/srv/vessel");
}

TEST_F(ConfigFile, FalseLeavesABooleanOff) {
  Write("insecure-tcp = false\n");
  ASSERT_EQ(ParseWith({}), 0) << e_.msg;
  EXPECT_EQ(c_.insecure_tcp, 0);
}

TEST_F(ConfigFile, BadLinesNameFileAndLine) {
  struct Case {
    std::string text, want;
  } cases[] = {
      {"root = /a\n\njust words\n", ":3: want name = value"},
      {"# ok\nbogus = 1\n", ":2: unknown setting \"bogus\""},
      {"lis = unix:///x\n", ":1: unknown setting \"lis\""},  // no abbreviations
      {"root = /a\nspares = -1\n", ":2: --spares -1"},
      {"accel = fast\n", ":1: --accel fast: give kvm, tcg or auto"},
      {"log-max-size = 10X\n", ":1: --log-max-size 10X"},
      {"log-max-files = 101\n", ":1: --log-max-files 101"},
      {"insecure-tcp = maybe\n", ":1: insecure-tcp = maybe: give true or false"},
      {"config = /etc/other.conf\n", ":1: config is a command-line flag only"},
      {"help = true\n", ":1: help is a command-line flag only"},
  };
  for (auto &k : cases) {
    Write(k.text);
    EXPECT_EQ(ParseWith({}), -1) << k.text;
    std::string msg = e_.msg;
    EXPECT_EQ(msg.find(path_ + k.want), 0u) << "got: " << msg << " want: " << k.want;
  }
  // Rules across flags still hold: TLS without a TCP listener.
  Write("tls-cert = /c.pem\n");
  EXPECT_EQ(ParseWith({}), -1);
  EXPECT_NE(std::string(e_.msg).find("no tcp:// listener"), std::string::npos) << e_.msg;
}

TEST_F(ConfigFile, MissingFile) {
  vd_config_free(&c_);
  EXPECT_EQ(Parse({"--config", dir_ + "/none.conf"}, &c_, &e_), -1);
  EXPECT_NE(std::string(e_.msg).find("none.conf"), std::string::npos) << e_.msg;
  EXPECT_NE(std::string(e_.msg).find("No such file"), std::string::npos) << e_.msg;
}

TEST(Config, AccelAndLogDefaults) {
  vd_config c;
  vs_err e;
  ASSERT_EQ(Parse({}, &c, &e), 0) << e.msg;
  EXPECT_STREQ(c.accel, "auto");
  EXPECT_EQ(c.log_max_bytes, 0);
  EXPECT_EQ(c.log_max_files, 0);
  ASSERT_EQ(Parse({"--accel", "kvm", "--log-max-size", "3M", "--log-max-files", "2"}, &c, &e), 0)
      << e.msg;
  EXPECT_STREQ(c.accel, "kvm");
  EXPECT_EQ(c.log_max_bytes, 3 << 20);
  EXPECT_EQ(c.log_max_files, 2);
  ASSERT_EQ(Parse({"--log-max-size", "4096"}, &c, &e), 0) << e.msg;
  EXPECT_EQ(c.log_max_bytes, 4096);
  for (const char *bad : {"0", "-5", "M", "1T", ""})
    EXPECT_EQ(Parse({"--log-max-size", bad}, &c, &e), -1) << bad;
  EXPECT_EQ(Parse({"--log-max-files", "0"}, &c, &e), -1);
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
