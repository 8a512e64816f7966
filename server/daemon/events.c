/* vessel.v1.Events: Subscribe over the event bus, and the conversion of bus
 * events to API messages used by every publisher's adapter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/daemon/daemon.h"
#include "vessel/v1/events.pb-c.h"
#include "vessel_proto_rpc.h"

static Vessel__V1__Event *event_msg(const evb_event *e) {
  Vessel__V1__Event *m = malloc(sizeof *m);
  vessel__v1__event__init(m);
  m->sequence = e->seq;
  m->timestamp = rt_timestamp(e->time_ns);
  m->type = (Vessel__V1__EventType)e->type;
  m->container_id = strdup(e->container_id);
  m->process_id = strdup(e->process_id);
  m->image = strdup(e->image);
  m->network = strdup(e->network);
  m->pod_id = strdup(e->pod_id);
  if (e->has_exit) {
    rt_exit x = {.code = e->exit_code, .signal = e->exit_signal, .oom_killed = e->oom_killed,
                 .exited_ns = e->exited_ns};
    snprintf(x.reason, sizeof x.reason, "%s", e->reason);
    m->exit_status = rt_exit_msg(&x);
  }
  /* attrs are "k=v\n" lines */
  size_t n = 0;
  for (const char *p = e->attrs; *p; p++) n += *p == '\n';
  if (n) m->attributes = calloc(n, sizeof *m->attributes);
  for (const char *p = e->attrs; m->attributes && *p;) {
    const char *nl = strchr(p, '\n'), *eq = memchr(p, '=', (size_t)(nl - p));
    if (!nl) break;
    if (eq) {
      Vessel__V1__Event__AttributesEntry *a = malloc(sizeof *a);
      vessel__v1__event__attributes_entry__init(a);
      a->key = strndup(p, (size_t)(eq - p));
      a->value = strndup(eq + 1, (size_t)(nl - eq - 1));
      m->attributes[m->n_attributes++] = a;
    }
    p = nl + 1;
  }
  return m;
}

static int wanted(const Vessel__V1__EventsSubscribeRequest *r, const evb_event *e) {
  if (*r->container_id && strcmp(r->container_id, e->container_id) != 0) return 0;
  if (!r->n_types) return 1;
  for (size_t i = 0; i < r->n_types; i++)
    if ((int)r->types[i] == e->type) return 1;
  return 0;
}

static int subscribe(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  Vessel__V1__EventsSubscribeRequest *req = (Vessel__V1__EventsSubscribeRequest *)in;
  int64_t since = req->since ? req->since->seconds * 1000000000 + req->since->nanos : 0;
  int rc = 0;
  evb_sub *s = NULL;
  if (since && req->after_sequence)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "give since or after_sequence, not both");
  else if (!(s = evb_subscribe(d->events, req->after_sequence, since, err)))
    rc = -1;
  while (rc == 0) {
    evb_event e;
    int r = evb_next(s, &e, vrpc_cancel_fd(call), -1, err);
    if (r <= 0) {
      rc = r < 0 ? -1 : vs_err_set(err, VS_CANCELLED, "subscription ended");
      break;
    }
    if (!wanted(req, &e)) continue;
    Vessel__V1__EventsSubscribeResponse resp;
    vessel__v1__events_subscribe_response__init(&resp);
    resp.event = event_msg(&e);
    rc = vrpc_send(call, &resp.base, err);
    protobuf_c_message_free_unpacked(&resp.event->base, NULL);
  }
  evb_unsubscribe(s);
  vrpc_msg_free(in);
  return rc;
}

int vd_events_register(vrpc_server *srv, vd_daemon *d, vs_err *err) {
  const vessel_v1_Events_handlers h = {.Subscribe = subscribe};
  return vessel_v1_Events_register(srv, &h, d, err);
}

void vd_emit(vd_daemon *d, int type, const char *image, const char *key, const char *value) {
  evb_event e;
  memset(&e, 0, sizeof e);
  e.type = type;
  snprintf(e.image, sizeof e.image, "%s", image ? image : "");
  if (key) evb_attr(&e, key, value);
  evb_publish(d->events, &e);
}
