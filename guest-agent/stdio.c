/* Agent.Stdio: pumps a process's pipes (or pty) through the stream. */
#include "guest-agent/stdio.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest-agent/process.h"
#include "vessel/v1/agent.pb-c.h"

#define FRAME (1024 * 1024) /* per message: fewer, larger frames cost less under TCG */
/* Output that ends this close to the exit is ended by the exit message. */
#define EXIT_ENDS_OUTPUT_MS 100
/* After `exit`, how long the client may take to half-close its side. */
#define HALF_CLOSE_GRACE_MS 3000

typedef struct sio {
  agent *a;
  vrpc_call *call;
  ag_process *p;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int in_done; /* stdin reader finished */
} sio;

static void write_stdin(sio *s, const uint8_t *data, size_t len, int eof) {
  ag_process *p = s->p;
  int fd;
  pthread_mutex_lock(&s->a->mu);
  fd = p->terminal ? p->pty_master : p->stdin_w;
  fd = fd >= 0 && !p->stdin_closed ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
  pthread_mutex_unlock(&s->a->mu);
  /* A dup so that CloseStdin can close the original while this write
   * blocks; the process sees EOF once both are closed. */
  while (fd >= 0 && len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break; /* EPIPE: the process is gone or closed stdin */
    data += n;
    len -= (size_t)n;
  }
  if (fd >= 0) close(fd);
  if (eof) pr_close_stdin(s->a, p);
}

static void *stdin_main(void *arg) {
  sio *s = arg;
  for (;;) {
    ProtobufCMessage *m;
    vs_err e;
    int r = vrpc_recv(s->call, &m, &e);
    if (r != 1) break; /* half-close (detach) or cancelled */
    Vessel__V1__AgentStdioRequest *req = (Vessel__V1__AgentStdioRequest *)m;
    if (req->kind_case == VESSEL__V1__AGENT_STDIO_REQUEST__KIND_FRAME && req->frame &&
        (req->frame->stream == VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDIN ||
         req->frame->stream == VESSEL__V1__STDIO_STREAM__STDIO_STREAM_UNSPECIFIED))
      write_stdin(s, req->frame->data.data, req->frame->data.len, req->frame->eof);
    vrpc_msg_free(m);
  }
  pthread_mutex_lock(&s->mu);
  s->in_done = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int send_frame(vrpc_call *call, int stream, const void *data, size_t len, int eof,
                      vs_err *err) {
  Vessel__V1__StdioFrame f = VESSEL__V1__STDIO_FRAME__INIT;
  f.stream = stream;
  f.data.data = (uint8_t *)data;
  f.data.len = len;
  f.eof = eof;
  Vessel__V1__AgentStdioResponse r = VESSEL__V1__AGENT_STDIO_RESPONSE__INIT;
  r.kind_case = VESSEL__V1__AGENT_STDIO_RESPONSE__KIND_FRAME;
  r.frame = &f;
  return vrpc_send(call, &r.base, err);
}

static int is_cancelled(void *call) { return vrpc_cancelled(call); }

/* Moves one output fd's ownership out of the process (under a->mu) so the
 * stream reads it alone; restored if the stream ends early. */
static int take(agent *a, int *slot) {
  pthread_mutex_lock(&a->mu);
  int fd = *slot;
  *slot = -1;
  pthread_mutex_unlock(&a->mu);
  return fd;
}

static void give_back(agent *a, int *slot, int fd) {
  pthread_mutex_lock(&a->mu);
  if (*slot < 0) *slot = fd;
  else if (fd >= 0) close(fd);
  pthread_mutex_unlock(&a->mu);
}

int sio_serve(agent *a, vrpc_call *call, vs_err *err) {
  ProtobufCMessage *m;
  int r = vrpc_recv(call, &m, err);
  if (r == 0) return vs_err_set(err, VS_INVALID_ARGUMENT, "Stdio: expected open");
  if (r < 0) return -1;
  Vessel__V1__AgentStdioRequest *req = (Vessel__V1__AgentStdioRequest *)m;
  if (req->kind_case != VESSEL__V1__AGENT_STDIO_REQUEST__KIND_OPEN || !req->open) {
    vrpc_msg_free(m);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "Stdio: the first message must be open");
  }
  pthread_mutex_lock(&a->mu);
  ag_container *c = ag_find_container(a, req->open->container_id);
  ag_process *p = c && !c->creating ? ag_find_process(c, req->open->process_id) : NULL;
  int rc = 0;
  if (!p) {
    rc = vs_err_set(err, VS_NOT_FOUND, "no process %s/%s", req->open->container_id,
                    req->open->process_id);
  } else if (p->stdio_open) {
    rc = vs_err_set(err, VS_ALREADY_EXISTS, "a Stdio stream is already open for %s", p->id);
  } else {
    p->stdio_open = 1;
    p->refs++;
  }
  pthread_mutex_unlock(&a->mu);
  vrpc_msg_free(m);
  if (rc < 0) return -1;

  sio s = {a, call, p, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  pthread_t in_thread;
  int have_in = pthread_create(&in_thread, NULL, stdin_main, &s) == 0;

  const int stream[2] = {VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDOUT,
                         VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDERR}; /* by poll index */
  int *out_slot = p->terminal ? &p->pty_master : &p->stdout_r;
  int out_fd = p->terminal ? -1 : take(a, out_slot);
  int err_fd = p->terminal ? -1 : take(a, &p->stderr_r);
  if (p->terminal) {
    /* The pty master also carries stdin and resizes: read from a dup. */
    pthread_mutex_lock(&a->mu);
    out_fd = p->pty_master >= 0 ? fcntl(p->pty_master, F_DUPFD_CLOEXEC, 0) : -1;
    pthread_mutex_unlock(&a->mu);
  }
  int out_open = out_fd >= 0, err_open = err_fd >= 0;
  int pending_eof[2] = {0, 0}; /* ended with the other: sent unless the exit follows */
  /* Output already consumed by an earlier stream: still end each stream
   * with its eof frame. */
  if (!out_open) rc = send_frame(call, stream[0], NULL, 0, 1, err);
  if (rc == 0 && !p->terminal && !err_open) rc = send_frame(call, stream[1], NULL, 0, 1, err);
  char *buf = malloc(FRAME);
  int cancel = vrpc_cancel_fd(call);
  while (rc == 0 && (out_open || err_open)) {
    struct pollfd pf[3] = {{out_open ? out_fd : -1, POLLIN, 0},
                           {err_open ? err_fd : -1, POLLIN, 0},
                           {cancel, POLLIN, 0}};
    if (poll(pf, 3, -1) < 0) {
      if (errno == EINTR) continue;
      rc = vs_err_errno(err, VS_INTERNAL, errno, "poll");
      break;
    }
    if (pf[2].revents) {
      rc = vs_err_set(err, VS_CANCELLED, "Stdio cancelled");
      break;
    }
    int ended[2] = {0, 0};
    for (int i = 0; i < 2 && rc == 0; i++) {
      if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      int fd = i == 0 ? out_fd : err_fd;
      ssize_t n = read(fd, buf, FRAME);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) { /* EOF (pipe) or EIO (pty without slaves) */
        ended[i] = 1;
        if (i == 0) out_open = 0;
        else err_open = 0;
        close(fd);
        if (i == 0) out_fd = -1;
        else err_fd = -1;
      } else {
        rc = send_frame(call, stream[i], buf, (size_t)n, 0, err);
      }
    }
    /* A stream that ends while the other goes on gets its eof now; the last
     * ones wait: usually the process is exiting, and its exit ends them
     * (two messages fewer per exec, each ~1 ms of a TCG guest). */
    for (int i = 0; i < 2; i++) {
      if (rc == 0 && ended[i] && (out_open || err_open))
        rc = send_frame(call, stream[i], NULL, 0, 1, err);
      pending_eof[i] |= ended[i] && !(out_open || err_open);
    }
  }
  free(buf);
  if (rc == 0 && (pending_eof[0] || pending_eof[1]) &&
      !pr_exited_within(a, p, EXIT_ENDS_OUTPUT_MS)) /* it lives on without output */
    for (int i = 0; i < 2 && rc == 0; i++)
      if (pending_eof[i]) rc = send_frame(call, stream[i], NULL, 0, 1, err);
  if (rc == 0) rc = pr_wait(a, p, is_cancelled, call, err);
  if (rc == 0) {
    Google__Protobuf__Timestamp ts;
    Vessel__V1__ExitStatus st;
    pr_exit_status(a, p, &st, &ts);
    Vessel__V1__AgentStdioResponse resp = VESSEL__V1__AGENT_STDIO_RESPONSE__INIT;
    resp.kind_case = VESSEL__V1__AGENT_STDIO_RESPONSE__KIND_EXIT;
    resp.exit = &st;
    rc = vrpc_send(call, &resp.base, err);
  }
  if (have_in) {
    /* The stdin reader sits in vrpc_recv until the client half-closes;
     * a client that never does is cancelled after a grace period. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += rc == 0 ? HALF_CLOSE_GRACE_MS / 1000 : 0;
    pthread_mutex_lock(&s.mu);
    while (!s.in_done && rc == 0)
      if (pthread_cond_timedwait(&s.cv, &s.mu, &dl) != 0) break;
    int done = s.in_done;
    pthread_mutex_unlock(&s.mu);
    if (!done) vrpc_cancel(call);
    pthread_join(in_thread, NULL);
  }
  if (!p->terminal) {
    /* Unread output stays with the process for the next stream. */
    give_back(a, out_slot, out_fd);
    give_back(a, &p->stderr_r, err_fd);
  } else if (out_fd >= 0) {
    close(out_fd);
  }
  pthread_mutex_lock(&a->mu);
  p->stdio_open = 0;
  p->refs--;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
  return rc;
}
