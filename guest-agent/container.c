/* Container creation and deletion. */
#include "guest-agent/container.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h> /* also BLKFLSBUF */
#include <sys/stat.h>
#include <unistd.h>

#include "guest-agent/fs.h"
#include "guest-agent/process.h"
#include "guest-agent/sys.h"

void ct_bundle_file(const ag_container *c, const char *name, char *out, size_t n) {
  snprintf(out, n, "%s/%s", c->bundle, name);
}

void ct_hosts_text(const char *extra, const char *hostname, const char *addr,
                   char *out, size_t out_len) {
  snprintf(out, out_len,
           "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s%s%s%s%s",
           extra ? extra : "", addr && *addr ? addr : "", addr && *addr ? "\t" : "",
           addr && *addr ? hostname : "", addr && *addr ? "\n" : "");
}

int ct_prepare_exec(const ag_container *c, const ct_user *u, sp_exec *x, vs_err *err) {
  char passwd[400], group[400];
  snprintf(passwd, sizeof passwd, "%s/etc/passwd", c->rootfs);
  snprintf(group, sizeof group, "%s/etc/group", c->rootfs);
  ct_user none = {"", 0, 0, NULL, 0};
  if (!u) u = &none;
  if (usr_resolve(passwd, group, u->name, u->uid, u->gid, u->extra_gids, u->n_extra,
                  &x->user, err) < 0)
    return -1;
  size_t n = 0;
  int home = 0, term = 0;
  for (; x->envp[n]; n++) {
    if (strncmp(x->envp[n], "HOME=", 5) == 0) home = 1;
    if (strncmp(x->envp[n], "TERM=", 5) == 0) term = 1;
  }
  /* sp_exec_init reserved spare slots for these. */
  if (!home) {
    char v[300];
    snprintf(v, sizeof v, "HOME=%s", x->user.home);
    x->envp[n++] = strdup(v);
  }
  if (x->terminal && !term) x->envp[n++] = strdup("TERM=xterm");
  x->envp[n] = NULL;
  for (size_t i = 0; i < n; i++)
    if (!x->envp[i]) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

static void unlink_container(agent *a, ag_container *c) {
  for (ag_container **pp = &a->containers; *pp; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      return;
    }
  }
}

static void teardown(ag_container *c) {
  if (c->rootfs_mounted) umount2(c->rootfs, MNT_DETACH);
  vs_err e;
  cg_remove(c->cgroup, &e);
  static const char *const files[] = {"hosts", "resolv.conf", "hostname"};
  for (size_t i = 0; i < 3; i++) {
    char p[400];
    ct_bundle_file(c, files[i], p, sizeof p);
    unlink(p);
  }
  rmdir(c->rootfs);
  rmdir(c->bundle);
  while (c->procs) {
    ag_process *p = c->procs;
    c->procs = p->next;
    pr_free(p);
  }
  free(c);
}

static int write_bundle(ag_container *c, const ct_spec *s, vs_err *err) {
  char path[400];
  char buf[8192];
  ct_bundle_file(c, "hostname", path, sizeof path);
  snprintf(buf, sizeof buf, "%s\n", c->hostname);
  if (fs_write_file(path, buf, strlen(buf), 0644, 0, err) < 0) return -1;
  ct_bundle_file(c, "resolv.conf", path, sizeof path);
  if (s->resolv_conf) {
    if (fs_write_file(path, s->resolv_conf, strlen(s->resolv_conf), 0644, 0, err) < 0) return -1;
  } else {
    ssize_t n = fs_read_small("/etc/resolv.conf", buf, sizeof buf);
    if (n < 0) n = 0;
    if (fs_write_file(path, buf, (size_t)n, 0644, 0, err) < 0) return -1;
  }
  /* The container's own address is added by ConfigureHosts callers; at
   * create time eth0's first address is looked up by the adapter and
   * passed in hosts_extra. */
  ct_bundle_file(c, "hosts", path, sizeof path);
  ct_hosts_text(s->hosts_extra, c->hostname, NULL, buf, sizeof buf);
  return fs_write_file(path, buf, strlen(buf), 0644, 0, err);
}

/* A disk's content may have changed under the guest since it last read it
 * (a VM restored from a template, a warm spare's disk refilled by the
 * host): what the page cache holds of it goes before it is mounted. */
static void drop_cached_blocks(const char *dev) {
  struct stat st;
  if (stat(dev, &st) < 0 || !S_ISBLK(st.st_mode)) return;
  int fd = open(dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ioctl(fd, BLKFLSBUF, 0);
  close(fd);
}

/* Records init p as pid among c's processes (a->mu held). */
static void add_init(ag_container *c, ag_process *p, pid_t pid) {
  p->pid = pid;
  p->next = c->procs;
  c->procs = p;
}

int ct_create(agent *a, const ct_spec *s, sp_rootfs *r, sp_exec *x, vs_err *err) {
  if (!ag_valid_id(s->id)) {
    sp_exec_free(x);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad container id \"%s\"", s->id);
  }
  ag_container *c = calloc(1, sizeof *c);
  if (!c) {
    sp_exec_free(x);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  snprintf(c->id, sizeof c->id, "%s", s->id);
  snprintf(c->bundle, sizeof c->bundle, "%s/%s", CT_RUN_DIR, s->id);
  snprintf(c->rootfs, sizeof c->rootfs, "%s/rootfs", c->bundle);
  snprintf(c->cgroup, sizeof c->cgroup, "%s/vessel/%s", CG_ROOT, s->id);
  snprintf(c->hostname, sizeof c->hostname, "%.63s", s->hostname && *s->hostname ? s->hostname : s->id);

  pthread_mutex_lock(&a->mu);
  if (ag_find_container(a, s->id)) {
    pthread_mutex_unlock(&a->mu);
    free(c);
    sp_exec_free(x);
    return vs_err_set(err, VS_ALREADY_EXISTS, "container %s already exists", s->id);
  }
  c->creating = 1;
  c->next = a->containers;
  a->containers = c;
  pthread_mutex_unlock(&a->mu);

  int status[2] = {-1, -1}, start[2] = {-1, -1};
  ag_process *p = NULL;
  if (fs_mkdir_all(c->rootfs, 0755, err) < 0) goto fail;

  /* Root filesystem: a disk (or a bind of a guest tree) at a private place. */
  unsigned long flags, prop;
  char data[1024];
  if (fs_parse_options(s->rootfs_options, s->n_rootfs_options, &flags, &prop, data,
                       sizeof data, err) < 0)
    goto fail;
  int readonly = (flags & MS_RDONLY) != 0;
  const char *type = s->rootfs_type && *s->rootfs_type ? s->rootfs_type : "ext4";
  if (!s->rootfs_source || !*s->rootfs_source) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "rootfs source is empty");
    goto fail;
  }
  if (access(s->rootfs_source, F_OK) < 0) {
    vs_err_set(err, VS_NOT_FOUND, "rootfs source %s does not exist", s->rootfs_source);
    goto fail;
  }
  drop_cached_blocks(s->rootfs_source);
  if (strcmp(type, "bind") == 0) {
    if (fs_mount(s->rootfs_source, c->rootfs, NULL, MS_BIND | MS_REC, NULL, 0, err) < 0) goto fail;
  } else if (fs_mount(s->rootfs_source, c->rootfs, type, flags & ~MS_RDONLY, data[0] ? data : NULL,
                      0, err) < 0) {
    goto fail;
  }
  c->rootfs_mounted = 1;

  if (write_bundle(c, s, err) < 0) goto fail;
  for (size_t i = 0; i < s->n_sysctls; i++) {
    const char *k = s->sysctl_keys[i], *v = s->sysctl_values[i];
    if (!sy_sysctl_ipc(k)) { /* the VM's (its network is the pod's) */
      if (sy_sysctl(k, v, err) < 0) goto fail;
      continue;
    }
    if (r->n_sysctls == SP_MAX_SYSCTLS || strlen(v) >= sizeof r->sysctls[0].value) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "sysctl %s: at most %d IPC sysctls of values < 96 bytes",
                 k, SP_MAX_SYSCTLS);
      goto fail;
    }
    if (sy_sysctl_path(k, r->sysctls[r->n_sysctls].path, sizeof r->sysctls[0].path, err) < 0) goto fail;
    snprintf(r->sysctls[r->n_sysctls++].value, sizeof r->sysctls[0].value, "%s", v);
  }
  if (cg_create(c->cgroup, &s->limits, err) < 0 || cg_allow_devices(c->cgroup, err) < 0) goto fail;
  cg_read_key(c->cgroup, "memory.events", "oom_kill", &c->oom_kills_seen);
  if (ct_prepare_exec(c, s->user, x, err) < 0) goto fail;

  snprintf(r->root, sizeof r->root, "%s", c->rootfs);
  snprintf(r->bundle, sizeof r->bundle, "%s", c->bundle);
  snprintf(r->hostname, sizeof r->hostname, "%s", c->hostname);
  r->readonly = readonly;

  p = pr_new(s->id, 1, x, err);
  if (!p) goto fail;
  char procs[400];
  snprintf(procs, sizeof procs, "%s/cgroup.procs", c->cgroup);
  p->exec->cgroup_fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (p->exec->cgroup_fd < 0) {
    vs_err_errno(err, VS_INTERNAL, errno, "open %s", procs);
    goto fail;
  }
  if (pipe2(status, O_CLOEXEC) < 0 || pipe2(start, O_CLOEXEC) < 0) {
    vs_err_errno(err, VS_INTERNAL, errno, "pipe");
    goto fail;
  }
  p->ct = c;
  /* Registered under the lock before the reaper can see the pid exit. */
  pthread_mutex_lock(&a->mu);
  int sharing = s->share_pid || s->share_ipc;
  if (sharing && !a->holder && (a->holder = sp_spawn_holder(err)) < 0) a->holder = 0;
  pid_t holder = a->holder;
  pid_t pid = sharing && !holder ? -1
                                 : sp_spawn_init(r, p->exec, status[1], start[0],
                                                 s->share_pid ? holder : 0,
                                                 s->share_ipc ? holder : 0, err);
  if (pid > 0 && !sharing) add_init(c, p, pid);
  pthread_mutex_unlock(&a->mu);
  close(status[1]);
  close(start[0]);
  status[1] = start[0] = -1;
  if (pid < 0) goto fail;
  if (sharing) { /* pid is the helper's: the init's comes first */
    pid_t init = 0;
    int t = sp_read_status(status[0], &init, err);
    if (t != 'P') {
      if (t != 'E') vs_err_set(err, VS_INTERNAL, "container setup failed");
      goto fail;
    }
    pthread_mutex_lock(&a->mu);
    add_init(c, p, pid = init);
    pthread_mutex_unlock(&a->mu);
  }
  ag_process *registered = p;
  p = NULL;
  pid_t dummy;
  int t = sp_read_status(status[0], &dummy, err);
  if (t != 'R') {
    if (t != 'E') vs_err_set(err, VS_INTERNAL, "container setup failed");
    kill(pid, SIGKILL);
    goto fail;
  }
  pthread_mutex_lock(&a->mu);
  registered->start_w = start[1];
  registered->errpipe_r = status[0];
  c->creating = 0;
  pthread_mutex_unlock(&a->mu);
  return 0;

fail:
  for (int i = 0; i < 2; i++) {
    if (status[i] >= 0) close(status[i]);
    if (start[i] >= 0) close(start[i]);
  }
  pr_free(p);
  pthread_mutex_lock(&a->mu);
  unlink_container(a, c);
  /* A failed init child is reaped as an orphan; forget it here. */
  for (ag_process *q = c->procs; q; q = q->next) q->state = AG_EXITED;
  pthread_mutex_unlock(&a->mu);
  teardown(c);
  sp_exec_free(x);
  return -1;
}

static int alive(ag_container *c) {
  for (ag_process *p = c->procs; p; p = p->next)
    if (p->pid > 0 && p->state != AG_EXITED) return 1;
  return 0;
}

static int busy(ag_container *c) {
  for (ag_process *p = c->procs; p; p = p->next)
    if (p->refs > 0 || p->starting) return 1;
  return 0;
}

int ct_delete(agent *a, const char *id, int force, vs_err *err) {
  pthread_mutex_lock(&a->mu);
  ag_container *c = ag_find_container(a, id);
  if (!c || c->creating || c->deleting) {
    pthread_mutex_unlock(&a->mu);
    return vs_err_set(err, VS_NOT_FOUND, "no container %s", id);
  }
  if (alive(c)) {
    ag_process *init = c->procs;
    int created_only = init && init->state == AG_CREATED && !init->next;
    if (!force && !created_only) {
      pthread_mutex_unlock(&a->mu);
      return vs_err_set(err, VS_FAILED_PRECONDITION,
                        "container %s has running processes (use force)", id);
    }
    c->deleting = 1;
    for (ag_process *p = c->procs; p; p = p->next)
      if (p->pid > 0 && p->state != AG_EXITED) kill(p->pid, SIGKILL);
    cg_signal_all(c->cgroup, SIGKILL);
  }
  c->deleting = 1;
  /* Wait for the reaper to record every exit and for attached streams to
   * let go of the processes. */
  while (alive(c) || busy(c)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    if (alive(c)) cg_signal_all(c->cgroup, SIGKILL);
  }
  unlink_container(a, c);
  pthread_mutex_unlock(&a->mu);
  teardown(c);
  return 0;
}
