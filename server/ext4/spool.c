#include "server/ext4/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPOOL_BUF (1u << 20)

int rfs_spool_open(rfs_spool *s, const char *dir, vs_err *err) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  s->buf = malloc(SPOOL_BUF);
  if (!s->buf) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  s->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (s->fd < 0) {
    /* Filesystems without O_TMPFILE: a named file, unlinked right away so
     * that no error path can leave it behind. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.vessel-spool-XXXXXX", dir);
    s->fd = mkostemp(path, O_CLOEXEC);
    if (s->fd < 0) {
      int e = errno;
      free(s->buf);
      s->buf = NULL;
      return vs_err_errno(err, e == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL,
                          e, "creating data spool in %s", dir);
    }
    unlink(path);
  }
  return 0;
}

static int write_all(int fd, const char *p, size_t n, uint64_t off,
                     vs_err *err) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return vs_err_errno(err, errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL,
                          errno, "writing data spool");
    }
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

int rfs_spool_flush(rfs_spool *s, vs_err *err) {
  if (s->buflen == 0) return 0;
  if (write_all(s->fd, s->buf, s->buflen, s->size - s->buflen, err) < 0)
    return -1;
  s->buflen = 0;
  return 0;
}

int rfs_spool_append(rfs_spool *s, const void *p, size_t n, uint64_t *off,
                     vs_err *err) {
  *off = s->size;
  if (s->buflen + n > SPOOL_BUF) {
    if (rfs_spool_flush(s, err) < 0) return -1;
    if (n > SPOOL_BUF) {
      if (write_all(s->fd, p, n, s->size, err) < 0) return -1;
      s->size += n;
      return 0;
    }
  }
  memcpy(s->buf + s->buflen, p, n);
  s->buflen += n;
  s->size += n;
  return 0;
}

void rfs_spool_close(rfs_spool *s) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  free(s->buf);
  s->buf = NULL;
}
