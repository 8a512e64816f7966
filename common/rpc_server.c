/* Server side of vrpc: accept calls, run each handler on its own thread,
 * send the status it returns. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "common/rpc_internal.h"
#include "common/vs_log.h"

/* Outstanding grpc_server_request_call slots; more than one keeps accepting
 * while the poller hands a fresh call to its thread. */
#define VRPC_ACCEPT_SLOTS 4
#define VRPC_MAX_UNIX 8

/* Calls in flight per client connection (its gRPC peer name). */
typedef struct vrpc_peer_count {
  char *peer;
  int n;
} vrpc_peer_count;

typedef struct vrpc_entry {
  const vrpc_method *method;
  vrpc_handler fn;
  void *ctx;
} vrpc_entry;

typedef struct vrpc_slot {
  vrpc_tag tag;
  vrpc_server *srv;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array md;
} vrpc_slot;

struct vrpc_server {
  grpc_server *server;
  vrpc_cq cq;
  size_t max_message;
  grpc_arg argv[3];
  grpc_channel_args args;

  vrpc_entry *entries;
  size_t n_entries, cap_entries;
  const char **services;
  size_t n_services;
  void **kept;
  size_t n_kept;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  int started, shutting_down, freed_grpc;
  int active; /* handler threads running */
  vrpc_tag shutdown_tag;
  int shutdown_done;

  void (*on_done)(void *arg, const vrpc_method *m, vs_code code, int64_t ns);
  void *on_done_arg;

  /* under mu: calls in flight per connection */
  int max_per_peer;
  int unix_mode;
  long unix_gid; /* -1: the process's */
  vrpc_peer_count *peers;
  size_t n_peers;

  /* plaintext unix listeners accepted here (see vrpc_server_listen) */
  int unix_fds[VRPC_MAX_UNIX];
  char unix_paths[VRPC_MAX_UNIX][108];
  size_t n_unix;
  int accept_stop; /* eventfd */
  pthread_t acceptor;
  int accepting;
};

static void server_shutdown_done(vrpc_tag *t, int ok) {
  vrpc_server *s = (vrpc_server *)((char *)t - offsetof(vrpc_server, shutdown_tag));
  (void)ok;
  pthread_mutex_lock(&s->mu);
  s->shutdown_done = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* gRPC core's own lines go through vs_log (one format in vesseld's log);
 * a failed TLS handshake, which gRPC reports without saying what it means
 * for a client, gets a line that does. */
static void grpc_log(gpr_log_func_args *a) {
  vs_log_level l = a->severity == GPR_LOG_SEVERITY_ERROR  ? VS_LOG_ERROR
                   : a->severity == GPR_LOG_SEVERITY_INFO ? VS_LOG_INFO
                                                          : VS_LOG_DEBUG;
  const char *file = strrchr(a->file, '/');
  vs_log("grpc", l, "%s:%d %s", file ? file + 1 : a->file, a->line, a->message);
  const char *hs = strstr(a->message, "Handshake failed");
  if (!hs) return;
  const char *why = strstr(a->message, "routines::");
  why = why ? why + 10 : hs;
  const char *hint = strstr(why, "did not return a certificate")
                         ? "the client sent no certificate; vesseld requires one signed by "
                           "its --tls-client-ca"
                     : strstr(why, "certificate verify failed") || strstr(why, "unknown ca")
                         ? "the client's certificate is not signed by vesseld's --tls-client-ca"
                         : "clients need a certificate signed by vesseld's --tls-client-ca and "
                           "must trust vesseld's certificate";
  vs_log("vesseld", VS_LOG_WARN, "TLS handshake with a client failed (%s): %s", why, hint);
}

vrpc_server *vrpc_server_new(const vrpc_server_opts *opts, vs_err *err) {
  vrpc_server *s = calloc(1, sizeof *s);
  if (!s) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  gpr_set_log_function(grpc_log);
  grpc_init();
  s->max_message = opts && opts->max_message_bytes ? opts->max_message_bytes
                                                   : VRPC_DEFAULT_MAX_MESSAGE;
  s->max_per_peer = opts ? opts->max_calls_per_connection : 0;
  s->on_done = opts ? opts->on_done : NULL;
  s->on_done_arg = opts ? opts->on_done_arg : NULL;
  s->unix_mode = opts && opts->unix_mode ? opts->unix_mode : 0660;
  s->unix_gid = opts && opts->has_unix_gid ? (long)opts->unix_gid : -1;
  s->accept_stop = -1;
  vrpc_size_args(&s->args, s->argv, s->max_message);
  s->server = grpc_server_create(&s->args, NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->shutdown_tag.fn = server_shutdown_done;
  if (vrpc_cq_start(&s->cq, err) < 0) {
    grpc_server_destroy(s->server);
    grpc_shutdown();
    free(s);
    return NULL;
  }
  grpc_server_register_completion_queue(s->server, s->cq.cq, NULL);
  return s;
}

int vrpc_server_add_service(vrpc_server *s, const vrpc_service *svc,
                            const vrpc_handler *handlers, void *ctx, vs_err *err) {
  if (s->started)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "server already started");
  size_t need = s->n_entries + svc->n_methods;
  if (need > s->cap_entries) {
    size_t cap = need * 2;
    vrpc_entry *e = realloc(s->entries, cap * sizeof *e);
    if (!e) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    s->entries = e;
    s->cap_entries = cap;
  }
  const char **names = realloc(s->services, (s->n_services + 1) * sizeof *names);
  if (!names) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  s->services = names;
  s->services[s->n_services++] = svc->name;
  for (size_t i = 0; i < svc->n_methods; i++) {
    vrpc_entry *e = &s->entries[s->n_entries++];
    e->method = svc->methods[i];
    e->fn = handlers ? handlers[i] : NULL;
    e->ctx = ctx;
  }
  return 0;
}

int vrpc_server_keep(vrpc_server *s, void *ptr, vs_err *err) {
  void **k = realloc(s->kept, (s->n_kept + 1) * sizeof *k);
  if (!k) {
    free(ptr);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  s->kept = k;
  s->kept[s->n_kept++] = ptr;
  return 0;
}

size_t vrpc_server_services(vrpc_server *s, const char **names, size_t max) {
  for (size_t i = 0; i < s->n_services && i < max; i++) names[i] = s->services[i];
  return s->n_services;
}

static int listen_unix(vrpc_server *s, const char *path, const char *uri, vs_err *err) {
  if (s->n_unix == VRPC_MAX_UNIX)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "at most %d unix listeners", VRPC_MAX_UNIX);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  struct stat st;
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path); /* a stale one */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  /* Mode and group before listen: until then no client can connect. */
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || chmod(path, (mode_t)s->unix_mode) < 0 ||
      (s->unix_gid >= 0 && chown(path, (uid_t)-1, (gid_t)s->unix_gid) < 0) || listen(fd, 128) < 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return vs_err_errno(err, VS_UNAVAILABLE, e, "cannot listen on %s", uri);
  }
  s->unix_fds[s->n_unix] = fd;
  snprintf(s->unix_paths[s->n_unix], sizeof s->unix_paths[0], "%s", path);
  s->n_unix++;
  return 0;
}

int vrpc_server_add_listener(vrpc_server *s, const char *uri, const char *target,
                             const char *unix_path, grpc_server_credentials *creds,
                             int *bound_port, vs_err *err) {
  if (s->started) {
    if (creds) grpc_server_credentials_release(creds);
    return vs_err_set(err, VS_FAILED_PRECONDITION, "server already started");
  }
  if (unix_path) return listen_unix(s, unix_path, uri, err);
  int port = grpc_server_add_http2_port(s->server, target, creds);
  grpc_server_credentials_release(creds);
  if (port <= 0)
    return vs_err_set(err, VS_UNAVAILABLE, "cannot listen on %s", uri);
  if (bound_port) *bound_port = port;
  return 0;
}

/* ---- per-call handler threads ---- */

static int peer_enter(vrpc_server *s, const char *peer);
static void peer_leave(vrpc_server *s, const char *peer);

static const vrpc_entry *find_entry(vrpc_server *s, const char *path, size_t len) {
  for (size_t i = 0; i < s->n_entries; i++) {
    const char *p = s->entries[i].method->path;
    if (strlen(p) == len && memcmp(p, path, len) == 0) return &s->entries[i];
  }
  return NULL;
}

static void close_done(vrpc_tag *t, int ok) {
  vrpc_op *op = (vrpc_op *)t;
  vrpc_call *c = op->call;
  (void)ok;
  if (c->close_cancelled) vrpc_call_mark_cancelled(c);
  pthread_mutex_lock(&c->mu);
  op->ok = ok;
  op->done = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static char *slice_str(grpc_slice s) {
  size_t n = GRPC_SLICE_LENGTH(s);
  char *p = malloc(n + 1);
  if (p) {
    memcpy(p, GRPC_SLICE_START_PTR(s), n);
    p[n] = '\0';
  }
  return p;
}

const char *vrpc_metadata(vrpc_call *c, const char *key) {
  if (!c->md_pairs) return NULL;
  for (size_t i = 0; c->md_pairs[i]; i += 2)
    if (strcasecmp(c->md_pairs[i], key) == 0) return c->md_pairs[i + 1];
  return NULL;
}

vrpc_server *vrpc_call_server(vrpc_call *c) { return c->srv; }

static void send_status(vrpc_call *c, vs_code code, const char *msg) {
  pthread_mutex_lock(&c->send_mu);
  if (c->status_sent) {
    pthread_mutex_unlock(&c->send_mu);
    return;
  }
  c->status_sent = 1;
  c->status_code = code;
  grpc_slice details = grpc_slice_from_copied_string(msg ? msg : "");
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t k = 0;
  if (!c->initial_md_sent) {
    ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
    c->initial_md_sent = 1;
  }
  ops[k].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[k].data.send_status_from_server.status = (grpc_status_code)code;
  ops[k].data.send_status_from_server.status_details = &details;
  k++;
  vrpc_op op;
  vrpc_op_init(&op, c);
  vrpc_op_start(&op, ops, k);
  vrpc_op_wait(&op);
  pthread_mutex_unlock(&c->send_mu);
  grpc_slice_unref(details);
}

int vrpc_server_finish(vrpc_call *c, const vs_err *status) {
  if (!c->server_side) return -1;
  send_status(c, status ? status->code : VS_OK, status ? status->msg : "");
  return 0;
}

static void finish_server_call(vrpc_call *c, vs_code code, const char *msg) {
  send_status(c, code, msg);
  vrpc_op_wait(&c->close_op);
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static __thread const vrpc_method *current_method;

const vrpc_method *vrpc_current_method(void) { return current_method; }

static void *handler_main(void *arg) {
  vrpc_call *c = arg;
  vrpc_server *s = c->srv;
  const grpc_slice *mp = &c->details.method;
  const vrpc_entry *e =
      find_entry(s, (const char *)GRPC_SLICE_START_PTR(*mp), GRPC_SLICE_LENGTH(*mp));

  vs_err err;
  vs_err_clear(&err);
  if (!e) {
    char *path = slice_str(*mp);
    vs_err_set(&err, VS_UNIMPLEMENTED, "unknown method %s", path ? path : "?");
    free(path);
  } else if (!e->fn) {
    vs_err_set(&err, VS_UNIMPLEMENTED, "%s is not implemented yet", e->method->path);
  } else {
    c->method = e->method;
    current_method = e->method;
    int rc = e->fn(c, e->ctx, &err);
    current_method = NULL;
    if (rc == 0)
      vs_err_clear(&err);
    else if (err.code == VS_OK)
      vs_err_set(&err, VS_UNKNOWN, "%s failed without a reason", e->method->path);
  }
  finish_server_call(c, err.code, err.msg);
  /* The status sent: a handler's vrpc_server_finish may have sent another
   * than the one it returned. */
  if (s->on_done) s->on_done(s->on_done_arg, e ? e->method : NULL, c->status_code,
                             now_ns() - c->arrived_ns);
  peer_leave(s, c->peer);

  grpc_call_unref(c->call);
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->request_md);
  if (c->md_pairs) {
    for (size_t i = 0; c->md_pairs[i]; i++) free(c->md_pairs[i]);
    free(c->md_pairs);
  }
  vrpc_call_release(c);

  pthread_mutex_lock(&s->mu);
  s->active--;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Counts a call of peer in; 1 (and not counted) if that is over the limit. */
static int peer_enter(vrpc_server *s, const char *peer) {
  if (!s->max_per_peer || !peer) return 0;
  pthread_mutex_lock(&s->mu);
  size_t i = 0;
  while (i < s->n_peers && strcmp(s->peers[i].peer, peer) != 0) i++;
  int over = 0;
  if (i < s->n_peers) {
    over = s->peers[i].n >= s->max_per_peer;
    if (!over) s->peers[i].n++;
  } else {
    vrpc_peer_count *p = realloc(s->peers, (s->n_peers + 1) * sizeof *p);
    char *copy = strdup(peer);
    if (p && copy) {
      s->peers = p;
      s->peers[s->n_peers++] = (vrpc_peer_count){copy, 1};
    } else {
      if (p) s->peers = p;
      free(copy); /* not counted: no memory to count it with */
    }
  }
  pthread_mutex_unlock(&s->mu);
  return over;
}

static void peer_leave(vrpc_server *s, const char *peer) {
  if (!s->max_per_peer || !peer) return;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->n_peers; i++)
    if (!strcmp(s->peers[i].peer, peer)) {
      if (--s->peers[i].n == 0) { /* the connection's last call: forget it */
        free(s->peers[i].peer);
        s->peers[i] = s->peers[--s->n_peers];
      }
      break;
    }
  pthread_mutex_unlock(&s->mu);
}

/* A call answered RESOURCE_EXHAUSTED before any handler ran, to on_done. */
static void report_refused(vrpc_server *s, const grpc_call_details *d) {
  if (!s->on_done) return;
  const vrpc_entry *e = find_entry(s, (const char *)GRPC_SLICE_START_PTR(d->method),
                                   GRPC_SLICE_LENGTH(d->method));
  s->on_done(s->on_done_arg, e ? e->method : NULL, VS_RESOURCE_EXHAUSTED, 0);
}

/* Placeholder method until dispatch picks the real one (unknown paths). */
static const vrpc_method unknown_method = {"(unknown)", VRPC_UNARY, NULL, NULL};

static int post_slot(vrpc_server *s);

/* Runs on the poller thread: must not block. */
static void slot_done(vrpc_tag *t, int ok) {
  vrpc_slot *slot = (vrpc_slot *)t;
  vrpc_server *s = slot->srv;
  if (!ok) {
    grpc_call_details_destroy(&slot->details);
    grpc_metadata_array_destroy(&slot->md);
    free(slot); /* shutting down */
    return;
  }
  post_slot(s);

  vs_err err;
  char *peer = grpc_call_get_peer(slot->call);
  int over = peer_enter(s, peer);
  vrpc_call *c = over ? NULL : vrpc_call_alloc(&unknown_method, s->max_message, &err);
  if (!c) {
    char msg[160];
    snprintf(msg, sizeof msg,
             over ? "too many calls in flight on this connection (at most %d): "
                    "finish or cancel some, or open another connection"
                  : "out of memory",
             s->max_per_peer);
    if (!over) peer_leave(s, peer);
    gpr_free(peer);
    grpc_call_cancel_with_status(slot->call, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, NULL);
    report_refused(s, &slot->details);
    grpc_call_unref(slot->call);
    grpc_call_details_destroy(&slot->details);
    grpc_metadata_array_destroy(&slot->md);
  } else {
    c->server_side = 1;
    c->arrived_ns = now_ns();
    c->srv = s;
    c->peer = peer; /* counted in s->peers until the handler ends */
    c->call = slot->call;
    c->details = slot->details;
    c->request_md = slot->md;
    c->deadline = slot->details.deadline;
    c->md_pairs = calloc(2 * c->request_md.count + 1, sizeof(char *));
    for (size_t i = 0; c->md_pairs && i < c->request_md.count; i++) {
      c->md_pairs[2 * i] = slice_str(c->request_md.metadata[i].key);
      c->md_pairs[2 * i + 1] = slice_str(c->request_md.metadata[i].value);
    }
    /* Learn of cancellation (client, deadline, shutdown) as it happens. */
    vrpc_op_init(&c->close_op, c);
    c->close_op.tag.fn = close_done;
    grpc_op o;
    memset(&o, 0, sizeof o);
    o.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    o.data.recv_close_on_server.cancelled = &c->close_cancelled;
    vrpc_op_start(&c->close_op, &o, 1);

    pthread_mutex_lock(&s->mu);
    s->active++;
    pthread_mutex_unlock(&s->mu);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int rc = pthread_create(&th, &attr, handler_main, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
      /* The call's ops complete on this very thread later, so don't wait:
       * cancel, and let the close op's completion be ignored. */
      grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                   "too many concurrent calls", NULL);
      report_refused(s, &c->details);
      pthread_mutex_lock(&s->mu);
      s->active--;
      pthread_mutex_unlock(&s->mu);
      peer_leave(s, peer);
      /* Leak c deliberately: its close op is still pending on this queue. */
    }
  }
  free(slot);
}

static int post_slot(vrpc_server *s) {
  vrpc_slot *slot = calloc(1, sizeof *slot);
  if (!slot) return -1;
  slot->tag.fn = slot_done;
  slot->srv = s;
  grpc_call_details_init(&slot->details);
  grpc_metadata_array_init(&slot->md);
  grpc_call_error e = grpc_server_request_call(s->server, &slot->call, &slot->details,
                                               &slot->md, s->cq.cq, s->cq.cq,
                                               &slot->tag);
  if (e != GRPC_CALL_OK) {
    grpc_call_details_destroy(&slot->details);
    grpc_metadata_array_destroy(&slot->md);
    free(slot);
    return -1;
  }
  return 0;
}

/* Accepts on the unix listeners; each connection is served as an fd. */
static void *acceptor_main(void *arg) {
  vrpc_server *s = arg;
  struct pollfd pf[VRPC_MAX_UNIX + 1];
  for (size_t i = 0; i < s->n_unix; i++) pf[i] = (struct pollfd){s->unix_fds[i], POLLIN, 0};
  pf[s->n_unix] = (struct pollfd){s->accept_stop, POLLIN, 0};
  for (;;) {
    if (poll(pf, s->n_unix + 1, -1) < 0 && errno != EINTR) break;
    if (pf[s->n_unix].revents & POLLIN) break;
    for (size_t i = 0; i < s->n_unix; i++) {
      if (!(pf[i].revents & POLLIN)) continue;
      int fd = accept4(s->unix_fds[i], NULL, NULL, SOCK_CLOEXEC);
      vs_err ignore;
      if (fd >= 0) vrpc_server_serve_fd(s, fd, &ignore);
      else if (errno == EMFILE || errno == ENFILE) usleep(100000); /* let fds free up */
    }
  }
  return NULL;
}

static void stop_acceptor(vrpc_server *s) {
  if (s->accepting) {
    uint64_t one = 1;
    ssize_t n = write(s->accept_stop, &one, sizeof one);
    (void)n;
    pthread_join(s->acceptor, NULL);
    s->accepting = 0;
  }
  for (size_t i = 0; i < s->n_unix; i++) {
    close(s->unix_fds[i]);
    unlink(s->unix_paths[i]);
  }
  s->n_unix = 0;
  if (s->accept_stop >= 0) close(s->accept_stop);
  s->accept_stop = -1;
}

int vrpc_server_start(vrpc_server *s, vs_err *err) {
  if (s->started) return vs_err_set(err, VS_FAILED_PRECONDITION, "server already started");
  grpc_server_start(s->server);
  s->started = 1;
  for (int i = 0; i < VRPC_ACCEPT_SLOTS; i++)
    if (post_slot(s) < 0) return vs_err_set(err, VS_INTERNAL, "cannot accept calls");
  if (s->n_unix) {
    s->accept_stop = eventfd(0, EFD_CLOEXEC);
    if (s->accept_stop < 0 || pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0)
      return vs_err_errno(err, VS_INTERNAL, errno, "cannot accept connections");
    s->accepting = 1;
  }
  return 0;
}

int vrpc_server_serve_fd(vrpc_server *s, int fd, vs_err *err) {
  if (!s->started) {
    close(fd);
    return vs_err_set(err, VS_FAILED_PRECONDITION, "server not started");
  }
  /* gRPC needs a non-blocking socket, else calls hang until their deadline. */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    return vs_err_errno(err, VS_INVALID_ARGUMENT, e, "serve fd %d", fd);
  }
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  grpc_server_add_channel_from_fd(s->server, fd, creds);
  grpc_server_credentials_release(creds);
  return 0;
}

static void wait_until(vrpc_server *s, struct timespec *abs, int (*cond)(vrpc_server *)) {
  pthread_mutex_lock(&s->mu);
  while (!cond(s)) {
    if (abs) {
      if (pthread_cond_timedwait(&s->cv, &s->mu, abs) == ETIMEDOUT) break;
    } else {
      pthread_cond_wait(&s->cv, &s->mu);
    }
  }
  pthread_mutex_unlock(&s->mu);
}

static int no_handlers(vrpc_server *s) { return s->active == 0; }
/* Accept slots still outstanding complete (failed) on the queue when the
 * server is destroyed; the poller frees them then. */
static int all_quiet(vrpc_server *s) { return s->active == 0 && s->shutdown_done; }

void vrpc_server_shutdown(vrpc_server *s, int grace_ms) {
  pthread_mutex_lock(&s->mu);
  int already = s->shutting_down;
  s->shutting_down = 1;
  pthread_mutex_unlock(&s->mu);
  stop_acceptor(s);
  if (already || !s->started) return;

  grpc_server_shutdown_and_notify(s->server, s->cq.cq, &s->shutdown_tag);
  if (grace_ms > 0) {
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_sec += grace_ms / 1000;
    abs.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (abs.tv_nsec >= 1000000000L) {
      abs.tv_sec++;
      abs.tv_nsec -= 1000000000L;
    }
    wait_until(s, &abs, no_handlers);
  }
  grpc_server_cancel_all_calls(s->server);
  wait_until(s, NULL, all_quiet);
}

void vrpc_server_free(vrpc_server *s) {
  if (!s) return;
  vrpc_server_shutdown(s, 0);
  grpc_server_destroy(s->server);
  vrpc_cq_stop(&s->cq);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  for (size_t i = 0; i < s->n_peers; i++) free(s->peers[i].peer);
  free(s->peers);
  free(s->entries);
  free(s->services);
  for (size_t i = 0; i < s->n_kept; i++) free(s->kept[i]);
  free(s->kept);
  free(s);
  grpc_shutdown();
}
