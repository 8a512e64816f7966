/* Save/load of OCI image-layout archives (what `skopeo copy oci-archive:`
 * reads and writes), and loading of Docker `save` archives, with
 * libarchive. Archive contents are hostile: names
 * only select blobs (nothing is written by path), every blob is verified
 * against its digest on the way into the content store, documents are
 * size-limited. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "server/images/images_internal.h"

/* ---- export ---- */

typedef struct writer {
  img_write_fn fn;
  void *arg;
  vs_err *err;
  int failed;
} writer;

static la_ssize_t on_write(struct archive *a, void *arg, const void *buf, size_t len) {
  writer *w = arg;
  (void)a;
  if (w->failed || w->fn(w->arg, buf, len, w->err) < 0) {
    w->failed = 1;
    return -1;
  }
  return (la_ssize_t)len;
}

static int add_bytes(struct archive *a, const char *name, const void *data, size_t len) {
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_size(e, (la_int64_t)len);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_mtime(e, 0, 0);
  int rc = archive_write_header(a, e) == ARCHIVE_OK &&
           archive_write_data(a, data, len) == (la_ssize_t)len ? 0 : -1;
  archive_entry_free(e);
  return rc;
}

static int add_blob(img_store *s, struct archive *a, const char *digest, vs_err *err) {
  char path[4200], name[100];
  cs_blob_path(s->cs, digest, path, sizeof path);
  FILE *f = fopen(path, "rb");
  if (!f) return vs_err_set(err, VS_NOT_FOUND, "blob %s is missing from the content store", digest);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  snprintf(name, sizeof name, "blobs/sha256/%s", digest + 7);
  struct archive_entry *e = archive_entry_new();
  archive_entry_set_pathname(e, name);
  archive_entry_set_size(e, size);
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_mtime(e, 0, 0);
  int rc = archive_write_header(a, e) == ARCHIVE_OK ? 0 : -1;
  char buf[1 << 16];
  for (size_t n; rc == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0;)
    if (archive_write_data(a, buf, n) != (la_ssize_t)n) rc = -1;
  archive_entry_free(e);
  fclose(f);
  if (rc < 0 && err->code == VS_OK)
    vs_err_set(err, VS_INTERNAL, "archive: %s", archive_error_string(a));
  return rc;
}

typedef struct seen {
  char (*d)[72];
  size_t n;
} seen;

static int seen_add(seen *s, const char *d) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->d[i], d)) return 0;
  void *nd = realloc(s->d, (s->n + 1) * sizeof *s->d);
  if (!nd) return 0;
  s->d = nd;
  snprintf(s->d[s->n++], 72, "%s", d);
  return 1;
}

/* Writes a manifest and everything it references (once per archive). */
static int add_manifest(img_store *s, struct archive *a, seen *done, const char *digest,
                        vs_err *err) {
  if (!seen_add(done, digest)) return 0;
  oci_manifest m;
  if (img_read_manifest(s, digest, &m, err) < 0) return -1;
  int rc = 0;
  if (seen_add(done, m.config.digest)) rc = add_blob(s, a, m.config.digest, err);
  for (size_t i = 0; rc == 0 && i < m.n_layers; i++)
    if (!oci_layer_is_foreign(m.layers[i].media_type) && seen_add(done, m.layers[i].digest))
      rc = add_blob(s, a, m.layers[i].digest, err);
  oci_manifest_free(&m);
  return rc == 0 ? add_blob(s, a, digest, err) : -1;
}

static json_t *descriptor_json(const oci_descriptor *d) {
  json_t *j = json_pack("{s:s,s:s,s:I}", "mediaType", d->media_type, "digest", d->digest, "size",
                        (json_int_t)d->size);
  if (d->has_platform) {
    json_t *p = json_pack("{s:s,s:s}", "os", d->platform.os, "architecture", d->platform.arch);
    if (d->platform.variant[0]) json_object_set_new(p, "variant", json_string(d->platform.variant));
    json_object_set_new(j, "platform", p);
  }
  return j;
}

/* An index image whose manifests are not all local is exported with an
 * index of just the local ones (a new digest, but a loadable archive). */
static int add_image(img_store *s, struct archive *a, seen *done, const img_info *info,
                     oci_descriptor *top, vs_err *err) {
  memset(top, 0, sizeof *top);
  if (oci_kind_of(info->target.media_type) != OCI_KIND_INDEX) {
    top->media_type = strdup(info->target.media_type);
    memcpy(top->digest, info->target.digest, sizeof top->digest);
    top->size = info->target.size;
    return add_manifest(s, a, done, info->target.digest, err);
  }
  oci_index idx;
  if (img_read_index(s, info->target.digest, &idx, err) < 0) return -1;
  int rc = 0;
  size_t present = 0;
  json_t *list = json_array();
  for (size_t i = 0; rc == 0 && i < idx.n_manifests; i++) {
    if (!cs_exists(s->cs, idx.manifests[i].digest, NULL)) continue;
    present++;
    json_array_append_new(list, descriptor_json(&idx.manifests[i]));
    rc = add_manifest(s, a, done, idx.manifests[i].digest, err);
  }
  if (rc == 0 && present == idx.n_manifests) {
    top->media_type = strdup(info->target.media_type);
    memcpy(top->digest, info->target.digest, sizeof top->digest);
    top->size = info->target.size;
    if (seen_add(done, info->target.digest)) rc = add_blob(s, a, info->target.digest, err);
  } else if (rc == 0) {
    json_t *j = json_pack("{s:i,s:s,s:o}", "schemaVersion", 2, "mediaType", OCI_MT_INDEX,
                          "manifests", list);
    list = NULL;
    char *out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    char d[72];
    if (!out || cs_put(s->cs, out, strlen(out), NULL, d, err) < 0) {
      rc = -1;
    } else {
      top->media_type = strdup(OCI_MT_INDEX);
      memcpy(top->digest, d, sizeof top->digest);
      top->size = (int64_t)strlen(out);
      if (seen_add(done, d)) rc = add_blob(s, a, d, err);
    }
    free(out);
  }
  json_decref(list);
  oci_index_free(&idx);
  return rc;
}

int img_export(img_store *s, char *const *refs, size_t n, img_write_fn fn, void *arg, vs_err *err) {
  if (!n) return vs_err_set(err, VS_INVALID_ARGUMENT, "export needs at least one image");
  img_info *infos = calloc(n, sizeof *infos);
  if (!infos) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  size_t got = 0;
  int rc = 0;
  for (; got < n; got++)
    if ((rc = img_inspect(s, refs[got], NULL, &infos[got], err)) < 0) break;
  struct archive *a = NULL;
  writer w = {fn, arg, err, 0};
  seen done = {0};
  json_t *manifests = json_array();
  if (rc == 0) {
    a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_set_bytes_per_block(a, 0); /* stream as it comes */
    if (archive_write_open(a, &w, NULL, on_write, NULL) != ARCHIVE_OK)
      rc = vs_err_set(err, VS_INTERNAL, "archive: %s", archive_error_string(a));
  }
  const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
  if (rc == 0 && add_bytes(a, "oci-layout", layout, sizeof layout - 1) < 0) rc = -1;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    oci_descriptor top;
    if ((rc = add_image(s, a, &done, &infos[i], &top, err)) < 0) break;
    json_t *d = descriptor_json(&top);
    oci_ref ref;
    vs_err ignore;
    json_t *ann = json_object();
    json_object_set_new(ann, "io.containerd.image.name", json_string(infos[i].name));
    if (oci_ref_parse(infos[i].name, &ref, &ignore) == 0) {
      if (ref.tag) json_object_set_new(ann, "org.opencontainers.image.ref.name", json_string(ref.tag));
      oci_ref_free(&ref);
    }
    json_object_set_new(d, "annotations", ann);
    json_array_append_new(manifests, d);
    oci_descriptor_free(&top);
  }
  if (rc == 0) {
    json_t *index = json_pack("{s:i,s:s,s:O}", "schemaVersion", 2, "mediaType", OCI_MT_INDEX,
                              "manifests", manifests);
    char *out = json_dumps(index, JSON_COMPACT);
    json_decref(index);
    if (!out || add_bytes(a, "index.json", out, strlen(out)) < 0) rc = -1;
    free(out);
  }
  if (a) {
    if (archive_write_close(a) != ARCHIVE_OK && rc == 0) rc = -1;
    archive_write_free(a);
  }
  if (rc < 0 && err->code == VS_OK) vs_err_set(err, VS_INTERNAL, "export failed");
  json_decref(manifests);
  free(done.d);
  for (size_t i = 0; i < got && i < n; i++) img_info_free(&infos[i]);
  free(infos);
  return rc;
}

/* ---- import ---- */

static const char *blob_name(const char *path) {
  if (!strncmp(path, "./", 2)) path += 2;
  if (strncmp(path, "blobs/sha256/", 13) != 0) return NULL;
  return path + 13;
}

static int ingest(img_store *s, struct archive *a, const char *hex, int64_t size, vs_err *err) {
  char digest[80];
  snprintf(digest, sizeof digest, "sha256:%s", hex);
  if (!oci_digest_valid(digest))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "archive entry blobs/sha256/%s: not a digest", hex);
  cs_writer *w;
  int o = cs_writer_open(s->cs, digest, size, &w, err);
  if (o != 0) return o < 0 ? -1 : 0;
  if (cs_writer_offset(w) && cs_writer_restart(w, err) < 0) {
    cs_writer_abort(w, 0);
    return -1;
  }
  char buf[1 << 16];
  for (;;) {
    la_ssize_t n = archive_read_data(a, buf, sizeof buf);
    if (n < 0) {
      cs_writer_abort(w, 0);
      return vs_err_set(err, VS_INVALID_ARGUMENT, "archive: %s", archive_error_string(a));
    }
    if (n == 0) break;
    if (cs_writer_write(w, buf, (size_t)n, err) < 0) {
      cs_writer_abort(w, 0);
      return -1;
    }
  }
  return cs_writer_commit(w, err);
}

static char *read_small(struct archive *a, int64_t size, const char *what, vs_err *err) {
  if (size < 0 || size > OCI_MAX_DOCUMENT) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "archive: %s is too large", what);
    return NULL;
  }
  char *buf = malloc((size_t)size + 1);
  la_ssize_t got = buf ? archive_read_data(a, buf, (size_t)size) : -1;
  if (got != size) {
    free(buf);
    vs_err_set(err, VS_INVALID_ARGUMENT, "archive: cannot read %s", what);
    return NULL;
  }
  buf[size] = '\0';
  return buf;
}

static struct archive *open_tar(const char *path, vs_err *err) {
  struct archive *a = archive_read_new();
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  archive_read_support_filter_zstd(a);
  archive_read_support_filter_none(a);
  if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "not a tar archive: %s", archive_error_string(a));
    archive_read_free(a);
    return NULL;
  }
  return a;
}

/* The next regular file (its name without "./"): 1, 0 at the end, -1 if
 * the archive is corrupt. Other entries are skipped: nothing is written by
 * name, so links and devices mean nothing here. */
static int next_file(struct archive *a, struct archive_entry **e, const char **name, vs_err *err) {
  for (;;) {
    int r = archive_read_next_header(a, e);
    if (r == ARCHIVE_EOF) return 0;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "corrupt archive: %s", archive_error_string(a));
    const char *n = archive_entry_pathname(*e);
    if (!n || archive_entry_filetype(*e) != AE_IFREG) continue;
    *name = strncmp(n, "./", 2) ? n : n + 2;
    return 1;
  }
}

static int is_ref(const char *s) {
  oci_ref ref;
  vs_err ignore;
  if (oci_ref_parse(s, &ref, &ignore) < 0) return 0;
  oci_ref_free(&ref);
  return 1;
}

/* Tags top as want, normalised ("<none>@digest" if want is NULL;
 * INVALID_ARGUMENT if it is no reference), and adds its info to out. */
static int add_name(img_store *s, const char *want, const oci_descriptor *top, img_info *out,
                    size_t *n_out, vs_err *err) {
  char name[600];
  if (want) {
    oci_ref ref;
    if (oci_ref_parse(want, &ref, err) < 0) return vs_err_wrap(err, "archive: bad tag %s", want);
    char *full = oci_ref_string(&ref);
    snprintf(name, sizeof name, "%s", full);
    free(full);
    oci_ref_free(&ref);
  } else {
    snprintf(name, sizeof name, "<none>@%s", top->digest);
  }
  pthread_mutex_lock(&s->mu);
  int rc = img_set_ref(s, name, top, err);
  pthread_mutex_unlock(&s->mu);
  vs_err ignore;
  if (rc == 0 && img_build_info(s, name, top, NULL, time(NULL), &out[*n_out], &ignore) == 0)
    (*n_out)++;
  return rc;
}

/* ---- Docker `save` archives ----
 * manifest.json lists, per image, its config file, its layer tars and its
 * tags. Nothing there carries digests, so every other file is hashed on
 * the first read of the archive, and a second read stores those a
 * manifest names (verified against the first read's digest as any blob).
 * Each image gets an OCI manifest of its own. (Docker 25+ writes an OCI
 * layout too: those archives take the OCI path.) */

#define DOCKER_MAX_FILES 100000

typedef struct dfile {
  char *name;
  char digest[72];
  int64_t size;
  int gzip;
} dfile;

typedef struct dfiles {
  dfile *f;
  size_t n;
} dfiles;

static void dfiles_free(dfiles *d) {
  for (size_t i = 0; i < d->n; i++) free(d->f[i].name);
  free(d->f);
}

static const dfile *find_file(const dfiles *d, const char *name) {
  for (size_t i = 0; name && i < d->n; i++)
    if (!strcmp(d->f[i].name, name)) return &d->f[i];
  return NULL;
}

/* Hashes the current entry into d. */
static int hash_file(struct archive *a, const char *name, dfiles *d, vs_err *err) {
  if (d->n == DOCKER_MAX_FILES) return 0; /* beyond: as if absent */
  dfile *g = realloc(d->f, (d->n + 1) * sizeof *g);
  if (!g) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  d->f = g;
  dfile *f = &d->f[d->n];
  memset(f, 0, sizeof *f);
  oci_sha256 h;
  if (!(f->name = strdup(name))) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  if (oci_sha256_init(&h, err) < 0) {
    free(f->name);
    return -1;
  }
  unsigned char buf[1 << 16];
  for (;;) {
    la_ssize_t got = archive_read_data(a, buf, sizeof buf);
    if (got < 0) {
      oci_sha256_free(&h);
      free(f->name);
      return vs_err_set(err, VS_INVALID_ARGUMENT, "archive: %s", archive_error_string(a));
    }
    if (got == 0) break;
    if (f->size == 0 && got >= 2) f->gzip = buf[0] == 0x1f && buf[1] == 0x8b;
    f->size += got;
    oci_sha256_update(&h, buf, (size_t)got);
  }
  oci_sha256_final(&h, f->digest);
  d->n++;
  return 0;
}

/* Second read: stores the files named in want. */
static int store_files(img_store *s, const char *path, const dfiles *d, json_t *want, img_pin *pin,
                       vs_err *err) {
  struct archive *a = open_tar(path, err);
  if (!a) return -1;
  struct archive_entry *e;
  const char *name;
  int r;
  while ((r = next_file(a, &e, &name, err)) == 1) {
    const dfile *f = json_object_get(want, name) ? find_file(d, name) : NULL;
    if (!f) continue;
    img_pin_add(s, pin, f->digest);
    /* A file that changed between the reads is DATA_LOSS here. */
    if ((r = ingest(s, a, f->digest + 7, f->size, err)) < 0) break;
  }
  archive_read_free(a);
  return r < 0 ? -1 : 0;
}

static json_t *descriptor(const char *media_type, const dfile *d) {
  return json_pack("{s:s,s:s,s:I}", "mediaType", media_type, "digest", d->digest, "size",
                   (json_int_t)d->size);
}

/* Stores an OCI manifest for manifest.json's entry m (its files stored). */
static int docker_manifest(img_store *s, const dfiles *d, json_t *m, oci_descriptor *top,
                           vs_err *err) {
  json_t *layers = json_array();
  size_t k;
  json_t *l;
  json_array_foreach(json_object_get(m, "Layers"), k, l) {
    const dfile *f = find_file(d, json_string_value(l));
    json_array_append_new(layers, descriptor(f->gzip ? "application/vnd.oci.image.layer.v1.tar+gzip"
                                                     : "application/vnd.oci.image.layer.v1.tar",
                                             f));
  }
  const dfile *cfg = find_file(d, json_string_value(json_object_get(m, "Config")));
  json_t *doc = json_pack("{s:i,s:s,s:o,s:o}", "schemaVersion", 2, "mediaType",
                          "application/vnd.oci.image.manifest.v1+json", "config",
                          descriptor("application/vnd.oci.image.config.v1+json", cfg), "layers",
                          layers);
  char *bytes = json_dumps(doc, JSON_COMPACT);
  json_decref(doc);
  memset(top, 0, sizeof *top);
  top->media_type = (char *)"application/vnd.oci.image.manifest.v1+json";
  top->size = bytes ? (int64_t)strlen(bytes) : 0;
  int rc = bytes ? cs_put(s->cs, bytes, strlen(bytes), NULL, top->digest, err)
                 : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  free(bytes);
  return rc;
}

static int import_docker(img_store *s, const char *path, const char *text, const dfiles *d,
                         const char *reference, img_info **out, size_t *n_out, img_pin *pin,
                         vs_err *err) {
  int rc = 0;
  json_t *list = json_loads(text, 0, NULL);
  if (!json_is_array(list) || !json_array_size(list))
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "archive: manifest.json lists no images");
  if (rc == 0 && reference && *reference && json_array_size(list) != 1)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT,
                    "a reference was given but the archive holds %zu images",
                    json_array_size(list));
  /* Every file named must be in the archive before anything is stored. */
  json_t *want = json_object();
  size_t i, k;
  json_t *m, *l;
  json_array_foreach(list, i, m) {
    if (rc < 0) break;
    const char *cfg = json_string_value(json_object_get(m, "Config"));
    json_t *layers = json_object_get(m, "Layers");
    if (!find_file(d, cfg) || !json_is_array(layers))
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "archive: image %zu: config %s is missing", i,
                      cfg ? cfg : "(none)");
    else
      json_object_set_new(want, cfg, json_true());
    json_array_foreach(layers, k, l) {
      if (rc < 0) break;
      const char *ln = json_string_value(l);
      if (!find_file(d, ln))
        rc = vs_err_set(err, VS_INVALID_ARGUMENT, "archive: image %zu: layer %s is missing", i,
                        ln ? ln : "(not a name)");
      else
        json_object_set_new(want, ln, json_true());
    }
  }
  if (rc == 0) rc = store_files(s, path, d, want, pin, err);
  if (rc == 0) *out = calloc(json_array_size(list) * 8 + 1, sizeof **out);
  json_array_foreach(list, i, m) {
    if (rc < 0) break;
    oci_descriptor top;
    rc = docker_manifest(s, d, m, &top, err);
    if (rc == 0) img_pin_add(s, pin, top.digest);
    /* Its names: the reference given, else its RepoTags (8 at most), else
     * its digest. */
    json_t *tags = json_object_get(m, "RepoTags");
    size_t nt = reference && *reference ? 1 : json_is_array(tags) ? json_array_size(tags) : 0;
    for (size_t t = 0; rc == 0 && t < (nt ? nt : 1) && t < 8; t++)
      rc = add_name(s, reference && *reference ? reference
                       : nt ? json_string_value(json_array_get(tags, t)) : NULL,
                    &top, *out, n_out, err);
  }
  json_decref(want);
  json_decref(list);
  return rc;
}

/* An imported manifest needs its config and layers (foreign layers
 * aside), in the archive or already in the store: INVALID_ARGUMENT naming
 * the first one missing. */
static int manifest_complete(img_store *s, const char *digest, vs_err *err) {
  oci_manifest m;
  if (img_read_manifest(s, digest, &m, err) < 0)
    return vs_err_wrap(err, "archive: manifest %s", digest);
  int rc = 0;
  const char *missing = !cs_exists(s->cs, m.config.digest, NULL) ? m.config.digest : NULL;
  for (size_t i = 0; !missing && i < m.n_layers; i++)
    if (!oci_layer_is_foreign(m.layers[i].media_type) && !cs_exists(s->cs, m.layers[i].digest, NULL))
      missing = m.layers[i].digest;
  if (missing)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT,
                    "archive: manifest %s names blob %s, which the archive lacks", digest, missing);
  oci_manifest_free(&m);
  return rc;
}

/* An index needs at least one of its manifests (a single-platform export
 * of a multi-platform image lacks the others), each one it has complete. */
static int image_complete(img_store *s, const char *digest, const char *mt, vs_err *err) {
  if (oci_kind_of(mt) != OCI_KIND_INDEX) return manifest_complete(s, digest, err);
  oci_index idx;
  if (img_read_index(s, digest, &idx, err) < 0) return vs_err_wrap(err, "archive: index %s", digest);
  int rc = 0;
  size_t present = 0;
  for (size_t i = 0; rc == 0 && i < idx.n_manifests; i++) {
    const oci_descriptor *d = &idx.manifests[i];
    if (!cs_exists(s->cs, d->digest, NULL)) continue;
    present++;
    rc = image_complete(s, d->digest, d->media_type, err);
  }
  if (rc == 0 && !present)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "archive: index %s has none of its %zu manifests",
                    digest, idx.n_manifests);
  oci_index_free(&idx);
  return rc;
}

int img_import(img_store *s, const char *path, img_archive_format format, const char *reference,
               img_info **out, size_t *n_out, vs_err *err) {
  *out = NULL;
  *n_out = 0;
  if (reference && *reference && !is_ref(reference))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "reference \"%.200s\" is not a valid image reference",
                      reference);
  struct archive *a = open_tar(path, err);
  if (!a) return -1;
  char *index = NULL, *docker = NULL;
  dfiles other = {0};
  int layout = 0, rc;
  img_pin pin = {0};
  struct archive_entry *e;
  const char *name;
  while ((rc = next_file(a, &e, &name, err)) == 1) {
    const char *hex = blob_name(name);
    int64_t size = archive_entry_size(e);
    if (hex) {
      char d[80];
      snprintf(d, sizeof d, "sha256:%s", hex);
      img_pin_add(s, &pin, d);
      rc = ingest(s, a, hex, size, err);
    } else if (!strcmp(name, "index.json")) {
      free(index);
      rc = (index = read_small(a, size, "index.json", err)) ? 0 : -1;
    } else if (!strcmp(name, "manifest.json")) {
      free(docker);
      rc = (docker = read_small(a, size, "manifest.json", err)) ? 0 : -1;
    } else if (!strcmp(name, "oci-layout")) {
      layout = 1;
    } else {
      rc = hash_file(a, name, &other, err); /* a Docker save archive's config or layer */
    }
    if (rc < 0) break;
  }
  archive_read_free(a);
  json_t *j = NULL, *list = NULL;
  if (rc == 0 && format == IMG_ARCHIVE_DOCKER && !docker)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT,
                    "format DOCKER: the archive has no manifest.json (not a docker save archive)");
  /* A docker save archive (newer ones carry an OCI index.json too) */
  if (rc == 0 && docker && (format == IMG_ARCHIVE_DOCKER || (!format && !index))) {
    rc = import_docker(s, path, docker, &other, reference, out, n_out, &pin, err);
    goto out;
  }
  if (rc == 0 && format == IMG_ARCHIVE_OCI && (!index || !layout))
    rc = vs_err_set(err, VS_INVALID_ARGUMENT,
                    "format OCI: the archive has no %s (not an OCI image layout%s)",
                    !index ? "index.json" : "oci-layout", docker ? "; a docker save archive?" : "");
  if (rc == 0 && !index)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT,
                    "not an image archive (no index.json, no manifest.json)");
  if (rc == 0 && !layout)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "not an OCI image layout archive (no oci-layout)");
  if (rc == 0 && !(j = json_loads(index, 0, NULL)))
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "archive: index.json is not valid JSON");
  list = j ? json_object_get(j, "manifests") : NULL;
  if (rc == 0 && (!json_is_array(list) || !json_array_size(list)))
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "archive: index.json lists no images");
  if (rc == 0 && reference && *reference && json_array_size(list) != 1)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT,
                    "a reference was given but the archive holds %zu images",
                    json_array_size(list));
  size_t i;
  json_t *m;
  /* Every image complete before any is named: a refused archive records
   * nothing. */
  json_array_foreach(list, i, m) {
    if (rc < 0) break;
    const char *digest = json_string_value(json_object_get(m, "digest"));
    const char *mt = json_string_value(json_object_get(m, "mediaType"));
    if (!oci_digest_valid(digest) || !mt || !cs_exists(s->cs, digest, NULL))
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "archive: index entry %zu names a missing blob", i);
    else
      rc = image_complete(s, digest, mt, err);
  }
  if (rc == 0) *out = calloc(json_array_size(list), sizeof **out);
  json_array_foreach(list, i, m) {
    if (rc < 0) break;
    const char *digest = json_string_value(json_object_get(m, "digest"));
    const char *mt = json_string_value(json_object_get(m, "mediaType"));
    json_t *ann = json_object_get(m, "annotations");
    const char *full = json_string_value(json_object_get(ann, "io.containerd.image.name"));
    const char *refname = json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
    const char *want = reference && *reference ? reference : full ? full : refname;
    /* Untagged unless it is a reference: a ref.name without '/' or ':'
     * (such as "latest") is a tag without a repository. */
    if (want && (!is_ref(want) ||
                 (want != reference && want != full && !strpbrk(want, "/:"))))
      want = NULL;
    oci_descriptor top = {0};
    top.media_type = (char *)mt;
    snprintf(top.digest, sizeof top.digest, "%s", digest);
    top.size = (int64_t)json_integer_value(json_object_get(m, "size"));
    rc = add_name(s, want, &top, *out, n_out, err);
  }
out:
  json_decref(j);
  free(index);
  free(docker);
  dfiles_free(&other);
  img_pin_release(s, &pin);
  if (rc < 0) {
    img_list_free(*out, *n_out);
    *out = NULL;
    *n_out = 0;
  }
  return rc;
}
