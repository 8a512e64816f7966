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

static void *events_main(void *arg) {
  relay_arg ra = *(relay_arg *)arg;
  free(arg);
  rt_container *c = ra.c;
  for (;;) {
    ProtobufCMessage *m;
    vs_err err;
    if (vrpc_recv(ra.call, &m, &err) != 1) break;
    Vessel__V1__Event *e = ((Vessel__V1__AgentEventsResponse *)m)->event;
    if (e && e->type == VESSEL__V1__EVENT_TYPE__EVENT_TYPE_CONTAINER_OOM) {
      evb_event ev;
      memset(&ev, 0, sizeof ev);
      ev.type = EVB_CONTAINER_OOM;
      snprintf(ev.container_id, sizeof ev.container_id, "%s", c->id);
      snprintf(ev.process_id, sizeof ev.process_id, "%s",
               strcmp(e->process_id, c->id) ? e->process_id : "");
      evb_publish(c->rt->cfg.events, &ev);
      pthread_mutex_lock(&c->events_mu);
      c->oom_seen++;
      pthread_cond_broadcast(&c->events_cv);
      pthread_mutex_unlock(&c->events_mu);
    }
    vrpc_msg_free(m);
  }
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
  struct timespec until = rt_deadline(ms);
  pthread_mutex_lock(&c->events_mu);
  while (!c->oom_seen && c->events_running &&
         pthread_cond_timedwait(&c->events_cv, &c->events_mu, &until) == 0) {
  }
  pthread_mutex_unlock(&c->events_mu);
}
