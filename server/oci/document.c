/* Index, manifest and config JSON (OCI and Docker schema2), via jansson. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "server/oci/oci.h"

static json_t *load(const char *json, size_t len, const char *what, vs_err *err) {
  if (len > OCI_MAX_DOCUMENT) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "%s of %zu bytes exceeds the %u byte limit", what, len,
               OCI_MAX_DOCUMENT);
    return NULL;
  }
  json_error_t je;
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "%s: invalid JSON at line %d: %s", what, je.line, je.text);
    return NULL;
  }
  if (!json_is_object(root)) {
    json_decref(root);
    vs_err_set(err, VS_INVALID_ARGUMENT, "%s: not a JSON object", what);
    return NULL;
  }
  return root;
}

static char *str_or_null(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* A JSON array of strings -> a malloc'd array of strings. */
static int strv(json_t *v, char ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!json_is_array(v)) return 0;
  size_t len = json_array_size(v);
  if (!len) return 0;
  char **a = calloc(len, sizeof *a);
  if (!a) return -1;
  size_t k = 0, i;
  json_t *e;
  json_array_foreach(v, i, e) if (json_is_string(e)) a[k++] = strdup(json_string_value(e));
  *out = a;
  *n = k;
  return 0;
}

/* Keys of a JSON object (Docker's ExposedPorts/Volumes are {"80/tcp": {}}). */
static int keys(json_t *v, char ***out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (!json_is_object(v) || !json_object_size(v)) return 0;
  char **a = calloc(json_object_size(v), sizeof *a);
  if (!a) return -1;
  const char *k;
  json_t *e;
  size_t i = 0;
  json_object_foreach(v, k, e) a[i++] = strdup(k);
  *out = a;
  *n = i;
  return 0;
}

static void freev(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static void platform_from(json_t *p, oci_platform *out) {
  memset(out, 0, sizeof *out);
  const char *os = json_string_value(json_object_get(p, "os"));
  const char *arch = json_string_value(json_object_get(p, "architecture"));
  const char *var = json_string_value(json_object_get(p, "variant"));
  snprintf(out->os, sizeof out->os, "%s", os ? os : "");
  snprintf(out->arch, sizeof out->arch, "%s", arch ? arch : "");
  snprintf(out->variant, sizeof out->variant, "%s", var ? var : "");
  oci_platform_normalize(out);
}

static int descriptor_from(json_t *o, oci_descriptor *d, const char *what, vs_err *err) {
  memset(d, 0, sizeof *d);
  if (!json_is_object(o)) return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: not an object", what);
  const char *digest = json_string_value(json_object_get(o, "digest"));
  if (!oci_digest_valid(digest))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: missing or unsupported digest \"%s\"", what,
                      digest ? digest : "");
  json_t *size = json_object_get(o, "size");
  if (!json_is_integer(size) || json_integer_value(size) < 0 ||
      json_integer_value(size) > ((json_int_t)1 << 50))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s %s: missing or absurd size", what, digest);
  snprintf(d->digest, sizeof d->digest, "%s", digest);
  d->size = json_integer_value(size);
  d->media_type = str_or_null(o, "mediaType");
  if (!d->media_type) d->media_type = strdup("");
  json_t *p = json_object_get(o, "platform");
  if (json_is_object(p)) {
    d->has_platform = 1;
    platform_from(p, &d->platform);
  }
  strv(json_object_get(o, "urls"), &d->urls, &d->n_urls);
  return 0;
}

void oci_descriptor_free(oci_descriptor *d) {
  if (!d) return;
  free(d->media_type);
  freev(d->urls, d->n_urls);
  memset(d, 0, sizeof *d);
}

oci_kind oci_kind_of(const char *mt) {
  if (!mt) return OCI_KIND_UNKNOWN;
  if (!strcmp(mt, OCI_MT_INDEX) || !strcmp(mt, DOCKER_MT_LIST)) return OCI_KIND_INDEX;
  if (!strcmp(mt, OCI_MT_MANIFEST) || !strcmp(mt, DOCKER_MT_MANIFEST)) return OCI_KIND_MANIFEST;
  return OCI_KIND_UNKNOWN;
}

char *oci_document_media_type(const char *json, size_t len) {
  json_t *root = load(json, len, "document", NULL);
  if (!root) return NULL;
  char *mt = str_or_null(root, "mediaType");
  if (!mt) { /* OCI allows omitting it: infer from the shape. */
    if (json_is_array(json_object_get(root, "manifests")))
      mt = strdup(OCI_MT_INDEX);
    else if (json_is_object(json_object_get(root, "config")))
      mt = strdup(OCI_MT_MANIFEST);
  }
  json_decref(root);
  return mt;
}

int oci_index_parse(const char *json, size_t len, oci_index *out, vs_err *err) {
  memset(out, 0, sizeof *out);
  json_t *root = load(json, len, "image index", err);
  if (!root) return -1;
  json_t *m = json_object_get(root, "manifests");
  if (!json_is_array(m)) {
    json_decref(root);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "image index: no \"manifests\" array");
  }
  size_t n = json_array_size(m);
  out->manifests = calloc(n ? n : 1, sizeof *out->manifests);
  if (!out->manifests) {
    json_decref(root);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    if (descriptor_from(json_array_get(m, i), &out->manifests[i], "image index entry", err) < 0) {
      oci_index_free(out);
      json_decref(root);
      return -1;
    }
    out->n_manifests = i + 1;
  }
  json_decref(root);
  return 0;
}

void oci_index_free(oci_index *x) {
  for (size_t i = 0; i < x->n_manifests; i++) oci_descriptor_free(&x->manifests[i]);
  free(x->manifests);
  memset(x, 0, sizeof *x);
}

int oci_manifest_parse(const char *json, size_t len, oci_manifest *out, vs_err *err) {
  memset(out, 0, sizeof *out);
  json_t *root = load(json, len, "image manifest", err);
  if (!root) return -1;
  int rc = -1;
  json_t *sv = json_object_get(root, "schemaVersion");
  if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "image manifest: schemaVersion must be 2 (schema1 is not supported)");
    goto out;
  }
  out->media_type = str_or_null(root, "mediaType");
  if (descriptor_from(json_object_get(root, "config"), &out->config, "manifest config", err) < 0)
    goto out;
  json_t *layers = json_object_get(root, "layers");
  if (!json_is_array(layers)) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "image manifest: no \"layers\" array");
    goto out;
  }
  size_t n = json_array_size(layers);
  if (n > OCI_MAX_LAYERS) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "image manifest lists %zu layers; at most %d are accepted",
               n, OCI_MAX_LAYERS);
    goto out;
  }
  out->layers = calloc(n ? n : 1, sizeof *out->layers);
  if (!out->layers) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (descriptor_from(json_array_get(layers, i), &out->layers[i], "manifest layer", err) < 0)
      goto out;
    out->n_layers = i + 1;
  }
  rc = 0;
out:
  json_decref(root);
  if (rc < 0) oci_manifest_free(out);
  return rc;
}

void oci_manifest_free(oci_manifest *m) {
  free(m->media_type);
  oci_descriptor_free(&m->config);
  for (size_t i = 0; i < m->n_layers; i++) oci_descriptor_free(&m->layers[i]);
  free(m->layers);
  memset(m, 0, sizeof *m);
}

static int64_t rfc3339(const char *s) {
  if (!s) return 0;
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return 0;
  return (int64_t)timegm(&tm);
}

int oci_config_parse(const char *json, size_t len, oci_config *out, vs_err *err) {
  memset(out, 0, sizeof *out);
  json_t *root = load(json, len, "image config", err);
  if (!root) return -1;
  platform_from(root, &out->platform);
  out->created = rfc3339(json_string_value(json_object_get(root, "created")));
  json_t *c = json_object_get(root, "config");
  if (json_is_object(c)) {
    strv(json_object_get(c, "Entrypoint"), &out->entrypoint, &out->n_entrypoint);
    strv(json_object_get(c, "Cmd"), &out->cmd, &out->n_cmd);
    strv(json_object_get(c, "Env"), &out->env, &out->n_env);
    out->working_dir = str_or_null(c, "WorkingDir");
    out->user = str_or_null(c, "User");
    out->stop_signal = str_or_null(c, "StopSignal");
    keys(json_object_get(c, "ExposedPorts"), &out->exposed_ports, &out->n_exposed_ports);
    keys(json_object_get(c, "Volumes"), &out->volumes, &out->n_volumes);
    json_t *labels = json_object_get(c, "Labels");
    if (json_is_object(labels) && json_object_size(labels)) {
      out->labels = calloc(2 * json_object_size(labels), sizeof(char *));
      const char *k;
      json_t *v;
      json_object_foreach(labels, k, v) {
        if (!out->labels || !json_is_string(v)) continue;
        out->labels[2 * out->n_labels] = strdup(k);
        out->labels[2 * out->n_labels + 1] = strdup(json_string_value(v));
        out->n_labels++;
      }
    }
  }
  json_t *rootfs = json_object_get(root, "rootfs");
  if (json_is_object(rootfs)) strv(json_object_get(rootfs, "diff_ids"), &out->diff_ids, &out->n_diff_ids);
  json_decref(root);
  return 0;
}

void oci_config_free(oci_config *c) {
  freev(c->entrypoint, c->n_entrypoint);
  freev(c->cmd, c->n_cmd);
  freev(c->env, c->n_env);
  free(c->working_dir);
  free(c->user);
  free(c->stop_signal);
  freev(c->labels, 2 * c->n_labels);
  freev(c->exposed_ports, c->n_exposed_ports);
  freev(c->volumes, c->n_volumes);
  freev(c->diff_ids, c->n_diff_ids);
  memset(c, 0, sizeof *c);
}

const oci_descriptor *oci_index_select(const oci_index *idx, const oci_platform *want,
                                       vs_err *err) {
  oci_platform w = *want, host;
  oci_platform_host(&host);
  if (!w.os[0]) snprintf(w.os, sizeof w.os, "%s", host.os);
  if (!w.arch[0]) {
    snprintf(w.arch, sizeof w.arch, "%s", host.arch);
    snprintf(w.variant, sizeof w.variant, "%s", host.variant);
  }
  oci_platform_normalize(&w);
  for (size_t i = 0; i < idx->n_manifests; i++) {
    const oci_descriptor *d = &idx->manifests[i];
    if (d->has_platform && oci_kind_of(d->media_type) != OCI_KIND_INDEX &&
        oci_platform_match(&w, &d->platform))
      return d;
  }
  char avail[512] = "", one[80], wanted[80];
  for (size_t i = 0; i < idx->n_manifests; i++) {
    if (!idx->manifests[i].has_platform) continue;
    oci_platform_format(&idx->manifests[i].platform, one, sizeof one);
    size_t l = strlen(avail);
    snprintf(avail + l, sizeof avail - l, "%s%s", l ? ", " : "", one);
  }
  oci_platform_format(&w, wanted, sizeof wanted);
  vs_err_set(err, VS_NOT_FOUND, "no manifest for platform %s in the index (available: %s)", wanted,
             avail[0] ? avail : "none");
  return NULL;
}

oci_compression oci_layer_compression(const char *mt) {
  if (!mt) return OCI_COMP_UNKNOWN;
  if (!strcmp(mt, OCI_MT_LAYER) || !strcmp(mt, "application/vnd.oci.image.layer.nondistributable.v1.tar") ||
      !strcmp(mt, "application/vnd.docker.image.rootfs.diff.tar"))
    return OCI_COMP_NONE;
  if (!strcmp(mt, OCI_MT_LAYER_GZIP) || !strcmp(mt, DOCKER_MT_LAYER_GZIP) ||
      !strcmp(mt, DOCKER_MT_FOREIGN) ||
      !strcmp(mt, "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"))
    return OCI_COMP_GZIP;
  if (!strcmp(mt, OCI_MT_LAYER_ZSTD) ||
      !strcmp(mt, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"))
    return OCI_COMP_ZSTD;
  return OCI_COMP_UNKNOWN;
}

int oci_layer_is_foreign(const char *mt) {
  return mt && (strstr(mt, ".nondistributable.") || !strcmp(mt, DOCKER_MT_FOREIGN));
}
