/* ev: the agent's event hub. Publishers append events; each Agent.Events
 * stream is a subscriber with its own bounded queue and an eventfd that
 * turns readable when events are queued. */
#ifndef VESSEL_GUEST_AGENT_EVENTS_H
#define VESSEL_GUEST_AGENT_EVENTS_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EV_QUEUE_MAX 1024

typedef struct ev_event {
  uint64_t sequence;
  struct timespec at;
  int type; /* Vessel__V1__EventType */
  char container_id[129];
  char process_id[129]; /* empty for the init process */
  int has_exit;
  int exit_code, exit_signal, oom_killed;
  struct timespec exited_at;
} ev_event;

typedef struct ev_sub {
  int fd; /* eventfd */
  ev_event *q;
  size_t head, len;
  int overflow; /* events were dropped: the subscriber was too slow */
  struct ev_sub *next;
} ev_sub;

typedef struct ev_hub {
  pthread_mutex_t mu;
  uint64_t seq;
  ev_sub *subs;
} ev_hub;

void ev_hub_init(ev_hub *h);
/* Stamps sequence and time (if unset) and queues e for every subscriber. */
void ev_publish(ev_hub *h, const ev_event *e);
ev_sub *ev_subscribe(ev_hub *h);
void ev_unsubscribe(ev_hub *h, ev_sub *s);
/* Pops one event: 1 and *out set, 0 if none queued, -1 after overflow. */
int ev_next(ev_hub *h, ev_sub *s, ev_event *out);

#ifdef __cplusplus
}
#endif
#endif
