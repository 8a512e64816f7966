#include "server/dns/dns.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

// A query for name, type (1 = A, 28 = AAAA), ID 0x1234, RD set.
std::vector<uint8_t> Query(const std::string &name, int type, uint16_t id = 0x1234) {
  std::vector<uint8_t> q = {uint8_t(id >> 8), uint8_t(id), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    q.push_back(uint8_t(dot - start));
    q.insert(q.end(), name.begin() + start, name.begin() + dot);
    start = dot + 1;
  }
  q.push_back(0);
  q.insert(q.end(), {uint8_t(type >> 8), uint8_t(type), 0, 1});
  return q;
}

int Lookup(void *arg, const char *gateway, const char *client, const char *name,
           struct in_addr *addr) {
  auto *seen = static_cast<std::string *>(arg);
  *seen = std::string(gateway) + " " + client + " " + name;
  if (std::string(name) != "web" || std::string(gateway) != "10.1.0.1") return 0;
  inet_pton(AF_INET, "10.1.0.5", addr);
  return 1;
}

TEST(DnsAnswer, ContainerNamesLocallyOthersForwarded) {
  std::string seen;
  uint8_t out[512];
  size_t n = 0;
  auto q = Query("WEB", 1);
  ASSERT_EQ(dns_answer_local(q.data(), q.size(), Lookup, &seen, "10.1.0.1", "10.1.0.7", out, sizeof out, &n),
            DNS_ANSWERED);
  EXPECT_EQ(seen, "10.1.0.1 10.1.0.7 web");  // lower case
  EXPECT_EQ(out[0], 0x12);
  EXPECT_EQ(out[1], 0x34);
  EXPECT_EQ(out[2] & 0x80, 0x80);  // a response
  EXPECT_EQ(out[3] & 0x0f, 0);     // NOERROR
  EXPECT_EQ(out[7], 1);            // one answer
  EXPECT_EQ(std::vector<uint8_t>(out + n - 4, out + n), (std::vector<uint8_t>{10, 1, 0, 5}));
  // AAAA of a known name: no records, not forwarded (no NXDOMAIN from outside).
  q = Query("web", 28);
  ASSERT_EQ(dns_answer_local(q.data(), q.size(), Lookup, &seen, "10.1.0.1", "10.1.0.7", out, sizeof out, &n),
            DNS_ANSWERED);
  EXPECT_EQ(out[7], 0);
  // Another network's name, an outside name: forwarded.
  q = Query("web", 1);
  EXPECT_EQ(dns_answer_local(q.data(), q.size(), Lookup, &seen, "10.2.0.1", "10.2.0.7", out, sizeof out, &n),
            DNS_FORWARD);
  q = Query("example.org", 1);
  EXPECT_EQ(dns_answer_local(q.data(), q.size(), Lookup, &seen, "10.1.0.1", "10.1.0.7", out, sizeof out, &n),
            DNS_FORWARD);
  // A response, a truncated message, a label running past the end: dropped.
  q = Query("web", 1);
  q[2] |= 0x80;
  EXPECT_EQ(dns_answer_local(q.data(), q.size(), Lookup, &seen, "10.1.0.1", "10.1.0.7", out, sizeof out, &n),
            DNS_DROP);
  q = Query("web", 1);
  EXPECT_EQ(dns_answer_local(q.data(), 8, Lookup, &seen, "10.1.0.1", "10.1.0.7", out, sizeof out, &n), DNS_DROP);
  q = Query("web", 1);
  q[12] = 60;
  EXPECT_EQ(dns_answer_local(q.data(), q.size(), Lookup, &seen, "10.1.0.1", "10.1.0.7", out, sizeof out, &n),
            DNS_DROP);
}

int UdpOn(const char *ip, int *port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (bind(fd, (sockaddr *)&a, sizeof a) < 0) return -1;
  socklen_t l = sizeof a;
  getsockname(fd, (sockaddr *)&a, &l);
  *port = ntohs(a.sin_port);
  return fd;
}

ssize_t RecvWithin(int fd, uint8_t *buf, size_t n, sockaddr_in *from = nullptr) {
  pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, 3000) <= 0) return -1;
  socklen_t l = sizeof(sockaddr_in);
  return recvfrom(fd, buf, n, 0, (sockaddr *)from, from ? &l : nullptr);
}

TEST(DnsServer, AnswersAndForwardsOnLoopback) {
  int up_port, srv_port;
  int up = UdpOn("127.0.0.1", &up_port);  // the "host's resolver"
  ASSERT_GE(up, 0);
  std::string upstream = "127.0.0.1:" + std::to_string(up_port);
  char *ups[] = {&upstream[0]};
  std::string seen;
  vs_err err;
  // The server listens where the lookup's network gateway is: here 127.0.0.2
  // stands for a bridge address (the port is the test's choice).
  auto Lookup2 = [](void *arg, const char *gw, const char *client, const char *name,
                    struct in_addr *a) {
    *static_cast<std::string *>(arg) = std::string(gw) + " " + client;
    if (std::string(name) != "db") return 0;
    inet_pton(AF_INET, "10.1.0.9", a);
    return 1;
  };
  dns_server *s = dns_open(Lookup2, &seen, ups, 1, &err);
  ASSERT_NE(s, nullptr) << err.msg;
  int probe = UdpOn("127.0.0.2", &srv_port);  // a free port there
  close(probe);
  ASSERT_EQ(dns_listen(s, "127.0.0.2", srv_port, &err), 0) << err.msg;
  int client = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to = {};
  to.sin_family = AF_INET;
  to.sin_port = htons(uint16_t(srv_port));
  inet_pton(AF_INET, "127.0.0.2", &to.sin_addr);
  uint8_t buf[1024];
  auto q = Query("db", 1, 0x4242);
  sendto(client, q.data(), q.size(), 0, (sockaddr *)&to, sizeof to);
  ssize_t n = RecvWithin(client, buf, sizeof buf);
  ASSERT_GT(n, 12);
  EXPECT_EQ(seen, "127.0.0.2 127.0.0.1");
  EXPECT_EQ(buf[7], 1);
  EXPECT_EQ(std::vector<uint8_t>(buf + n - 4, buf + n), (std::vector<uint8_t>{10, 1, 0, 9}));
  // Not ours: the upstream gets it under another ID, its answer comes back
  // under ours.
  q = Query("example.org", 1, 0x7777);
  sendto(client, q.data(), q.size(), 0, (sockaddr *)&to, sizeof to);
  sockaddr_in from;
  n = RecvWithin(up, buf, sizeof buf, &from);
  ASSERT_EQ(n, (ssize_t)q.size());
  EXPECT_EQ(std::vector<uint8_t>(buf + 2, buf + n), std::vector<uint8_t>(q.begin() + 2, q.end()));
  buf[2] |= 0x80;  // the upstream's answer: the query echoed as a response
  sendto(up, buf, size_t(n), 0, (sockaddr *)&from, sizeof from);
  uint8_t back[1024];
  ssize_t m = RecvWithin(client, back, sizeof back);
  ASSERT_EQ(m, n);
  EXPECT_EQ(back[0], 0x77);
  EXPECT_EQ(back[1], 0x77);
  EXPECT_EQ(back[2] & 0x80, 0x80);
  // Unlistened: the address serves no more.
  dns_unlisten(s, "127.0.0.2");
  sendto(client, q.data(), q.size(), 0, (sockaddr *)&to, sizeof to);
  EXPECT_LT(RecvWithin(up, buf, sizeof buf), 0);  // nobody listens any more
  dns_close(s);
  close(client);
  close(up);
}

// A TCP socket on ip:port, listening.
int TcpOn(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (bind(fd, (sockaddr *)&a, sizeof a) < 0 || listen(fd, 4) < 0) return -1;
  return fd;
}

int TcpTo(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, ip, &a.sin_addr);
  timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return connect(fd, (sockaddr *)&a, sizeof a) == 0 ? fd : -1;
}

bool ReadAll(int fd, uint8_t *b, size_t n) {
  for (size_t d = 0; d < n;) {
    ssize_t r = recv(fd, b + d, n - d, 0);
    if (r <= 0) return false;
    d += size_t(r);
  }
  return true;
}

void SendMsg(int fd, const std::vector<uint8_t> &m) {
  std::vector<uint8_t> f = {uint8_t(m.size() >> 8), uint8_t(m.size())};
  f.insert(f.end(), m.begin(), m.end());
  ASSERT_EQ(send(fd, f.data(), f.size(), 0), (ssize_t)f.size());
}

std::vector<uint8_t> RecvMsg(int fd) {
  uint8_t l[2];
  if (!ReadAll(fd, l, 2)) return {};
  std::vector<uint8_t> m(size_t(l[0] << 8 | l[1]));
  if (!ReadAll(fd, m.data(), m.size())) return {};
  return m;
}

TEST(DnsServer, TcpAnswersAndForwardsOverTcp) {
  int up_port, srv_port;
  int up_udp = UdpOn("127.0.0.1", &up_port);
  int up = TcpOn("127.0.0.1", up_port);  // the upstream, over TCP
  ASSERT_GE(up, 0);
  std::string upstream = "127.0.0.1:" + std::to_string(up_port);
  char *ups[] = {&upstream[0]};
  auto Look = [](void *, const char *, const char *client, const char *name, struct in_addr *a) {
    if (std::string(name) != "db" || std::string(client) != "127.0.0.1") return 0;
    inet_pton(AF_INET, "10.1.0.9", a);
    return 1;
  };
  vs_err err;
  dns_server *s = dns_open(Look, nullptr, ups, 1, &err);
  ASSERT_NE(s, nullptr) << err.msg;
  int probe = UdpOn("127.0.0.3", &srv_port);
  close(probe);
  ASSERT_EQ(dns_listen(s, "127.0.0.3", srv_port, &err), 0) << err.msg;
  int c = TcpTo("127.0.0.3", srv_port);
  ASSERT_GE(c, 0);
  // A container's name: answered on the connection, which stays open.
  SendMsg(c, Query("db", 1, 0x1111));
  auto a = RecvMsg(c);
  ASSERT_GT(a.size(), 12u);
  EXPECT_EQ(a[7], 1);
  EXPECT_EQ(std::vector<uint8_t>(a.end() - 4, a.end()), (std::vector<uint8_t>{10, 1, 0, 9}));
  // Another name: asked of the upstream over TCP, its large answer (more
  // than UDP would carry) relayed whole.
  auto q = Query("big.example", 1, 0x2222);
  SendMsg(c, q);
  int u = accept(up, nullptr, nullptr);
  ASSERT_GE(u, 0);
  auto got = RecvMsg(u);
  EXPECT_EQ(got, q);
  std::vector<uint8_t> big = q;
  big[2] |= 0x80;
  big.resize(3000, 0xab);
  SendMsg(u, big);
  close(u);
  EXPECT_EQ(RecvMsg(c), big);
  // Unlistened: the connection ends.
  dns_unlisten(s, "127.0.0.3");
  uint8_t b;
  EXPECT_EQ(recv(c, &b, 1, 0), 0);
  close(c);
  dns_close(s);
  close(up);
  close(up_udp);
}

TEST(DnsResolvConf, NameserversSearchAndLoopback) {
  char tmpl[] = "/tmp/vsl-resolv-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  std::string text =
      "# comment\nnameserver 127.0.0.53\nsearch a.example b.example\nnameserver 10.0.0.2\n"
      "options edns0\nnameserver ::1\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), (ssize_t)text.size());
  close(fd);
  dns_resolv r;
  dns_resolv_conf(tmpl, 0, &r);  // vesseld's own: loopback ones too
  ASSERT_EQ(r.n_ns, 3u);
  EXPECT_STREQ(r.ns[0], "127.0.0.53");
  EXPECT_STREQ(r.ns[2], "::1");
  EXPECT_STREQ(r.search, "a.example b.example");
  dns_resolv_conf(tmpl, 1, &r);  // a VM's: the first three it can reach
  ASSERT_EQ(r.n_ns, 3u);
  EXPECT_STREQ(r.ns[0], "10.0.0.2");
  EXPECT_STREQ(r.ns[2], "10.0.0.4");
  unlink(tmpl);
}

}  // namespace
