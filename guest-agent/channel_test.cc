// The virtio-serial side of the channel, with a fake sysfs and a socketpair
// standing in for the port.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

extern "C" {
#include "guest-agent/channel.h"
}

TEST(Channel, FindPortByName) {
  std::string d = testing::TempDir() + "/virtio-ports";
  mkdir(d.c_str(), 0755);
  mkdir((d + "/vport0p0").c_str(), 0755);
  mkdir((d + "/vport0p1").c_str(), 0755);
  std::ofstream(d + "/vport0p0/name") << "other\n";
  std::ofstream(d + "/vport0p1/name") << "vessel.agent\n";
  char dev[64];
  ASSERT_EQ(ch_find_port(d.c_str(), "vessel.agent", dev, sizeof dev), 1);
  EXPECT_STREQ(dev, "/dev/vport0p1");
  EXPECT_EQ(ch_find_port(d.c_str(), "nope", dev, sizeof dev), 0);
  EXPECT_EQ(ch_find_port("/nonexistent", "x", dev, sizeof dev), 0);
}

TEST(Channel, RelaysBothWaysUntilHostCloses) {
  int port[2], sock[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, port), 0);  // [0] relay side, [1] "host"
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sock), 0);  // [0] relay side, [1] "gRPC"
  int rc = -1;
  std::thread t([&] { rc = ch_relay(port[0], sock[0], nullptr); });
  std::string big(1 << 20, 'a');
  for (size_t i = 0; i < big.size(); i++) big[i] = (char)('a' + i % 26);
  std::thread w([&] {
    size_t off = 0;
    while (off < big.size()) {
      ssize_t n = write(port[1], big.data() + off, big.size() - off);
      ASSERT_GT(n, 0);
      off += (size_t)n;
    }
  });
  std::string got;
  char buf[65536];
  while (got.size() < big.size()) {
    ssize_t n = read(sock[1], buf, sizeof buf);
    ASSERT_GT(n, 0);
    got.append(buf, (size_t)n);
  }
  w.join();
  EXPECT_EQ(got, big);
  ASSERT_EQ(write(sock[1], "pong", 4), 4);
  char p[4];
  ASSERT_EQ(read(port[1], p, 4), 4);
  EXPECT_EQ(std::string(p, 4), "pong");
  close(port[1]);  // host disconnects
  t.join();
  EXPECT_EQ(rc, 0);
  close(port[0]);
  close(sock[0]);
  close(sock[1]);
}

TEST(Channel, NewHostConnectionIsSplitOff) {
  int port[2], sock[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, port), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sock), 0);
  static ch_carry carry;
  carry.len = 0;
  int rc = -1;
  std::thread t([&] { rc = ch_relay(port[0], sock[0], &carry); });
  const std::string pre = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string first = pre + "old";
  ASSERT_EQ(write(port[1], first.data(), first.size()), (ssize_t)first.size());
  char buf[64];
  size_t got = 0;
  while (got < first.size()) {
    ssize_t n = read(sock[1], buf + got, sizeof buf - got);
    ASSERT_GT(n, 0);
    got += (size_t)n;
  }
  // The host reconnected: a fresh preface at the start of a read.
  std::string second = pre + "new";
  ASSERT_EQ(write(port[1], second.data(), second.size()), (ssize_t)second.size());
  t.join();
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(std::string(carry.buf, carry.len), second);
  // The next relay starts by delivering the carried bytes.
  int sock2[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sock2), 0);
  std::thread t2([&] { rc = ch_relay(port[0], sock2[0], &carry); });
  got = 0;
  while (got < second.size()) {
    ssize_t n = read(sock2[1], buf + got, sizeof buf - got);
    ASSERT_GT(n, 0);
    got += (size_t)n;
  }
  EXPECT_EQ(std::string(buf, got), second);
  close(port[1]);
  t2.join();
  EXPECT_EQ(rc, 0);
  for (int fd : {port[0], sock[0], sock[1], sock2[0], sock2[1]}) close(fd);
}
