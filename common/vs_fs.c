#include "common/vs_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vs_mkdir_p(const char *path, mode_t mode, vs_err *err) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long: %s", path);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", buf);
      *p = c;
      if (c == '\0') break;
    }
  }
  return 0;
}

int vs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, vs_err *err) {
  char tmp[4200];
  if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long: %s", path);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) return vs_err_errno(err, VS_INTERNAL, errno, "create %s", tmp);
  const char *p = data;
  size_t left = len;
  int rc = 0;
  while (left && rc == 0) {
    ssize_t n = write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) rc = vs_err_errno(err, errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL, errno,
                                  "write %s", tmp);
    else p += n, left -= (size_t)n;
  }
  if (rc == 0 && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
    rc = vs_err_errno(err, VS_INTERNAL, errno, "sync %s", tmp);
  close(fd);
  if (rc == 0 && rename(tmp, path) < 0) rc = vs_err_errno(err, VS_INTERNAL, errno, "rename %s", path);
  if (rc < 0) unlink(tmp);
  return rc;
}
