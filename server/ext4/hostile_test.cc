// Hostile layers: every case either stays inside the image root or fails
// with an error naming the entry; nothing is ever written outside the
// output file (each test also checks a sentinel directory on the host).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "gtest/gtest.h"
#include "server/ext4/test_util.h"

using namespace rfs_test;

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    outside_ = TempDir();  // an absolute host path layers try to reach
  }
  void TearDown() override {
    // Nothing ever appears outside.
    DIR* d = opendir(outside_.c_str());
    int n = 0;
    while (dirent* de = readdir(d))
      if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    EXPECT_EQ(n, 0) << "something was written to " << outside_;
  }
  std::string P(const std::string& name) { return dir_ + "/" + name; }
  std::unique_ptr<Img> Ok(const std::vector<std::string>& layers,
                          const rfs_options* o = nullptr) {
    std::string out = P("img" + std::to_string(n_++) + ".ext4");
    std::string e = Build(layers, out, o);
    EXPECT_EQ(e, "");
    if (!e.empty()) return nullptr;
    EXPECT_EQ(Fsck(out), "");
    return std::make_unique<Img>(out);
  }
  // Expects failure with `code` and a message containing `needle`.
  void Rejected(const std::vector<std::string>& layers, vs_code code,
                const std::string& needle, const rfs_options* o = nullptr) {
    std::string out = P("rej" + std::to_string(n_++) + ".ext4");
    vs_code c = VS_OK;
    std::string e = Build(layers, out, o, &c);
    EXPECT_EQ(c, code) << e;
    EXPECT_NE(e.find(needle), std::string::npos) << e;
    EXPECT_NE(access(out.c_str(), F_OK), 0) << "output left behind";
  }
  std::string dir_, outside_;
  int n_ = 0;
};

TEST_F(Hostile, DotDotAndAbsolutePathsStayInside) {
  {
    Tar t(P("l1.tar"));
    t.File("../../../../" + outside_.substr(1) + "/dotdot", "x")
        .File(outside_ + "/absolute", "y")
        .File("a/../../b/./c", "z");
  }
  auto img = Ok({P("l1.tar")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Read(outside_.substr(1) + "/dotdot"), "x");
  EXPECT_EQ(img->Read(outside_.substr(1) + "/absolute"), "y");
  EXPECT_EQ(img->Read("b/c"), "z");
}

TEST_F(Hostile, SymlinksPointingOutsideAreResolvedInsideTheRoot) {
  {
    Tar t(P("l1.tar"));
    t.Symlink("abs", outside_)
        .Symlink("rel", "../../../../../../.." + outside_)
        .Symlink("etc", "/real-etc")
        .Dir("real-etc");
  }
  {
    Tar t(P("l2.tar"));
    t.File("abs/through-abs", "1")     // parent is a symlink of layer 1
        .File("rel/through-rel", "2")
        .File("etc/passwd", "3")       // writes through a symlinked dir
        .Hardlink("hl", "etc/passwd");  // link target through the symlink
  }
  auto img = Ok({P("l1.tar"), P("l2.tar")});
  ASSERT_TRUE(img);
  std::string in = outside_.substr(1);
  EXPECT_EQ(img->Read(in + "/through-abs"), "1");
  EXPECT_EQ(img->Read(in + "/through-rel"), "2");
  EXPECT_EQ(img->Read("real-etc/passwd"), "3");
  EXPECT_EQ(img->Ino("hl"), img->Ino("real-etc/passwd"));
  // The symlinks themselves are unchanged.
  EXPECT_EQ(img->Link("abs"), outside_);
  EXPECT_EQ(img->Link("etc"), "/real-etc");
}

TEST_F(Hostile, SymlinkLoopsAreRejected) {
  {
    Tar t(P("l1.tar"));
    t.Symlink("a", "b").Symlink("b", "a").File("a/x", "loop");
  }
  Rejected({P("l1.tar")}, VS_INVALID_ARGUMENT, "too many levels of symbolic links");
}

TEST_F(Hostile, ParentThatIsAFileIsRejected) {
  {
    Tar t(P("l1.tar"));
    t.File("f", "x").File("f/child", "y");
  }
  Rejected({P("l1.tar")}, VS_INVALID_ARGUMENT, "entry \"f/child\"");
}

TEST_F(Hostile, HardlinksToMissingEscapingOrDirectoryTargets) {
  {
    Tar t(P("missing.tar"));
    t.Hardlink("l", "nowhere");
  }
  Rejected({P("missing.tar")}, VS_INVALID_ARGUMENT, "hardlink target \"nowhere\" does not exist");
  {
    Tar t(P("escape.tar"));
    t.Hardlink("l", "../../../../../etc/passwd");
  }
  // Resolved inside the (empty) image: missing, not the host's file.
  Rejected({P("escape.tar")}, VS_INVALID_ARGUMENT, "does not exist");
  {
    Tar t(P("dir.tar"));
    t.Dir("d").Hardlink("l", "d");
  }
  Rejected({P("dir.tar")}, VS_INVALID_ARGUMENT, "is a directory");
  {
    Tar t(P("inside.tar"));
    t.File("etc/passwd", "image's own").Hardlink("l", "../../../etc/passwd");
  }
  auto img = Ok({P("inside.tar")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Ino("l"), img->Ino("etc/passwd"));
}

TEST_F(Hostile, DecompressionBombHitsTheSizeCap) {
  {
    Tar t(P("bomb.tar.gz"), "gzip");
    t.File("zeros", std::string(64 << 20, '\0'));
  }
  struct stat st;
  ASSERT_EQ(stat(P("bomb.tar.gz").c_str(), &st), 0);
  EXPECT_LT(st.st_size, 1 << 20);  // a real bomb: tiny compressed
  rfs_options o;
  rfs_options_init(&o);
  o.max_unpacked_bytes = 16 << 20;
  Rejected({P("bomb.tar.gz")}, VS_RESOURCE_EXHAUSTED, "exceeds the limit", &o);
}

TEST_F(Hostile, ZerosAreHolesHoweverTheDataIsChunked) {
  // gzip'd, after an odd-sized file: libarchive's chunks of the 64 MiB of
  // zeros do not start at 4 KiB boundaries of the file.
  {
    Tar t(P("zeros.tar.gz"), "gzip");
    t.File("odd", std::string(1234, 'o'));
    t.File("zeros", std::string(64 << 20, '\0'));
    t.File("mixed", std::string(5000, '\0') + "x" + std::string(70000, '\0'));
  }
  auto img = Ok({P("zeros.tar.gz")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Size("zeros"), 64u << 20);
  ext2_inode_large in = img->Inode("zeros");
  EXPECT_EQ(ext2fs_get_stat_i_blocks(img->fs(), (ext2_inode *)&in), 0u);
  // One data block (the 'x'), the rest holes; the content is exact.
  in = img->Inode("mixed");
  EXPECT_EQ(ext2fs_get_stat_i_blocks(img->fs(), (ext2_inode *)&in), 8u);
  EXPECT_TRUE(img->Read("mixed") == std::string(5000, '\0') + "x" + std::string(70000, '\0'));
}

TEST_F(Hostile, HostDiskForFileDataIsCapped) {
  std::string noise(3 << 20, '\0');
  for (size_t i = 0; i < noise.size(); i++) noise[i] = (char)(i * 2654435761u >> 13);
  {
    Tar t(P("big.tar"));
    t.File("noise", noise);
  }
  rfs_options o;
  rfs_options_init(&o);
  o.max_data_bytes = 1 << 20;
  Rejected({P("big.tar")}, VS_RESOURCE_EXHAUSTED, "layer 1 (big.tar)", &o);
  Rejected({P("big.tar")}, VS_RESOURCE_EXHAUSTED, "bytes of host disk", &o);
}

TEST_F(Hostile, EntryCountCap) {
  {
    Tar t(P("many.tar"));
    for (int i = 0; i < 200; i++) t.File("f" + std::to_string(i), "");
  }
  rfs_options o;
  rfs_options_init(&o);
  o.max_entries = 100;
  Rejected({P("many.tar")}, VS_RESOURCE_EXHAUSTED, "more than 100 archive entries", &o);
}

TEST_F(Hostile, AbsurdHeaderValues) {
  // Size claims 8 GiB, data is missing: truncated archive.
  WriteRaw(P("size.tar"), UstarHeader("big", '0', "77777777777") + std::string(1024, 'x'));
  Rejected({P("size.tar")}, VS_INVALID_ARGUMENT, "layer 1");
  // Base-256 (binary) negative size.
  std::string h = UstarHeader("neg", '0', "");
  memset(&h[124], 0xff, 12);
  {
    unsigned sum = 0;
    memset(&h[148], ' ', 8);
    for (unsigned char c : h) sum += c;
    char cs[8];
    snprintf(cs, sizeof cs, "%06o", sum);
    memcpy(&h[148], cs, 7);
  }
  WriteRaw(P("neg.tar"), h + std::string(1024, '\0'));
  Rejected({P("neg.tar")}, VS_INVALID_ARGUMENT, "layer 1");
  // Owner past 32 bits (pax allows any number).
  Meta m = M(0644, 1LL << 40, 0);
  {
    Tar t(P("uid.tar"));
    t.File("owned", "x", m);
  }
  Rejected({P("uid.tar")}, VS_INVALID_ARGUMENT, "owner 1099511627776:0 out of range");
  // Device numbers past ext4's encoding.
  {
    Tar t(P("dev.tar"));
    t.Dev("dev", AE_IFCHR, 5000, 1);
  }
  Rejected({P("dev.tar")}, VS_INVALID_ARGUMENT, "device 5000:1 out of range");
  // Name components longer than ext4 allows.
  {
    Tar t(P("name.tar"));
    t.File(std::string(256, 'n'), "x");
  }
  Rejected({P("name.tar")}, VS_INVALID_ARGUMENT, "longer than 255 bytes");
  // Bad header checksum.
  h = UstarHeader("cs", '0', "00000000001");
  h[148] = '7';
  WriteRaw(P("cs.tar"), h + std::string(1024, '\0'));
  Rejected({P("cs.tar")}, VS_INVALID_ARGUMENT, "layer 1");
  // Timestamps far outside ext4's range are clamped, not fatal.
  Meta t1 = M(0644);
  t1.mtime = 1LL << 50;
  Meta t2 = M(0644);
  t2.mtime = -(1LL << 50);
  {
    Tar t(P("time.tar"));
    t.File("late", "x", t1).File("early", "y", t2);
  }
  auto img = Ok({P("time.tar")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Mtime("late"), (1LL << 34) - (1LL << 31) - 1);
  EXPECT_EQ(img->Mtime("early"), -(1LL << 31));
  // Empty symlink target.
  {
    Tar t(P("sym.tar"));
    t.Symlink("s", "");
  }
  Rejected({P("sym.tar")}, VS_INVALID_ARGUMENT, "symlink");
  // A root entry that is not a directory.
  {
    Tar t(P("root.tar"));
    t.File("./", "x");
  }
  Rejected({P("root.tar")}, VS_INVALID_ARGUMENT, "layer 1 (root.tar)");
}

TEST_F(Hostile, GarbageAndTruncatedInputs) {
  std::mt19937 rng(42);
  std::string junk(100000, '\0');
  for (auto& c : junk) c = (char)rng();
  WriteRaw(P("junk"), junk);
  Rejected({P("junk")}, VS_INVALID_ARGUMENT, "layer 1");
  {
    Tar t(P("ok.tar.gz"), "gzip");
    for (int i = 0; i < 50; i++) t.File("f" + std::to_string(i), std::string(10000, 'a' + i % 26));
  }
  std::ifstream in(P("ok.tar.gz"), std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  WriteRaw(P("trunc.tar.gz"), gz.substr(0, gz.size() / 2));
  Rejected({P("ok.tar.gz"), P("trunc.tar.gz")}, VS_INVALID_ARGUMENT, "layer 2");
  Rejected({P("missing-file")}, VS_NOT_FOUND, "missing-file");
}
