/* Process stdio: one relay thread per process reads the agent's Stdio
 * stream and hands each chunk to the container log (init), to a bounded
 * buffer for late attachers (execs) and to every attached client; stdin
 * from clients goes straight back on the same stream. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

#define KEEP_MAX (1u << 20) /* exec output kept for a late attach */

static void signal_fd(int fd) {
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof one);
  (void)n;
}

void rt_proc_init(rt_proc *p, const char *id) {
  memset(p, 0, sizeof *p);
  snprintf(p->id, sizeof p->id, "%s", id ? id : "");
  p->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  pthread_mutex_init(&p->stdio_mu, NULL);
}

static rt_chunk *chunk_new(int stream, const void *data, size_t len) {
  rt_chunk *k = malloc(sizeof *k + len);
  if (!k) return NULL;
  k->next = NULL;
  k->stream = stream;
  k->len = len;
  memcpy(k->data, data, len);
  return k;
}

static void chunks_free(rt_chunk *k) {
  while (k) {
    rt_chunk *n = k->next;
    free(k);
    k = n;
  }
}

static int wants(const rt_attach *a, int stream) {
  return (stream == LG_STDOUT && (a->flags & RT_ATTACH_STDOUT)) ||
         (stream == LG_STDERR && (a->flags & RT_ATTACH_STDERR));
}

static void enqueue(rt_attach *a, int stream, const void *data, size_t len) {
  rt_chunk *k = chunk_new(stream, data, len);
  if (!k) return;
  if (a->tail) a->tail->next = k;
  else a->head = k;
  a->tail = k;
  signal_fd(a->wake_fd);
}

/* With c->mu held. */
static void deliver(rt_container *c, rt_proc *p, int stream, const void *data, size_t len) {
  if (!p->id[0] && c->logs) {
    vs_err ignore;
    lg_write(c->logs, stream, data, len, &ignore);
  } else if (p->id[0] && p->kept_bytes + len <= KEEP_MAX) {
    rt_chunk *k = chunk_new(stream, data, len);
    if (k) {
      if (p->kept_tail) p->kept_tail->next = k;
      else p->kept = k;
      p->kept_tail = k;
      p->kept_bytes += len;
    }
  }
  for (rt_attach *a = p->attachers; a; a = a->next)
    if (wants(a, stream)) enqueue(a, stream, data, len);
}

void rt_proc_finish(rt_container *c, rt_proc *p, const rt_exit *e) {
  pthread_mutex_lock(&c->mu);
  int stopped = 0;
  if (!p->exited) {
    p->exited = 1;
    p->exit = *e;
    if (!p->id[0]) stopped = rt_stopped_locked(c);
    if (stopped && c->starting) { /* rt_start emits it after STARTED */
      c->exit_event_pending = 1;
      stopped = 0;
    }
    signal_fd(p->exit_fd);
    for (rt_attach *a = p->attachers; a; a = a->next) signal_fd(a->wake_fd);
  }
  pthread_mutex_unlock(&c->mu);
  if (stopped) rt_emit_container_exited(c);
}

typedef struct relay_arg {
  rt_container *c;
  rt_proc *p;
} relay_arg;

static void *relay(void *arg) {
  relay_arg ra = *(relay_arg *)arg;
  free(arg);
  rt_container *c = ra.c;
  rt_proc *p = ra.p;
  rt_exit e;
  memset(&e, 0, sizeof e);
  for (;;) {
    ProtobufCMessage *m;
    vs_err err;
    int r = vrpc_recv(p->stdio, &m, &err);
    if (r <= 0) {
      e.code = -1;
      rt_now(&e.exited_ns);
      snprintf(e.reason, sizeof e.reason, "connection to the VM lost (%.80s)",
               r < 0 ? err.msg : "stream ended");
      break;
    }
    Vessel__V1__AgentStdioResponse *resp = (Vessel__V1__AgentStdioResponse *)m;
    if (resp->kind_case == VESSEL__V1__AGENT_STDIO_RESPONSE__KIND_FRAME && resp->frame) {
      int stream = resp->frame->stream == VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDERR ? LG_STDERR
                                                                                       : LG_STDOUT;
      if (resp->frame->data.len) {
        pthread_mutex_lock(&c->mu);
        deliver(c, p, stream, resp->frame->data.data, resp->frame->data.len);
        pthread_mutex_unlock(&c->mu);
      }
    } else if (resp->kind_case == VESSEL__V1__AGENT_STDIO_RESPONSE__KIND_EXIT && resp->exit) {
      e.code = resp->exit->code;
      e.signal = resp->exit->signal;
      e.oom_killed = resp->exit->oom_killed;
      e.exited_ns = resp->exit->exited_at
                        ? resp->exit->exited_at->seconds * 1000000000 + resp->exit->exited_at->nanos
                        : 0;
      if (!e.exited_ns) rt_now(&e.exited_ns);
      snprintf(e.reason, sizeof e.reason, "%s", resp->exit->reason);
      vrpc_msg_free(m);
      break;
    }
    vrpc_msg_free(m);
  }
  if (c->rt->closing && e.code == -1) { /* vesseld exits; the process lives on */
    pthread_mutex_lock(&p->stdio_mu);
    vrpc_call *call = p->stdio;
    p->stdio = NULL;
    pthread_mutex_unlock(&p->stdio_mu);
    vrpc_call_free(call);
    return NULL;
  }
  rt_proc_finish(c, p, &e);
  /* The stream is done: free it here, before the VM (and its channel) can
   * be torn down. */
  pthread_mutex_lock(&p->stdio_mu);
  vrpc_call *call = p->stdio;
  p->stdio = NULL;
  pthread_mutex_unlock(&p->stdio_mu);
  vrpc_call_free(call);
  if (!p->id[0]) {
    rt_teardown_vm(c); /* init is gone: so is the VM */
  } else {
    rt_emit_process_exited(c, p);
  }
  return NULL;
}

static int flush_early_stdin(rt_proc *p, vs_err *err);

int rt_proc_open_stdio(rt_container *c, rt_proc *p, vs_err *err) {
  vrpc_call *call = vrpc_call_start(vm_channel(c->vm), &vessel_v1_Agent_Stdio, NULL, err);
  if (!call) return -1;
  Vessel__V1__AgentStdioOpen open;
  vessel__v1__agent_stdio_open__init(&open);
  open.container_id = c->id;
  open.process_id = p->id[0] ? p->id : c->id;
  Vessel__V1__AgentStdioRequest req;
  vessel__v1__agent_stdio_request__init(&req);
  req.kind_case = VESSEL__V1__AGENT_STDIO_REQUEST__KIND_OPEN;
  req.open = &open;
  if (vrpc_send(call, &req.base, err) < 0) {
    vrpc_call_free(call);
    return -1;
  }
  pthread_mutex_lock(&p->stdio_mu);
  p->stdio = call;
  vs_err ignore;
  flush_early_stdin(p, &ignore);
  pthread_mutex_unlock(&p->stdio_mu);
  relay_arg *ra = malloc(sizeof *ra);
  ra->c = c;
  ra->p = p;
  int rc = pthread_create(&p->relay, NULL, relay, ra);
  if (rc != 0) {
    free(ra);
    pthread_mutex_lock(&p->stdio_mu);
    p->stdio = NULL;
    pthread_mutex_unlock(&p->stdio_mu);
    vrpc_call_free(call);
    return vs_err_errno(err, VS_RESOURCE_EXHAUSTED, rc, "relay thread");
  }
  p->relay_running = 1;
  return 0;
}

/* Ends the relay (cancelling its stream if it still runs) and waits for it;
 * the relay frees the stream itself. */
void rt_proc_join(rt_proc *p) {
  pthread_mutex_lock(&p->stdio_mu);
  if (p->stdio) vrpc_cancel(p->stdio);
  pthread_mutex_unlock(&p->stdio_mu);
  if (p->relay_running && !pthread_equal(p->relay, pthread_self())) pthread_join(p->relay, NULL);
  p->relay_running = 0;
}

void rt_proc_free(rt_proc *p) {
  rt_proc_join(p);
  chunks_free(p->kept);
  p->kept = p->kept_tail = NULL;
  chunks_free(p->stdin_head);
  p->stdin_head = p->stdin_tail = NULL;
  if (p->exit_fd >= 0) close(p->exit_fd);
  p->exit_fd = -1;
  pthread_mutex_destroy(&p->stdio_mu);
}

/* ---- attach ---- */

static rt_proc *find_proc(rt_container *c, const char *exec_id) {
  if (!exec_id || !*exec_id) return &c->init;
  for (rt_proc *p = c->execs; p; p = p->next)
    if (!strcmp(p->id, exec_id)) return p;
  return NULL;
}

static int replay_log(void *arg, const lg_entry *e) {
  rt_attach *a = arg;
  if (wants(a, e->stream)) enqueue(a, e->stream, e->data, e->len);
  return 0;
}

rt_attach *rt_attach_open(rt_runtime *rt, const char *id, const char *exec_id, int flags,
                          vs_err *err) {
  rt_container *c = rt_find(rt, id, err);
  if (!c) return NULL;
  pthread_mutex_lock(&c->mu);
  rt_proc *p = find_proc(c, exec_id);
  if (!p) {
    pthread_mutex_unlock(&c->mu);
    vs_err_set(err, VS_NOT_FOUND, "container %s has no exec %s", id, exec_id);
    return NULL;
  }
  rt_attach *a = calloc(1, sizeof *a);
  a->c = c;
  a->p = p;
  a->flags = flags & (RT_ATTACH_STDOUT | RT_ATTACH_STDERR | RT_ATTACH_STDIN)
                 ? flags
                 : flags | RT_ATTACH_STDOUT | RT_ATTACH_STDERR;
  a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (flags & RT_ATTACH_LOGS) { /* under c->mu: no chunk is both replayed and live */
    if (!p->id[0]) {
      lg_read_opts o = {-1, 0, 0, 0, -1, NULL, NULL};
      vs_err ignore;
      char dir[4300];
      snprintf(dir, sizeof dir, "%s/logs", c->dir);
      lg_read(dir, &o, replay_log, a, &ignore);
    } else {
      for (rt_chunk *k = p->kept; k; k = k->next)
        if (wants(a, k->stream)) enqueue(a, k->stream, k->data, k->len);
    }
  }
  a->next = p->attachers;
  p->attachers = a;
  if (p->exited) signal_fd(a->wake_fd);
  pthread_mutex_unlock(&c->mu);
  return a;
}

int rt_attach_next(rt_attach *a, int cancel_fd, int *stream, char **data, size_t *len,
                   rt_exit *exit, vs_err *err) {
  rt_container *c = a->c;
  for (;;) {
    pthread_mutex_lock(&c->mu);
    rt_chunk *k = a->head;
    if (k) {
      a->head = k->next;
      if (!a->head) a->tail = NULL;
    }
    int exited = a->p->exited;
    if (!k && exited) *exit = a->p->exit;
    pthread_mutex_unlock(&c->mu);
    if (k) {
      *stream = k->stream;
      *len = k->len;
      *data = malloc(k->len ? k->len : 1);
      memcpy(*data, k->data, k->len);
      free(k);
      return 1;
    }
    if (exited) return 0;
    struct pollfd pf[2] = {{a->wake_fd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    int n = poll(pf, cancel_fd >= 0 ? 2 : 1, -1);
    if (n < 0 && errno != EINTR) return vs_err_errno(err, VS_INTERNAL, errno, "poll");
    if (n > 0 && (pf[1].revents & POLLIN))
      return vs_err_set(err, VS_CANCELLED, "attach cancelled");
    uint64_t v;
    ssize_t r = read(a->wake_fd, &v, sizeof v);
    (void)r;
  }
}

int rt_attach_stdin(rt_attach *a, const void *data, size_t len, int eof, vs_err *err) {
  rt_proc *p = a->p;
  Vessel__V1__StdioFrame f;
  vessel__v1__stdio_frame__init(&f);
  f.stream = VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDIN;
  f.data.data = (uint8_t *)data;
  f.data.len = len;
  f.eof = eof;
  Vessel__V1__AgentStdioRequest req;
  vessel__v1__agent_stdio_request__init(&req);
  req.kind_case = VESSEL__V1__AGENT_STDIO_REQUEST__KIND_FRAME;
  req.frame = &f;
  pthread_mutex_lock(&p->stdio_mu);
  int rc;
  if (p->stdio) {
    rc = vrpc_send(p->stdio, &req.base, err);
  } else if (!p->started && !p->exited) {
    /* Not started yet: kept, and sent as soon as the stream opens. */
    rt_chunk *k = chunk_new(eof ? -1 : 0, data, len);
    if (k) {
      if (p->stdin_tail) p->stdin_tail->next = k;
      else p->stdin_head = k;
      p->stdin_tail = k;
    }
    rc = k ? 0 : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  } else {
    rc = vs_err_set(err, VS_FAILED_PRECONDITION, "process is not running");
  }
  pthread_mutex_unlock(&p->stdio_mu);
  return rc;
}

/* Sends stdin that arrived before the stream existed (stdio_mu held). */
static int flush_early_stdin(rt_proc *p, vs_err *err) {
  int rc = 0;
  while (p->stdin_head && rc == 0) {
    rt_chunk *k = p->stdin_head;
    p->stdin_head = k->next;
    Vessel__V1__StdioFrame f;
    vessel__v1__stdio_frame__init(&f);
    f.stream = VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDIN;
    f.data.data = (uint8_t *)k->data;
    f.data.len = k->len;
    f.eof = k->stream == -1;
    Vessel__V1__AgentStdioRequest req;
    vessel__v1__agent_stdio_request__init(&req);
    req.kind_case = VESSEL__V1__AGENT_STDIO_REQUEST__KIND_FRAME;
    req.frame = &f;
    rc = vrpc_send(p->stdio, &req.base, err);
    free(k);
  }
  if (!p->stdin_head) p->stdin_tail = NULL;
  return rc;
}

void rt_attach_close(rt_attach *a) {
  if (!a) return;
  rt_container *c = a->c;
  pthread_mutex_lock(&c->mu);
  for (rt_attach **q = &a->p->attachers; *q; q = &(*q)->next)
    if (*q == a) {
      *q = a->next;
      break;
    }
  pthread_mutex_unlock(&c->mu);
  chunks_free(a->head);
  close(a->wake_fd);
  free(a);
}
