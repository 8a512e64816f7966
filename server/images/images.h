/* images: the image store (references -> root descriptors, in SQLite) and
 * the operations over it: pull from and push to registries, list, inspect,
 * tag, delete and garbage-collect blobs. The content itself lives in the
 * content store; this module only decides what is referenced. */
#ifndef VESSEL_SERVER_IMAGES_IMAGES_H
#define VESSEL_SERVER_IMAGES_IMAGES_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"
#include "server/content/content.h"
#include "server/metrics/metrics.h"
#include "server/oci/oci.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct img_store img_store;

/* Opens <root>/images.db and <root>/content; credentials of Login are kept
 * in <root>/auth.json, registry CAs are read from <root>/certs.d/<host>/. */
img_store *img_open(const char *root, vs_err *err);
/* The platform pulls and lookups choose when a request names none: the
 * host's (oci_platform_host) unless set here, e.g. "linux/arm64" for a
 * vesseld whose VMs are arm64 (--guest-arch). Call before serving. */
int img_set_native(img_store *s, const char *platform, vs_err *err);
void img_close(img_store *s);
cs_store *img_content(img_store *s);

/* Records in r (metrics.c): pulls (bytes received, durations, failures by
 * status code), rootfs builds (count, durations, failures) and, at each
 * rendering, the content store's size. Call once, before the store is
 * used; stop rendering before img_close. */
int img_metrics(img_store *s, mt_registry *r, vs_err *err);

/* A local image as List/Inspect show it. */
typedef struct img_info {
  char *name;             /* normalised reference */
  oci_descriptor target;  /* index or manifest */
  oci_platform platform;  /* the platform described below */
  oci_config config;
  oci_descriptor manifest; /* the platform's manifest (== target if no index) */
  oci_descriptor *layers;
  size_t n_layers;
  int64_t size;           /* manifest + config + layers */
  oci_platform *platforms; /* platforms whose manifest is present locally */
  size_t n_platforms;
  int64_t updated;        /* unix seconds */
} img_info;

void img_info_free(img_info *i);

/* ---- transfer progress ---- */

typedef enum img_phase {
  IMG_PHASE_RESOLVING = 1,
  IMG_PHASE_DOWNLOADING,
  IMG_PHASE_UPLOADING,
  IMG_PHASE_DONE,
} img_phase;

typedef enum img_blob_state {
  IMG_BLOB_WAITING = 1,
  IMG_BLOB_TRANSFERRING,
  IMG_BLOB_VERIFYING,
  IMG_BLOB_DONE = 5,
  IMG_BLOB_EXISTS = 6,
} img_blob_state;

typedef struct img_blob_progress {
  char digest[72];
  char media_type[128]; /* a copy: progress outlives the documents read */
  int64_t done, total;
  img_blob_state state;
} img_blob_progress;

typedef struct img_progress {
  img_phase phase;
  const img_blob_progress *blobs;
  size_t n_blobs;
} img_progress;

/* Called with the lock of the transfer held: copy what you need, return fast. */
typedef void (*img_progress_fn)(void *arg, const img_progress *p);

typedef struct img_pull_opts {
  oci_platform platform;    /* empty fields: host */
  int insecure;             /* plain HTTP / unverified TLS for this registry */
  const char *username;     /* NULL: stored credentials or anonymous */
  const char *password;
  int max_concurrent;       /* parallel blob downloads; 0 = 4 */
  img_progress_fn progress;
  void *progress_arg;
  /* Polled during transfers (at least once a second) and between them:
   * non-zero stops the pull at once (CANCELLED). NULL = never. */
  int (*cancelled)(void *arg);
  void *cancel_arg;
  /* Slower than min_speed bytes/s for min_speed_secs: that download fails
   * (retried, resuming). 0 = 1024 B/s over 30 s. */
  int min_speed, min_speed_secs;
} img_pull_opts;

/* Pulls reference (every blob of the selected platform plus the index),
 * records it and fills *out. */
int img_pull(img_store *s, const char *reference, const img_pull_opts *o, img_info *out,
             vs_err *err);

typedef struct img_push_opts {
  const char *destination;  /* remote reference; NULL = the local name */
  int insecure;
  const char *username;
  const char *password;
  img_progress_fn progress;
  void *progress_arg;
  int (*cancelled)(void *arg); /* as in img_pull_opts */
  void *cancel_arg;
} img_push_opts;

/* Pushes a local image (index: its locally present manifests). *pushed gets
 * the descriptor of the top-level manifest/index. */
int img_push(img_store *s, const char *reference, const img_push_opts *o, oci_descriptor *pushed,
             vs_err *err);

/* ---- local operations ---- */

/* Finds a local image by reference, digest or digest prefix (>= 12 hex). */
int img_inspect(img_store *s, const char *reference, const oci_platform *platform, img_info *out,
                vs_err *err);

/* All images (host platform view), sorted by name. */
int img_list(img_store *s, img_info **out, size_t *n, vs_err *err);
void img_list_free(img_info *list, size_t n);

int img_tag(img_store *s, const char *source, const char *target, img_info *out, vs_err *err);

/* Removes a reference (a digest removes all references to it) and the
 * blobs no image needs any more. Lists are malloc'd string arrays. */
int img_delete(img_store *s, const char *reference, char ***untagged, size_t *n_untagged,
               char ***deleted, size_t *n_deleted, vs_err *err);

/* Deletes blobs no image references (all=1: every image first). */
int img_prune(img_store *s, int all, char ***untagged, size_t *n_untagged, char ***deleted,
              size_t *n_deleted, int64_t *reclaimed, vs_err *err);

/* Records name -> descriptor (used by pull and import). */
int img_set_ref(img_store *s, const char *name, const oci_descriptor *target, vs_err *err);

/* Writes an OCI image-layout tar of the images (and every blob they need)
 * through fn, in order. */
typedef int (*img_write_fn)(void *arg, const void *data, size_t len, vs_err *err);
int img_export(img_store *s, char *const *refs, size_t n, img_write_fn fn, void *arg, vs_err *err);

/* Archive formats, numbered as vessel.v1.ArchiveFormat. */
typedef enum img_archive_format {
  IMG_ARCHIVE_DETECT = 0,
  IMG_ARCHIVE_OCI = 1,
  IMG_ARCHIVE_DOCKER = 2,
} img_archive_format;

/* Loads an OCI image-layout or docker save tar (optionally gzip/zstd
 * compressed; format DETECT: OCI if it has index.json) from path: verifies
 * and stores its blobs, checks every image is complete (INVALID_ARGUMENT
 * naming a missing blob, no image recorded), records its images (named by
 * reference if given and the archive holds one image, else by the names in
 * the archive, else "<none>@digest"). */
int img_import(img_store *s, const char *path, img_archive_format format, const char *reference,
               img_info **out, size_t *n,
               vs_err *err);

/* The cached ext4 root filesystem of an image (built on first use): its
 * path, a key naming (manifest, sizes), and whether it already existed.
 * size_bytes 0 = content + free_bytes. */
int img_rootfs(img_store *s, const char *reference, const oci_platform *platform,
               uint64_t size_bytes, uint64_t free_bytes, char *path, size_t path_len,
               char key[72], int *cached, vs_err *err);

int img_login(img_store *s, const char *server, const char *username, const char *password,
              int insecure, vs_err *err);
int img_logout(img_store *s, const char *server, vs_err *err);

/* Number of references. */
int img_count(img_store *s);

void img_strv_free(char **v, size_t n);

#ifdef __cplusplus
}
#endif
#endif
