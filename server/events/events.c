#include "server/events/events.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct evb_sub {
  evb_bus *bus;
  uint64_t next; /* sequence number wanted next */
  int wake_fd;   /* eventfd, written on every publish */
  evb_sub *prev, *nextsub;
};

struct evb_bus {
  pthread_mutex_t mu;
  evb_event *ring;
  size_t cap;
  uint64_t last; /* sequence of the newest event (0 = none yet) */
  evb_sub *subs;
};

evb_bus *evb_new(size_t history, vs_err *err) {
  evb_bus *b = calloc(1, sizeof *b);
  if (b) b->ring = calloc(history ? history : 1, sizeof *b->ring);
  if (!b || !b->ring) {
    free(b);
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  b->cap = history ? history : 1;
  pthread_mutex_init(&b->mu, NULL);
  return b;
}

void evb_free(evb_bus *b) {
  if (!b) return;
  pthread_mutex_destroy(&b->mu);
  free(b->ring);
  free(b);
}

static void wake(int fd) {
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof one);
  (void)n;
}

uint64_t evb_publish(evb_bus *b, evb_event *e) {
  if (!e->time_ns) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  }
  pthread_mutex_lock(&b->mu);
  e->seq = ++b->last;
  b->ring[(e->seq - 1) % b->cap] = *e;
  for (evb_sub *s = b->subs; s; s = s->nextsub) wake(s->wake_fd);
  pthread_mutex_unlock(&b->mu);
  return e->seq;
}

/* Oldest sequence still in the ring. */
static uint64_t oldest(const evb_bus *b) { return b->last > b->cap ? b->last - b->cap + 1 : 1; }

evb_sub *evb_subscribe(evb_bus *b, uint64_t after_seq, int64_t since_ns, vs_err *err) {
  evb_sub *s = calloc(1, sizeof *s);
  if (!s) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  s->bus = b;
  s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wake_fd < 0) {
    free(s);
    vs_err_errno(err, VS_RESOURCE_EXHAUSTED, errno, "eventfd");
    return NULL;
  }
  pthread_mutex_lock(&b->mu);
  if (after_seq) {
    s->next = after_seq + 1;
    if (s->next < oldest(b)) s->next = oldest(b); /* older history is gone */
  } else if (since_ns > 0) {
    s->next = b->last + 1;
    for (uint64_t q = oldest(b); q <= b->last; q++)
      if (b->ring[(q - 1) % b->cap].time_ns >= since_ns) {
        s->next = q;
        break;
      }
  } else {
    s->next = b->last + 1;
  }
  s->nextsub = b->subs;
  if (b->subs) b->subs->prev = s;
  b->subs = s;
  pthread_mutex_unlock(&b->mu);
  return s;
}

void evb_unsubscribe(evb_sub *s) {
  if (!s) return;
  evb_bus *b = s->bus;
  pthread_mutex_lock(&b->mu);
  if (s->prev) s->prev->nextsub = s->nextsub;
  else b->subs = s->nextsub;
  if (s->nextsub) s->nextsub->prev = s->prev;
  pthread_mutex_unlock(&b->mu);
  close(s->wake_fd);
  free(s);
}

int evb_next(evb_sub *s, evb_event *out, int cancel_fd, int timeout_ms, vs_err *err) {
  evb_bus *b = s->bus;
  for (;;) {
    pthread_mutex_lock(&b->mu);
    if (s->next < oldest(b)) {
      uint64_t lost = oldest(b) - s->next;
      pthread_mutex_unlock(&b->mu);
      return vs_err_set(err, VS_RESOURCE_EXHAUSTED,
                        "event subscriber fell %llu events behind the history (%zu); resubscribe",
                        (unsigned long long)lost, b->cap);
    }
    if (s->next <= b->last) {
      *out = b->ring[(s->next - 1) % b->cap];
      s->next++;
      pthread_mutex_unlock(&b->mu);
      return 1;
    }
    pthread_mutex_unlock(&b->mu);
    struct pollfd p[2] = {{s->wake_fd, POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    int n = poll(p, cancel_fd >= 0 ? 2 : 1, timeout_ms);
    if (n == 0 || (n > 0 && (p[1].revents & POLLIN))) return 0;
    if (n < 0 && errno != EINTR) return vs_err_errno(err, VS_INTERNAL, errno, "poll");
    uint64_t v;
    ssize_t r = read(s->wake_fd, &v, sizeof v);
    (void)r;
  }
}

void evb_attr(evb_event *e, const char *key, const char *value) {
  size_t n = strlen(e->attrs);
  snprintf(e->attrs + n, sizeof e->attrs - n, "%s=%s\n", key, value ? value : "");
}
