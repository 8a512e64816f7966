/* Agent handlers: containers, processes, stdio, events. */
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <sys/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest-agent/caps.h"
#include "guest-agent/fs.h"
#include "guest-agent/dns.h"
#include "guest-agent/netlink.h"
#include "guest-agent/process.h"
#include "guest-agent/service.h"
#include "guest-agent/stdio.h"

int svc_exec_from_spec(const Vessel__V1__ProcessSpec *ps, sp_exec *x, ct_user *u,
                       gid_t *gids, vs_err *err) {
  if (!ps) return vs_err_set(err, VS_INVALID_ARGUMENT, "process spec missing");
  if (sp_exec_init(x, (const char *const *)ps->args, ps->n_args,
                   (const char *const *)ps->env, ps->n_env, ps->cwd, err) < 0)
    return -1;
  x->terminal = ps->terminal;
  if (ps->console_size && ps->console_size->rows) x->rows = (unsigned short)ps->console_size->rows;
  if (ps->console_size && ps->console_size->cols) x->cols = (unsigned short)ps->console_size->cols;
  x->no_new_privs = ps->no_new_privileges;
  if (ps->oom_score_adj < -1000 || ps->oom_score_adj > 1000) {
    sp_exec_free(x);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "oom_score_adj out of range");
  }
  x->oom_score_adj = ps->oom_score_adj;
  if (ps->n_rlimits > SP_MAX_RLIMITS) {
    sp_exec_free(x);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "too many rlimits");
  }
  for (size_t i = 0; i < ps->n_rlimits; i++) {
    int r = sp_rlimit_from_name(ps->rlimits[i]->type);
    if (r < 0) {
      sp_exec_free(x);
      return vs_err_set(err, VS_INVALID_ARGUMENT, "unknown rlimit \"%s\"", ps->rlimits[i]->type);
    }
    x->rlimits[i].resource = r;
    x->rlimits[i].lim.rlim_cur = ps->rlimits[i]->soft == UINT64_MAX ? RLIM_INFINITY : ps->rlimits[i]->soft;
    x->rlimits[i].lim.rlim_max = ps->rlimits[i]->hard == UINT64_MAX ? RLIM_INFINITY : ps->rlimits[i]->hard;
    x->n_rlimits++;
  }
  if (ps->capabilities) {
    if (cap_resolve((const char *const *)ps->capabilities->add, ps->capabilities->n_add,
                    (const char *const *)ps->capabilities->drop, ps->capabilities->n_drop,
                    &x->caps, err) < 0) {
      sp_exec_free(x);
      return -1;
    }
  } else {
    x->caps = cap_default_set();
  }
  memset(u, 0, sizeof *u);
  u->name = "";
  if (ps->user) {
    u->name = ps->user->name;
    u->uid = ps->user->uid;
    u->gid = ps->user->gid;
    size_t n = ps->user->n_additional_gids < 64 ? ps->user->n_additional_gids : 64;
    for (size_t i = 0; i < n; i++) gids[i] = ps->user->additional_gids[i];
    u->extra_gids = gids;
    u->n_extra = n;
  }
  return 0;
}

static int create_container(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentCreateContainerRequest, req, err);
  int rc = -1;
  sp_exec x;
  memset(&x, 0, sizeof x);
  sp_rootfs *r = calloc(1, sizeof *r);
  ct_user u;
  gid_t gids[64];
  char resolv[4096], hosts[8192];
  const char **keys = NULL, **vals = NULL;
  if (!r) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  if (!req->rootfs) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "rootfs missing");
    goto out;
  }
  if (req->n_mounts > SP_MAX_MOUNTS) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "too many mounts");
    goto out;
  }
  for (size_t i = 0; i < req->n_mounts; i++) {
    Vessel__V1__Mount *m = req->mounts[i];
    sp_mount *sm = &r->mounts[i];
    if (m->destination[0] != '/' || strstr(m->destination, "..")) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "mount destination \"%s\" must be absolute", m->destination);
      goto out;
    }
    if (fs_parse_options((const char *const *)m->options, m->n_options, &sm->flags,
                         &sm->propagation, sm->data, sizeof sm->data, err) < 0)
      goto out;
    sm->bind = strcmp(m->type, "bind") == 0 || (sm->flags & MS_BIND);
    snprintf(sm->type, sizeof sm->type, "%s", m->type);
    snprintf(sm->source, sizeof sm->source, "%s", m->source);
    snprintf(sm->target, sizeof sm->target, "%s", m->destination);
    r->n_mounts++;
  }
  const Vessel__V1__PathRestrictions *pr = req->path_restrictions;
  if (pr) {
    r->custom_paths = 1;
    char *const *lists[2] = {pr->masked, pr->readonly};
    size_t ns[2] = {pr->n_masked, pr->n_readonly};
    for (int l = 0; l < 2; l++) {
      if (ns[l] > SP_MAX_PATHS) {
        vs_err_set(err, VS_INVALID_ARGUMENT, "path_restrictions: at most %d paths a list", SP_MAX_PATHS);
        goto out;
      }
      for (size_t i = 0; i < ns[l]; i++) {
        const char *p = lists[l][i];
        if (p[0] != '/' || strstr(p, "..") || strlen(p) >= sizeof r->masked[0]) {
          vs_err_set(err, VS_INVALID_ARGUMENT, "path_restrictions: \"%s\" is not an absolute path "
                     "without \"..\" under 256 bytes", p);
          goto out;
        }
        snprintf(l ? r->ro_paths[i] : r->masked[i], sizeof r->masked[0], "%s", p);
      }
    }
    r->n_masked = pr->n_masked;
    r->n_ro_paths = pr->n_readonly;
  }
  if (svc_exec_from_spec(req->process, &x, &u, gids, err) < 0) goto out;
  ct_spec s;
  memset(&s, 0, sizeof s);
  s.id = req->container_id;
  s.rootfs_type = req->rootfs->type;
  s.rootfs_source = req->rootfs->source;
  s.rootfs_options = (const char *const *)req->rootfs->options;
  s.n_rootfs_options = req->rootfs->n_options;
  s.hostname = req->hostname;
  if (req->dns) {
    dns_resolv_conf((const char *const *)req->dns->nameservers, req->dns->n_nameservers,
                   (const char *const *)req->dns->search, req->dns->n_search,
                   (const char *const *)req->dns->options, req->dns->n_options, resolv,
                   sizeof resolv);
    s.resolv_conf = resolv;
  }
  size_t used = 0;
  hosts[0] = '\0';
  for (size_t i = 0; i < req->n_hosts; i++)
    used += dns_hosts_line(req->hosts[i]->ip, (const char *const *)req->hosts[i]->hostnames,
                          req->hosts[i]->n_hostnames, hosts + used, sizeof hosts - used);
  /* "<first address of eth0> <hostname>" */
  char addr[64];
  const char *hn = req->hostname[0] ? req->hostname : req->container_id;
  if (nl_first_ipv4("eth0", addr, sizeof addr) == 0 && used < sizeof hosts)
    snprintf(hosts + used, sizeof hosts - used, "%s\t%.63s\n", addr, hn);
  s.hosts_extra = hosts;
  if (req->resources)
    cg_limits_from(req->resources->milli_cpus, req->resources->memory_bytes,
                   req->resources->pids_max, req->resources->cpu_quota_us,
                   req->resources->cpu_period_us, &s.limits);
  if (req->n_sysctls) {
    keys = calloc(req->n_sysctls, sizeof *keys);
    vals = calloc(req->n_sysctls, sizeof *vals);
    if (!keys || !vals) {
      vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
      goto out;
    }
    for (size_t i = 0; i < req->n_sysctls; i++) {
      keys[i] = req->sysctls[i]->key;
      vals[i] = req->sysctls[i]->value;
    }
    s.sysctl_keys = keys;
    s.sysctl_values = vals;
    s.n_sysctls = req->n_sysctls;
  }
  s.user = &u;
  s.share_pid = req->share_pid;
  s.share_ipc = req->share_ipc;
  rc = ct_create(a, &s, r, &x, err);
out:
  sp_exec_free(&x);
  free(r);
  free(keys);
  free(vals);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentCreateContainerResponse resp = VESSEL__V1__AGENT_CREATE_CONTAINER_RESPONSE__INIT;
  return vrpc_send(call, &resp.base, err);
}

static int delete_container(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentDeleteContainerRequest, req, err);
  int rc = ct_delete(ctx, req->container_id, req->force, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentDeleteContainerResponse resp = VESSEL__V1__AGENT_DELETE_CONTAINER_RESPONSE__INIT;
  return vrpc_send(call, &resp.base, err);
}

static int update_container(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentUpdateContainerRequest, req, err);
  cg_limits l;
  memset(&l, 0, sizeof l);
  const Vessel__V1__Resources *r = req->resources;
  if (r) cg_limits_from(r->milli_cpus, r->memory_bytes, r->pids_max, r->cpu_quota_us, r->cpu_period_us, &l);
  char cgroup[sizeof ((ag_container *)0)->cgroup];
  pthread_mutex_lock(&a->mu);
  ag_container *c = ag_find_container(a, req->container_id);
  int found = c != NULL;
  if (found) snprintf(cgroup, sizeof cgroup, "%s", c->cgroup);
  pthread_mutex_unlock(&a->mu);
  int rc = found ? cg_update(cgroup, &l, err) : vs_err_set(err, VS_NOT_FOUND, "no container %s", req->container_id);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentUpdateContainerResponse resp = VESSEL__V1__AGENT_UPDATE_CONTAINER_RESPONSE__INIT;
  return vrpc_send(call, &resp.base, err);
}

static int create_process(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentCreateProcessRequest, req, err);
  sp_exec x;
  memset(&x, 0, sizeof x);
  ct_user u;
  gid_t gids[64];
  int rc = -1;
  ag_process *p = NULL;
  if (!ag_valid_id(req->process_id) || strcmp(req->process_id, req->container_id) == 0) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "bad process id \"%s\"", req->process_id);
    goto out;
  }
  if (svc_exec_from_spec(req->process, &x, &u, gids, err) < 0) goto out;
  pthread_mutex_lock(&a->mu);
  ag_container *c = ag_find_container(a, req->container_id);
  if (!c || c->creating || c->deleting) {
    pthread_mutex_unlock(&a->mu);
    vs_err_set(err, VS_NOT_FOUND, "no container %s", req->container_id);
    goto out;
  }
  if (ag_find_process(c, req->process_id)) {
    pthread_mutex_unlock(&a->mu);
    vs_err_set(err, VS_ALREADY_EXISTS, "process %s already exists", req->process_id);
    goto out;
  }
  if (!c->procs || c->procs->state != AG_RUNNING) {
    pthread_mutex_unlock(&a->mu);
    vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is not running", req->container_id);
    goto out;
  }
  snprintf(x.ptmx, sizeof x.ptmx, "/proc/%d/root/dev/pts/ptmx", (int)c->procs->pid);
  pthread_mutex_unlock(&a->mu);
  /* The container stays while this runs: only Delete frees it, and it
   * waits for running processes (init is running). */
  if (ct_prepare_exec(c, &u, &x, err) < 0) goto out;
  p = pr_new(req->process_id, 0, &x, err);
  if (!p) goto out;
  pthread_mutex_lock(&a->mu);
  if (ag_find_process(c, req->process_id)) {
    pthread_mutex_unlock(&a->mu);
    vs_err_set(err, VS_ALREADY_EXISTS, "process %s already exists", req->process_id);
    goto out;
  }
  p->ct = c;
  p->next = c->procs->next; /* init stays first */
  c->procs->next = p;
  p = NULL;
  pthread_mutex_unlock(&a->mu);
  rc = 0;
out:
  pr_free(p);
  sp_exec_free(&x);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentCreateProcessResponse resp = VESSEL__V1__AGENT_CREATE_PROCESS_RESPONSE__INIT;
  return vrpc_send(call, &resp.base, err);
}

/* Finds (container, process) and takes a reference; NOT_FOUND otherwise. */
static ag_process *get_process(agent *a, const char *cid, const char *pid, ag_container **cout,
                               vs_err *err) {
  pthread_mutex_lock(&a->mu);
  ag_container *c = ag_find_container(a, cid);
  ag_process *p = c && !c->creating && !c->deleting ? ag_find_process(c, pid) : NULL;
  if (p) p->refs++;
  pthread_mutex_unlock(&a->mu);
  if (!c) vs_err_set(err, VS_NOT_FOUND, "no container %s", cid);
  else if (!p) vs_err_set(err, VS_NOT_FOUND, "no process %s in container %s", pid, cid);
  if (cout) *cout = c;
  return p;
}

static void put_process(agent *a, ag_process *p) {
  pthread_mutex_lock(&a->mu);
  p->refs--;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

static int start_process(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentStartProcessRequest, req, err);
  ag_container *c;
  ag_process *p = get_process(a, req->container_id, req->process_id, &c, err);
  vrpc_msg_free(req_msg);
  if (!p) return -1;
  pid_t pid = 0;
  int rc = pr_start(a, c, p, &pid, err);
  put_process(a, p);
  if (rc < 0) return -1;
  Vessel__V1__AgentStartProcessResponse resp = VESSEL__V1__AGENT_START_PROCESS_RESPONSE__INIT;
  resp.pid = pid;
  return vrpc_send(call, &resp.base, err);
}

/* 1 if pid catches (or ignores) sig, 0 if neither, -1 if it is gone. */
static int catches(pid_t pid, int sig) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  int r = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "SigIgn:", 7) || !strncmp(line, "SigCgt:", 7)) {
      unsigned long long mask = strtoull(line + 7, NULL, 16);
      r = (r > 0) | (int)((mask >> (sig - 1)) & 1);
    }
  fclose(f);
  return r;
}

/* Milliseconds since pid started (-1 if gone). */
static long long age_ms(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the name may hold spaces */
  unsigned long long start = 0;
  for (int field = 3; p && field <= 22; field++) {
    p = strchr(p + 1, ' ');
    if (p && field == 22) start = strtoull(p + 1, NULL, 10);
  }
  struct timespec now;
  clock_gettime(CLOCK_BOOTTIME, &now);
  long long hz = sysconf(_SC_CLK_TCK);
  return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (long long)(start * 1000 / hz);
}

/* The kernel drops a signal to a PID namespace's init that does not catch
 * it. A process just started may not have installed its handler yet (in
 * an emulated VM that takes a while): while it is younger than
 * YOUNG_MS, wait for the handler and send the signal again. */
#define YOUNG_MS 2000
static void redeliver(pid_t pid, int sig) {
  if (sig == SIGKILL || sig == SIGSTOP || catches(pid, sig) != 0) return;
  for (long long age; (age = age_ms(pid)) >= 0 && age < YOUNG_MS;) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    int c = catches(pid, sig);
    if (c < 0) return;
    if (c == 1) { /* (an ignore set meanwhile ignores this one too) */
      kill(pid, sig);
      return;
    }
  }
}

static int signal_process(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentSignalProcessRequest, req, err);
  ag_container *c;
  ag_process *p = get_process(a, req->container_id, req->process_id, &c, err);
  int sig = req->signal, all = req->all;
  vrpc_msg_free(req_msg);
  if (!p) return -1;
  int rc = pr_signal(a, c, p, sig, all, err);
  pthread_mutex_lock(&a->mu);
  pid_t pid = p->is_init && !all && p->state == AG_RUNNING ? p->pid : 0;
  pthread_mutex_unlock(&a->mu);
  if (rc == 0 && pid > 0) redeliver(pid, sig);
  put_process(a, p);
  if (rc < 0) return -1;
  Vessel__V1__AgentSignalProcessResponse resp = VESSEL__V1__AGENT_SIGNAL_PROCESS_RESPONSE__INIT;
  return vrpc_send(call, &resp.base, err);
}

static int call_cancelled(void *call) { return vrpc_cancelled(call); }

static int wait_process(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentWaitProcessRequest, req, err);
  ag_process *p = get_process(a, req->container_id, req->process_id, NULL, err);
  vrpc_msg_free(req_msg);
  if (!p) return -1;
  int rc = pr_wait(a, p, call_cancelled, call, err);
  Google__Protobuf__Timestamp ts;
  Vessel__V1__ExitStatus st;
  pr_exit_status(a, p, &st, &ts);
  put_process(a, p);
  if (rc < 0) return -1;
  Vessel__V1__AgentWaitProcessResponse resp = VESSEL__V1__AGENT_WAIT_PROCESS_RESPONSE__INIT;
  resp.exit_status = &st;
  return vrpc_send(call, &resp.base, err);
}

static int resize_process(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentResizeProcessRequest, req, err);
  ag_process *p = get_process(a, req->container_id, req->process_id, NULL, err);
  unsigned rows = req->size ? req->size->rows : 0, cols = req->size ? req->size->cols : 0;
  vrpc_msg_free(req_msg);
  if (!p) return -1;
  int rc = pr_resize(a, p, rows, cols, err);
  put_process(a, p);
  if (rc < 0) return -1;
  Vessel__V1__AgentResizeProcessResponse resp = VESSEL__V1__AGENT_RESIZE_PROCESS_RESPONSE__INIT;
  return vrpc_send(call, &resp.base, err);
}

static int close_stdin(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentCloseStdinRequest, req, err);
  ag_process *p = get_process(a, req->container_id, req->process_id, NULL, err);
  vrpc_msg_free(req_msg);
  if (!p) return -1;
  pr_close_stdin(a, p);
  put_process(a, p);
  Vessel__V1__AgentCloseStdinResponse resp = VESSEL__V1__AGENT_CLOSE_STDIN_RESPONSE__INIT;
  return vrpc_send(call, &resp.base, err);
}

static int delete_process(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentDeleteProcessRequest, req, err);
  int rc = 0;
  ag_process *victim = NULL;
  pthread_mutex_lock(&a->mu);
  ag_container *c = ag_find_container(a, req->container_id);
  if (!c || c->creating) {
    rc = vs_err_set(err, VS_NOT_FOUND, "no container %s", req->container_id);
  } else if (!req->process_id[0] || strcmp(req->process_id, c->id) == 0) {
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "the init process is deleted with DeleteContainer");
  } else {
    ag_process *p = ag_find_process(c, req->process_id);
    if (p && (p->state == AG_RUNNING || p->starting)) {
      rc = vs_err_set(err, VS_FAILED_PRECONDITION, "process %s is still running", p->id);
    } else if (p && p->refs > 0) {
      rc = vs_err_set(err, VS_FAILED_PRECONDITION, "process %s is in use (Stdio/Wait)", p->id);
    } else if (p) {
      for (ag_process **pp = &c->procs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
          *pp = p->next;
          break;
        }
      victim = p;
    }
  }
  pthread_mutex_unlock(&a->mu);
  vrpc_msg_free(req_msg);
  pr_free(victim);
  if (rc < 0) return -1;
  Vessel__V1__AgentDeleteProcessResponse resp = VESSEL__V1__AGENT_DELETE_PROCESS_RESPONSE__INIT;
  return vrpc_send(call, &resp.base, err);
}

static int stdio(vrpc_call *call, void *ctx, vs_err *err) { return sio_serve(ctx, call, err); }

static int events(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentEventsRequest, req, err);
  vrpc_msg_free(req_msg);
  ev_sub *s = ev_subscribe(&a->events);
  if (!s) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "cannot subscribe");
  int rc = 0;
  while (rc == 0) {
    ev_event e;
    int n = ev_next(&a->events, s, &e);
    if (n < 0) {
      rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "events subscriber too slow; events dropped");
      break;
    }
    if (n == 0) {
      struct pollfd pf[2] = {{s->fd, POLLIN, 0}, {vrpc_cancel_fd(call), POLLIN, 0}};
      poll(pf, 2, -1);
      if (pf[1].revents) rc = vs_err_set(err, VS_CANCELLED, "events cancelled");
      continue;
    }
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT, xts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Vessel__V1__Event ev = VESSEL__V1__EVENT__INIT;
    Vessel__V1__ExitStatus st = VESSEL__V1__EXIT_STATUS__INIT;
    ts.seconds = e.at.tv_sec;
    ts.nanos = (int32_t)e.at.tv_nsec;
    ev.sequence = e.sequence;
    ev.timestamp = &ts;
    ev.type = e.type;
    ev.container_id = e.container_id;
    ev.process_id = e.process_id;
    if (e.has_exit) {
      st.code = e.exit_code;
      st.signal = e.exit_signal;
      st.oom_killed = e.oom_killed;
      xts.seconds = e.exited_at.tv_sec;
      xts.nanos = (int32_t)e.exited_at.tv_nsec;
      st.exited_at = &xts;
      ev.exit_status = &st;
    }
    Vessel__V1__AgentEventsResponse resp = VESSEL__V1__AGENT_EVENTS_RESPONSE__INIT;
    resp.event = &ev;
    rc = vrpc_send(call, &resp.base, err);
  }
  ev_unsubscribe(&a->events, s);
  return rc;
}

void svc_container_handlers(vessel_v1_Agent_handlers *h) {
  h->CreateContainer = create_container;
  h->DeleteContainer = delete_container;
  h->UpdateContainer = update_container;
  h->CreateProcess = create_process;
  h->StartProcess = start_process;
  h->SignalProcess = signal_process;
  h->WaitProcess = wait_process;
  h->ResizeProcess = resize_process;
  h->CloseStdin = close_stdin;
  h->DeleteProcess = delete_process;
  h->Stdio = stdio;
  h->Events = events;
}
