/* Docker-style image references, normalised the way docker and containerd
 * do ("alpine" -> "docker.io/library/alpine:latest"). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/oci/oci.h"

#define MAX_NAME 255

static int alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | -+ */
static int valid_component(const char *s, size_t n) {
  if (n == 0 || !alnum_lower(s[0]) || !alnum_lower(s[n - 1])) return 0;
  for (size_t i = 0; i < n;) {
    if (alnum_lower(s[i])) {
      i++;
      continue;
    }
    size_t j = i;
    while (j < n && !alnum_lower(s[j])) j++;
    size_t len = j - i;
    const char *sep = s + i;
    int ok = (len == 1 && (sep[0] == '.' || sep[0] == '_')) ||
             (len == 2 && sep[0] == '_' && sep[1] == '_');
    if (!ok) {
      ok = 1;
      for (size_t k = 0; k < len; k++) ok &= sep[k] == '-';
    }
    if (!ok) return 0;
    i = j;
  }
  return 1;
}

static int valid_domain(const char *s) {
  const char *colon = strchr(s, ':');
  size_t host_len = colon ? (size_t)(colon - s) : strlen(s);
  if (host_len == 0) return 0;
  for (size_t i = 0; i < host_len; i++) {
    char c = s[i];
    if (!(isalnum((unsigned char)c) || c == '-' || c == '.')) return 0;
  }
  if (s[0] == '-' || s[0] == '.' || s[host_len - 1] == '-' || s[host_len - 1] == '.') return 0;
  if (colon) {
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5) return 0;
    for (; *p; p++)
      if (!isdigit((unsigned char)*p)) return 0;
  }
  return 1;
}

static int valid_tag(const char *t) {
  size_t n = strlen(t);
  if (n == 0 || n > 128) return 0;
  if (!(isalnum((unsigned char)t[0]) || t[0] == '_')) return 0;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-')) return 0;
  return 1;
}

void oci_ref_free(oci_ref *r) {
  if (!r) return;
  free(r->domain);
  free(r->path);
  free(r->tag);
  free(r->digest);
  memset(r, 0, sizeof *r);
}

int oci_ref_parse(const char *s, oci_ref *out, vs_err *err) {
  memset(out, 0, sizeof *out);
  if (!s || !*s) return vs_err_set(err, VS_INVALID_ARGUMENT, "empty image reference");
  if (strlen(s) > 1024)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "image reference too long");
  for (const unsigned char *c = (const unsigned char *)s; *c; c++)
    if (*c <= ' ' || *c == 0x7f)
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "image reference holds a control character or space (byte 0x%02x at %zu)",
                        *c, (size_t)(c - (const unsigned char *)s));
  char *buf = strdup(s);
  if (!buf) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  char *name = buf, *digest = NULL, *tag = NULL;
  char *at = strrchr(buf, '@');
  if (at) {
    *at = '\0';
    digest = at + 1;
    if (!oci_digest_valid(digest)) {
      vs_err_set(err, VS_INVALID_ARGUMENT,
                 "reference %s: invalid digest (want sha256:<64 hex digits>)", s);
      goto fail;
    }
  }
  char *slash = strrchr(name, '/');
  char *colon = strrchr(slash ? slash : name, ':');
  if (colon) {
    *colon = '\0';
    tag = colon + 1;
    if (!valid_tag(tag)) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "reference %s: invalid tag \"%s\"", s, tag);
      goto fail;
    }
  }
  /* Domain: the first component if it looks like a host. */
  const char *domain = "docker.io", *path = name;
  char *first_slash = strchr(name, '/');
  if (first_slash) {
    *first_slash = '\0';
    if (strchr(name, '.') || strchr(name, ':') || strcmp(name, "localhost") == 0) {
      domain = name;
      path = first_slash + 1;
    } else {
      *first_slash = '/';
    }
  }
  if (strcmp(domain, "index.docker.io") == 0) domain = "docker.io";
  if (!valid_domain(domain)) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "reference %s: invalid registry host \"%s\"", s, domain);
    goto fail;
  }
  if (!*path) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "reference %s: missing repository name", s);
    goto fail;
  }
  for (const char *p = path; *p; p++)
    if (isupper((unsigned char)*p)) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "reference %s: repository name must be lowercase", s);
      goto fail;
    }
  for (const char *c = path;;) {
    const char *e = strchr(c, '/');
    size_t n = e ? (size_t)(e - c) : strlen(c);
    if (!valid_component(c, n)) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "reference %s: invalid repository name component \"%.*s\"",
                 s, (int)n, c);
      goto fail;
    }
    if (!e) break;
    c = e + 1;
  }
  int library = strcmp(domain, "docker.io") == 0 && !strchr(path, '/');
  size_t plen = strlen(path) + (library ? 8 : 0);
  if (strlen(domain) + 1 + plen > MAX_NAME) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "reference %s: name longer than %d characters", s, MAX_NAME);
    goto fail;
  }
  out->domain = strdup(domain);
  out->path = malloc(plen + 1);
  if (out->path) snprintf(out->path, plen + 1, "%s%s", library ? "library/" : "", path);
  if (tag || !digest) out->tag = strdup(tag ? tag : "latest");
  if (digest) out->digest = strdup(digest);
  free(buf);
  if (!out->domain || !out->path || (!out->tag && !out->digest)) {
    oci_ref_free(out);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  return 0;
fail:
  free(buf);
  return -1;
}

char *oci_ref_name(const oci_ref *r) {
  size_t n = strlen(r->domain) + strlen(r->path) + 2;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s/%s", r->domain, r->path);
  return s;
}

char *oci_ref_string(const oci_ref *r) {
  size_t n = strlen(r->domain) + strlen(r->path) + (r->tag ? strlen(r->tag) : 0) +
             (r->digest ? strlen(r->digest) : 0) + 4;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "%s/%s%s%s%s%s", r->domain, r->path, r->tag ? ":" : "", r->tag ? r->tag : "",
             r->digest ? "@" : "", r->digest ? r->digest : "");
  return s;
}

const char *oci_ref_registry_host(const oci_ref *r) {
  return strcmp(r->domain, "docker.io") == 0 ? "registry-1.docker.io" : r->domain;
}
