/* runtime.v1 (Kubernetes' Container Runtime Interface) on vesseld's own
 * server for it (--cri-listen): a thin adapter over the same libraries as
 * the vessel.v1 services. Served so far: Version, Status, RuntimeConfig,
 * UpdateRuntimeConfig, and the ImageService (List, Status, Pull, Remove,
 * ImageFsInfo) over the image store; sandboxes and containers are vessel
 * pods and their containers (cri_pods.c). What is not served answers
 * UNIMPLEMENTED. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cri_proto_rpc.h"
#include "runtime/v1/api.pb-c.h"
#include "server/daemon/daemon.h"

#define CRI_API_VERSION "v1"

int vd_send_empty(vrpc_call *call, const ProtobufCMessageDescriptor *desc, vs_err *err) {
  ProtobufCMessage m; /* an empty message's struct is its base alone */
  protobuf_c_message_init(desc, &m);
  return vrpc_send(call, &m, err);
}

int vd_recv_unused(vrpc_call *call, vs_err *err) {
  ProtobufCMessage *m;
  if (vrpc_recv(call, &m, err) != 1) return -1;
  vrpc_msg_free(m);
  return 0;
}

static int version(vrpc_call *call, void *ctx, vs_err *err) {
  (void)ctx;
  if (vd_recv_unused(call, err) < 0) return -1;
  Runtime__V1__VersionResponse r = RUNTIME__V1__VERSION_RESPONSE__INIT;
  r.version = (char *)"0.1.0"; /* the kubelet API version CRI tools expect */
  r.runtime_name = (char *)"vessel";
  r.runtime_version = (char *)VESSEL_VERSION;
  r.runtime_api_version = (char *)CRI_API_VERSION;
  return vrpc_send(call, &r.base, err);
}

static int status(vrpc_call *call, void *ctx, vs_err *err) {
  (void)ctx;
  if (vd_recv_unused(call, err) < 0) return -1;
  /* The runtime serves once vesseld does; networking is its own (bridges
   * with IPAM), ready from the start. */
  Runtime__V1__RuntimeCondition rt = RUNTIME__V1__RUNTIME_CONDITION__INIT, net = rt;
  rt.type = (char *)"RuntimeReady";
  rt.status = 1;
  net.type = (char *)"NetworkReady";
  net.status = 1;
  Runtime__V1__RuntimeCondition *conds[2] = {&rt, &net};
  Runtime__V1__RuntimeStatus st = RUNTIME__V1__RUNTIME_STATUS__INIT;
  st.conditions = conds;
  st.n_conditions = 2;
  Runtime__V1__StatusResponse r = RUNTIME__V1__STATUS_RESPONSE__INIT;
  r.status = &st;
  return vrpc_send(call, &r.base, err);
}

static int runtime_config(vrpc_call *call, void *ctx, vs_err *err) {
  (void)ctx;
  if (vd_recv_unused(call, err) < 0) return -1;
  Runtime__V1__LinuxRuntimeConfiguration lx = RUNTIME__V1__LINUX_RUNTIME_CONFIGURATION__INIT;
  lx.cgroup_driver = RUNTIME__V1__CGROUP_DRIVER__CGROUPFS; /* inside each VM */
  Runtime__V1__RuntimeConfigResponse r = RUNTIME__V1__RUNTIME_CONFIG_RESPONSE__INIT;
  r.linux = &lx;
  return vrpc_send(call, &r.base, err);
}

static int update_runtime_config(vrpc_call *call, void *ctx, vs_err *err) {
  (void)ctx;
  /* The pod CIDR kubelet passes is not used: vessel's networks allocate. */
  if (vd_recv_unused(call, err) < 0) return -1;
  return vd_send_empty(call, &runtime__v1__update_runtime_config_response__descriptor, err);
}

/* ---- images ---- */

/* "docker.io/library/busybox" of "docker.io/library/busybox:1.36". */
static void repo_of(const char *name, char *out, size_t n) {
  snprintf(out, n, "%s", name);
  char *slash = strrchr(out, '/'), *colon = strrchr(out, ':');
  if (colon && (!slash || colon > slash)) *colon = '\0';
}

/* One CRI image of every local name with the same target: its tags and
 * repo digests. list[i] is the first; the others follow in list. */
static Runtime__V1__Image *image_msg(const img_info *list, size_t n, size_t first) {
  const img_info *im = &list[first];
  Runtime__V1__Image *m = malloc(sizeof *m);
  runtime__v1__image__init(m);
  m->id = strdup(im->target.digest);
  m->repo_tags = calloc(n, sizeof *m->repo_tags);
  m->repo_digests = calloc(n, sizeof *m->repo_digests);
  for (size_t i = first; i < n; i++) {
    if (strcmp(list[i].target.digest, im->target.digest) != 0) continue;
    char repo[600], dig[800];
    repo_of(list[i].name, repo, sizeof repo);
    snprintf(dig, sizeof dig, "%s@%s", repo, im->target.digest);
    if (strcmp(repo, list[i].name) != 0) /* a tag, not only a digest */
      m->repo_tags[m->n_repo_tags++] = strdup(list[i].name);
    int dup = 0;
    for (size_t k = 0; k < m->n_repo_digests && !dup; k++) dup = !strcmp(m->repo_digests[k], dig);
    if (!dup) m->repo_digests[m->n_repo_digests++] = strdup(dig);
  }
  m->size = im->size > 0 ? (uint64_t)im->size : 0;
  const char *user = im->config.user ? im->config.user : "";
  char *end;
  long uid = strtol(user, &end, 10);
  if (*user && (*end == '\0' || *end == ':')) {
    m->uid = malloc(sizeof *m->uid);
    runtime__v1__int64_value__init(m->uid);
    m->uid->value = uid;
    m->username = strdup("");
  } else {
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(user, ":"), user);
    m->username = strdup(name);
  }
  m->spec = malloc(sizeof *m->spec);
  runtime__v1__image_spec__init(m->spec);
  m->spec->image = strdup(im->target.digest);
  return m;
}

/* The image an ImageSpec names (a reference, normalised as containerd's:
 * busybox = docker.io/library/busybox:latest, or an ID); 0 if none. */
int vd_cri_find_image(vd_daemon *d, const Runtime__V1__ImageSpec *spec, img_info *out, vs_err *err) {
  if (!spec || !*spec->image)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "ImageSpec.image is empty");
  vs_err e;
  oci_platform host;
  memset(&host, 0, sizeof host);
  if (img_inspect(d->images, spec->image, &host, out, &e) == 0) return 1;
  if (e.code == VS_NOT_FOUND) return 0;
  *err = e;
  return -1;
}

/* Every local name of target digest, as a list for image_msg. */
static Runtime__V1__Image *image_of(vd_daemon *d, const char *digest, vs_err *err) {
  img_info *all;
  size_t n;
  if (img_list(d->images, &all, &n, err) < 0) return NULL;
  Runtime__V1__Image *m = NULL;
  for (size_t i = 0; i < n && !m; i++)
    if (!strcmp(all[i].target.digest, digest)) m = image_msg(all, n, i);
  img_list_free(all, n);
  if (!m) vs_err_set(err, VS_NOT_FOUND, "image %s went away", digest);
  return m;
}

static int list_images(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ListImagesRequest, req);
  img_info *all = NULL;
  size_t n = 0;
  img_info want;
  int only = 0, rc = 0;
  if (req->filter && req->filter->image && *req->filter->image->image) {
    only = vd_cri_find_image(d, req->filter->image, &want, err);
    if (only < 0) rc = -1;
  }
  if (rc == 0) rc = img_list(d->images, &all, &n, err);
  Runtime__V1__ListImagesResponse r = RUNTIME__V1__LIST_IMAGES_RESPONSE__INIT;
  r.images = calloc(n ? n : 1, sizeof *r.images);
  for (size_t i = 0; rc == 0 && r.images && i < n; i++) {
    int seen = 0; /* one entry per image, its names together */
    for (size_t k = 0; k < i && !seen; k++) seen = !strcmp(all[k].target.digest, all[i].target.digest);
    int match = !req->filter || !req->filter->image || !*req->filter->image->image ||
                (only && !strcmp(all[i].target.digest, want.target.digest));
    if (!seen && match) r.images[r.n_images++] = image_msg(all, n, i);
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; i < r.n_images; i++) protobuf_c_message_free_unpacked(&r.images[i]->base, NULL);
  free(r.images);
  img_list_free(all, n);
  if (only > 0) img_info_free(&want);
  vrpc_msg_free(req_msg);
  return rc;
}

static int image_status(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ImageStatusRequest, req);
  img_info info;
  int found = vd_cri_find_image(d, req->image, &info, err), rc = found < 0 ? -1 : 0;
  Runtime__V1__ImageStatusResponse r = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INIT;
  Runtime__V1__ImageStatusResponse__InfoEntry e = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INFO_ENTRY__INIT,
                                              *ep = &e;
  char json[1024];
  if (found > 0) { /* absent: no image, and no error (CRI's rule) */
    r.image = image_of(d, info.target.digest, err);
    if (!r.image) rc = -1;
    if (req->verbose) {
      snprintf(json, sizeof json,
               "{\"name\":\"%s\",\"manifest\":\"%s\",\"platform\":\"%s/%s\",\"layers\":%zu}",
               info.name, info.manifest.digest, info.platform.os, info.platform.arch,
               info.n_layers);
      e.key = (char *)"info";
      e.value = json;
      r.info = &ep;
      r.n_info = 1;
    }
    img_info_free(&info);
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  if (r.image) protobuf_c_message_free_unpacked(&r.image->base, NULL);
  vrpc_msg_free(req_msg);
  return rc;
}

static int pull_image(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__PullImageRequest, req);
  img_pull_opts o;
  memset(&o, 0, sizeof o);
  if (req->auth && *req->auth->username) {
    o.username = req->auth->username;
    o.password = req->auth->password;
  }
  o.min_speed = d->cfg.pull_min_speed;
  o.min_speed_secs = d->cfg.pull_min_speed_secs;
  img_info info;
  int rc = !req->image || !*req->image->image
               ? vs_err_set(err, VS_INVALID_ARGUMENT, "PullImageRequest.image is empty")
               : img_pull(d->images, req->image->image, &o, &info, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Runtime__V1__PullImageResponse r = RUNTIME__V1__PULL_IMAGE_RESPONSE__INIT;
  r.image_ref = info.target.digest;
  rc = vrpc_send(call, &r.base, err);
  img_info_free(&info);
  return rc;
}

static void free_strs(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static int remove_image(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__RemoveImageRequest, req);
  img_info info;
  int found = vd_cri_find_image(d, req->image, &info, err), rc = found < 0 ? -1 : 0;
  /* By ID or name, the whole image goes (every name: CRI removes images,
   * not tags); absent is no error. */
  if (found > 0) {
    char **untagged = NULL, **deleted = NULL;
    size_t nu = 0, nd = 0;
    vs_err e;
    rc = img_delete(d->images, info.target.digest, &untagged, &nu, &deleted, &nd, &e);
    if (rc < 0 && e.code == VS_NOT_FOUND) rc = 0; /* removed meanwhile by another call */
    else if (rc < 0) *err = e;
    free_strs(untagged, nu);
    free_strs(deleted, nd);
    img_info_free(&info);
  }
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Runtime__V1__RemoveImageResponse r = RUNTIME__V1__REMOVE_IMAGE_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

/* Bytes and inodes under path. */
static void usage(const char *path, uint64_t *bytes, uint64_t *inodes) {
  struct stat st;
  if (lstat(path, &st) < 0) return;
  *bytes += (uint64_t)st.st_blocks * 512;
  (*inodes)++;
  if (!S_ISDIR(st.st_mode)) return;
  DIR *dir = opendir(path);
  for (struct dirent *e; dir && (e = readdir(dir));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char sub[4096];
    if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub) usage(sub, bytes, inodes);
  }
  if (dir) closedir(dir);
}

static int image_fs_info(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  if (vd_recv_unused(call, err) < 0) return -1;
  char content[4200], rootfs[4200];
  snprintf(content, sizeof content, "%s/content", d->cfg.root);
  snprintf(rootfs, sizeof rootfs, "%s/rootfs", d->cfg.root);
  uint64_t bytes = 0, inodes = 0; /* the blobs and the images' ext4 cache */
  usage(content, &bytes, &inodes);
  usage(rootfs, &bytes, &inodes);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  Runtime__V1__FilesystemIdentifier id = RUNTIME__V1__FILESYSTEM_IDENTIFIER__INIT;
  id.mountpoint = content;
  Runtime__V1__UInt64Value used = RUNTIME__V1__UINT64_VALUE__INIT, ino = used;
  used.value = bytes;
  ino.value = inodes;
  Runtime__V1__FilesystemUsage fu = RUNTIME__V1__FILESYSTEM_USAGE__INIT, *fup = &fu;
  fu.timestamp = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  fu.fs_id = &id;
  fu.used_bytes = &used;
  fu.inodes_used = &ino;
  Runtime__V1__ImageFsInfoResponse r = RUNTIME__V1__IMAGE_FS_INFO_RESPONSE__INIT;
  r.image_filesystems = &fup;
  r.n_image_filesystems = 1;
  return vrpc_send(call, &r.base, err);
}

int vd_cri_register(vrpc_server *srv, vd_daemon *d, vs_err *err) {
  runtime_v1_RuntimeService_handlers rs = {.Version = version,
                                           .Status = status,
                                           .RuntimeConfig = runtime_config,
                                           .UpdateRuntimeConfig = update_runtime_config};
  vd_cri_pod_handlers(&rs);
  vd_cri_stream_handlers(&rs);
  const runtime_v1_ImageService_handlers is = {.ListImages = list_images,
                                               .ImageStatus = image_status,
                                               .PullImage = pull_image,
                                               .RemoveImage = remove_image,
                                               .ImageFsInfo = image_fs_info};
  return runtime_v1_RuntimeService_register(srv, &rs, d, err) < 0 ||
                 runtime_v1_ImageService_register(srv, &is, d, err) < 0
             ? -1
             : 0;
}
