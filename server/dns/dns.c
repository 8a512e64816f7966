#include "server/dns/dns.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
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
                             const char *gateway, uint8_t *out, size_t cap, size_t *out_len) {
  if (n < 12 || cap < 512) return DNS_DROP;
  int qr = q[2] >> 7, opcode = (q[2] >> 3) & 0xf;
  int qdcount = q[4] << 8 | q[5];
  if (qr || opcode != 0 || qdcount != 1) return DNS_DROP;
  char name[256];
  int type;
  size_t qend;
  if (question(q, n, name, sizeof name, &type, &qend) < 0) return DNS_DROP;
  struct in_addr addr;
  if (!lookup(arg, gateway, name, &addr)) return DNS_FORWARD;
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
  int fd;
} listener;

typedef struct pending {
  int used;
  uint16_t id, orig_id;
  int listen_fd;
  struct sockaddr_storage client;
  socklen_t client_len;
  int64_t deadline_ms;
} pending;

struct dns_server {
  dns_lookup_fn lookup;
  void *arg;
  struct sockaddr_in up[3];
  size_t n_up;
  int ep, wake, fwd;
  pthread_mutex_t mu; /* listeners, pending; the thread handles events with it held */
  listener *ls;
  size_t n_ls;
  pending *pend;
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

/* An answer that only says "failed" (no upstream, or the name was bad). */
static void servfail(int fd, const uint8_t *q, size_t n, const struct sockaddr *to, socklen_t tl) {
  uint8_t r[12];
  if (n < 12) return;
  memcpy(r, q, 12);
  r[2] = 0x80 | (q[2] & 0x01);
  r[3] = 0x82;
  memset(r + 4, 0, 8);
  sendto(fd, r, sizeof r, MSG_DONTWAIT, to, tl);
}

static void forward(dns_server *s, int lfd, uint8_t *q, size_t n, struct sockaddr_storage *from,
                    socklen_t fl) {
  if (!s->n_up) {
    servfail(lfd, q, n, (struct sockaddr *)from, fl);
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

static void from_client(dns_server *s, listener *l) {
  uint8_t q[MAX_MSG], a[MAX_MSG];
  struct sockaddr_storage from;
  socklen_t fl = sizeof from;
  ssize_t n;
  while ((n = recvfrom(l->fd, q, sizeof q, MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) >= 0) {
    size_t al;
    dns_verdict v = dns_answer_local(q, (size_t)n, s->lookup, s->arg, l->ip, a, sizeof a, &al);
    if (v == DNS_ANSWERED) sendto(l->fd, a, al, MSG_DONTWAIT, (struct sockaddr *)&from, fl);
    else if (v == DNS_FORWARD) forward(s, l->fd, q, (size_t)n, &from, fl);
    fl = sizeof from;
  }
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
        for (size_t k = 0; k < s->n_ls; k++) /* (unlistened meanwhile: gone) */
          if (s->ls[k].fd == fd) from_client(s, &s->ls[k]);
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
    free(s->pend);
    free(s);
    return NULL;
  }
  return s;
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
  int rc = 0, fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  listener *ls = realloc(s->ls, (s->n_ls + 1) * sizeof *ls);
  if (fd < 0 || !ls || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || watch(s, fd) < 0) {
    rc = vs_err_errno(err, VS_INTERNAL, errno, "dns: listen on %s:%d", ip, port);
    if (fd >= 0) close(fd);
  } else {
    s->ls = ls;
    snprintf(ls[s->n_ls].ip, sizeof ls[0].ip, "%s", ip);
    ls[s->n_ls++].fd = fd;
  }
  if (ls) s->ls = ls;
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
      epoll_ctl(s->ep, EPOLL_CTL_DEL, s->ls[i].fd, NULL);
      close(s->ls[i].fd);
      for (size_t k = 0; k < PENDING; k++) /* answers for it have nowhere to go */
        if (s->pend[k].listen_fd == s->ls[i].fd) s->pend[k].used = 0;
      s->ls[i] = s->ls[--s->n_ls];
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
  for (size_t i = 0; i < s->n_ls; i++) close(s->ls[i].fd);
  free(s->ls);
  close(s->fwd);
  close(s->wake);
  close(s->ep);
  pthread_mutex_destroy(&s->mu);
  free(s->pend);
  free(s);
}
