/* tar: a small streaming tar (ustar + pax path/linkpath) writer and
 * extractor for Agent.CopyOut / Agent.CopyIn. Gzip input is detected by its
 * magic and inflated with zlib. */
#ifndef VESSEL_GUEST_AGENT_TAR_H
#define VESSEL_GUEST_AGENT_TAR_H

#include <stddef.h>
#include <sys/types.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output sink: returns 0 or -1 with err set (e.g. the call was cancelled). */
typedef int (*tar_sink)(void *ctx, const void *data, size_t len, vs_err *err);

/* Archives path (not following a final symlink): a file under its base
 * name, a directory recursively with the directory as the top entry. */
int tar_write_path(const char *path, tar_sink sink, void *ctx, vs_err *err);

typedef struct tar_extract_opts {
  int chown;   /* override owners with uid/gid */
  uid_t uid;
  gid_t gid;
} tar_extract_opts;

/* Extracts a (possibly gzip-compressed) tar stream read from fd into the
 * existing directory dest. Entries may not leave dest ("..", absolute
 * paths are made relative). INVALID_ARGUMENT for a corrupt archive,
 * ALREADY_EXISTS when an entry would replace a directory by a non-directory
 * or back. */
int tar_extract_fd(int fd, const char *dest, const tar_extract_opts *o, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
