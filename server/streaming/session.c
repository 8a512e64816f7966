/* A session's loop: reads and parses what the client sends (SPDY frames,
 * WebSocket messages, SPDY inside WebSocket messages), writes what the
 * workers queue, and ends them all when either side goes. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/streaming/streaming_internal.h"

#define QUEUE_MAX (4u << 20)    /* bytes workers may queue ahead of the socket */
#define WRITE_TIMEOUT_MS 60000  /* a client that stops reading this long is gone */
#define CREATE_TIMEOUT_MS 30000 /* SPDY: the streams must all exist by then */

void ss_signal(int fd) {
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof one);
  (void)n;
}

int64_t ss_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

ss_session *ss_session_new(const ss_backend *b, ss_request *req, int proto, int ws_version) {
  ss_session *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->b = b;
  s->req = *req; /* taken */
  memset(req, 0, sizeof *req);
  s->fd = -1;
  s->proto = proto;
  s->ws_version = ws_version;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->spdy_ok = proto != SS_WS_CHANNELS && spdy_codec_init(&s->spdy) == 0;
  if (s->wake_fd < 0 || s->cancel_fd < 0 || (proto != SS_WS_CHANNELS && !s->spdy_ok)) {
    ss_session_free(s);
    return NULL;
  }
  return s;
}

void ss_session_free(ss_session *s) {
  if (!s) return;
  for (ss_item *i = s->head, *n; i; i = n) {
    n = i->next;
    free(i);
  }
  if (s->spdy_ok) spdy_codec_free(&s->spdy);
  if (s->ws) wslay_event_context_free(s->ws);
  free(s->in);
  free(s->held);
  if (s->wake_fd >= 0) close(s->wake_fd);
  if (s->cancel_fd >= 0) close(s->cancel_fd);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  ss_request_free(&s->req);
  free(s);
}

void ss_push(ss_session *s, uint32_t handle, int flags, void *conn, const void *data, size_t len) {
  pthread_mutex_lock(&s->mu);
  while (!s->stopping && s->queued >= QUEUE_MAX) pthread_cond_wait(&s->cv, &s->mu);
  ss_item *i = s->stopping ? NULL : malloc(sizeof *i + len);
  if (i) {
    i->next = NULL;
    i->handle = handle;
    i->flags = flags;
    i->conn = conn;
    i->len = len;
    if (len) memcpy(i->data, data, len);
    if (s->tail) s->tail->next = i;
    else s->head = i;
    s->tail = i;
    s->queued += len;
    ss_signal(s->wake_fd);
  }
  pthread_mutex_unlock(&s->mu);
}

/* ---- bytes on the socket ---- */

/* Reads what HTTP already read first, then the (non-blocking) socket. */
static ssize_t recv_some(ss_session *s, void *buf, size_t n) {
  if (s->pre_len) {
    size_t k = n < s->pre_len ? n : s->pre_len;
    memcpy(buf, s->pre, k);
    s->pre += k;
    s->pre_len -= k;
    return (ssize_t)k;
  }
  return recv(s->fd, buf, n, MSG_DONTWAIT);
}

static void send_all(ss_session *s, const void *data, size_t n) {
  const char *p = data;
  while (n && !s->closed) {
    ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd pf = {s->fd, POLLOUT, 0};
      if (poll(&pf, 1, WRITE_TIMEOUT_MS) <= 0) s->closed = 1;
    } else {
      s->closed = 1;
    }
  }
}

/* Bytes of the SPDY connection: raw, or one binary message each. */
static void send_bytes(ss_session *s, const void *data, size_t n) {
  if (s->proto == SS_SPDY) {
    send_all(s, data, n);
  } else {
    struct wslay_event_msg m = {WSLAY_BINARY_FRAME, data, n};
    if (wslay_event_queue_msg(s->ws, &m) != 0) s->closed = 1;
  }
}

void ss_send(ss_session *s, uint32_t handle, const void *data, size_t len, int fin) {
  if (s->proto == SS_WS_CHANNELS) { /* a channel's end is the connection's */
    if (fin && !len) return;
    uint8_t *m = malloc(len + 1);
    if (!m) {
      s->closed = 1;
      return;
    }
    m[0] = (uint8_t)handle;
    if (len) memcpy(m + 1, data, len);
    struct wslay_event_msg msg = {WSLAY_BINARY_FRAME, m, len + 1};
    if (wslay_event_queue_msg(s->ws, &msg) != 0) s->closed = 1;
    free(m);
    return;
  }
  uint8_t *f = malloc(8 + len);
  if (!f) {
    s->closed = 1;
    return;
  }
  spdy_data_header(f, handle, fin ? SPDY_FLAG_FIN : 0, len);
  if (len) memcpy(f + 8, data, len);
  send_bytes(s, f, 8 + len);
  free(f);
}

void ss_reply(ss_session *s, uint32_t stream) {
  uint8_t *f;
  size_t n;
  if (spdy_syn_reply(&s->spdy, stream, NULL, &f, &n) < 0) {
    s->closed = 1;
    return;
  }
  send_bytes(s, f, n);
  free(f);
}

/* ---- SPDY in ---- */

static void spdy_frame_in(ss_session *s, const spdy_frame *f, const uint8_t *raw, size_t rawlen) {
  int pf = s->req.kind == SS_PORT_FORWARD;
  if (!f->control) {
    if (f->len) {
      if (pf) pf_data(s, f->stream, f->payload, f->len);
      else rc_input(s, rc_channel(s, f->stream), f->payload, f->len);
    }
    if (f->flags & SPDY_FLAG_FIN) {
      if (pf) pf_fin(s, f->stream, 0);
      else rc_eof(s, rc_channel(s, f->stream));
    }
    return;
  }
  spdy_headers h;
  switch (f->type) {
  case SPDY_SYN_STREAM:
    if (spdy_read_headers(&s->spdy, f, &h) < 0) {
      s->closed = 1;
      return;
    }
    if (pf) pf_stream(s, f->stream, &h);
    else rc_stream(s, f->stream, &h);
    break;
  case SPDY_SYN_REPLY:
  case SPDY_HEADERS: /* inflated only to keep the zlib stream in step */
    if (spdy_read_headers(&s->spdy, f, &h) < 0) s->closed = 1;
    break;
  case SPDY_RST_STREAM:
    if (pf) pf_fin(s, f->stream, 1);
    else rc_eof(s, rc_channel(s, f->stream));
    break;
  case SPDY_PING:
    send_bytes(s, raw, rawlen); /* the same frame back */
    break;
  case SPDY_GOAWAY:
    s->closed = 1;
    break;
  default: /* SETTINGS, WINDOW_UPDATE: no flow control here, as in the peers */
    break;
  }
}

static void spdy_in(ss_session *s, const void *data, size_t n) {
  if (s->in_len + n > s->in_cap) {
    size_t cap = (s->in_len + n) * 2;
    uint8_t *p = realloc(s->in, cap);
    if (!p) {
      s->closed = 1;
      return;
    }
    s->in = p;
    s->in_cap = cap;
  }
  memcpy(s->in + s->in_len, data, n);
  s->in_len += n;
  size_t off = 0;
  while (!s->closed) {
    spdy_frame f;
    long used = spdy_parse(s->in + off, s->in_len - off, &f);
    if (used < 0) s->closed = 1;
    if (used <= 0) break;
    spdy_frame_in(s, &f, s->in + off, (size_t)used);
    off += (size_t)used;
  }
  memmove(s->in, s->in + off, s->in_len - off);
  s->in_len -= off;
}

/* ---- WebSocket ---- */

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *u) {
  (void)flags;
  ss_session *s = u;
  ssize_t r = recv_some(s, buf, len);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
  else if (r <= 0) wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
  return r > 0 ? r : -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *u) {
  (void)flags;
  ss_session *s = u;
  ssize_t r = send(s->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
  else if (r < 0) wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
  return r;
}

static void ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m, void *u) {
  (void)ctx;
  ss_session *s = u;
  if (m->opcode != WSLAY_BINARY_FRAME) return; /* close/ping: wslay answers */
  if (s->proto == SS_WS_SPDY) {
    spdy_in(s, m->msg, m->msg_length);
  } else if (m->msg_length >= 1) {
    int ch = m->msg[0];
    if (ch == 255 && s->ws_version >= 5 && m->msg_length >= 2) rc_eof(s, m->msg[1]); /* v5 CLOSE */
    else rc_input(s, ch, m->msg + 1, m->msg_length - 1);
  }
}

/* ---- the loop ---- */

static void read_input(ss_session *s) {
  if (s->proto != SS_SPDY) {
    if (wslay_event_recv(s->ws) != 0 || !wslay_event_want_read(s->ws)) s->closed = 1;
    return;
  }
  uint8_t buf[65536];
  for (;;) {
    ssize_t r = recv_some(s, buf, sizeof buf);
    if (r > 0) {
      spdy_in(s, buf, (size_t)r);
      if (s->closed) return;
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EINTR)) s->closed = 1;
    return;
  }
}

static void drain(ss_session *s) {
  uint64_t v;
  ssize_t n = read(s->wake_fd, &v, sizeof v);
  (void)n;
  pthread_mutex_lock(&s->mu);
  ss_item *list = s->head;
  s->head = s->tail = NULL;
  s->queued = 0;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  for (ss_item *i = list, *next; i; i = next) {
    next = i->next;
    if (!s->closed) {
      if (i->flags & ITEM_END) rc_end(s, i->len ? i->data : NULL);
      else if (i->len || (i->flags & ITEM_FIN)) ss_send(s, i->handle, i->data, i->len, i->flags & ITEM_FIN);
      if (i->flags & ITEM_PF_DONE) pf_done(s, i->conn);
    } else if (i->flags & ITEM_PF_DONE) {
      pf_done(s, i->conn);
    }
    free(i);
  }
}

void ss_session_run(ss_session *s, int sock, const char *extra, size_t n) {
  s->fd = sock;
  s->pre = extra;
  s->pre_len = n;
  int fl = fcntl(sock, F_GETFL);
  if (fl >= 0) fcntl(sock, F_SETFL, fl | O_NONBLOCK);
  if (s->proto != SS_SPDY) {
    struct wslay_event_callbacks cb = {ws_recv, ws_send, NULL, NULL, NULL, NULL, ws_msg};
    if (wslay_event_context_server_init(&s->ws, &cb, s) != 0) s->closed = 1;
    else wslay_event_config_set_max_recv_msg_length(s->ws, 1u << 20);
  }
  if (!s->closed && s->proto == SS_WS_CHANNELS) rc_begin(s);
  int64_t create_by = ss_now_ms() + CREATE_TIMEOUT_MS;
  while (!s->closed) {
    if (s->req.kind != SS_PORT_FORWARD) rc_maybe_start(s, ss_now_ms());
    int ws_pending = s->ws && wslay_event_want_write(s->ws);
    if (s->ending && !ws_pending) {
      /* wslay sends control frames first: the close goes in only after
       * the last message is out */
      if (!s->ws || s->ws_closing) break;
      s->ws_closing = 1;
      wslay_event_queue_close(s->ws, WSLAY_CODE_NORMAL_CLOSURE, NULL, 0);
      continue;
    }
    /* The queue is taken only when the WebSocket's own is written out:
     * a slow client slows the workers, not vesseld's memory. */
    struct pollfd p[2] = {{s->fd, POLLIN | (ws_pending ? POLLOUT : 0), 0},
                          {ws_pending ? -1 : s->wake_fd, POLLIN, 0}};
    int timeout = s->pre_len ? 0 : s->ready && !s->started ? 50 : 1000;
    if (poll(p, 2, timeout) < 0 && errno != EINTR) break;
    if (s->pre_len || (p[0].revents & (POLLIN | POLLHUP | POLLERR))) read_input(s);
    if (!s->closed && (p[1].revents & POLLIN)) drain(s);
    if (!s->closed && s->ws && wslay_event_want_write(s->ws) && wslay_event_send(s->ws) != 0)
      s->closed = 1;
    /* SPDY remotecommand: the client creates its streams first */
    if (s->req.kind != SS_PORT_FORWARD && !s->started && ss_now_ms() > create_by) s->closed = 1;
  }
  /* workers first (they may wait on the queue), then what they left */
  pthread_mutex_lock(&s->mu);
  s->stopping = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  s->closed = 1;
  rc_teardown(s);
  pf_teardown(s); /* what is left in the queue is freed with s */
  shutdown(sock, SHUT_RDWR);
}
