/* Internals shared by the rpc_*.c files; not part of the runtime's API. */
#ifndef VESSEL_COMMON_RPC_INTERNAL_H
#define VESSEL_COMMON_RPC_INTERNAL_H

#include <pthread.h>

#include <grpc/grpc.h>

#include "common/rpc.h"

/* Everything placed on a completion queue starts with a vrpc_tag; the poller
 * thread calls fn with the operation's success flag and nothing else, so it
 * never blocks. */
typedef struct vrpc_tag {
  void (*fn)(struct vrpc_tag *tag, int ok);
} vrpc_tag;

/* A completion queue and the thread that drains it. */
typedef struct vrpc_cq {
  grpc_completion_queue *cq;
  pthread_t thread;
  int running;
} vrpc_cq;

int vrpc_cq_start(vrpc_cq *q, vs_err *err);
/* Shuts the queue down, joins the poller, destroys the queue. */
void vrpc_cq_stop(vrpc_cq *q);

/* A batch of operations some thread waits for. */
typedef struct vrpc_op {
  vrpc_tag tag;
  vrpc_call *call;
  int started, done, ok;
} vrpc_op;

struct vrpc_call {
  grpc_call *call;
  const vrpc_method *method;
  int server_side;
  size_t max_message;

  pthread_mutex_t mu; /* guards the op flags below, with cv */
  pthread_cond_t cv;
  pthread_mutex_t send_mu; /* one sender at a time */
  pthread_mutex_t recv_mu; /* one receiver at a time */

  int cancelled;
  int cancel_fd; /* eventfd */
  gpr_timespec deadline;
  char *peer;

  /* server side */
  vrpc_server *srv;
  grpc_call_details details;
  grpc_metadata_array request_md;
  char **md_pairs; /* key, value, ..., NULL (copied from request_md) */
  int initial_md_sent;
  int status_sent;
  vs_code status_code; /* the one sent, once status_sent */
  int64_t arrived_ns;  /* CLOCK_MONOTONIC */
  int close_cancelled;
  vrpc_op close_op;

  /* client side */
  vrpc_channel *ch;
  grpc_metadata *send_md;
  size_t n_send_md;
  vrpc_op init_op;      /* SEND_INITIAL_METADATA */
  vrpc_op recv_init_op; /* RECV_INITIAL_METADATA */
  vrpc_op status_op;    /* RECV_STATUS_ON_CLIENT */
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_status_code status;
  grpc_slice status_details;
  int half_closed;
};

/* Allocates the parts common to both sides. */
vrpc_call *vrpc_call_alloc(const vrpc_method *m, size_t max_message,
                           vs_err *err);
/* Frees what vrpc_call_alloc made (the grpc_call must be released). */
void vrpc_call_release(vrpc_call *c);

void vrpc_op_init(vrpc_op *op, vrpc_call *c);
/* Starts a batch on op; on failure op is marked done with ok=0. */
int vrpc_op_start(vrpc_op *op, const grpc_op *ops, size_t n);
/* Waits until op completed; returns its ok flag. */
int vrpc_op_wait(vrpc_op *op);

/* Marks the call cancelled and wakes poll()ers of cancel_fd. */
void vrpc_call_mark_cancelled(vrpc_call *c);

/* Hands memory to the server, freed with it (service contexts). */
int vrpc_server_keep(vrpc_server *srv, void *ptr, vs_err *err);

/* rpc_net.c's hooks. A listener: a unix socket at unix_path (creds NULL),
 * or target through creds (always released). */
int vrpc_server_add_listener(vrpc_server *srv, const char *uri, const char *target,
                             const char *unix_path, grpc_server_credentials *creds,
                             int *bound_port, vs_err *err);
/* A channel to target through creds (always released). */
vrpc_channel *vrpc_channel_create(const char *target, grpc_channel_credentials *creds,
                                  const grpc_channel_args *args, vs_err *err);

/* Channel args for message sizes and flow control; args must hold 3. */
void vrpc_size_args(grpc_channel_args *ca, grpc_arg *args, size_t max_message);

#endif
