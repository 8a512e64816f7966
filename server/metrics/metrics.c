/* The registry, its families and series, and the text format. */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/metrics/metrics.h"

/* Prometheus' default buckets, with 1 and 2.5 ms below (a local unary RPC
 * takes about a millisecond) and 30 and 60 s above (a cold VM boot under
 * TCG, a pull). */
const double mt_seconds_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,      2.5,   5,    10,    30,   60};
const size_t mt_n_seconds_buckets = sizeof mt_seconds_buckets / sizeof mt_seconds_buckets[0];

struct mt_series {
  mt_family *f;
  mt_series *next;
  char *values[MT_MAX_LABELS];
  double value; /* counter, gauge */
  /* histogram: per bucket (not cumulative; the last is +Inf's), sum, count */
  uint64_t counts[MT_MAX_BUCKETS + 1];
  double sum;
  uint64_t count;
};

struct mt_family {
  mt_family *next;
  char *name, *help;
  mt_type type;
  size_t n_labels;
  char *labels[MT_MAX_LABELS];
  size_t n_buckets;
  double buckets[MT_MAX_BUCKETS];
  pthread_mutex_t mu; /* the series list and every value in it */
  mt_series *head, *tail;
  size_t n_series;
};

typedef struct mt_collector_entry {
  mt_collect_fn fn;
  void *arg;
} mt_collector_entry;

/* mt_process_metrics' gauges */
typedef struct mt_proc {
  mt_series *fds, *threads, *rss;
} mt_proc;

struct mt_registry {
  pthread_mutex_t mu; /* the family list and the collectors */
  mt_family *head, *tail;
  mt_collector_entry *collectors;
  size_t n_collectors;
  pthread_mutex_t render_mu; /* one rendering (and its collectors) at a time */
  mt_proc proc;
};

mt_registry *mt_registry_new(vs_err *err) {
  mt_registry *r = calloc(1, sizeof *r);
  if (!r) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&r->mu, NULL);
  pthread_mutex_init(&r->render_mu, NULL);
  return r;
}

static void series_free(mt_series *s) {
  for (size_t i = 0; i < MT_MAX_LABELS; i++) free(s->values[i]);
  free(s);
}

static void family_free(mt_family *f) {
  for (mt_series *s = f->head, *next; s; s = next) {
    next = s->next;
    series_free(s);
  }
  for (size_t i = 0; i < f->n_labels; i++) free(f->labels[i]);
  pthread_mutex_destroy(&f->mu);
  free(f->name);
  free(f->help);
  free(f);
}

void mt_registry_free(mt_registry *r) {
  if (!r) return;
  for (mt_family *f = r->head, *next; f; f = next) {
    next = f->next;
    family_free(f);
  }
  free(r->collectors);
  pthread_mutex_destroy(&r->mu);
  pthread_mutex_destroy(&r->render_mu);
  free(r);
}

/* ---- families ---- */

static int valid_name(const char *s, int colons) {
  if (!s || !*s || isdigit((unsigned char)*s)) return 0;
  for (; *s; s++)
    if (!(isalnum((unsigned char)*s) || *s == '_' || (colons && *s == ':'))) return 0;
  return 1;
}

static mt_family *family_new(mt_registry *r, mt_type type, const char *name, const char *help,
                             const char *const *labels, const double *buckets,
                             size_t n_buckets, vs_err *err) {
  if (!r) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "metric %s: no registry", name ? name : "(null)");
    return NULL;
  }
  if (!valid_name(name, 1)) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "metric name \"%s\": use [a-zA-Z_:][a-zA-Z0-9_:]*",
               name ? name : "(null)");
    return NULL;
  }
  size_t n_labels = 0;
  for (; labels && labels[n_labels]; n_labels++) {
    const char *l = labels[n_labels];
    if (n_labels == MT_MAX_LABELS) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "metric %s: at most %d labels", name, MT_MAX_LABELS);
      return NULL;
    }
    if (!valid_name(l, 0) || !strncmp(l, "__", 2)) {
      vs_err_set(err, VS_INVALID_ARGUMENT,
                 "metric %s: label name \"%s\": use [a-zA-Z_][a-zA-Z0-9_]*, not starting __",
                 name, l);
      return NULL;
    }
    if (type == MT_HISTOGRAM && !strcmp(l, "le")) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "histogram %s: label \"le\" is the buckets'", name);
      return NULL;
    }
    for (size_t k = 0; k < n_labels; k++)
      if (!strcmp(labels[k], l)) {
        vs_err_set(err, VS_INVALID_ARGUMENT, "metric %s: label %s twice", name, l);
        return NULL;
      }
  }
  if (type == MT_HISTOGRAM) {
    if (n_buckets == 0 || n_buckets > MT_MAX_BUCKETS) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "histogram %s: give 1..%d buckets", name,
                 MT_MAX_BUCKETS);
      return NULL;
    }
    for (size_t i = 0; i < n_buckets; i++)
      if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
        vs_err_set(err, VS_INVALID_ARGUMENT,
                   "histogram %s: bucket bounds must be finite and increasing", name);
        return NULL;
      }
  }
  mt_family *f = calloc(1, sizeof *f);
  if (!f) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&f->mu, NULL);
  f->type = type;
  f->name = strdup(name);
  f->help = strdup(help ? help : "");
  int oom = !f->name || !f->help;
  for (size_t i = 0; i < n_labels; i++) oom |= !(f->labels[f->n_labels++] = strdup(labels[i]));
  if (type == MT_HISTOGRAM) {
    memcpy(f->buckets, buckets, n_buckets * sizeof *buckets);
    f->n_buckets = n_buckets;
  }
  if (oom) {
    family_free(f);
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  pthread_mutex_lock(&r->mu);
  for (mt_family *o = r->head; o; o = o->next)
    if (!strcmp(o->name, name)) {
      pthread_mutex_unlock(&r->mu);
      family_free(f);
      vs_err_set(err, VS_ALREADY_EXISTS, "metric %s is registered already", name);
      return NULL;
    }
  if (r->tail) r->tail->next = f;
  else r->head = f;
  r->tail = f;
  pthread_mutex_unlock(&r->mu);
  /* Without labels the one series exists from the start: a counter shows
   * 0 before anything happened, rather than nothing. */
  if (n_labels == 0) mt_with(f, NULL);
  return f;
}

mt_family *mt_counter(mt_registry *r, const char *name, const char *help,
                      const char *const *labels, vs_err *err) {
  return family_new(r, MT_COUNTER, name, help, labels, NULL, 0, err);
}

mt_family *mt_gauge(mt_registry *r, const char *name, const char *help,
                    const char *const *labels, vs_err *err) {
  return family_new(r, MT_GAUGE, name, help, labels, NULL, 0, err);
}

mt_family *mt_histogram(mt_registry *r, const char *name, const char *help,
                        const char *const *labels, const double *buckets, size_t n_buckets,
                        vs_err *err) {
  return family_new(r, MT_HISTOGRAM, name, help, labels, buckets, n_buckets, err);
}

/* ---- series ---- */

mt_series *mt_with(mt_family *f, const char *const *values) {
  if (!f) return NULL;
  for (size_t i = 0; i < f->n_labels; i++)
    if (!values || !values[i]) return NULL;
  pthread_mutex_lock(&f->mu);
  mt_series *s = f->head;
  for (; s; s = s->next) {
    size_t i = 0;
    while (i < f->n_labels && !strcmp(s->values[i], values[i])) i++;
    if (i == f->n_labels) break;
  }
  if (!s && f->n_series < MT_MAX_SERIES && (s = calloc(1, sizeof *s))) {
    int oom = 0;
    for (size_t i = 0; i < f->n_labels; i++) oom |= !(s->values[i] = strdup(values[i]));
    if (oom) {
      series_free(s);
      s = NULL;
    } else {
      s->f = f;
      if (f->tail) f->tail->next = s;
      else f->head = s;
      f->tail = s;
      f->n_series++;
    }
  }
  pthread_mutex_unlock(&f->mu);
  return s;
}

mt_series *mt_with1(mt_family *f, const char *value) {
  const char *v[1] = {value};
  return mt_with(f, value ? v : NULL);
}

void mt_add(mt_series *s, double v) {
  if (!s || s->f->type == MT_HISTOGRAM || (s->f->type == MT_COUNTER && !(v >= 0))) return;
  pthread_mutex_lock(&s->f->mu);
  s->value += v;
  pthread_mutex_unlock(&s->f->mu);
}

void mt_set(mt_series *s, double v) {
  if (!s || s->f->type != MT_GAUGE) return;
  pthread_mutex_lock(&s->f->mu);
  s->value = v;
  pthread_mutex_unlock(&s->f->mu);
}

void mt_observe(mt_series *s, double v) {
  if (!s || s->f->type != MT_HISTOGRAM || isnan(v)) return;
  mt_family *f = s->f;
  size_t b = 0;
  while (b < f->n_buckets && v > f->buckets[b]) b++; /* le: v <= bound */
  pthread_mutex_lock(&f->mu);
  s->counts[b]++;
  s->count++;
  s->sum += v;
  pthread_mutex_unlock(&f->mu);
}

double mt_value(const mt_series *s) {
  if (!s) return 0;
  pthread_mutex_lock(&s->f->mu);
  double v = s->f->type == MT_HISTOGRAM ? (double)s->count : s->value;
  pthread_mutex_unlock(&s->f->mu);
  return v;
}

int mt_collector(mt_registry *r, mt_collect_fn fn, void *arg, vs_err *err) {
  pthread_mutex_lock(&r->mu);
  mt_collector_entry *c = realloc(r->collectors, (r->n_collectors + 1) * sizeof *c);
  if (!c) {
    pthread_mutex_unlock(&r->mu);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  r->collectors = c;
  r->collectors[r->n_collectors++] = (mt_collector_entry){fn, arg};
  pthread_mutex_unlock(&r->mu);
  return 0;
}

/* ---- this process, from /proc/self ---- */

static void collect_process(void *arg) {
  mt_proc *p = arg;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
      if (e->d_name[0] != '.') n++;
    closedir(d);
    mt_set(p->fds, (double)(n - 1)); /* less the one reading the directory */
  }
  FILE *f = fopen("/proc/self/status", "re");
  if (f) {
    char line[256];
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "Threads:", 8)) mt_set(p->threads, strtod(line + 8, NULL));
    fclose(f);
  }
  f = fopen("/proc/self/statm", "re");
  if (f) {
    unsigned long size, resident;
    if (fscanf(f, "%lu %lu", &size, &resident) == 2)
      mt_set(p->rss, (double)resident * (double)sysconf(_SC_PAGESIZE));
    fclose(f);
  }
}

int mt_process_metrics(mt_registry *r, const char *prefix, vs_err *err) {
  char n1[128], n2[128], n3[128];
  snprintf(n1, sizeof n1, "%sprocess_open_fds", prefix);
  snprintf(n2, sizeof n2, "%sprocess_threads", prefix);
  snprintf(n3, sizeof n3, "%sprocess_resident_memory_bytes", prefix);
  mt_family *fds = mt_gauge(r, n1, "Open file descriptors of this process.", NULL, err);
  mt_family *th = fds ? mt_gauge(r, n2, "Threads of this process.", NULL, err) : NULL;
  mt_family *rss = th ? mt_gauge(r, n3, "Resident memory of this process in bytes.", NULL, err)
                      : NULL;
  if (!rss) return -1;
  r->proc = (mt_proc){mt_with(fds, NULL), mt_with(th, NULL), mt_with(rss, NULL)};
  return mt_collector(r, collect_process, &r->proc, err);
}

/* ---- the text format ---- */

typedef struct buf {
  char *p;
  size_t len, cap;
  int oom;
} buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* HELP text escapes \ and newline; label values also ". */
static void put_escaped(buf *b, const char *s, int quote) {
  for (const char *run = s;; s++) {
    const char *rep = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : quote && *s == '"' ? "\\\"" : NULL;
    if (!rep && *s) continue;
    put(b, run, (size_t)(s - run));
    if (!*s) break;
    puts_(b, rep);
    run = s + 1;
  }
}

/* The shortest form that reads back as the same double; integers plainly. */
static void fmt_double(char *out, size_t n, double v) {
  if (isnan(v)) snprintf(out, n, "NaN");
  else if (isinf(v)) snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor(v) && fabs(v) < 1e15) snprintf(out, n, "%.0f", v);
  else
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(out, n, "%.*g", prec, v);
      if (strtod(out, NULL) == v) break;
    }
}

static void put_double(buf *b, double v) {
  char s[40];
  fmt_double(s, sizeof s, v);
  puts_(b, s);
}

/* name{l1="v1",...,extra="ev"} (no braces when there is nothing to put) */
static void put_series_name(buf *b, const mt_family *f, const char *suffix, const mt_series *s,
                            const char *extra, const char *extra_value) {
  puts_(b, f->name);
  puts_(b, suffix);
  if (!f->n_labels && !extra) return;
  puts_(b, "{");
  for (size_t i = 0; i < f->n_labels; i++) {
    if (i) puts_(b, ",");
    puts_(b, f->labels[i]);
    puts_(b, "=\"");
    put_escaped(b, s->values[i], 1);
    puts_(b, "\"");
  }
  if (extra) {
    if (f->n_labels) puts_(b, ",");
    puts_(b, extra);
    puts_(b, "=\"");
    puts_(b, extra_value);
    puts_(b, "\"");
  }
  puts_(b, "}");
}

static void render_family(buf *b, mt_family *f) {
  static const char *const types[] = {"", "counter", "gauge", "histogram"};
  puts_(b, "# HELP ");
  puts_(b, f->name);
  puts_(b, " ");
  put_escaped(b, f->help, 0);
  puts_(b, "\n# TYPE ");
  puts_(b, f->name);
  puts_(b, " ");
  puts_(b, types[f->type]);
  puts_(b, "\n");
  pthread_mutex_lock(&f->mu);
  for (const mt_series *s = f->head; s; s = s->next) {
    if (f->type != MT_HISTOGRAM) {
      put_series_name(b, f, "", s, NULL, NULL);
      puts_(b, " ");
      put_double(b, s->value);
      puts_(b, "\n");
      continue;
    }
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->n_buckets; i++) {
      char le[40], n[32];
      fmt_double(le, sizeof le, i < f->n_buckets ? f->buckets[i] : INFINITY);
      cum += s->counts[i];
      put_series_name(b, f, "_bucket", s, "le", le);
      snprintf(n, sizeof n, " %llu\n", (unsigned long long)cum);
      puts_(b, n);
    }
    put_series_name(b, f, "_sum", s, NULL, NULL);
    puts_(b, " ");
    put_double(b, s->sum);
    puts_(b, "\n");
    put_series_name(b, f, "_count", s, NULL, NULL);
    char n[32];
    snprintf(n, sizeof n, " %llu\n", (unsigned long long)s->count);
    puts_(b, n);
  }
  pthread_mutex_unlock(&f->mu);
}

int mt_render(mt_registry *r, char **out, size_t *len, vs_err *err) {
  pthread_mutex_lock(&r->render_mu);
  pthread_mutex_lock(&r->mu);
  size_t nc = r->n_collectors;
  mt_collector_entry *cs = nc ? malloc(nc * sizeof *cs) : NULL;
  if (cs) memcpy(cs, r->collectors, nc * sizeof *cs);
  pthread_mutex_unlock(&r->mu);
  for (size_t i = 0; cs && i < nc; i++) cs[i].fn(cs[i].arg);
  free(cs);
  buf b = {0};
  pthread_mutex_lock(&r->mu); /* before any family's mu */
  for (mt_family *f = r->head; f; f = f->next) render_family(&b, f);
  pthread_mutex_unlock(&r->mu);
  pthread_mutex_unlock(&r->render_mu);
  if (!b.p && !b.oom) puts_(&b, "");
  if (b.oom) {
    free(b.p);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory rendering metrics");
  }
  *out = b.p;
  *len = b.len;
  return 0;
}
