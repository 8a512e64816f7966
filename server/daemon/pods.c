/* vessel.v1.Pods: a thin adapter over the runtime's pods (server/runtime
 * pod.c); containers join a pod through Containers.Create. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/daemon/daemon.h"
#include "vessel/v1/pods.pb-c.h"
#include "vessel_proto_rpc.h"

/* Sends the response whose `pod` field is m (freed after). */
static int send_pod(vrpc_call *call, ProtobufCMessage *resp, Vessel__V1__Pod **field,
                    Vessel__V1__Pod *m, vs_err *err) {
  *field = m;
  int rc = vrpc_send(call, resp, err);
  protobuf_c_message_free_unpacked(&m->base, NULL);
  return rc;
}

static int create(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__PodsCreateRequest, req);
  char id[128];
  int rc = rt_pod_create(d->runtime, req, id, err);
  vrpc_msg_free(req_msg);
  Vessel__V1__Pod *m = rc == 0 ? rt_pod_describe(d->runtime, id, err) : NULL;
  if (!m) return -1;
  Vessel__V1__PodsCreateResponse r = VESSEL__V1__PODS_CREATE_RESPONSE__INIT;
  return send_pod(call, &r.base, &r.pod, m, err);
}

static int labels_match(const Vessel__V1__Pod *p, const Vessel__V1__PodsListRequest *req) {
  for (size_t i = 0; i < req->n_label_filter; i++) {
    int found = 0;
    for (size_t k = 0; k < p->n_labels && !found; k++)
      found = !strcmp(p->labels[k]->key, req->label_filter[i]->key) &&
              !strcmp(p->labels[k]->value, req->label_filter[i]->value);
    if (!found) return 0;
  }
  return 1;
}

static int list(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__PodsListRequest, req);
  Vessel__V1__Pod **all;
  size_t n;
  int rc = rt_pod_list(d->runtime, &all, &n, err);
  if (rc == 0) {
    Vessel__V1__PodsListResponse r = VESSEL__V1__PODS_LIST_RESPONSE__INIT;
    r.pods = calloc(n ? n : 1, sizeof *r.pods);
    for (size_t i = 0; r.pods && i < n; i++)
      if (labels_match(all[i], req)) r.pods[r.n_pods++] = all[i];
    rc = r.pods ? vrpc_send(call, &r.base, err) : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    free(r.pods);
    rt_pod_list_free(all, n);
  }
  vrpc_msg_free(req_msg);
  return rc;
}

static int inspect(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__PodsInspectRequest, req);
  Vessel__V1__Pod *m = rt_pod_describe(d->runtime, req->pod_id, err);
  vrpc_msg_free(req_msg);
  if (!m) return -1;
  Vessel__V1__PodsInspectResponse r = VESSEL__V1__PODS_INSPECT_RESPONSE__INIT;
  return send_pod(call, &r.base, &r.pod, m, err);
}

static int stop(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__PodsStopRequest, req);
  int rc = rt_pod_stop(d->runtime, req->pod_id, req->signal, req->timeout_ms, err);
  Vessel__V1__Pod *m = rc == 0 ? rt_pod_describe(d->runtime, req->pod_id, err) : NULL;
  vrpc_msg_free(req_msg);
  if (!m) return -1;
  Vessel__V1__PodsStopResponse r = VESSEL__V1__PODS_STOP_RESPONSE__INIT;
  return send_pod(call, &r.base, &r.pod, m, err);
}

static int del(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__PodsDeleteRequest, req);
  int rc = rt_pod_delete(d->runtime, req->pod_id, req->force, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__PodsDeleteResponse r = VESSEL__V1__PODS_DELETE_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int stats(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__PodsStatsRequest, req);
  Vessel__V1__PodsStatsResponse *r = NULL;
  int rc = rt_pod_stats(d->runtime, req->pod_id, &r, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  rc = vrpc_send(call, &r->base, err);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return rc;
}

int vd_pods_register(vrpc_server *srv, vd_daemon *d, vs_err *err) {
  const vessel_v1_Pods_handlers h = {
      .Create = create, .List = list, .Inspect = inspect, .Stop = stop, .Delete = del, .Stats = stats};
  return vessel_v1_Pods_register(srv, &h, d, err);
}
