// The netlink library against the real kernel, inside a network namespace
// this test creates (unshare): a veth pair, nothing leaves the namespace.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" {
#include "guest-agent/netlink.h"
}

static std::string Sh(const std::string &cmd) {
  std::string out;
  FILE *f = popen(cmd.c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  pclose(f);
  return out;
}

class NetlinkTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "needs root (CAP_SYS_ADMIN) for a network namespace";
    ASSERT_EQ(system("ip link add v0 type veth peer name v1"), 0);
  }
  void SetUp() override {
    vs_err err;
    ASSERT_EQ(nl_open(&s, &err), 0) << err.msg;
  }
  void TearDown() override { nl_close(&s); }
  nl_sock s;
};

TEST_F(NetlinkTest, ParseAddresses) {
  nl_addr a;
  vs_err err;
  ASSERT_EQ(nl_parse_addr("192.168.64.5/24", &a, &err), 0);
  EXPECT_EQ(a.family, AF_INET);
  EXPECT_EQ(a.prefix, 24);
  EXPECT_EQ(a.bytes[0], 192);
  ASSERT_EQ(nl_parse_addr("fd00::1/64", &a, &err), 0);
  EXPECT_EQ(a.family, AF_INET6);
  ASSERT_EQ(nl_parse_addr("10.0.0.1", &a, &err), 0);
  EXPECT_EQ(a.prefix, -1);
  EXPECT_EQ(nl_parse_addr("10.0.0.1/33", &a, &err), -1);
  EXPECT_EQ(nl_parse_addr("nonsense/8", &a, &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  uint8_t mac[6];
  ASSERT_EQ(nl_parse_mac("02:00:0a:0b:0c:0d", mac, &err), 0);
  char txt[18];
  nl_format_mac(mac, txt, sizeof txt);
  EXPECT_STREQ(txt, "02:00:0a:0b:0c:0d");
  EXPECT_EQ(nl_parse_mac("02:00:0a", mac, &err), -1);
}

TEST_F(NetlinkTest, LinkUpMtuMacRename) {
  vs_err err;
  int idx = nl_link_index("v0", &err);
  ASSERT_GT(idx, 0) << err.msg;
  uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x42};
  ASSERT_EQ(nl_link_set(&s, idx, 1, 1400, mac, nullptr, &err), 0) << err.msg;
  std::string out = Sh("ip link show v0");
  EXPECT_NE(out.find("mtu 1400"), std::string::npos) << out;
  EXPECT_NE(out.find("02:00:00:00:00:42"), std::string::npos) << out;
  EXPECT_NE(out.find("UP"), std::string::npos) << out;
  ASSERT_EQ(nl_link_set(&s, idx, 0, 0, nullptr, nullptr, &err), 0);
  out = Sh("ip -o link show v0");
  EXPECT_EQ(out.find(",UP"), std::string::npos) << out;
  int v1 = nl_link_index("v1", &err);
  ASSERT_EQ(nl_link_set(&s, v1, -1, 0, nullptr, "v0", &err), -1);
  EXPECT_EQ(err.code, VS_ALREADY_EXISTS);
  ASSERT_EQ(nl_link_set(&s, v1, -1, 0, nullptr, "peer1", &err), 0) << err.msg;
  EXPECT_EQ(nl_link_index("peer1", &err), v1);
  ASSERT_EQ(nl_link_set(&s, v1, -1, 0, nullptr, "v1", &err), 0);
  EXPECT_EQ(nl_link_index("nope0", &err), -1);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
}

TEST_F(NetlinkTest, AddressesRoutesDefaultRouteAndListing) {
  vs_err err;
  int idx = nl_link_index("v0", &err);
  ASSERT_EQ(nl_link_set(&s, idx, 1, 0, nullptr, nullptr, &err), 0);
  ASSERT_EQ(nl_link_set(&s, nl_link_index("v1", &err), 1, 0, nullptr, nullptr, &err), 0);
  nl_addr a4, a6;
  ASSERT_EQ(nl_parse_addr("10.99.0.1/24", &a4, &err), 0);
  ASSERT_EQ(nl_parse_addr("fd00:99::1/64", &a6, &err), 0);
  ASSERT_EQ(nl_addr_add(&s, idx, &a4, &err), 0) << err.msg;
  ASSERT_EQ(nl_addr_add(&s, idx, &a4, &err), 0) << "existing address is not an error";
  ASSERT_EQ(nl_addr_add(&s, idx, &a6, &err), 0) << err.msg;
  std::string out = Sh("ip addr show v0");
  EXPECT_NE(out.find("inet 10.99.0.1/24 brd 10.99.0.255"), std::string::npos) << out;
  EXPECT_NE(out.find("inet6 fd00:99::1/64"), std::string::npos) << out;

  nl_addr dst, gw;
  ASSERT_EQ(nl_parse_addr("10.98.0.0/16", &dst, &err), 0);
  ASSERT_EQ(nl_parse_addr("10.99.0.2", &gw, &err), 0);
  ASSERT_EQ(nl_route_add(&s, &dst, &gw, idx, 0, &err), 0) << err.msg;
  ASSERT_EQ(nl_route_add(&s, &dst, &gw, idx, 0, &err), 0) << "replace is idempotent";
  nl_addr def;
  ASSERT_EQ(nl_parse_addr("0.0.0.0/0", &def, &err), 0);
  nl_addr gw2;
  ASSERT_EQ(nl_parse_addr("10.99.0.254", &gw2, &err), 0);
  ASSERT_EQ(nl_route_add(&s, &def, &gw2, 0, 0, &err), 0) << err.msg;
  out = Sh("ip route show");
  EXPECT_NE(out.find("10.98.0.0/16 via 10.99.0.2 dev v0"), std::string::npos) << out;
  EXPECT_NE(out.find("default via 10.99.0.254 dev v0"), std::string::npos) << out;
  // A link-scope route without gateway, and a gateway nobody can reach.
  nl_addr direct;
  ASSERT_EQ(nl_parse_addr("10.97.0.0/24", &direct, &err), 0);
  ASSERT_EQ(nl_route_add(&s, &direct, nullptr, idx, 50, &err), 0) << err.msg;
  out = Sh("ip route show 10.97.0.0/24");
  EXPECT_NE(out.find("dev v0"), std::string::npos) << out;
  EXPECT_NE(out.find("metric 50"), std::string::npos) << out;
  nl_addr far;
  ASSERT_EQ(nl_parse_addr("172.31.9.9", &far, &err), 0);
  EXPECT_EQ(nl_route_add(&s, &direct, &far, idx, 0, &err), -1);
  EXPECT_EQ(nl_route_add(&s, &a6, &gw, idx, 0, &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  // IPv6 default route.
  nl_addr d6, g6;
  ASSERT_EQ(nl_parse_addr("::/0", &d6, &err), 0);
  ASSERT_EQ(nl_parse_addr("fd00:99::fe", &g6, &err), 0);
  ASSERT_EQ(nl_route_add(&s, &d6, &g6, idx, 0, &err), 0) << err.msg;
  out = Sh("ip -6 route show default");
  EXPECT_NE(out.find("default via fd00:99::fe dev v0"), std::string::npos) << out;

  nl_link *links = nullptr;
  size_t n = 0;
  ASSERT_EQ(nl_list_links(&s, &links, &n, &err), 0) << err.msg;
  bool saw_lo = false, saw_v0 = false;
  for (size_t i = 0; i < n; i++) {
    if (i > 0) {
      EXPECT_LT(links[i - 1].index, links[i].index);
    }
    if (std::string(links[i].name) == "lo") saw_lo = true;
    if (std::string(links[i].name) == "v0") {
      saw_v0 = true;
      EXPECT_TRUE(links[i].up);
      EXPECT_TRUE(links[i].has_mac);
      bool has4 = false;
      for (size_t k = 0; k < links[i].n_addrs; k++)
        if (std::string(links[i].addrs[k]) == "10.99.0.1/24") has4 = true;
      EXPECT_TRUE(has4);
    }
  }
  free(links);
  EXPECT_TRUE(saw_lo);
  EXPECT_TRUE(saw_v0);
  char first[64];
  ASSERT_EQ(nl_first_ipv4("v0", first, sizeof first), 0);
  EXPECT_STREQ(first, "10.99.0.1");
}
