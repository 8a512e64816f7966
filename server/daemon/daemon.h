/* vesseld's process-wide state, passed to every service as its context. */
#ifndef VESSEL_SERVER_DAEMON_DAEMON_H
#define VESSEL_SERVER_DAEMON_DAEMON_H

#include <pthread.h>
#include <time.h>

#include "common/rpc.h"
#include "server/daemon/config.h"
#include "server/events/events.h"
#include "server/images/images.h"
#include "server/metrics/metrics.h"
#include "server/net/net.h"
#include "server/runtime/runtime.h"
#include "server/streaming/streaming.h"

#define VESSEL_VERSION "0.1.0"
#define VESSEL_API_VERSION "vessel.v1"

typedef struct vd_daemon {
  vd_config cfg;
  struct timespec started; /* CLOCK_REALTIME */
  const char *listen_uris[VD_MAX_LISTEN]; /* as bound: tcp port 0 resolved */
  char listen_buf[VD_MAX_LISTEN][160];
  size_t n_listen;
  img_store *images; /* <root>/images.db + <root>/content */
  evb_bus *events;
  net_store *networks; /* <root>/networks */
  rt_runtime *runtime; /* <root>/containers */
  ss_server *stream;   /* the CRI's streaming server, with --cri-listen */
  vm_accel accel;      /* every VM's, decided at start (--accel) */
  char accel_reason[600];
  mt_registry *metrics;      /* with --metrics-listen, else NULL (nothing recorded) */
  mt_family *m_rpc_calls;    /* {method, code} */
  mt_family *m_rpc_secs;     /* {method} */
  mt_server *metrics_server; /* serving it, once everything else is up */
  /* probed at the first System.Info, under probe_mu */
  pthread_mutex_t probe_mu;
  int probed;
  char qemu_version[64];
  char kernel_release[128];
} vd_daemon;

/* In a handler: receives the one request message as `type *var` (and
 * var##_msg for vrpc_msg_free), or returns -1 with err set. */
#define RECV(type, var)                                 \
  ProtobufCMessage *var##_msg;                          \
  if (vrpc_recv(call, &var##_msg, err) != 1) return -1; \
  type *var = (type *)var##_msg

/* Registers vessel.v1.System on srv with d as its context. */
int vd_system_register(vrpc_server *srv, vd_daemon *d, vs_err *err);
/* Registers vessel.v1.Events. */
int vd_events_register(vrpc_server *srv, vd_daemon *d, vs_err *err);
/* Publishes an image/network event with one optional attribute. */
void vd_emit(vd_daemon *d, int type, const char *image, const char *key, const char *value);
/* Registers vessel.v1.Containers. */
int vd_containers_register(vrpc_server *srv, vd_daemon *d, vs_err *err);
/* Registers vessel.v1.Networks. */
int vd_networks_register(vrpc_server *srv, vd_daemon *d, vs_err *err);
/* Registers vessel.v1.Pods. */
int vd_pods_register(vrpc_server *srv, vd_daemon *d, vs_err *err);
/* Registers runtime.v1.RuntimeService and ImageService (Kubernetes' CRI)
 * on their own server (--cri-listen). */
int vd_cri_register(vrpc_server *srv, vd_daemon *d, vs_err *err);
/* In a handler: receives a request none of whose fields matter; sends
 * an empty response of message type desc. */
int vd_recv_unused(vrpc_call *call, vs_err *err);
int vd_send_empty(vrpc_call *call, const ProtobufCMessageDescriptor *desc, vs_err *err);
/* The CRI's sandbox and container handlers (cri_pods.c). */
struct runtime_v1_RuntimeService_handlers;
void vd_cri_pod_handlers(struct runtime_v1_RuntimeService_handlers *h);
/* The image a CRI ImageSpec names (containerd's normalisation, an ID, or
 * name@digest): 1 with out (img_info_free), 0 if none, -1 on error. */
struct Runtime__V1__ImageSpec;
int vd_cri_find_image(vd_daemon *d, const struct Runtime__V1__ImageSpec *spec, img_info *out,
                      vs_err *err);
/* Host paths of CRI mounts staged for a sandbox's VM (cri_mounts.c): a
 * sandbox's staging directory (out: PATH_MAX bytes), a mount bound into
 * it (entry), and their undoing. */
struct Runtime__V1__Mount;
int vd_cri_staging_new(vd_daemon *d, char *out, vs_err *err);
int vd_cri_stage(const char *staging, const struct Runtime__V1__Mount *m, char *entry, vs_err *err);
void vd_cri_unstage(const char *entry);
void vd_cri_staging_remove(const char *staging);
/* Exec, Attach and PortForward (cri_stream.c), and the streaming server's
 * backend over d's runtime. */
void vd_cri_stream_handlers(struct runtime_v1_RuntimeService_handlers *h);
void vd_stream_backend(vd_daemon *d, ss_backend *b);
/* Registers vessel.v1.Images. */
int vd_images_register(vrpc_server *srv, vd_daemon *d, vs_err *err);
/* With --metrics-listen: d->metrics with vesseld's own series (process,
 * RPCs); the libraries add theirs when given it. */
int vd_metrics_open(vd_daemon *d, vs_err *err);
/* vrpc_server_opts.on_done (arg: d): counts and times RPCs by method. */
void vd_metrics_rpc_done(void *arg, const vrpc_method *m, vs_code code, int64_t ns);

#endif
