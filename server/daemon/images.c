/* vessel.v1.Images: a thin adapter between the API messages and
 * server/images. Messages are built from malloc'd parts so that
 * protobuf_c_message_free_unpacked releases them in one call. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/daemon/daemon.h"
#include "server/ext4/ext4.h"
#include "server/images/images.h"
#include "vessel/v1/images.pb-c.h"
#include "vessel_proto_rpc.h"

/* ---- building messages ---- */

static char *sdup(const char *s) { return strdup(s ? s : ""); }

static char **dupv(char *const *v, size_t n) {
  if (!n) return NULL;
  char **out = calloc(n, sizeof *out);
  for (size_t i = 0; out && i < n; i++) out[i] = sdup(v[i]);
  return out;
}

static Vessel__V1__Platform *platform_msg(const oci_platform *p) {
  Vessel__V1__Platform *m = malloc(sizeof *m);
  vessel__v1__platform__init(m);
  m->os = sdup(p->os);
  m->architecture = sdup(p->arch);
  m->variant = sdup(p->variant);
  return m;
}

static Vessel__V1__Descriptor *desc_msg(const oci_descriptor *d) {
  Vessel__V1__Descriptor *m = malloc(sizeof *m);
  vessel__v1__descriptor__init(m);
  m->media_type = sdup(d->media_type);
  m->digest = sdup(d->digest);
  m->size = d->size;
  if (d->has_platform) m->platform = platform_msg(&d->platform);
  return m;
}

static Vessel__V1__Image *image_msg(const img_info *i) {
  Vessel__V1__Image *m = malloc(sizeof *m);
  vessel__v1__image__init(m);
  m->name = sdup(i->name);
  m->target = desc_msg(&i->target);
  m->platform = platform_msg(&i->platform);
  Vessel__V1__ImageConfig *c = malloc(sizeof *c);
  vessel__v1__image_config__init(c);
  const oci_config *oc = &i->config;
  c->entrypoint = dupv(oc->entrypoint, c->n_entrypoint = oc->n_entrypoint);
  c->cmd = dupv(oc->cmd, c->n_cmd = oc->n_cmd);
  c->env = dupv(oc->env, c->n_env = oc->n_env);
  c->working_dir = sdup(oc->working_dir);
  c->user = sdup(oc->user);
  c->stop_signal = sdup(oc->stop_signal);
  c->exposed_ports = dupv(oc->exposed_ports, c->n_exposed_ports = oc->n_exposed_ports);
  c->volumes = dupv(oc->volumes, c->n_volumes = oc->n_volumes);
  if (oc->n_labels) {
    c->labels = calloc(oc->n_labels, sizeof *c->labels);
    for (size_t k = 0; c->labels && k < oc->n_labels; k++) {
      Vessel__V1__ImageConfig__LabelsEntry *e = malloc(sizeof *e);
      vessel__v1__image_config__labels_entry__init(e);
      e->key = sdup(oc->labels[2 * k]);
      e->value = sdup(oc->labels[2 * k + 1]);
      c->labels[c->n_labels++] = e;
    }
  }
  m->config = c;
  if (i->n_layers) {
    m->layers = calloc(i->n_layers, sizeof *m->layers);
    for (size_t k = 0; m->layers && k < i->n_layers; k++) m->layers[m->n_layers++] = desc_msg(&i->layers[k]);
  }
  m->size = i->size;
  if (i->n_platforms) {
    m->platforms = calloc(i->n_platforms, sizeof *m->platforms);
    for (size_t k = 0; m->platforms && k < i->n_platforms; k++)
      m->platforms[m->n_platforms++] = platform_msg(&i->platforms[k]);
  }
  m->created = rt_timestamp(oc->created * 1000000000);
  m->updated = rt_timestamp(i->updated * 1000000000);
  return m;
}

static void platform_from(const Vessel__V1__Platform *m, oci_platform *p) {
  memset(p, 0, sizeof *p);
  if (!m) return;
  snprintf(p->os, sizeof p->os, "%s", m->os);
  snprintf(p->arch, sizeof p->arch, "%s", m->architecture);
  snprintf(p->variant, sizeof p->variant, "%s", m->variant);
  oci_platform_normalize(p);
}

static Vessel__V1__TransferProgress *progress_msg(const img_progress *p) {
  Vessel__V1__TransferProgress *m = malloc(sizeof *m);
  vessel__v1__transfer_progress__init(m);
  switch (p->phase) {
    case IMG_PHASE_RESOLVING: m->phase = VESSEL__V1__TRANSFER_PHASE__TRANSFER_PHASE_RESOLVING; break;
    case IMG_PHASE_DOWNLOADING: m->phase = VESSEL__V1__TRANSFER_PHASE__TRANSFER_PHASE_DOWNLOADING; break;
    case IMG_PHASE_UPLOADING: m->phase = VESSEL__V1__TRANSFER_PHASE__TRANSFER_PHASE_UPLOADING; break;
    case IMG_PHASE_DONE: m->phase = VESSEL__V1__TRANSFER_PHASE__TRANSFER_PHASE_DONE; break;
  }
  if (p->n_blobs) m->layers = calloc(p->n_blobs, sizeof *m->layers);
  for (size_t i = 0; m->layers && i < p->n_blobs; i++) {
    const img_blob_progress *b = &p->blobs[i];
    Vessel__V1__LayerProgress *l = malloc(sizeof *l);
    vessel__v1__layer_progress__init(l);
    l->digest = sdup(b->digest);
    l->media_type = sdup(b->media_type);
    l->bytes_done = b->done;
    l->bytes_total = b->total;
    l->state = (Vessel__V1__LayerState)b->state; /* same numbering as LayerState */
    m->layers[m->n_layers++] = l;
    m->bytes_done += b->done;
    m->bytes_total += b->total;
  }
  return m;
}

/* ---- progress streaming ---- */

typedef struct stream {
  vrpc_call *call;
  int push; /* Push stream instead of Pull */
  struct timespec last;
  img_phase last_phase;
  int cancelled;
} stream;

static int64_t ms_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* At most ~10 snapshots a second, plus every phase change. */
static void on_progress(void *arg, const img_progress *p) {
  stream *s = arg;
  if (s->cancelled || vrpc_cancelled(s->call)) {
    s->cancelled = 1;
    return;
  }
  if (p->phase == s->last_phase && ms_since(&s->last) < 100) return;
  s->last_phase = p->phase;
  clock_gettime(CLOCK_MONOTONIC, &s->last);
  vs_err ignore;
  int rc;
  if (s->push) {
    Vessel__V1__ImagesPushResponse r;
    vessel__v1__images_push_response__init(&r);
    r.kind_case = VESSEL__V1__IMAGES_PUSH_RESPONSE__KIND_PROGRESS;
    r.progress = progress_msg(p);
    rc = vrpc_send(s->call, &r.base, &ignore);
    protobuf_c_message_free_unpacked(&r.progress->base, NULL);
  } else {
    Vessel__V1__ImagesPullResponse r;
    vessel__v1__images_pull_response__init(&r);
    r.kind_case = VESSEL__V1__IMAGES_PULL_RESPONSE__KIND_PROGRESS;
    r.progress = progress_msg(p);
    rc = vrpc_send(s->call, &r.base, &ignore);
    protobuf_c_message_free_unpacked(&r.progress->base, NULL);
  }
  if (rc < 0) s->cancelled = 1;
}

/* The client went away or cancelled, its deadline passed, or vesseld is
 * shutting down (which cancels every call). */
static int call_cancelled(void *arg) {
  stream *s = arg;
  return s->cancelled || vrpc_cancelled(s->call);
}

/* ---- handlers ---- */

static int pull(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesPullRequest, req);
  stream st = {call, 0, {0, 0}, 0, 0};
  img_pull_opts o;
  memset(&o, 0, sizeof o);
  platform_from(req->platform, &o.platform);
  o.insecure = req->insecure;
  if (req->auth && *req->auth->username) {
    o.username = req->auth->username;
    o.password = req->auth->password;
  }
  o.max_concurrent = req->max_concurrent_downloads;
  o.progress = on_progress;
  o.progress_arg = &st;
  o.cancelled = call_cancelled;
  o.cancel_arg = &st;
  o.min_speed = d->cfg.pull_min_speed;
  o.min_speed_secs = d->cfg.pull_min_speed_secs;
  img_info info;
  int rc = img_pull(d->images, req->reference, &o, &info, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ImagesPullResponse r;
  vessel__v1__images_pull_response__init(&r);
  r.kind_case = VESSEL__V1__IMAGES_PULL_RESPONSE__KIND_IMAGE;
  r.image = image_msg(&info);
  vd_emit(d, EVB_IMAGE_PULLED, info.name, "digest", info.target.digest);
  img_info_free(&info);
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.image->base, NULL);
  return rc;
}

static int push(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesPushRequest, req);
  stream st = {call, 1, {0, 0}, 0, 0};
  img_push_opts o;
  memset(&o, 0, sizeof o);
  o.destination = req->destination;
  o.insecure = req->insecure;
  if (req->auth && *req->auth->username) {
    o.username = req->auth->username;
    o.password = req->auth->password;
  }
  o.progress = on_progress;
  o.progress_arg = &st;
  o.cancelled = call_cancelled;
  o.cancel_arg = &st;
  oci_descriptor pushed;
  char req_ref[600], req_dest[600];
  snprintf(req_ref, sizeof req_ref, "%s", req->reference);
  snprintf(req_dest, sizeof req_dest, "%s", req->destination);
  int rc = req->platform ? vs_err_set(err, VS_UNIMPLEMENTED, "pushing a single platform is not supported yet")
                         : img_push(d->images, req->reference, &o, &pushed, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ImagesPushResponse r;
  vessel__v1__images_push_response__init(&r);
  r.kind_case = VESSEL__V1__IMAGES_PUSH_RESPONSE__KIND_PUSHED;
  r.pushed = desc_msg(&pushed);
  vd_emit(d, EVB_IMAGE_PUSHED, *req_dest ? req_dest : req_ref, "digest", pushed.digest);
  oci_descriptor_free(&pushed);
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.pushed->base, NULL);
  return rc;
}

/* Filters: reference=<glob>, label=<k>[=<v>], dangling=true|false. Same key
 * ORs, different keys AND. */
static int filter_ok(const img_info *i, char **filters, size_t n, vs_err *err) {
  static const char *const keys[] = {"reference", "label", "dangling"};
  for (size_t k = 0; k < 3; k++) {
    int seen = 0, any = 0;
    for (size_t f = 0; f < n; f++) {
      size_t kl = strlen(keys[k]);
      if (strncmp(filters[f], keys[k], kl) != 0 || filters[f][kl] != '=') continue;
      seen = 1;
      const char *v = filters[f] + kl + 1;
      if (k == 0) {
        any |= fnmatch(v, i->name, 0) == 0;
      } else if (k == 1) {
        const char *eq = strchr(v, '=');
        size_t vk = eq ? (size_t)(eq - v) : strlen(v);
        for (size_t l = 0; l < i->config.n_labels; l++)
          if (strlen(i->config.labels[2 * l]) == vk && !strncmp(i->config.labels[2 * l], v, vk) &&
              (!eq || !strcmp(i->config.labels[2 * l + 1], eq + 1)))
            any = 1;
      } else {
        int dangling = !strncmp(i->name, "<none>", 6);
        any |= (!strcmp(v, "true") && dangling) || (!strcmp(v, "false") && !dangling);
      }
    }
    if (seen && !any) return 0;
  }
  return 1;
}

static int filters_valid(char **filters, size_t n, vs_err *err) {
  for (size_t f = 0; f < n; f++)
    if (strncmp(filters[f], "reference=", 10) && strncmp(filters[f], "label=", 6) &&
        strncmp(filters[f], "dangling=", 9))
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "unknown filter \"%s\" (use reference=, label= or dangling=)", filters[f]);
  return 0;
}

static int list(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesListRequest, req);
  img_info *all = NULL;
  size_t n = 0;
  int rc = filters_valid(req->filters, req->n_filters, err);
  if (rc == 0) rc = img_list(d->images, &all, &n, err);
  Vessel__V1__ImagesListResponse r;
  vessel__v1__images_list_response__init(&r);
  if (rc == 0 && n) r.images = calloc(n, sizeof *r.images);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int ok = filter_ok(&all[i], req->filters, req->n_filters, err);
    if (ok < 0) rc = -1;
    else if (ok) r.images[r.n_images++] = image_msg(&all[i]);
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; i < r.n_images; i++) protobuf_c_message_free_unpacked(&r.images[i]->base, NULL);
  free(r.images);
  img_list_free(all, n);
  vrpc_msg_free(req_msg);
  return rc;
}

static int inspect(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesInspectRequest, req);
  oci_platform p;
  platform_from(req->platform, &p);
  img_info info;
  int rc = img_inspect(d->images, req->reference, &p, &info, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ImagesInspectResponse r;
  vessel__v1__images_inspect_response__init(&r);
  r.image = image_msg(&info);
  img_info_free(&info);
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.image->base, NULL);
  return rc;
}

static int tag(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesTagRequest, req);
  img_info info;
  int rc = img_tag(d->images, req->source, req->target, &info, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ImagesTagResponse r;
  vessel__v1__images_tag_response__init(&r);
  r.image = image_msg(&info);
  vd_emit(d, EVB_IMAGE_TAGGED, info.name, "digest", info.target.digest);
  img_info_free(&info);
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.image->base, NULL);
  return rc;
}

static int del(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesDeleteRequest, req);
  char **untagged, **deleted;
  size_t nu, nd;
  int rc = img_delete(d->images, req->reference, &untagged, &nu, &deleted, &nd, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  for (size_t i = 0; i < nu; i++) vd_emit(d, EVB_IMAGE_DELETED, untagged[i], NULL, NULL);
  Vessel__V1__ImagesDeleteResponse r;
  vessel__v1__images_delete_response__init(&r);
  r.untagged = untagged;
  r.n_untagged = nu;
  r.deleted = deleted;
  r.n_deleted = nd;
  rc = vrpc_send(call, &r.base, err);
  img_strv_free(untagged, nu);
  img_strv_free(deleted, nd);
  return rc;
}

static int prune(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesPruneRequest, req);
  char **untagged, **deleted;
  size_t nu, nd;
  int64_t reclaimed = 0;
  int rc = req->n_filters
               ? vs_err_set(err, VS_UNIMPLEMENTED, "prune filters are not supported yet")
               : img_prune(d->images, req->all, &untagged, &nu, &deleted, &nd, &reclaimed, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  for (size_t i = 0; i < nu; i++) vd_emit(d, EVB_IMAGE_DELETED, untagged[i], NULL, NULL);
  Vessel__V1__ImagesPruneResponse r;
  vessel__v1__images_prune_response__init(&r);
  r.untagged = untagged;
  r.n_untagged = nu;
  r.deleted = deleted;
  r.n_deleted = nd;
  r.bytes_reclaimed = reclaimed;
  rc = vrpc_send(call, &r.base, err);
  img_strv_free(untagged, nu);
  img_strv_free(deleted, nd);
  return rc;
}

static int login(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesLoginRequest, req);
  const char *server = *req->server ? req->server : "docker.io";
  int rc = !*req->username ? vs_err_set(err, VS_INVALID_ARGUMENT, "login needs a username")
                           : img_login(d->images, server, req->username, req->password,
                                       req->insecure, err);
  Vessel__V1__ImagesLoginResponse r;
  vessel__v1__images_login_response__init(&r);
  r.server = (char *)server;
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  vrpc_msg_free(req_msg);
  return rc;
}

static int logout(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesLogoutRequest, req);
  int rc = img_logout(d->images, *req->server ? req->server : "docker.io", err);
  vrpc_msg_free(req_msg);
  Vessel__V1__ImagesLogoutResponse r;
  vessel__v1__images_logout_response__init(&r);
  return rc < 0 ? -1 : vrpc_send(call, &r.base, err);
}

/* Export streams the tar in chunks of up to 1 MiB. */
typedef struct chunker {
  vrpc_call *call;
  uint8_t buf[1 << 20];
  size_t len;
} chunker;

static int flush_chunk(chunker *c, vs_err *err) {
  if (!c->len) return 0;
  Vessel__V1__ImagesExportResponse r;
  vessel__v1__images_export_response__init(&r);
  r.data.data = c->buf;
  r.data.len = c->len;
  c->len = 0;
  return vrpc_send(c->call, &r.base, err);
}

static int chunk_write(void *arg, const void *data, size_t len, vs_err *err) {
  chunker *c = arg;
  while (len) {
    size_t k = sizeof c->buf - c->len < len ? sizeof c->buf - c->len : len;
    memcpy(c->buf + c->len, data, k);
    c->len += k;
    data = (const char *)data + k;
    len -= k;
    if (c->len == sizeof c->buf && flush_chunk(c, err) < 0) return -1;
  }
  return 0;
}

static int export(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesExportRequest, req);
  int rc;
  if (req->format != VESSEL__V1__ARCHIVE_FORMAT__ARCHIVE_FORMAT_OCI)
    rc = vs_err_set(err, req->format ? VS_UNIMPLEMENTED : VS_INVALID_ARGUMENT,
                    req->format ? "only ARCHIVE_FORMAT_OCI can be exported"
                                : "export needs a format (ARCHIVE_FORMAT_OCI)");
  else if (req->platform)
    rc = vs_err_set(err, VS_UNIMPLEMENTED, "exporting a single platform is not supported yet");
  else {
    chunker *c = malloc(sizeof *c);
    c->call = call;
    c->len = 0;
    rc = img_export(d->images, req->references, req->n_references, chunk_write, c, err);
    if (rc == 0) rc = flush_chunk(c, err);
    free(c);
  }
  vrpc_msg_free(req_msg);
  return rc;
}

/* Import spools the client's stream to a file under the root (never /tmp:
 * it may be large and must not leave the state directory), then loads it. */
static int import(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesImportRequest, first);
  if (first->kind_case != VESSEL__V1__IMAGES_IMPORT_REQUEST__KIND_HEADER) {
    vrpc_msg_free(first_msg);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "the first Import message must be a header");
  }
  Vessel__V1__ImagesImportHeader *h = first->header;
  if (h->platform) {
    vrpc_msg_free(first_msg);
    return vs_err_set(err, VS_UNIMPLEMENTED,
                      "ImagesImportHeader.platform (keeping one platform) is not supported yet");
  }
  int format = (int)h->format;
  if (format > VESSEL__V1__ARCHIVE_FORMAT__ARCHIVE_FORMAT_DOCKER || format < 0) {
    vrpc_msg_free(first_msg);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "unknown archive format %d", format);
  }
  char dir[4200], path[4300];
  snprintf(dir, sizeof dir, "%s/tmp", d->cfg.root);
  mkdir(dir, 0700);
  snprintf(path, sizeof path, "%s/import-XXXXXX", dir);
  int fd = mkostemp(path, O_CLOEXEC);
  int rc = fd < 0 ? vs_err_errno(err, VS_INTERNAL, errno, "create %s", path) : 0;
  while (rc == 0) {
    ProtobufCMessage *m;
    int r = vrpc_recv(call, &m, err);
    if (r <= 0) {
      rc = r;
      break;
    }
    Vessel__V1__ImagesImportRequest *q = (Vessel__V1__ImagesImportRequest *)m;
    if (q->kind_case != VESSEL__V1__IMAGES_IMPORT_REQUEST__KIND_DATA)
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "only data may follow the Import header");
    else if (write(fd, q->data.data, q->data.len) != (ssize_t)q->data.len)
      rc = vs_err_errno(err, errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL, errno,
                        "spool import");
    vrpc_msg_free(m);
  }
  if (fd >= 0) close(fd);
  img_info *infos = NULL;
  size_t n = 0;
  if (rc == 0) rc = img_import(d->images, path, (img_archive_format)h->format, h->reference, &infos,
                              &n, err);
  unlink(path);
  vrpc_msg_free(first_msg);
  if (rc < 0) return -1;
  Vessel__V1__ImagesImportResponse r;
  vessel__v1__images_import_response__init(&r);
  r.images = calloc(n ? n : 1, sizeof *r.images);
  for (size_t i = 0; r.images && i < n; i++) {
    r.images[r.n_images++] = image_msg(&infos[i]);
    vd_emit(d, EVB_IMAGE_IMPORTED, infos[i].name, "digest", infos[i].target.digest);
  }
  rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; i < r.n_images; i++) protobuf_c_message_free_unpacked(&r.images[i]->base, NULL);
  free(r.images);
  img_list_free(infos, n);
  return rc;
}

static int create_rootfs(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ImagesCreateRootfsRequest, req);
  oci_platform p;
  platform_from(req->platform, &p);
  char path[4200], key[72];
  int cached = 0, rc = 0;
  const char *out = req->output_path;
  if (req->size_bytes < 0 || req->free_bytes < 0)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "sizes must not be negative");
  else if (*out && out[0] != '/')
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "output_path %s must be absolute", out);
  else if (*out && access(out, F_OK) == 0)
    rc = vs_err_set(err, VS_ALREADY_EXISTS, "output_path %s exists", out);
  if (rc == 0)
    rc = img_rootfs(d->images, req->reference, &p, (uint64_t)req->size_bytes,
                    req->free_bytes ? (uint64_t)req->free_bytes : (1ull << 30), path, sizeof path,
                    key, &cached, err);
  if (rc == 0 && *out) rc = rfs_copy_writable(path, out, err);
  Vessel__V1__ImagesCreateRootfsResponse r;
  vessel__v1__images_create_rootfs_response__init(&r);
  struct stat st;
  if (rc == 0) {
    r.path = *out ? (char *)out : path;
    r.size_bytes = stat(r.path, &st) == 0 ? st.st_size : 0;
    r.cache_key = key;
    r.cached = cached;
    rc = vrpc_send(call, &r.base, err);
  }
  vrpc_msg_free(req_msg);
  return rc;
}

int vd_images_register(vrpc_server *srv, vd_daemon *d, vs_err *err) {
  vessel_v1_Images_handlers h;
  memset(&h, 0, sizeof h);
  h.CreateRootfs = create_rootfs;
  h.Import = import;
  h.Export = export;
  h.Pull = pull;
  h.Push = push;
  h.List = list;
  h.Inspect = inspect;
  h.Tag = tag;
  h.Delete = del;
  h.Prune = prune;
  h.Login = login;
  h.Logout = logout;
  return vessel_v1_Images_register(srv, &h, d, err);
}
