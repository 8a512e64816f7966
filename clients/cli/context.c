/* vesselctl context ls|use|create|rm: the contexts file (clientcfg.h). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clients/cli/clientcfg.h"
#include "clients/cli/vesselctl.h"

static const char context_usage[] =
    "usage: vesselctl context ls                 the contexts; * marks the one in use\n"
    "       vesselctl context use NAME           make NAME current (\"default\": the default socket)\n"
    "       vesselctl context create NAME --host unix:///PATH|tcp://HOST:PORT\n"
    "                 [--tls-ca FILE --tls-cert FILE --tls-key FILE] [--tls-server-name NAME]\n"
    "       vesselctl context rm NAME...\n"
    "The file: $XDG_CONFIG_HOME/vessel/config, else ~/.config/vessel/config.\n"
    "Which vesseld a command reaches: --host or --context, else VESSEL_HOST\n"
    "(with VESSEL_TLS_CA, VESSEL_TLS_CERT, VESSEL_TLS_KEY), else VESSEL_CONTEXT,\n"
    "else the current context, else unix:///run/vessel/vessel.sock.\n";

static int fail(const vs_err *err) {
  fprintf(stderr, "vesselctl: %s\n", err->msg);
  return 1;
}

static vcfg_file *load(vc_ctx *c) {
  vs_err err;
  if (!c->cfg.path) {
    fprintf(stderr, "vesselctl: %s\n", c->cfg_err.msg);
    return NULL;
  }
  vcfg_file *f = vcfg_load(c->cfg.path, &err);
  if (!f) fail(&err);
  return f;
}

/* The context a command would use when no host is given. */
static const char *selected(vc_ctx *c, const vcfg_file *f) {
  if (c->cfg.context && *c->cfg.context) return c->cfg.context;
  if (c->cfg.env_context && *c->cfg.env_context) return c->cfg.env_context;
  const char *cur = vcfg_current(f);
  return cur ? cur : VCFG_DEFAULT_CONTEXT;
}

/* VESSEL_HOST (and VESSEL_CONTEXT, with env_context) outrank the file's
 * current context: say so where it would surprise. */
static void note_overrides(vc_ctx *c, int env_context, const char *what) {
  if (c->cfg.context && *c->cfg.context) return;
  if (c->cfg.env_host && *c->cfg.env_host)
    fprintf(stderr, "vesselctl: note: VESSEL_HOST=%s overrides %s\n", c->cfg.env_host, what);
  else if (env_context && c->cfg.env_context && *c->cfg.env_context)
    fprintf(stderr, "vesselctl: note: VESSEL_CONTEXT=%s overrides %s\n", c->cfg.env_context, what);
}

static void json_set_str(json_t *o, const char *key, const char *v) {
  if (v) json_object_set_new(o, key, json_string(v));
}

static int ls(vc_ctx *c) {
  vcfg_file *f = load(c);
  if (!f) return 1;
  const char *sel = selected(c, f);
  vcfg_context cx;
  vs_err err;
  int known = !strcmp(sel, VCFG_DEFAULT_CONTEXT) || vcfg_find(f, sel, &cx, &err) == 0;
  if (!known) fprintf(stderr, "vesselctl: warning: %s\n", err.msg);
  note_overrides(c, 0, "the contexts");
  if (c->json) {
    json_t *doc = json_object(), *list = json_array();
    json_t *d = json_object();
    json_set_str(d, "name", VCFG_DEFAULT_CONTEXT);
    json_set_str(d, "host", VCFG_DEFAULT_HOST);
    json_object_set_new(d, "current", json_boolean(!strcmp(sel, VCFG_DEFAULT_CONTEXT)));
    json_array_append_new(list, d);
    for (size_t i = 0; i < vcfg_count(f); i++) {
      vcfg_at(f, i, &cx);
      json_t *o = json_object();
      json_set_str(o, "name", cx.name);
      json_set_str(o, "host", cx.host);
      json_set_str(o, "tlsCa", cx.tls_ca);
      json_set_str(o, "tlsCert", cx.tls_cert);
      json_set_str(o, "tlsKey", cx.tls_key);
      json_set_str(o, "serverName", cx.server_name);
      json_object_set_new(o, "current", json_boolean(!strcmp(sel, cx.name)));
      json_array_append_new(list, o);
    }
    if (known) json_set_str(doc, "current", sel);
    json_object_set_new(doc, "path", json_string(vcfg_file_path(f)));
    json_object_set_new(doc, "contexts", list);
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(doc);
  } else {
    printf("%-20s %-40s %s\n", "NAME", "HOST", "TLS CA");
    char name[VCFG_NAME_MAX + 3];
    snprintf(name, sizeof name, "%s%s", VCFG_DEFAULT_CONTEXT,
             strcmp(sel, VCFG_DEFAULT_CONTEXT) ? "" : " *");
    printf("%-20s %-40s\n", name, VCFG_DEFAULT_HOST);
    for (size_t i = 0; i < vcfg_count(f); i++) {
      vcfg_at(f, i, &cx);
      snprintf(name, sizeof name, "%s%s", cx.name, strcmp(sel, cx.name) ? "" : " *");
      printf("%-20s %-40s %s\n", name, cx.host, cx.tls_ca ? cx.tls_ca : "");
    }
  }
  vcfg_free(f);
  return 0;
}

static int save(vcfg_file *f) {
  vs_err err;
  int rc = vcfg_save(f, &err) < 0 ? fail(&err) : 0;
  vcfg_free(f);
  return rc;
}

static int use(vc_ctx *c, int argc, char **argv) {
  if (argc != 2) return vc_usage_error("context use", "give one context name");
  vcfg_file *f = load(c);
  if (!f) return 1;
  vs_err err;
  if (vcfg_use(f, argv[1], &err) < 0) {
    vcfg_free(f);
    return fail(&err);
  }
  if (save(f)) return 1;
  printf("%s\n", argv[1]);
  note_overrides(c, 1, "the current context");
  return 0;
}

/* A TLS file as an absolute path, which must exist: the context is used
 * from any directory. */
static int absolute(const char *flag, const char *in, char *out) {
  if (!in) return 0;
  if (!realpath(in, out)) {
    fprintf(stderr, "vesselctl context create: %s %s: %s\n", flag, in, strerror(errno));
    return -1;
  }
  return 0;
}

static int create(vc_ctx *c, int argc, char **argv) {
  (void)c;
  enum { HOST = 1, CA, CERT, KEY, SNI };
  static const struct option o[] = {
      {"host", required_argument, NULL, HOST},    {"tls-ca", required_argument, NULL, CA},
      {"tls-cert", required_argument, NULL, CERT}, {"tls-key", required_argument, NULL, KEY},
      {"tls-server-name", required_argument, NULL, SNI}, {NULL, 0, NULL, 0}};
  vcfg_context cx = {0};
  int ch;
  optind = 0; /* 0, not 1: glibc re-reads the optstring (main's "+" stopped permuting) */
  opterr = 0;
  while ((ch = getopt_long(argc, argv, "", o, NULL)) != -1) {
    switch (ch) {
      case HOST: cx.host = optarg; break;
      case CA: cx.tls_ca = optarg; break;
      case CERT: cx.tls_cert = optarg; break;
      case KEY: cx.tls_key = optarg; break;
      case SNI: cx.server_name = optarg; break;
      default: return vc_usage_error("context create", "unknown flag %s", argv[optind - 1]);
    }
  }
  if (optind != argc - 1) return vc_usage_error("context create", "give one context name");
  if (!cx.host) return vc_usage_error("context create", "give --host unix:///PATH or tcp://HOST:PORT");
  cx.name = argv[optind];
  if (!strncmp(cx.host, "tcp://", 6) && !(cx.tls_ca && cx.tls_cert && cx.tls_key))
    return vc_usage_error("context create", "%s is TCP: vesseld requires mutual TLS: give "
                          "--tls-ca, --tls-cert and --tls-key", cx.host);
  static char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
  if (absolute("--tls-ca", cx.tls_ca, ca) < 0 || absolute("--tls-cert", cx.tls_cert, cert) < 0 ||
      absolute("--tls-key", cx.tls_key, key) < 0)
    return 1;
  if (cx.tls_ca) cx.tls_ca = ca;
  if (cx.tls_cert) cx.tls_cert = cert;
  if (cx.tls_key) cx.tls_key = key;
  vcfg_file *f = load(c);
  if (!f) return 1;
  vs_err err;
  if (vcfg_add(f, &cx, &err) < 0) {
    vcfg_free(f);
    return fail(&err);
  }
  if (save(f)) return 1;
  printf("%s\n", cx.name);
  return 0;
}

static int rm(vc_ctx *c, int argc, char **argv) {
  if (argc < 2) return vc_usage_error("context rm", "give a context name");
  vcfg_file *f = load(c);
  if (!f) return 1;
  vs_err err;
  vcfg_context cx;
  /* all or nothing: an unknown name removes none */
  for (int i = 1; i < argc; i++)
    if (vcfg_find(f, argv[i], &cx, &err) < 0) {
      vcfg_free(f);
      return fail(&err);
    }
  for (int i = 1; i < argc; i++)
    if (vcfg_find(f, argv[i], &cx, &err) == 0 && vcfg_remove(f, argv[i], &err) < 0) {
      vcfg_free(f);
      return fail(&err);
    }
  if (save(f)) return 1;
  for (int i = 1; i < argc; i++) printf("%s\n", argv[i]);
  return 0;
}

int vc_context(vc_ctx *c, int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : "";
  if (!strcmp(sub, "--help") || !strcmp(sub, "-h")) {
    fputs(context_usage, stdout);
    return 0;
  }
  if (!strcmp(sub, "ls")) {
    if (argc != 2) return vc_usage_error("context ls", "takes no arguments");
    return ls(c);
  }
  if (!strcmp(sub, "use")) return use(c, argc - 1, argv + 1);
  if (!strcmp(sub, "create")) return create(c, argc - 1, argv + 1);
  if (!strcmp(sub, "rm")) return rm(c, argc - 1, argv + 1);
  fputs(context_usage, stderr);
  return 2;
}
