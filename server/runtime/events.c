/* Container and process events to vesseld's bus; the clocks and the
 * background threads the runtime's files share. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/runtime/runtime_internal.h"

void rt_now(int64_t *ns) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  *ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct timespec rt_deadline(int64_t ms) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

int64_t rt_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rt_spawn_detached(void *(*fn)(void *), void *arg) {
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  int rc = pthread_create(&th, &at, fn, arg);
  pthread_attr_destroy(&at);
  return rc == 0 ? 0 : -1;
}

void rt_emit(rt_container *c, int type, const char *exec_id, const rt_exit *e) {
  evb_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = type;
  if (c->is_pod) {
    snprintf(ev.pod_id, sizeof ev.pod_id, "%s", c->id);
  } else {
    snprintf(ev.container_id, sizeof ev.container_id, "%s", c->id);
    if (c->pod) snprintf(ev.pod_id, sizeof ev.pod_id, "%s", c->pod->id);
  }
  snprintf(ev.process_id, sizeof ev.process_id, "%s", exec_id ? exec_id : "");
  if (type == EVB_CONTAINER_CREATED && c->spec)
    snprintf(ev.image, sizeof ev.image, "%s", c->spec->image);
  if (e) {
    ev.has_exit = 1;
    ev.exit_code = e->code;
    ev.exit_signal = e->signal;
    ev.oom_killed = e->oom_killed;
    ev.exited_ns = e->exited_ns;
    snprintf(ev.reason, sizeof ev.reason, "%s", e->reason);
    if (c->is_pod) { /* a pod's stop has a reason, not an exit */
      ev.has_exit = 0;
      snprintf(ev.attrs, sizeof ev.attrs, "reason=%s\n", e->reason);
    }
  }
  evb_publish(c->rt->cfg.events, &ev);
}
