/* dns: resolv.conf and /etc/hosts text. */
#ifndef VESSEL_GUEST_AGENT_DNS_H
#define VESSEL_GUEST_AGENT_DNS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "nameserver x" (at most 3), "search a b", "options o p". Returns length. */
size_t dns_resolv_conf(const char *const *ns, size_t n_ns, const char *const *search,
                       size_t n_search, const char *const *opts, size_t n_opts,
                       char *out, size_t out_len);

/* "ip\tname name\n" appended at out; returns bytes written (0 if no room). */
size_t dns_hosts_line(const char *ip, const char *const *names, size_t n, char *out,
                      size_t out_len);

#ifdef __cplusplus
}
#endif
#endif
