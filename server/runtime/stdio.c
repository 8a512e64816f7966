/* Process stdio: one relay thread per process reads the agent's Stdio
 * stream and hands each chunk to the container log (init), to a bounded
 * buffer for the first attacher (execs) and to every attached client;
 * stdin from clients goes straight back on the same stream. The relay
 * reports the process's end through its exit callback and does nothing
 * else about it.
 *
 * Each attacher's queue is bounded: when one holds ATTACH_QUEUE_MAX bytes
 * the relay waits for it to drain (backpressure reaches the process
 * through the stream's flow control), so a slow client slows the process
 * rather than vesseld's memory growing. */
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

#define KEEP_MAX (1u << 20)         /* exec output kept for its first attach */
#define ATTACH_QUEUE_MAX (4u << 20) /* output queued for one attacher */

static void signal_fd(int fd) {
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof one);
  (void)n;
}

void rt_proc_init(rt_proc *p, const char *id) {
  memset(p, 0, sizeof *p);
  snprintf(p->id, sizeof p->id, "%s", id ? id : "");
  p->exit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  p->keeping = p->id[0] != 0;
  pthread_mutex_init(&p->stdio_mu, NULL);
  pthread_mutex_init(&p->out_mu, NULL);
  pthread_cond_init(&p->out_cv, NULL);
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
  a->queued += len;
  signal_fd(a->wake_fd);
}

/* With p->out_mu held. */
static void deliver(rt_proc *p, int stream, const void *data, size_t len) {
  if (p->log) {
    vs_err ignore;
    lg_write(p->log, stream, data, len, &ignore);
  } else if (p->keeping && p->kept_bytes + len <= KEEP_MAX) {
    rt_chunk *k = chunk_new(stream, data, len);
    if (k) {
      if (p->kept_tail) p->kept_tail->next = k;
      else p->kept = k;
      p->kept_tail = k;
      p->kept_bytes += len;
    }
  }
  for (;;) { /* backpressure: a full queue is waited for */
    int full = 0;
    for (rt_attach *a = p->attachers; a && !full; a = a->next)
      full = wants(a, stream) && a->queued >= ATTACH_QUEUE_MAX;
    if (!full || p->out_closing) break;
    pthread_cond_wait(&p->out_cv, &p->out_mu);
  }
  for (rt_attach *a = p->attachers; a; a = a->next)
    if (wants(a, stream)) enqueue(a, stream, data, len);
}

int rt_proc_set_exit_locked(rt_proc *p, const rt_exit *e) {
  if (p->exited) return 0;
  p->exited = 1;
  p->exit = *e;
  p->exited_mono_ms = rt_mono_ms();
  return 1;
}

void rt_proc_wake(rt_proc *p) {
  signal_fd(p->exit_fd);
  pthread_mutex_lock(&p->out_mu);
  for (rt_attach *a = p->attachers; a; a = a->next) signal_fd(a->wake_fd);
  pthread_mutex_unlock(&p->out_mu);
}

typedef struct relay_arg {
  rt_container *c;
  rt_proc *p;
} relay_arg;

static void exit_of(const Vessel__V1__ExitStatus *x, rt_exit *e) {
  e->code = x->code;
  e->signal = x->signal;
  e->oom_killed = x->oom_killed;
  e->exited_ns = x->exited_at ? x->exited_at->seconds * 1000000000 + x->exited_at->nanos : 0;
  if (!e->exited_ns) rt_now(&e->exited_ns);
  snprintf(e->reason, sizeof e->reason, "%s", x->reason);
}

static void *relay(void *arg) {
  relay_arg ra = *(relay_arg *)arg;
  free(arg);
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
    int done = 0;
    if (resp->kind_case == VESSEL__V1__AGENT_STDIO_RESPONSE__KIND_FRAME && resp->frame) {
      int stream = resp->frame->stream == VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDERR ? LG_STDERR
                                                                                       : LG_STDOUT;
      if (resp->frame->data.len) {
        pthread_mutex_lock(&p->out_mu);
        deliver(p, stream, resp->frame->data.data, resp->frame->data.len);
        pthread_mutex_unlock(&p->out_mu);
      }
    } else if (resp->kind_case == VESSEL__V1__AGENT_STDIO_RESPONSE__KIND_EXIT && resp->exit) {
      exit_of(resp->exit, &e);
      done = 1;
    }
    vrpc_msg_free(m);
    if (done) break;
  }
  /* The stream is done: freed here, before the VM (and its channel) can be
   * torn down. */
  pthread_mutex_lock(&p->stdio_mu);
  vrpc_call *call = p->stdio;
  p->stdio = NULL;
  pthread_mutex_unlock(&p->stdio_mu);
  vrpc_call_free(call);
  /* Its unended output lines are logged (partial) once it ended. */
  if (!(rt_closing(ra.c->rt) && e.code == -1)) {
    pthread_mutex_lock(&p->out_mu);
    vs_err ignore;
    lg_flush(p->log, &ignore);
    pthread_mutex_unlock(&p->out_mu);
  }
  /* vesseld exits, the process lives on: nothing ended. */
  if (!(rt_closing(ra.c->rt) && e.code == -1)) p->on_exit(ra.c, p, &e);
  return NULL;
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

int rt_proc_open_stdio(rt_container *c, rt_proc *p, rt_exit_fn on_exit, vs_err *err) {
  rt_container *h = rt_vm_host(c);
  pthread_mutex_lock(&h->mu);
  vrpc_channel *ch = h->vm ? vm_channel(h->vm) : NULL;
  pthread_mutex_unlock(&h->mu);
  if (!ch) return vs_err_set(err, VS_UNAVAILABLE, "container %s has no running VM", c->id);
  vrpc_call *call = vrpc_call_start(ch, &vessel_v1_Agent_Stdio, NULL, err);
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
  relay_arg *ra = malloc(sizeof *ra);
  if (!ra) {
    vrpc_call_free(call);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  ra->c = c;
  ra->p = p;
  p->on_exit = on_exit;
  pthread_mutex_lock(&p->out_mu);
  p->out_closing = 0; /* a stream opened again (a Start that failed before) */
  pthread_mutex_unlock(&p->out_mu);
  pthread_mutex_lock(&p->stdio_mu);
  p->stdio = call;
  vs_err ignore;
  flush_early_stdin(p, &ignore);
  int rc = pthread_create(&p->relay, NULL, relay, ra);
  if (rc == 0) p->relay_running = 1;
  else p->stdio = NULL;
  pthread_mutex_unlock(&p->stdio_mu);
  if (rc != 0) {
    free(ra);
    vrpc_call_free(call);
    return vs_err_errno(err, VS_RESOURCE_EXHAUSTED, rc, "relay thread");
  }
  return 0;
}

void rt_proc_reset(rt_container *c, rt_proc *p) {
  pthread_mutex_lock(&p->stdio_mu);
  chunks_free(p->stdin_head);
  p->stdin_head = p->stdin_tail = NULL;
  pthread_mutex_unlock(&p->stdio_mu);
  pthread_mutex_lock(&c->mu);
  uint64_t v;
  ssize_t r = read(p->exit_fd, &v, sizeof v); /* not readable until the next exit */
  (void)r;
  p->pid = 0;
  p->started = p->exited = 0;
  memset(&p->exit, 0, sizeof p->exit);
  p->exited_mono_ms = p->seen_mono_ms = 0;
  pthread_mutex_unlock(&c->mu);
}

void rt_proc_join(rt_proc *p) {
  pthread_mutex_lock(&p->out_mu);
  p->out_closing = 1; /* a relay waiting for a full attacher goes on */
  pthread_cond_broadcast(&p->out_cv);
  pthread_mutex_unlock(&p->out_mu);
  pthread_mutex_lock(&p->stdio_mu);
  if (p->stdio) vrpc_cancel(p->stdio);
  int running = p->relay_running && !pthread_equal(p->relay, pthread_self());
  if (running) p->relay_running = 0;
  pthread_mutex_unlock(&p->stdio_mu);
  if (running) pthread_join(p->relay, NULL);
}

void rt_proc_free(rt_proc *p) {
  rt_proc_join(p);
  if (p->relay_running) pthread_detach(p->relay); /* freed from its own thread */
  chunks_free(p->kept);
  chunks_free(p->stdin_head);
  if (p->exit_fd >= 0) close(p->exit_fd);
  p->exit_fd = -1;
  pthread_mutex_destroy(&p->stdio_mu);
  pthread_mutex_destroy(&p->out_mu);
  pthread_cond_destroy(&p->out_cv);
}

/* ---- attach ---- */

static int replay_log(void *arg, const lg_entry *e) {
  rt_attach *a = arg;
  if (wants(a, e->stream)) enqueue(a, e->stream, e->data, e->len);
  return 0;
}

/* The log's unended line (a prompt, say) is output too. */
static void replay_pending(void *arg, int stream, const char *data, size_t len) {
  rt_attach *a = arg;
  if (wants(a, stream)) enqueue(a, stream, data, len);
}

rt_attach *rt_attach_open(rt_runtime *rt, const char *id, const char *exec_id, int flags,
                          vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return NULL;
  rt_attach *a = calloc(1, sizeof *a);
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!a || wake < 0) {
    free(a);
    if (wake >= 0) close(wake);
    rt_put(c);
    vs_err_errno(err, VS_RESOURCE_EXHAUSTED, errno, "attach");
    return NULL;
  }
  pthread_mutex_lock(&c->mu);
  rt_proc *p = rt_proc_of(c, exec_id, err);
  if (p) p->users++;
  pthread_mutex_unlock(&c->mu);
  if (!p) {
    close(wake);
    free(a);
    rt_put(c);
    return NULL;
  }
  a->c = c;
  a->p = p;
  a->wake_fd = wake;
  a->flags = flags & (RT_ATTACH_STDOUT | RT_ATTACH_STDERR | RT_ATTACH_STDIN)
                 ? flags
                 : flags | RT_ATTACH_STDOUT | RT_ATTACH_STDERR;
  /* Under out_mu: no chunk is both replayed and live. */
  pthread_mutex_lock(&p->out_mu);
  if (flags & RT_ATTACH_LOGS) {
    if (!p->id[0]) {
      lg_read_opts o = {-1, 0, 0, 0, -1, NULL, NULL, 0};
      vs_err ignore;
      char dir[4300];
      snprintf(dir, sizeof dir, "%s/logs", c->dir);
      lg_read(dir, &o, replay_log, a, &ignore);
      lg_pending(p->log, replay_pending, a);
    } else {
      for (rt_chunk *k = p->kept; k; k = k->next)
        if (wants(a, k->stream)) enqueue(a, k->stream, k->data, k->len);
    }
  }
  /* An exec's output is kept only until its first attach. */
  chunks_free(p->kept);
  p->kept = p->kept_tail = NULL;
  p->kept_bytes = 0;
  p->keeping = 0;
  a->next = p->attachers;
  p->attachers = a;
  pthread_mutex_unlock(&p->out_mu);
  signal_fd(a->wake_fd); /* look at the exit once at least */
  return a;
}

int rt_attach_next(rt_attach *a, int cancel_fd, int *stream, char **data, size_t *len,
                   rt_exit *exit, vs_err *err) {
  rt_container *c = a->c;
  rt_proc *p = a->p;
  for (;;) {
    /* The exit first: the relay queues all output before the exit is set,
     * so an exit seen here means the queue below is complete. */
    pthread_mutex_lock(&c->mu);
    int exited = p->exited;
    if (exited) *exit = p->exit;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&p->out_mu);
    rt_chunk *k = a->head;
    if (k) {
      a->head = k->next;
      if (!a->head) a->tail = NULL;
      a->queued -= k->len;
      pthread_cond_broadcast(&p->out_cv);
    }
    pthread_mutex_unlock(&p->out_mu);
    if (k) {
      *stream = k->stream;
      *len = k->len;
      *data = malloc(k->len ? k->len : 1);
      if (!*data) {
        free(k);
        return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
      }
      memcpy(*data, k->data, k->len);
      free(k);
      return 1;
    }
    if (exited) {
      pthread_mutex_lock(&c->mu);
      p->seen_mono_ms = rt_mono_ms(); /* the exit reached a client */
      pthread_mutex_unlock(&c->mu);
      return 0;
    }
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
  pthread_mutex_lock(&a->c->mu);
  int before_start = !p->started && !p->exited;
  pthread_mutex_unlock(&a->c->mu);
  pthread_mutex_lock(&p->stdio_mu);
  int rc;
  if (p->stdio) {
    rc = vrpc_send(p->stdio, &req.base, err);
  } else if (before_start) {
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

void rt_attach_close(rt_attach *a) {
  if (!a) return;
  rt_container *c = a->c;
  rt_proc *p = a->p;
  pthread_mutex_lock(&p->out_mu);
  for (rt_attach **q = &p->attachers; *q; q = &(*q)->next)
    if (*q == a) {
      *q = a->next;
      break;
    }
  pthread_cond_broadcast(&p->out_cv); /* a relay waiting for it goes on */
  pthread_mutex_unlock(&p->out_mu);
  pthread_mutex_lock(&c->mu);
  p->users--;
  pthread_mutex_unlock(&c->mu);
  chunks_free(a->head);
  close(a->wake_fd);
  free(a);
  rt_put(c);
}
