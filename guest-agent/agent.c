/* Lookups over the agent's containers and processes. */
#include "guest-agent/agent.h"

#include <string.h>
#include <sys/eventfd.h>

#include "common/vs_fs.h"

int ag_init(agent *a, vs_err *err) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  ev_hub_init(&a->events);
  a->shutdown_fd = eventfd(0, EFD_CLOEXEC);
  if (a->shutdown_fd < 0) return vs_err_set(err, VS_INTERNAL, "eventfd");
  return 0;
}

ag_container *ag_find_container(agent *a, const char *id) {
  for (ag_container *c = a->containers; c; c = c->next)
    if (strcmp(c->id, id) == 0) return c;
  return NULL;
}

ag_process *ag_find_process(ag_container *c, const char *process_id) {
  if (!process_id || !*process_id || strcmp(process_id, c->id) == 0)
    return c->procs && c->procs->is_init ? c->procs : NULL;
  for (ag_process *p = c->procs; p; p = p->next)
    if (!p->is_init && strcmp(p->id, process_id) == 0) return p;
  return NULL;
}

int ag_valid_id(const char *id) { return vs_valid_name(id, AG_ID_MAX); }
