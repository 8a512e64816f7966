/* Root filesystems of images: built once per (manifest, size options) with
 * server/ext4 into <root>/rootfs/<key>.ext4 and reused read-only; callers
 * take a writable copy. A lock file per key makes concurrent requests for
 * the same rootfs build it once. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/ext4/ext4.h"
#include "server/images/images_internal.h"

/* Bump when the builder's output for the same input changes. */
#define ROOTFS_FORMAT "vessel-rootfs-1"

int img_rootfs(img_store *s, const char *reference, const oci_platform *platform,
               uint64_t size_bytes, uint64_t free_bytes, char *path, size_t path_len,
               char key[72], int *cached, vs_err *err) {
  img_info info;
  if (img_inspect(s, reference, platform, &info, err) < 0) return -1;
  char seed[512];
  snprintf(seed, sizeof seed, "%s %s %llu %llu", ROOTFS_FORMAT, info.manifest.digest,
           (unsigned long long)size_bytes, (unsigned long long)free_bytes);
  oci_sha256_bytes(seed, strlen(seed), key);
  char dir[4200], lock[4300];
  snprintf(dir, sizeof dir, "%s/rootfs", s->root);
  mkdir(dir, 0700);
  snprintf(path, path_len, "%s/%s.ext4", dir, key + 7);
  snprintf(lock, sizeof lock, "%s/%s.lock", dir, key + 7);
  int rc = 0;
  *cached = 1;
  int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lfd < 0) {
    rc = vs_err_errno(err, VS_INTERNAL, errno, "open %s", lock);
    goto out;
  }
  while (flock(lfd, LOCK_EX) < 0 && errno == EINTR) {
  }
  if (access(path, F_OK) == 0) goto out;
  *cached = 0;
  rfs_layer *layers = calloc(info.n_layers ? info.n_layers : 1, sizeof *layers);
  char (*paths)[4200] = calloc(info.n_layers ? info.n_layers : 1, sizeof *paths);
  if (!layers || !paths) {
    rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  } else {
    /* The config's diff_ids name each layer's uncompressed content. */
    if (info.config.n_diff_ids != info.n_layers)
      rc = vs_err_set(err, VS_DATA_LOSS, "image %s: its config lists %zu diff_ids for %zu layers",
                      info.name, info.config.n_diff_ids, info.n_layers);
    for (size_t i = 0; rc == 0 && i < info.n_layers; i++) {
      cs_blob_path(s->cs, info.layers[i].digest, paths[i], sizeof paths[i]);
      layers[i].path = paths[i];
      layers[i].media_type = info.layers[i].media_type;
      layers[i].diff_id = info.config.diff_ids[i];
      if (!cs_exists(s->cs, info.layers[i].digest, NULL))
        rc = vs_err_set(err, VS_FAILED_PRECONDITION, "image %s: layer %s is not present",
                        info.name, info.layers[i].digest);
    }
    rfs_options o;
    rfs_options_init(&o);
    o.size_bytes = size_bytes;
    o.free_bytes = size_bytes ? 0 : free_bytes;
    if (rc == 0) {
      double t0 = img_clock();
      if (rfs_build(layers, info.n_layers, path, &o, NULL, err) < 0) {
        vs_err_wrap(err, "rootfs of %s", info.name);
        rc = -1;
        mt_add(s->m_rootfs_errors, 1);
      }
      mt_add(s->m_rootfs_builds, 1);
      mt_observe(s->m_rootfs_secs, img_clock() - t0);
    }
  }
  free(layers);
  free(paths);
out:
  if (lfd >= 0) close(lfd);
  img_info_free(&info);
  return rc;
}
