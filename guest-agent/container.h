/* ct: containers: root filesystem, bundle files, cgroup, namespaces (via
 * the init child) and teardown. */
#ifndef VESSEL_GUEST_AGENT_CONTAINER_H
#define VESSEL_GUEST_AGENT_CONTAINER_H

#include <stddef.h>

#include "common/vs_err.h"
#include "guest-agent/agent.h"
#include "guest-agent/cgroup.h"
#include "guest-agent/spawn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CT_RUN_DIR "/run/vessel/c"

typedef struct ct_user {
  const char *name; /* Docker --user spec, "" = uid/gid */
  uid_t uid;
  gid_t gid;
  const gid_t *extra_gids;
  size_t n_extra;
} ct_user;

typedef struct ct_spec {
  const char *id;
  const char *rootfs_type; /* "ext4" (default), "bind", ... */
  const char *rootfs_source;
  const char *const *rootfs_options;
  size_t n_rootfs_options;
  const char *hostname; /* "" = id truncated */
  const char *resolv_conf; /* NULL = copy the guest's */
  const char *hosts_extra; /* lines after the localhost ones */
  cg_limits limits;
  const char *const *sysctl_keys;
  const char *const *sysctl_values;
  size_t n_sysctls;
  const ct_user *user;
  int share_pid, share_ipc; /* join the VM's shared namespaces (a->holder) */
} ct_spec;

/* Creates the container and its waiting init process. r holds the extra
 * mounts (targets inside the container); its root/bundle/hostname/readonly
 * are filled in here. Takes ownership of *x. */
int ct_create(agent *a, const ct_spec *s, sp_rootfs *r, sp_exec *x, vs_err *err);

/* Resolves u against the container's passwd/group and sets x->user, HOME
 * and (terminal) TERM. */
int ct_prepare_exec(const ag_container *c, const ct_user *u, sp_exec *x, vs_err *err);

int ct_delete(agent *a, const char *id, int force, vs_err *err);

/* "127.0.0.1 localhost\n::1 ...\n" + extra + "<addr> <hostname>\n". */
void ct_hosts_text(const char *extra, const char *hostname, const char *addr,
                   char *out, size_t out_len);

/* Path of a container's bundle file, e.g. "resolv.conf". */
void ct_bundle_file(const ag_container *c, const char *name, char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
