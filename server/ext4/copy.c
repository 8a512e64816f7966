/* Writable copies of a cached image: a reflink where the filesystem
 * shares extents (XFS, btrfs), else a copy that keeps the holes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/ext4/ext4.h"

static int sparse_copy(int in, int out, off_t size, vs_err *err) {
  off_t pos = 0;
  while (pos < size) {
    off_t data = lseek(in, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break; /* only a hole remains */
    if (data < 0) return vs_err_errno(err, VS_INTERNAL, errno, "seeking data");
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    off_t si = data, di = data;
    size_t left = (size_t)(hole - data);
    while (left > 0) {
      ssize_t r = copy_file_range(in, &si, out, &di, left, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        /* No copy_file_range across these filesystems: read/write. */
        char buf[65536];
        ssize_t n = pread(in, buf, left < sizeof buf ? left : sizeof buf, si);
        if (n <= 0) return vs_err_errno(err, VS_INTERNAL, n < 0 ? errno : EIO, "reading image");
        if (pwrite(out, buf, (size_t)n, di) != n)
          return vs_err_errno(err, errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL,
                              errno, "writing copy");
        r = n;
        si += n;
        di += n;
      }
      left -= (size_t)r;
    }
    pos = hole;
  }
  return 0;
}

/* out (empty) becomes a copy of in: a reflink, else holes kept. */
static int clone_or_copy(int in, int out, off_t size, vs_err *err) {
  if (ioctl(out, FICLONE, in) == 0) return 0;
  if (ftruncate(out, size) < 0)
    return vs_err_errno(err, errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL, errno,
                        "sizing the copy");
  return sparse_copy(in, out, size, err);
}

int rfs_copy_into(const char *src, int dst_fd, vs_err *err) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "opening %s", src);
  struct stat st;
  int rc = fstat(in, &st) < 0 ? vs_err_errno(err, VS_INTERNAL, errno, "stat %s", src) : 0;
  if (rc == 0 && ftruncate(dst_fd, 0) < 0) rc = vs_err_errno(err, VS_INTERNAL, errno, "truncate");
  if (rc == 0) rc = clone_or_copy(in, dst_fd, st.st_size, err);
  close(in);
  return rc;
}

int rfs_copy_writable(const char *src, const char *dst, vs_err *err) {
  struct stat st;
  if (lstat(dst, &st) == 0)
    return vs_err_set(err, VS_ALREADY_EXISTS, "%s already exists", dst);
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno,
                        "opening %s", src);
  if (fstat(in, &st) < 0) {
    close(in);
    return vs_err_errno(err, VS_INTERNAL, errno, "stat %s", src);
  }
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", dst) >= (int)sizeof tmp) {
    close(in);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long: %s", dst);
  }
  int out = mkostemp(tmp, O_CLOEXEC);
  if (out < 0) {
    int e = errno;
    close(in);
    return vs_err_errno(err, e == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, e, "creating %s", tmp);
  }
  int rc = clone_or_copy(in, out, st.st_size, err);
  if (rc == 0 && fchmod(out, 0644) < 0)
    rc = vs_err_errno(err, VS_INTERNAL, errno, "chmod %s", tmp);
  if (rc == 0 && fsync(out) < 0) rc = vs_err_errno(err, VS_INTERNAL, errno, "syncing %s", tmp);
  /* link() fails when dst appeared meanwhile, unlike rename(). */
  if (rc == 0 && link(tmp, dst) < 0)
    rc = vs_err_errno(err, errno == EEXIST ? VS_ALREADY_EXISTS : VS_INTERNAL, errno,
                      "creating %s", dst);
  unlink(tmp);
  close(out);
  close(in);
  return rc;
}

extern char **environ;

int rfs_create_overlay(const char *src, const char *dst, vs_err *err) {
  struct stat st;
  if (src[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "backing image path must be absolute: %s", src);
  if (stat(src, &st) < 0)
    return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "%s", src);
  if (lstat(dst, &st) == 0)
    return vs_err_set(err, VS_ALREADY_EXISTS, "%s already exists", dst);
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", dst, (int)getpid()) >= (int)sizeof tmp)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long: %s", dst);
  char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", "-b", (char *)src,
                  "-F", "raw", tmp, NULL};
  pid_t pid;
  /* posix_spawn, not fork: vesseld is multithreaded. */
  int e = posix_spawnp(&pid, "qemu-img", NULL, NULL, argv, environ);
  if (e) return vs_err_errno(err, VS_FAILED_PRECONDITION, e, "running qemu-img");
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return vs_err_errno(err, VS_INTERNAL, errno, "waiting for qemu-img");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    unlink(tmp);
    return vs_err_set(err, VS_INTERNAL, "qemu-img create failed for %s", dst);
  }
  int rc = 0;
  if (link(tmp, dst) < 0)
    rc = vs_err_errno(err, errno == EEXIST ? VS_ALREADY_EXISTS : VS_INTERNAL, errno, "creating %s", dst);
  unlink(tmp);
  return rc;
}
