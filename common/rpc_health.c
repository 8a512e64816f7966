/* grpc.health.v1.Health for any vrpc server: a server that answers is
 * serving every service it registered. */
#include <poll.h>
#include <string.h>

#include "common/rpc_internal.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc_proto_rpc.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus health_status;

static health_status status_of(vrpc_call *call, const char *service) {
  if (!service || !*service) return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  const char *names[64];
  size_t n = vrpc_server_services(vrpc_call_server(call), names, 64);
  for (size_t i = 0; i < n && i < 64; i++)
    if (strcmp(names[i], service) == 0)
      return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
}

static int send_status(vrpc_call *call, health_status st, vs_err *err) {
  Grpc__Health__V1__HealthCheckResponse resp;
  grpc__health__v1__health_check_response__init(&resp);
  resp.status = st;
  return vrpc_send(call, &resp.base, err);
}

static int health_check(vrpc_call *call, void *ctx, vs_err *err) {
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  Grpc__Health__V1__HealthCheckRequest *req = (Grpc__Health__V1__HealthCheckRequest *)in;
  health_status st = status_of(call, req->service);
  int rc = st == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
               ? vs_err_set(err, VS_NOT_FOUND, "unknown service %s", req->service)
               : send_status(call, st, err);
  vrpc_msg_free(in);
  return rc;
}

/* Sends the status once, then holds the stream open until the client goes
 * away or the server shuts down (statuses never change while serving). */
static int health_watch(vrpc_call *call, void *ctx, vs_err *err) {
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  health_status st = status_of(call, ((Grpc__Health__V1__HealthCheckRequest *)in)->service);
  vrpc_msg_free(in);
  if (send_status(call, st, err) < 0) return -1;
  struct pollfd p = {vrpc_cancel_fd(call), POLLIN, 0};
  while (poll(&p, 1, -1) < 0) {
  }
  return vs_err_set(err, VS_CANCELLED, "watch ended");
}

int vrpc_health_register(vrpc_server *srv, vs_err *err) {
  const grpc_health_v1_Health_handlers h = {.Check = health_check, .Watch = health_watch};
  return grpc_health_v1_Health_register(srv, &h, NULL, err);
}
