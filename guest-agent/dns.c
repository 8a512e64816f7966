/* resolv.conf and hosts file formatting. */
#include "guest-agent/dns.h"

#include <stdio.h>
#include <string.h>

static void put(char *out, size_t out_len, size_t *pos, const char *s) {
  size_t n = strlen(s);
  if (*pos + n + 1 > out_len) return;
  memcpy(out + *pos, s, n + 1);
  *pos += n;
}

size_t dns_resolv_conf(const char *const *ns, size_t n_ns, const char *const *search,
                       size_t n_search, const char *const *opts, size_t n_opts,
                       char *out, size_t out_len) {
  size_t pos = 0;
  if (out_len) out[0] = '\0';
  for (size_t i = 0; i < n_ns && i < 3; i++) {
    put(out, out_len, &pos, "nameserver ");
    put(out, out_len, &pos, ns[i]);
    put(out, out_len, &pos, "\n");
  }
  if (n_search) {
    put(out, out_len, &pos, "search");
    for (size_t i = 0; i < n_search; i++) {
      put(out, out_len, &pos, " ");
      put(out, out_len, &pos, search[i]);
    }
    put(out, out_len, &pos, "\n");
  }
  if (n_opts) {
    put(out, out_len, &pos, "options");
    for (size_t i = 0; i < n_opts; i++) {
      put(out, out_len, &pos, " ");
      put(out, out_len, &pos, opts[i]);
    }
    put(out, out_len, &pos, "\n");
  }
  return pos;
}

size_t dns_hosts_line(const char *ip, const char *const *names, size_t n, char *out,
                      size_t out_len) {
  char line[2048];
  size_t pos = 0;
  line[0] = '\0';
  put(line, sizeof line, &pos, ip);
  for (size_t i = 0; i < n; i++) {
    put(line, sizeof line, &pos, i == 0 ? "\t" : " ");
    put(line, sizeof line, &pos, names[i]);
  }
  put(line, sizeof line, &pos, "\n");
  if (pos + 1 > out_len) return 0;
  memcpy(out, line, pos + 1);
  return pos;
}
