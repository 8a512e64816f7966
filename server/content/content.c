#include "server/content/content.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/vs_fs.h"
#include "server/oci/oci.h"

struct cs_store {
  char dir[4000];
  char blobs[4100];
  char ingest[4100];
};

struct cs_writer {
  cs_store *cs;
  char digest[72];
  char partial[4200];
  int fd;
  int64_t size, offset;
  int nospace; /* a write hit ENOSPC: the partial is dropped, not kept */
  oci_sha256 hash;
  /* Bytes not yet written to fd (offset counts them): HTTP clients hand
   * over 16 KiB at a time, written here in CS_WRITE_BUF pieces. */
  char *buf;
  size_t buffered;
};

#define CS_WRITE_BUF (1 << 20)

static int fsync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

cs_store *cs_open(const char *dir, vs_err *err) {
  if (strlen(dir) > 3900) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "content store path too long");
    return NULL;
  }
  cs_store *cs = calloc(1, sizeof *cs);
  if (!cs) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  snprintf(cs->dir, sizeof cs->dir, "%s", dir);
  snprintf(cs->blobs, sizeof cs->blobs, "%s/blobs/sha256", dir);
  snprintf(cs->ingest, sizeof cs->ingest, "%s/ingest", dir);
  if (vs_mkdir_p(cs->blobs, 0700, err) < 0 || vs_mkdir_p(cs->ingest, 0700, err) < 0) {
    free(cs);
    return NULL;
  }
  /* A crash between writing a small blob's temp file and its rename leaves
   * *.tmp behind: never visible, safe to remove. No ingest runs yet: every
   * partial is a dead one's, and goes too (a pull starts over). */
  DIR *d = opendir(cs->ingest);
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t n = strlen(e->d_name);
    if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) unlinkat(dirfd(d), e->d_name, 0);
  }
  if (d) closedir(d);
  cs_reclaim_partials(cs, NULL);
  return cs;
}

int cs_reclaim_partials(cs_store *cs, int64_t *bytes) {
  int n = 0;
  if (bytes) *bytes = 0;
  DIR *d = opendir(cs->ingest);
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (len < 9 || strcmp(e->d_name + len - 8, ".partial") != 0) continue;
    int fd = openat(dirfd(d), e->d_name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    /* Locked: a live ingest owns it. Unlocked and still the same file:
     * nobody's. */
    struct stat a, b;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &a) == 0 &&
        fstatat(dirfd(d), e->d_name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino &&
        unlinkat(dirfd(d), e->d_name, 0) == 0) {
      n++;
      if (bytes) *bytes += (int64_t)a.st_blocks * 512;
    }
    close(fd);
  }
  if (d) closedir(d);
  return n;
}

void cs_close(cs_store *cs) { free(cs); }

int cs_blob_path(cs_store *cs, const char *digest, char *buf, size_t n) {
  if (!oci_digest_valid(digest)) return -1;
  snprintf(buf, n, "%s/%s", cs->blobs, digest + 7);
  return 0;
}

int cs_exists(cs_store *cs, const char *digest, int64_t *size) {
  char path[4200];
  struct stat st;
  if (cs_blob_path(cs, digest, path, sizeof path) < 0 || stat(path, &st) < 0) return 0;
  if (size) *size = st.st_size;
  return 1;
}

int cs_read(cs_store *cs, const char *digest, size_t max, char **data, size_t *len, vs_err *err) {
  *data = NULL;
  char path[4200];
  if (cs_blob_path(cs, digest, path, sizeof path) < 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "invalid digest %s", digest);
  size_t got;
  char *buf = vs_read_file(path, max, &got, err);
  if (!buf) {
    if (err->code == VS_NOT_FOUND)
      return vs_err_set(err, VS_NOT_FOUND, "blob %s is not in the content store", digest);
    if (err->code == VS_OUT_OF_RANGE)
      return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "blob %s is larger than %zu bytes", digest, max);
    return vs_err_set(err, VS_INTERNAL, "cannot read blob %s", digest);
  }
  char have[72];
  oci_sha256_bytes(buf, got, have);
  if (strcmp(have, digest) != 0) {
    free(buf);
    return vs_err_set(err, VS_DATA_LOSS, "blob %s is corrupt on disk (hashes to %s)", digest, have);
  }
  *data = buf;
  *len = got;
  return 0;
}

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int cs_put(cs_store *cs, const void *data, size_t len, const char *expected, char out[72],
           vs_err *err) {
  char digest[72];
  oci_sha256_bytes(data, len, digest);
  if (expected && strcmp(expected, digest) != 0)
    return vs_err_set(err, VS_DATA_LOSS, "content hashes to %s, expected %s", digest, expected);
  if (out) memcpy(out, digest, sizeof digest);
  if (cs_exists(cs, digest, NULL)) return 0;
  char tmp[4200], path[4200];
  /* Unique per writer: two threads may store the same manifest at once. */
  snprintf(tmp, sizeof tmp, "%s/%s.XXXXXX.tmp", cs->ingest, digest + 7);
  cs_blob_path(cs, digest, path, sizeof path);
  int fd = mkostemps(tmp, 4, O_CLOEXEC);
  if (fd < 0) return vs_err_errno(err, VS_INTERNAL, errno, "create %s", tmp);
  if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
    int e = errno;
    close(fd);
    unlink(tmp);
    return vs_err_errno(err, e == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL, e, "write %s", tmp);
  }
  close(fd);
  if (rename(tmp, path) < 0) {
    int e = errno;
    unlink(tmp);
    return vs_err_errno(err, VS_INTERNAL, e, "rename into %s", path);
  }
  return 0;
}

int cs_sync(cs_store *cs, vs_err *err) {
  if (fsync_dir(cs->blobs) < 0) return vs_err_errno(err, VS_INTERNAL, errno, "fsync %s", cs->blobs);
  return 0;
}

/* Feeds the bytes already in the partial file to the hash. */
static int rehash(cs_writer *w, vs_err *err) {
  char buf[1 << 16];
  int64_t done = 0;
  if (lseek(w->fd, 0, SEEK_SET) < 0) return vs_err_errno(err, VS_INTERNAL, errno, "seek");
  for (;;) {
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n < 0) return vs_err_errno(err, VS_INTERNAL, errno, "read %s", w->partial);
    if (n == 0) break;
    oci_sha256_update(&w->hash, buf, (size_t)n);
    done += n;
  }
  w->offset = done;
  return 0;
}

int cs_writer_open(cs_store *cs, const char *digest, int64_t size, cs_writer **out, vs_err *err) {
  *out = NULL;
  if (!oci_digest_valid(digest))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "invalid digest \"%s\"", digest);
  if (cs_exists(cs, digest, NULL)) return 1;
  cs_writer *w = calloc(1, sizeof *w);
  if (!w) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  w->cs = cs;
  w->size = size;
  snprintf(w->digest, sizeof w->digest, "%s", digest);
  snprintf(w->partial, sizeof w->partial, "%s/%s.partial", cs->ingest, digest + 7);
  w->fd = open(w->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (w->fd < 0) {
    int e = errno;
    free(w);
    return vs_err_errno(err, VS_INTERNAL, e, "open %s", cs->ingest);
  }
  /* Waits while another ingest of this digest runs. */
  while (flock(w->fd, LOCK_EX) < 0 && errno == EINTR) {
  }
  if (cs_exists(cs, digest, NULL)) { /* the other ingest finished it */
    close(w->fd);
    free(w);
    return 1;
  }
  /* The file we locked may have been committed (renamed away) and a fresh
   * one created by now; lock the current one instead. */
  struct stat a, b;
  if (fstat(w->fd, &a) < 0 || stat(w->partial, &b) < 0 || a.st_ino != b.st_ino) {
    close(w->fd);
    free(w);
    return cs_writer_open(cs, digest, size, out, err);
  }
  if (oci_sha256_init(&w->hash, err) < 0 || rehash(w, err) < 0) {
    cs_writer_abort(w, 1);
    return -1;
  }
  if (size >= 0 && w->offset > size) { /* junk from an earlier bad source */
    if (cs_writer_restart(w, err) < 0) {
      cs_writer_abort(w, 0);
      return -1;
    }
  }
  *out = w;
  return 0;
}

int64_t cs_writer_offset(cs_writer *w) { return w->offset; }

static int put(cs_writer *w, const void *data, size_t len, vs_err *err) {
  if (write_all(w->fd, data, len) == 0) return 0;
  if (errno == ENOSPC) w->nospace = 1;
  return vs_err_errno(err, errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL, errno,
                      "write %s", w->partial);
}

static int flush(cs_writer *w, vs_err *err) {
  size_t n = w->buffered;
  w->buffered = 0;
  return n ? put(w, w->buf, n, err) : 0;
}

int cs_writer_write(cs_writer *w, const void *data, size_t len, vs_err *err) {
  if (w->size >= 0 && w->offset + (int64_t)len > w->size)
    return vs_err_set(err, VS_DATA_LOSS, "blob %s: source sent more than the %lld bytes announced",
                      w->digest, (long long)w->size);
  if (!w->buf && len < CS_WRITE_BUF) w->buf = malloc(CS_WRITE_BUF);
  if (!w->buf || len >= CS_WRITE_BUF) { /* big pieces (or no memory): straight */
    if (flush(w, err) < 0 || put(w, data, len, err) < 0) return -1;
  } else {
    if (w->buffered + len > CS_WRITE_BUF && flush(w, err) < 0) return -1;
    memcpy(w->buf + w->buffered, data, len);
    w->buffered += len;
  }
  oci_sha256_update(&w->hash, data, len);
  w->offset += (int64_t)len;
  return 0;
}

int cs_writer_restart(cs_writer *w, vs_err *err) {
  w->buffered = 0;
  if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
    return vs_err_errno(err, VS_INTERNAL, errno, "truncate %s", w->partial);
  oci_sha256_free(&w->hash);
  if (oci_sha256_init(&w->hash, err) < 0) return -1;
  w->offset = 0;
  return 0;
}

int cs_writer_commit(cs_writer *w, vs_err *err) {
  char have[72];
  oci_sha256_final(&w->hash, have);
  int rc = 0;
  if (w->size >= 0 && w->offset != w->size) {
    rc = vs_err_set(err, VS_DATA_LOSS, "blob %s: got %lld bytes, expected %lld", w->digest,
                    (long long)w->offset, (long long)w->size);
  } else if (strcmp(have, w->digest) != 0) {
    rc = vs_err_set(err, VS_DATA_LOSS, "blob %s: content hashes to %s", w->digest, have);
  } else if (flush(w, err) < 0) {
    rc = -1;
  } else if (fsync(w->fd) < 0) {
    rc = vs_err_errno(err, VS_INTERNAL, errno, "fsync %s", w->partial);
  } else {
    char path[4200];
    cs_blob_path(w->cs, w->digest, path, sizeof path);
    if (rename(w->partial, path) < 0)
      rc = vs_err_errno(err, VS_INTERNAL, errno, "rename into %s", path);
  }
  if (rc < 0) unlink(w->partial); /* bad bytes are never resumed */
  close(w->fd);                   /* releases the lock */
  free(w->buf);
  free(w);
  return rc;
}

void cs_writer_abort(cs_writer *w, int keep_partial) {
  if (!w) return;
  vs_err ignore;
  if (keep_partial) flush(w, &ignore); /* what arrived, for a resume */
  /* Nothing to resume from an empty file, and a disk-full one must not
   * keep the disk full. */
  if (!keep_partial || w->offset == 0 || w->nospace) unlink(w->partial);
  if (w->hash.ctx) oci_sha256_free(&w->hash);
  close(w->fd);
  free(w->buf);
  free(w);
}

int cs_delete(cs_store *cs, const char *digest, vs_err *err) {
  char path[4200];
  if (cs_blob_path(cs, digest, path, sizeof path) < 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "invalid digest \"%s\"", digest);
  if (unlink(path) < 0 && errno != ENOENT)
    return vs_err_errno(err, VS_INTERNAL, errno, "delete %s", path);
  return 0;
}

int cs_walk(cs_store *cs, int (*fn)(const char *, int64_t, void *), void *arg) {
  DIR *d = opendir(cs->blobs);
  if (!d) return -1;
  int rc = 0;
  for (struct dirent *e; !rc && (e = readdir(d));) {
    char digest[72];
    if (strlen(e->d_name) != 64) continue;
    snprintf(digest, sizeof digest, "sha256:%s", e->d_name);
    if (!oci_digest_valid(digest)) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, 0) < 0) continue;
    rc = fn(digest, st.st_size, arg);
  }
  closedir(d);
  return rc;
}
