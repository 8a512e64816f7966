/* Published ports: a userspace TCP proxy from a host address to the
 * container's IP. One poller thread (epoll) serves every listener and
 * every connection of the runtime, each connection with a 64 KiB buffer
 * per direction and half-closes passed on. (The container's IP is
 * reachable directly too; this is for users who want a host port.)
 *
 * Entries are only freed by the poller, between two epoll_wait batches:
 * rt_ports_stop removes them from epoll and closes their fds under the
 * lock, and marks them dead, so an event already fetched for one is
 * skipped rather than followed into freed memory. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/runtime/runtime_internal.h"

#define BUF_BYTES (64 * 1024)

typedef struct entry entry;
typedef struct side {
  entry *e;
  int fd;
  int eof;        /* read side saw EOF */
  int shut;       /* write side shut down (the peer's EOF passed on) */
  size_t len, off; /* bytes read from this side waiting for the other */
  char *buf;
} side;

typedef enum { E_WAKE, E_LISTEN, E_CONN } entry_kind;

struct entry {
  entry_kind kind;
  const void *owner; /* the container (identity only, never followed) */
  int dead;
  entry *next; /* all entries, or the dead ones */
  /* listener */
  int fd;
  struct sockaddr_in to;
  /* connection: a = client, b = container */
  side a, b;
  int connecting;
};

struct rt_ports {
  pthread_mutex_t mu;
  int epfd, wake_fd, stopping;
  pthread_t thread;
  entry wake;
  entry *live, *dead;
};

static void kill_entry(rt_ports *ps, entry *e) {
  if (e->dead) return;
  e->dead = 1;
  int fds[2] = {e->kind == E_CONN ? e->a.fd : e->fd, e->kind == E_CONN ? e->b.fd : -1};
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0) {
      epoll_ctl(ps->epfd, EPOLL_CTL_DEL, fds[i], NULL);
      close(fds[i]);
    }
  for (entry **q = &ps->live; *q; q = &(*q)->next)
    if (*q == e) {
      *q = e->next;
      break;
    }
  e->next = ps->dead;
  ps->dead = e;
}

static void free_entry(entry *e) {
  free(e->a.buf);
  free(e->b.buf);
  free(e);
}

/* What each side of a connection waits for, from its buffers. */
static void rearm(rt_ports *ps, entry *e) {
  side *s[2] = {&e->a, &e->b};
  for (int i = 0; i < 2; i++) {
    side *me = s[i], *peer = s[1 - i];
    struct epoll_event ev = {0, {.ptr = me}};
    if (e->connecting) ev.events = i == 1 ? EPOLLOUT : 0;
    else {
      if (!me->eof && me->len == 0) ev.events |= EPOLLIN;
      if (peer->len > peer->off) ev.events |= EPOLLOUT;
    }
    epoll_ctl(ps->epfd, EPOLL_CTL_MOD, me->fd, &ev);
  }
}

/* Moves what src read to dst; 0 fine, -1 the connection is done for. */
static int flush(side *src, side *dst) {
  while (src->off < src->len) {
    ssize_t w = send(dst->fd, src->buf + src->off, src->len - src->off, MSG_NOSIGNAL);
    if (w < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    src->off += (size_t)w;
  }
  src->len = src->off = 0;
  if (src->eof && !dst->shut) { /* pass the EOF on */
    shutdown(dst->fd, SHUT_WR);
    dst->shut = 1;
  }
  return 0;
}

static void on_conn(rt_ports *ps, side *me, uint32_t events) {
  entry *e = me->e;
  side *peer = me == &e->a ? &e->b : &e->a;
  if (e->connecting && me == &e->a) { /* the client left before the connect finished */
    if (events & (EPOLLHUP | EPOLLERR)) kill_entry(ps, e);
    return;
  }
  if (e->connecting) { /* the connect finished */
    int soerr = 0;
    socklen_t l = sizeof soerr;
    getsockopt(me->fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
    if (soerr) {
      kill_entry(ps, e);
      return;
    }
    e->connecting = 0;
    rearm(ps, e);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    if (!me->eof && me->len == 0) {
      ssize_t n = recv(me->fd, me->buf, BUF_BYTES, 0);
      if (n > 0) me->len = (size_t)n;
      else if (n == 0) me->eof = 1;
      else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        kill_entry(ps, e);
        return;
      }
    } else if (events & EPOLLERR) {
      kill_entry(ps, e);
      return;
    }
  }
  if (flush(me, peer) < 0 || flush(peer, me) < 0) {
    kill_entry(ps, e);
    return;
  }
  if (me->eof && peer->eof && !me->len && !peer->len) {
    kill_entry(ps, e);
    return;
  }
  rearm(ps, e);
}

static void on_accept(rt_ports *ps, entry *l) {
  for (;;) {
    int in = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (in < 0) return;
    int out = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    entry *e = calloc(1, sizeof *e);
    char *ba = malloc(BUF_BYTES), *bb = malloc(BUF_BYTES);
    int rc = out >= 0 && e && ba && bb ? connect(out, (struct sockaddr *)&l->to, sizeof l->to) : -1;
    if (rc < 0 && (out < 0 || !e || !ba || !bb || errno != EINPROGRESS)) {
      close(in);
      if (out >= 0) close(out);
      free(e);
      free(ba);
      free(bb);
      continue;
    }
    e->kind = E_CONN;
    e->owner = l->owner;
    e->a = (side){e, in, 0, 0, 0, 0, ba};
    e->b = (side){e, out, 0, 0, 0, 0, bb};
    e->connecting = rc < 0;
    struct epoll_event ea = {0, {.ptr = &e->a}}, eb = {0, {.ptr = &e->b}};
    epoll_ctl(ps->epfd, EPOLL_CTL_ADD, in, &ea);
    epoll_ctl(ps->epfd, EPOLL_CTL_ADD, out, &eb);
    e->next = ps->live;
    ps->live = e;
    rearm(ps, e);
  }
}

static void *poller(void *arg) {
  rt_ports *ps = arg;
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ps->epfd, evs, 64, -1);
    pthread_mutex_lock(&ps->mu);
    if (ps->stopping) {
      pthread_mutex_unlock(&ps->mu);
      return NULL;
    }
    for (int i = 0; i < n; i++) {
      void *ptr = evs[i].data.ptr;
      if (ptr == &ps->wake) {
        uint64_t v;
        ssize_t r = read(ps->wake_fd, &v, sizeof v);
        (void)r;
        continue;
      }
      entry *e = *(entry **)ptr; /* a listener's ptr is the entry; a side's first field is its entry */
      if (e->dead) continue;
      if (e->kind == E_LISTEN) on_accept(ps, e);
      else on_conn(ps, (side *)ptr, evs[i].events);
    }
    while (ps->dead) { /* nothing fetched can point at them any more */
      entry *d = ps->dead;
      ps->dead = d->next;
      free_entry(d);
    }
    pthread_mutex_unlock(&ps->mu);
  }
}

int rt_ports_open(rt_runtime *rt, vs_err *err) {
  rt_ports *ps = calloc(1, sizeof *ps);
  if (!ps) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  pthread_mutex_init(&ps->mu, NULL);
  ps->epfd = epoll_create1(EPOLL_CLOEXEC);
  ps->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ps->wake.kind = E_WAKE;
  struct epoll_event ev = {EPOLLIN, {.ptr = &ps->wake}};
  if (ps->epfd < 0 || ps->wake_fd < 0 || epoll_ctl(ps->epfd, EPOLL_CTL_ADD, ps->wake_fd, &ev) < 0 ||
      pthread_create(&ps->thread, NULL, poller, ps) != 0) {
    int e = errno;
    if (ps->epfd >= 0) close(ps->epfd);
    if (ps->wake_fd >= 0) close(ps->wake_fd);
    pthread_mutex_destroy(&ps->mu);
    free(ps);
    return vs_err_errno(err, VS_RESOURCE_EXHAUSTED, e, "port proxy");
  }
  rt->ports = ps;
  return 0;
}

static void wake(rt_ports *ps) {
  uint64_t one = 1;
  ssize_t n = write(ps->wake_fd, &one, sizeof one);
  (void)n;
}

void rt_ports_close(rt_runtime *rt) {
  rt_ports *ps = rt->ports;
  if (!ps) return;
  pthread_mutex_lock(&ps->mu);
  ps->stopping = 1;
  pthread_mutex_unlock(&ps->mu);
  wake(ps);
  pthread_join(ps->thread, NULL);
  while (ps->live) kill_entry(ps, ps->live);
  while (ps->dead) {
    entry *d = ps->dead;
    ps->dead = d->next;
    free_entry(d);
  }
  close(ps->epfd);
  close(ps->wake_fd);
  pthread_mutex_destroy(&ps->mu);
  free(ps);
  rt->ports = NULL;
}

/* A listening socket for m; 0 or -1 with err. */
static int listen_on(const Vessel__V1__PortMapping *m, rt_port *p, vs_err *err) {
  snprintf(p->host_ip, sizeof p->host_ip, "%s", *m->host_ip ? m->host_ip : "0.0.0.0");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)m->host_port)};
  if (inet_pton(AF_INET, p->host_ip, &a.sin_addr) != 1)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "port mapping: bad host_ip %s", p->host_ip);
  int one = 1;
  p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (p->listen_fd >= 0) setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      listen(p->listen_fd, 128) < 0) {
    int e = errno;
    if (p->listen_fd >= 0) close(p->listen_fd);
    p->listen_fd = -1;
    if (e == EADDRINUSE)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "publish %s:%u: the host port is already in use",
                        p->host_ip, m->host_port);
    return vs_err_errno(err, VS_INTERNAL, e, "publish %s:%u", p->host_ip, m->host_port);
  }
  socklen_t al = sizeof a;
  getsockname(p->listen_fd, (struct sockaddr *)&a, &al);
  p->host_port = ntohs(a.sin_port);
  return 0;
}

int rt_ports_start(rt_container *c, vs_err *err) {
  const Vessel__V1__ContainersCreateRequest *s = c->spec;
  rt_ports *ps = c->rt->ports;
  if (!s->n_ports) return 0;
  if (!c->n_nics)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "ports need a network (the container has none)");
  rt_port *ports = calloc(s->n_ports, sizeof *ports);
  if (!ports) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  size_t n = 0;
  int rc = 0;
  for (; n < s->n_ports && rc == 0; n++) {
    rt_port *p = &ports[n];
    snprintf(p->container_ip, sizeof p->container_ip, "%s", c->nics[0].ip); /* the first network's */
    p->container_port = (int)s->ports[n]->container_port;
    rc = listen_on(s->ports[n], p, err);
  }
  if (rc < 0) n--; /* the failed one has no socket */
  entry **ls = calloc(n ? n : 1, sizeof *ls);
  for (size_t i = 0; ls && rc == 0 && i < n; i++)
    if (!(ls[i] = calloc(1, sizeof **ls))) rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  if (!ls && rc == 0) rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  if (rc < 0) {
    for (size_t i = 0; i < n; i++) close(ports[i].listen_fd);
    for (size_t i = 0; ls && i < n; i++) free(ls[i]);
    free(ls);
    free(ports);
    return -1;
  }
  pthread_mutex_lock(&ps->mu);
  for (size_t i = 0; i < n; i++) {
    entry *l = ls[i];
    l->kind = E_LISTEN;
    l->owner = c;
    l->fd = ports[i].listen_fd;
    l->a.fd = l->b.fd = -1;
    l->to = (struct sockaddr_in){.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)ports[i].container_port)};
    inet_pton(AF_INET, ports[i].container_ip, &l->to.sin_addr);
    /* data.ptr must lead to the entry the way a side's does: its first
     * field. A listener's a.e points at itself. */
    l->a.e = l;
    struct epoll_event ev = {EPOLLIN, {.ptr = &l->a}};
    epoll_ctl(ps->epfd, EPOLL_CTL_ADD, l->fd, &ev);
    l->next = ps->live;
    ps->live = l;
  }
  pthread_mutex_unlock(&ps->mu);
  free(ls);
  pthread_mutex_lock(&c->mu);
  c->ports = ports;
  c->n_ports = n;
  pthread_mutex_unlock(&c->mu);
  return 0;
}

void rt_ports_stop(rt_container *c) {
  rt_ports *ps = c->rt->ports;
  pthread_mutex_lock(&c->mu);
  rt_port *ports = c->ports;
  c->ports = NULL;
  c->n_ports = 0;
  pthread_mutex_unlock(&c->mu);
  free(ports);
  if (!ps) return;
  /* Its listeners and their connections go (the fds are closed here; the
   * memory by the poller). */
  pthread_mutex_lock(&ps->mu);
  for (entry *e = ps->live, *next; e; e = next) {
    next = e->next;
    if (e->owner == c) kill_entry(ps, e);
  }
  pthread_mutex_unlock(&ps->mu);
  wake(ps);
}
