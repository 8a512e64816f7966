/* usr: resolves a container user (Docker --user syntax) against the
 * container's own /etc/passwd and /etc/group. */
#ifndef VESSEL_GUEST_AGENT_USER_H
#define VESSEL_GUEST_AGENT_USER_H

#include <stddef.h>
#include <sys/types.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define USR_MAX_GROUPS 64

typedef struct usr_ident {
  uid_t uid;
  gid_t gid;
  gid_t groups[USR_MAX_GROUPS]; /* supplementary */
  size_t n_groups;
  char home[256];
  char name[64]; /* user name if known, else "" */
} usr_ident;

/* spec: "user", "user:group", "uid", "uid:gid" (names and numbers mixed), or
 * "" to use uid/gid. passwd/group are file paths (missing files are treated
 * as empty). A named user or group that does not exist is NOT_FOUND.
 * extra_gids are appended to the supplementary groups. */
int usr_resolve(const char *passwd, const char *group, const char *spec,
                uid_t uid, gid_t gid, const gid_t *extra_gids, size_t n_extra,
                usr_ident *out, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
