#include <gtest/gtest.h>
#include <sys/resource.h>

#include <string>

extern "C" {
#include "guest-agent/spawn.h"
}

static std::string Env(const sp_exec &x) {
  std::string s;
  for (char **p = x.envp; *p; p++) s += std::string(*p) + ";";
  return s;
}

TEST(Spawn, ExecInitDefaults) {
  const char *args[] = {"sh", "-c", "true"};
  const char *env[] = {"A=1", "B=2", "A=3"};
  sp_exec x;
  vs_err err;
  ASSERT_EQ(sp_exec_init(&x, args, 3, env, 3, "", &err), 0) << err.msg;
  EXPECT_STREQ(x.argv[0], "sh");
  EXPECT_EQ(x.argv[3], nullptr);
  // Later entries win; PATH gets the default.
  EXPECT_EQ(Env(x), "B=2;A=3;PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin;");
  EXPECT_STREQ(x.cwd, "/");
  EXPECT_STREQ(x.path, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  EXPECT_EQ(x.rows, 24);
  EXPECT_EQ(x.cols, 80);
  sp_exec_free(&x);
}

TEST(Spawn, ExecInitKeepsGivenPathAndRejectsBadInput) {
  const char *args[] = {"ls"};
  const char *env[] = {"PATH=/bin"};
  sp_exec x;
  vs_err err;
  ASSERT_EQ(sp_exec_init(&x, args, 1, env, 1, "/work", &err), 0);
  EXPECT_STREQ(x.path, "/bin");
  EXPECT_STREQ(x.cwd, "/work");
  sp_exec_free(&x);
  EXPECT_EQ(sp_exec_init(&x, args, 0, env, 1, "/", &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  EXPECT_EQ(sp_exec_init(&x, args, 1, env, 1, "relative", &err), -1);
}

TEST(Spawn, RlimitNames) {
  EXPECT_EQ(sp_rlimit_from_name("RLIMIT_NOFILE"), RLIMIT_NOFILE);
  EXPECT_EQ(sp_rlimit_from_name("nproc"), RLIMIT_NPROC);
  EXPECT_EQ(sp_rlimit_from_name("RLIMIT_BOGUS"), -1);
}

TEST(Spawn, StatusPipeProtocol) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  char msg[] = {'P', 42, 0, 0, 0, 'R'};
  ASSERT_EQ(write(p[1], msg, sizeof msg), (ssize_t)sizeof msg);
  char e[7 + 5] = {'E', 5, 0, 0, 0, 5, 0, 'o', 'o', 'p', 's', '!'};
  ASSERT_EQ(write(p[1], e, sizeof e), (ssize_t)sizeof e);
  close(p[1]);
  pid_t pid = 0;
  vs_err err;
  EXPECT_EQ(sp_read_status(p[0], &pid, &err), 'P');
  EXPECT_EQ(pid, 42);
  EXPECT_EQ(sp_read_status(p[0], &pid, &err), 'R');
  EXPECT_EQ(sp_read_status(p[0], &pid, &err), 'E');
  EXPECT_EQ(err.code, VS_NOT_FOUND);
  EXPECT_STREQ(err.msg, "oops!");
  EXPECT_EQ(sp_read_status(p[0], &pid, &err), 0);
  close(p[0]);
}
