/* clientcfg: the contexts file and the VESSEL_* rules (clientcfg.h). */
#include "clients/cli/clientcfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/vs_fs.h"

/* Larger than any sane contexts file; a bigger one is refused, not read. */
#define VCFG_MAX_FILE (1 << 20)

struct vcfg_file {
  char *path;
  json_t *doc;       /* the whole object, unknown keys included */
  json_t *contexts;  /* doc's "contexts" (borrowed), created on first add */
  const char **names; /* sorted; strings borrowed from contexts' keys */
  size_t n_names;
};

static const char *const tls_keys[] = {"tls_ca", "tls_cert", "tls_key", "server_name"};

int vcfg_path(const char *xdg, const char *home, char *buf, size_t n, vs_err *err) {
  int w;
  if (xdg && xdg[0] == '/') w = snprintf(buf, n, "%s/vessel/config", xdg);
  else if (home && *home) w = snprintf(buf, n, "%s/.config/vessel/config", home);
  else
    return vs_err_set(err, VS_FAILED_PRECONDITION,
                      "neither XDG_CONFIG_HOME nor HOME is set: no place for the contexts file");
  if (w < 0 || (size_t)w >= n) return vs_err_set(err, VS_INVALID_ARGUMENT, "config path too long");
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted index over contexts' keys, after every change. */
static int reindex(vcfg_file *f, vs_err *err) {
  size_t n = f->contexts ? json_object_size(f->contexts) : 0, i = 0;
  const char **names = calloc(n ? n : 1, sizeof *names);
  if (!names) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  const char *key;
  json_t *v;
  if (f->contexts) json_object_foreach(f->contexts, key, v) names[i++] = key;
  qsort(names, n, sizeof *names, cmp_names);
  free(f->names);
  f->names = names;
  f->n_names = n;
  return 0;
}

/* host is unix:///path or tcp://host:port. */
static int valid_host(const char *h) {
  if (!strncmp(h, "unix://", 7)) return h[7] == '/' && h[8];
  if (strncmp(h, "tcp://", 6)) return 0;
  const char *colon = strrchr(h + 6, ':');
  if (!colon || colon == h + 6 || !colon[1] || strlen(colon + 1) > 5) return 0;
  for (const char *p = colon + 1; *p; p++)
    if (*p < '0' || *p > '9') return 0;
  return 1;
}

static int malformed(vs_err *err, const char *path, const char *what) {
  return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: malformed contexts file: %s", path, what);
}

/* The checks every client makes of a file it reads. */
static int check(const vcfg_file *f, vs_err *err) {
  const char *p = f->path;
  char what[256];
  if (!json_is_object(f->doc)) return malformed(err, p, "the top level must be an object");
  json_t *cur = json_object_get(f->doc, "current");
  if (cur && !json_is_string(cur) && !json_is_null(cur))
    return malformed(err, p, "\"current\" must be a string");
  if (f->contexts && !json_is_object(f->contexts))
    return malformed(err, p, "\"contexts\" must be an object");
  const char *name;
  json_t *c;
  if (f->contexts) json_object_foreach(f->contexts, name, c) {
    if (!json_is_object(c)) {
      snprintf(what, sizeof what, "context \"%.64s\" must be an object", name);
      return malformed(err, p, what);
    }
    json_t *h = json_object_get(c, "host");
    if (!json_is_string(h)) {
      snprintf(what, sizeof what, "context \"%.64s\" has no \"host\" string", name);
      return malformed(err, p, what);
    }
    if (!valid_host(json_string_value(h)))
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "%s: context \"%.64s\": host \"%.200s\" must be unix:///path or "
                        "tcp://host:port", p, name, json_string_value(h));
    for (size_t i = 0; i < sizeof tls_keys / sizeof tls_keys[0]; i++) {
      json_t *v = json_object_get(c, tls_keys[i]);
      if (v && !json_is_string(v) && !json_is_null(v)) {
        snprintf(what, sizeof what, "context \"%.64s\": \"%s\" must be a string", name,
                 tls_keys[i]);
        return malformed(err, p, what);
      }
    }
  }
  return 0;
}

vcfg_file *vcfg_load(const char *path, vs_err *err) {
  vcfg_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = strdup(path))) {
    free(f);
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  vs_err rerr;
  char *text = vs_read_file(path, VCFG_MAX_FILE, NULL, &rerr);
  if (!text && rerr.code != VS_NOT_FOUND) {
    *err = rerr;
    vcfg_free(f);
    return NULL;
  }
  if (!text) {
    f->doc = json_object();
  } else {
    json_error_t je;
    f->doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!f->doc) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "%s: malformed contexts file: %s (line %d, column %d)",
                 path, je.text, je.line, je.column);
      vcfg_free(f);
      return NULL;
    }
  }
  f->contexts = json_is_object(f->doc) ? json_object_get(f->doc, "contexts") : NULL;
  if (!f->doc || check(f, err) < 0 || reindex(f, err) < 0) {
    if (!f->doc) vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    vcfg_free(f);
    return NULL;
  }
  return f;
}

void vcfg_free(vcfg_file *f) {
  if (!f) return;
  json_decref(f->doc);
  free(f->names);
  free(f->path);
  free(f);
}

const char *vcfg_file_path(const vcfg_file *f) { return f->path; }

const char *vcfg_current(const vcfg_file *f) {
  const char *s = json_string_value(json_object_get(f->doc, "current"));
  return s && *s ? s : NULL;
}

size_t vcfg_count(const vcfg_file *f) { return f->n_names; }

static const char *str_field(json_t *c, const char *key) {
  const char *s = json_string_value(json_object_get(c, key));
  return s && *s ? s : NULL;
}

static void fill(const vcfg_file *f, const char *name, vcfg_context *out) {
  json_t *c = json_object_get(f->contexts, name);
  out->name = name;
  out->host = str_field(c, "host");
  out->tls_ca = str_field(c, "tls_ca");
  out->tls_cert = str_field(c, "tls_cert");
  out->tls_key = str_field(c, "tls_key");
  out->server_name = str_field(c, "server_name");
}

void vcfg_at(const vcfg_file *f, size_t i, vcfg_context *out) { fill(f, f->names[i], out); }

int vcfg_find(const vcfg_file *f, const char *name, vcfg_context *out, vs_err *err) {
  for (size_t i = 0; i < f->n_names; i++)
    if (!strcmp(f->names[i], name)) {
      fill(f, f->names[i], out);
      return 0;
    }
  char known[300] = "";
  size_t used = 0;
  for (size_t i = 0; i < f->n_names && used < sizeof known; i++) {
    int w = snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", f->names[i]);
    used += w > 0 ? (size_t)w : 0;
  }
  return vs_err_set(err, VS_NOT_FOUND, "unknown context \"%s\": %s %s%s", name, f->path,
                    f->n_names ? "defines " : "defines none", known);
}

int vcfg_add(vcfg_file *f, const vcfg_context *c, vs_err *err) {
  if (!vs_valid_name(c->name, VCFG_NAME_MAX))
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "context name \"%s\": use letters, digits, '_', '.', '-' (at most %d, "
                      "starting with a letter or digit)", c->name ? c->name : "", VCFG_NAME_MAX);
  if (!strcmp(c->name, VCFG_DEFAULT_CONTEXT))
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "\"default\" is the default socket (%s) and cannot be defined",
                      VCFG_DEFAULT_HOST);
  if (!c->host || !valid_host(c->host))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "host \"%s\" must be unix:///path or tcp://host:port",
                      c->host ? c->host : "");
  int tcp = !strncmp(c->host, "tcp://", 6);
  if (!tcp && (c->tls_ca || c->tls_cert || c->tls_key || c->server_name))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "TLS files are for tcp:// hosts, not %s", c->host);
  if (tcp && !c->tls_ca)
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "%s is TCP: vesseld requires mutual TLS: give the CA, client certificate and "
                      "key", c->host);
  if (f->contexts && json_object_get(f->contexts, c->name))
    return vs_err_set(err, VS_ALREADY_EXISTS, "context \"%s\" already exists in %s", c->name, f->path);
  json_t *o = json_object();
  const char *vals[] = {c->tls_ca, c->tls_cert, c->tls_key, c->server_name};
  int bad = !o || json_object_set_new(o, "host", json_string(c->host)) < 0;
  for (size_t i = 0; !bad && i < sizeof vals / sizeof vals[0]; i++)
    if (vals[i]) bad = json_object_set_new(o, tls_keys[i], json_string(vals[i])) < 0;
  if (!bad && !f->contexts) {
    bad = json_object_set_new(f->doc, "contexts", json_object()) < 0;
    f->contexts = json_object_get(f->doc, "contexts");
  }
  if (bad || json_object_set_new(f->contexts, c->name, o) < 0) {
    if (bad) json_decref(o); /* set_new consumed it otherwise */
    return vs_err_set(err, VS_INVALID_ARGUMENT, "context \"%s\": not valid UTF-8", c->name);
  }
  return reindex(f, err);
}

int vcfg_remove(vcfg_file *f, const char *name, vs_err *err) {
  vcfg_context c;
  if (vcfg_find(f, name, &c, err) < 0) return -1;
  const char *cur = vcfg_current(f);
  if (cur && !strcmp(cur, name)) json_object_del(f->doc, "current");
  /* the index is rebuilt from the object: entries of the deleted key are
   * not read in between */
  json_object_del(f->contexts, name);
  return reindex(f, err);
}

int vcfg_use(vcfg_file *f, const char *name, vs_err *err) {
  if (!strcmp(name, VCFG_DEFAULT_CONTEXT)) {
    json_object_del(f->doc, "current");
    return 0;
  }
  vcfg_context c;
  if (vcfg_find(f, name, &c, err) < 0) return -1;
  if (json_object_set_new(f->doc, "current", json_string(name)) < 0)
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

int vcfg_save(const vcfg_file *f, vs_err *err) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", f->path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    if (vs_mkdir_p(dir, 0700, err) < 0) return -1;
  }
  char *text = json_dumps(f->doc, JSON_INDENT(2) | JSON_SORT_KEYS);
  if (!text) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  size_t n = strlen(text);
  /* a trailing newline, as editors leave it */
  char *nl = realloc(text, n + 2);
  if (!nl) {
    free(text);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  nl[n] = '\n';
  nl[n + 1] = '\0';
  int rc = vs_write_atomic(f->path, nl, n + 1, 0600, err);
  free(nl);
  if (rc < 0) vs_err_wrap(err, "saving the contexts file");
  return rc;
}

static const char *given(const char *s) { return s && *s ? s : NULL; }

static int copy(char *dst, size_t n, const char *src, const char *what, vs_err *err) {
  if (snprintf(dst, n, "%s", src ? src : "") >= (int)n)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s is too long", what);
  return 0;
}

/* A context's TLS path: relative ones are relative to the file's directory. */
static int copy_path(char *dst, size_t n, const char *p, const char *file, vs_err *err) {
  if (!p || p[0] == '/') return copy(dst, n, p, "a TLS file path", err);
  const char *slash = strrchr(file, '/');
  int dl = slash ? (int)(slash - file) : 1;
  if (snprintf(dst, n, "%.*s/%s", dl, slash ? file : ".", p) >= (int)n)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "a TLS file path is too long");
  return 0;
}

/* The context name (from where) into out: its host and TLS files. */
static int from_context(const vcfg_inputs *in, const char *name, const char *where,
                        vcfg_file **f, vcfg_endpoint *out, vs_err *err) {
  snprintf(out->source, sizeof out->source, "context \"%.64s\" (%s)", name, where);
  if (!strcmp(name, VCFG_DEFAULT_CONTEXT))
    return copy(out->host, sizeof out->host, VCFG_DEFAULT_HOST, "", err);
  if (!in->path)
    return vs_err_set(err, VS_NOT_FOUND,
                      "%s: unknown context \"%s\": no contexts file (neither XDG_CONFIG_HOME nor "
                      "HOME is set)", where, name);
  if (!*f && !(*f = vcfg_load(in->path, err))) return -1;
  vcfg_context c;
  if (vcfg_find(*f, name, &c, err) < 0) return vs_err_wrap(err, "%s", where);
  if (copy(out->host, sizeof out->host, c.host, "host", err) < 0 ||
      copy_path(out->tls_ca, sizeof out->tls_ca, c.tls_ca, in->path, err) < 0 ||
      copy_path(out->tls_cert, sizeof out->tls_cert, c.tls_cert, in->path, err) < 0 ||
      copy_path(out->tls_key, sizeof out->tls_key, c.tls_key, in->path, err) < 0 ||
      copy(out->server_name, sizeof out->server_name, c.server_name, "server_name", err) < 0)
    return -1;
  return 0;
}

static int pick(const vcfg_inputs *in, vcfg_file **f, vcfg_endpoint *out, vs_err *err) {
  const char *host = NULL, *ca = NULL, *cert = NULL, *key = NULL;
  if (given(in->host) && given(in->context))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "give --host or --context, not both");
  if (given(in->host)) {
    host = in->host;
    snprintf(out->source, sizeof out->source, "--host");
  } else if (given(in->context)) {
    return from_context(in, in->context, "--context", f, out, err);
  } else if (given(in->env_host)) {
    host = in->env_host;
    snprintf(out->source, sizeof out->source, "VESSEL_HOST");
  } else if (given(in->env_context)) {
    return from_context(in, in->env_context, "VESSEL_CONTEXT", f, out, err);
  } else {
    if (in->path && !(*f = vcfg_load(in->path, err))) return -1;
    const char *cur = *f ? vcfg_current(*f) : NULL;
    if (cur) return from_context(in, cur, "the current context", f, out, err);
    snprintf(out->source, sizeof out->source, "the default");
    return copy(out->host, sizeof out->host, VCFG_DEFAULT_HOST, "", err);
  }
  /* An address from a flag or VESSEL_HOST: TLS files from the environment. */
  ca = given(in->env_tls_ca), cert = given(in->env_tls_cert), key = given(in->env_tls_key);
  if (copy(out->host, sizeof out->host, host, "the host", err) < 0 ||
      copy(out->tls_ca, sizeof out->tls_ca, ca, "VESSEL_TLS_CA", err) < 0 ||
      copy(out->tls_cert, sizeof out->tls_cert, cert, "VESSEL_TLS_CERT", err) < 0 ||
      copy(out->tls_key, sizeof out->tls_key, key, "VESSEL_TLS_KEY", err) < 0)
    return -1;
  return 0;
}

int vcfg_resolve(const vcfg_inputs *in, vcfg_endpoint *out, vs_err *err) {
  memset(out, 0, sizeof *out);
  vcfg_file *f = NULL;
  int rc = pick(in, &f, out, err);
  vcfg_free(f);
  if (rc < 0) return -1;
  if (given(in->tls_ca) || given(in->tls_cert) || given(in->tls_key)) {
    /* explicit TLS files replace those that came with the address */
    if (copy(out->tls_ca, sizeof out->tls_ca, given(in->tls_ca), "--tls-ca", err) < 0 ||
        copy(out->tls_cert, sizeof out->tls_cert, given(in->tls_cert), "--tls-cert", err) < 0 ||
        copy(out->tls_key, sizeof out->tls_key, given(in->tls_key), "--tls-key", err) < 0)
      return -1;
  }
  if (!valid_host(out->host))
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "host \"%s\" (from %s) must be unix:///path or tcp://host:port", out->host,
                      out->source);
  out->use_tls = !strncmp(out->host, "tcp://", 6);
  if (!out->use_tls) { /* a unix socket is local and plaintext */
    out->tls_ca[0] = out->tls_cert[0] = out->tls_key[0] = out->server_name[0] = '\0';
  } else if (!out->tls_ca[0]) {
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "%s (from %s) is TCP: vesseld requires mutual TLS: give --tls-ca, "
                      "--tls-cert and --tls-key (or VESSEL_TLS_CA, VESSEL_TLS_CERT and "
                      "VESSEL_TLS_KEY, or a context's tls_ca, tls_cert and tls_key)",
                      out->host, out->source);
  }
  return 0;
}
