// Test helpers for the rootfs builder: layer tars written with libarchive
// (every archive a test uses is built by the test), and an ext4 reader on
// libext2fs plus the real e2fsck, to check what was built.
#ifndef VESSEL_SERVER_EXT4_TEST_UTIL_H
#define VESSEL_SERVER_EXT4_TEST_UTIL_H

#include <archive.h>
#include <archive_entry.h>
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "server/ext4/ext4.h"

namespace rfs_test {

struct Meta {
  int mode = 0644;
  int64_t uid = 0, gid = 0;
  int64_t mtime = 1700000000;
  long mtime_ns = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};
Meta M(int mode, int64_t uid = 0, int64_t gid = 0);

// A layer tar. filter: "" (plain), "gzip" or "zstd"; format: "pax" or "gnu".
class Tar {
 public:
  explicit Tar(const std::string& path, const std::string& filter = "",
               const std::string& format = "pax");
  ~Tar();
  void Close();
  Tar& Dir(const std::string& p, Meta m = M(0755));
  Tar& File(const std::string& p, const std::string& data, Meta m = Meta());
  Tar& Symlink(const std::string& p, const std::string& target);
  Tar& Hardlink(const std::string& p, const std::string& target);
  Tar& Dev(const std::string& p, int type, unsigned major, unsigned minor,
           int mode = 0600);
  Tar& Fifo(const std::string& p, int mode = 0644);
  // A sparse file of `size` bytes with data at the given offsets.
  Tar& Sparse(const std::string& p, int64_t size,
              const std::vector<std::pair<int64_t, std::string>>& data);
  Tar& Whiteout(const std::string& p) { return File(p, ""); }
  const std::string& path() const { return path_; }

 private:
  void Add(archive_entry* e, const std::string& data);
  std::string path_;
  struct archive* a_ = nullptr;
};

// Writes raw bytes (hand-made tar headers and such) to a file.
void WriteRaw(const std::string& path, const std::string& bytes);
// A 512-byte ustar header with a valid checksum; fields as given.
std::string UstarHeader(const std::string& name, char type,
                        const std::string& size_octal,
                        const std::string& linkname = "",
                        const std::string& mode = "0000644",
                        const std::string& uid = "0000000");

class Img {
 public:
  explicit Img(const std::string& path);
  ~Img();
  bool ok() const { return fs_ != nullptr; }
  ext2_filsys fs() const { return fs_; }
  ext2_ino_t Ino(const std::string& path) const;  // 0: missing
  bool Exists(const std::string& path) const { return Ino(path) != 0; }
  ext2_inode_large Inode(const std::string& path) const;
  uint32_t Mode(const std::string& path) const { return Inode(path).i_mode; }
  uint32_t Uid(const std::string& path) const;
  uint32_t Gid(const std::string& path) const;
  uint64_t Size(const std::string& path) const;
  uint32_t Links(const std::string& path) const { return Inode(path).i_links_count; }
  std::string Read(const std::string& path) const;
  std::string ReadAt(const std::string& path, uint64_t off, size_t len) const;
  std::string Link(const std::string& path) const;
  std::vector<std::string> List(const std::string& path) const;
  std::map<std::string, std::string> Xattrs(const std::string& path) const;
  int64_t Mtime(const std::string& path) const;

 private:
  ext2_filsys fs_ = nullptr;
};

// Runs `e2fsck -fn` on the image; returns "" when clean, else its output.
std::string Fsck(const std::string& image);

// A fresh directory under TEST_TMPDIR.
std::string TempDir();

// rfs_build over layer paths; returns the error ("" on success).
std::string Build(const std::vector<std::string>& layers, const std::string& out,
                  const rfs_options* opts = nullptr, vs_code* code = nullptr);

}  // namespace rfs_test

#endif
