/* Internal to server/streaming: one session per upgraded connection. Its
 * loop (the connection's thread) owns the socket, parses what arrives and
 * writes everything that leaves; worker threads (a process's output
 * pump, one reader per forwarded connection) hand it items through a
 * bounded queue. */
#ifndef VESSEL_SERVER_STREAMING_INTERNAL_H
#define VESSEL_SERVER_STREAMING_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "server/streaming/spdy.h"
#include "server/streaming/streaming.h"

/* the session's framing */
enum { SS_SPDY, SS_WS_CHANNELS, SS_WS_SPDY };

/* remotecommand's channels (WebSocket channel numbers; SPDY streamtypes) */
enum { CH_STDIN, CH_STDOUT, CH_STDERR, CH_ERROR, CH_RESIZE, CH_N };

enum { ITEM_FIN = 1, ITEM_END = 2, ITEM_PF_DONE = 4 };

typedef struct ss_item {
  struct ss_item *next;
  uint32_t handle; /* SPDY stream, or WebSocket channel */
  int flags;
  void *conn; /* ITEM_PF_DONE: its pf_conn */
  size_t len;
  char data[];
} ss_item;

typedef struct pf_conn pf_conn;
typedef struct ss_session ss_session;

struct ss_session {
  ss_session *next; /* the server's list */
  const ss_backend *b;
  ss_request req; /* owned copy */
  int fd;
  int proto;
  int ws_version; /* SS_WS_CHANNELS: 4 or 5 */
  wslay_event_context_ptr ws;
  spdy_codec spdy;
  int spdy_ok;
  uint8_t *in; /* SPDY bytes short of a frame */
  size_t in_len, in_cap;
  const char *pre; /* bytes read by HTTP beyond the request */
  size_t pre_len;
  int closed; /* peer gone or broken: the loop ends */
  int ending; /* all said: the loop ends once written */
  int ws_closing; /* the WebSocket close is queued */
  /* workers -> loop */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ss_item *head, *tail;
  size_t queued;
  int stopping;
  int wake_fd;
  /* remotecommand */
  int have[CH_N];
  uint32_t ch[CH_N];
  int ready;   /* every stream the request needs exists */
  int64_t start_by_ms; /* tty: start then even without a terminal size */
  int started, exited, detached, cancelled;
  void *proc;
  int proc_open;
  pthread_t pump;
  int pump_started;
  int cancel_fd;
  char *held; /* stdin that came before the process started */
  size_t held_len;
  int held_eof;
  char resize[1024];
  size_t resize_len;
  /* port forward */
  pf_conn *conns;
};

ss_session *ss_session_new(const ss_backend *b, ss_request *req, int proto, int ws_version);
/* Runs the session on sock until either side ends it; extra: bytes HTTP
 * read past the request. */
void ss_session_run(ss_session *s, int sock, const char *extra, size_t n);
void ss_session_free(ss_session *s);

/* Workers: queue data (or a flag) for the loop; waits while the queue is
 * full; dropped once the session stops. */
void ss_push(ss_session *s, uint32_t handle, int flags, void *conn, const void *data, size_t len);

/* Loop thread: writes data on a stream/channel (fin: SPDY's FIN), a
 * SYN_REPLY. */
void ss_send(ss_session *s, uint32_t handle, const void *data, size_t len, int fin);
void ss_reply(ss_session *s, uint32_t stream);

/* remotecommand (rc.c) */
void rc_begin(ss_session *s); /* WebSocket: all channels exist at once */
/* Starts the process once ready, and for a terminal once its size came
 * (or the wait for it ran out). */
void rc_maybe_start(ss_session *s, int64_t now_ms);
void rc_stream(ss_session *s, uint32_t id, const spdy_headers *h);
void rc_input(ss_session *s, int ch, const void *data, size_t len);
void rc_eof(ss_session *s, int ch);
void rc_end(ss_session *s, const char *status);
void rc_teardown(ss_session *s);
int rc_channel(const ss_session *s, uint32_t stream);

/* portforward.k8s.io over SPDY (pf.c) */
void pf_stream(ss_session *s, uint32_t id, const spdy_headers *h);
void pf_data(ss_session *s, uint32_t id, const void *data, size_t len);
void pf_fin(ss_session *s, uint32_t id, int reset);
void pf_done(ss_session *s, pf_conn *c);
void pf_teardown(ss_session *s);

/* CLOCK_MONOTONIC in ms; one count added to eventfd fd. */
int64_t ss_now_ms(void);
void ss_signal(int fd);

void ss_request_free(ss_request *r);
int ss_request_copy(const ss_request *in, ss_request *out);

#endif
