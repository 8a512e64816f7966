/* Process lifecycle and the PID 1 reaper. */
#include "guest-agent/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/vs_log.h"
#include "guest-agent/cgroup.h"
#include "vessel/v1/types.pb-c.h"

#define LOG(lvl, ...) vs_log("vminitd", lvl, __VA_ARGS__)

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

ag_process *pr_new(const char *id, int is_init, sp_exec *x, vs_err *err) {
  ag_process *p = calloc(1, sizeof *p);
  sp_exec *ex = calloc(1, sizeof *ex);
  if (!p || !ex) {
    free(p);
    free(ex);
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  snprintf(p->id, sizeof p->id, "%s", id);
  p->is_init = is_init;
  p->stdin_w = p->stdout_r = p->stderr_r = p->pty_master = -1;
  p->start_w = p->errpipe_r = -1;
  *ex = *x;
  memset(x, 0, sizeof *x);
  p->exec = ex;
  p->terminal = ex->terminal;
  if (ex->terminal) {
    int m = ex->ptmx[0] ? open(ex->ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1, s = -1;
    if (m >= 0) { /* the peer through the master: no path in another namespace */
      if (unlockpt(m) < 0 || (s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
        close(m);
        m = -1;
      }
    }
    char name[128] = "the pty";
    if (m < 0) {
      m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0) {
        vs_err_errno(err, VS_INTERNAL, errno, "allocate pty");
        if (m >= 0) close(m);
        pr_free(p);
        return NULL;
      }
      s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    }
    if (s < 0) {
      vs_err_errno(err, VS_INTERNAL, errno, "open %s", name);
      close(m);
      pr_free(p);
      return NULL;
    }
    struct winsize ws = {ex->rows, ex->cols, 0, 0};
    ioctl(m, TIOCSWINSZ, &ws);
    p->pty_master = m;
    ex->stdin_r = s;
    ex->stdout_w = fcntl(s, F_DUPFD_CLOEXEC, 0);
    ex->stderr_w = fcntl(s, F_DUPFD_CLOEXEC, 0);
    p->stdout_r = -1;
  } else {
    int in[2], out[2], er[2];
    if (pipe2(in, O_CLOEXEC) < 0) goto pipe_fail;
    if (pipe2(out, O_CLOEXEC) < 0) {
      close(in[0]), close(in[1]);
      goto pipe_fail;
    }
    if (pipe2(er, O_CLOEXEC) < 0) {
      close(in[0]), close(in[1]), close(out[0]), close(out[1]);
      goto pipe_fail;
    }
    ex->stdin_r = in[0];
    p->stdin_w = in[1];
    p->stdout_r = out[0];
    ex->stdout_w = out[1];
    p->stderr_r = er[0];
    ex->stderr_w = er[1];
    /* 1 MiB pipes: fewer wakeups under TCG for bulk output. */
    fcntl(p->stdout_r, F_SETPIPE_SZ, 1 << 20);
    fcntl(p->stdin_w, F_SETPIPE_SZ, 1 << 20);
  }
  return p;
pipe_fail:
  vs_err_errno(err, VS_RESOURCE_EXHAUSTED, errno, "pipe");
  pr_free(p);
  return NULL;
}

static void close_child_ends(sp_exec *x) {
  close_fd(&x->stdin_r);
  close_fd(&x->stdout_w);
  close_fd(&x->stderr_w);
  close_fd(&x->cgroup_fd);
}

void pr_free(ag_process *p) {
  if (!p) return;
  close_fd(&p->stdin_w);
  close_fd(&p->stdout_r);
  close_fd(&p->stderr_r);
  close_fd(&p->pty_master);
  close_fd(&p->start_w);
  close_fd(&p->errpipe_r);
  if (p->exec) {
    close_child_ends(p->exec);
    sp_exec_free(p->exec);
    free(p->exec);
  }
  free(p);
}

static uint64_t oom_kills(ag_container *c) {
  uint64_t v = 0;
  cg_read_key(c->cgroup, "memory.events", "oom_kill", &v);
  return v;
}

static void publish(agent *a, ag_container *c, ag_process *p, int exited) {
  ev_event e;
  memset(&e, 0, sizeof e);
  if (p->is_init)
    e.type = exited ? VESSEL__V1__EVENT_TYPE__EVENT_TYPE_CONTAINER_EXITED
                    : VESSEL__V1__EVENT_TYPE__EVENT_TYPE_CONTAINER_STARTED;
  else
    e.type = exited ? VESSEL__V1__EVENT_TYPE__EVENT_TYPE_PROCESS_EXITED
                    : VESSEL__V1__EVENT_TYPE__EVENT_TYPE_PROCESS_STARTED;
  snprintf(e.container_id, sizeof e.container_id, "%s", c->id);
  if (!p->is_init) snprintf(e.process_id, sizeof e.process_id, "%s", p->id);
  if (exited) {
    e.has_exit = 1;
    e.exit_code = p->exit_code;
    e.exit_signal = p->exit_signal;
    e.oom_killed = p->oom_killed;
    e.exited_at = p->exited_at;
  }
  ev_publish(&a->events, &e);
}

static void set_exit(agent *a, ag_container *c, ag_process *p, int status) {
  p->state = AG_EXITED;
  clock_gettime(CLOCK_REALTIME, &p->exited_at);
  if (WIFSIGNALED(status)) {
    p->exit_signal = WTERMSIG(status);
    p->exit_code = 128 + p->exit_signal;
    if (p->exit_signal == SIGKILL && oom_kills(c) > p->oom_base) p->oom_killed = 1;
  } else {
    p->exit_code = WEXITSTATUS(status);
  }
  pthread_cond_broadcast(&a->cv);
  publish(a, c, p, 1);
}

void pr_exit_status(agent *a, ag_process *p, Vessel__V1__ExitStatus *st,
                    Google__Protobuf__Timestamp *ts) {
  vessel__v1__exit_status__init(st);
  google__protobuf__timestamp__init(ts);
  pthread_mutex_lock(&a->mu);
  st->code = p->exit_code;
  st->signal = p->exit_signal;
  st->oom_killed = p->oom_killed;
  ts->seconds = p->exited_at.tv_sec;
  ts->nanos = (int32_t)p->exited_at.tv_nsec;
  pthread_mutex_unlock(&a->mu);
  st->exited_at = ts;
}

void pr_record_exit(agent *a, pid_t pid, int status) {
  for (ag_container *c = a->containers; c; c = c->next)
    for (ag_process *p = c->procs; p; p = p->next)
      if (p->pid == pid && p->state != AG_EXITED) {
        set_exit(a, c, p, status);
        return;
      }
  /* Not ours (yet): an orphan, or a child whose pid is still being
   * recorded. Keep it for a moment. */
  a->unclaimed[a->unclaimed_next % 64].pid = pid;
  a->unclaimed[a->unclaimed_next % 64].status = status;
  a->unclaimed_next++;
}

/* a->mu held: registers pid for p, consuming an exit that already came. */
static void claim(agent *a, ag_container *c, ag_process *p, pid_t pid) {
  p->pid = pid;
  p->state = AG_RUNNING;
  for (int i = 0; i < 64; i++) {
    if (a->unclaimed[i].pid == pid) {
      a->unclaimed[i].pid = 0;
      set_exit(a, c, p, a->unclaimed[i].status);
      return;
    }
  }
}

int pr_start(agent *a, ag_container *c, ag_process *p, pid_t *pid_out, vs_err *err) {
  pthread_mutex_lock(&a->mu);
  if (p->state != AG_CREATED || p->starting) {
    pthread_mutex_unlock(&a->mu);
    return vs_err_set(err, VS_FAILED_PRECONDITION, "process %s was already started", p->id);
  }
  p->starting = 1;
  p->oom_base = oom_kills(c);
  int rc = 0;
  int status_r = -1;
  if (p->is_init) {
    /* The init child waits on start_w since CreateContainer. */
    p->state = AG_RUNNING;
    status_r = p->errpipe_r;
    p->errpipe_r = -1;
    char b = 1;
    if (write(p->start_w, &b, 1) != 1) rc = vs_err_errno(err, VS_INTERNAL, errno, "release init");
    close_fd(&p->start_w);
    pthread_mutex_unlock(&a->mu);
  } else {
    ag_process *init = c->procs;
    if (!init || !init->is_init || init->state != AG_RUNNING) {
      p->starting = 0;
      pthread_mutex_unlock(&a->mu);
      return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is not running", c->id);
    }
    pid_t init_pid = init->pid;
    pthread_mutex_unlock(&a->mu);
    int sp[2];
    if (pipe2(sp, O_CLOEXEC) < 0) {
      rc = vs_err_errno(err, VS_INTERNAL, errno, "pipe");
    } else {
      p->exec->cgroup_fd = -1;
      char procs[512];
      snprintf(procs, sizeof procs, "%s/cgroup.procs", c->cgroup);
      p->exec->cgroup_fd = open(procs, O_WRONLY | O_CLOEXEC);
      pid_t helper = sp_spawn_exec(init_pid, p->exec, sp[1], err);
      close(sp[1]);
      close_child_ends(p->exec);
      if (helper < 0) {
        rc = -1;
        close(sp[0]);
      } else {
        status_r = sp[0];
        pid_t pid = 0;
        int t = sp_read_status(status_r, &pid, err);
        if (t == 'P') {
          pthread_mutex_lock(&a->mu);
          claim(a, c, p, pid);
          pthread_mutex_unlock(&a->mu);
        } else {
          rc = -1;
          if (t != 'E') vs_err_set(err, VS_INTERNAL, "exec helper failed");
          close(status_r);
          status_r = -1;
        }
      }
    }
  }
  if (p->is_init) close_child_ends(p->exec);
  if (rc == 0 && status_r >= 0) {
    pid_t dummy;
    int t = sp_read_status(status_r, &dummy, err);
    if (t == 'E') rc = -1;
    else if (t != 0) rc = vs_err_set(err, VS_INTERNAL, "unexpected status from child");
  }
  if (status_r >= 0) close(status_r);
  pthread_mutex_lock(&a->mu);
  p->starting = 0;
  if (rc < 0 && p->state == AG_CREATED) {
    /* Never ran: counts as exited so waiters and Stdio finish. */
    p->state = AG_EXITED;
    p->exit_code = 127;
    clock_gettime(CLOCK_REALTIME, &p->exited_at);
    pthread_cond_broadcast(&a->cv);
  }
  if (rc == 0) {
    if (pid_out) *pid_out = p->pid;
    publish(a, c, p, 0);
  }
  pthread_mutex_unlock(&a->mu);
  return rc;
}

int pr_signal(agent *a, ag_container *c, ag_process *p, int sig, int all, vs_err *err) {
  if (sig < 1 || sig > 64) return vs_err_set(err, VS_INVALID_ARGUMENT, "signal %d out of range", sig);
  pthread_mutex_lock(&a->mu);
  int rc = 0;
  if (all) {
    if (!p->is_init) {
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "all=true needs the init process");
    } else {
      cg_signal_all(c->cgroup, sig);
    }
  } else if (p->state != AG_RUNNING || p->pid <= 0) {
    rc = vs_err_set(err, VS_FAILED_PRECONDITION, "process %s is %s", p->id,
                    p->state == AG_EXITED ? "not running (exited)" : "not started");
  } else if (kill(p->pid, sig) < 0) {
    rc = vs_err_errno(err, VS_INTERNAL, errno, "kill %d", (int)p->pid);
  }
  pthread_mutex_unlock(&a->mu);
  return rc;
}

int pr_exited_within(agent *a, ag_process *p, int ms) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += ms / 1000;
  dl.tv_nsec += (ms % 1000) * 1000000L;
  if (dl.tv_nsec >= 1000000000L) {
    dl.tv_sec++;
    dl.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&a->mu);
  while (p->state != AG_EXITED && pthread_cond_timedwait(&a->cv, &a->mu, &dl) == 0) {
  }
  int exited = p->state == AG_EXITED;
  pthread_mutex_unlock(&a->mu);
  return exited;
}

int pr_wait(agent *a, ag_process *p, int (*cancelled)(void *), void *arg, vs_err *err) {
  while (!pr_exited_within(a, p, 100))
    if (cancelled && cancelled(arg)) return vs_err_set(err, VS_CANCELLED, "wait cancelled");
  return 0;
}

int pr_resize(agent *a, ag_process *p, unsigned rows, unsigned cols, vs_err *err) {
  if (rows == 0 || cols == 0 || rows > 65535 || cols > 65535)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad console size %ux%u", rows, cols);
  pthread_mutex_lock(&a->mu);
  int rc = 0;
  if (!p->terminal || p->pty_master < 0) {
    rc = vs_err_set(err, VS_FAILED_PRECONDITION, "process %s has no terminal", p->id);
  } else if (p->state == AG_EXITED) {
    rc = vs_err_set(err, VS_FAILED_PRECONDITION, "process %s has exited", p->id);
  } else {
    struct winsize ws = {(unsigned short)rows, (unsigned short)cols, 0, 0};
    if (ioctl(p->pty_master, TIOCSWINSZ, &ws) < 0)
      rc = vs_err_errno(err, VS_INTERNAL, errno, "TIOCSWINSZ");
  }
  pthread_mutex_unlock(&a->mu);
  return rc;
}

int pr_close_stdin(agent *a, ag_process *p) {
  pthread_mutex_lock(&a->mu);
  if (p->terminal) {
    /* A pty has no separate stdin: send the EOF character. */
    if (p->pty_master >= 0 && !p->stdin_closed) {
      ssize_t n = write(p->pty_master, "\x04", 1);
      (void)n;
    }
  } else {
    close_fd(&p->stdin_w);
  }
  p->stdin_closed = 1;
  pthread_mutex_unlock(&a->mu);
  return 0;
}

/* ---- reaper ---- */

static void check_oom(agent *a) {
  for (ag_container *c = a->containers; c; c = c->next) {
    uint64_t v = oom_kills(c);
    if (v > c->oom_kills_seen) {
      c->oom_kills_seen = v;
      ev_event e;
      memset(&e, 0, sizeof e);
      e.type = VESSEL__V1__EVENT_TYPE__EVENT_TYPE_CONTAINER_OOM;
      snprintf(e.container_id, sizeof e.container_id, "%s", c->id);
      ev_publish(&a->events, &e);
    }
  }
}

static void *reaper_main(void *arg) {
  agent *a = arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  for (;;) {
    struct pollfd pf = {sfd, POLLIN, 0};
    poll(&pf, 1, 250);
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
    }
    /* An OOM kill is counted before its victim can be reaped: its event
     * goes out before the exit it caused. */
    pthread_mutex_lock(&a->mu);
    check_oom(a);
    pthread_mutex_unlock(&a->mu);
    for (;;) {
      int status;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      pthread_mutex_lock(&a->mu);
      pr_record_exit(a, pid, status);
      pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_lock(&a->mu);
    check_oom(a);
    pthread_mutex_unlock(&a->mu);
  }
  return NULL;
}

int pr_start_reaper(agent *a, vs_err *err) {
  pthread_t t;
  if (pthread_create(&t, NULL, reaper_main, a) != 0)
    return vs_err_set(err, VS_INTERNAL, "cannot start reaper thread");
  pthread_detach(t);
  return 0;
}
