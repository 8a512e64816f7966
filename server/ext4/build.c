/* rfs_build: layers -> tree + spool -> ext4, written to a temporary file
 * beside the output and renamed into place only when complete. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/ext4/apply.h"
#include "server/ext4/ext4.h"
#include "server/ext4/writer.h"

#define DEFAULT_MAX_UNPACKED (64ull << 30)
#define DEFAULT_MAX_ENTRIES 10000000ull
#define DEFAULT_MAX_DATA (16ull << 30)

void rfs_options_init(rfs_options *o) {
  memset(o, 0, sizeof *o);
  o->journal = 1;
}

static void dir_of(const char *path, char *out, size_t size) {
  const char *s = strrchr(path, '/');
  if (!s)
    snprintf(out, size, ".");
  else if (s == path)
    snprintf(out, size, "/");
  else
    snprintf(out, size, "%.*s", (int)(s - path), path);
}

static void sync_dir(const char *dir) {
  int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    fsync(d); /* the rename survives a crash; best effort */
    close(d);
  }
}

int rfs_build(const rfs_layer *layers, size_t nlayers, const char *out_path,
              const rfs_options *opts, rfs_result *result, vs_err *err) {
  rfs_options o;
  if (opts)
    o = *opts;
  else
    rfs_options_init(&o);
  if (!o.max_unpacked_bytes) o.max_unpacked_bytes = DEFAULT_MAX_UNPACKED;
  if (!o.max_entries) o.max_entries = DEFAULT_MAX_ENTRIES;
  if (!o.max_data_bytes) o.max_data_bytes = DEFAULT_MAX_DATA;
  if (!out_path || !*out_path)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "no output path");
  if (strlen(out_path) > PATH_MAX - 32)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "output path too long");
  if (o.label && strlen(o.label) > 16)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "label longer than 16 bytes");
  if (o.size_bytes && o.size_bytes > (1ull << 44))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "size_bytes above 16 TiB");
  if (o.free_bytes > (1ull << 44))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "free_bytes above 16 TiB");
  for (size_t i = 0; i < nlayers; i++)
    if (!layers[i].path)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "layer %zu has no path", i + 1);

  char dir[PATH_MAX], tmp[PATH_MAX];
  dir_of(out_path, dir, sizeof dir);
  snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out_path);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0)
    return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND
                             : errno == EACCES ? VS_PERMISSION_DENIED
                             : errno == ENOSPC ? VS_RESOURCE_EXHAUSTED
                                               : VS_INTERNAL,
                        errno, "creating %s", tmp);

  rfs_tree tree;
  rfs_spool spool;
  int have_tree = 0, have_spool = 0, rc = -1;
  if (rfs_tree_init(&tree, err) < 0) goto out;
  have_tree = 1;
  if (rfs_spool_open(&spool, o.tmp_dir ? o.tmp_dir : dir, err) < 0) goto out;
  have_spool = 1;

  rfs_applier ap = {0};
  ap.tree = &tree;
  ap.spool = &spool;
  ap.max_unpacked = o.max_unpacked_bytes;
  ap.max_entries = o.max_entries;
  ap.max_data = o.max_data_bytes;
  ap.cancelled = o.cancelled;
  ap.cancelled_arg = o.cancelled_arg;
  for (size_t i = 0; i < nlayers; i++)
    if (rfs_apply_layer(&ap, &layers[i], (uint32_t)(i + 1), err) < 0) goto out;
  if (o.cancelled && o.cancelled(o.cancelled_arg)) {
    vs_err_set(err, VS_CANCELLED, "rootfs build cancelled");
    goto out;
  }

  rfs_result res = {0};
  if (rfs_write_image(&tree, &spool, fd, tmp, &o, &res, err) < 0) goto out;
  res.entries = ap.entries;
  if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
    vs_err_errno(err, VS_INTERNAL, errno, "syncing %s", tmp);
    goto out;
  }
  if (rename(tmp, out_path) < 0) {
    vs_err_errno(err, VS_INTERNAL, errno, "renaming %s to %s", tmp, out_path);
    goto out;
  }
  sync_dir(dir);
  if (result) *result = res;
  rc = 0;
out:
  if (have_spool) rfs_spool_close(&spool);
  if (have_tree) rfs_tree_free(&tree);
  close(fd);
  if (rc < 0) unlink(tmp);
  return rc;
}
