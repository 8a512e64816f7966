/* Call plumbing shared by both sides: completion queue poller, blocking
 * operations, message send/receive. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "common/rpc_internal.h"

/* ---- completion queue poller ---- */

static void *poll_loop(void *arg) {
  vrpc_cq *q = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(
        q->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE && ev.tag) {
      vrpc_tag *t = ev.tag;
      t->fn(t, ev.success);
    }
  }
  return NULL;
}

int vrpc_cq_start(vrpc_cq *q, vs_err *err) {
  q->cq = grpc_completion_queue_create_for_next(NULL);
  if (!q->cq) return vs_err_set(err, VS_INTERNAL, "cannot create completion queue");
  int rc = pthread_create(&q->thread, NULL, poll_loop, q);
  if (rc != 0) {
    grpc_completion_queue_destroy(q->cq);
    q->cq = NULL;
    return vs_err_errno(err, VS_RESOURCE_EXHAUSTED, rc, "cannot start poller thread");
  }
  q->running = 1;
  return 0;
}

void vrpc_cq_stop(vrpc_cq *q) {
  if (!q->cq) return;
  grpc_completion_queue_shutdown(q->cq);
  if (q->running) pthread_join(q->thread, NULL);
  grpc_completion_queue_destroy(q->cq);
  q->cq = NULL;
  q->running = 0;
}

/* ---- operations ---- */

static void op_done(vrpc_tag *t, int ok) {
  vrpc_op *op = (vrpc_op *)t;
  vrpc_call *c = op->call;
  pthread_mutex_lock(&c->mu);
  op->ok = ok;
  op->done = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

void vrpc_op_init(vrpc_op *op, vrpc_call *c) {
  memset(op, 0, sizeof *op);
  op->tag.fn = op_done;
  op->call = c;
}

int vrpc_op_start(vrpc_op *op, const grpc_op *ops, size_t n) {
  op->started = 1;
  grpc_call_error e = grpc_call_start_batch(op->call->call, ops, n, &op->tag, NULL);
  if (e != GRPC_CALL_OK) {
    pthread_mutex_lock(&op->call->mu);
    op->done = 1;
    op->ok = 0;
    pthread_mutex_unlock(&op->call->mu);
    return -1;
  }
  return 0;
}

int vrpc_op_wait(vrpc_op *op) {
  vrpc_call *c = op->call;
  if (!op->started) return 0;
  pthread_mutex_lock(&c->mu);
  while (!op->done) pthread_cond_wait(&c->cv, &c->mu);
  int ok = op->ok;
  pthread_mutex_unlock(&c->mu);
  return ok;
}

/* ---- call objects ---- */

vrpc_call *vrpc_call_alloc(const vrpc_method *m, size_t max_message, vs_err *err) {
  vrpc_call *c = calloc(1, sizeof *c);
  if (!c) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  c->method = m;
  c->max_message = max_message ? max_message : VRPC_DEFAULT_MAX_MESSAGE;
  c->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->cancel_fd < 0) {
    vs_err_errno(err, VS_RESOURCE_EXHAUSTED, errno, "eventfd");
    free(c);
    return NULL;
  }
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  pthread_mutex_init(&c->send_mu, NULL);
  pthread_mutex_init(&c->recv_mu, NULL);
  c->deadline = gpr_inf_future(GPR_CLOCK_REALTIME);
  return c;
}

void vrpc_call_release(vrpc_call *c) {
  if (c->peer) gpr_free(c->peer);
  close(c->cancel_fd);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->send_mu);
  pthread_mutex_destroy(&c->recv_mu);
  free(c);
}

void vrpc_call_mark_cancelled(vrpc_call *c) {
  pthread_mutex_lock(&c->mu);
  int first = !c->cancelled;
  c->cancelled = 1;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if (first) {
    uint64_t one = 1;
    ssize_t n = write(c->cancel_fd, &one, sizeof one);
    (void)n;
  }
}

int vrpc_cancelled(vrpc_call *c) {
  pthread_mutex_lock(&c->mu);
  int v = c->cancelled;
  pthread_mutex_unlock(&c->mu);
  return v;
}

int vrpc_cancel_fd(vrpc_call *c) { return c->cancel_fd; }

int64_t vrpc_remaining_ms(vrpc_call *c) {
  if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) == 0)
    return -1;
  gpr_timespec now = gpr_now(c->deadline.clock_type);
  gpr_timespec left = gpr_time_sub(c->deadline, now);
  int64_t ms = left.tv_sec * 1000 + left.tv_nsec / 1000000;
  return ms < 0 ? 0 : ms;
}

const vrpc_method *vrpc_call_method(vrpc_call *c) { return c->method; }

const char *vrpc_peer(vrpc_call *c) {
  if (!c->peer && c->call) c->peer = grpc_call_get_peer(c->call);
  return c->peer ? c->peer : "";
}

void vrpc_msg_free(ProtobufCMessage *msg) {
  if (msg) protobuf_c_message_free_unpacked(msg, NULL);
}

/* ---- messages ---- */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* The name of a string field (at any depth) whose value holds a NUL byte,
 * or NULL. protobuf-c hands strings over NUL-terminated, so such a value
 * would silently end at the NUL ("evil.example\0@good" used as
 * "evil.example"): the wire, already parsed once by protobuf-c, is walked
 * with the descriptor instead. */
static const char *nul_string_field(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                                    size_t n) {
  const uint8_t *end = p + n;
  while (p < end) {
    uint64_t key, len;
    if (read_varint(&p, end, &key) < 0) return NULL;
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
    switch (key & 7) {
      case 0:
        if (read_varint(&p, end, &len) < 0) return NULL;
        break;
      case 1: p += 8; break;
      case 5: p += 4; break;
      case 2:
        if (read_varint(&p, end, &len) < 0 || len > (uint64_t)(end - p)) return NULL;
        if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, len)) return f->name;
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
          const char *in = nul_string_field(f->descriptor, p, len);
          if (in) return in;
        }
        p += len;
        break;
      default: return NULL; /* groups: protobuf-c refused them already */
    }
  }
  return NULL;
}

/* Client-side failure: the reason is the call's final status. */
static int client_status_err(vrpc_call *c, vs_err *err) {
  vs_err tmp;
  if (vrpc_finish(c, &tmp) == 0)
    return vs_err_set(err, VS_INTERNAL, "%s: stream ended", c->method->path);
  if (err) *err = tmp;
  return -1;
}

int vrpc_send(vrpc_call *c, const ProtobufCMessage *msg, vs_err *err) {
  const ProtobufCMessageDescriptor *want =
      c->server_side ? c->method->output : c->method->input;
  if (!msg || msg->descriptor != want)
    return vs_err_set(err, VS_INTERNAL, "%s: sending %s, expected %s",
                      c->method->path, msg ? msg->descriptor->name : "NULL",
                      want->name);
  size_t n = protobuf_c_message_get_packed_size(msg);
  if (n > c->max_message)
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED,
                      "%s: message of %zu bytes exceeds the %zu byte limit",
                      c->method->path, n, c->max_message);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);

  pthread_mutex_lock(&c->send_mu);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t k = 0;
  if (c->server_side && !c->initial_md_sent) {
    ops[k].op = GRPC_OP_SEND_INITIAL_METADATA;
    k++;
    c->initial_md_sent = 1;
  }
  ops[k].op = GRPC_OP_SEND_MESSAGE;
  ops[k].data.send_message.send_message = bb;
  k++;
  vrpc_op op;
  vrpc_op_init(&op, c);
  vrpc_op_start(&op, ops, k);
  int ok = vrpc_op_wait(&op);
  pthread_mutex_unlock(&c->send_mu);
  grpc_byte_buffer_destroy(bb);
  if (ok) return 0;
  if (c->server_side)
    return vs_err_set(err, VS_CANCELLED, "%s: call cancelled", c->method->path);
  return client_status_err(c, err);
}

int vrpc_recv(vrpc_call *c, ProtobufCMessage **msg, vs_err *err) {
  *msg = NULL;
  grpc_byte_buffer *bb = NULL;
  grpc_op o;
  memset(&o, 0, sizeof o);
  o.op = GRPC_OP_RECV_MESSAGE;
  o.data.recv_message.recv_message = &bb;
  pthread_mutex_lock(&c->recv_mu);
  vrpc_op op;
  vrpc_op_init(&op, c);
  vrpc_op_start(&op, &o, 1);
  int ok = vrpc_op_wait(&op);
  pthread_mutex_unlock(&c->recv_mu);

  if (!ok || !bb) {
    if (bb) grpc_byte_buffer_destroy(bb);
    if (c->server_side) {
      if (ok && !vrpc_cancelled(c)) return 0; /* client half-closed */
      return vs_err_set(err, VS_CANCELLED, "%s: call cancelled", c->method->path);
    }
    vs_err st;
    if (vrpc_finish(c, &st) == 0) return 0;
    if (err) *err = st;
    return -1;
  }

  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, bb)) {
    grpc_byte_buffer_destroy(bb);
    return vs_err_set(err, VS_INTERNAL, "%s: cannot read message", c->method->path);
  }
  grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  grpc_byte_buffer_destroy(bb);
  const ProtobufCMessageDescriptor *d =
      c->server_side ? c->method->input : c->method->output;
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s),
                                                  GRPC_SLICE_START_PTR(s));
  size_t len = GRPC_SLICE_LENGTH(s);
  if (!m) {
    grpc_slice_unref(s);
    if (!c->server_side) vrpc_cancel(c);
    return vs_err_set(err, c->server_side ? VS_INVALID_ARGUMENT : VS_INTERNAL,
                      "%s: malformed %s message (%zu bytes)", c->method->path,
                      d->name, len);
  }
  const char *bad = c->server_side ? nul_string_field(d, GRPC_SLICE_START_PTR(s), len) : NULL;
  if (bad) {
    protobuf_c_message_free_unpacked(m, NULL);
    grpc_slice_unref(s);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: field %s holds a NUL byte", c->method->path,
                      bad);
  }
  grpc_slice_unref(s);
  *msg = m;
  return 1;
}

/* ---- helpers ---- */

void vrpc_size_args(grpc_channel_args *ca, grpc_arg *args, size_t max_message) {
  int max = (int)(max_message ? max_message : VRPC_DEFAULT_MAX_MESSAGE);
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = max;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = max;
  /* A large HTTP/2 window from the start: streams (stdio, pulls) should
   * not stall on window updates over a slow link (a TCG guest). */
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = (char *)GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES;
  args[2].value.integer = 8 << 20;
  ca->num_args = 3;
  ca->args = args;
}

