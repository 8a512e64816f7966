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
  if (n->n_labels) m->labels = calloc(n->n_labels, sizeof *m->labels);
  for (size_t i = 0; m->labels && i < n->n_labels; i++) {
    Vessel__V1__Network__LabelsEntry *e = malloc(sizeof *e);
    vessel__v1__network__labels_entry__init(e);
    const char *eq = strchr(n->labels[i], '=');
    e->key = strndup(n->labels[i], eq ? (size_t)(eq - n->labels[i]) : strlen(n->labels[i]));
    e->value = strdup(eq ? eq + 1 : "");
    m->labels[m->n_labels++] = e;
  }
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
  else {
    char **labels = calloc(req->n_labels ? req->n_labels : 1, sizeof *labels);
    size_t nl = 0;
    for (size_t i = 0; labels && i < req->n_labels; i++)
      if (asprintf(&labels[nl], "%s=%s", req->labels[i]->key, req->labels[i]->value) >= 0) nl++;
    rc = labels ? net_create(d->networks, req->name, req->subnet, req->gateway, req->internal,
                             labels, nl, &n, err)
                : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < nl; i++) free(labels[i]);
    free(labels);
  }
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

/* One filter "key=value" against n. */
static int match_one(const net_network *n, const char *f) {
  if (!strncmp(f, "name=", 5)) return !fnmatch(f + 5, n->name, 0);
  if (!strncmp(f, "driver=", 7)) return !strcmp(f + 7, "bridge");
  const char *want = f + 6; /* label=k or label=k=v */
  size_t kl = strcspn(want, "=");
  for (size_t i = 0; i < n->n_labels; i++)
    if (want[kl] ? !strcmp(n->labels[i], want)
                 : !strncmp(n->labels[i], want, kl) && n->labels[i][kl] == '=')
      return 1;
  return 0;
}

/* Same key: any may match; different keys: all must. */
static int matches(const net_network *n, char **filters, size_t nf) {
  for (size_t f = 0; f < nf; f++) {
    size_t kl = strcspn(filters[f], "=") + 1;
    int any = 0;
    for (size_t g = 0; g < nf && !any; g++)
      if (!strncmp(filters[g], filters[f], kl)) any = match_one(n, filters[g]);
    if (!any) return 0;
  }
  return 1;
}

static int list(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__NetworksListRequest, req);
  net_network *all = NULL;
  size_t n = 0;
  int rc = 0;
  static const char *const keys[] = {"name=", "label=", "driver="};
  for (size_t f = 0; f < req->n_filters && rc == 0; f++) {
    int known = 0;
    for (size_t k = 0; k < 3; k++) known |= !strncmp(req->filters[f], keys[k], strlen(keys[k]));
    if (!known)
      rc = vs_err_set(err, VS_INVALID_ARGUMENT,
                      "unknown filter \"%s\" (keys: name=<glob>, label=<k>[=<v>], driver=<d>)",
                      req->filters[f]);
  }
  if (rc == 0) rc = net_list(d->networks, &all, &n, err);
  Vessel__V1__NetworksListResponse r;
  vessel__v1__networks_list_response__init(&r);
  if (rc == 0 && n) r.networks = calloc(n, sizeof *r.networks);
  for (size_t i = 0; rc == 0 && r.networks && i < n; i++)
    if (matches(&all[i], req->filters, req->n_filters)) r.networks[r.n_networks++] = network_msg(&all[i]);
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
