/* dns: the embedded DNS server of vessel's networks, as Docker's. On each
 * network's gateway address (port 53, UDP and TCP) it answers A queries
 * for the names of containers (ID, hostname, aliases) and forwards every
 * other query, unchanged but for its ID, to the upstream resolvers (the
 * host's): UDP queries over UDP, TCP queries over TCP (so that an answer
 * too large for UDP arrives whole). One thread serves UDP for every
 * network; a TCP connection has a thread of its own while it lasts (at
 * most DNS_MAX_TCP at once, each closed after DNS_TCP_IDLE_MS idle). */
#ifndef VESSEL_SERVER_DNS_DNS_H
#define VESSEL_SERVER_DNS_DNS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DNS_MAX_TCP 64
#define DNS_TCP_IDLE_MS 10000

/* The address of name as the client at address `client` (dotted quad)
 * asking the DNS on `gateway` sees it: 1 with *addr set, 0 if it names no
 * container. name is lower case, without the final dot. Called from the
 * server's threads, at once. */
typedef int (*dns_lookup_fn)(void *arg, const char *gateway, const char *client,
                             const char *name, struct in_addr *addr);

/* What answer_local made of a query. */
typedef enum dns_verdict {
  DNS_FORWARD = 0, /* not one of ours: forward it */
  DNS_ANSWERED,    /* *out holds the answer */
  DNS_DROP,        /* not a query we answer at all (malformed, a response) */
} dns_verdict;

/* Answers query q (a DNS message) from lookup when it asks for a name of
 * the network: A -> the address (TTL 5 s), AAAA and other types of a known
 * name -> no records. The answer goes to out (cap bytes, >= 512). Pure:
 * the server's core, tested on its own. */
dns_verdict dns_answer_local(const uint8_t *q, size_t n, dns_lookup_fn lookup, void *arg,
                             const char *gateway, const char *client, uint8_t *out, size_t cap,
                             size_t *out_len);

typedef struct dns_server dns_server;

/* upstreams: "ip" or "ip:port", tried in turn per query (NULL/0: none,
 * then unknown names get SERVFAIL). */
dns_server *dns_open(dns_lookup_fn lookup, void *arg, char *const *upstreams, size_t n,
                     vs_err *err);
/* Serves the network whose gateway is ip (an address of this host) on
 * ip:port (53), UDP and TCP. Idempotent. dns_unlisten also ends its TCP
 * connections. */
int dns_listen(dns_server *s, const char *ip, int port, vs_err *err);
void dns_unlisten(dns_server *s, const char *ip);
/* 1 if ip is served (dns_listen succeeded for it). */
int dns_serves(dns_server *s, const char *ip);
void dns_close(dns_server *s);

/* What a resolv.conf names: at most 3 nameservers (no_loopback: those a
 * VM can use, 127.* and ::1 left out) and its first search line. */
typedef struct dns_resolv {
  char ns[3][64];
  size_t n_ns;
  char search[256];
} dns_resolv;
void dns_resolv_conf(const char *path, int no_loopback, dns_resolv *out);

#ifdef __cplusplus
}
#endif
#endif
