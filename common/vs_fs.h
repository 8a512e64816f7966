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

#ifdef __cplusplus
}
#endif
#endif
