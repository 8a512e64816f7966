/* registry: an OCI distribution (Docker registry v2) client on libcurl.
 *
 * One reg_client talks to one repository of one registry; it is safe to use
 * from several threads at once (parallel blob downloads share its token
 * cache and connection pool). Handles Basic and Bearer token auth, retries
 * with backoff (connection errors, 408, 429 with Retry-After, 5xx), resumes
 * interrupted blob downloads with Range, follows redirects to blob storage
 * without sending credentials to another host, and verifies every byte
 * against its digest through the content store. */
#ifndef VESSEL_SERVER_REGISTRY_REGISTRY_H
#define VESSEL_SERVER_REGISTRY_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"
#include "server/content/content.h"
#include "server/oci/oci.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reg_options {
  int insecure;          /* plain HTTP, or HTTPS without verification */
  const char *certs_dir; /* per-registry CAs: <certs_dir>/<host[:port]>/ca.crt */
  const char *username;  /* credentials; NULL = anonymous */
  const char *password;
  int push;              /* request push scope as well as pull */
  int max_attempts;      /* per request; 0 = 5 */
  int backoff_ms;        /* first retry delay, doubling; 0 = 200 */
  int max_backoff_ms;    /* cap for any delay incl. Retry-After; 0 = 10000 */
  /* A transfer slower than min_speed bytes/s for min_speed_secs fails (and
   * is retried, resuming): a trickle cannot hold a pull forever.
   * 0 = 1024 B/s over 30 s. */
  int min_speed, min_speed_secs;
  /* Polled during transfers (about once a second even when nothing moves)
   * and between retries: non-zero ends the request at once, CANCELLED. */
  int (*cancelled)(void *arg);
  void *cancel_arg;
  /* Told of the body bytes of every successful response as they arrive
   * (manifests and blobs, a retry's too): a count of bytes received. From
   * the downloading thread; must be quick. NULL = not told. */
  void (*received)(void *arg, size_t n);
  void *received_arg;
} reg_options;

typedef struct reg_client reg_client;

/* Progress of one blob: bytes so far of total. Called from the downloading
 * thread; must be quick. */
typedef void (*reg_progress_fn)(void *arg, const char *digest, int64_t done, int64_t total);

reg_client *reg_client_new(const oci_ref *ref, const reg_options *opts, vs_err *err);
void reg_client_free(reg_client *c);

/* GET /v2/ with credentials: succeeds when the registry accepts them
 * (UNAUTHENTICATED when it does not). */
int reg_ping(reg_client *c, vs_err *err);

/* Fetches a manifest or index by tag or digest. *body (NUL-terminated) and
 * *media_type are malloc'd. digest receives the sha256 of the body; when
 * ref_digest names a digest the body must match it (DATA_LOSS otherwise).
 * Bodies over OCI_MAX_DOCUMENT are refused. */
int reg_get_manifest(reg_client *c, const char *tag_or_digest, char **body, size_t *len,
                     char **media_type, char digest[72], vs_err *err);

/* Downloads a blob into the content store (resuming a partial ingest);
 * returns 0 also when the blob was already there. */
int reg_fetch_blob(reg_client *c, const oci_descriptor *d, cs_store *cs, reg_progress_fn fn,
                   void *arg, vs_err *err);

/* 1 if the registry has the blob (HEAD), 0 if not. */
int reg_blob_exists(reg_client *c, const char *digest, vs_err *err);

/* Uploads a blob from the content store unless the registry has it; tries a
 * cross-repository mount from mount_from (a repository path on the same
 * registry, may be NULL) first. Returns 1 if it was already there/mounted. */
int reg_push_blob(reg_client *c, cs_store *cs, const oci_descriptor *d, const char *mount_from,
                  reg_progress_fn fn, void *arg, vs_err *err);

/* PUT a manifest or index under a tag or digest. */
int reg_put_manifest(reg_client *c, const char *tag_or_digest, const char *media_type,
                     const char *body, size_t len, vs_err *err);

/* Credentials for host: vessel's own store (JSON written by Login) first,
 * then the Docker config (auths with base64 auth, credHelpers, credsStore
 * through docker-credential-* programs). Paths may be NULL. Returns 1 and
 * malloc'd strings when found, 0 when none, -1 on error. */
int reg_creds_lookup(const char *host, const char *vessel_store, const char *docker_config,
                     char **username, char **password, vs_err *err);
/* Stores (password non-NULL) or removes credentials in vessel's store,
 * atomically (temp file + rename, mode 0600). */
int reg_creds_store(const char *vessel_store, const char *host, const char *username,
                    const char *password, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
