/* Kubernetes' remotecommand (exec and attach), v4.channel.k8s.io and
 * v5: the client's stdin and terminal sizes in, the process's stdout and
 * stderr out, and at the end a metav1.Status on the error channel (exit
 * code != 0: reason NonZeroExitCode with an ExitCode cause). */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/streaming/streaming_internal.h"

static const char *const ch_name[CH_N] = {"stdin", "stdout", "stderr", "error", "resize"};

int rc_channel(const ss_session *s, uint32_t stream) {
  for (int i = 0; i < CH_N; i++)
    if (s->have[i] && s->ch[i] == stream) return i;
  return -1;
}

/* A metav1.Status: success (code 0), a non-zero exit, or an error. */
static char *status(int code, const char *error) {
  json_t *o = json_object();
  json_object_set_new(o, "metadata", json_object());
  json_object_set_new(o, "status", json_string(!error && !code ? "Success" : "Failure"));
  if (error) {
    json_object_set_new(o, "message", json_string(error));
    json_object_set_new(o, "reason", json_string("InternalError"));
    json_object_set_new(o, "details", json_pack("{s:[{s:s}]}", "causes", "message", error));
    json_object_set_new(o, "code", json_integer(500));
  } else if (code) {
    char msg[256], num[16];
    snprintf(msg, sizeof msg, "command terminated with non-zero exit code: exit status %d", code);
    snprintf(num, sizeof num, "%d", code);
    json_object_set_new(o, "message", json_string(msg));
    json_object_set_new(o, "reason", json_string("NonZeroExitCode"));
    json_object_set_new(o, "details", json_pack("{s:[{s:s,s:s}]}", "causes", "reason", "ExitCode",
                                                "message", num));
  }
  char *out = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return out;
}

static void *pump(void *arg) {
  ss_session *s = arg;
  char *st = NULL;
  for (;;) {
    int stream, code = 0;
    char *data;
    size_t len;
    vs_err err;
    int r = s->b->next(s->proc, s->cancel_fd, &stream, &data, &len, &code, &err);
    if (r == 1) {
      int ch = stream == 2 ? CH_STDERR : CH_STDOUT;
      if (s->have[ch]) ss_push(s, s->ch[ch], 0, NULL, data, len);
      free(data);
      continue;
    }
    pthread_mutex_lock(&s->mu);
    int cancelled = s->cancelled, detached = s->detached;
    pthread_mutex_unlock(&s->mu);
    if (r == 0) {
      __atomic_store_n(&s->exited, 1, __ATOMIC_RELEASE);
      st = status(s->req.kind == SS_EXEC ? code : 0, NULL);
    } else if (detached) {
      st = status(0, NULL);
    } else if (!cancelled) {
      st = status(0, err.msg);
    }
    break;
  }
  if (st) ss_push(s, 0, ITEM_END, NULL, st, strlen(st) + 1);
  free(st);
  return NULL;
}

/* Ends the session with an error status (msg) instead of a process. */
static void fail(ss_session *s, const char *msg) {
  char *st = status(0, msg);
  rc_end(s, st);
  free(st);
}

/* Every stream the request needs exists: start (exec) or attach. */
static void start(ss_session *s) {
  s->started = 1;
  vs_err err;
  if (s->b->open(s->b->ctx, &s->req, &s->proc, &err) < 0) {
    fail(s, err.msg);
    return;
  }
  s->proc_open = 1;
  /* an exec without stdin reads EOF at once, as under a container runtime */
  if (s->req.kind == SS_EXEC && !s->req.in) s->b->write_stdin(s->proc, "", 0, 1, &err);
  if (s->held_len) s->b->write_stdin(s->proc, s->held, s->held_len, 0, &err);
  free(s->held);
  s->held = NULL;
  s->held_len = 0;
  if (s->held_eof) rc_eof(s, CH_STDIN);
  if (pthread_create(&s->pump, NULL, pump, s) != 0) {
    fail(s, "cannot start a thread");
    return;
  }
  s->pump_started = 1;
}

/* The channels the request needs: stdin, stdout, stderr (not with a
 * terminal), error, resize (a terminal). */
static int wants(const ss_session *s, int ch) {
  const ss_request *r = &s->req;
  int want[CH_N] = {r->in, r->out, r->err && !r->tty, 1, r->tty};
  return want[ch];
}

void rc_begin(ss_session *s) {
  for (int i = 0; i < CH_N; i++) {
    s->have[i] = wants(s, i);
    s->ch[i] = (uint32_t)i;
  }
  /* the first writable channel gets an empty message: "connected" */
  int first = s->have[CH_STDOUT] ? CH_STDOUT : s->have[CH_STDERR] ? CH_STDERR : CH_ERROR;
  ss_send(s, (uint32_t)first, NULL, 0, 0);
  s->ready = 1;
}

/* A terminal's size follows the streams at once; the process starts with
 * it rather than resized after its first output. */
#define SIZE_WAIT_MS 1000

void rc_maybe_start(ss_session *s, int64_t now_ms) {
  if (!s->ready || s->started) return;
  if (s->req.tty && !s->req.width) {
    if (!s->start_by_ms) s->start_by_ms = now_ms + SIZE_WAIT_MS;
    if (now_ms < s->start_by_ms) return;
  }
  start(s);
}

void rc_stream(ss_session *s, uint32_t id, const spdy_headers *h) {
  const char *type = spdy_header(h, "streamtype");
  ss_reply(s, id);
  for (int i = 0; type && i < CH_N; i++)
    if (!strcmp(type, ch_name[i])) {
      s->have[i] = 1;
      s->ch[i] = id;
    }
  if (s->ready) return;
  for (int i = 0; i < CH_N; i++)
    if (wants(s, i) && !s->have[i]) return;
  s->ready = 1;
}

/* Terminal sizes arrive as a stream of JSON objects {"Width":..,"Height":..}. */
static void resize_in(ss_session *s, const void *data, size_t len) {
  if (s->resize_len + len > sizeof s->resize) s->resize_len = 0; /* garbage: start over */
  if (len > sizeof s->resize) return;
  memcpy(s->resize + s->resize_len, data, len);
  s->resize_len += len;
  for (;;) {
    json_error_t e;
    json_t *o = json_loadb(s->resize, s->resize_len, JSON_DISABLE_EOF_CHECK, &e);
    if (!o) return; /* not whole yet */
    json_int_t w = json_integer_value(json_object_get(o, "Width"));
    json_int_t hgt = json_integer_value(json_object_get(o, "Height"));
    json_decref(o);
    vs_err err;
    if (w > 0 && hgt > 0 && w < 65536 && hgt < 65536) {
      if (s->proc_open) {
        s->b->resize(s->proc, (unsigned)w, (unsigned)hgt, &err);
      } else if (!s->started) { /* the size it starts with */
        s->req.width = (unsigned)w;
        s->req.height = (unsigned)hgt;
      }
    }
    size_t used = (size_t)e.position;
    if (used == 0 || used > s->resize_len) used = s->resize_len;
    memmove(s->resize, s->resize + used, s->resize_len - used);
    s->resize_len -= used;
  }
}

/* Stdin before the start is held (clients write as soon as the streams
 * exist), up to HOLD_MAX. */
#define HOLD_MAX (1u << 20)

void rc_input(ss_session *s, int ch, const void *data, size_t len) {
  vs_err err;
  if (ch == CH_STDIN && s->req.in && len && s->proc_open) {
    s->b->write_stdin(s->proc, data, len, 0, &err);
  } else if (ch == CH_STDIN && s->req.in && len && !s->started && s->held_len + len <= HOLD_MAX) {
    char *p = realloc(s->held, s->held_len + len);
    if (!p) return;
    memcpy(p + s->held_len, data, len);
    s->held = p;
    s->held_len += len;
  } else if (ch == CH_RESIZE && len)
    resize_in(s, data, len);
}

/* Ends the pump's wait for output, saying why (*why: detached or
 * cancelled, read by the pump under s->mu). */
static void stop_pump(ss_session *s, int *why) {
  pthread_mutex_lock(&s->mu);
  *why = 1;
  pthread_mutex_unlock(&s->mu);
  ss_signal(s->cancel_fd);
}

/* The client has closed its stdin: the process's closes too (an exec, or
 * an attach with stdin_once); a plain attach ends (detaches). */
void rc_eof(ss_session *s, int ch) {
  if (ch == CH_STDIN && !s->started) s->held_eof = 1;
  if (ch != CH_STDIN || !s->proc_open || !s->req.in) return;
  vs_err err;
  if (s->req.kind == SS_EXEC || s->req.stdin_once) {
    s->b->write_stdin(s->proc, "", 0, 1, &err);
  } else {
    stop_pump(s, &s->detached);
  }
}

void rc_end(ss_session *s, const char *st) {
  if (st && s->have[CH_ERROR]) ss_send(s, s->ch[CH_ERROR], st, strlen(st), 0);
  if (s->proto != SS_WS_CHANNELS) /* WebSocket: the loop closes once all is out */
    for (int i = 0; i < CH_N; i++)
      if (s->have[i]) ss_send(s, s->ch[i], NULL, 0, 1);
  s->ending = 1;
}

void rc_teardown(ss_session *s) {
  if (s->pump_started) {
    stop_pump(s, &s->cancelled);
    pthread_join(s->pump, NULL);
    s->pump_started = 0;
  }
  if (s->proc_open) {
    /* an exec whose client left is killed, as kubelet's runtimes do */
    s->b->close(s->proc, s->req.kind == SS_EXEC && !__atomic_load_n(&s->exited, __ATOMIC_ACQUIRE));
    s->proc_open = 0;
  }
}
