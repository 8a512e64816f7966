/* content: vessel's digest-addressed blob store (under <root>/content).
 *
 * A blob is visible under a digest only once its bytes were verified against
 * it: ingests write to ingest/<hex>.partial, are checked, fsync'd and renamed
 * into blobs/sha256/<hex>. A kill -9 at any moment leaves either no blob or a
 * complete one, plus at most a partial file that the next ingest of the same
 * digest resumes. An flock on the partial file makes concurrent ingests of
 * one digest (two pulls of the same image, two vesselds) download it once. */
#ifndef VESSEL_SERVER_CONTENT_CONTENT_H
#define VESSEL_SERVER_CONTENT_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cs_store cs_store;
typedef struct cs_writer cs_writer;

/* Opens (creating) the store in dir; removes leftovers of interrupted
 * commits. */
cs_store *cs_open(const char *dir, vs_err *err);
void cs_close(cs_store *cs);

/* 1 if the blob exists (its size in *size if non-NULL), 0 if not. */
int cs_exists(cs_store *cs, const char *digest, int64_t *size);

/* Path of a blob (whether or not it exists). */
int cs_blob_path(cs_store *cs, const char *digest, char *buf, size_t n);

/* Reads a whole blob of at most max bytes, re-verifying its digest (for
 * manifests and configs). *data is NUL-terminated; free() it. */
int cs_read(cs_store *cs, const char *digest, size_t max, char **data, size_t *len, vs_err *err);

/* Makes the names of the blobs committed so far durable (one fsync of the
 * blob directory for a whole pull instead of one per blob): call it before
 * recording anything that refers to them. */
int cs_sync(cs_store *cs, vs_err *err);

/* Stores bytes; with expected non-NULL they must hash to it (DATA_LOSS
 * otherwise). The digest is written to out (may be NULL). */
int cs_put(cs_store *cs, const void *data, size_t len, const char *expected, char out[72],
           vs_err *err);

/* Starts or resumes an ingest of digest with the given size (-1 unknown).
 * Returns 0 with *w set (continue writing at cs_writer_offset), 1 if the
 * blob already exists (possibly written meanwhile by a concurrent ingest
 * this call waited for), -1 on error. */
int cs_writer_open(cs_store *cs, const char *digest, int64_t size, cs_writer **w, vs_err *err);
int64_t cs_writer_offset(cs_writer *w);
/* More bytes than the announced size is DATA_LOSS. */
int cs_writer_write(cs_writer *w, const void *data, size_t len, vs_err *err);
/* Drops what was written so far (the source could not resume). */
int cs_writer_restart(cs_writer *w, vs_err *err);
/* Verifies size and digest, makes the blob's bytes durable (fsync) and the
 * blob visible; frees w. On mismatch the partial data is discarded and
 * DATA_LOSS returned. The new name is durable after cs_sync. */
int cs_writer_commit(cs_writer *w, vs_err *err);
/* Frees w; keep_partial=1 keeps the bytes for a later resume (not an
 * empty partial, nor one whose write failed for want of space). */
void cs_writer_abort(cs_writer *w, int keep_partial);
/* Removes the partial ingests no live writer owns (cs_open does at
 * start); returns how many, *bytes (may be NULL) their disk use. */
int cs_reclaim_partials(cs_store *cs, int64_t *bytes);

int cs_delete(cs_store *cs, const char *digest, vs_err *err);

/* Calls fn for every blob; stops early when fn returns non-zero. */
int cs_walk(cs_store *cs, int (*fn)(const char *digest, int64_t size, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
