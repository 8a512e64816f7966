/* The image store's metrics: pulls and rootfs builds as they happen, the
 * content store's size when the registry renders. */
#include <time.h>

#include "server/images/images_internal.h"

static int add_size(const char *digest, int64_t size, void *arg) {
  (void)digest;
  *(double *)arg += (double)size;
  return 0;
}

static void collect(void *arg) {
  img_store *s = arg;
  double bytes = 0;
  if (cs_walk(s->cs, add_size, &bytes) == 0) mt_set(s->m_content_bytes, bytes);
}

int img_metrics(img_store *s, mt_registry *r, vs_err *err) {
  const char *code[] = {"code", NULL};
  mt_family *bytes = mt_counter(r, "vessel_pull_bytes_total",
                                "Bytes received from registries by image pulls (manifests and "
                                "blobs; a retried transfer's twice).",
                                NULL, err);
  mt_family *secs =
      bytes ? mt_histogram(r, "vessel_pull_duration_seconds",
                           "Time image pulls took, failed ones included.", NULL,
                           mt_seconds_buckets, mt_n_seconds_buckets, err)
            : NULL;
  mt_family *errors =
      secs ? mt_counter(r, "vessel_pull_errors_total",
                        "Image pulls that failed, by gRPC status code.", code, err)
           : NULL;
  mt_family *builds =
      errors ? mt_counter(r, "vessel_rootfs_builds_total",
                          "Root filesystems built from image layers (not found in the cache), "
                          "failed ones included.",
                          NULL, err)
             : NULL;
  mt_family *build_errors =
      builds ? mt_counter(r, "vessel_rootfs_build_errors_total",
                          "Root filesystem builds that failed.", NULL, err)
             : NULL;
  mt_family *build_secs =
      build_errors ? mt_histogram(r, "vessel_rootfs_build_duration_seconds",
                                  "Time root filesystem builds took.", NULL, mt_seconds_buckets,
                                  mt_n_seconds_buckets, err)
                   : NULL;
  mt_family *content =
      build_secs ? mt_gauge(r, "vessel_content_store_bytes",
                            "Bytes of the blobs in the content store (layers, configs, "
                            "manifests).",
                            NULL, err)
                 : NULL;
  if (!content) return -1;
  s->m_pull_bytes = mt_with(bytes, NULL);
  s->m_pull_secs = mt_with(secs, NULL);
  s->m_pull_errors = errors;
  s->m_rootfs_builds = mt_with(builds, NULL);
  s->m_rootfs_errors = mt_with(build_errors, NULL);
  s->m_rootfs_secs = mt_with(build_secs, NULL);
  s->m_content_bytes = mt_with(content, NULL);
  return mt_collector(r, collect, s, err);
}

double img_clock(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void img_pull_received(void *arg, size_t n) {
  img_store *s = arg;
  mt_add(s->m_pull_bytes, (double)n);
}
