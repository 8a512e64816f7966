/* Registration of every Agent handler. */
#include "guest-agent/service.h"

#include <string.h>

int svc_register(vrpc_server *srv, agent *a, vs_err *err) {
  vessel_v1_Agent_handlers h;
  memset(&h, 0, sizeof h);
  svc_system_handlers(&h);
  svc_fs_handlers(&h);
  svc_container_handlers(&h);
  svc_net_handlers(&h);
  return vessel_v1_Agent_register(srv, &h, a, err);
}
