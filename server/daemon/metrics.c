/* vesseld's own metrics: the process and every RPC it serves (through
 * the RPC runtime's on_done hook, so no handler records anything). The
 * libraries record theirs in the same registry (images, runtime). */
#include "server/daemon/daemon.h"

int vd_metrics_open(vd_daemon *d, vs_err *err) {
  if (!d->cfg.metrics_listen) return 0;
  if (!(d->metrics = mt_registry_new(err))) return -1;
  const char *mc[] = {"method", "code", NULL}, *m[] = {"method", NULL};
  d->m_rpc_calls = mt_counter(d->metrics, "vessel_rpc_requests_total",
                              "RPCs served (vessel.v1, the CRI, health, reflection), by full "
                              "method name and the gRPC status code sent.",
                              mc, err);
  d->m_rpc_secs =
      d->m_rpc_calls
          ? mt_histogram(d->metrics, "vessel_rpc_duration_seconds",
                         "Time from an RPC's arrival to its status being sent, by method "
                         "(streams: their whole life).",
                         m, mt_seconds_buckets, mt_n_seconds_buckets, err)
          : NULL;
  if (!d->m_rpc_secs || mt_process_metrics(d->metrics, "vessel_", err) < 0) {
    mt_registry_free(d->metrics);
    d->metrics = NULL;
    return -1;
  }
  return 0;
}

void vd_metrics_rpc_done(void *arg, const vrpc_method *m, vs_code code, int64_t ns) {
  vd_daemon *d = arg;
  /* Only registered methods become labels: a client cannot make series
   * by calling made-up paths. */
  const char *mc[] = {m ? m->path : "unknown", vs_code_name(code)};
  mt_add(mt_with(d->m_rpc_calls, mc), 1);
  mt_observe(mt_with1(d->m_rpc_secs, mc[0]), (double)ns / 1e9);
}
