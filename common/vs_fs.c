#include "common/vs_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int vs_mkdir_p(const char *path, mode_t mode, vs_err *err) {
  char buf[4096];
  if (!*path || snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad path \"%s\"", path);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char c = *p;
      *p = '\0';
      if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "mkdir %s",
                            buf);
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

char *vs_read_file(const char *path, size_t max, size_t *len, vs_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "open %s", path);
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || (size_t)st.st_size > max) {
    close(fd);
    vs_err_set(err, VS_OUT_OF_RANGE, "%s is larger than %zu bytes", path, max);
    return NULL;
  }
  size_t size = (size_t)st.st_size, got = 0;
  char *buf = malloc(size + 1);
  while (buf && got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (!buf || got != size) {
    if (buf) vs_err_set(err, VS_INTERNAL, "cannot read %s", path);
    else vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    free(buf);
    return NULL;
  }
  buf[got] = '\0';
  if (len) *len = got;
  return buf;
}

int vs_valid_name(const char *name, size_t max) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || !strchr("_.-", c))) return 0;
  }
  return 1;
}

int vs_rm_rf(const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode)) return unlink(path);
  DIR *d = opendir(path);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    size_t n = strlen(path) + strlen(e->d_name) + 2;
    char *sub = malloc(n);
    if (!sub) break;
    snprintf(sub, n, "%s/%s", path, e->d_name);
    vs_rm_rf(sub);
    free(sub);
  }
  if (d) closedir(d);
  return rmdir(path);
}
