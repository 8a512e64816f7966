/* The image store: references in SQLite, image views built from the blobs,
 * tagging, deletion and garbage collection. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "server/images/images_internal.h"

img_store *img_open(const char *root, vs_err *err) {
  img_store *s = calloc(1, sizeof *s);
  if (!s) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  snprintf(s->root, sizeof s->root, "%s", root);
  snprintf(s->auth_path, sizeof s->auth_path, "%s/auth.json", root);
  snprintf(s->certs_dir, sizeof s->certs_dir, "%s/certs.d", root);
  oci_platform_host(&s->native);
  pthread_mutex_init(&s->mu, NULL);
  char path[4200];
  snprintf(path, sizeof path, "%s/content", root);
  s->cs = cs_open(path, err);
  if (!s->cs) goto fail;
  snprintf(path, sizeof path, "%s/images.db", root);
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      NULL) != SQLITE_OK) {
    vs_err_set(err, VS_INTERNAL, "open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "?");
    goto fail;
  }
  char *msg = NULL;
  /* WAL + FULL sync: a committed reference survives kill -9 and power loss. */
  if (sqlite3_exec(s->db,
                   "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;"
                   "CREATE TABLE IF NOT EXISTS images ("
                   " name TEXT PRIMARY KEY, digest TEXT NOT NULL, media_type TEXT NOT NULL,"
                   " size INTEGER NOT NULL, updated INTEGER NOT NULL);",
                   NULL, NULL, &msg) != SQLITE_OK) {
    vs_err_set(err, VS_INTERNAL, "init %s: %s", path, msg ? msg : "?");
    sqlite3_free(msg);
    goto fail;
  }
  return s;
fail:
  img_close(s);
  return NULL;
}

void img_close(img_store *s) {
  if (!s) return;
  if (s->db) sqlite3_close(s->db);
  cs_close(s->cs);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

cs_store *img_content(img_store *s) { return s->cs; }

void img_strv_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

int img_strv_push(char ***v, size_t *n, const char *s) {
  char **nv = realloc(*v, (*n + 1) * sizeof *nv);
  if (!nv) return -1;
  *v = nv;
  nv[(*n)++] = strdup(s);
  return 0;
}

int img_count(img_store *s) {
  sqlite3_stmt *st;
  int n = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM images", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return n;
}

int img_set_native(img_store *s, const char *platform, vs_err *err) {
  oci_platform p;
  if (oci_platform_parse(platform, &p, err) < 0) return -1;
  if (!p.os[0] || !p.arch[0])
    return vs_err_set(err, VS_INVALID_ARGUMENT, "platform \"%s\": give os/arch", platform);
  s->native = p;
  return 0;
}

void img_want(const img_store *s, const oci_platform *want, oci_platform *out) {
  *out = *want;
  if (!out->os[0]) snprintf(out->os, sizeof out->os, "%s", s->native.os);
  if (!out->arch[0]) {
    snprintf(out->arch, sizeof out->arch, "%s", s->native.arch);
    snprintf(out->variant, sizeof out->variant, "%s", s->native.variant);
  }
}

int img_set_ref(img_store *s, const char *name, const oci_descriptor *t, vs_err *err) {
  /* The blobs it names must survive a crash before the name does. */
  if (cs_sync(s->cs, err) < 0) return -1;
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db,
                              "INSERT INTO images(name,digest,media_type,size,updated) VALUES(?,?,?,?,?)"
                              " ON CONFLICT(name) DO UPDATE SET digest=excluded.digest,"
                              " media_type=excluded.media_type, size=excluded.size,"
                              " updated=excluded.updated",
                              -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, t->digest, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, t->media_type, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, t->size);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(st);
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return vs_err_set(err, VS_INTERNAL, "record %s: %s", name, sqlite3_errmsg(s->db));
  return 0;
}

/* ---- reading images back from the content store ---- */

static int read_doc(img_store *s, const char *digest, char **data, size_t *len, vs_err *err) {
  return cs_read(s->cs, digest, OCI_MAX_DOCUMENT, data, len, err);
}

int img_read_manifest(img_store *s, const char *digest, oci_manifest *m, vs_err *err) {
  char *data;
  size_t len;
  if (read_doc(s, digest, &data, &len, err) < 0) return -1;
  int rc = oci_manifest_parse(data, len, m, err);
  free(data);
  return rc;
}

int img_read_index(img_store *s, const char *digest, oci_index *idx, vs_err *err) {
  char *data;
  size_t len;
  if (read_doc(s, digest, &data, &len, err) < 0) return -1;
  int rc = oci_index_parse(data, len, idx, err);
  free(data);
  return rc;
}

static int copy_desc(oci_descriptor *dst, const oci_descriptor *src) {
  memset(dst, 0, sizeof *dst);
  dst->media_type = strdup(src->media_type ? src->media_type : "");
  memcpy(dst->digest, src->digest, sizeof dst->digest);
  dst->size = src->size;
  dst->has_platform = src->has_platform;
  dst->platform = src->platform;
  return dst->media_type ? 0 : -1;
}

/* Fills info from the manifest of one platform. */
static int fill_from_manifest(img_store *s, const oci_descriptor *md, img_info *info, vs_err *err) {
  oci_manifest m;
  if (img_read_manifest(s, md->digest, &m, err) < 0) return -1;
  char *cfg;
  size_t cfg_len;
  if (read_doc(s, m.config.digest, &cfg, &cfg_len, err) < 0 ||
      oci_config_parse(cfg, cfg_len, &info->config, err) < 0) {
    if (cfg) free(cfg);
    oci_manifest_free(&m);
    return -1;
  }
  free(cfg);
  copy_desc(&info->manifest, md);
  info->platform = info->config.platform;
  info->size = md->size + m.config.size;
  info->layers = calloc(m.n_layers ? m.n_layers : 1, sizeof *info->layers);
  for (size_t i = 0; info->layers && i < m.n_layers; i++) {
    copy_desc(&info->layers[i], &m.layers[i]);
    info->size += m.layers[i].size;
  }
  info->n_layers = info->layers ? m.n_layers : 0;
  oci_manifest_free(&m);
  return 0;
}

int img_build_info(img_store *s, const char *name, const oci_descriptor *target,
                   const oci_platform *want, int64_t updated, img_info *info, vs_err *err) {
  memset(info, 0, sizeof *info);
  info->name = strdup(name);
  info->updated = updated;
  copy_desc(&info->target, target);
  if (oci_kind_of(target->media_type) != OCI_KIND_INDEX) {
    if (fill_from_manifest(s, target, info, err) < 0) goto fail;
    info->platforms = calloc(1, sizeof *info->platforms);
    if (info->platforms) {
      info->platforms[0] = info->platform;
      info->n_platforms = 1;
    }
    return 0;
  }
  oci_index idx;
  if (img_read_index(s, target->digest, &idx, err) < 0) goto fail;
  info->platforms = calloc(idx.n_manifests ? idx.n_manifests : 1, sizeof *info->platforms);
  for (size_t i = 0; info->platforms && i < idx.n_manifests; i++)
    if (idx.manifests[i].has_platform && cs_exists(s->cs, idx.manifests[i].digest, NULL))
      info->platforms[info->n_platforms++] = idx.manifests[i].platform;
  oci_platform none, w;
  memset(&none, 0, sizeof none);
  img_want(s, want ? want : &none, &w);
  const oci_descriptor *md = oci_index_select(&idx, &w, err);
  if (!md || !cs_exists(s->cs, md->digest, NULL)) {
    if (md) {
      char p[80];
      oci_platform_format(&md->platform, p, sizeof p);
      vs_err_set(err, VS_NOT_FOUND, "image %s: platform %s was not pulled", name, p);
    }
    oci_index_free(&idx);
    goto fail;
  }
  int rc = fill_from_manifest(s, md, info, err);
  oci_index_free(&idx);
  if (rc < 0) goto fail;
  info->size += target->size;
  return 0;
fail:
  img_info_free(info);
  return -1;
}

void img_info_free(img_info *i) {
  if (!i) return;
  free(i->name);
  oci_descriptor_free(&i->target);
  oci_descriptor_free(&i->manifest);
  oci_config_free(&i->config);
  for (size_t k = 0; k < i->n_layers; k++) oci_descriptor_free(&i->layers[k]);
  free(i->layers);
  free(i->platforms);
  memset(i, 0, sizeof *i);
}

/* ---- lookups ---- */

typedef struct ref_row {
  char *name;
  oci_descriptor target;
  int64_t updated;
} ref_row;

static void rows_free(ref_row *rows, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(rows[i].name);
    oci_descriptor_free(&rows[i].target);
  }
  free(rows);
}

/* Rows whose name, or digest (exact or by prefix), matches; all when key is
 * NULL. */
static int query(img_store *s, const char *sql, const char *arg, ref_row **out, size_t *n,
                 vs_err *err) {
  *out = NULL;
  *n = 0;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
    return vs_err_set(err, VS_INTERNAL, "query: %s", sqlite3_errmsg(s->db));
  if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    ref_row *r = realloc(*out, (*n + 1) * sizeof *r);
    if (!r) break;
    *out = r;
    r = &r[(*n)++];
    memset(r, 0, sizeof *r);
    r->name = strdup((const char *)sqlite3_column_text(st, 0));
    snprintf(r->target.digest, sizeof r->target.digest, "%s", sqlite3_column_text(st, 1));
    r->target.media_type = strdup((const char *)sqlite3_column_text(st, 2));
    r->target.size = sqlite3_column_int64(st, 3);
    r->updated = sqlite3_column_int64(st, 4);
  }
  sqlite3_finalize(st);
  return 0;
}

#define COLS "SELECT name, digest, media_type, size, updated FROM images "

/* The names of repository ref (its domain and path) that point at
 * ref->digest: "name@digest" of an image pulled by tag. */
static int repository_rows(img_store *s, const oci_ref *ref, ref_row **rows, size_t *n,
                           vs_err *err) {
  if (query(s, COLS "WHERE digest = ? ORDER BY name", ref->digest, rows, n, err) < 0) return -1;
  size_t k = 0;
  for (size_t i = 0; i < *n; i++) {
    oci_ref r;
    vs_err ignore;
    int same = oci_ref_parse((*rows)[i].name, &r, &ignore) == 0;
    if (same) {
      same = !strcmp(r.domain, ref->domain) && !strcmp(r.path, ref->path);
      oci_ref_free(&r);
    }
    if (same) {
      (*rows)[k++] = (*rows)[i];
    } else {
      free((*rows)[i].name);
      oci_descriptor_free(&(*rows)[i].target);
    }
  }
  *n = k;
  return 0;
}

/* Resolves what a user typed to stored rows: a reference, a digest (all its
 * names), or a digest prefix of >= 12 hex digits. */
static int resolve(img_store *s, const char *key, ref_row **rows, size_t *n, vs_err *err) {
  char hex[80];
  const char *h = !strncmp(key, "sha256:", 7) ? key + 7 : key;
  size_t hl = strlen(h);
  int is_hex = hl >= 12 && hl <= 64;
  for (size_t i = 0; is_hex && i < hl; i++)
    is_hex = (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f');
  if (is_hex) {
    snprintf(hex, sizeof hex, "sha256:%s%%", h);
    if (query(s, COLS "WHERE digest LIKE ? ORDER BY name", hex, rows, n, err) < 0) return -1;
    if (*n) {
      for (size_t i = 1; i < *n; i++)
        if (strcmp((*rows)[i].target.digest, (*rows)[0].target.digest) != 0) {
          rows_free(*rows, *n);
          return vs_err_set(err, VS_FAILED_PRECONDITION, "digest prefix %s is ambiguous", key);
        }
      return 0;
    }
  }
  oci_ref ref;
  if (oci_ref_parse(key, &ref, err) < 0) {
    if (is_hex) return vs_err_set(err, VS_NOT_FOUND, "no local image with digest %s", key);
    return -1;
  }
  char *name = oci_ref_string(&ref);
  int rc = query(s, COLS "WHERE name = ?", name, rows, n, err);
  if (rc == 0 && !*n && ref.digest && ref.tag) {
    /* "name:tag@digest" may be stored as "name@digest". */
    free(ref.tag);
    ref.tag = NULL;
    free(name);
    name = oci_ref_string(&ref);
    rc = query(s, COLS "WHERE name = ?", name, rows, n, err);
  }
  if (rc == 0 && !*n && ref.digest) {
    free(*rows);
    rc = repository_rows(s, &ref, rows, n, err);
  }
  if (rc == 0 && !*n) rc = vs_err_set(err, VS_NOT_FOUND, "no local image %s", name);
  free(name);
  oci_ref_free(&ref);
  return rc;
}

int img_inspect(img_store *s, const char *reference, const oci_platform *platform, img_info *out,
                vs_err *err) {
  ref_row *rows;
  size_t n;
  if (resolve(s, reference, &rows, &n, err) < 0) return -1;
  int rc = img_build_info(s, rows[0].name, &rows[0].target, platform, rows[0].updated, out, err);
  rows_free(rows, n);
  return rc;
}

int img_list(img_store *s, img_info **out, size_t *n, vs_err *err) {
  *out = NULL;
  *n = 0;
  ref_row *rows;
  size_t nr;
  if (query(s, COLS "ORDER BY name", NULL, &rows, &nr, err) < 0) return -1;
  *out = calloc(nr ? nr : 1, sizeof **out);
  for (size_t i = 0; *out && i < nr; i++) {
    vs_err ignore;
    /* An image whose host platform is missing is still listed, bare. */
    if (img_build_info(s, rows[i].name, &rows[i].target, NULL, rows[i].updated, &(*out)[*n],
                       &ignore) < 0) {
      img_info *b = &(*out)[*n];
      memset(b, 0, sizeof *b);
      b->name = strdup(rows[i].name);
      copy_desc(&b->target, &rows[i].target);
      b->updated = rows[i].updated;
    }
    (*n)++;
  }
  rows_free(rows, nr);
  return 0;
}

void img_list_free(img_info *list, size_t n) {
  for (size_t i = 0; i < n; i++) img_info_free(&list[i]);
  free(list);
}

int img_tag(img_store *s, const char *source, const char *target, img_info *out, vs_err *err) {
  oci_ref ref;
  if (oci_ref_parse(target, &ref, err) < 0) return -1;
  if (ref.digest) {
    oci_ref_free(&ref);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "tag target %s must not contain a digest", target);
  }
  char *name = oci_ref_string(&ref);
  oci_ref_free(&ref);
  ref_row *rows;
  size_t n;
  int rc = -1;
  if (resolve(s, source, &rows, &n, err) == 0) {
    rc = img_set_ref(s, name, &rows[0].target, err);
    if (rc == 0 && out) rc = img_build_info(s, name, &rows[0].target, NULL, time(NULL), out, err);
    rows_free(rows, n);
  }
  free(name);
  return rc;
}

/* ---- garbage collection ---- */

typedef struct digest_set {
  char (*d)[72];
  size_t n, cap;
} digest_set;

static int set_has(const digest_set *set, const char *d) {
  for (size_t i = 0; i < set->n; i++)
    if (!strcmp(set->d[i], d)) return 1;
  return 0;
}

static void set_add(digest_set *set, const char *d) {
  if (set_has(set, d)) return;
  if (set->n == set->cap) {
    size_t cap = set->cap ? set->cap * 2 : 64;
    void *nd = realloc(set->d, cap * sizeof *set->d);
    if (!nd) return;
    set->d = nd;
    set->cap = cap;
  }
  snprintf(set->d[set->n++], 72, "%s", d);
}

/* Everything reachable from one root descriptor that is present. */
static void mark(img_store *s, const oci_descriptor *d, digest_set *live, int depth) {
  set_add(live, d->digest);
  if (depth > 4) return;
  oci_kind k = oci_kind_of(d->media_type);
  if (k == OCI_KIND_UNKNOWN) return;
  char *data;
  size_t len;
  vs_err ignore;
  if (cs_read(s->cs, d->digest, OCI_MAX_DOCUMENT, &data, &len, &ignore) < 0) return;
  if (k == OCI_KIND_INDEX) {
    oci_index idx;
    if (oci_index_parse(data, len, &idx, &ignore) == 0) {
      for (size_t i = 0; i < idx.n_manifests; i++) mark(s, &idx.manifests[i], live, depth + 1);
      oci_index_free(&idx);
    }
  } else {
    oci_manifest m;
    if (oci_manifest_parse(data, len, &m, &ignore) == 0) {
      set_add(live, m.config.digest);
      for (size_t i = 0; i < m.n_layers; i++) set_add(live, m.layers[i].digest);
      oci_manifest_free(&m);
    }
  }
  free(data);
}

typedef struct sweep {
  img_store *s;
  digest_set *live;
  char ***deleted;
  size_t *n_deleted;
  int64_t reclaimed;
} sweep;

static int sweep_one(const char *digest, int64_t size, void *arg) {
  sweep *w = arg;
  if (set_has(w->live, digest) || img_pinned(w->s, digest)) return 0;
  vs_err ignore;
  if (cs_delete(w->s->cs, digest, &ignore) == 0) {
    img_strv_push(w->deleted, w->n_deleted, digest);
    w->reclaimed += size;
  }
  return 0;
}

/* Deletes every blob no reference reaches. Holds the store lock so a pull
 * cannot record a reference to blobs being swept. */
static int gc(img_store *s, char ***deleted, size_t *n_deleted, int64_t *reclaimed, vs_err *err) {
  ref_row *rows;
  size_t n;
  if (query(s, COLS, NULL, &rows, &n, err) < 0) return -1;
  digest_set live = {0};
  for (size_t i = 0; i < n; i++) mark(s, &rows[i].target, &live, 0);
  rows_free(rows, n);
  sweep w = {s, &live, deleted, n_deleted, 0};
  cs_walk(s->cs, sweep_one, &w);
  free(live.d);
  if (reclaimed) *reclaimed = w.reclaimed;
  return 0;
}

static int delete_rows(img_store *s, ref_row *rows, size_t n, char ***untagged, size_t *nu,
                       vs_err *err) {
  for (size_t i = 0; i < n; i++) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "DELETE FROM images WHERE name = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
      sqlite3_bind_text(st, 1, rows[i].name, -1, SQLITE_TRANSIENT);
      rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
      return vs_err_set(err, VS_INTERNAL, "delete %s: %s", rows[i].name, sqlite3_errmsg(s->db));
    img_strv_push(untagged, nu, rows[i].name);
  }
  return 0;
}

int img_delete(img_store *s, const char *reference, char ***untagged, size_t *nu, char ***deleted,
               size_t *nd, vs_err *err) {
  *untagged = *deleted = NULL;
  *nu = *nd = 0;
  ref_row *rows;
  size_t n;
  pthread_mutex_lock(&s->mu);
  int rc = resolve(s, reference, &rows, &n, err);
  if (rc == 0) {
    /* A name deletes that name; a digest or prefix deletes all its names. */
    int by_name = strcmp(rows[0].name, reference) == 0 || n == 1;
    rc = delete_rows(s, rows, by_name ? 1 : n, untagged, nu, err);
    rows_free(rows, n);
    if (rc == 0) rc = gc(s, deleted, nd, NULL, err);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int img_prune(img_store *s, int all, char ***untagged, size_t *nu, char ***deleted, size_t *nd,
              int64_t *reclaimed, vs_err *err) {
  *untagged = *deleted = NULL;
  *nu = *nd = 0;
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  if (all) {
    ref_row *rows;
    size_t n;
    rc = query(s, COLS, NULL, &rows, &n, err);
    if (rc == 0) {
      rc = delete_rows(s, rows, n, untagged, nu, err);
      rows_free(rows, n);
    }
  }
  if (rc == 0) rc = gc(s, deleted, nd, reclaimed, err);
  pthread_mutex_unlock(&s->mu);
  int64_t partial_bytes;
  if (rc == 0 && cs_reclaim_partials(s->cs, &partial_bytes) > 0) *reclaimed += partial_bytes;
  return rc;
}
