/* svc: the vessel.v1.Agent handlers: thin adapters from protobuf messages
 * to the plain functions of the other modules. One file per group. */
#ifndef VESSEL_GUEST_AGENT_SERVICE_H
#define VESSEL_GUEST_AGENT_SERVICE_H

#include "common/rpc.h"
#include "guest-agent/agent.h"
#include "guest-agent/container.h"
#include "guest-agent/spawn.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Registers vessel.v1.Agent on srv with a as the handlers' context. */
int svc_register(vrpc_server *srv, agent *a, vs_err *err);

/* ProcessSpec -> sp_exec + user (gids points at caller storage of 64). */
int svc_exec_from_spec(const Vessel__V1__ProcessSpec *ps, sp_exec *x, ct_user *u,
                       gid_t *gids, vs_err *err);

/* Per-group handler fillers (svc_*.c). */
void svc_system_handlers(vessel_v1_Agent_handlers *h);
void svc_fs_handlers(vessel_v1_Agent_handlers *h);
void svc_container_handlers(vessel_v1_Agent_handlers *h);
void svc_net_handlers(vessel_v1_Agent_handlers *h);

/* Receives the single request of a unary call. */
#define SVC_RECV(call, type, var, err)                              \
  ProtobufCMessage *var##_msg;                                      \
  if (vrpc_recv(call, &var##_msg, err) != 1) return -1;             \
  type *var = (type *)var##_msg;                                    \
  (void)var

#ifdef __cplusplus
}
#endif
#endif
