/* sio: the Agent.Stdio bidirectional stream of one process: stdin frames in,
 * stdout/stderr frames out (in order, nothing lost), then the exit status. */
#ifndef VESSEL_GUEST_AGENT_STDIO_H
#define VESSEL_GUEST_AGENT_STDIO_H

#include "common/rpc.h"
#include "common/vs_err.h"
#include "guest-agent/agent.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Serves one Agent.Stdio call until the process exited and all output was
 * sent (then waits briefly for the client to half-close), or until the call
 * is cancelled. */
int sio_serve(agent *a, vrpc_call *call, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
