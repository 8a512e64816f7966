/* nl: a small rtnetlink client: links (up/down, MTU, MAC, name), IPv4/IPv6
 * addresses, routes and default routes, and a link listing. Works in
 * whatever network namespace the calling thread is in. */
#ifndef VESSEL_GUEST_AGENT_NETLINK_H
#define VESSEL_GUEST_AGENT_NETLINK_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nl_sock {
  int fd;
  uint32_t seq;
} nl_sock;

/* An address or prefix: family AF_INET/AF_INET6, 4 or 16 bytes. */
typedef struct nl_addr {
  int family;
  uint8_t bytes[16];
  int prefix; /* -1 if none was given */
} nl_addr;

#define NL_MAX_ADDRS 16

typedef struct nl_link {
  int index;
  char name[16];
  unsigned mtu;
  uint8_t mac[6];
  int has_mac;
  int up; /* IFF_UP */
  char addrs[NL_MAX_ADDRS][64]; /* CIDR */
  size_t n_addrs;
} nl_link;

int nl_open(nl_sock *s, vs_err *err);
void nl_close(nl_sock *s);

/* "10.0.0.1/24", "fd00::1/64", "10.0.0.1" (prefix -1). */
int nl_parse_addr(const char *s, nl_addr *out, vs_err *err);
int nl_parse_mac(const char *s, uint8_t mac[6], vs_err *err);
void nl_format_mac(const uint8_t mac[6], char *out, size_t n);

/* Interface index by name; NOT_FOUND if missing. */
int nl_link_index(const char *name, vs_err *err);

/* up: 1 up, 0 down, -1 unchanged; mtu 0 / mac NULL / new_name NULL or ""
 * unchanged. Applied in the order down, rename, mac, mtu, up. */
int nl_link_set(nl_sock *s, int index, int up, unsigned mtu, const uint8_t *mac,
                const char *new_name, vs_err *err);

/* Adds an address (prefix required); an existing address is not an error. */
int nl_addr_add(nl_sock *s, int index, const nl_addr *a, vs_err *err);

/* Adds or replaces a route. dst with prefix (0 = default); gw may be NULL
 * (link scope); index 0 = kernel picks from gw; metric 0 = default. */
int nl_route_add(nl_sock *s, const nl_addr *dst, const nl_addr *gw, int index,
                 uint32_t metric, vs_err *err);

/* All links with their addresses, ordered by index. *out is malloc'd. */
int nl_list_links(nl_sock *s, nl_link **out, size_t *n, vs_err *err);

/* First IPv4 address of an interface as text; -1 if none. */
int nl_first_ipv4(const char *ifname, char *out, size_t n);

#ifdef __cplusplus
}
#endif
#endif
