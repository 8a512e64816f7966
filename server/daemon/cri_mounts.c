/* The CRI's container mounts (ContainerConfig.mounts: host paths kubelet
 * chose) in a VM whose shares are fixed when it boots: each sandbox gets
 * one staging directory under <root>/cri-mounts, shared into its VM as a
 * pod volume at RunPodSandbox; a container's host path is bind-mounted on
 * the host into that directory at CreateContainer (9p shows what is
 * mounted under the share) and the container binds that path of the
 * volume. RemoveContainer and RemovePodSandbox undo the host mounts. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/v1/api.pb-c.h"
#include "server/daemon/daemon.h"

/* out (PATH_MAX): dir/<16 random hex digits>. */
static int new_name(const char *dir, char *out, vs_err *err) {
  uint8_t r[8];
  if (getrandom(r, sizeof r, 0) != sizeof r) return vs_err_errno(err, VS_INTERNAL, errno, "getrandom");
  int n = snprintf(out, PATH_MAX, "%s/", dir);
  for (int i = 0; i < 8 && n > 0 && n + 3 < PATH_MAX; i++) n += snprintf(out + n, 3, "%02x", r[i]);
  return 0;
}

int vd_cri_staging_new(vd_daemon *d, char *out, vs_err *err) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s/cri-mounts", d->cfg.root);
  mkdir(dir, 0700);
  if (new_name(dir, out, err) < 0) return -1;
  if (mkdir(out, 0700) < 0) return vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", out);
  return 0;
}

void vd_cri_unstage(const char *entry) {
  umount2(entry, MNT_DETACH);
  if (rmdir(entry) < 0) unlink(entry);
}

void vd_cri_staging_remove(const char *staging) {
  DIR *dir = opendir(staging);
  if (!dir) return;
  struct dirent *e;
  char path[PATH_MAX];
  while ((e = readdir(dir)))
    if (e->d_name[0] != '.') {
      snprintf(path, sizeof path, "%s/%s", staging, e->d_name);
      vd_cri_unstage(path);
    }
  closedir(dir);
  rmdir(staging);
}

int vd_cri_stage(const char *staging, const Runtime__V1__Mount *m, char *entry, vs_err *err) {
  const char *cp = m->container_path;
  if (*cp != '/' || strpbrk(cp, "\t\n") || strpbrk(m->host_path, "\t\n"))
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "Mount.container_path %s: give an absolute path (no tabs or newlines)", cp);
  if (m->image && *m->image->image)
    return vs_err_set(err, VS_UNIMPLEMENTED, "Mount.image (image volumes, at %s): not supported yet", cp);
  if (m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE)
    return vs_err_set(err, VS_UNIMPLEMENTED,
                      "Mount.propagation at %s: only PROPAGATION_PRIVATE (mounts do not propagate "
                      "between the node and a VM)", cp);
  if (m->recursive_read_only)
    return vs_err_set(err, VS_UNIMPLEMENTED, "Mount.recursive_read_only at %s: not supported yet", cp);
  if (m->n_uidmappings || m->n_gidmappings)
    return vs_err_set(err, VS_UNIMPLEMENTED, "Mount.uidMappings/gidMappings at %s: not supported yet", cp);
  char real[PATH_MAX];
  struct stat st;
  if (!*m->host_path || !realpath(m->host_path, real) || stat(real, &st) < 0)
    return vs_err_errno(err, VS_NOT_FOUND, errno, "Mount.host_path %s", m->host_path);
  if (new_name(staging, entry, err) < 0) return -1;
  int made = S_ISDIR(st.st_mode) ? mkdir(entry, 0700) : close(open(entry, O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (made < 0) return vs_err_errno(err, VS_INTERNAL, errno, "create %s", entry);
  if (mount(real, entry, NULL, MS_BIND | MS_REC, NULL) < 0 ||
      (m->readonly && mount(NULL, entry, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)) {
    int e = errno;
    vd_cri_unstage(entry);
    return vs_err_errno(err, VS_INTERNAL, e, "bind %s for %s", real, cp);
  }
  return 0;
}
