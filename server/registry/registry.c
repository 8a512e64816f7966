/* The distribution API (manifests, blobs, uploads) over reg_do. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/registry/registry_internal.h"

int reg_ping(reg_client *c, vs_err *err) {
  reg_req r;
  reg_req_init(&r);
  int rc = reg_do(c, &r, "", err);
  if (rc == 0 && r.status != 200) rc = reg_status_err(c, &r, "login to", err);
  reg_req_free(&r);
  return rc;
}

int reg_get_manifest(reg_client *c, const char *ref, char **body, size_t *len,
                     char **media_type, char digest[72], vs_err *err) {
  *body = NULL;
  *media_type = NULL;
  reg_req r;
  reg_req_init(&r);
  reg_membuf buf = {NULL, 0, 0, OCI_MAX_DOCUMENT};
  r.accept = OCI_ACCEPT_MANIFESTS;
  r.sink = reg_mem_sink;
  r.sink_arg = &buf;
  char path[2048];
  snprintf(path, sizeof path, "%s/manifests/%s", c->repo, ref);
  int rc = reg_do(c, &r, path, err);
  if (rc < 0) {
    if (r.sink_error)
      vs_err_set(err, VS_RESOURCE_EXHAUSTED, "manifest %s/%s:%s is larger than %u bytes", c->host,
                 c->repo, ref, OCI_MAX_DOCUMENT);
    goto fail;
  }
  if (r.status != 200) {
    rc = reg_status_err(c, &r, "manifest", err);
    goto fail;
  }
  oci_sha256_bytes(buf.data ? buf.data : "", buf.len, digest);
  if (!strncmp(ref, "sha256:", 7) && strcmp(ref, digest) != 0) {
    rc = vs_err_set(err, VS_DATA_LOSS, "manifest %s/%s@%s: content hashes to %s", c->host, c->repo,
                    ref, digest);
    goto fail;
  }
  /* Content-Type may carry parameters; the document may say better. */
  char *mt = oci_document_media_type(buf.data ? buf.data : "", buf.len);
  if (!mt && r.resp_type) mt = strndup(r.resp_type, strcspn(r.resp_type, ";"));
  if (!mt) {
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "manifest %s/%s:%s has no media type", c->host,
                    c->repo, ref);
    goto fail;
  }
  *media_type = mt;
  *body = buf.data ? buf.data : strdup("");
  *len = buf.len;
  reg_req_free(&r);
  return 0;
fail:
  free(buf.data);
  reg_req_free(&r);
  return -1;
}

/* ---- blob download into the content store ---- */

typedef struct fetch {
  cs_writer *w;
  const oci_descriptor *d;
  reg_progress_fn fn;
  void *arg;
  vs_err *err;
  int64_t base; /* writer offset when this attempt started */
} fetch;

static void fetch_before_attempt(reg_req *r, void *arg) {
  fetch *f = arg;
  f->base = cs_writer_offset(f->w);
  r->range_from = f->base;
}

static int fetch_start(reg_req *r, void *arg) {
  fetch *f = arg;
  /* 200 to a Range request: the server sends everything again. */
  if (r->range_from > 0 && r->status == 200) {
    if (cs_writer_restart(f->w, f->err) < 0) return -1;
    f->base = 0;
  }
  return 0;
}

static int fetch_sink(const void *p, size_t n, void *arg) {
  fetch *f = arg;
  if (cs_writer_write(f->w, p, n, f->err) < 0) return -1;
  if (f->fn) f->fn(f->arg, f->d->digest, cs_writer_offset(f->w), f->d->size);
  return 0;
}

int reg_fetch_blob(reg_client *c, const oci_descriptor *d, cs_store *cs, reg_progress_fn fn,
                   void *arg, vs_err *err) {
  if (oci_layer_is_foreign(d->media_type))
    return vs_err_set(err, VS_FAILED_PRECONDITION,
                      "blob %s is a non-distributable (foreign) layer; vessel does not fetch "
                      "foreign URLs", d->digest);
  cs_writer *w;
  int o = cs_writer_open(cs, d->digest, d->size, &w, err);
  if (o < 0) return -1;
  if (o == 1) {
    if (fn) fn(arg, d->digest, d->size, d->size);
    return 0;
  }
  if (cs_writer_offset(w) == d->size) { /* complete but not committed: verify */
    if (cs_writer_commit(w, err) == 0) return 0;
    if (cs_writer_open(cs, d->digest, d->size, &w, err) != 0) return -1;
  }
  fetch f = {w, d, fn, arg, err, 0};
  reg_req r;
  reg_req_init(&r);
  r.sink = fetch_sink;
  r.sink_arg = &f;
  r.on_start = fetch_start;
  r.before_attempt = fetch_before_attempt;
  char path[2048];
  snprintf(path, sizeof path, "%s/blobs/%s", c->repo, d->digest);
  int rc = 0;
  /* A body cut short on a connection without Content-Length looks
   * complete to HTTP: the size says otherwise, and the rest is fetched
   * with Range like any truncation. */
  for (int attempt = 1; rc == 0; attempt++) {
    rc = reg_do(c, &r, path, err);
    if (rc == 0 && r.status != 200 && r.status != 206) rc = reg_status_err(c, &r, "blob", err);
    int64_t have = cs_writer_offset(w);
    if (rc < 0 || have >= d->size) break;
    if (attempt >= c->max_attempts || have <= f.base) {
      rc = vs_err_set(err, VS_UNAVAILABLE, "blob %s/%s@%s: the body ended after %lld of %lld bytes",
                      c->host, c->repo, d->digest, (long long)have, (long long)d->size);
      break;
    }
  }
  reg_req_free(&r);
  if (rc < 0) {
    cs_writer_abort(w, 1); /* keep what arrived for a resume */
    return -1;
  }
  return cs_writer_commit(w, err);
}

int reg_blob_exists(reg_client *c, const char *digest, vs_err *err) {
  reg_req r;
  reg_req_init(&r);
  r.method = "HEAD";
  char path[2048];
  snprintf(path, sizeof path, "%s/blobs/%s", c->repo, digest);
  int rc = reg_do(c, &r, path, err);
  if (rc == 0) rc = r.status == 200 ? 1 : r.status == 404 ? 0 : reg_status_err(c, &r, "blob", err);
  reg_req_free(&r);
  return rc;
}

/* ---- uploads ---- */

typedef struct push_progress {
  reg_progress_fn fn;
  void *arg;
  const oci_descriptor *d;
} push_progress;

static void upload_progress(reg_req *r, int64_t now) {
  push_progress *p = r->progress_arg;
  if (p->fn) p->fn(p->arg, p->d->digest, now, p->d->size);
}

/* Location of an upload session, absolute or relative to the host. */
static void upload_url(reg_client *c, const char *loc, const char *digest, char *out, size_t n) {
  char *esc = curl_easy_escape(NULL, digest, 0);
  const char *sep = strchr(loc, '?') ? "&" : "?";
  if (strstr(loc, "://"))
    snprintf(out, n, "%s%sdigest=%s", loc, sep, esc);
  else
    snprintf(out, n, "%s://%s%s%sdigest=%s", c->scheme, c->host, loc, sep, esc);
  curl_free(esc);
}

int reg_push_blob(reg_client *c, cs_store *cs, const oci_descriptor *d, const char *mount_from,
                  reg_progress_fn fn, void *arg, vs_err *err) {
  int have = reg_blob_exists(c, d->digest, err);
  if (have != 0) {
    if (have == 1 && fn) fn(arg, d->digest, d->size, d->size);
    return have;
  }
  reg_req r;
  reg_req_init(&r);
  r.method = "POST";
  char path[2048];
  if (mount_from && strcmp(mount_from, c->repo) != 0)
    snprintf(path, sizeof path, "%s/blobs/uploads/?mount=%s&from=%s", c->repo, d->digest, mount_from);
  else
    snprintf(path, sizeof path, "%s/blobs/uploads/", c->repo);
  int rc = reg_do(c, &r, path, err);
  if (rc == 0 && r.status == 201) { /* mounted from the other repository */
    reg_req_free(&r);
    if (fn) fn(arg, d->digest, d->size, d->size);
    return 1;
  }
  if (rc == 0 && (r.status != 202 || !r.location)) rc = reg_status_err(c, &r, "start upload to", err);
  if (rc < 0) {
    reg_req_free(&r);
    return -1;
  }
  char url[8192];
  upload_url(c, r.location, d->digest, url, sizeof url);
  reg_req_free(&r);

  char blob[4200];
  cs_blob_path(cs, d->digest, blob, sizeof blob);
  int fd = open(blob, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return vs_err_errno(err, VS_NOT_FOUND, errno, "blob %s", d->digest);
  struct stat st;
  fstat(fd, &st);
  /* Monolithic PUT of the whole blob: one round trip, resumable by retry. */
  push_progress pp = {fn, arg, d};
  reg_req_init(&r);
  r.method = "PUT";
  r.content_type = "application/octet-stream";
  r.upload_fd = fd;
  r.upload_len = st.st_size;
  r.progress = upload_progress;
  r.progress_arg = &pp;
  /* reg_do wants a /v2/-relative path; hand it the full URL's tail. */
  const char *v2 = strstr(url, "/v2/");
  rc = v2 ? reg_do(c, &r, v2 + 4, err) : vs_err_set(err, VS_UNAVAILABLE, "odd upload URL %s", url);
  if (rc == 0 && r.status != 201) rc = reg_status_err(c, &r, "upload to", err);
  close(fd);
  reg_req_free(&r);
  /* The PUT's answer may have been lost after the registry stored the
   * blob: its retry then hits the spent upload URL. The registry knows. */
  vs_err head_err;
  if (rc < 0 && err->code != VS_CANCELLED && reg_blob_exists(c, d->digest, &head_err) == 1) rc = 0;
  return rc < 0 ? -1 : 0;
}

int reg_put_manifest(reg_client *c, const char *ref, const char *media_type, const char *body,
                     size_t len, vs_err *err) {
  reg_req r;
  reg_req_init(&r);
  r.method = "PUT";
  r.content_type = media_type;
  r.body = body;
  r.body_len = len;
  char path[2048];
  snprintf(path, sizeof path, "%s/manifests/%s", c->repo, ref);
  int rc = reg_do(c, &r, path, err);
  if (rc == 0 && r.status != 201 && r.status != 200) rc = reg_status_err(c, &r, "manifest push to", err);
  reg_req_free(&r);
  return rc < 0 ? -1 : 0;
}
