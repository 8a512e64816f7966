#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "server/net/net.h"

namespace {

class NetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vsl-net-XXXXXX";
    dir_ = mkdtemp(tmpl);
    vs_err e;
    s_ = net_open(dir_.c_str(), &e);
    ASSERT_NE(s_, nullptr) << e.msg;
  }
  void TearDown() override {
    net_close(s_);
    ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0);
  }
  std::string dir_;
  net_store *s_;
};

TEST_F(NetTest, DefaultNetworkExists) {
  net_network n;
  vs_err e;
  ASSERT_EQ(net_get(s_, "default", &n, &e), 0) << e.msg;
  EXPECT_STREQ(n.subnet, "10.88.0.0/16");
  EXPECT_STREQ(n.gateway, "10.88.0.1");
  EXPECT_STREQ(n.bridge, "vessel0");
  net_network_free(&n);
  EXPECT_EQ(net_delete(s_, "default", 1, &e), -1);
  EXPECT_EQ(e.code, VS_FAILED_PRECONDITION);
}

TEST_F(NetTest, CreateValidatesAndAvoidsOverlap) {
  net_network n;
  vs_err e;
  ASSERT_EQ(net_create(s_, "a", "", "", 0, nullptr, 0, &n, &e), 0) << e.msg;
  EXPECT_STREQ(n.subnet, "10.89.0.0/24");
  EXPECT_EQ(std::string(n.bridge).size(), 14u);
  net_network_free(&n);
  char label[] = "k=v", *labels[] = {label};
  ASSERT_EQ(net_create(s_, "b", "", "", 0, labels, 1, &n, &e), 0);
  EXPECT_STREQ(n.subnet, "10.89.1.0/24");
  ASSERT_EQ(n.n_labels, 1u);
  EXPECT_STREQ(n.labels[0], "k=v");
  net_network_free(&n);
  ASSERT_EQ(net_get(s_, "b", &n, &e), 0);  // labels persist
  ASSERT_EQ(n.n_labels, 1u);
  net_network_free(&n);
  EXPECT_EQ(net_create(s_, "a", "", "", 0, nullptr, 0, &n, &e), -1);
  EXPECT_EQ(e.code, VS_ALREADY_EXISTS);
  EXPECT_EQ(net_create(s_, "c", "10.89.0.128/25", "", 0, nullptr, 0, &n, &e), -1);
  EXPECT_EQ(e.code, VS_ALREADY_EXISTS);
  EXPECT_NE(std::string(e.msg).find("overlaps network a"), std::string::npos);
  EXPECT_EQ(net_create(s_, "d", "10.5.0.0/33", "", 0, nullptr, 0, &n, &e), -1);
  EXPECT_EQ(e.code, VS_INVALID_ARGUMENT);
  EXPECT_EQ(net_create(s_, "e", "192.168.7.0/24", "192.168.8.1", 0, nullptr, 0, &n, &e), -1);
  EXPECT_EQ(e.code, VS_INVALID_ARGUMENT);
  EXPECT_EQ(net_create(s_, "bad name!", "", "", 0, nullptr, 0, &n, &e), -1);
  ASSERT_EQ(net_create(s_, "f", "192.168.7.0/24", "192.168.7.254", 0, nullptr, 0, &n, &e), 0);
  EXPECT_STREQ(n.gateway, "192.168.7.254");
  net_network_free(&n);
  net_network *all;
  size_t cnt;
  ASSERT_EQ(net_list(s_, &all, &cnt, &e), 0);
  EXPECT_EQ(cnt, 4u);  // default, a, b, f
  for (size_t i = 0; i < cnt; i++) net_network_free(&all[i]);
  free(all);
}

TEST_F(NetTest, LeasesAllocateReleasePersist) {
  net_network n;
  vs_err e;
  ASSERT_EQ(net_create(s_, "small", "10.9.9.0/29", "", 0, nullptr, 0, &n, &e), 0);  // hosts .1-.6
  net_network_free(&n);
  net_lease l;
  ASSERT_EQ(net_allocate(s_, "small", "c1", "", &l, &e), 0);
  EXPECT_STREQ(l.ip, "10.9.9.2");  // .1 is the gateway
  EXPECT_STREQ(l.mac, "02:42:0a:09:09:02");
  net_lease again;
  ASSERT_EQ(net_allocate(s_, "small", "c1", "", &again, &e), 0);  // idempotent
  EXPECT_STREQ(again.ip, "10.9.9.2");
  ASSERT_EQ(net_allocate(s_, "small", "c2", "10.9.9.5", &l, &e), 0);
  EXPECT_EQ(net_allocate(s_, "small", "c3", "10.9.9.5", &l, &e), -1);
  EXPECT_EQ(e.code, VS_ALREADY_EXISTS);
  EXPECT_EQ(net_allocate(s_, "small", "c3", "10.9.9.7", &l, &e), -1);  // broadcast
  for (int i = 3; i <= 5; i++)
    ASSERT_EQ(net_allocate(s_, "small", ("x" + std::to_string(i)).c_str(), "", &l, &e), 0);
  EXPECT_EQ(net_allocate(s_, "small", "full", "", &l, &e), -1);
  EXPECT_EQ(e.code, VS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(net_delete(s_, "small", 0, &e), -1);
  EXPECT_EQ(e.code, VS_FAILED_PRECONDITION);
  ASSERT_EQ(net_release(s_, "small", "c1", &e), 0);
  ASSERT_EQ(net_release(s_, "small", "c1", &e), 0);
  // Reopen: state persisted.
  net_close(s_);
  s_ = net_open(dir_.c_str(), &e);
  ASSERT_EQ(net_allocate(s_, "small", "new", "", &l, &e), 0);
  EXPECT_STREQ(l.ip, "10.9.9.2");
  ASSERT_EQ(net_delete(s_, "small", 1, &e), 0);
  EXPECT_EQ(net_get(s_, "small", &n, &e), -1);
  EXPECT_EQ(e.code, VS_NOT_FOUND);
}

}  // namespace
