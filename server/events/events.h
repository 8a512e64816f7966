/* events: vesseld's event bus. Publishers append to one bounded history ring
 * and stamp a sequence number; each subscriber is just a cursor into the
 * ring, so replay ("after sequence N", "since time T") and live delivery
 * are the same read, and a subscriber that falls more than the ring behind
 * is told so instead of silently losing events. */
#ifndef VESSEL_SERVER_EVENTS_EVENTS_H
#define VESSEL_SERVER_EVENTS_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Event types: the values of vessel.v1.EventType. */
enum {
  EVB_CONTAINER_CREATED = 1,
  EVB_CONTAINER_STARTED = 2,
  EVB_CONTAINER_EXITED = 3,
  EVB_CONTAINER_OOM = 4,
  EVB_CONTAINER_DELETED = 5,
  EVB_PROCESS_STARTED = 20,
  EVB_PROCESS_EXITED = 21,
  EVB_IMAGE_PULLED = 40,
  EVB_IMAGE_PUSHED = 41,
  EVB_IMAGE_DELETED = 42,
  EVB_IMAGE_TAGGED = 43,
  EVB_IMAGE_IMPORTED = 44,
  EVB_NETWORK_CREATED = 60,
  EVB_NETWORK_DELETED = 61,
  EVB_POD_CREATED = 80,
  EVB_POD_STOPPED = 81,
  EVB_POD_DELETED = 82,
};

typedef struct evb_event {
  uint64_t seq;    /* set by evb_publish */
  int64_t time_ns; /* unix ns; set by evb_publish when 0 */
  int type;
  char container_id[128];
  char process_id[128];
  char image[512];
  char network[128];
  char pod_id[128];
  int has_exit;
  int exit_code, exit_signal, oom_killed;
  int64_t exited_ns;
  char reason[128];
  char attrs[512]; /* "key=value" lines, '\n'-separated */
} evb_event;

typedef struct evb_bus evb_bus;
typedef struct evb_sub evb_sub;

evb_bus *evb_new(size_t history, vs_err *err);
/* Frees the bus; every subscriber must be gone already (call it after the
 * RPC server, whose handlers hold subscriptions, has stopped). */
void evb_free(evb_bus *b);

/* Stamps seq (and time) and appends; returns the sequence number. */
uint64_t evb_publish(evb_bus *b, evb_event *e);

/* A subscriber starting after sequence after_seq, or (when since_ns > 0) at
 * the first event at or after that time, or with live events only when both
 * are 0. */
evb_sub *evb_subscribe(evb_bus *b, uint64_t after_seq, int64_t since_ns, vs_err *err);
void evb_unsubscribe(evb_sub *s);

/* Next event: 1 with *out filled; 0 when cancel_fd turned readable or
 * timeout_ms passed (-1 = wait forever); -1 with err when the subscriber
 * fell more than the history behind (RESOURCE_EXHAUSTED). */
int evb_next(evb_sub *s, evb_event *out, int cancel_fd, int timeout_ms, vs_err *err);

/* Helper for publishers: appends "key=value\n" to e->attrs. */
void evb_attr(evb_event *e, const char *key, const char *value);

#ifdef __cplusplus
}
#endif
#endif
