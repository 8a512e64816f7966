/* Small file-system helpers every module needs the same way. */
#ifndef VESSEL_COMMON_VS_FS_H
#define VESSEL_COMMON_VS_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* mkdir -p with mode for the directories it creates. */
int vs_mkdir_p(const char *path, mode_t mode, vs_err *err);

/* Replaces path with data atomically: a temp file beside it, fsync'd and
 * renamed, so a crash leaves the old content or the new, never a mix. */
int vs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, vs_err *err);

/* Reads a whole file of at most max bytes into a NUL-terminated buffer the
 * caller frees; *len (if not NULL) gets its size. ENOENT is VS_NOT_FOUND, a
 * larger file VS_OUT_OF_RANGE, so callers can word each for their users. */
char *vs_read_file(const char *path, size_t max, size_t *len, vs_err *err);

/* rm -r: removes path and, if it is a directory, everything in it (symlinks
 * are removed, never followed). 0 if path is gone afterwards. */
int vs_rm_rf(const char *path);

/* 1 if name is safe as one path component and a user-facing id:
 * [A-Za-z0-9][A-Za-z0-9_.-]*, 1 to max characters. */
int vs_valid_name(const char *name, size_t max);

#ifdef __cplusplus
}
#endif
#endif
