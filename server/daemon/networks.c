/* vessel.v1.Networks: definitions and leases from server/net. The bridge
 * itself is brought up by the runtime when the first container needs it. */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/daemon/daemon.h"
#include "vessel/v1/networks.pb-c.h"
#include "vessel_proto_rpc.h"

static Vessel__V1__Network *network_msg(const net_network *n) {
  Vessel__V1__Network *m = malloc(sizeof *m);
  vessel__v1__network__init(m);
  m->name = strdup(n->name);
  m->id = strdup(n->id);
  m->driver = strdup("bridge");
  m->subnet = strdup(n->subnet);
  m->gateway = strdup(n->gateway);
  m->bridge = strdup(n->bridge);
  m->internal = n->internal;
  m->builtin = !strcmp(n->name, NET_DEFAULT);
  m->created_at = rt_timestamp(n->created * 1000000000);
  if (n->n_leases) m->containers = calloc(n->n_leases, sizeof *m->containers);
  for (size_t i = 0; m->containers && i < n->n_leases; i++) {
    Vessel__V1__Network__ContainersEntry *e = malloc(sizeof *e);
    vessel__v1__network__containers_entry__init(e);
    e->key = strdup(n->leases[i].container);
    e->value = strdup(n->leases[i].ip);
    m->containers[m->n_containers++] = e;
  }
  return m;
}

static int create(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__NetworksCreateRequest, req);
  net_network n;
  int rc;
  if (*req->driver && strcmp(req->driver, "bridge") != 0)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "driver \"%s\": only \"bridge\" exists", req->driver);
  else if (req->n_labels)
    rc = vs_err_set(err, VS_UNIMPLEMENTED, "network labels are not supported yet");
  else
    rc = net_create(d->networks, req->name, req->subnet, req->gateway, req->internal, &n, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__NetworksCreateResponse r;
  vessel__v1__networks_create_response__init(&r);
  r.network = network_msg(&n);
  evb_event e;
  memset(&e, 0, sizeof e);
  e.type = EVB_NETWORK_CREATED;
  snprintf(e.network, sizeof e.network, "%s", n.name);
  evb_attr(&e, "subnet", n.subnet);
  evb_publish(d->events, &e);
  net_network_free(&n);
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.network->base, NULL);
  return rc;
}

static int list(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__NetworksListRequest, req);
  net_network *all = NULL;
  size_t n = 0;
  int rc = 0;
  for (size_t f = 0; f < req->n_filters; f++)
    if (strncmp(req->filters[f], "name=", 5) != 0)
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "unknown filter \"%s\" (use name=<glob>)",
                      req->filters[f]);
  if (rc == 0) rc = net_list(d->networks, &all, &n, err);
  Vessel__V1__NetworksListResponse r;
  vessel__v1__networks_list_response__init(&r);
  if (rc == 0 && n) r.networks = calloc(n, sizeof *r.networks);
  for (size_t i = 0; rc == 0 && r.networks && i < n; i++) {
    int ok = !req->n_filters;
    for (size_t f = 0; f < req->n_filters; f++) ok |= !fnmatch(req->filters[f] + 5, all[i].name, 0);
    if (ok) r.networks[r.n_networks++] = network_msg(&all[i]);
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; i < r.n_networks; i++) protobuf_c_message_free_unpacked(&r.networks[i]->base, NULL);
  free(r.networks);
  for (size_t i = 0; i < n; i++) net_network_free(&all[i]);
  free(all);
  vrpc_msg_free(req_msg);
  return rc;
}

static int inspect(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__NetworksInspectRequest, req);
  net_network n;
  int rc = net_get(d->networks, req->name, &n, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__NetworksInspectResponse r;
  vessel__v1__networks_inspect_response__init(&r);
  r.network = network_msg(&n);
  net_network_free(&n);
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.network->base, NULL);
  return rc;
}

static int del(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__NetworksDeleteRequest, req);
  char name[64];
  snprintf(name, sizeof name, "%s", req->name);
  net_network n;
  int have = net_get(d->networks, req->name, &n, NULL) == 0;
  int rc = net_delete(d->networks, req->name, req->force, err);
  if (have) {
    if (rc == 0) rt_net_remove(d->runtime, &n);
    net_network_free(&n);
  }
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  evb_event e;
  memset(&e, 0, sizeof e);
  e.type = EVB_NETWORK_DELETED;
  snprintf(e.network, sizeof e.network, "%s", name);
  evb_publish(d->events, &e);
  Vessel__V1__NetworksDeleteResponse r;
  vessel__v1__networks_delete_response__init(&r);
  return vrpc_send(call, &r.base, err);
}

int vd_networks_register(vrpc_server *srv, vd_daemon *d, vs_err *err) {
  const vessel_v1_Networks_handlers h = {
      .Create = create, .List = list, .Inspect = inspect, .Delete = del};
  return vessel_v1_Networks_register(srv, &h, d, err);
}
