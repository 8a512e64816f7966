#include <gtest/gtest.h>

#include <fstream>
#include <string>

extern "C" {
#include "guest-agent/user.h"
}

class UserTest : public testing::Test {
 protected:
  void SetUp() override {
    dir = testing::TempDir();
    passwd = dir + "/passwd";
    group = dir + "/group";
    std::ofstream(passwd) << "root:x:0:0:root:/root:/bin/sh\n"
                             "# comment\n"
                             "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                             "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
                             "nohome:x:1001:1001::/:/bin/sh\n";
    std::ofstream(group) << "root:x:0:\n"
                            "wheel:x:10:alice,bob\n"
                            "alice:x:1000:\n"
                            "audio:x:29:alice\n"
                            "staff:x:50:\n";
  }
  usr_ident Resolve(const char *spec, uid_t uid = 0, gid_t gid = 0) {
    usr_ident u;
    vs_err err;
    EXPECT_EQ(usr_resolve(passwd.c_str(), group.c_str(), spec, uid, gid, nullptr, 0, &u, &err), 0)
        << err.msg;
    return u;
  }
  std::string dir, passwd, group;
};

TEST_F(UserTest, ByNameWithSupplementaryGroups) {
  usr_ident u = Resolve("alice");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1000u);
  EXPECT_STREQ(u.home, "/home/alice");
  ASSERT_EQ(u.n_groups, 2u);
  EXPECT_EQ(u.groups[0], 10u);
  EXPECT_EQ(u.groups[1], 29u);
}

TEST_F(UserTest, NameAndGroupName) {
  usr_ident u = Resolve("alice:staff");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 50u);
}

TEST_F(UserTest, NumericUidKnownAndUnknown) {
  usr_ident u = Resolve("1000");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1000u);
  EXPECT_STREQ(u.home, "/home/alice");
  u = Resolve("4242:77");
  EXPECT_EQ(u.uid, 4242u);
  EXPECT_EQ(u.gid, 77u);
  EXPECT_STREQ(u.home, "/");
  EXPECT_EQ(u.n_groups, 0u);
}

TEST_F(UserTest, EmptySpecUsesUidGid) {
  usr_ident u = Resolve("", 1, 1);
  EXPECT_EQ(u.uid, 1u);
  EXPECT_STREQ(u.home, "/usr/sbin");
}

TEST_F(UserTest, UnknownNamesAreNotFound) {
  usr_ident u;
  vs_err err;
  EXPECT_EQ(usr_resolve(passwd.c_str(), group.c_str(), "mallory", 0, 0, nullptr, 0, &u, &err), -1);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
  EXPECT_NE(std::string(err.msg).find("mallory"), std::string::npos);
  EXPECT_EQ(usr_resolve(passwd.c_str(), group.c_str(), "alice:nogroup", 0, 0, nullptr, 0, &u, &err), -1);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
}

TEST_F(UserTest, ExtraGidsAreAddedOnce) {
  usr_ident u;
  vs_err err;
  gid_t extra[] = {29, 500};
  ASSERT_EQ(usr_resolve(passwd.c_str(), group.c_str(), "alice", 0, 0, extra, 2, &u, &err), 0);
  EXPECT_EQ(u.n_groups, 3u);
}

TEST_F(UserTest, MissingFilesNumericStillWorks) {
  usr_ident u;
  vs_err err;
  ASSERT_EQ(usr_resolve("/nonexistent/passwd", "/nonexistent/group", "123", 0, 0, nullptr, 0, &u, &err), 0);
  EXPECT_EQ(u.uid, 123u);
  EXPECT_EQ(usr_resolve("/nonexistent/passwd", "/nonexistent/group", "root", 0, 0, nullptr, 0, &u, &err), -1);
}
