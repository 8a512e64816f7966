// The virtio-serial side of the channel, with a fake sysfs and a socketpair
// standing in for the port.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

static const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// An HTTP/2 frame: 9-byte header (24-bit length, type, flags, stream).
static std::string Frame(const std::string &payload, char type = 0) {
  std::string h(9, '\0');
  h[0] = (char)(payload.size() >> 16);
  h[1] = (char)(payload.size() >> 8);
  h[2] = (char)payload.size();
  h[3] = type;
  h[8] = 1;
  return h + payload;
}

static std::string ReadN(int fd, size_t n) {
  std::string out;
  char buf[4096];
  while (out.size() < n) {
    ssize_t r = read(fd, buf, std::min(sizeof buf, n - out.size()));
    if (r <= 0) break;
    out.append(buf, (size_t)r);
  }
  return out;
}

struct Relay {
  int port[2], sock[2];
  int rc = -1;
  std::thread t;
  explicit Relay(ch_carry *carry) {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, port), 0);
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sock), 0);
    t = std::thread([this, carry] { rc = ch_relay(port[0], sock[0], carry); });
  }
  void Host(const std::string &bytes) {
    ASSERT_EQ(write(port[1], bytes.data(), bytes.size()), (ssize_t)bytes.size());
  }
  ~Relay() {
    if (t.joinable()) t.join();
    for (int fd : {port[0], port[1], sock[0], sock[1]}) close(fd);
  }
};

TEST(Channel, NewHostConnectionIsSplitOff) {
  static ch_carry carry;
  carry.len = 0;
  Relay r(&carry);
  std::string first = kPreface + Frame("old", 4);
  r.Host(first);
  EXPECT_EQ(ReadN(r.sock[1], first.size()), first);
  // The host reconnected: a fresh preface where the next frame was due.
  std::string second = kPreface + Frame("new", 4);
  r.Host(second);
  r.t.join();
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(std::string(carry.buf, carry.len), second);
  // The next relay starts by delivering the carried bytes.
  int sock2[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sock2), 0);
  int rc = -1;
  std::thread t2([&] { rc = ch_relay(r.port[0], sock2[0], &carry); });
  EXPECT_EQ(ReadN(sock2[1], second.size()), second);
  shutdown(r.port[1], SHUT_WR);
  t2.join();
  EXPECT_EQ(rc, 0);
  close(sock2[0]);
  close(sock2[1]);
}

// The old connection's last frames and the new preface in one read: split
// exactly at the frame boundary.
TEST(Channel, CoalescedReconnectIsSplitAtTheFrameBoundary) {
  static ch_carry carry;
  carry.len = 0;
  Relay r(&carry);
  std::string old = kPreface + Frame("a") + Frame(std::string(20000, 'x')) + Frame("", 7);
  std::string fresh = kPreface + Frame("hello", 4);
  r.Host(old + fresh);
  r.t.join();
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(ReadN(r.sock[1], old.size()), old);
  EXPECT_EQ(std::string(carry.buf, carry.len), fresh);
}

// The preface inside a payload (a copied file, stdin) is data, and a frame
// header split across reads is forwarded once whole.
TEST(Channel, PrefaceInsidePayloadIsJustData) {
  static ch_carry carry;
  carry.len = 0;
  Relay r(&carry);
  std::string data = kPreface + Frame("x" + kPreface + kPreface) + Frame(kPreface);
  std::string more = Frame("after");
  r.Host(data);
  r.Host(more.substr(0, 4));
  usleep(50000);
  r.Host(more.substr(4));
  EXPECT_EQ(ReadN(r.sock[1], data.size() + more.size()), data + more);
  shutdown(r.port[1], SHUT_WR);
  r.t.join();
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(carry.len, 0u);
}
