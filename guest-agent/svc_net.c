/* Agent handlers: LinkSet, AddressAdd, RouteAdd, DefaultRouteAdd,
 * ConfigureInterface, ListInterfaces, ConfigureDns, ConfigureHosts. */
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest-agent/dns.h"
#include "guest-agent/fs.h"
#include "guest-agent/netlink.h"
#include "guest-agent/service.h"

static int link_set(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentLinkSetRequest, req, err);
  nl_sock s = {-1, 0};
  uint8_t mac[6];
  int rc = 0;
  int idx = nl_link_index(req->name, err);
  if (idx < 0) rc = -1;
  if (rc == 0 && req->mac[0]) rc = nl_parse_mac(req->mac, mac, err);
  if (rc == 0) rc = nl_open(&s, err);
  if (rc == 0) {
    int up = req->state == VESSEL__V1__LINK_STATE__LINK_STATE_UP     ? 1
             : req->state == VESSEL__V1__LINK_STATE__LINK_STATE_DOWN ? 0
                                                                     : -1;
    rc = nl_link_set(&s, idx, up, req->mtu, req->mac[0] ? mac : NULL, req->new_name, err);
  }
  nl_close(&s);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentLinkSetResponse r = VESSEL__V1__AGENT_LINK_SET_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int address_add(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentAddressAddRequest, req, err);
  nl_sock s = {-1, 0};
  nl_addr a;
  int rc = nl_parse_addr(req->address, &a, err);
  if (rc == 0 && a.prefix < 0) rc = vs_err_set(err, VS_INVALID_ARGUMENT, "address needs a /prefix");
  int idx = rc == 0 ? nl_link_index(req->interface, err) : -1;
  if (idx < 0) rc = -1;
  if (rc == 0) rc = nl_open(&s, err);
  if (rc == 0) rc = nl_addr_add(&s, idx, &a, err);
  nl_close(&s);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentAddressAddResponse r = VESSEL__V1__AGENT_ADDRESS_ADD_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

/* One Route message applied through s; dev_default names the interface
 * when route->device is empty (ConfigureInterface). */
static int apply_route(nl_sock *s, const Vessel__V1__Route *rt, const char *dev_default,
                       vs_err *err) {
  nl_addr dst, gw;
  const char *d = rt->destination;
  int has_gw = rt->gateway && rt->gateway[0];
  if (has_gw && nl_parse_addr(rt->gateway, &gw, err) < 0) return -1;
  if (strcmp(d, "default") == 0 || !d[0]) {
    memset(&dst, 0, sizeof dst);
    dst.family = has_gw ? gw.family : AF_INET;
    dst.prefix = 0;
  } else if (nl_parse_addr(d, &dst, err) < 0) {
    return -1;
  }
  if (has_gw && gw.family != dst.family)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "gateway %s is not of the destination's family",
                      rt->gateway);
  const char *dev = rt->device && rt->device[0] ? rt->device : dev_default;
  int idx = 0;
  if (dev && *dev && (idx = nl_link_index(dev, err)) < 0) return -1;
  return nl_route_add(s, &dst, has_gw ? &gw : NULL, idx, rt->metric, err);
}

static int route_add(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentRouteAddRequest, req, err);
  nl_sock s = {-1, 0};
  int rc = req->route ? nl_open(&s, err) : vs_err_set(err, VS_INVALID_ARGUMENT, "route missing");
  if (rc == 0) rc = apply_route(&s, req->route, NULL, err);
  nl_close(&s);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentRouteAddResponse r = VESSEL__V1__AGENT_ROUTE_ADD_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int default_route_add(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentDefaultRouteAddRequest, req, err);
  nl_sock s = {-1, 0};
  nl_addr gw;
  int rc = nl_parse_addr(req->gateway, &gw, err);
  Vessel__V1__Route rt = VESSEL__V1__ROUTE__INIT;
  rt.destination = gw.family == AF_INET6 ? (char *)"::/0" : (char *)"default";
  rt.gateway = req->gateway;
  rt.device = req->device;
  if (rc == 0) rc = nl_open(&s, err);
  if (rc == 0) rc = apply_route(&s, &rt, NULL, err);
  nl_close(&s);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentDefaultRouteAddResponse r = VESSEL__V1__AGENT_DEFAULT_ROUTE_ADD_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int configure_interface(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentConfigureInterfaceRequest, req, err);
  Vessel__V1__NetworkInterface *ni = req->interface;
  nl_sock s = {-1, 0};
  uint8_t mac[6];
  int rc = ni ? 0 : vs_err_set(err, VS_INVALID_ARGUMENT, "interface missing");
  int idx = rc == 0 ? nl_link_index(ni->name, err) : -1;
  if (idx < 0) rc = -1;
  if (rc == 0 && ni->mac[0]) rc = nl_parse_mac(ni->mac, mac, err);
  if (rc == 0) rc = nl_open(&s, err);
  /* MAC while the link is down, then MTU, then up. */
  if (rc == 0 && ni->mac[0]) rc = nl_link_set(&s, idx, 0, 0, mac, NULL, err);
  if (rc == 0) rc = nl_link_set(&s, idx, 1, ni->mtu, NULL, NULL, err);
  for (size_t i = 0; rc == 0 && i < ni->n_addresses; i++) {
    nl_addr a;
    rc = nl_parse_addr(ni->addresses[i], &a, err);
    if (rc == 0) rc = nl_addr_add(&s, idx, &a, err);
  }
  const char *gws[2] = {ni ? ni->gateway_v4 : NULL, ni ? ni->gateway_v6 : NULL};
  for (int i = 0; rc == 0 && i < 2; i++) {
    if (!gws[i] || !gws[i][0]) continue;
    Vessel__V1__Route rt = VESSEL__V1__ROUTE__INIT;
    rt.destination = i == 0 ? (char *)"default" : (char *)"::/0";
    rt.gateway = (char *)gws[i];
    rc = apply_route(&s, &rt, ni->name, err);
  }
  for (size_t i = 0; rc == 0 && i < ni->n_routes; i++) rc = apply_route(&s, ni->routes[i], ni->name, err);
  nl_close(&s);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentConfigureInterfaceResponse r = VESSEL__V1__AGENT_CONFIGURE_INTERFACE_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int list_interfaces(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentListInterfacesRequest, req, err);
  vrpc_msg_free(req_msg);
  nl_sock s = {-1, 0};
  nl_link *links = NULL;
  size_t n = 0;
  if (nl_open(&s, err) < 0) return -1;
  int rc = nl_list_links(&s, &links, &n, err);
  nl_close(&s);
  if (rc < 0) return -1;
  Vessel__V1__NetworkInterface *ni = calloc(n + 1, sizeof *ni);
  Vessel__V1__NetworkInterface **nip = calloc(n + 1, sizeof *nip);
  char (*macs)[18] = calloc(n + 1, sizeof *macs);
  char **addrs = calloc(n * NL_MAX_ADDRS + 1, sizeof *addrs);
  for (size_t i = 0; i < n; i++) {
    vessel__v1__network_interface__init(&ni[i]);
    ni[i].name = links[i].name;
    if (links[i].has_mac) nl_format_mac(links[i].mac, macs[i], sizeof macs[i]);
    ni[i].mac = macs[i];
    ni[i].mtu = links[i].mtu;
    ni[i].up = links[i].up;
    ni[i].index = links[i].index;
    ni[i].n_addresses = links[i].n_addrs;
    ni[i].addresses = addrs + i * NL_MAX_ADDRS;
    for (size_t k = 0; k < links[i].n_addrs; k++) ni[i].addresses[k] = links[i].addrs[k];
    nip[i] = &ni[i];
  }
  Vessel__V1__AgentListInterfacesResponse r = VESSEL__V1__AGENT_LIST_INTERFACES_RESPONSE__INIT;
  r.n_interfaces = n;
  r.interfaces = nip;
  rc = vrpc_send(call, &r.base, err);
  free(ni), free(nip), free(macs), free(addrs), free(links);
  return rc;
}

/* The guest's own file, or the container's bundle copy (bind-mounted). */
static int etc_path(agent *a, const char *cid, const char *name, char *out, size_t n, vs_err *err) {
  if (!cid || !*cid) {
    snprintf(out, n, "/etc/%s", name);
    return 0;
  }
  pthread_mutex_lock(&a->mu);
  ag_container *c = ag_find_container(a, cid);
  if (c && !c->creating) ct_bundle_file(c, name, out, n);
  pthread_mutex_unlock(&a->mu);
  if (!c) return vs_err_set(err, VS_NOT_FOUND, "no container %s", cid);
  return 0;
}

static int configure_dns(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentConfigureDnsRequest, req, err);
  char path[512], text[4096] = "";
  int rc = etc_path(ctx, req->container_id, "resolv.conf", path, sizeof path, err);
  if (rc == 0 && req->dns)
    dns_resolv_conf((const char *const *)req->dns->nameservers, req->dns->n_nameservers,
                    (const char *const *)req->dns->search, req->dns->n_search,
                    (const char *const *)req->dns->options, req->dns->n_options, text, sizeof text);
  /* In place (no rename): a container sees it through a bind mount. */
  if (rc == 0) rc = fs_write_file(path, text, strlen(text), 0644, 0, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentConfigureDnsResponse r = VESSEL__V1__AGENT_CONFIGURE_DNS_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int configure_hosts(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentConfigureHostsRequest, req, err);
  char path[512], extra[8192] = "", text[9000];
  int rc = etc_path(ctx, req->container_id, "hosts", path, sizeof path, err);
  size_t used = 0;
  for (size_t i = 0; rc == 0 && i < req->n_entries; i++)
    used += dns_hosts_line(req->entries[i]->ip, (const char *const *)req->entries[i]->hostnames,
                           req->entries[i]->n_hostnames, extra + used, sizeof extra - used);
  ct_hosts_text(extra, NULL, NULL, text, sizeof text);
  if (rc == 0) rc = fs_write_file(path, text, strlen(text), 0644, 0, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentConfigureHostsResponse r = VESSEL__V1__AGENT_CONFIGURE_HOSTS_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

void svc_net_handlers(vessel_v1_Agent_handlers *h) {
  h->LinkSet = link_set;
  h->AddressAdd = address_add;
  h->RouteAdd = route_add;
  h->DefaultRouteAdd = default_route_add;
  h->ConfigureInterface = configure_interface;
  h->ListInterfaces = list_interfaces;
  h->ConfigureDns = configure_dns;
  h->ConfigureHosts = configure_hosts;
}
