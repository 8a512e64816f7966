/* fs: small filesystem helpers of vminitd (mounts, directories, files).
 * Plain functions over syscalls, unit-testable on the host. */
#ifndef VESSEL_GUEST_AGENT_FS_H
#define VESSEL_GUEST_AGENT_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Splits mount(8)-style options into mount flags and the comma-joined data
 * string for the filesystem. "rbind" sets MS_BIND|MS_REC; propagation words
 * ("private", "rprivate", "slave", "shared", ...) go to *propagation (a
 * separate mount(2) call is needed for them; 0 if none). Returns 0 or -1
 * with INVALID_ARGUMENT when data would not fit. */
int fs_parse_options(const char *const *opts, size_t n, unsigned long *flags,
                     unsigned long *propagation, char *data, size_t data_len,
                     vs_err *err);

/* mkdir -p with mode for created directories; existing directories are fine,
 * an existing non-directory is ALREADY_EXISTS. */
int fs_mkdir_all(const char *path, mode_t mode, vs_err *err);

/* mount(2) with an error naming the call; mkdir creates the target first. */
int fs_mount(const char *src, const char *dst, const char *type,
             unsigned long flags, const char *data, int mkdir, vs_err *err);

/* Mount described by type/source/options ("bind" = MS_BIND), including a
 * second remount for bind+ro and a propagation change when asked for. */
int fs_mount_spec(const char *type, const char *src, const char *dst,
                  const char *const *opts, size_t n_opts, int mkdir, vs_err *err);

/* Writes a whole file (O_TRUNC, or O_APPEND when append), mode for new
 * files. */
int fs_write_file(const char *path, const void *data, size_t len, mode_t mode,
                  int append, vs_err *err);

/* Reads up to cap-1 bytes of a small file and NUL-terminates; returns the
 * length or -1 (errno set). */
ssize_t fs_read_small(const char *path, char *buf, size_t cap);

/* Joins root and an absolute path inside it ("/r" + "/etc/x"). Symlinks are
 * not resolved here. Returns -1 with INVALID_ARGUMENT for relative paths or
 * ".." components (no escaping the container root). */
int fs_join(const char *root, const char *path, char *out, size_t out_len,
            vs_err *err);

/* Resolves an absolute path inside root the way the container sees it:
 * symlinks (absolute ones too) are followed with root as "/", ".." never
 * climbs above root, at most 40 links. follow_last: also resolve a symlink
 * in the final component. Missing components are appended as they are (for
 * creating). Writes root + resolved path to out. */
int fs_secure_join(const char *root, const char *path, int follow_last, char *out,
                   size_t out_len, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
