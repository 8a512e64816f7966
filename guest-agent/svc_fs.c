/* Agent handlers: Mount, Umount, Mkdir, WriteFile, Stat, CopyIn (files). */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-agent/fs.h"
#include "guest-agent/service.h"
#include "guest-agent/tar.h"

/* Resolves a request path in the guest or inside a container's root, where
 * symlinks are followed with the container root as "/" (follow_last: also
 * a symlink in the last component). */
static int resolve_ex(agent *a, const char *cid, const char *path, int follow_last, char *out,
                      size_t n, vs_err *err) {
  if (!cid || !*cid) return fs_join("/", path, out, n, err);
  pthread_mutex_lock(&a->mu);
  ag_container *c = ag_find_container(a, cid);
  char root[300];
  if (c && !c->creating) snprintf(root, sizeof root, "%s", c->rootfs);
  pthread_mutex_unlock(&a->mu);
  if (!c) return vs_err_set(err, VS_NOT_FOUND, "no container %s", cid);
  return fs_secure_join(root, path, follow_last, out, n, err);
}

static int resolve(agent *a, const char *cid, const char *path, char *out, size_t n, vs_err *err) {
  return resolve_ex(a, cid, path, 1, out, n, err);
}

static int mount_(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentMountRequest, req, err);
  int rc;
  Vessel__V1__Mount *m = req->mount;
  if (!m || m->destination[0] != '/')
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "mount destination must be absolute");
  else if (!req->mkdir && access(m->destination, F_OK) < 0)
    rc = vs_err_set(err, VS_NOT_FOUND, "mount point %s does not exist", m->destination);
  else
    rc = fs_mount_spec(m->type, m->source, m->destination, (const char *const *)m->options,
                       m->n_options, req->mkdir, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentMountResponse r = VESSEL__V1__AGENT_MOUNT_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int umount_(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentUmountRequest, req, err);
  int rc = 0;
  if (umount2(req->path, (int)req->flags) < 0) {
    int e = errno;
    rc = vs_err_errno(err, e == EINVAL || e == ENOENT ? VS_NOT_FOUND
                           : e == EBUSY              ? VS_FAILED_PRECONDITION
                                                     : VS_INTERNAL,
                      e, "umount %s", req->path);
  }
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentUmountResponse r = VESSEL__V1__AGENT_UMOUNT_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int mkdir_(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentMkdirRequest, req, err);
  char path[4096];
  mode_t mode = req->mode ? (req->mode & 07777) : 0755;
  int rc = resolve(ctx, req->container_id, req->path, path, sizeof path, err);
  if (rc == 0) {
    struct stat st;
    int existed = stat(path, &st) == 0;
    if (existed && !S_ISDIR(st.st_mode)) {
      rc = vs_err_set(err, VS_ALREADY_EXISTS, "%s exists and is not a directory", req->path);
    } else if (!existed) {
      if (req->all) rc = fs_mkdir_all(path, mode, err);
      else if (mkdir(path, mode) < 0)
        rc = vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "mkdir %s",
                          req->path);
      if (rc == 0 && (req->uid || req->gid) && chown(path, req->uid, req->gid) < 0)
        rc = vs_err_errno(err, VS_INTERNAL, errno, "chown %s", req->path);
    }
  }
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentMkdirResponse r = VESSEL__V1__AGENT_MKDIR_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int parent_dirs(const char *path, vs_err *err) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = '\0';
  return fs_mkdir_all(dir, 0755, err);
}

static int write_file(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentWriteFileRequest, req, err);
  char path[4096];
  int rc = resolve(ctx, req->container_id, req->path, path, sizeof path, err);
  if (rc == 0 && req->create_parents) rc = parent_dirs(path, err);
  if (rc == 0) {
    int existed = access(path, F_OK) == 0;
    rc = fs_write_file(path, req->data.data, req->data.len, req->mode ? req->mode & 07777 : 0644,
                       req->append, err);
    if (rc == 0 && !existed && (req->uid || req->gid) && chown(path, req->uid, req->gid) < 0)
      rc = vs_err_errno(err, VS_INTERNAL, errno, "chown %s", req->path);
  }
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentWriteFileResponse r = VESSEL__V1__AGENT_WRITE_FILE_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int file_type(mode_t m) {
  if (S_ISREG(m)) return VESSEL__V1__FILE_TYPE__FILE_TYPE_REGULAR;
  if (S_ISDIR(m)) return VESSEL__V1__FILE_TYPE__FILE_TYPE_DIRECTORY;
  if (S_ISLNK(m)) return VESSEL__V1__FILE_TYPE__FILE_TYPE_SYMLINK;
  if (S_ISCHR(m)) return VESSEL__V1__FILE_TYPE__FILE_TYPE_CHAR_DEVICE;
  if (S_ISBLK(m)) return VESSEL__V1__FILE_TYPE__FILE_TYPE_BLOCK_DEVICE;
  if (S_ISFIFO(m)) return VESSEL__V1__FILE_TYPE__FILE_TYPE_FIFO;
  if (S_ISSOCK(m)) return VESSEL__V1__FILE_TYPE__FILE_TYPE_SOCKET;
  return VESSEL__V1__FILE_TYPE__FILE_TYPE_UNSPECIFIED;
}

/* A FileInfo with the storage it points into. */
typedef struct {
  Vessel__V1__FileInfo fi;
  Google__Protobuf__Timestamp mt;
  char target[4096];
} file_info;

/* Describe `path` (named `shown` to the caller) without following a final
 * symlink unless `follow`. */
static int file_info_of(const char *path, const char *shown, int follow, file_info *f,
                        vs_err *err) {
  struct stat st;
  if ((follow ? stat(path, &st) : lstat(path, &st)) < 0)
    return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "stat %s",
                        shown);
  f->target[0] = '\0';
  if (S_ISLNK(st.st_mode)) {
    ssize_t n = readlink(path, f->target, sizeof f->target - 1);
    f->target[n > 0 ? n : 0] = '\0';
  }
  google__protobuf__timestamp__init(&f->mt);
  f->mt.seconds = st.st_mtim.tv_sec;
  f->mt.nanos = (int32_t)st.st_mtim.tv_nsec;
  vessel__v1__file_info__init(&f->fi);
  f->fi.path = (char *)shown;
  f->fi.mode = st.st_mode & 07777;
  f->fi.size = st.st_size;
  f->fi.uid = st.st_uid;
  f->fi.gid = st.st_gid;
  f->fi.mtime = &f->mt;
  f->fi.type = file_type(st.st_mode);
  f->fi.link_target = f->target;
  return 0;
}

static int stat_(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentStatRequest, req, err);
  char path[4096];
  file_info f;
  int rc = resolve_ex(ctx, req->container_id, req->path, req->follow_symlinks, path, sizeof path, err);
  if (rc == 0) rc = file_info_of(path, req->path, req->follow_symlinks, &f, err);
  if (rc == 0) {
    Vessel__V1__AgentStatResponse r = VESSEL__V1__AGENT_STAT_RESPONSE__INIT;
    r.info = &f.fi;
    rc = vrpc_send(call, &r.base, err);
  }
  vrpc_msg_free(req_msg);
  return rc;
}

typedef struct extract_job {
  int fd;
  char dest[4096];
  tar_extract_opts opts;
  vs_err err;
  int rc;
} extract_job;

static void *extract_main(void *arg) {
  extract_job *j = arg;
  j->rc = tar_extract_fd(j->fd, j->dest, &j->opts, &j->err);
  /* Drain what the handler still writes, so it never blocks on a pipe
   * nobody reads after an early error. */
  char buf[65536];
  while (read(j->fd, buf, sizeof buf) > 0) {
  }
  return NULL;
}

/* CopyIn: one file (archive=false) or a tar stream extracted into a
 * directory by a thread reading a pipe the stream is fed into. */
static int copy_in(vrpc_call *call, void *ctx, vs_err *err) {
  ProtobufCMessage *m;
  int r = vrpc_recv(call, &m, err);
  if (r <= 0) return r < 0 ? -1 : vs_err_set(err, VS_INVALID_ARGUMENT, "CopyIn: no header");
  Vessel__V1__AgentCopyInRequest *req = (Vessel__V1__AgentCopyInRequest *)m;
  if (req->kind_case != VESSEL__V1__AGENT_COPY_IN_REQUEST__KIND_HEADER || !req->header) {
    vrpc_msg_free(m);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "CopyIn: the first message must be a header");
  }
  Vessel__V1__AgentCopyInHeader *h = req->header;
  char path[4096];
  int rc = 0, fd = -1, archive = h->archive;
  extract_job *job = NULL;
  pthread_t th;
  int have_thread = 0;
  rc = resolve(ctx, h->container_id, h->path, path, sizeof path, err);
  if (rc == 0 && h->create_parents) rc = archive ? fs_mkdir_all(path, 0755, err) : parent_dirs(path, err);
  if (rc == 0 && archive) {
    struct stat st;
    int p[2];
    if (stat(path, &st) < 0) {
      rc = vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "CopyIn: %s",
                        h->path);
    } else if (!S_ISDIR(st.st_mode)) {
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "CopyIn: %s is not a directory", h->path);
    } else if (!(job = calloc(1, sizeof *job)) || pipe2(p, O_CLOEXEC) < 0) {
      rc = vs_err_errno(err, VS_INTERNAL, errno, "pipe");
    } else {
      fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
      job->fd = p[0];
      fd = p[1];
      snprintf(job->dest, sizeof job->dest, "%s", path);
      job->opts.chown = h->chown;
      job->opts.uid = h->uid;
      job->opts.gid = h->gid;
      if (pthread_create(&th, NULL, extract_main, job) != 0) {
        rc = vs_err_set(err, VS_INTERNAL, "cannot start extractor");
        close(p[0]);
        job->fd = -1;
      } else {
        have_thread = 1;
      }
    }
  } else if (rc == 0) {
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, h->mode ? h->mode & 07777 : 0644);
    if (fd < 0)
      rc = vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno, "open %s",
                        h->path);
    else if ((h->uid || h->gid) && fchown(fd, h->uid, h->gid) < 0)
      rc = vs_err_errno(err, VS_INTERNAL, errno, "chown %s", h->path);
  }
  vrpc_msg_free(m);
  int64_t total = 0;
  int write_failed = 0;
  while (rc == 0) {
    r = vrpc_recv(call, &m, err);
    if (r == 0) break;
    if (r < 0) {
      rc = -1;
      break;
    }
    req = (Vessel__V1__AgentCopyInRequest *)m;
    if (req->kind_case != VESSEL__V1__AGENT_COPY_IN_REQUEST__KIND_DATA) {
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "CopyIn: header repeated");
    } else {
      const uint8_t *p = req->data.data;
      size_t len = req->data.len;
      total += (int64_t)len;
      while (len > 0 && rc == 0 && !write_failed) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && archive) write_failed = 1; /* the extractor stopped: its error wins */
        else if (w < 0) rc = vs_err_errno(err, VS_INTERNAL, errno, "write %s", path);
        else p += w, len -= (size_t)w;
      }
    }
    vrpc_msg_free(m);
  }
  if (fd >= 0 && close(fd) < 0 && rc == 0 && !archive)
    rc = vs_err_errno(err, VS_INTERNAL, errno, "close");
  if (have_thread) {
    pthread_join(th, NULL);
    close(job->fd);
    if (rc == 0 && job->rc < 0) {
      *err = job->err;
      rc = -1;
    }
  }
  free(job);
  if (rc < 0) return -1;
  Vessel__V1__AgentCopyInResponse resp = VESSEL__V1__AGENT_COPY_IN_RESPONSE__INIT;
  resp.bytes_received = total;
  return vrpc_send(call, &resp.base, err);
}

#define OUT_CHUNK (1 << 20)

typedef struct out_stream {
  vrpc_call *call;
  uint8_t *buf;
  size_t len;
  Vessel__V1__FileInfo *info; /* sent with the first message, then NULL */
} out_stream;

static int out_flush(out_stream *o, vs_err *err) {
  Vessel__V1__AgentCopyOutResponse r = VESSEL__V1__AGENT_COPY_OUT_RESPONSE__INIT;
  r.info = o->info;
  r.data.data = o->buf;
  r.data.len = o->len;
  o->info = NULL;
  o->len = 0;
  return vrpc_send(o->call, &r.base, err);
}

static int out_sink(void *ctx, const void *data, size_t len, vs_err *err) {
  out_stream *o = ctx;
  const uint8_t *p = data;
  while (len > 0) {
    size_t k = OUT_CHUNK - o->len < len ? OUT_CHUNK - o->len : len;
    memcpy(o->buf + o->len, p, k);
    o->len += k;
    p += k;
    len -= k;
    if (o->len == OUT_CHUNK && out_flush(o, err) < 0) return -1;
  }
  return 0;
}

static int copy_out(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentCopyOutRequest, req, err);
  char path[4096];
  file_info f;
  int rc = resolve_ex(ctx, req->container_id, req->path, 0, path, sizeof path, err);
  if (rc == 0) rc = file_info_of(path, req->path, 0, &f, err);
  if (rc == 0) {
    out_stream o = {call, malloc(OUT_CHUNK), 0, &f.fi};
    if (!o.buf) rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    if (rc == 0) rc = tar_write_path(path, out_sink, &o, err);
    if (rc == 0 && (o.len || o.info)) rc = out_flush(&o, err);
    free(o.buf);
  }
  vrpc_msg_free(req_msg);
  return rc;
}

void svc_fs_handlers(vessel_v1_Agent_handlers *h) {
  h->Mount = mount_;
  h->Umount = umount_;
  h->Mkdir = mkdir_;
  h->WriteFile = write_file;
  h->Stat = stat_;
  h->CopyIn = copy_in;
  h->CopyOut = copy_out;
}
