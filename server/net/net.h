/* net: vessel's networks on the host — definitions (subnet, gateway,
 * bridge) and IP address management, persisted under <root>/networks as one
 * JSON file per network, rewritten atomically. Creating the bridge and the
 * per-VM tap devices is the runtime's job; this module only decides. */
#ifndef VESSEL_SERVER_NET_NET_H
#define VESSEL_SERVER_NET_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NET_DEFAULT "default"
#define NET_DEFAULT_SUBNET "10.88.0.0/16"

typedef struct net_lease {
  char container[128];
  char ip[16];  /* dotted IPv4 */
  char mac[18]; /* 02:42:… derived from the IP */
} net_lease;

typedef struct net_network {
  char name[64];
  char id[72];      /* sha256 of name + creation time */
  char subnet[20];  /* "10.88.0.0/16" */
  char gateway[16]; /* the bridge's address */
  char bridge[16];  /* interface name */
  int internal;     /* no NAT to the outside */
  int64_t created;  /* unix seconds */
  net_lease *leases;
  size_t n_leases;
  char **labels; /* "key=value", as created */
  size_t n_labels;
} net_network;

typedef struct net_store net_store;

/* Opens <root>/networks; creates the default network on first use. */
net_store *net_open(const char *root, vs_err *err);
void net_close(net_store *s);

/* subnet "" = next free 10.89.N.0/24; gateway "" = first host address;
 * labels "key=value" (kept as given). */
int net_create(net_store *s, const char *name, const char *subnet, const char *gateway,
               int internal, char *const *labels, size_t n_labels, net_network *out,
               vs_err *err);
int net_get(net_store *s, const char *name, net_network *out, vs_err *err);
int net_list(net_store *s, net_network **out, size_t *n, vs_err *err);
/* FAILED_PRECONDITION while containers hold leases (unless force), and for
 * the default network. */
int net_delete(net_store *s, const char *name, int force, vs_err *err);
void net_network_free(net_network *n);

/* Leases an address to container (want_ip "" = the lowest free one);
 * ALREADY_EXISTS if want_ip is taken, RESOURCE_EXHAUSTED if none is left. */
int net_allocate(net_store *s, const char *name, const char *container, const char *want_ip,
                 net_lease *out, vs_err *err);
/* Idempotent. */
int net_release(net_store *s, const char *name, const char *container, vs_err *err);

/* Prefix length of a "a.b.c.d/len" subnet. */
int net_prefix_len(const char *subnet);

#ifdef __cplusplus
}
#endif
#endif
