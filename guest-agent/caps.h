/* cap: Linux capability sets by name, Docker semantics (types.proto
 * Capabilities). */
#ifndef VESSEL_GUEST_AGENT_CAPS_H
#define VESSEL_GUEST_AGENT_CAPS_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CAP_COUNT 41 /* CAP_CHOWN .. CAP_CHECKPOINT_RESTORE (Linux 6.1) */

/* The OCI/Docker default set as a bit mask (bit n = capability n). */
uint64_t cap_default_set(void);

/* Number of a capability by name, with or without "CAP_", any case; -1 if
 * unknown. */
int cap_from_name(const char *name);

/* Resolves add/drop against the default set (see types.proto). */
int cap_resolve(const char *const *add, size_t n_add, const char *const *drop,
                size_t n_drop, uint64_t *out, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
