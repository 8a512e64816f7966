/* Copies into and out of a container: Agent.CopyIn and Agent.CopyOut,
 * forwarded chunk by chunk (vminitd reads and writes the tar itself, so
 * the image needs no tar, and modes and owners are kept). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

/* A streaming agent call on c's VM (c CREATED or RUNNING). The VM's lock
 * stays held shared until copy_end; a teardown cancels the call first. */
static vrpc_call *copy_begin(rt_container *c, const vrpc_method *m, vs_err *err) {
  rt_container *h = rt_vm_host(c);
  pthread_rwlock_rdlock(&h->vm_lock);
  pthread_mutex_lock(&h->mu);
  vrpc_channel *ch = h->vm ? vm_channel(h->vm) : NULL;
  pthread_mutex_unlock(&h->mu);
  pthread_mutex_lock(&c->mu);
  rt_state st = c->state;
  vrpc_call *call = NULL;
  vrpc_call **grown = NULL;
  if (st != RT_CREATED && st != RT_RUNNING) {
    vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is %s; copies need it created or running",
               c->id, rt_state_name(st));
  } else if (!ch) {
    vs_err_set(err, VS_UNAVAILABLE, "container %s has no running VM", c->id);
  } else if (!(grown = realloc(c->copies, (c->n_copies + 1) * sizeof *grown))) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  } else {
    c->copies = grown;
    /* On record before the VM can go: see rt_teardown_vm. */
    if ((call = vrpc_call_start(ch, m, NULL, err))) c->copies[c->n_copies++] = call;
  }
  pthread_mutex_unlock(&c->mu);
  if (!call) pthread_rwlock_unlock(&h->vm_lock);
  return call;
}

static void copy_end(rt_container *c, vrpc_call *call) {
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < c->n_copies; i++)
    if (c->copies[i] == call) {
      c->copies[i] = c->copies[--c->n_copies];
      break;
    }
  pthread_mutex_unlock(&c->mu);
  vrpc_call_free(call);
  pthread_rwlock_unlock(&rt_vm_host(c)->vm_lock);
}

void rt_copies_cancel(rt_container *c) {
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < c->n_copies; i++) vrpc_cancel(c->copies[i]);
  pthread_mutex_unlock(&c->mu);
}

static int copy_in(rt_container *c, const rt_copy_in_opts *o,
                   int (*read)(void *, const void **, size_t *, vs_err *), void *arg,
                   int64_t *bytes, vs_err *err) {
  vrpc_call *call = copy_begin(c, &vessel_v1_Agent_CopyIn, err);
  if (!call) return -1;
  Vessel__V1__AgentCopyInHeader h;
  vessel__v1__agent_copy_in_header__init(&h);
  h.container_id = c->id;
  h.path = (char *)o->path;
  h.archive = 1;
  h.uid = o->uid;
  h.gid = o->gid;
  h.chown = o->chown;
  Vessel__V1__AgentCopyInRequest req;
  vessel__v1__agent_copy_in_request__init(&req);
  req.kind_case = VESSEL__V1__AGENT_COPY_IN_REQUEST__KIND_HEADER;
  req.header = &h;
  int rc = vrpc_send(call, &req.base, err), client_failed = 0;
  *bytes = 0;
  while (rc == 0) {
    const void *data;
    size_t len;
    int r = read(arg, &data, &len, err);
    if (r < 0) client_failed = 1, rc = -1;
    if (r != 1) break;
    req.kind_case = VESSEL__V1__AGENT_COPY_IN_REQUEST__KIND_DATA;
    req.data.data = (uint8_t *)data;
    req.data.len = len;
    rc = vrpc_send(call, &req.base, err);
    *bytes += (int64_t)len;
  }
  if (client_failed) { /* the agent drops its partial extraction */
    vrpc_cancel(call);
  } else {
    /* Done, or the agent ended the call early: its status says why. */
    ProtobufCMessage *resp = NULL;
    int got = rc == 0 && vrpc_close_send(call, err) == 0 ? vrpc_recv(call, &resp, err) : 0;
    if (vrpc_finish(call, err) < 0) rc = -1;
    else if (rc == 0 && got != 1) rc = vs_err_set(err, VS_INTERNAL, "the agent's CopyIn gave no answer");
    vrpc_msg_free(resp);
  }
  copy_end(c, call);
  return rc;
}

int rt_copy_in(rt_runtime *rt, const char *id, const rt_copy_in_opts *o,
               int (*read)(void *, const void **, size_t *, vs_err *), void *arg, int64_t *bytes,
               vs_err *err) {
  if (!o->path[0] || o->path[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "copy destination \"%s\" must be absolute", o->path);
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  int rc = copy_in(c, o, read, arg, bytes, err);
  rt_put(c);
  return rc;
}

static int copy_out(rt_container *c, const char *path, rt_copy_out_fn fn, void *arg, vs_err *err) {
  vrpc_call *call = copy_begin(c, &vessel_v1_Agent_CopyOut, err);
  if (!call) return -1;
  Vessel__V1__AgentCopyOutRequest req;
  vessel__v1__agent_copy_out_request__init(&req);
  req.container_id = c->id;
  req.path = (char *)path;
  int rc = vrpc_send(call, &req.base, err) == 0 && vrpc_close_send(call, err) == 0 ? 0 : -1;
  int r = 1;
  while (rc == 0 && r == 1) {
    ProtobufCMessage *m;
    if ((r = vrpc_recv(call, &m, err)) != 1) break;
    Vessel__V1__AgentCopyOutResponse *resp = (Vessel__V1__AgentCopyOutResponse *)m;
    rc = fn(arg, resp->info, resp->data.data, resp->data.len, err);
    vrpc_msg_free(m);
  }
  if (rc == 0 && vrpc_finish(call, err) < 0) rc = -1; /* the agent's status */
  copy_end(c, call);
  return rc;
}

int rt_copy_out(rt_runtime *rt, const char *id, const char *path, rt_copy_out_fn fn, void *arg,
                vs_err *err) {
  if (!path || path[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "copy source \"%s\" must be absolute", path);
  rt_container *c = rt_get(rt, id, err);
  if (!c) return -1;
  int rc = copy_out(c, path, fn, arg, err);
  rt_put(c);
  return rc;
}
