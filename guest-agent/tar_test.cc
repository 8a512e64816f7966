// The tar writer and extractor against GNU tar.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

extern "C" {
#include "guest-agent/tar.h"
}

static std::string dir;

static int Sh(const std::string &cmd) { return system(cmd.c_str()); }

static std::string Read(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

static int FileSink(void *ctx, const void *d, size_t n, vs_err *) {
  return fwrite(d, 1, n, (FILE *)ctx) == n ? 0 : -1;
}

class Tar : public testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/tartest-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    dir = t;
    std::string longname(150, 'n');
    ASSERT_EQ(Sh("mkdir -p " + dir + "/src/tree/sub/" + longname.substr(0, 60) + "/" + longname.substr(60)), 0);
    std::ofstream(dir + "/src/tree/a.txt") << "alpha";
    std::ofstream(dir + "/src/tree/sub/b.bin") << std::string(300000, 'b');
    std::ofstream(dir + "/src/tree/sub/" + longname.substr(0, 60) + "/" + longname.substr(60) + "/deep.txt") << "deep";
    ASSERT_EQ(symlink("a.txt", (dir + "/src/tree/link").c_str()), 0);
    chmod((dir + "/src/tree/a.txt").c_str(), 0640);
  }
  void TearDown() override { Sh("rm -rf " + dir); }
};

TEST_F(Tar, WrittenArchiveExtractsWithGnuTar) {
  std::string out = dir + "/out.tar";
  FILE *f = fopen(out.c_str(), "wb");
  vs_err err;
  ASSERT_EQ(tar_write_path((dir + "/src/tree").c_str(), FileSink, f, &err), 0) << err.msg;
  fclose(f);
  ASSERT_EQ(Sh("mkdir " + dir + "/x && tar -C " + dir + "/x -xf " + out), 0);
  EXPECT_EQ(Read(dir + "/x/tree/a.txt"), "alpha");
  EXPECT_EQ(Read(dir + "/x/tree/sub/b.bin"), std::string(300000, 'b'));
  std::string longname(150, 'n');
  EXPECT_EQ(Read(dir + "/x/tree/sub/" + longname.substr(0, 60) + "/" + longname.substr(60) + "/deep.txt"), "deep");
  char target[64] = "";
  ASSERT_GT(readlink((dir + "/x/tree/link").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "a.txt");
  struct stat st;
  ASSERT_EQ(stat((dir + "/x/tree/a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  // A single file is archived under its base name.
  f = fopen(out.c_str(), "wb");
  ASSERT_EQ(tar_write_path((dir + "/src/tree/a.txt").c_str(), FileSink, f, &err), 0);
  fclose(f);
  ASSERT_EQ(Sh("tar -tf " + out + " > " + dir + "/list"), 0);
  EXPECT_EQ(Read(dir + "/list"), "a.txt\n");
  // A missing path fails before anything is written (no sink needed).
  EXPECT_EQ(tar_write_path((dir + "/nope").c_str(), FileSink, nullptr, &err), -1);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
}

static int Extract(const std::string &archive, const std::string &dest, vs_err *err,
                   const tar_extract_opts *o = nullptr) {
  int fd = open(archive.c_str(), O_RDONLY);
  int rc = tar_extract_fd(fd, dest.c_str(), o, err);
  close(fd);
  return rc;
}

TEST_F(Tar, ExtractsGnuTarPlainAndGzip) {
  for (std::string z : {"", "z"}) {
    std::string a = dir + "/in.tar" + z;
    ASSERT_EQ(Sh("tar -C " + dir + "/src -c" + z + "f " + a + " tree"), 0);
    std::string d = dir + "/d" + z;
    ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
    vs_err err;
    tar_extract_opts o = {1, 1234, 5678};
    ASSERT_EQ(Extract(a, d, &err, &o), 0) << err.msg;
    EXPECT_EQ(Read(d + "/tree/a.txt"), "alpha");
    EXPECT_EQ(Read(d + "/tree/sub/b.bin"), std::string(300000, 'b'));
    std::string longname(150, 'n');
    EXPECT_EQ(Read(d + "/tree/sub/" + longname.substr(0, 60) + "/" + longname.substr(60) + "/deep.txt"), "deep");
    struct stat st;
    ASSERT_EQ(lstat((d + "/tree/link").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    ASSERT_EQ(stat((d + "/tree/a.txt").c_str(), &st), 0);
    // Ownership only where ids can be set (not in a user-namespace sandbox).
    std::string probe = dir + "/probe";
    std::ofstream(probe) << "";
    if (chown(probe.c_str(), 1234, 5678) == 0) {
      EXPECT_EQ(st.st_uid, 1234u);
      EXPECT_EQ(st.st_gid, 5678u);
    }
    EXPECT_EQ(st.st_mode & 0777, 0640u);
  }
}

TEST_F(Tar, RefusesEscapesCorruptionAndTypeChanges) {
  ASSERT_EQ(Sh("cd " + dir + "/src && tar -cPf " + dir + "/evil.tar --transform 's,^,../,' tree/a.txt"), 0);
  std::string d = dir + "/d";
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  vs_err err;
  EXPECT_EQ(Extract(dir + "/evil.tar", d, &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT) << err.msg;
  std::ofstream(dir + "/junk.tar") << std::string(1024, 'j');
  EXPECT_EQ(Extract(dir + "/junk.tar", d, &err), -1);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  // "tree" exists as a file; the archive has it as a directory.
  std::ofstream(d + "/tree") << "file";
  ASSERT_EQ(Sh("tar -C " + dir + "/src -cf " + dir + "/t.tar tree"), 0);
  EXPECT_EQ(Extract(dir + "/t.tar", d, &err), -1);
  EXPECT_EQ(err.code, VS_ALREADY_EXISTS) << err.msg;
  EXPECT_EQ(Extract(dir + "/t.tar", dir + "/missing", &err), -1);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
}
