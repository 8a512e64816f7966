/* Client side of vrpc: channels over a connected fd (or, through rpc_net.c,
 * unix/TCP/TLS addresses), and blocking calls of every kind. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "common/rpc_internal.h"

struct vrpc_channel {
  grpc_channel *ch;
  vrpc_cq cq;
  void (*on_call)(void *arg, const vrpc_method *m);
  void *on_call_arg;
};

static vrpc_channel *channel_alloc(vs_err *err) {
  vrpc_channel *c = calloc(1, sizeof *c);
  if (!c) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  grpc_init();
  if (vrpc_cq_start(&c->cq, err) < 0) {
    grpc_shutdown();
    free(c);
    return NULL;
  }
  return c;
}

vrpc_channel *vrpc_channel_create(const char *target, grpc_channel_credentials *creds,
                                  const grpc_channel_args *args, vs_err *err) {
  vrpc_channel *c = channel_alloc(err);
  if (c) c->ch = grpc_channel_create(target, creds, args);
  grpc_channel_credentials_release(creds);
  return c;
}

vrpc_channel *vrpc_dial_fd(int fd, const vrpc_channel_opts *opts, vs_err *err) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    vs_err_errno(err, VS_INVALID_ARGUMENT, errno, "dial fd %d", fd);
    close(fd);
    return NULL;
  }
  vrpc_channel *c = channel_alloc(err);
  if (!c) {
    close(fd);
    return NULL;
  }
  if (opts) {
    c->on_call = opts->on_call;
    c->on_call_arg = opts->on_call_arg;
  }
  grpc_arg argv[3];
  grpc_channel_args args;
  vrpc_size_args(&args, argv, opts ? opts->max_message_bytes : 0);
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  c->ch = grpc_channel_create_from_fd("fd", fd, creds, &args);
  grpc_channel_credentials_release(creds);
  return c;
}

void vrpc_channel_free(vrpc_channel *c) {
  if (!c) return;
  grpc_channel_destroy(c->ch);
  vrpc_cq_stop(&c->cq);
  free(c);
  grpc_shutdown();
}

vrpc_call *vrpc_call_start(vrpc_channel *ch, const vrpc_method *m,
                           const vrpc_call_opts *opts, vs_err *err) {
  vrpc_call *c = vrpc_call_alloc(m, 0, err);
  if (!c) return NULL;
  c->ch = ch;
  if (ch->on_call) ch->on_call(ch->on_call_arg, m);
  if (opts && opts->timeout_ms > 0)
    c->deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                               gpr_time_from_millis(opts->timeout_ms, GPR_TIMESPAN));
  grpc_slice method = grpc_slice_from_static_string(m->path);
  c->call = grpc_channel_create_call(ch->ch, NULL, GRPC_PROPAGATE_DEFAULTS, ch->cq.cq,
                                     method, NULL, c->deadline, NULL);
  if (!c->call) {
    vrpc_call_release(c);
    vs_err_set(err, VS_INTERNAL, "cannot create call %s", m->path);
    return NULL;
  }
  grpc_metadata_array_init(&c->initial_md);
  grpc_metadata_array_init(&c->trailing_md);
  c->status_details = grpc_empty_slice();

  size_t n = 0;
  while (opts && opts->metadata && opts->metadata[2 * n] && opts->metadata[2 * n + 1]) n++;
  if (n) {
    c->send_md = calloc(n, sizeof *c->send_md);
    for (size_t i = 0; c->send_md && i < n; i++) {
      c->send_md[i].key = grpc_slice_from_copied_string(opts->metadata[2 * i]);
      c->send_md[i].value = grpc_slice_from_copied_string(opts->metadata[2 * i + 1]);
    }
    c->n_send_md = c->send_md ? n : 0;
  }

  grpc_op o;
  memset(&o, 0, sizeof o);
  o.op = GRPC_OP_SEND_INITIAL_METADATA;
  o.data.send_initial_metadata.count = c->n_send_md;
  o.data.send_initial_metadata.metadata = c->send_md;
  vrpc_op_init(&c->init_op, c);
  vrpc_op_start(&c->init_op, &o, 1);

  memset(&o, 0, sizeof o);
  o.op = GRPC_OP_RECV_INITIAL_METADATA;
  o.data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
  vrpc_op_init(&c->recv_init_op, c);
  vrpc_op_start(&c->recv_init_op, &o, 1);

  memset(&o, 0, sizeof o);
  o.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  o.data.recv_status_on_client.trailing_metadata = &c->trailing_md;
  o.data.recv_status_on_client.status = &c->status;
  o.data.recv_status_on_client.status_details = &c->status_details;
  vrpc_op_init(&c->status_op, c);
  vrpc_op_start(&c->status_op, &o, 1);
  return c;
}

int vrpc_close_send(vrpc_call *c, vs_err *err) {
  pthread_mutex_lock(&c->send_mu);
  if (c->half_closed) {
    pthread_mutex_unlock(&c->send_mu);
    return 0;
  }
  c->half_closed = 1;
  grpc_op o;
  memset(&o, 0, sizeof o);
  o.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  vrpc_op op;
  vrpc_op_init(&op, c);
  vrpc_op_start(&op, &o, 1);
  int ok = vrpc_op_wait(&op);
  pthread_mutex_unlock(&c->send_mu);
  if (ok) return 0;
  vs_err st;
  if (vrpc_finish(c, &st) == 0) return 0;
  if (err) *err = st;
  return -1;
}

int vrpc_finish(vrpc_call *c, vs_err *err) {
  vrpc_op_wait(&c->status_op);
  if (c->status == GRPC_STATUS_OK) return 0;
  size_t n = GRPC_SLICE_LENGTH(c->status_details);
  if (n >= sizeof err->msg) n = sizeof err->msg - 1;
  if (err) {
    err->code = (vs_code)c->status;
    memcpy(err->msg, GRPC_SLICE_START_PTR(c->status_details), n);
    err->msg[n] = '\0';
    if (n == 0) vs_err_set(err, (vs_code)c->status, "%s", vs_code_name((vs_code)c->status));
  }
  return -1;
}

int vrpc_channel_connected(vrpc_channel *ch) {
  return grpc_channel_check_connectivity_state(ch->ch, 0) == GRPC_CHANNEL_READY;
}

void vrpc_cancel(vrpc_call *c) {
  vrpc_call_mark_cancelled(c);
  grpc_call_cancel(c->call, NULL);
}

void vrpc_call_free(vrpc_call *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  int done = c->status_op.done;
  pthread_mutex_unlock(&c->mu);
  if (!done) grpc_call_cancel(c->call, NULL);
  vrpc_op_wait(&c->init_op);
  vrpc_op_wait(&c->recv_init_op);
  vrpc_op_wait(&c->status_op);
  grpc_call_unref(c->call);
  grpc_metadata_array_destroy(&c->initial_md);
  grpc_metadata_array_destroy(&c->trailing_md);
  grpc_slice_unref(c->status_details);
  for (size_t i = 0; i < c->n_send_md; i++) {
    grpc_slice_unref(c->send_md[i].key);
    grpc_slice_unref(c->send_md[i].value);
  }
  free(c->send_md);
  vrpc_call_release(c);
}

int vrpc_unary(vrpc_channel *ch, const vrpc_method *m, const ProtobufCMessage *req,
               ProtobufCMessage **resp, const vrpc_call_opts *opts, vs_err *err) {
  *resp = NULL;
  vrpc_call *c = vrpc_call_start(ch, m, opts, err);
  if (!c) return -1;
  int rc = -1;
  if (vrpc_send(c, req, err) < 0 || vrpc_close_send(c, err) < 0) goto out;
  int got = vrpc_recv(c, resp, err);
  if (got < 0) goto out;
  if (vrpc_finish(c, err) < 0) {
    vrpc_msg_free(*resp);
    *resp = NULL;
    goto out;
  }
  if (got == 0) {
    vs_err_set(err, VS_INTERNAL, "%s: server sent no response", m->path);
    goto out;
  }
  rc = 0;
out:
  vrpc_call_free(c);
  return rc;
}
