/* Platforms: parsing, the usual alias normalisation, matching. */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "server/oci/oci.h"

static void set(char *dst, size_t n, const char *v) { snprintf(dst, n, "%s", v); }

void oci_platform_normalize(oci_platform *p) {
  static const struct { const char *from, *arch, *variant; } aliases[] = {
      {"x86_64", "amd64", ""}, {"x86-64", "amd64", ""}, {"aarch64", "arm64", NULL},
      {"armhf", "arm", "v7"},  {"armel", "arm", "v6"},  {"i386", "386", ""},
      {"i686", "386", ""},
  };
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
    if (strcmp(p->arch, aliases[i].from) == 0) {
      set(p->arch, sizeof p->arch, aliases[i].arch);
      if (aliases[i].variant && !p->variant[0])
        set(p->variant, sizeof p->variant, aliases[i].variant);
    }
  /* arm64's default variant is v8: "arm64/v8" and "arm64" are the same. */
  if (strcmp(p->arch, "arm64") == 0 && strcmp(p->variant, "v8") == 0) p->variant[0] = '\0';
  if (strcmp(p->arch, "arm") == 0 && !p->variant[0]) set(p->variant, sizeof p->variant, "v7");
}

void oci_platform_host(oci_platform *p) {
  struct utsname u;
  memset(p, 0, sizeof *p);
  set(p->os, sizeof p->os, "linux");
  set(p->arch, sizeof p->arch, uname(&u) == 0 ? u.machine : "amd64");
  oci_platform_normalize(p);
}

int oci_platform_parse(const char *s, oci_platform *p, vs_err *err) {
  memset(p, 0, sizeof *p);
  if (!s || !*s) return 0;
  char *fields[3] = {p->os, p->arch, p->variant};
  size_t sizes[3] = {sizeof p->os, sizeof p->arch, sizeof p->variant};
  const char *c = s;
  for (int i = 0;; i++) {
    const char *e = strchr(c, '/');
    size_t n = e ? (size_t)(e - c) : strlen(c);
    if (i == 3 || n == 0 || n >= sizes[i])
      return vs_err_set(err, VS_INVALID_ARGUMENT, "platform \"%s\": want os[/arch[/variant]]", s);
    for (size_t k = 0; k < n; k++)
      if (!((c[k] >= 'a' && c[k] <= 'z') || (c[k] >= '0' && c[k] <= '9') || c[k] == '_' ||
            c[k] == '-'))
        return vs_err_set(err, VS_INVALID_ARGUMENT, "platform \"%s\": invalid character", s);
    memcpy(fields[i], c, n);
    fields[i][n] = '\0';
    if (!e) break;
    c = e + 1;
  }
  oci_platform_normalize(p);
  return 0;
}

void oci_platform_format(const oci_platform *p, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s%s%s", p->os[0] ? p->os : "?", p->arch[0] ? p->arch : "?",
           p->variant[0] ? "/" : "", p->variant);
}

int oci_platform_match(const oci_platform *want, const oci_platform *have) {
  oci_platform w = *want, h = *have;
  oci_platform_normalize(&w);
  oci_platform_normalize(&h);
  if (w.os[0] && strcmp(w.os, h.os) != 0) return 0;
  if (w.arch[0] && strcmp(w.arch, h.arch) != 0) return 0;
  if (w.variant[0] && strcmp(w.variant, h.variant) != 0) return 0;
  return 1;
}
