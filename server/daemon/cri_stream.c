/* runtime.v1 Exec, Attach and PortForward: each checks the request and
 * answers with a one-use URL on the streaming server (server/streaming),
 * whose backend here runs the process through the runtime (rt_exec,
 * rt_attach_*) or connects to a port of the pod's VM. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/pbmap.h"
#include "cri_proto_rpc.h"
#include "runtime/v1/api.pb-c.h"
#include "server/daemon/daemon.h"

#define DIAL_TIMEOUT_MS 5000

typedef struct proc {
  rt_runtime *rt;
  char id[128], exec_id[128];
  rt_attach *a;
} proc;

static int sb_open(void *ctx, const ss_request *r, void **out, vs_err *err) {
  vd_daemon *d = ctx;
  proc *p = calloc(1, sizeof *p);
  if (!p) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  p->rt = d->runtime;
  snprintf(p->id, sizeof p->id, "%s", r->id);
  int flags = (r->out ? RT_ATTACH_STDOUT : 0) | (r->err ? RT_ATTACH_STDERR : 0) | RT_ATTACH_STDIN;
  if (r->kind == SS_EXEC) {
    Vessel__V1__ProcessSpec ps = VESSEL__V1__PROCESS_SPEC__INIT;
    ps.args = (char **)r->cmd;
    ps.n_args = r->n_cmd;
    ps.terminal = r->tty;
    Vessel__V1__ConsoleSize size = VESSEL__V1__CONSOLE_SIZE__INIT;
    size.rows = r->height;
    size.cols = r->width;
    if (r->tty && r->width) ps.console_size = &size;
    int pid;
    if (rt_exec(d->runtime, r->id, "", &ps, p->exec_id, &pid, err) < 0) {
      free(p);
      return -1;
    }
    flags |= RT_ATTACH_LOGS; /* what it wrote before the attach */
    if (r->tty) flags |= RT_ATTACH_STDOUT;
  }
  if (!(p->a = rt_attach_open(d->runtime, r->id, p->exec_id, flags, err))) {
    vs_err ignore;
    if (*p->exec_id) rt_signal(d->runtime, r->id, p->exec_id, SIGKILL, 0, &ignore);
    free(p);
    return -1;
  }
  *out = p;
  return 0;
}

static int sb_next(void *h, int cancel_fd, int *stream, char **data, size_t *len, int *code,
                   vs_err *err) {
  proc *p = h;
  rt_exit e;
  int r = rt_attach_next(p->a, cancel_fd, stream, data, len, &e, err);
  if (r == 0) *code = e.signal ? 128 + e.signal : e.code;
  return r;
}

static int sb_stdin(void *h, const void *data, size_t len, int eof, vs_err *err) {
  return rt_attach_stdin(((proc *)h)->a, data, len, eof, err);
}

static int sb_resize(void *h, unsigned w, unsigned hgt, vs_err *err) {
  proc *p = h;
  return rt_resize(p->rt, p->id, p->exec_id, hgt, w, err);
}

static void sb_close(void *h, int kill) {
  proc *p = h;
  vs_err ignore;
  if (kill && *p->exec_id) rt_signal(p->rt, p->id, p->exec_id, SIGKILL, 0, &ignore);
  rt_attach_close(p->a);
  free(p);
}

/* The pod's first address, port: the VM's network stack, so a server that
 * listens only on the pod's 127.0.0.1 is not reached (README says so). */
static int sb_dial(void *ctx, const char *id, unsigned port, vs_err *err) {
  vd_daemon *d = ctx;
  Vessel__V1__Pod *pod = rt_pod_describe(d->runtime, id, err);
  if (!pod) return -1;
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  int ok = pod->state == VESSEL__V1__POD_STATE__POD_STATE_RUNNING && pod->n_networks &&
           inet_pton(AF_INET, pod->networks[0]->ip_address, &sin.sin_addr) == 1;
  int running = pod->state == VESSEL__V1__POD_STATE__POD_STATE_RUNNING;
  protobuf_c_message_free_unpacked(&pod->base, NULL);
  if (!ok)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "pod sandbox %s %s", id,
                      running ? "has no network address" : "is not ready");
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return vs_err_errno(err, VS_RESOURCE_EXHAUSTED, errno, "socket");
  int rc = connect(fd, (struct sockaddr *)&sin, sizeof sin);
  if (rc < 0 && errno == EINPROGRESS) {
    struct pollfd p = {fd, POLLOUT, 0};
    int soerr = ETIMEDOUT;
    socklen_t sl = sizeof soerr;
    if (poll(&p, 1, DIAL_TIMEOUT_MS) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    rc = soerr ? -1 : 0;
    errno = soerr;
  }
  if (rc < 0) {
    int e = errno;
    close(fd);
    return vs_err_errno(err, VS_UNAVAILABLE, e, "connect to port %u", port);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

void vd_stream_backend(vd_daemon *d, ss_backend *b) {
  *b = (ss_backend){d, sb_open, sb_next, sb_stdin, sb_resize, sb_close, sb_dial};
}

/* ---- the CRI calls ---- */

/* The container, running; FAILED_PRECONDITION otherwise. */
static Vessel__V1__Container *running_container(vd_daemon *d, const char *id, vs_err *err) {
  Vessel__V1__Container *c = rt_describe(d->runtime, id, err);
  if (c && c->state != VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_RUNNING) {
    vs_err_set(err, VS_FAILED_PRECONDITION, "container %s is not running", id);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    c = NULL;
  }
  return c;
}

static int check_stdio(int in, int out, int errs, int tty, vs_err *err) {
  if (!in && !out && !errs)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "one of stdin, stdout and stderr must be true");
  if (tty && errs)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "tty and stderr cannot both be true (a terminal has one output)");
  return 0;
}

static int send_url(vrpc_call *call, vd_daemon *d, const ss_request *r, ProtobufCMessage *resp,
                    char **url_field, vs_err *err) {
  char url[256];
  if (!d->stream) return vs_err_set(err, VS_UNAVAILABLE, "the streaming server is not running");
  if (ss_url(d->stream, r, url, sizeof url, err) < 0) return -1;
  *url_field = url;
  return vrpc_send(call, resp, err);
}

static int exec(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ExecRequest, req);
  int rc = req->n_cmd ? 0 : vs_err_set(err, VS_INVALID_ARGUMENT, "ExecRequest.cmd is empty");
  if (rc == 0) rc = check_stdio(req->stdin, req->stdout, req->stderr, req->tty, err);
  Vessel__V1__Container *c = rc == 0 ? running_container(d, req->container_id, err) : NULL;
  if (c) {
    ss_request r = {.kind = SS_EXEC, .id = c->id, .cmd = req->cmd, .n_cmd = req->n_cmd,
                    .tty = req->tty, .in = req->stdin, .out = req->stdout, .err = req->stderr};
    Runtime__V1__ExecResponse resp = RUNTIME__V1__EXEC_RESPONSE__INIT;
    rc = send_url(call, d, &r, &resp.base, &resp.url, err);
    protobuf_c_message_free_unpacked(&c->base, NULL);
  } else {
    rc = -1;
  }
  vrpc_msg_free(req_msg);
  return rc;
}

static int attach(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__AttachRequest, req);
  int rc = check_stdio(req->stdin, req->stdout, req->stderr, req->tty, err);
  Vessel__V1__Container *c = rc == 0 ? running_container(d, req->container_id, err) : NULL;
  /* ContainerConfig.stdin, kept at create: "1", or "once" with stdin_once */
  const char *in = c ? PBMAP_GET(c, labels, "io.vessel.cri/stdin") : NULL;
  if (!c)
    rc = -1;
  else if (req->stdin && !in)
    rc = vs_err_set(err, VS_FAILED_PRECONDITION,
                    "AttachRequest.stdin: container %s was created without stdin (ContainerConfig.stdin)",
                    c->id);
  if (rc == 0) {
    ss_request r = {.kind = SS_ATTACH, .id = c->id, .tty = req->tty, .in = req->stdin,
                    .out = req->stdout, .err = req->stderr, .stdin_once = in && !strcmp(in, "once")};
    Runtime__V1__AttachResponse resp = RUNTIME__V1__ATTACH_RESPONSE__INIT;
    rc = send_url(call, d, &r, &resp.base, &resp.url, err);
  }
  if (c) protobuf_c_message_free_unpacked(&c->base, NULL);
  vrpc_msg_free(req_msg);
  return rc;
}

static int port_forward(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__PortForwardRequest, req);
  Vessel__V1__Pod *p = rt_pod_describe(d->runtime, req->pod_sandbox_id, err);
  int rc = p ? 0 : -1;
  for (size_t i = 0; rc == 0 && i < req->n_port; i++)
    if (req->port[i] <= 0 || req->port[i] > 65535)
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "PortForwardRequest.port %d is not 1..65535", req->port[i]);
  if (rc == 0 && p->state != VESSEL__V1__POD_STATE__POD_STATE_RUNNING)
    rc = vs_err_set(err, VS_FAILED_PRECONDITION, "pod sandbox %s is not ready", p->id);
  if (rc == 0) {
    /* the ports come with each connection's streams */
    ss_request r = {.kind = SS_PORT_FORWARD, .id = p->id};
    Runtime__V1__PortForwardResponse resp = RUNTIME__V1__PORT_FORWARD_RESPONSE__INIT;
    rc = send_url(call, d, &r, &resp.base, &resp.url, err);
  }
  if (p) protobuf_c_message_free_unpacked(&p->base, NULL);
  vrpc_msg_free(req_msg);
  return rc;
}

void vd_cri_stream_handlers(runtime_v1_RuntimeService_handlers *h) {
  h->Exec = exec;
  h->Attach = attach;
  h->PortForward = port_forward;
}
