/* vessel.v1.Containers: a thin adapter over server/runtime. */
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/daemon/daemon.h"
#include "server/logs/logs.h"
#include "server/runtime/runtime.h"
#include "vessel/v1/containers.pb-c.h"
#include "vessel_proto_rpc.h"

static int send_container(vrpc_call *call, ProtobufCMessage *resp, Vessel__V1__Container **slot,
                          Vessel__V1__Container *c, vs_err *err) {
  if (!c) return -1;
  *slot = c;
  int rc = vrpc_send(call, resp, err);
  protobuf_c_message_free_unpacked(&c->base, NULL);
  return rc;
}

static int create(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersCreateRequest, req);
  char id[128];
  int rc = rt_create(d->runtime, req, id, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersCreateResponse r;
  vessel__v1__containers_create_response__init(&r);
  return send_container(call, &r.base, &r.container, rt_describe(d->runtime, id, err), err);
}

static int start(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersStartRequest, req);
  char id[128];
  snprintf(id, sizeof id, "%s", req->container_id);
  vrpc_msg_free(req_msg);
  if (rt_start(d->runtime, id, err) < 0) return -1;
  Vessel__V1__ContainersStartResponse r;
  vessel__v1__containers_start_response__init(&r);
  return send_container(call, &r.base, &r.container, rt_describe(d->runtime, id, err), err);
}

static int exec(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersExecRequest, req);
  char eid[128];
  int pid = 0;
  int rc = rt_exec(d->runtime, req->container_id, req->exec_id, req->process, eid, &pid, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersExecResponse r;
  vessel__v1__containers_exec_response__init(&r);
  r.exec_id = eid;
  r.pid = pid;
  return vrpc_send(call, &r.base, err);
}

typedef struct stdin_pump {
  vrpc_call *call;
  rt_attach *a;
  const char *id, *exec_id;
  vd_daemon *d;
} stdin_pump;

/* Client frames: stdin data (with EOF) and terminal resizes. */
static void *pump_stdin(void *arg) {
  stdin_pump *s = arg;
  for (;;) {
    ProtobufCMessage *m;
    vs_err err;
    if (vrpc_recv(s->call, &m, &err) != 1) break;
    Vessel__V1__ContainersAttachRequest *q = (Vessel__V1__ContainersAttachRequest *)m;
    if (q->kind_case == VESSEL__V1__CONTAINERS_ATTACH_REQUEST__KIND_FRAME && q->frame)
      rt_attach_stdin(s->a, q->frame->data.data, q->frame->data.len, q->frame->eof, &err);
    else if (q->kind_case == VESSEL__V1__CONTAINERS_ATTACH_REQUEST__KIND_RESIZE && q->resize)
      rt_resize(s->d->runtime, s->id, s->exec_id, q->resize->rows, q->resize->cols, &err);
    vrpc_msg_free(m);
  }
  return NULL;
}

static int attach(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersAttachRequest, first);
  if (first->kind_case != VESSEL__V1__CONTAINERS_ATTACH_REQUEST__KIND_OPEN) {
    vrpc_msg_free(first_msg);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "the first Attach message must be open");
  }
  Vessel__V1__ContainersAttachOpen *o = first->open;
  int flags = (o->attach_stdout ? RT_ATTACH_STDOUT : 0) | (o->attach_stderr ? RT_ATTACH_STDERR : 0) |
              (o->attach_stdin ? RT_ATTACH_STDIN : 0) | (o->logs ? RT_ATTACH_LOGS : 0);
  rt_attach *a = rt_attach_open(d->runtime, o->container_id, o->exec_id, flags, err);
  if (!a) {
    vrpc_msg_free(first_msg);
    return -1;
  }
  stdin_pump pump = {call, a, o->container_id, o->exec_id, d};
  pthread_t th;
  int pumping = pthread_create(&th, NULL, pump_stdin, &pump) == 0;
  int rc = 0;
  for (;;) {
    int stream;
    char *data;
    size_t len;
    rt_exit e;
    int r = rt_attach_next(a, vrpc_cancel_fd(call), &stream, &data, &len, &e, err);
    if (r < 0) {
      rc = -1;
      break;
    }
    Vessel__V1__ContainersAttachResponse resp;
    vessel__v1__containers_attach_response__init(&resp);
    Vessel__V1__StdioFrame f;
    if (r == 1) {
      vessel__v1__stdio_frame__init(&f);
      f.stream = stream == LG_STDERR ? VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDERR
                                     : VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDOUT;
      f.data.data = (uint8_t *)data;
      f.data.len = len;
      resp.kind_case = VESSEL__V1__CONTAINERS_ATTACH_RESPONSE__KIND_FRAME;
      resp.frame = &f;
      rc = vrpc_send(call, &resp.base, err);
      free(data);
      if (rc < 0) break;
      continue;
    }
    resp.kind_case = VESSEL__V1__CONTAINERS_ATTACH_RESPONSE__KIND_EXIT;
    resp.exit = rt_exit_msg(&e);
    rc = vrpc_send(call, &resp.base, err);
    protobuf_c_message_free_unpacked(&resp.exit->base, NULL);
    break;
  }
  /* Finishing the call ends the stdin pump's receive even when the client
   * never half-closes; only then may the attacher go. */
  vrpc_server_finish(call, rc < 0 ? err : NULL);
  if (pumping) pthread_join(th, NULL);
  rt_attach_close(a);
  vrpc_msg_free(first_msg);
  return rc;
}

static int signal_(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersSignalRequest, req);
  int rc = rt_signal(d->runtime, req->container_id, req->exec_id, req->signal, req->all, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersSignalResponse r;
  vessel__v1__containers_signal_response__init(&r);
  return vrpc_send(call, &r.base, err);
}

static int wait_(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersWaitRequest, req);
  rt_exit e;
  int rc = rt_wait(d->runtime, req->container_id, req->exec_id, vrpc_cancel_fd(call), &e, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersWaitResponse r;
  vessel__v1__containers_wait_response__init(&r);
  r.exit_status = rt_exit_msg(&e);
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.exit_status->base, NULL);
  return rc;
}

static int resize(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersResizeRequest, req);
  int rc = req->size ? rt_resize(d->runtime, req->container_id, req->exec_id, req->size->rows,
                                 req->size->cols, err)
                     : vs_err_set(err, VS_INVALID_ARGUMENT, "resize needs a size");
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersResizeResponse r;
  vessel__v1__containers_resize_response__init(&r);
  return vrpc_send(call, &r.base, err);
}

static int close_stdin(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersCloseStdinRequest, req);
  int rc = rt_close_stdin(d->runtime, req->container_id, req->exec_id, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersCloseStdinResponse r;
  vessel__v1__containers_close_stdin_response__init(&r);
  return vrpc_send(call, &r.base, err);
}

static int stop(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersStopRequest, req);
  rt_exit e;
  int rc = rt_stop(d->runtime, req->container_id, req->signal, req->timeout_ms,
                   vrpc_cancel_fd(call), &e, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersStopResponse r;
  vessel__v1__containers_stop_response__init(&r);
  r.exit_status = rt_exit_msg(&e);
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.exit_status->base, NULL);
  return rc;
}

static int delete_(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersDeleteRequest, req);
  int rc = rt_delete(d->runtime, req->container_id, req->force, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersDeleteResponse r;
  vessel__v1__containers_delete_response__init(&r);
  return vrpc_send(call, &r.base, err);
}

static const char *state_word(Vessel__V1__ContainerState s) {
  static const char *const w[] = {"", "creating", "created", "running", "stopping", "stopped"};
  return (unsigned)s < 6 ? w[s] : "";
}

static const char *const filter_keys[] = {"id", "label", "state", "image", "network"};

static int filters_valid(char **f, size_t n, vs_err *err) {
  const char *const *keys = filter_keys;
  for (size_t i = 0; i < n; i++) {
    int known = 0;
    for (size_t k = 0; k < 5; k++) {
      size_t l = strlen(keys[k]);
      known |= !strncmp(f[i], keys[k], l) && f[i][l] == '=';
    }
    if (!known)
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "unknown filter \"%s\" (use id=, label=, state=, image=, network=)", f[i]);
    if (!strncmp(f[i], "state=", 6)) {
      int ok = 0;
      for (int st = 1; st <= 5; st++) ok |= !strcmp(f[i] + 6, state_word((Vessel__V1__ContainerState)st));
      if (!ok)
        return vs_err_set(err, VS_INVALID_ARGUMENT,
                          "filter \"%s\": states are creating, created, running, stopping, stopped",
                          f[i]);
    }
  }
  return 0;
}

/* Filters: id=<prefix>, label=<k>[=<v>], state=<word>, image=<ref>,
 * network=<name>. Same key ORs, different keys AND. */
static int matches(const Vessel__V1__Container *c, char **f, size_t n) {
  const char *const *keys = filter_keys;
  for (size_t k = 0; k < 5; k++) {
    int seen = 0, any = 0;
    size_t l = strlen(keys[k]);
    for (size_t i = 0; i < n; i++) {
      if (strncmp(f[i], keys[k], l) || f[i][l] != '=') continue;
      seen = 1;
      const char *v = f[i] + l + 1;
      switch (k) {
        case 0: any |= !strncmp(c->id, v, strlen(v)); break;
        case 1: {
          const char *eq = strchr(v, '=');
          size_t kl = eq ? (size_t)(eq - v) : strlen(v);
          for (size_t j = 0; j < c->n_labels; j++)
            if (strlen(c->labels[j]->key) == kl && !strncmp(c->labels[j]->key, v, kl) &&
                (!eq || !strcmp(c->labels[j]->value, eq + 1)))
              any = 1;
          break;
        }
        case 2: any |= !strcmp(state_word(c->state), v); break;
        case 3: any |= !strcmp(c->image, v); break;
        case 4:
          for (size_t j = 0; j < c->n_networks; j++) any |= !strcmp(c->networks[j]->network, v);
          break;
      }
    }
    if (seen && !any) return 0;
  }
  return 1;
}

static int list(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersListRequest, req);
  Vessel__V1__Container **all = NULL;
  size_t n = 0;
  int rc = filters_valid(req->filters, req->n_filters, err);
  if (rc == 0) rc = rt_list(d->runtime, &all, &n, err);
  Vessel__V1__ContainersListResponse r;
  vessel__v1__containers_list_response__init(&r);
  if (rc == 0) r.containers = calloc(n ? n : 1, sizeof *r.containers);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (!req->all && all[i]->state != VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_RUNNING) continue;
    if (matches(all[i], req->filters, req->n_filters)) r.containers[r.n_containers++] = all[i];
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  free(r.containers);
  if (all) rt_list_free(all, n);
  vrpc_msg_free(req_msg);
  return rc;
}

static int inspect(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersInspectRequest, req);
  Vessel__V1__Container *c = rt_describe(d->runtime, req->container_id, err);
  vrpc_msg_free(req_msg);
  Vessel__V1__ContainersInspectResponse r;
  vessel__v1__containers_inspect_response__init(&r);
  return send_container(call, &r.base, &r.container, c, err);
}

static int stats(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersStatsRequest, req);
  ProtobufCMessage *s;
  int rc = rt_stats(d->runtime, req->container_id, &s, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersStatsResponse r;
  vessel__v1__containers_stats_response__init(&r);
  r.statistics = (Vessel__V1__Statistics *)s;
  rc = vrpc_send(call, &r.base, err);
  vrpc_msg_free(s);
  return rc;
}

static int update(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersUpdateRequest, req);
  Vessel__V1__Resources none = VESSEL__V1__RESOURCES__INIT;
  int rc = rt_update(d->runtime, req->container_id, req->resources ? req->resources : &none, err);
  Vessel__V1__Container *c = rc == 0 ? rt_describe(d->runtime, req->container_id, err) : NULL;
  vrpc_msg_free(req_msg);
  if (!c) return -1;
  Vessel__V1__ContainersUpdateResponse r = VESSEL__V1__CONTAINERS_UPDATE_RESPONSE__INIT;
  r.container = c;
  rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&c->base, NULL);
  return rc;
}

/* ---- logs ---- */

typedef struct log_stream {
  vrpc_call *call;
  vd_daemon *d;
  const char *id;
  int failed;
  vs_err *err;
} log_stream;

static int send_entry(void *arg, const lg_entry *e) {
  log_stream *s = arg;
  Vessel__V1__LogEntry le;
  vessel__v1__log_entry__init(&le);
  Google__Protobuf__Timestamp t;
  google__protobuf__timestamp__init(&t);
  t.seconds = e->time_ns / 1000000000;
  t.nanos = (int32_t)(e->time_ns % 1000000000);
  le.time = &t;
  le.stream = e->stream == LG_STDERR ? VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDERR
                                     : VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDOUT;
  le.data.data = (uint8_t *)e->data;
  le.data.len = e->len;
  le.partial = e->partial;
  Vessel__V1__LogEntry *entries[1] = {&le};
  Vessel__V1__ContainersLogsResponse r;
  vessel__v1__containers_logs_response__init(&r);
  r.entries = entries;
  r.n_entries = 1;
  if (vrpc_send(s->call, &r.base, s->err) < 0) {
    s->failed = 1;
    return 1;
  }
  return 0;
}

static int log_done(void *arg) {
  log_stream *s = arg;
  return !rt_running(s->d->runtime, s->id);
}

static int logs(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersLogsRequest, req);
  char dir[4400];
  int rc = rt_log_dir(d->runtime, req->container_id, dir, sizeof dir, err);
  if (rc == 0) {
    log_stream s = {call, d, req->container_id, 0, err};
    lg_read_opts o;
    memset(&o, 0, sizeof o);
    o.tail = req->tail > 0 ? req->tail : -1;
    o.since_ns = req->since ? req->since->seconds * 1000000000 + req->since->nanos : 0;
    o.until_ns = req->until ? req->until->seconds * 1000000000 + req->until->nanos : 0;
    o.streams = (req->include_stdout ? LG_STDOUT : 0) | (req->include_stderr ? LG_STDERR : 0);
    o.follow = req->follow;
    o.cancel_fd = vrpc_cancel_fd(call);
    o.done = log_done;
    o.done_arg = &s;
    rc = lg_read(dir, &o, send_entry, &s, err);
    if (rc == 0 && s.failed) rc = -1;
  }
  vrpc_msg_free(req_msg);
  return rc;
}

/* ---- copy in / out (tar streams) ---- */

typedef struct copy_in_src {
  vrpc_call *call;
  ProtobufCMessage *last;
} copy_in_src;

static int read_chunk(void *arg, const void **data, size_t *len, vs_err *err) {
  copy_in_src *s = arg;
  vrpc_msg_free(s->last);
  s->last = NULL;
  int r = vrpc_recv(s->call, &s->last, err);
  if (r <= 0) return r;
  Vessel__V1__ContainersCopyInRequest *q = (Vessel__V1__ContainersCopyInRequest *)s->last;
  if (q->kind_case != VESSEL__V1__CONTAINERS_COPY_IN_REQUEST__KIND_DATA)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "only data may follow the CopyIn header");
  *data = q->data.data;
  *len = q->data.len;
  return 1;
}

static int copy_in(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersCopyInRequest, first);
  int rc;
  int64_t bytes = 0;
  if (first->kind_case != VESSEL__V1__CONTAINERS_COPY_IN_REQUEST__KIND_HEADER) {
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "the first CopyIn message must be a header");
  } else {
    const Vessel__V1__ContainersCopyInHeader *h = first->header;
    copy_in_src src = {call, NULL};
    rt_copy_in_opts o = {h->path, h->uid, h->gid, h->chown};
    rc = rt_copy_in(d->runtime, h->container_id, &o, read_chunk, &src, &bytes, err);
    vrpc_msg_free(src.last);
  }
  vrpc_msg_free(first_msg);
  if (rc < 0) return -1;
  Vessel__V1__ContainersCopyInResponse r;
  vessel__v1__containers_copy_in_response__init(&r);
  r.bytes_received = bytes;
  return vrpc_send(call, &r.base, err);
}

static int send_chunk(void *arg, const Vessel__V1__FileInfo *info, const void *data, size_t len,
                      vs_err *err) {
  Vessel__V1__ContainersCopyOutResponse r;
  vessel__v1__containers_copy_out_response__init(&r);
  r.info = (Vessel__V1__FileInfo *)info;
  r.data.data = (uint8_t *)data;
  r.data.len = len;
  return vrpc_send(arg, &r.base, err);
}

static int copy_out(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Vessel__V1__ContainersCopyOutRequest, req);
  int rc = rt_copy_out(d->runtime, req->container_id, req->path, send_chunk, call, err);
  vrpc_msg_free(req_msg);
  return rc;
}

int vd_containers_register(vrpc_server *srv, vd_daemon *d, vs_err *err) {
  vessel_v1_Containers_handlers h;
  memset(&h, 0, sizeof h);
  h.CopyIn = copy_in;
  h.CopyOut = copy_out;
  h.Create = create;
  h.Start = start;
  h.Exec = exec;
  h.Attach = attach;
  h.Signal = signal_;
  h.Wait = wait_;
  h.Resize = resize;
  h.CloseStdin = close_stdin;
  h.Stop = stop;
  h.Delete = delete_;
  h.List = list;
  h.Inspect = inspect;
  h.Stats = stats;
  h.Update = update;
  h.Logs = logs;
  return vessel_v1_Containers_register(srv, &h, d, err);
}
