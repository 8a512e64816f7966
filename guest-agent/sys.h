/* sy: guest-wide system operations: clock, entropy, sysctl, binfmt_misc,
 * memory figures, power. */
#ifndef VESSEL_GUEST_AGENT_SYS_H
#define VESSEL_GUEST_AGENT_SYS_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

int sy_set_time(int64_t seconds, int32_t nanos, vs_err *err);

/* RNDADDENTROPY on /dev/urandom, credited at 8 bits per byte. */
int sy_add_entropy(const void *data, size_t len, vs_err *err);

/* key dotted or slashed; NOT_FOUND for an unknown key. */
int sy_sysctl(const char *key, const char *value, vs_err *err);
/* /proc/sys/... of key (checked: no "..", exists). */
int sy_sysctl_path(const char *key, char *path, size_t size, vs_err *err);
/* 1 for the keys of an IPC namespace (kernel.shm*, kernel.msg*,
 * kernel.sem, fs.mqueue.*): those are set in the container's own. */
int sy_sysctl_ipc(const char *key);

/* Parses MemTotal/MemAvailable out of /proc/meminfo text (bytes). */
int sy_parse_meminfo(const char *text, uint64_t *total, uint64_t *avail);

/* Builds a binfmt_misc register line ":name:M:offset:magic:mask:interp:flags"
 * with magic/mask bytes escaped as \xHH. type 1 = magic, 2 = extension. */
int sy_binfmt_line(const char *name, int type, unsigned offset,
                   const uint8_t *magic, size_t magic_len, const uint8_t *mask,
                   size_t mask_len, const char *interpreter, const char *flags,
                   char *out, size_t out_len, vs_err *err);

/* Mounts binfmt_misc if needed and registers line. */
int sy_binfmt_register(const char *name, const char *line, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
