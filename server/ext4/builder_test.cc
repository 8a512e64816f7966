// The rootfs builder against layers the tests write: OCI semantics, every
// file type and attribute, large and sparse files, large directories,
// sizing and atomic output. Every image built is checked with e2fsck -fn
// and read back with libext2fs.
#include <dirent.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "gtest/gtest.h"
#include "server/ext4/test_util.h"

using namespace rfs_test;

class Builder : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = TempDir(); }
  std::string P(const std::string& name) { return dir_ + "/" + name; }
  // Builds, asserts success and a clean e2fsck, opens the image.
  std::unique_ptr<Img> Ok(const std::vector<std::string>& layers,
                          const rfs_options* o = nullptr) {
    std::string out = P("img" + std::to_string(n_++) + ".ext4");
    std::string e = Build(layers, out, o);
    EXPECT_EQ(e, "");
    if (!e.empty()) return nullptr;
    EXPECT_EQ(Fsck(out), "");
    auto img = std::make_unique<Img>(out);
    EXPECT_TRUE(img->ok());
    return img;
  }
  std::string dir_;
  int n_ = 0;
};

TEST_F(Builder, AllFileTypesAndMetadata) {
  Meta file = M(0644, 1000, 1000);
  file.mtime = 1234567890;
  file.mtime_ns = 123456789;
  Meta suid = M(04755, 0, 0);
  Meta sgid = M(02755, 0, 50);
  Meta sticky = M(01777, 0, 0);
  Meta big_ids = M(0600, 4000000000LL, 3000000000LL);
  Meta future = M(0644);
  future.mtime = 4102444800LL;  // 2100-01-01: needs ext4's epoch bits
  Meta past = M(0644);
  past.mtime = -86400;  // 1969-12-31
  std::string long_target(300, 't');
  {
    Tar t(P("l1.tar"));
    t.Dir("./", M(0755))
        .Dir("bin")
        .File("bin/prog", "#!/bin/sh\necho hi\n", suid)
        .File("bin/sgid", "x", sgid)
        .Dir("tmp", sticky)
        .File("etc/file", "content", file)
        .File("empty", "")
        .File("owned", "o", big_ids)
        .File("future", "f", future)
        .File("past", "p", past)
        .Symlink("short", "bin/prog")
        .Symlink("long", long_target)
        .Hardlink("bin/prog2", "bin/prog")
        .Dev("dev/null", AE_IFCHR, 1, 3, 0666)
        .Dev("dev/sda", AE_IFBLK, 8, 0, 0660)
        .Dev("dev/bigdev", AE_IFCHR, 300, 70000, 0600)
        .Fifo("run/fifo");
  }
  auto img = Ok({P("l1.tar")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Mode("bin/prog"), 0104755u);
  EXPECT_EQ(img->Mode("bin/sgid"), 0102755u);
  EXPECT_EQ(img->Gid("bin/sgid"), 50u);
  EXPECT_EQ(img->Mode("tmp"), 041777u);
  EXPECT_EQ(img->Read("bin/prog"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(img->Read("etc/file"), "content");
  EXPECT_EQ(img->Uid("etc/file"), 1000u);
  EXPECT_EQ(img->Mtime("etc/file"), 1234567890);
  EXPECT_EQ(img->Inode("etc/file").i_mtime_extra >> 2, 123456789u);
  EXPECT_EQ(img->Mtime("future"), 4102444800LL);
  EXPECT_EQ(img->Mtime("past"), -86400);
  EXPECT_EQ(img->Uid("owned"), 4000000000u);
  EXPECT_EQ(img->Gid("owned"), 3000000000u);
  EXPECT_EQ(img->Size("empty"), 0u);
  EXPECT_EQ(img->Mode("empty"), 0100644u);
  EXPECT_EQ(img->Link("short"), "bin/prog");
  EXPECT_EQ(img->Mode("short"), 0120777u);
  EXPECT_EQ(img->Link("long"), long_target);
  EXPECT_EQ(img->Ino("bin/prog2"), img->Ino("bin/prog"));
  EXPECT_EQ(img->Links("bin/prog"), 2u);
  EXPECT_EQ(img->Mode("dev/null"), 020666u);
  EXPECT_EQ(img->Inode("dev/null").i_block[0], 0x0103u);
  EXPECT_EQ(img->Mode("dev/sda"), 060660u);
  // New encoding for numbers past 8 bits: minor low byte, major, minor high.
  EXPECT_EQ(img->Inode("dev/bigdev").i_block[1],
            (70000u & 0xff) | (300u << 8) | ((70000u & ~0xffu) << 12));
  EXPECT_EQ(img->Mode("run/fifo"), 010644u);
  EXPECT_TRUE(img->Exists("lost+found"));
  // Implicit parents ("etc" has no entry of its own) are 0755 directories.
  EXPECT_EQ(img->Mode("etc"), 040755u);
}

TEST_F(Builder, XattrsIncludingCapabilities) {
  // security.capability v2: CAP_NET_BIND_SERVICE permitted+effective.
  std::string cap("\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  Meta m;
  m.xattrs = {{"security.capability", cap}, {"user.small", "v"}};
  Meta big;
  big.xattrs = {{"user.big", std::string(3000, 'b')}, {"trusted.t", "x"}};
  Meta dir = M(0755);
  dir.xattrs = {{"user.dir", "d"}};
  {
    Tar t(P("l1.tar"));
    t.File("ping", "elf", m).File("bigattrs", "", big).Dir("d", dir);
  }
  auto img = Ok({P("l1.tar")});
  ASSERT_TRUE(img);
  auto x = img->Xattrs("ping");
  EXPECT_EQ(x["security.capability"], cap);
  EXPECT_EQ(x["user.small"], "v");
  auto b = img->Xattrs("bigattrs");  // needs an xattr block
  EXPECT_TRUE(b["user.big"] == std::string(3000, 'b'));
  EXPECT_EQ(b["trusted.t"], "x");
  EXPECT_NE(img->Inode("bigattrs").i_file_acl, 0u);
  EXPECT_EQ(img->Xattrs("d")["user.dir"], "d");
}

TEST_F(Builder, XattrsTooLargeAreRejectedNamingTheEntry) {
  Meta big;
  big.xattrs = {{"user.huge", std::string(20000, 'h')}};
  {
    Tar t(P("l1.tar"));
    t.File("huge", "", big);
  }
  vs_code code;
  std::string e = Build({P("l1.tar")}, P("out.ext4"), nullptr, &code);
  EXPECT_NE(e.find("/huge"), std::string::npos) << e;
  EXPECT_EQ(code, VS_INVALID_ARGUMENT);
  EXPECT_NE(access(P("out.ext4").c_str(), F_OK), 0);
}

TEST_F(Builder, CompressionsAndMediaTypes) {
  for (std::string f : {"", "gzip", "zstd"}) {
    std::string p = P("l-" + f + ".tar");
    {
      Tar t(p, f);
      t.File("f-" + f, "data " + f);
    }
  }
  auto img = Ok({P("l-.tar"), P("l-gzip.tar"), P("l-zstd.tar")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Read("f-"), "data ");
  EXPECT_EQ(img->Read("f-gzip"), "data gzip");
  EXPECT_EQ(img->Read("f-zstd"), "data zstd");

  rfs_compression c;
  vs_err err = {};
  ASSERT_EQ(rfs_media_type_compression("application/vnd.oci.image.layer.v1.tar+zstd", &c, &err), 0);
  EXPECT_EQ(c, RFS_COMPRESSION_ZSTD);
  ASSERT_EQ(rfs_media_type_compression("application/vnd.docker.image.rootfs.diff.tar.gzip", &c, &err), 0);
  EXPECT_EQ(c, RFS_COMPRESSION_GZIP);
  ASSERT_EQ(rfs_media_type_compression("application/vnd.oci.image.layer.v1.tar", &c, &err), 0);
  EXPECT_EQ(c, RFS_COMPRESSION_NONE);
  EXPECT_EQ(rfs_media_type_compression("application/vnd.oci.image.layer.v1.tar+encrypted", &c, &err), -1);
  EXPECT_EQ(err.code, VS_UNIMPLEMENTED);

  // A media type is used through rfs_build as well.
  rfs_layer l = {P("l-zstd.tar").c_str(), "application/vnd.oci.image.layer.v1.tar+zstd",
                 RFS_COMPRESSION_AUTO, nullptr};
  std::string lp = P("l-zstd.tar");
  l.path = lp.c_str();
  std::string out = P("mt.ext4");
  vs_err e2 = {};
  ASSERT_EQ(rfs_build(&l, 1, out.c_str(), nullptr, nullptr, &e2), 0) << e2.msg;
  EXPECT_EQ(Fsck(out), "");
}

TEST_F(Builder, WhiteoutsAndOpaqueDirectories) {
  {
    Tar t(P("l1.tar"));
    t.Dir("a").File("a/keep", "k").File("a/gone", "g").Dir("a/sub").File("a/sub/deep", "d")
        .Dir("o").File("o/old1", "1").Dir("o/olddir").File("o/olddir/x", "x")
        .Dir("o/merge").File("o/merge/lower", "l")
        .File("f", "f");
  }
  {
    Tar t(P("l2.tar"));
    t.Whiteout("a/.wh.gone")
        .Whiteout("a/.wh.sub")          // a whole directory
        .Whiteout("a/.wh.nonexistent")  // nothing to hide: fine
        .Whiteout("f/.wh.x")            // under a file: hides nothing (OCI, umoci)
        .Dir("o")
        .File("o/.wh..wh..opq", "")
        .File("o/new", "n")
        .Dir("o/merge")  // same layer: not merged with the lower o/merge
        .File("o/merge/upper", "u")
        .File("o/.wh..wh.plnk", "");  // AUFS bookkeeping: ignored
  }
  auto img = Ok({P("l1.tar"), P("l2.tar")});
  ASSERT_TRUE(img);
  EXPECT_TRUE(img->Exists("a/keep"));
  EXPECT_FALSE(img->Exists("a/gone"));
  EXPECT_FALSE(img->Exists("a/sub"));
  EXPECT_FALSE(img->Exists("a/.wh.gone"));
  auto o = img->List("o");
  std::sort(o.begin(), o.end());
  EXPECT_EQ(o, (std::vector<std::string>{"merge", "new"}));
  EXPECT_EQ(img->List("o/merge"), (std::vector<std::string>{"upper"}));
  EXPECT_TRUE(img->Exists("f"));
}

TEST_F(Builder, WhiteoutInSameLayerDoesNotHideThatLayersEntry) {
  {
    Tar t(P("l1.tar"));
    t.File("x", "old");
  }
  {
    Tar t(P("l2.tar"));
    t.File("x", "new").Whiteout(".wh.x");  // entry first, whiteout after
  }
  auto img = Ok({P("l1.tar"), P("l2.tar")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Read("x"), "new");
}

TEST_F(Builder, TypeChangesAcrossLayers) {
  {
    Tar t(P("l1.tar"));
    t.File("f2d", "file").Dir("d2f").File("d2f/child", "c").File("f2l", "file")
        .Symlink("l2d", "target").Dir("d2l").File("d2l/c", "c").Dir("merge", M(0700))
        .File("merge/lower", "l");
  }
  Meta mm = M(0750, 7, 8);
  {
    Tar t(P("l2.tar"));
    t.Dir("f2d").File("f2d/inside", "i").File("d2f", "now a file").Symlink("f2l", "elsewhere")
        .Dir("l2d").File("l2d/x", "x").Symlink("d2l", "/tmp").Dir("merge", mm)
        .File("merge/upper", "u");
  }
  auto img = Ok({P("l1.tar"), P("l2.tar")});
  ASSERT_TRUE(img);
  EXPECT_TRUE(S_ISDIR(img->Mode("f2d")));
  EXPECT_EQ(img->Read("f2d/inside"), "i");
  EXPECT_TRUE(S_ISREG(img->Mode("d2f")));
  EXPECT_EQ(img->Read("d2f"), "now a file");
  EXPECT_TRUE(S_ISLNK(img->Mode("f2l")));
  EXPECT_EQ(img->Link("f2l"), "elsewhere");
  EXPECT_TRUE(S_ISDIR(img->Mode("l2d")));
  EXPECT_TRUE(S_ISLNK(img->Mode("d2l")));
  EXPECT_EQ(img->Link("d2l"), "/tmp");
  // Directories merge: both children, the newer metadata.
  auto m = img->List("merge");
  std::sort(m.begin(), m.end());
  EXPECT_EQ(m, (std::vector<std::string>{"lower", "upper"}));
  EXPECT_EQ(img->Mode("merge"), 040750u);
  EXPECT_EQ(img->Uid("merge"), 7u);
}

TEST_F(Builder, HardlinksAcrossLayers) {
  {
    Tar t(P("l1.tar"));
    t.File("a", "shared").Hardlink("b", "a").Hardlink("c", "a").Symlink("s", "a")
        .File("r1", "orig").Hardlink("r2", "r1");
  }
  {
    Tar t(P("l2.tar"));
    t.Hardlink("d", "a")       // to a file of an earlier layer
        .Whiteout(".wh.b")     // whiteout of one link keeps the others
        .Hardlink("s2", "s")   // to a symlink
        .File("r1", "replaced");  // replacing one name leaves the other
  }
  auto img = Ok({P("l1.tar"), P("l2.tar")});
  ASSERT_TRUE(img);
  EXPECT_FALSE(img->Exists("b"));
  ext2_ino_t a = img->Ino("a");
  EXPECT_EQ(img->Ino("c"), a);
  EXPECT_EQ(img->Ino("d"), a);
  EXPECT_EQ(img->Links("a"), 3u);
  EXPECT_EQ(img->Read("d"), "shared");
  EXPECT_EQ(img->Ino("s2"), img->Ino("s"));
  EXPECT_EQ(img->Links("s"), 2u);
  EXPECT_EQ(img->Read("r1"), "replaced");
  EXPECT_EQ(img->Read("r2"), "orig");
  EXPECT_NE(img->Ino("r1"), img->Ino("r2"));
  EXPECT_EQ(img->Links("r2"), 1u);
}

TEST_F(Builder, LongNames) {
  std::string comp255(255, 'n');
  std::string deep;
  for (int i = 0; i < 40; i++) deep += "directory-" + std::to_string(i) + "/";
  {
    Tar t(P("pax.tar"));
    t.File(comp255, "255").File(deep + "leaf", "deep").Symlink("lnk", deep + "leaf");
  }
  {
    Tar t(P("gnu.tar"), "", "gnu");
    t.File("gnu/" + std::string(200, 'g'), "gnu long").Symlink("gnu/l", std::string(150, 'x'));
  }
  auto img = Ok({P("pax.tar"), P("gnu.tar")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Read(comp255), "255");
  EXPECT_EQ(img->Read(deep + "leaf"), "deep");
  EXPECT_EQ(img->Link("lnk"), deep + "leaf");
  EXPECT_EQ(img->Read("gnu/" + std::string(200, 'g')), "gnu long");
  EXPECT_EQ(img->Link("gnu/l"), std::string(150, 'x'));
}

TEST_F(Builder, HugeDirectoryGetsAnHtreeIndex) {
  const int n = 100000;
  // Names long enough that the leaves outnumber one index block's 507
  // entries: the index gets a second level.
  const std::string pre = "entry-with-a-name-long-enough-for-two-levels-";
  {
    Tar t(P("l1.tar"), "gzip");
    t.Dir("many");
    for (int i = 0; i < n; i++) t.File("many/" + pre + std::to_string(i), "");
    t.Dir("medium");
    for (int i = 0; i < 500; i++) t.Symlink("medium/s" + std::to_string(i), "x");
  }
  auto img = Ok({P("l1.tar")});
  ASSERT_TRUE(img);
  EXPECT_TRUE(img->Inode("many").i_flags & EXT2_INDEX_FL);
  EXPECT_TRUE(img->Inode("medium").i_flags & EXT2_INDEX_FL);
  EXPECT_EQ(img->List("many").size(), (size_t)n);
  // Lookups go through the index (ext2fs_namei uses linear search; the
  // kernel uses the index, which e2fsck has verified above).
  for (int i : {0, 1, 4242, 99999})
    EXPECT_TRUE(img->Exists("many/" + pre + std::to_string(i))) << i;
  // Two index levels: the root's indirect_levels byte (offset 24 + 6).
  ext2_inode_large in = img->Inode("many");
  blk64_t root_blk = 0;
  ASSERT_EQ(ext2fs_bmap2(img->fs(), img->Ino("many"), (ext2_inode*)&in, nullptr, 0, 0,
                         nullptr, &root_blk), 0);
  std::vector<char> blk(4096);
  ASSERT_EQ(io_channel_read_blk64(img->fs()->io, root_blk, 1, blk.data()), 0);
  EXPECT_EQ(blk[30], 1);
  // All distinct inodes, all in the one directory.
  std::set<std::string> names;
  for (auto& s : img->List("many")) names.insert(s);
  EXPECT_EQ(names.size(), (size_t)n);
}

TEST_F(Builder, LargeSparseFileAndZeroBlocks) {
  const int64_t size = 5LL << 30;  // 5 GiB, > 4 GiB
  std::string head(8192, 'h'), mid(5000, 'm'), tail(100, 't');
  std::string with_zeros = std::string(4096, 'a') + std::string(8192, '\0') + "end";
  {
    Tar t(P("l1.tar"), "gzip");
    t.Sparse("sparse", size, {{0, head}, {3LL << 30, mid}, {size - 100, tail}});
    t.File("zeros", with_zeros);
  }
  auto img = Ok({P("l1.tar")});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->Size("sparse"), (uint64_t)size);
  EXPECT_TRUE(img->ReadAt("sparse", 0, head.size()) == head);
  EXPECT_TRUE(img->ReadAt("sparse", 3LL << 30, mid.size()) == mid);
  EXPECT_EQ(img->ReadAt("sparse", size - 100, 100), tail);
  EXPECT_EQ(img->ReadAt("sparse", 1LL << 30, 4), std::string(4, '\0'));
  // Holes stay holes: a handful of blocks, not 5 GiB.
  ext2_inode_large in = img->Inode("sparse");
  EXPECT_LT(ext2fs_get_stat_i_blocks(img->fs(), (ext2_inode*)&in), 100u);
  EXPECT_TRUE(img->Read("zeros") == with_zeros);
  in = img->Inode("zeros");
  EXPECT_EQ(ext2fs_get_stat_i_blocks(img->fs(), (ext2_inode*)&in), 2u * 8);
  // The image file itself stays sparse.
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/img0.ext4").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 200LL << 20);
}

TEST_F(Builder, ManyExtentsNeedATree) {
  // Alternating data and holes: one extent per data block, far more than
  // the four an inode holds.
  std::vector<std::pair<int64_t, std::string>> parts;
  for (int i = 0; i < 2000; i++) parts.push_back({(int64_t)i * 8192, std::string(4096, 'a' + i % 26)});
  {
    Tar t(P("l1.tar"));
    t.Sparse("frag", 2000LL * 8192, parts);
  }
  auto img = Ok({P("l1.tar")});
  ASSERT_TRUE(img);
  for (int i : {0, 1, 999, 1999})
    EXPECT_TRUE(img->ReadAt("frag", (uint64_t)i * 8192, 4096) == parts[i].second) << i;
  EXPECT_EQ(img->ReadAt("frag", 4096, 8), std::string(8, '\0'));
}

TEST_F(Builder, SizeOptions) {
  {
    Tar t(P("l1.tar"));
    t.File("data", std::string(3 << 20, 'd'));
  }
  rfs_options o;
  rfs_options_init(&o);
  o.size_bytes = 64 << 20;
  auto img = Ok({P("l1.tar")}, &o);
  ASSERT_TRUE(img);
  EXPECT_EQ(ext2fs_blocks_count(img->fs()->super) * 4096, 64ull << 20);

  rfs_options_init(&o);
  o.free_bytes = 100 << 20;
  img = Ok({P("l1.tar")}, &o);
  ASSERT_TRUE(img);
  EXPECT_GE(ext2fs_free_blocks_count(img->fs()->super) * 4096, 100ull << 20);
  EXPECT_LT(ext2fs_blocks_count(img->fs()->super) * 4096, 200ull << 20);
  EXPECT_GE(img->fs()->super->s_free_inodes_count, 1024u);

  rfs_options_init(&o);
  o.journal = 0;
  o.label = "rootfs";
  img = Ok({P("l1.tar")}, &o);
  ASSERT_TRUE(img);
  EXPECT_FALSE(ext2fs_has_feature_journal(img->fs()->super));
  EXPECT_STREQ((const char*)img->fs()->super->s_volume_name, "rootfs");

  // Too small: an error, and no file.
  rfs_options_init(&o);
  o.size_bytes = 2 << 20;
  vs_code code;
  std::string e = Build({P("l1.tar")}, P("small.ext4"), &o, &code);
  EXPECT_EQ(code, VS_INVALID_ARGUMENT) << e;
  EXPECT_NE(e.find("too small"), std::string::npos) << e;
  EXPECT_NE(access(P("small.ext4").c_str(), F_OK), 0);
}

TEST_F(Builder, EmptyInputsMakeAnEmptyRootfs) {
  WriteRaw(P("empty.blob"), "");
  {
    Tar t(P("empty.tar.gz"), "gzip");
  }
  auto img = Ok({});
  ASSERT_TRUE(img);
  EXPECT_EQ(img->List("/"), (std::vector<std::string>{"lost+found"}));
  img = Ok({P("empty.blob"), P("empty.tar.gz")});
  ASSERT_TRUE(img);
}

TEST_F(Builder, FailedBuildLeavesNothingAndKeepsExistingOutput) {
  {
    Tar t(P("bad.tar"));
    t.File("ok", "fine").Hardlink("broken", "missing");
  }
  WriteRaw(P("out.ext4"), "previous");
  vs_code code;
  std::string e = Build({P("bad.tar")}, P("out.ext4"), nullptr, &code);
  EXPECT_NE(e, "");
  FILE* f = fopen(P("out.ext4").c_str(), "rb");
  ASSERT_TRUE(f);
  char buf[16] = {0};
  EXPECT_EQ(fread(buf, 1, sizeof buf, f), 8u);
  fclose(f);
  EXPECT_STREQ(buf, "previous");
  // No temporary files left behind.
  DIR* d = opendir(dir_.c_str());
  std::vector<std::string> names;
  while (dirent* de = readdir(d))
    if (de->d_name[0] != '.') names.push_back(de->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"bad.tar", "out.ext4"}));
}

TEST_F(Builder, WritableCopy) {
  {
    Tar t(P("l1.tar"));
    t.File("f", "x");
  }
  auto img = Ok({P("l1.tar")});
  ASSERT_TRUE(img);
  vs_err err = {};
  std::string src = P("img0.ext4"), dst = P("copy.ext4");
  ASSERT_EQ(rfs_copy_writable(src.c_str(), dst.c_str(), &err), 0) << err.msg;
  EXPECT_EQ(Fsck(dst), "");
  struct stat a, b;
  stat(src.c_str(), &a);
  stat(dst.c_str(), &b);
  EXPECT_EQ(a.st_size, b.st_size);
  EXPECT_LE(b.st_blocks, a.st_blocks + 64);  // holes kept
  EXPECT_EQ(rfs_copy_writable(src.c_str(), dst.c_str(), &err), -1);
  EXPECT_EQ(err.code, VS_ALREADY_EXISTS);
}

TEST_F(Builder, SpoolOnAnotherFilesystem) {
  // /dev/shm is tmpfs: the spool -> image copy cannot use copy_file_range
  // across filesystems everywhere and falls back to read/write.
  struct stat st;
  if (stat("/dev/shm", &st) != 0) GTEST_SKIP() << "no /dev/shm";
  std::string data(300000, 'q');
  for (size_t i = 0; i < data.size(); i += 7) data[i] = (char)i;
  {
    Tar t(P("l1.tar"));
    t.File("f", data);
  }
  rfs_options o;
  rfs_options_init(&o);
  o.tmp_dir = "/dev/shm";
  auto img = Ok({P("l1.tar")}, &o);
  ASSERT_TRUE(img);
  EXPECT_TRUE(img->Read("f") == data);
}

TEST_F(Builder, Qcow2Overlay) {
  {
    Tar t(P("l1.tar"));
    t.File("f", "x");
  }
  auto img = Ok({P("l1.tar")});
  ASSERT_TRUE(img);
  vs_err err = {};
  std::string src = P("img0.ext4"), dst = P("overlay.qcow2");
  ASSERT_EQ(rfs_create_overlay(src.c_str(), dst.c_str(), &err), 0) << err.msg;
  FILE* f = fopen(dst.c_str(), "rb");
  ASSERT_TRUE(f);
  char magic[4];
  ASSERT_EQ(fread(magic, 1, 4, f), 4u);
  fclose(f);
  EXPECT_EQ(std::string(magic, 4), std::string("QFI\xfb", 4));
  // qemu-img sees the backing image through the overlay.
  std::string cmd = "qemu-img info --output=json '" + dst + "' | grep -q '\"backing-filename\": \"" + src + "\"'";
  EXPECT_EQ(system(cmd.c_str()), 0);
  EXPECT_EQ(rfs_create_overlay(src.c_str(), dst.c_str(), &err), -1);
  EXPECT_EQ(err.code, VS_ALREADY_EXISTS);
}

TEST_F(Builder, CancelStopsTheBuild) {
  {
    Tar t(P("l1.tar"));
    t.File("f", "x");
  }
  rfs_options o;
  rfs_options_init(&o);
  o.cancelled = [](void*) { return 1; };
  vs_code code;
  Build({P("l1.tar")}, P("c.ext4"), &o, &code);
  EXPECT_EQ(code, VS_CANCELLED);
  EXPECT_NE(access(P("c.ext4").c_str(), F_OK), 0);
}

namespace {
// "sha256:<hex>" of what cmd prints (the uncompressed layer).
std::string Sha256Of(const std::string& cmd) {
  FILE* f = popen(cmd.c_str(), "r");
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
  char buf[65536];
  size_t n;
  while (f && (n = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(md, buf, n);
  if (f) pclose(f);
  unsigned char d[32];
  EVP_DigestFinal_ex(md, d, nullptr);
  EVP_MD_CTX_free(md);
  std::string out = "sha256:";
  for (unsigned char c : d) {
    char h[3];
    snprintf(h, sizeof h, "%02x", c);
    out += h;
  }
  return out;
}
}  // namespace

TEST_F(Builder, DiffIdsAreVerifiedForEveryCompression) {
  for (std::string f : {"", "gzip", "zstd"}) {
    std::string p = P("d-" + f + ".tar");
    {
      Tar t(p, f);
      t.File("f", std::string(100000, 'x') + f);
    }
    std::string cat = f.empty() ? "cat " : f == "gzip" ? "gzip -dc " : "zstd -qdc ";
    std::string id = Sha256Of(cat + p);
    rfs_layer l = {p.c_str(), nullptr, RFS_COMPRESSION_AUTO, id.c_str()};
    std::string out = P("d-" + f + ".ext4");
    vs_err e = {};
    EXPECT_EQ(rfs_build(&l, 1, out.c_str(), nullptr, nullptr, &e), 0) << f << ": " << e.msg;
    // Another diff_id: DATA_LOSS naming the layer, and no image.
    std::string wrong = "sha256:" + std::string(64, '0');
    l.diff_id = wrong.c_str();
    std::string bad = P("d-bad-" + f + ".ext4");
    EXPECT_EQ(rfs_build(&l, 1, bad.c_str(), nullptr, nullptr, &e), -1) << f;
    EXPECT_EQ(e.code, VS_DATA_LOSS) << e.msg;
    EXPECT_NE(std::string(e.msg).find("d-" + f + ".tar"), std::string::npos) << e.msg;
    EXPECT_NE(access(bad.c_str(), F_OK), 0);
  }
}
