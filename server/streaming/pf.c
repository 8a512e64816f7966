/* portforward.k8s.io over SPDY: the client opens an error and a data
 * stream per TCP connection (headers port, requestid); the data stream's
 * bytes go to a socket the backend connects to that port in the pod, and
 * back; when the pod's side ends, both streams get FIN (an error stream
 * carries text before, if the connection failed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/streaming/streaming_internal.h"

struct pf_conn {
  pf_conn *next;
  ss_session *s;
  char requestid[64];
  unsigned port;
  uint32_t data, error; /* streams; 0 until created */
  int fd;               /* -1 until dialled */
  pthread_t reader;
  int reader_started, reader_joined;
  int client_done; /* FIN or RST from the client on its data stream */
};

static pf_conn *find(ss_session *s, uint32_t id) {
  for (pf_conn *c = s->conns; c; c = c->next)
    if (id && (c->data == id || c->error == id)) return c;
  return NULL;
}

static void conn_free(ss_session *s, pf_conn *c) {
  for (pf_conn **p = &s->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  if (c->fd >= 0) shutdown(c->fd, SHUT_RDWR);
  if (c->reader_started && !c->reader_joined) pthread_join(c->reader, NULL);
  if (c->fd >= 0) close(c->fd);
  free(c);
}

static void *reader(void *arg) {
  pf_conn *c = arg;
  char buf[32768];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n <= 0) break;
    ss_push(c->s, c->data, 0, NULL, buf, (size_t)n);
  }
  ss_push(c->s, c->data, ITEM_FIN | ITEM_PF_DONE, c, NULL, 0);
  return NULL;
}

static void fail(ss_session *s, pf_conn *c, const char *msg) {
  ss_send(s, c->error, msg, strlen(msg), 1);
  ss_send(s, c->data, NULL, 0, 1);
  c->client_done = 1;
  conn_free(s, c);
}

void pf_stream(ss_session *s, uint32_t id, const spdy_headers *h) {
  const char *type = spdy_header(h, "streamtype"), *port = spdy_header(h, "port"),
             *rid = spdy_header(h, "requestid");
  ss_reply(s, id);
  s->started = 1;
  int is_data = type && !strcmp(type, "data");
  if (!type || (!is_data && strcmp(type, "error"))) return; /* not ours: ignored */
  /* Clients without requestid create the error stream, then the data one. */
  char key[64];
  snprintf(key, sizeof key, "%s", rid ? rid : "");
  if (!rid) snprintf(key, sizeof key, "#%u", is_data ? id - 2 : id);
  pf_conn *c = s->conns;
  while (c && strcmp(c->requestid, key)) c = c->next;
  if (!c) {
    if (!(c = calloc(1, sizeof *c))) return;
    c->s = s;
    c->fd = -1;
    snprintf(c->requestid, sizeof c->requestid, "%s", key);
    c->next = s->conns;
    s->conns = c;
  }
  if (is_data) c->data = id;
  else c->error = id;
  char *end = NULL;
  long p = port ? strtol(port, &end, 10) : 0;
  c->port = p > 0 && p < 65536 && end && !*end ? (unsigned)p : 0;
  if (!c->data || !c->error) return;
  char msg[600];
  if (!c->port) {
    snprintf(msg, sizeof msg, "invalid port %s", port ? port : "(none)");
    fail(s, c, msg);
    return;
  }
  vs_err err;
  c->fd = s->b->dial(s->b->ctx, s->req.id, c->port, &err);
  if (c->fd < 0) {
    snprintf(msg, sizeof msg, "error forwarding port %u to pod %s: %s", c->port, s->req.id, err.msg);
    fail(s, c, msg);
    return;
  }
  if (pthread_create(&c->reader, NULL, reader, c) != 0) {
    fail(s, c, "cannot start a thread");
    return;
  }
  c->reader_started = 1;
}

void pf_data(ss_session *s, uint32_t id, const void *data, size_t len) {
  pf_conn *c = find(s, id);
  if (!c || id != c->data || c->fd < 0 || c->client_done) return;
  const char *p = data;
  while (len) { /* the pod's side is a blocking socket: it paces the client */
    ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w;
    len -= (size_t)w;
  }
}

void pf_fin(ss_session *s, uint32_t id, int reset) {
  pf_conn *c = find(s, id);
  if (!c || (!reset && id != c->data)) return;
  c->client_done = 1;
  if (c->fd >= 0) shutdown(c->fd, reset ? SHUT_RDWR : SHUT_WR);
  if (c->reader_joined || c->fd < 0) conn_free(s, c);
}

/* Its reader ended (the pod's side closed): the error stream ends too. */
void pf_done(ss_session *s, pf_conn *c) {
  if (!s->closed) ss_send(s, c->error, NULL, 0, 1);
  pthread_join(c->reader, NULL);
  c->reader_joined = 1;
  if (c->client_done) conn_free(s, c);
}

void pf_teardown(ss_session *s) {
  while (s->conns) conn_free(s, s->conns);
}
