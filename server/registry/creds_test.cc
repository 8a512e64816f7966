#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "server/registry/registry.h"

namespace {

class CredsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vsl-creds-XXXXXX";
    dir_ = mkdtemp(tmpl);
    // A credential helper on PATH, answering for one host only.
    std::ofstream(dir_ + "/docker-credential-fake")
        << "#!/bin/sh\nread host\n[ \"$host\" = helped.example ] || exit 1\n"
           "echo '{\"Username\":\"helper-user\",\"Secret\":\"helper-secret\"}'\n";
    chmod((dir_ + "/docker-credential-fake").c_str(), 0755);
    setenv("PATH", (dir_ + ":" + getenv("PATH")).c_str(), 1);
    // "alice:pw" and "bob:x:y" (a password may contain ':').
    std::ofstream(dir_ + "/config.json")
        << R"({"auths": {"reg.example:5000": {"auth": "YWxpY2U6cHc="},
                         "https://index.docker.io/v1/": {"auth": "Ym9iOng6eQ=="}},
              "credHelpers": {"helped.example": "fake"}})";
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0); }

  std::string Lookup(const char *host, const char *store) {
    char *u = nullptr, *p = nullptr;
    vs_err e;
    int rc = reg_creds_lookup(host, store, (dir_ + "/config.json").c_str(), &u, &p, &e);
    std::string out = rc == 1 ? std::string(u) + ":" + p : rc == 0 ? "none" : "error";
    free(u);
    free(p);
    return out;
  }
  std::string dir_;
};

TEST_F(CredsTest, DockerConfigAuths) {
  EXPECT_EQ(Lookup("reg.example:5000", nullptr), "alice:pw");
  EXPECT_EQ(Lookup("docker.io", nullptr), "bob:x:y");
  EXPECT_EQ(Lookup("registry-1.docker.io", nullptr), "bob:x:y");
  EXPECT_EQ(Lookup("reg.example", nullptr), "none");  // port matters
  EXPECT_EQ(Lookup("other.example", nullptr), "none");
}

TEST_F(CredsTest, CredentialHelper) {
  EXPECT_EQ(Lookup("helped.example", nullptr), "helper-user:helper-secret");
}

TEST_F(CredsTest, VesselStoreWinsAndLogoutRemoves) {
  std::string store = dir_ + "/auth.json";
  vs_err e;
  ASSERT_EQ(reg_creds_store(store.c_str(), "reg.example:5000", "carol", "pw2", &e), 0) << e.msg;
  struct stat st;
  ASSERT_EQ(stat(store.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(Lookup("reg.example:5000", store.c_str()), "carol:pw2");
  ASSERT_EQ(reg_creds_store(store.c_str(), "reg.example:5000", nullptr, nullptr, &e), 0);
  EXPECT_EQ(Lookup("reg.example:5000", store.c_str()), "alice:pw");  // falls back to Docker's
}

}  // namespace
