/* vrpc: vessel's small RPC runtime on the gRPC C core API.
 *
 * Shared by vesseld, vminitd and vesselctl. It hides gRPC core's completion
 * queues behind a blocking, thread-per-call model:
 *
 *   - every server (and every client channel) owns one completion queue and
 *     one poller thread that only completes operations;
 *   - every incoming call runs its handler on its own thread, so a handler
 *     that blocks for minutes (Wait, an idle stream) never stalls other calls;
 *   - handlers and clients use the same four verbs for all call kinds:
 *     vrpc_recv, vrpc_send, (client) vrpc_close_send / vrpc_finish.
 *
 * Messages are protobuf-c messages. Method tables (path, call kind, message
 * descriptors) are generated from proto/ at build time by bazel/rpcgen.py,
 * so nothing here is kept in sync with the .proto files by hand. */
#ifndef VESSEL_COMMON_RPC_H
#define VESSEL_COMMON_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Messages up to this size are accepted by default (issue floor: 64 MiB). */
#define VRPC_DEFAULT_MAX_MESSAGE (128u << 20)

typedef enum vrpc_kind {
  VRPC_UNARY = 0,
  VRPC_CLIENT_STREAM = 1,
  VRPC_SERVER_STREAM = 2,
  VRPC_BIDI_STREAM = 3,
} vrpc_kind;

typedef struct vrpc_method {
  const char *path; /* "/vessel.v1.System/Version" */
  vrpc_kind kind;
  const ProtobufCMessageDescriptor *input;
  const ProtobufCMessageDescriptor *output;
} vrpc_method;

typedef struct vrpc_service {
  const char *name; /* "vessel.v1.System" */
  size_t n_methods;
  const vrpc_method *const *methods;
} vrpc_service;

/* One .proto file, serialized as a FileDescriptorProto (for reflection). */
typedef struct vrpc_file_descriptor {
  const char *name; /* "vessel/v1/system.proto" */
  const uint8_t *data;
  size_t len;
  const char *const *deps; /* NULL-terminated file names */
  const char *const *symbols; /* NULL-terminated fully-qualified names */
} vrpc_file_descriptor;

typedef struct vrpc_descriptor_pool {
  size_t n_files;
  const vrpc_file_descriptor *files;
} vrpc_descriptor_pool;

/* TLS material as PEM file paths.
 * Server: cert+key identify the server; ca, when set, makes client
 *   certificates mandatory and verified against it (mutual TLS).
 * Client: ca verifies the server; cert+key, when set, identify the client;
 *   server_name overrides the name checked against the server certificate. */
typedef struct vrpc_tls {
  const char *cert_file;
  const char *key_file;
  const char *ca_file;
  const char *server_name;
} vrpc_tls;

typedef struct vrpc_server vrpc_server;
typedef struct vrpc_channel vrpc_channel;
typedef struct vrpc_call vrpc_call;

/* A handler runs on a thread of its own. It reads requests with vrpc_recv
 * (unary and server-streaming methods: exactly one), writes responses with
 * vrpc_send, and returns 0 for OK or -1 with err set: err's code and message
 * become the call's gRPC status. Handlers that wait for long must watch
 * vrpc_cancel_fd (client cancel, deadline, server shutdown). */
typedef int (*vrpc_handler)(vrpc_call *call, void *ctx, vs_err *err);

/* ---- server ---- */

typedef struct vrpc_server_opts {
  size_t max_message_bytes; /* 0 = VRPC_DEFAULT_MAX_MESSAGE */
  /* Calls one client connection may have in flight at once (each has a
   * handler thread); one more is answered RESOURCE_EXHAUSTED at once.
   * 0 = no limit. */
  int max_calls_per_connection;
  /* Unix sockets are made with this mode whatever the umask (0 = 0660),
   * and, with has_unix_gid, owned by group unix_gid (else the process's).
   * Set before clients can connect (between bind and listen). */
  int unix_mode;
  int has_unix_gid;
  unsigned unix_gid;
  /* Called as each call ends, once its status was sent, for metrics: its
   * method (NULL: a path no registered service has), the status code sent
   * and the nanoseconds since the call arrived. On the handler's thread, or
   * for a call refused at once (RESOURCE_EXHAUSTED) on the poller's: it
   * must be quick and must not block. */
  void (*on_done)(void *arg, const vrpc_method *m, vs_code code, int64_t ns);
  void *on_done_arg;
} vrpc_server_opts;

vrpc_server *vrpc_server_new(const vrpc_server_opts *opts, vs_err *err);

/* handlers[i] serves svc->methods[i]; a NULL entry answers UNIMPLEMENTED.
 * Call before vrpc_server_start. */
int vrpc_server_add_service(vrpc_server *srv, const vrpc_service *svc,
                            const vrpc_handler *handlers, void *ctx,
                            vs_err *err);

/* uri: unix:///abs/path, unix:relative, tcp://host:port (port 0 picks one).
 * tls NULL = plaintext. *bound_port (may be NULL) receives the TCP port.
 * Call before vrpc_server_start. A plaintext unix socket is accepted by
 * vrpc itself and each connection served as an fd, so that every client
 * connection is told apart (gRPC names every unix peer "unix:"). */
int vrpc_server_listen(vrpc_server *srv, const char *uri, const vrpc_tls *tls,
                       int *bound_port, vs_err *err);

int vrpc_server_start(vrpc_server *srv, vs_err *err);

/* Serves one already-connected stream socket (plaintext HTTP/2), e.g. the
 * guest agent channel. Takes ownership of fd. Call after vrpc_server_start. */
int vrpc_server_serve_fd(vrpc_server *srv, int fd, vs_err *err);

/* Names of the registered services, for reflection and health. */
size_t vrpc_server_services(vrpc_server *srv, const char **names, size_t max);

/* Stops accepting calls, lets in-flight calls run for up to grace_ms, then
 * cancels the rest and waits for their handlers to return. Idempotent. */
void vrpc_server_shutdown(vrpc_server *srv, int grace_ms);

/* Shuts down (grace 0) if needed and frees. */
void vrpc_server_free(vrpc_server *srv);

/* Serve grpc.health.v1.Health: SERVING for "" and registered services. */
int vrpc_health_register(vrpc_server *srv, vs_err *err);

/* Serve grpc.reflection.v1 and v1alpha ServerReflection from the files of
 * pools (the first pool holding a file name wins). */
int vrpc_reflection_register(vrpc_server *srv,
                             const vrpc_descriptor_pool *const *pools,
                             size_t n_pools, vs_err *err);

/* ---- client ---- */

typedef struct vrpc_channel_opts {
  size_t max_message_bytes; /* 0 = VRPC_DEFAULT_MAX_MESSAGE */
  /* Called as each call starts on the channel (a trace of calls). */
  void (*on_call)(void *arg, const vrpc_method *m);
  void *on_call_arg;
} vrpc_channel_opts;

/* uri as for vrpc_server_listen; tls NULL = plaintext. Connects lazily. */
vrpc_channel *vrpc_dial(const char *uri, const vrpc_tls *tls,
                        const vrpc_channel_opts *opts, vs_err *err);

/* A channel over an already-connected stream socket; takes ownership. */
vrpc_channel *vrpc_dial_fd(int fd, const vrpc_channel_opts *opts, vs_err *err);

void vrpc_channel_free(vrpc_channel *ch);

/* 1 while the channel has a live connection to its server: an UNAVAILABLE
 * then came from the server, not from failing to reach it. */
int vrpc_channel_connected(vrpc_channel *ch);

typedef struct vrpc_call_opts {
  int64_t timeout_ms;          /* <= 0: no deadline */
  const char *const *metadata; /* key, value, key, value, ..., NULL */
} vrpc_call_opts;

/* Starts a call of any kind; send the request(s) with vrpc_send. */
vrpc_call *vrpc_call_start(vrpc_channel *ch, const vrpc_method *m,
                           const vrpc_call_opts *opts, vs_err *err);

/* Half-closes the client's side (no more vrpc_send). */
int vrpc_close_send(vrpc_call *call, vs_err *err);

/* Waits for the final status: 0 if OK, else -1 with err = the status. */
int vrpc_finish(vrpc_call *call, vs_err *err);

/* Cancels the call; safe from any thread, also while another thread is
 * blocked in vrpc_recv/vrpc_send on it. */
void vrpc_cancel(vrpc_call *call);

/* Cancels the call if unfinished and frees it. */
void vrpc_call_free(vrpc_call *call);

/* One request, one response. *resp is freed with vrpc_msg_free. */
int vrpc_unary(vrpc_channel *ch, const vrpc_method *m,
               const ProtobufCMessage *req, ProtobufCMessage **resp,
               const vrpc_call_opts *opts, vs_err *err);

/* ---- both sides ---- */

/* Sends one message. Blocks while flow control holds it back. */
int vrpc_send(vrpc_call *call, const ProtobufCMessage *msg, vs_err *err);

/* Receives one message: 1 and *msg set; 0 at the end of the stream (client:
 * status OK; server: the client half-closed); -1 with err on failure
 * (client: err is the call's status; server: the call was cancelled). */
int vrpc_recv(vrpc_call *call, ProtobufCMessage **msg, vs_err *err);

void vrpc_msg_free(ProtobufCMessage *msg);

/* Server side: 1 once the call was cancelled (by the client, its deadline or
 * server shutdown). Client side: 1 once vrpc_cancel was called. */
int vrpc_cancelled(vrpc_call *call);

/* An fd that turns readable when the call is cancelled, for poll(). */
int vrpc_cancel_fd(vrpc_call *call);

/* Milliseconds until the call's deadline; -1 = none. */
int64_t vrpc_remaining_ms(vrpc_call *call);

/* Server side: sends the final status now (OK when status is NULL or its
 * code is VS_OK) instead of when the handler returns; later sends fail and
 * a receive blocked in another thread returns. For handlers whose helper
 * threads must be released before they return. */
int vrpc_server_finish(vrpc_call *call, const vs_err *status);

/* Server side: the method whose handler runs on this thread, or NULL. */
const vrpc_method *vrpc_current_method(void);

/* Server side: the value of request metadata key, or NULL. */
const char *vrpc_metadata(vrpc_call *call, const char *key);

/* The server a call arrived on (server side), else NULL. */
vrpc_server *vrpc_call_server(vrpc_call *call);

const vrpc_method *vrpc_call_method(vrpc_call *call);

/* Server side: the peer address as gRPC reports it ("unix:", "ipv4:..."). */
const char *vrpc_peer(vrpc_call *call);

#ifdef __cplusplus
}
#endif
#endif
