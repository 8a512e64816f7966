/* metrics: counters, gauges and histograms, rendered in Prometheus' text
 * exposition format (version 0.0.4), and a small HTTP server for them.
 *
 * A registry (mt_registry) is owned by whoever runs the process (vesseld's
 * main) and handed to each library that records; there is no global one.
 * A family (mt_family) is one metric name with its help, type and label
 * names; a series (mt_series) is one combination of label values of a
 * family. Series are made on first use and live as long as the registry,
 * so a caller may keep the pointer. Everything is thread-safe.
 *
 * A NULL family or series records nothing: a library given no registry
 * records unconditionally and costs nothing.
 *
 * Values that are cheap to read but costly to track (a process's open fds,
 * a count of containers by state) are set by collectors, which the
 * registry calls before each rendering. */
#ifndef VESSEL_SERVER_METRICS_METRICS_H
#define VESSEL_SERVER_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Label names per family, at most. */
#define MT_MAX_LABELS 4
/* Series per family, at most: a bound on memory whatever the label values
 * (past it, mt_with returns NULL and the value is dropped). */
#define MT_MAX_SERIES 4096
/* Histogram buckets, at most (+Inf not counted). */
#define MT_MAX_BUCKETS 32
/* "text/plain; version=0.0.4; charset=utf-8" */
#define MT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum mt_type { MT_COUNTER = 1, MT_GAUGE, MT_HISTOGRAM } mt_type;

typedef struct mt_registry mt_registry;
typedef struct mt_family mt_family;
typedef struct mt_series mt_series;

mt_registry *mt_registry_new(vs_err *err);
/* Frees every family and series. Collectors are not called any more:
 * stop the HTTP server (mt_server_stop) before freeing what they read. */
void mt_registry_free(mt_registry *r);

/* A family. name: [a-zA-Z_:][a-zA-Z0-9_:]*, unique in r; help: one line
 * (escaped when rendered); labels: NULL-terminated label names
 * ([a-zA-Z_][a-zA-Z0-9_]*, not starting "__"; a histogram's may not be
 * "le"), or NULL for none. INVALID_ARGUMENT naming the problem. */
mt_family *mt_counter(mt_registry *r, const char *name, const char *help,
                      const char *const *labels, vs_err *err);
mt_family *mt_gauge(mt_registry *r, const char *name, const char *help,
                    const char *const *labels, vs_err *err);
/* buckets: upper bounds, finite and strictly increasing; +Inf is added. */
mt_family *mt_histogram(mt_registry *r, const char *name, const char *help,
                        const char *const *labels, const double *buckets, size_t n_buckets,
                        vs_err *err);

/* Bucket bounds for durations in seconds: 1 ms .. 60 s. */
extern const double mt_seconds_buckets[];
extern const size_t mt_n_seconds_buckets;

/* The series of f with these label values (as many as f has label names;
 * NULL when f has none), made on first use. NULL when f is NULL, a value
 * is missing or memory or MT_MAX_SERIES ran out. */
mt_series *mt_with(mt_family *f, const char *const *values);
/* The same for families of one label (or none: value NULL). */
mt_series *mt_with1(mt_family *f, const char *value);

/* Counter: adds v (negative v is ignored: counters only go up).
 * Gauge: adds v. Histogram: nothing. */
void mt_add(mt_series *s, double v);
/* Gauge: sets v. Others: nothing. */
void mt_set(mt_series *s, double v);
/* Histogram: counts v in its bucket, adds it to the sum. Others: nothing. */
void mt_observe(mt_series *s, double v);
/* The current value (counter, gauge) or count (histogram); for tests. */
double mt_value(const mt_series *s);

/* Called (in registration order, never concurrently with itself) before
 * each rendering; sets gauges. arg must outlive the registry's use. */
typedef void (*mt_collect_fn)(void *arg);
int mt_collector(mt_registry *r, mt_collect_fn fn, void *arg, vs_err *err);

/* Gauges of this process read from /proc/self at each rendering:
 * <prefix>process_open_fds, <prefix>process_threads,
 * <prefix>process_resident_memory_bytes. */
int mt_process_metrics(mt_registry *r, const char *prefix, vs_err *err);

/* The registry in the text format: *out (malloc'd, NUL-terminated) and
 * *len. Families in registration order, series in order of first use. */
int mt_render(mt_registry *r, char **out, size_t *len, vs_err *err);

/* ---- HTTP ---- */

typedef struct mt_server mt_server;

/* Serves GET (and HEAD) /metrics on uri: tcp://HOST:PORT (an IPv4 or
 * IPv6 address or a name; port 0 picks one) or unix:///PATH (a stale
 * socket there is replaced). Other paths: 404; other methods: 405. */
mt_server *mt_server_start(mt_registry *r, const char *uri, vs_err *err);
/* Where it listens, as bound: "tcp://127.0.0.1:9323", "unix:///run/m.sock". */
const char *mt_server_uri(const mt_server *s);
/* Stops serving (waits for a rendering in progress), removes a unix
 * socket, frees. */
void mt_server_stop(mt_server *s);

/* 0 if uri is a listen address mt_server_start takes, else -1 with err
 * (for flag checks, before anything starts). */
int mt_check_uri(const char *uri, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
