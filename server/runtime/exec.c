/* Processes in a running container: exec (create + start in the guest),
 * signal, wait, resize, close stdin. A finished exec is forgotten (here and
 * in the guest: Agent.DeleteProcess) once its exit reached a client, after
 * a short grace for other clients of the same exec, or EXEC_EXPIRE_MS
 * after it exited if no client ever asked; upkeep.c's thread does that. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

#define EXEC_GRACE_MS 5000           /* after its exit reached a client */
#define EXEC_EXPIRE_MS (10 * 60000) /* after its exit, if none asked */

rt_proc *rt_proc_of(rt_container *c, const char *exec_id, vs_err *err) {
  if (!exec_id || !*exec_id) return &c->init;
  for (rt_proc *p = c->execs; p; p = p->next)
    if (!strcmp(p->id, exec_id)) return p;
  vs_err_set(err, VS_NOT_FOUND, "container %s has no exec %s", c->id, exec_id);
  return NULL;
}

static void unlink_proc(rt_container *c, rt_proc *proc) {
  for (rt_proc **q = &c->execs; *q; q = &(*q)->next)
    if (*q == proc) {
      *q = proc->next;
      return;
    }
}

static void delete_in_guest(rt_container *c, const char *exec_id) {
  Vessel__V1__AgentDeleteProcessRequest d;
  vessel__v1__agent_delete_process_request__init(&d);
  d.container_id = c->id;
  d.process_id = (char *)exec_id;
  vs_err ignore;
  rt_agent(c, &vessel_v1_Agent_DeleteProcess, &d.base, NULL, 5000, &ignore);
}

void rt_execs_reap(rt_container *c) {
  int64_t now = rt_mono_ms();
  rt_proc *gone = NULL;
  pthread_mutex_lock(&c->mu);
  for (rt_proc **q = &c->execs; *q;) {
    rt_proc *p = *q;
    int done = p->exited && !p->users &&
               ((p->seen_mono_ms && now - p->seen_mono_ms >= EXEC_GRACE_MS) ||
                now - p->exited_mono_ms >= EXEC_EXPIRE_MS);
    if (!done) {
      q = &p->next;
      continue;
    }
    *q = p->next;
    p->next = gone;
    gone = p;
  }
  pthread_mutex_unlock(&c->mu);
  while (gone) {
    rt_proc *p = gone;
    gone = p->next;
    delete_in_guest(c, p->id);
    rt_proc_free(p); /* joins its (finished) relay */
    free(p);
  }
}

/* The relay's report of an exec's end. */
static void exec_exited(rt_container *c, rt_proc *p, const rt_exit *e) {
  pthread_mutex_lock(&c->mu);
  int first = rt_proc_set_exit_locked(p, e);
  pthread_mutex_unlock(&c->mu);
  if (!first) return;
  rt_proc_wake(p);
  rt_emit(c, EVB_PROCESS_EXITED, p->id, e);
}

int rt_start_process(rt_container *c, rt_proc *p, rt_exit_fn on_exit, vs_err *err) {
  if (rt_proc_open_stdio(c, p, on_exit, err) < 0) return -1;
  Vessel__V1__AgentStartProcessRequest req;
  vessel__v1__agent_start_process_request__init(&req);
  req.container_id = c->id;
  req.process_id = p->id[0] ? p->id : c->id;
  ProtobufCMessage *resp;
  if (rt_agent(c, &vessel_v1_Agent_StartProcess, &req.base, &resp, AGENT_TIMEOUT_MS, err) < 0) {
    rt_proc_join(p);
    return -1;
  }
  pthread_mutex_lock(&c->mu);
  p->pid = ((Vessel__V1__AgentStartProcessResponse *)resp)->pid;
  p->started = 1;
  pthread_mutex_unlock(&c->mu);
  vrpc_msg_free(resp);
  return 0;
}

static int exec_in(rt_container *c, const char *exec_id, const Vessel__V1__ProcessSpec *spec,
                   char exec_out[128], int *pid, vs_err *err) {
  pthread_mutex_lock(&c->mu);
  int running = c->state == RT_RUNNING;
  pthread_mutex_unlock(&c->mu);
  if (!running) return vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is not running", c->id);
  char eid[128];
  if (exec_id && *exec_id) {
    if (!rt_valid_id(exec_id))
      return vs_err_set(err, VS_INVALID_ARGUMENT, "exec ID \"%s\" is not valid", exec_id);
    snprintf(eid, sizeof eid, "%s", exec_id);
  } else {
    rt_random_id(eid);
    eid[12] = '\0';
  }
  Vessel__V1__ProcessSpec *p = rt_exec_spec(spec, c->spec->process, err);
  if (!p) return -1;
  rt_proc *proc = calloc(1, sizeof *proc);
  if (!proc) {
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  rt_proc_init(proc, eid);
  pthread_mutex_lock(&c->mu);
  vs_err ignore;
  if (rt_proc_of(c, eid, &ignore)) {
    pthread_mutex_unlock(&c->mu);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    rt_proc_free(proc);
    free(proc);
    return vs_err_set(err, VS_ALREADY_EXISTS, "exec %s exists in %s", eid, c->id);
  }
  proc->next = c->execs;
  c->execs = proc;
  pthread_mutex_unlock(&c->mu);

  Vessel__V1__AgentCreateProcessRequest req;
  vessel__v1__agent_create_process_request__init(&req);
  req.container_id = c->id;
  req.process_id = eid;
  req.process = p;
  int rc = rt_agent(c, &vessel_v1_Agent_CreateProcess, &req.base, NULL, AGENT_TIMEOUT_MS, err);
  protobuf_c_message_free_unpacked(&p->base, NULL);
  if (rc == 0) rc = rt_start_process(c, proc, exec_exited, err);
  if (rc < 0) { /* a failed exec leaves no trace */
    pthread_mutex_lock(&c->mu);
    unlink_proc(c, proc);
    pthread_mutex_unlock(&c->mu);
    delete_in_guest(c, eid);
    rt_proc_free(proc);
    free(proc);
    return -1;
  }
  snprintf(exec_out, 128, "%s", eid);
  pthread_mutex_lock(&c->mu);
  *pid = proc->pid;
  pthread_mutex_unlock(&c->mu);
  rt_emit(c, EVB_PROCESS_STARTED, eid, NULL);
  return 0;
}

int rt_exec(rt_runtime *rt, const char *id, const char *exec_id, const Vessel__V1__ProcessSpec *spec,
            char exec_out[128], int *pid, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  int rc = exec_in(c, exec_id, spec, exec_out, pid, err);
  rt_put(c);
  return rc;
}

/* 0 if the process (init for "") runs; NOT_FOUND or FAILED_PRECONDITION. */
static int running(rt_container *c, const char *exec_id, vs_err *err) {
  pthread_mutex_lock(&c->mu);
  rt_proc *p = rt_proc_of(c, exec_id, err);
  int live = p && p->started && !p->exited;
  pthread_mutex_unlock(&c->mu);
  if (!p) return -1;
  return live ? 0 : vs_err_set(err, VS_FAILED_PRECONDITION, "process %s of %s is not running",
                               exec_id && *exec_id ? exec_id : "init", c->id);
}

static int signal_in(rt_container *c, const char *exec_id, int sig, int all, vs_err *err) {
  if (sig < 1 || sig > 64) return vs_err_set(err, VS_INVALID_ARGUMENT, "signal %d is not 1..64", sig);
  if (all && exec_id && *exec_id)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "all signals every process: give no exec_id");
  if (running(c, exec_id, err) < 0) return -1;
  Vessel__V1__AgentSignalProcessRequest req;
  vessel__v1__agent_signal_process_request__init(&req);
  req.container_id = c->id;
  req.process_id = exec_id && *exec_id ? (char *)exec_id : c->id;
  req.signal = sig;
  req.all = all;
  return rt_agent(c, &vessel_v1_Agent_SignalProcess, &req.base, NULL, AGENT_TIMEOUT_MS, err);
}

int rt_signal(rt_runtime *rt, const char *id, const char *exec_id, int sig, int all, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  int rc = signal_in(c, exec_id, sig, all, err);
  rt_put(c);
  return rc;
}

static int wait_in(rt_container *c, const char *exec_id, int cancel_fd, rt_exit *out, vs_err *err) {
  pthread_mutex_lock(&c->mu);
  rt_proc *p = rt_proc_of(c, exec_id, err);
  if (p) p->users++; /* p stays while waited for */
  pthread_mutex_unlock(&c->mu);
  if (!p) return -1;
  int rc = 0;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    int done = 0;
    /* init: a stopped container reports its last exit */
    if (p->exited) {
      *out = p->exit;
      done = 1;
      if (p->id[0]) p->seen_mono_ms = rt_mono_ms();
    } else if (!p->id[0] && c->state == RT_STOPPED && c->has_exit) {
      *out = c->last_exit;
      done = 1;
    }
    pthread_mutex_unlock(&c->mu);
    if (done) break;
    struct pollfd pf[2] = {{p->exit_fd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    int n = poll(pf, cancel_fd >= 0 ? 2 : 1, 1000);
    if (n > 0 && (pf[1].revents & POLLIN)) {
      rc = vs_err_set(err, VS_CANCELLED, "wait cancelled");
      break;
    }
  }
  pthread_mutex_lock(&c->mu);
  p->users--;
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int rt_wait(rt_runtime *rt, const char *id, const char *exec_id, int cancel_fd, rt_exit *out,
            vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  int rc = wait_in(c, exec_id, cancel_fd, out, err);
  rt_put(c);
  return rc;
}

/* A unary agent call about one process of the container id. */
static int proc_call(rt_runtime *rt, const char *id, const vrpc_method *m, ProtobufCMessage *req,
                     char **container_id, char **process_id, const char *exec_id, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  *container_id = c->id;
  *process_id = exec_id && *exec_id ? (char *)exec_id : c->id;
  int rc = running(c, exec_id, err) < 0 ? -1 : rt_agent(c, m, req, NULL, AGENT_TIMEOUT_MS, err);
  rt_put(c);
  return rc;
}

int rt_resize(rt_runtime *rt, const char *id, const char *exec_id, uint32_t rows, uint32_t cols,
              vs_err *err) {
  if (!rows || !cols) return vs_err_set(err, VS_INVALID_ARGUMENT, "rows and cols must be > 0");
  Vessel__V1__ConsoleSize size;
  vessel__v1__console_size__init(&size);
  size.rows = rows;
  size.cols = cols;
  Vessel__V1__AgentResizeProcessRequest req;
  vessel__v1__agent_resize_process_request__init(&req);
  req.size = &size;
  return proc_call(rt, id, &vessel_v1_Agent_ResizeProcess, &req.base, &req.container_id,
                   &req.process_id, exec_id, err);
}

int rt_close_stdin(rt_runtime *rt, const char *id, const char *exec_id, vs_err *err) {
  Vessel__V1__AgentCloseStdinRequest req;
  vessel__v1__agent_close_stdin_request__init(&req);
  return proc_call(rt, id, &vessel_v1_Agent_CloseStdin, &req.base, &req.container_id,
                   &req.process_id, exec_id, err);
}
