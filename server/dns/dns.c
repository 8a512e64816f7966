#include "server/dns/dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG 4096     /* EDNS answers relayed whole */
#define PENDING 1024     /* forwarded queries in flight */
#define FORWARD_MS 3000  /* an upstream's time to answer */
#define TTL 5            /* seconds: containers come and go */

/* ---- the pure part ---- */

/* The first question's name (lower case, no final dot), type and the
 * offset past it; -1 if malformed. Compression is not allowed in a
 * question's name of a query. */
static int question(const uint8_t *q, size_t n, char *name, size_t cap, int *type, size_t *end) {
  size_t p = 12, k = 0;
  for (;;) {
    if (p >= n) return -1;
    size_t len = q[p++];
    if (len == 0) break;
    if (len > 63 || p + len > n || k + len + 1 >= cap) return -1;
    if (k) name[k++] = '.';
    for (size_t i = 0; i < len; i++) name[k++] = (char)tolower(q[p + i]);
    p += len;
  }
  name[k] = '\0';
  if (p + 4 > n) return -1;
  *type = q[p] << 8 | q[p + 1];
  int klass = q[p + 2] << 8 | q[p + 3];
  if (klass != 1 && klass != 255) return -1; /* IN, ANY */
  *end = p + 4;
  return 0;
}

dns_verdict dns_answer_local(const uint8_t *q, size_t n, dns_lookup_fn lookup, void *arg,
                             const char *gateway, const char *client, uint8_t *out, size_t cap,
                             size_t *out_len) {
  if (n < 12 || cap < 512) return DNS_DROP;
  int qr = q[2] >> 7, opcode = (q[2] >> 3) & 0xf;
  int qdcount = q[4] << 8 | q[5];
  if (qr || opcode != 0 || qdcount != 1) return DNS_DROP;
  char name[256];
  int type;
  size_t qend;
  if (question(q, n, name, sizeof name, &type, &qend) < 0) return DNS_DROP;
  struct in_addr addr;
  if (!lookup(arg, gateway, client, name, &addr)) return DNS_FORWARD;
  if (qend + 16 > cap) return DNS_DROP;
  memcpy(out, q, qend); /* header and question */
  out[2] = 0x84 | (q[2] & 0x01); /* QR, AA, RD as asked */
  out[3] = 0x80;                 /* RA, NOERROR */
  out[6] = out[7] = 0;           /* answers: set below */
  out[8] = out[9] = out[10] = out[11] = 0;
  size_t p = qend;
  if (type == 1 || type == 255) { /* A, ANY */
    static const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, TTL, 0, 4};
    memcpy(out + p, rr, sizeof rr);
    memcpy(out + p + sizeof rr, &addr.s_addr, 4);
    p += sizeof rr + 4;
    out[7] = 1;
  }
  *out_len = p;
  return DNS_ANSWERED;
}

void dns_resolv_conf(const char *path, int no_loopback, dns_resolv *out) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "re");
  char line[512];
  while (f && fgets(line, sizeof line, f)) {
    char key[16], val[256];
    if (sscanf(line, "%15s %255[^\n]", key, val) != 2) continue;
    int loopback = !strncmp(val, "127.", 4) || !strcmp(val, "::1");
    if (!strcmp(key, "nameserver") && out->n_ns < 3 && !(no_loopback && loopback))
      snprintf(out->ns[out->n_ns++], sizeof out->ns[0], "%.63s", val);
    else if (!strcmp(key, "search") && !out->search[0])
      snprintf(out->search, sizeof out->search, "%s", val);
  }
  if (f) fclose(f);
}

/* ---- the server ---- */

typedef struct listener {
  char ip[64];
  int fd, tcp_fd;
} listener;

typedef struct pending {
  int used;
  uint16_t id, orig_id;
  int listen_fd;
  struct sockaddr_storage client;
  socklen_t client_len;
  int64_t deadline_ms;
} pending;

/* A TCP client: served by a thread of its own, which frees this. */
typedef struct tcp_conn {
  struct dns_server *s;
  int fd;
  char ip[64], client[64]; /* the listener's address, the client's */
  struct tcp_conn *next;
} tcp_conn;

struct dns_server {
  dns_lookup_fn lookup;
  void *arg;
  struct sockaddr_in up[3];
  size_t n_up;
  int ep, wake, fwd;
  pthread_mutex_t mu; /* listeners, pending, conns; the thread handles events with it held */
  listener *ls;
  size_t n_ls;
  pending *pend;
  tcp_conn *conns;
  size_t n_conns;
  pthread_cond_t conns_cv; /* a connection ended */
  int stop;
  pthread_t th;
};

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int parse_upstream(const char *s, struct sockaddr_in *a) {
  char ip[64];
  int port = 53;
  snprintf(ip, sizeof ip, "%s", s);
  char *colon = strchr(ip, ':');
  if (colon) {
    *colon = '\0';
    port = atoi(colon + 1);
  }
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  return port > 0 && port < 65536 && inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
}

/* An answer that only says "failed" (no upstream, or none answered): 12
 * bytes into r. */
static size_t servfail(const uint8_t *q, uint8_t r[12]) {
  memcpy(r, q, 12);
  r[2] = 0x80 | (q[2] & 0x01);
  r[3] = 0x82;
  memset(r + 4, 0, 8);
  return 12;
}

static void forward(dns_server *s, int lfd, uint8_t *q, size_t n, struct sockaddr_storage *from,
                    socklen_t fl) {
  if (!s->n_up) {
    uint8_t r[12];
    sendto(lfd, r, servfail(q, r), MSG_DONTWAIT, (struct sockaddr *)from, fl);
    return;
  }
  int64_t now = now_ms();
  pending *slot = NULL;
  for (size_t i = 0; i < PENDING && !slot; i++)
    if (!s->pend[i].used || s->pend[i].deadline_ms < now) slot = &s->pend[i];
  if (!slot) return; /* too many in flight: the client retries */
  uint16_t id;
  if (getrandom(&id, sizeof id, 0) != sizeof id) id = (uint16_t)now;
  slot->used = 1;
  slot->id = id;
  slot->orig_id = (uint16_t)(q[0] << 8 | q[1]);
  slot->listen_fd = lfd;
  slot->client = *from;
  slot->client_len = fl;
  slot->deadline_ms = now + FORWARD_MS;
  q[0] = (uint8_t)(id >> 8);
  q[1] = (uint8_t)id;
  for (size_t i = 0; i < s->n_up; i++)
    sendto(s->fwd, q, n, MSG_DONTWAIT, (struct sockaddr *)&s->up[i], sizeof s->up[i]);
}

static void from_upstream(dns_server *s) {
  uint8_t m[MAX_MSG];
  struct sockaddr_in from;
  socklen_t fl = sizeof from;
  ssize_t n;
  while ((n = recvfrom(s->fwd, m, sizeof m, MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) >= 12) {
    int known = 0; /* only answers from the upstreams asked */
    for (size_t i = 0; i < s->n_up && !known; i++)
      known = from.sin_addr.s_addr == s->up[i].sin_addr.s_addr && from.sin_port == s->up[i].sin_port;
    uint16_t id = (uint16_t)(m[0] << 8 | m[1]);
    for (size_t i = 0; known && i < PENDING; i++) {
      pending *p = &s->pend[i];
      if (!p->used || p->id != id) continue;
      m[0] = (uint8_t)(p->orig_id >> 8);
      m[1] = (uint8_t)p->orig_id;
      sendto(p->listen_fd, m, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&p->client,
             p->client_len);
      p->used = 0; /* the first answer wins */
      break;
    }
    fl = sizeof from;
  }
}

static void addr_text(const struct sockaddr_storage *a, char out[64]) {
  out[0] = '\0';
  if (a->ss_family == AF_INET)
    inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, out, 64);
}

static void from_client(dns_server *s, listener *l) {
  uint8_t q[MAX_MSG], a[MAX_MSG];
  struct sockaddr_storage from;
  socklen_t fl = sizeof from;
  ssize_t n;
  while ((n = recvfrom(l->fd, q, sizeof q, MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) >= 0) {
    size_t al;
    char client[64];
    addr_text(&from, client);
    dns_verdict v =
        dns_answer_local(q, (size_t)n, s->lookup, s->arg, l->ip, client, a, sizeof a, &al);
    if (v == DNS_ANSWERED) sendto(l->fd, a, al, MSG_DONTWAIT, (struct sockaddr *)&from, fl);
    else if (v == DNS_FORWARD) forward(s, l->fd, q, (size_t)n, &from, fl);
    fl = sizeof from;
  }
}

/* ---- TCP: a message is a 2-byte length and that many bytes ---- */

#define TCP_MSG 65535

static void set_timeouts(int fd, int ms) {
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int io_full(int fd, uint8_t *b, size_t n, int writing) {
  for (size_t done = 0; done < n;) {
    ssize_t r = writing ? send(fd, b + done, n - done, MSG_NOSIGNAL) : recv(fd, b + done, n - done, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

/* One message into b (cap >= TCP_MSG); its length, or -1 (closed, timed
 * out, too short to be DNS). */
static ssize_t tcp_read_msg(int fd, uint8_t *b) {
  uint8_t l[2];
  if (io_full(fd, l, 2, 0) < 0) return -1;
  size_t n = (size_t)(l[0] << 8 | l[1]);
  return n >= 12 && io_full(fd, b, n, 0) == 0 ? (ssize_t)n : -1;
}

static int tcp_write_msg(int fd, const uint8_t *m, size_t n) {
  uint8_t l[2] = {(uint8_t)(n >> 8), (uint8_t)n};
  return io_full(fd, l, 2, 1) == 0 && io_full(fd, (uint8_t *)m, n, 1) == 0 ? 0 : -1;
}

/* q asked of each upstream in turn over TCP (a connection per query, as
 * the answer may be large); the first answer into a. Its length or -1. */
static ssize_t forward_tcp(dns_server *s, const uint8_t *q, size_t n, uint8_t *a) {
  for (size_t i = 0; i < s->n_up; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int ok = connect(fd, (struct sockaddr *)&s->up[i], sizeof s->up[i]) == 0 || errno == EINPROGRESS;
    struct pollfd p = {fd, POLLOUT, 0};
    int e = 0;
    socklen_t el = sizeof e;
    ok = ok && poll(&p, 1, FORWARD_MS) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 &&
         e == 0;
    ssize_t got = -1;
    if (ok) {
      fcntl(fd, F_SETFL, 0); /* blocking, with timeouts */
      set_timeouts(fd, FORWARD_MS);
      if (tcp_write_msg(fd, q, n) == 0) got = tcp_read_msg(fd, a);
    }
    close(fd);
    if (got >= 12 && a[0] == q[0] && a[1] == q[1]) return got;
  }
  return -1;
}

static void *tcp_main(void *arg) {
  tcp_conn *c = arg;
  dns_server *s = c->s;
  uint8_t *q = malloc(TCP_MSG), *a = malloc(TCP_MSG);
  set_timeouts(c->fd, DNS_TCP_IDLE_MS);
  ssize_t n;
  while (q && a && (n = tcp_read_msg(c->fd, q)) > 0) {
    size_t al = 0;
    dns_verdict v = dns_answer_local(q, (size_t)n, s->lookup, s->arg, c->ip, c->client, a,
                                     TCP_MSG, &al);
    if (v == DNS_DROP) break;
    if (v == DNS_FORWARD) {
      ssize_t got = forward_tcp(s, q, (size_t)n, a);
      al = got > 0 ? (size_t)got : servfail(q, a);
    }
    if (tcp_write_msg(c->fd, a, al) < 0) break;
  }
  free(q);
  free(a);
  pthread_mutex_lock(&s->mu);
  for (tcp_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  s->n_conns--;
  pthread_cond_broadcast(&s->conns_cv);
  pthread_mutex_unlock(&s->mu);
  close(c->fd);
  free(c);
  return NULL;
}

/* Accepts what waits on l's TCP socket (s->mu held). */
static void tcp_accept(dns_server *s, listener *l) {
  struct sockaddr_storage from;
  socklen_t fl = sizeof from;
  int fd;
  while ((fd = accept4(l->tcp_fd, (struct sockaddr *)&from, &fl, SOCK_CLOEXEC)) >= 0) {
    tcp_conn *c = s->n_conns < DNS_MAX_TCP ? calloc(1, sizeof *c) : NULL;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    if (c) {
      c->s = s;
      c->fd = fd;
      snprintf(c->ip, sizeof c->ip, "%s", l->ip);
      addr_text(&from, c->client);
      c->next = s->conns;
      s->conns = c;
      s->n_conns++;
      if (pthread_create(&th, &at, tcp_main, c) != 0) {
        s->conns = c->next;
        s->n_conns--;
        free(c);
        c = NULL;
      }
    }
    pthread_attr_destroy(&at);
    if (!c) close(fd); /* too many at once: the client tries again */
    fl = sizeof from;
  }
}

/* Ends the TCP connections to ip (all if NULL); their threads close them. */
static void tcp_end(dns_server *s, const char *ip) {
  for (tcp_conn *c = s->conns; c; c = c->next)
    if (!ip || !strcmp(c->ip, ip)) shutdown(c->fd, SHUT_RDWR);
}

static void *serve(void *arg) {
  dns_server *s = arg;
  for (;;) {
    struct epoll_event ev[16];
    int n = epoll_wait(s->ep, ev, 16, 1000);
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
      pthread_mutex_unlock(&s->mu);
      return NULL;
    }
    for (int i = 0; i < n; i++) {
      int fd = ev[i].data.fd;
      if (fd == s->wake) {
        uint64_t v;
        ssize_t r = read(s->wake, &v, sizeof v);
        (void)r;
      } else if (fd == s->fwd) {
        from_upstream(s);
      } else {
        for (size_t k = 0; k < s->n_ls; k++) { /* (unlistened meanwhile: gone) */
          if (s->ls[k].fd == fd) from_client(s, &s->ls[k]);
          else if (s->ls[k].tcp_fd == fd) tcp_accept(s, &s->ls[k]);
        }
      }
    }
    pthread_mutex_unlock(&s->mu);
  }
}

static int watch(dns_server *s, int fd) {
  struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
  return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e);
}

dns_server *dns_open(dns_lookup_fn lookup, void *arg, char *const *upstreams, size_t n,
                     vs_err *err) {
  dns_server *s = calloc(1, sizeof *s);
  if (!s || !(s->pend = calloc(PENDING, sizeof *s->pend))) {
    free(s);
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  s->lookup = lookup;
  s->arg = arg;
  for (size_t i = 0; i < n && s->n_up < 3; i++)
    if (parse_upstream(upstreams[i], &s->up[s->n_up]) == 0) s->n_up++;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->conns_cv, NULL);
  s->ep = epoll_create1(EPOLL_CLOEXEC);
  s->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  s->fwd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s->ep < 0 || s->wake < 0 || s->fwd < 0 || watch(s, s->wake) < 0 || watch(s, s->fwd) < 0 ||
      pthread_create(&s->th, NULL, serve, s) != 0) {
    vs_err_errno(err, VS_INTERNAL, errno, "dns server");
    if (s->ep >= 0) close(s->ep);
    if (s->wake >= 0) close(s->wake);
    if (s->fwd >= 0) close(s->fwd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->conns_cv);
    free(s->pend);
    free(s);
    return NULL;
  }
  return s;
}

/* A socket of type bound to a (and listening, for TCP), watched; -1. */
static int bound(dns_server *s, int type, const struct sockaddr_in *a) {
  int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
  if (fd >= 0 && type == SOCK_STREAM) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd >= 0 && (bind(fd, (const struct sockaddr *)a, sizeof *a) < 0 ||
                  (type == SOCK_STREAM && listen(fd, 16) < 0) || watch(s, fd) < 0)) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int dns_listen(dns_server *s, const char *ip, int port, vs_err *err) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "dns: bad address %s", ip);
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->n_ls; i++)
    if (!strcmp(s->ls[i].ip, ip)) {
      pthread_mutex_unlock(&s->mu);
      return 0;
    }
  int rc = 0, fd = -1, tfd = -1;
  listener *ls = realloc(s->ls, (s->n_ls + 1) * sizeof *ls);
  if (ls) s->ls = ls;
  if (!ls || (fd = bound(s, SOCK_DGRAM, &a)) < 0 || (tfd = bound(s, SOCK_STREAM, &a)) < 0) {
    rc = vs_err_errno(err, VS_INTERNAL, errno, "dns: listen on %s:%d", ip, port);
    if (fd >= 0) close(fd); /* (closing drops it from epoll) */
  } else {
    snprintf(ls[s->n_ls].ip, sizeof ls[0].ip, "%s", ip);
    ls[s->n_ls].fd = fd;
    ls[s->n_ls++].tcp_fd = tfd;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int dns_serves(dns_server *s, const char *ip) {
  int yes = 0;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->n_ls && !yes; i++) yes = !strcmp(s->ls[i].ip, ip);
  pthread_mutex_unlock(&s->mu);
  return yes;
}

void dns_unlisten(dns_server *s, const char *ip) {
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->n_ls; i++)
    if (!strcmp(s->ls[i].ip, ip)) {
      close(s->ls[i].fd); /* (closing drops them from epoll) */
      close(s->ls[i].tcp_fd);
      for (size_t k = 0; k < PENDING; k++) /* answers for it have nowhere to go */
        if (s->pend[k].listen_fd == s->ls[i].fd) s->pend[k].used = 0;
      s->ls[i] = s->ls[--s->n_ls];
      tcp_end(s, ip);
      break;
    }
  pthread_mutex_unlock(&s->mu);
}

void dns_close(dns_server *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_mutex_unlock(&s->mu);
  uint64_t one = 1;
  ssize_t w = write(s->wake, &one, sizeof one);
  (void)w;
  pthread_join(s->th, NULL);
  pthread_mutex_lock(&s->mu); /* the TCP threads end, each freeing its own */
  tcp_end(s, NULL);
  while (s->n_conns) pthread_cond_wait(&s->conns_cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  for (size_t i = 0; i < s->n_ls; i++) {
    close(s->ls[i].fd);
    close(s->ls[i].tcp_fd);
  }
  free(s->ls);
  close(s->fwd);
  close(s->wake);
  close(s->ep);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->conns_cv);
  free(s->pend);
  free(s);
}
