/* Console logs kept bounded: QEMU appends a VM's serial console to
 * <container>/console.log for as long as the VM runs, and nothing in the
 * guest bounds what the kernel (or anything that reaches the console)
 * writes. One thread checks every VM's log every few seconds and keeps its
 * last MiB on disk (vm_console_trim). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/vs_log.h"
#include "server/runtime/runtime_internal.h"

#define CHECK_MS 5000
#define RT_CONSOLE_KEEP (1 << 20)

static void trim_all(rt_runtime *rt) {
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
  }
  rt_put_all(all, n);
}

static void *keeper_main(void *arg) {
  rt_runtime *rt = arg;
  pthread_mutex_lock(&rt->mu);
  while (!rt->console_stop) {
    struct timespec until = rt_deadline(CHECK_MS);
    pthread_cond_timedwait(&rt->console_cv, &rt->mu, &until);
    if (rt->console_stop) break;
    pthread_mutex_unlock(&rt->mu);
    trim_all(rt);
    pthread_mutex_lock(&rt->mu);
  }
  pthread_mutex_unlock(&rt->mu);
  return NULL;
}

int rt_console_open(rt_runtime *rt, vs_err *err) {
  pthread_cond_init(&rt->console_cv, NULL);
  int rc = pthread_create(&rt->console_thread, NULL, keeper_main, rt);
  if (rc != 0) return vs_err_errno(err, VS_RESOURCE_EXHAUSTED, rc, "console keeper thread");
  rt->console_running = 1;
  return 0;
}

void rt_console_close(rt_runtime *rt) {
  if (!rt->console_running) return;
  pthread_mutex_lock(&rt->mu);
  rt->console_stop = 1;
  pthread_cond_broadcast(&rt->console_cv);
  pthread_mutex_unlock(&rt->mu);
  pthread_join(rt->console_thread, NULL);
  pthread_cond_destroy(&rt->console_cv);
  rt->console_running = 0;
}
