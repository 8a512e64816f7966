/* Upkeep of every container, by one thread, off the request path, every
 * CHECK_MS:
 * - Console logs kept bounded: QEMU appends a VM's serial console to
 *   <container>/console.log for as long as the VM runs, and nothing in the
 *   guest bounds what the kernel (or anything that reaches the console)
 *   writes; each VM's log keeps its last MiB on disk (vm_console_trim).
 * - Finished execs forgotten (rt_execs_reap): their DeleteProcess round
 *   trips to the guest are made here, not by the next Exec's caller. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/vs_log.h"
#include "server/runtime/runtime_internal.h"

#define CHECK_MS 1000
#define RT_CONSOLE_KEEP (1 << 20)

static void upkeep_all(rt_runtime *rt) {
  size_t n;
  rt_container **all = rt_get_all(rt, &n);
  for (size_t i = 0; i < n; i++) {
    pthread_mutex_lock(&all[i]->mu);
    int up = all[i]->vm != NULL;
    pthread_mutex_unlock(&all[i]->mu);
    char p[4400];
    snprintf(p, sizeof p, "%s/console.log", all[i]->dir);
    if (up && vm_console_trim(p, RT_CONSOLE_KEEP) < 0)
      vs_log("vesseld", VS_LOG_WARN, "container %s: console log not trimmed: %s", all[i]->id,
             strerror(errno));
    rt_execs_reap(all[i]);
  }
  rt_put_all(all, n);
}

static void *upkeep_main(void *arg) {
  rt_runtime *rt = arg;
  pthread_mutex_lock(&rt->mu);
  while (!rt->upkeep_stop) {
    struct timespec until = rt_deadline(CHECK_MS);
    pthread_cond_timedwait(&rt->upkeep_cv, &rt->mu, &until);
    if (rt->upkeep_stop) break;
    pthread_mutex_unlock(&rt->mu);
    upkeep_all(rt);
    pthread_mutex_lock(&rt->mu);
  }
  pthread_mutex_unlock(&rt->mu);
  return NULL;
}

int rt_upkeep_open(rt_runtime *rt, vs_err *err) {
  pthread_cond_init(&rt->upkeep_cv, NULL);
  int rc = pthread_create(&rt->upkeep_thread, NULL, upkeep_main, rt);
  if (rc != 0) return vs_err_errno(err, VS_RESOURCE_EXHAUSTED, rc, "upkeep thread");
  rt->upkeep_running = 1;
  return 0;
}

void rt_upkeep_close(rt_runtime *rt) {
  if (!rt->upkeep_running) return;
  pthread_mutex_lock(&rt->mu);
  rt->upkeep_stop = 1;
  pthread_cond_broadcast(&rt->upkeep_cv);
  pthread_mutex_unlock(&rt->mu);
  pthread_join(rt->upkeep_thread, NULL);
  pthread_cond_destroy(&rt->upkeep_cv);
  rt->upkeep_running = 0;
}
