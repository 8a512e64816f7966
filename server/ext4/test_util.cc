#include "server/ext4/test_util.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <algorithm>
#include <stdexcept>

namespace rfs_test {

Meta M(int mode, int64_t uid, int64_t gid) {
  Meta m;
  m.mode = mode;
  m.uid = uid;
  m.gid = gid;
  return m;
}

Tar::Tar(const std::string& path, const std::string& filter,
         const std::string& format)
    : path_(path) {
  a_ = archive_write_new();
  if (format == "gnu")
    archive_write_set_format_gnutar(a_);
  else
    archive_write_set_format_pax(a_);
  if (filter == "gzip") archive_write_add_filter_gzip(a_);
  if (filter == "zstd") archive_write_add_filter_zstd(a_);
  if (archive_write_open_filename(a_, path.c_str()) != ARCHIVE_OK)
    throw std::runtime_error("open tar " + path);
}

Tar::~Tar() { Close(); }

void Tar::Close() {
  if (!a_) return;
  archive_write_close(a_);
  archive_write_free(a_);
  a_ = nullptr;
}

static archive_entry* Entry(const std::string& p, int type, const Meta& m) {
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, p.c_str());
  archive_entry_set_filetype(e, type);
  archive_entry_set_perm(e, m.mode);
  archive_entry_set_uid(e, m.uid);
  archive_entry_set_gid(e, m.gid);
  archive_entry_set_mtime(e, m.mtime, m.mtime_ns);
  for (auto& x : m.xattrs)
    archive_entry_xattr_add_entry(e, x.first.c_str(), x.second.data(),
                                  x.second.size());
  return e;
}

void Tar::Add(archive_entry* e, const std::string& data) {
  if (archive_write_header(a_, e) != ARCHIVE_OK)
    throw std::runtime_error(std::string("tar header: ") +
                             archive_error_string(a_));
  if (!data.empty() &&
      archive_write_data(a_, data.data(), data.size()) != (la_ssize_t)data.size())
    throw std::runtime_error("tar data");
  archive_entry_free(e);
}

Tar& Tar::Dir(const std::string& p, Meta m) {
  Add(Entry(p, AE_IFDIR, m), "");
  return *this;
}

Tar& Tar::File(const std::string& p, const std::string& data, Meta m) {
  archive_entry* e = Entry(p, AE_IFREG, m);
  archive_entry_set_size(e, (la_int64_t)data.size());
  Add(e, data);
  return *this;
}

Tar& Tar::Symlink(const std::string& p, const std::string& target) {
  archive_entry* e = Entry(p, AE_IFLNK, M(0777));
  archive_entry_set_symlink(e, target.c_str());
  Add(e, "");
  return *this;
}

Tar& Tar::Hardlink(const std::string& p, const std::string& target) {
  archive_entry* e = Entry(p, AE_IFREG, Meta());
  archive_entry_set_hardlink(e, target.c_str());
  archive_entry_set_size(e, 0);
  Add(e, "");
  return *this;
}

Tar& Tar::Dev(const std::string& p, int type, unsigned major, unsigned minor,
              int mode) {
  archive_entry* e = Entry(p, type, M(mode));
  archive_entry_set_rdevmajor(e, major);
  archive_entry_set_rdevminor(e, minor);
  Add(e, "");
  return *this;
}

Tar& Tar::Fifo(const std::string& p, int mode) {
  Add(Entry(p, AE_IFIFO, M(mode)), "");
  return *this;
}

Tar& Tar::Sparse(const std::string& p, int64_t size,
                 const std::vector<std::pair<int64_t, std::string>>& data) {
  archive_entry* e = Entry(p, AE_IFREG, Meta());
  archive_entry_set_size(e, size);
  for (auto& d : data)
    archive_entry_sparse_add_entry(e, d.first, (la_int64_t)d.second.size());
  if (archive_write_header(a_, e) != ARCHIVE_OK)
    throw std::runtime_error(std::string("tar header: ") +
                             archive_error_string(a_));
  // The pax writer takes the whole file and drops the bytes of the holes
  // itself, so the holes are fed as zeros (cheaply: they are only counted).
  static const std::string zeros(1 << 20, '\0');
  int64_t pos = 0;
  auto skip_to = [&](int64_t off) {
    while (pos < off) {
      int64_t n = std::min<int64_t>(off - pos, (int64_t)zeros.size());
      archive_write_data(a_, zeros.data(), (size_t)n);
      pos += n;
    }
  };
  for (auto& d : data) {
    skip_to(d.first);
    archive_write_data(a_, d.second.data(), d.second.size());
    pos += (int64_t)d.second.size();
  }
  skip_to(size);
  archive_entry_free(e);
  return *this;
}

void WriteRaw(const std::string& path, const std::string& bytes) {
  FILE* f = fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("write " + path);
  fwrite(bytes.data(), 1, bytes.size(), f);
  fclose(f);
}

std::string UstarHeader(const std::string& name, char type,
                        const std::string& size_octal,
                        const std::string& linkname, const std::string& mode,
                        const std::string& uid) {
  std::string h(512, '\0');
  auto put = [&](size_t off, size_t len, const std::string& v) {
    memcpy(&h[off], v.data(), std::min(len, v.size()));
  };
  put(0, 100, name);
  put(100, 8, mode);
  put(108, 8, uid);
  put(116, 8, "0000000");
  put(124, 12, size_octal);
  put(136, 12, "14000000000");
  h[156] = type;
  put(157, 100, linkname);
  put(257, 6, "ustar");
  put(263, 2, "00");
  memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  char cs[8];
  snprintf(cs, sizeof cs, "%06o", sum);
  memcpy(&h[148], cs, 7);
  return h;
}

Img::Img(const std::string& path) {
  if (ext2fs_open(path.c_str(), EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs_))
    fs_ = nullptr;
}

Img::~Img() {
  if (fs_) ext2fs_close_free(&fs_);
}

ext2_ino_t Img::Ino(const std::string& path) const {
  ext2_ino_t ino = 0;
  if (ext2fs_namei(fs_, EXT2_ROOT_INO, EXT2_ROOT_INO, path.c_str(), &ino))
    return 0;
  return ino;
}

ext2_inode_large Img::Inode(const std::string& path) const {
  ext2_inode_large in;
  memset(&in, 0, sizeof in);
  ext2_ino_t ino = Ino(path);
  if (ino)
    ext2fs_read_inode_full(fs_, ino, (ext2_inode*)&in, sizeof in);
  return in;
}

uint32_t Img::Uid(const std::string& path) const {
  ext2_inode_large in = Inode(path);
  return inode_uid(in);
}

uint32_t Img::Gid(const std::string& path) const {
  ext2_inode_large in = Inode(path);
  return inode_gid(in);
}

uint64_t Img::Size(const std::string& path) const {
  ext2_inode_large in = Inode(path);
  return EXT2_I_SIZE(&in);
}

int64_t Img::Mtime(const std::string& path) const {
  ext2_inode_large in = Inode(path);
  int64_t s = (int32_t)in.i_mtime;
  s += (int64_t)(in.i_mtime_extra & 3) << 32;
  return s;
}

std::string Img::ReadAt(const std::string& path, uint64_t off, size_t len) const {
  ext2_ino_t ino = Ino(path);
  ext2_file_t f;
  if (!ino || ext2fs_file_open(fs_, ino, 0, &f)) return "<missing>";
  std::string out;
  ext2fs_file_llseek(f, off, EXT2_SEEK_SET, nullptr);
  std::vector<char> buf(1 << 16);
  while (out.size() < len) {
    unsigned int got = 0;
    size_t want = std::min(buf.size(), len - out.size());
    if (ext2fs_file_read(f, buf.data(), (unsigned)want, &got) || got == 0) break;
    out.append(buf.data(), got);
  }
  ext2fs_file_close(f);
  return out;
}

std::string Img::Read(const std::string& path) const {
  return ReadAt(path, 0, Size(path));
}

std::string Img::Link(const std::string& path) const {
  ext2_inode_large in = Inode(path);
  uint64_t size = EXT2_I_SIZE(&in);
  if (!(in.i_flags & EXT4_EXTENTS_FL) && size < sizeof in.i_block)
    return std::string((const char*)in.i_block, size);
  return Read(path);
}

struct ListCtx {
  std::vector<std::string>* out;
};

static int ListCb(ext2_dir_entry* d, int, int, char*, void* priv) {
  auto* names = static_cast<std::vector<std::string>*>(priv);
  std::string n(d->name, ext2fs_dirent_name_len(d));
  if (n != "." && n != "..") names->push_back(n);
  return 0;
}

std::vector<std::string> Img::List(const std::string& path) const {
  std::vector<std::string> names;
  ext2_ino_t ino = Ino(path);
  if (ino)
    ext2fs_dir_iterate(fs_, ino, 0, nullptr, ListCb, &names);
  return names;
}

static int XattrCb(char* name, char* value, size_t len, void* data) {
  auto* m = static_cast<std::map<std::string, std::string>*>(data);
  (*m)[name] = std::string(value, len);
  return 0;
}

std::map<std::string, std::string> Img::Xattrs(const std::string& path) const {
  std::map<std::string, std::string> m;
  ext2_xattr_handle* h;
  ext2_ino_t ino = Ino(path);
  if (!ino || ext2fs_xattrs_open(fs_, ino, &h)) return m;
  if (!ext2fs_xattrs_read(h)) ext2fs_xattrs_iterate(h, XattrCb, &m);
  ext2fs_xattrs_close(&h);
  return m;
}

std::string Fsck(const std::string& image) {
  std::string cmd = "e2fsck -fn '" + image + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "popen failed";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return "";
  return "e2fsck exit " + std::to_string(WEXITSTATUS(st)) + ":\n" + out;
}

std::string TempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string t = std::string(base ? base : "/tmp") + "/rfsXXXXXX";
  if (!mkdtemp(&t[0])) throw std::runtime_error("mkdtemp");
  return t;
}

std::string Build(const std::vector<std::string>& layers, const std::string& out,
                  const rfs_options* opts, vs_code* code) {
  std::vector<rfs_layer> ls(layers.size());
  for (size_t i = 0; i < layers.size(); i++) {
    ls[i].path = layers[i].c_str();
    ls[i].media_type = nullptr;
    ls[i].compression = RFS_COMPRESSION_AUTO;
  }
  vs_err err = {};
  int rc = rfs_build(ls.data(), ls.size(), out.c_str(), opts, nullptr, &err);
  if (code) *code = err.code;
  return rc == 0 ? "" : err.msg;
}

}  // namespace rfs_test
