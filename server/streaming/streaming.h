/* streaming: the CRI's streaming server. Exec, Attach and PortForward
 * answer with a URL on it; kubelet (or crictl, critest) connects there and
 * upgrades the request to SPDY/3.1 or to a WebSocket, over which travel a
 * process's stdio (Kubernetes' remotecommand protocol, v4.channel.k8s.io,
 * and v5 over WebSocket) or forwarded TCP connections (portforward.k8s.io,
 * over SPDY, also SPDY tunnelled in a WebSocket). HTTP is libmicrohttpd's,
 * WebSocket framing wslay's, SPDY header compression zlib's; the SPDY
 * framing and the Kubernetes protocols are written here.
 *
 * A URL's token is good for one connection within the server's token TTL
 * (SS_TOKEN_TTL_S seconds unless given).
 * What runs behind a URL is the backend's (the runtime's). */
#ifndef VESSEL_SERVER_STREAMING_STREAMING_H
#define VESSEL_SERVER_STREAMING_STREAMING_H

#include <stddef.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SS_TOKEN_TTL_S 60

typedef enum ss_kind { SS_EXEC, SS_ATTACH, SS_PORT_FORWARD } ss_kind;

typedef struct ss_request {
  ss_kind kind;
  const char *id;         /* container (exec, attach) or pod sandbox (port forward) */
  char *const *cmd;       /* exec */
  size_t n_cmd;
  int tty, in, out, err;  /* the stdio the client wants */
  /* attach: the client closing stdin closes the process's stdin (else it
   * only detaches) */
  int stdin_once;
  /* tty: the client's terminal size when it sent one before the start
   * (0 = none yet) */
  unsigned width, height;
} ss_request;

typedef struct ss_backend {
  void *ctx;
  /* exec: starts r->cmd in container r->id; attach: attaches to its init.
   * *proc is the handle the calls below take. */
  int (*open)(void *ctx, const ss_request *r, void **proc, vs_err *err);
  /* Next output: 1 with *stream (1 stdout, 2 stderr) and *data
   * (malloc'd); 0 when the process ended (*code: its exit code, 128+signal
   * if killed); -1 when cancel_fd became readable, or on error. */
  int (*next)(void *proc, int cancel_fd, int *stream, char **data, size_t *len, int *code,
              vs_err *err);
  int (*write_stdin)(void *proc, const void *data, size_t len, int eof, vs_err *err);
  int (*resize)(void *proc, unsigned width, unsigned height, vs_err *err);
  /* Frees the handle; kill: the client left while the exec still runs. */
  void (*close)(void *proc, int kill);
  /* A connected TCP socket to port in pod sandbox id. */
  int (*dial)(void *ctx, const char *id, unsigned port, vs_err *err);
} ss_backend;

typedef struct ss_server ss_server;

/* Serves HTTP on addr ("127.0.0.1:0": an ephemeral port on loopback);
 * its URLs expire after ttl_s seconds (0 = SS_TOKEN_TTL_S). */
ss_server *ss_start(const char *addr, int ttl_s, const ss_backend *b, vs_err *err);
/* "http://127.0.0.1:<port>" */
const char *ss_base_url(const ss_server *s);
/* A one-use URL for r (copied). RESOURCE_EXHAUSTED when too many wait. */
int ss_url(ss_server *s, const ss_request *r, char *url, size_t n, vs_err *err);
/* Ends every session (their processes' handles closed) and the server. */
void ss_stop(ss_server *s);

#ifdef __cplusplus
}
#endif
#endif
