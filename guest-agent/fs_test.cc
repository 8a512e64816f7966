#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <string>

extern "C" {
#include "guest-agent/fs.h"
}

TEST(FsOptions, FlagsAndData) {
  const char *opts[] = {"ro", "nosuid", "nodev", "size=64m", "mode=1777", "rprivate"};
  unsigned long flags, prop;
  char data[128];
  vs_err err;
  ASSERT_EQ(fs_parse_options(opts, 6, &flags, &prop, data, sizeof data, &err), 0);
  EXPECT_EQ(flags, (unsigned long)(MS_RDONLY | MS_NOSUID | MS_NODEV));
  EXPECT_EQ(prop, (unsigned long)(MS_PRIVATE | MS_REC));
  EXPECT_STREQ(data, "size=64m,mode=1777");
}

TEST(FsOptions, RwClearsRoAndRbind) {
  const char *opts[] = {"ro", "rw", "rbind"};
  unsigned long flags, prop;
  char data[16];
  vs_err err;
  ASSERT_EQ(fs_parse_options(opts, 3, &flags, &prop, data, sizeof data, &err), 0);
  EXPECT_EQ(flags, (unsigned long)(MS_BIND | MS_REC));
  EXPECT_STREQ(data, "");
}

TEST(FsOptions, DataTooLong) {
  const char *opts[] = {"aaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
  unsigned long flags, prop;
  char data[8];
  vs_err err;
  EXPECT_EQ(fs_parse_options(opts, 1, &flags, &prop, data, sizeof data, &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
}

TEST(FsMkdir, CreatesParentsAndRejectsFiles) {
  std::string d = testing::TempDir() + "/mk/a/b/c";
  vs_err err;
  ASSERT_EQ(fs_mkdir_all(d.c_str(), 0755, &err), 0) << err.msg;
  struct stat st;
  ASSERT_EQ(stat(d.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(fs_mkdir_all(d.c_str(), 0755, &err), 0);
  std::string f = testing::TempDir() + "/mk/file";
  ASSERT_EQ(fs_write_file(f.c_str(), "x", 1, 0644, 0, &err), 0);
  EXPECT_EQ(fs_mkdir_all(f.c_str(), 0755, &err), -1);
  EXPECT_EQ(err.code, VS_ALREADY_EXISTS);
}

TEST(FsFile, WriteAppendRead) {
  std::string f = testing::TempDir() + "/wf";
  vs_err err;
  ASSERT_EQ(fs_write_file(f.c_str(), "hello", 5, 0600, 0, &err), 0);
  ASSERT_EQ(fs_write_file(f.c_str(), " world", 6, 0600, 1, &err), 0);
  char buf[64];
  EXPECT_EQ(fs_read_small(f.c_str(), buf, sizeof buf), 11);
  EXPECT_STREQ(buf, "hello world");
  ASSERT_EQ(fs_write_file(f.c_str(), "x", 1, 0600, 0, &err), 0);
  EXPECT_EQ(fs_read_small(f.c_str(), buf, sizeof buf), 1);
  EXPECT_EQ(fs_write_file("/nonexistent/dir/f", "x", 1, 0600, 0, &err), -1);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
}

TEST(FsJoin, StaysInsideRoot) {
  char out[256];
  vs_err err;
  ASSERT_EQ(fs_join("/run/c/rootfs", "/etc/hosts", out, sizeof out, &err), 0);
  EXPECT_STREQ(out, "/run/c/rootfs/etc/hosts");
  ASSERT_EQ(fs_join("/", "/etc", out, sizeof out, &err), 0);
  EXPECT_STREQ(out, "/etc");
  EXPECT_EQ(fs_join("/r", "/a/../../etc", out, sizeof out, &err), -1);
  EXPECT_EQ(fs_join("/r", "relative", out, sizeof out, &err), -1);
  ASSERT_EQ(fs_join("/r", "/a..b/c", out, sizeof out, &err), 0);
}

TEST(FsSecureJoin, SymlinksStayInsideRoot) {
  std::string root = testing::TempDir() + "/sj";
  vs_err err;
  ASSERT_EQ(fs_mkdir_all((root + "/etc/real").c_str(), 0755, &err), 0);
  ASSERT_EQ(fs_mkdir_all((root + "/data").c_str(), 0755, &err), 0);
  unlink((root + "/abs").c_str());
  unlink((root + "/rel").c_str());
  unlink((root + "/escape").c_str());
  unlink((root + "/data/loop").c_str());
  ASSERT_EQ(symlink("/etc/real", (root + "/abs").c_str()), 0);
  ASSERT_EQ(symlink("etc/real", (root + "/rel").c_str()), 0);
  ASSERT_EQ(symlink("../../../../../etc", (root + "/escape").c_str()), 0);
  ASSERT_EQ(symlink("loop", (root + "/data/loop").c_str()), 0);
  char out[4096];
  ASSERT_EQ(fs_secure_join(root.c_str(), "/abs/file", 1, out, sizeof out, &err), 0) << err.msg;
  EXPECT_EQ(std::string(out), root + "/etc/real/file");
  ASSERT_EQ(fs_secure_join(root.c_str(), "/rel/x", 1, out, sizeof out, &err), 0);
  EXPECT_EQ(std::string(out), root + "/etc/real/x");
  ASSERT_EQ(fs_secure_join(root.c_str(), "/escape/passwd", 1, out, sizeof out, &err), 0);
  EXPECT_EQ(std::string(out), root + "/etc/passwd");  // not the guest's /etc
  ASSERT_EQ(fs_secure_join(root.c_str(), "/../../etc/hosts", 1, out, sizeof out, &err), 0);
  EXPECT_EQ(std::string(out), root + "/etc/hosts");
  ASSERT_EQ(fs_secure_join(root.c_str(), "/abs", 0, out, sizeof out, &err), 0);
  EXPECT_EQ(std::string(out), root + "/abs");  // last component kept
  ASSERT_EQ(fs_secure_join(root.c_str(), "/abs", 1, out, sizeof out, &err), 0);
  EXPECT_EQ(std::string(out), root + "/etc/real");
  ASSERT_EQ(fs_secure_join(root.c_str(), "/", 1, out, sizeof out, &err), 0);
  EXPECT_EQ(std::string(out), root);
  EXPECT_EQ(fs_secure_join(root.c_str(), "/data/loop/x", 1, out, sizeof out, &err), -1);
  EXPECT_EQ(fs_secure_join(root.c_str(), "relative", 1, out, sizeof out, &err), -1);
  ASSERT_EQ(fs_secure_join("/", "/etc/./hosts", 1, out, sizeof out, &err), 0);
  EXPECT_STREQ(out, "/etc/hosts");
}
