/* Push: blobs first (skipping those the registry has, mounting across
 * repositories where possible), then manifests, then the tag. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/images/images_internal.h"
#include "server/registry/registry.h"

typedef struct push {
  img_store *s;
  reg_client *rc;
  const img_push_opts *o;
  const char *mount_from;
  img_blob_progress *blobs;
  size_t n;
} push;

static void report(push *p) {
  if (!p->o->progress) return;
  img_progress pr = {IMG_PHASE_UPLOADING, p->blobs, p->n};
  p->o->progress(p->o->progress_arg, &pr);
}

static void on_bytes(void *arg, const char *digest, int64_t done, int64_t total) {
  push *p = arg;
  for (size_t i = 0; i < p->n; i++)
    if (!strcmp(p->blobs[i].digest, digest)) {
      p->blobs[i].done = done;
      p->blobs[i].total = total;
      p->blobs[i].state = IMG_BLOB_TRANSFERRING;
    }
  report(p);
}

static int push_blob(push *p, const oci_descriptor *d, vs_err *err) {
  img_blob_progress *b = realloc(p->blobs, (p->n + 1) * sizeof *b);
  if (!b) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  p->blobs = b;
  b = &p->blobs[p->n++];
  memset(b, 0, sizeof *b);
  snprintf(b->digest, sizeof b->digest, "%s", d->digest);
  snprintf(b->media_type, sizeof b->media_type, "%s", d->media_type ? d->media_type : "");
  b->total = d->size;
  b->state = IMG_BLOB_WAITING;
  if (!cs_exists(img_content(p->s), d->digest, NULL))
    return vs_err_set(err, VS_FAILED_PRECONDITION, "blob %s is not in the local store", d->digest);
  int rc = reg_push_blob(p->rc, img_content(p->s), d, p->mount_from, on_bytes, p, err);
  if (rc < 0) return -1;
  b = &p->blobs[p->n - 1];
  b->done = d->size;
  b->state = rc == 1 ? IMG_BLOB_EXISTS : IMG_BLOB_DONE;
  report(p);
  return 0;
}

/* Pushes a manifest's config and layers, then the manifest by digest (or by
 * tag when it is the top-level document). */
static int push_manifest(push *p, const oci_descriptor *md, const char *tag, vs_err *err) {
  char *data;
  size_t len;
  if (cs_read(img_content(p->s), md->digest, OCI_MAX_DOCUMENT, &data, &len, err) < 0) return -1;
  oci_manifest m;
  int rc = oci_manifest_parse(data, len, &m, err);
  if (rc == 0) {
    rc = push_blob(p, &m.config, err);
    for (size_t i = 0; rc == 0 && i < m.n_layers; i++)
      if (!oci_layer_is_foreign(m.layers[i].media_type)) rc = push_blob(p, &m.layers[i], err);
    if (rc == 0) rc = reg_put_manifest(p->rc, tag ? tag : md->digest, md->media_type, data, len, err);
    oci_manifest_free(&m);
  }
  free(data);
  return rc;
}

int img_push(img_store *s, const char *reference, const img_push_opts *o, oci_descriptor *pushed,
             vs_err *err) {
  memset(pushed, 0, sizeof *pushed);
  img_info info;
  if (img_inspect(s, reference, NULL, &info, err) < 0) return -1;
  const char *dest = o->destination && *o->destination ? o->destination : info.name;
  oci_ref dst, src;
  if (oci_ref_parse(dest, &dst, err) < 0) {
    img_info_free(&info);
    return -1;
  }
  int same_registry = oci_ref_parse(info.name, &src, err) == 0 && !strcmp(src.domain, dst.domain);
  char *user, *pass;
  img_creds(s, dst.domain, o->username, o->password, &user, &pass);
  reg_options ro = {.insecure = o->insecure, .certs_dir = s->certs_dir, .cancelled = o->cancelled,
                    .cancel_arg = o->cancel_arg, .username = user,
                    .password = pass, .push = 1};
  reg_client *rc = reg_client_new(&dst, &ro, err);
  free(user);
  free(pass);
  push p = {s, rc, o, same_registry ? src.path : NULL, NULL, 0};
  const char *tag = dst.tag ? dst.tag : dst.digest;
  int r = -1;
  if (!rc) goto out;
  if (oci_kind_of(info.target.media_type) == OCI_KIND_INDEX) {
    char *data;
    size_t len;
    oci_index idx;
    if (cs_read(img_content(s), info.target.digest, OCI_MAX_DOCUMENT, &data, &len, err) < 0) goto out;
    r = oci_index_parse(data, len, &idx, err);
    int have_idx = r == 0;
    /* Only locally present platforms can be pushed; the index must then
     * list just those, or the registry would refuse it. */
    for (size_t i = 0; r == 0 && i < idx.n_manifests; i++) {
      if (!cs_exists(img_content(s), idx.manifests[i].digest, NULL)) {
        r = vs_err_set(err, VS_FAILED_PRECONDITION,
                       "image %s: manifest %s of its index was not pulled (pull with that "
                       "platform, or push one platform)", info.name, idx.manifests[i].digest);
        break;
      }
      r = push_manifest(&p, &idx.manifests[i], NULL, err);
    }
    if (r == 0) r = reg_put_manifest(rc, tag, info.target.media_type, data, len, err);
    if (have_idx) oci_index_free(&idx);
    free(data);
  } else {
    r = push_manifest(&p, &info.target, tag, err);
  }
  if (r == 0) {
    pushed->media_type = strdup(info.target.media_type);
    memcpy(pushed->digest, info.target.digest, sizeof pushed->digest);
    pushed->size = info.target.size;
  }
out:
  if (r < 0) vs_err_wrap(err, "push %s", dest);
  free(p.blobs);
  reg_client_free(rc);
  if (same_registry) oci_ref_free(&src);
  oci_ref_free(&dst);
  img_info_free(&info);
  return r;
}
