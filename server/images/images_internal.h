/* Internals shared by the image store's files. */
#ifndef VESSEL_SERVER_IMAGES_INTERNAL_H
#define VESSEL_SERVER_IMAGES_INTERNAL_H

#include <pthread.h>

#include <sqlite3.h>

#include "server/images/images.h"

/* Digests a running pull or push needs, kept alive through a concurrent GC. */
typedef struct img_pin {
  char (*d)[72];
  size_t n;
  struct img_pin *next;
} img_pin;

struct img_store {
  char root[4000];
  char auth_path[4100];
  char certs_dir[4100];
  sqlite3 *db;
  cs_store *cs;
  pthread_mutex_t mu; /* GC vs. recording references; guards pins */
  img_pin *pins;
  oci_platform native; /* what a request without a platform means */
  /* metrics.c: series (all NULL without img_metrics) */
  mt_series *m_pull_bytes, *m_pull_secs;
  mt_family *m_pull_errors; /* by code */
  mt_series *m_rootfs_builds, *m_rootfs_errors, *m_rootfs_secs;
  mt_series *m_content_bytes;
};

/* want, or the store's native platform where want names no architecture. */
void img_want(const img_store *s, const oci_platform *want, oci_platform *out);

/* metrics.c: a monotonic clock in seconds, for durations. */
double img_clock(void);
/* Counts received bytes of a pull (reg_options.received; arg: the store). */
void img_pull_received(void *arg, size_t n);

int img_build_info(img_store *s, const char *name, const oci_descriptor *target,
                   const oci_platform *want, int64_t updated, img_info *info, vs_err *err);
int img_strv_push(char ***v, size_t *n, const char *s);
/* A stored manifest or index, read and parsed (free with
 * oci_manifest_free / oci_index_free). */
int img_read_manifest(img_store *s, const char *digest, oci_manifest *m, vs_err *err);
int img_read_index(img_store *s, const char *digest, oci_index *idx, vs_err *err);

/* Pins digest for the pin's lifetime (GC treats it as live). */
void img_pin_add(img_store *s, img_pin *pin, const char *digest);
void img_pin_release(img_store *s, img_pin *pin);
int img_pinned(img_store *s, const char *digest); /* with s->mu held */

/* Credentials for a registry host: explicit ones win, then Login's store,
 * then the Docker config. */
void img_creds(img_store *s, const char *domain, const char *user, const char *pass, char **u,
               char **p);

#endif
