/* Event hub: fan-out of container/process events to Events streams. */
#include "guest-agent/events.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

void ev_hub_init(ev_hub *h) {
  pthread_mutex_init(&h->mu, NULL);
  h->seq = 0;
  h->subs = NULL;
}

void ev_publish(ev_hub *h, const ev_event *e) {
  pthread_mutex_lock(&h->mu);
  ev_event ev = *e;
  ev.sequence = ++h->seq;
  if (ev.at.tv_sec == 0) clock_gettime(CLOCK_REALTIME, &ev.at);
  for (ev_sub *s = h->subs; s; s = s->next) {
    if (s->len == EV_QUEUE_MAX) {
      s->overflow = 1;
    } else {
      s->q[(s->head + s->len) % EV_QUEUE_MAX] = ev;
      s->len++;
    }
    uint64_t one = 1;
    ssize_t n = write(s->fd, &one, sizeof one);
    (void)n;
  }
  pthread_mutex_unlock(&h->mu);
}

ev_sub *ev_subscribe(ev_hub *h) {
  ev_sub *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->q = calloc(EV_QUEUE_MAX, sizeof *s->q);
  s->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!s->q || s->fd < 0) {
    if (s->fd >= 0) close(s->fd);
    free(s->q);
    free(s);
    return NULL;
  }
  pthread_mutex_lock(&h->mu);
  s->next = h->subs;
  h->subs = s;
  pthread_mutex_unlock(&h->mu);
  return s;
}

void ev_unsubscribe(ev_hub *h, ev_sub *s) {
  if (!s) return;
  pthread_mutex_lock(&h->mu);
  for (ev_sub **p = &h->subs; *p; p = &(*p)->next) {
    if (*p == s) {
      *p = s->next;
      break;
    }
  }
  pthread_mutex_unlock(&h->mu);
  close(s->fd);
  free(s->q);
  free(s);
}

int ev_next(ev_hub *h, ev_sub *s, ev_event *out) {
  pthread_mutex_lock(&h->mu);
  int rc = 0;
  if (s->overflow) {
    rc = -1;
  } else if (s->len > 0) {
    *out = s->q[s->head];
    s->head = (s->head + 1) % EV_QUEUE_MAX;
    s->len--;
    rc = 1;
  } else {
    uint64_t v;
    ssize_t n = read(s->fd, &v, sizeof v); /* drain: nothing queued */
    (void)n;
  }
  pthread_mutex_unlock(&h->mu);
  return rc;
}
