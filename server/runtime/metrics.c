/* The runtime's metrics: containers by state and pods, counted when the
 * registry renders (nothing to keep in step with every transition), and
 * VM starts by path with their durations, recorded by rt_boot. */
#include <time.h>

#include "server/runtime/runtime_internal.h"

static const char *const start_paths[] = {"spare", "template", "cold"};

int rt_metrics_open(rt_runtime *rt, vs_err *err) {
  mt_registry *r = rt->cfg.metrics;
  if (!r) return 0;
  const char *state[] = {"state", NULL}, *path[] = {"path", NULL};
  mt_family *containers = mt_gauge(
      r, "vessel_containers",
      "Containers by state (creating, created, running, stopping, stopped), those in pods included.",
      state, err);
  mt_family *pods = containers ? mt_gauge(r, "vessel_pods", "Pods (one VM each).", NULL, err) : NULL;
  mt_family *starts =
      pods ? mt_counter(r, "vessel_vm_starts_total",
                        "VMs started for containers and pods, by path: spare (a warm spare "
                        "taken over), template (restored from a template), cold (booted).",
                        path, err)
           : NULL;
  mt_family *secs =
      starts ? mt_histogram(r, "vessel_vm_start_duration_seconds",
                            "Time from asking for a container's or pod's VM to its agent "
                            "answering (its root disk copied in), by path.",
                            path, mt_seconds_buckets, mt_n_seconds_buckets, err)
             : NULL;
  if (!secs) return -1;
  /* Every series from the start: a path never taken shows 0. */
  for (rt_state s = RT_CREATING; s <= RT_STOPPED; s++)
    rt->m_containers[s] = mt_with1(containers, rt_state_name(s));
  rt->m_pods = mt_with(pods, NULL);
  for (int i = 0; i < 3; i++) {
    rt->m_starts[i] = mt_with1(starts, start_paths[i]);
    rt->m_start_secs[i] = mt_with1(secs, start_paths[i]);
  }
  return 0;
}

static void collect(void *arg) {
  rt_runtime *rt = arg;
  double by_state[RT_STOPPED + 1] = {0}, pods = 0;
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n; i++) {
    rt_container *c = rt->list[i];
    if (c->is_pod) {
      pods++;
      continue;
    }
    pthread_mutex_lock(&c->mu);
    rt_state s = c->state;
    pthread_mutex_unlock(&c->mu);
    if (s >= RT_CREATING && s <= RT_STOPPED) by_state[s]++;
  }
  pthread_mutex_unlock(&rt->mu);
  for (rt_state s = RT_CREATING; s <= RT_STOPPED; s++) mt_set(rt->m_containers[s], by_state[s]);
  mt_set(rt->m_pods, pods);
}

int rt_metrics_collect(rt_runtime *rt, vs_err *err) {
  return rt->cfg.metrics ? mt_collector(rt->cfg.metrics, collect, rt, err) : 0;
}

double rt_metrics_clock(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void rt_metrics_vm_start(rt_runtime *rt, rt_start_path path, double t0) {
  mt_add(rt->m_starts[path], 1);
  mt_observe(rt->m_start_secs[path], rt_metrics_clock() - t0);
}
