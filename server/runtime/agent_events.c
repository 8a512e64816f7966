/* Relays a VM agent's own events (OOM kills found in memory.events) to
 * vesseld's bus. Process exits arrive through the stdio streams instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

/* The call is the thread's own argument, never re-read from c: stop
 * clears c->events_call before it cancels, maybe before this even runs. */
typedef struct relay_arg {
  rt_container *c;
  vrpc_call *call;
} relay_arg;

/* The container of the VM of h an agent event is about: h itself, or
 * (h a pod) the container of that ID in it; a reference, or NULL. */
static rt_container *about(rt_container *h, const char *id) {
  if (!h->is_pod) {
    rt_ref(h);
    return h;
  }
  vs_err ignore;
  rt_container *c = *id ? rt_get(h->rt, id, &ignore) : NULL;
  if (c && c->pod != h) {
    rt_put(c);
    c = NULL;
  }
  return c;
}

static void *events_main(void *arg) {
  relay_arg ra = *(relay_arg *)arg;
  free(arg);
  rt_container *h = ra.c;
  for (;;) {
    ProtobufCMessage *m;
    vs_err err;
    if (vrpc_recv(ra.call, &m, &err) != 1) break;
    Vessel__V1__Event *e = ((Vessel__V1__AgentEventsResponse *)m)->event;
    rt_container *c = e && e->type == VESSEL__V1__EVENT_TYPE__EVENT_TYPE_CONTAINER_OOM
                          ? about(h, e->container_id)
                          : NULL;
    if (c) {
      evb_event ev;
      memset(&ev, 0, sizeof ev);
      ev.type = EVB_CONTAINER_OOM;
      snprintf(ev.container_id, sizeof ev.container_id, "%s", c->id);
      if (c->pod) snprintf(ev.pod_id, sizeof ev.pod_id, "%s", c->pod->id);
      snprintf(ev.process_id, sizeof ev.process_id, "%s",
               strcmp(e->process_id, c->id) ? e->process_id : "");
      evb_publish(c->rt->cfg.events, &ev);
      pthread_mutex_lock(&h->events_mu);
      c->oom_seen++;
      pthread_cond_broadcast(&h->events_cv);
      pthread_mutex_unlock(&h->events_mu);
      rt_put(c);
    }
    vrpc_msg_free(m);
  }
  /* A pod's stream that ended while it was still wanted: its VM died. */
  pthread_mutex_lock(&h->events_mu);
  int lost = h->is_pod && h->events_call == ra.call && !rt_closing(h->rt);
  pthread_mutex_unlock(&h->events_mu);
  if (lost) rt_pod_lost(h);
  return NULL;
}

int rt_agent_events_start(rt_container *c, vs_err *err) {
  Vessel__V1__AgentEventsRequest req;
  vessel__v1__agent_events_request__init(&req);
  vrpc_call *call = vrpc_call_start(vm_channel(c->vm), &vessel_v1_Agent_Events, NULL, err);
  if (!call) return -1;
  if (vrpc_send(call, &req.base, err) < 0 || vrpc_close_send(call, err) < 0) {
    vrpc_call_free(call);
    return -1;
  }
  relay_arg *ra = malloc(sizeof *ra);
  pthread_mutex_lock(&c->events_mu);
  c->events_call = call;
  c->events_running = 0;
  if (ra) {
    *ra = (relay_arg){c, call};
    c->events_running = pthread_create(&c->events_thread, NULL, events_main, ra) == 0;
  }
  if (!c->events_running) {
    free(ra);
    c->events_call = NULL;
  }
  pthread_mutex_unlock(&c->events_mu);
  if (!c->events_running) {
    vrpc_call_free(call);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "cannot start the events relay");
  }
  return 0;
}

/* Before the VM's channel goes away. */
void rt_agent_events_stop(rt_container *c) {
  pthread_mutex_lock(&c->events_mu);
  vrpc_call *call = c->events_call;
  int running = c->events_running;
  c->events_call = NULL;
  c->events_running = 0;
  pthread_mutex_unlock(&c->events_mu);
  if (!call) return;
  vrpc_cancel(call);
  if (running) pthread_join(c->events_thread, NULL);
  vrpc_call_free(call);
}

void rt_agent_events_wait_oom(rt_container *c, int ms) {
  rt_container *h = rt_vm_host(c); /* whose stream relays it */
  struct timespec until = rt_deadline(ms);
  pthread_mutex_lock(&h->events_mu);
  while (!c->oom_seen && h->events_running &&
         pthread_cond_timedwait(&h->events_cv, &h->events_mu, &until) == 0) {
  }
  pthread_mutex_unlock(&h->events_mu);
}
