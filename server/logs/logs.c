#include "server/logs/logs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

typedef struct lg_buf {
  char *b;
  size_t n, cap;
} lg_buf;

struct lg_writer {
  char dir[4000];
  int fd;
  int64_t size, max_bytes;
  int max_files;
  pthread_mutex_t mu;
  /* The line not yet ended, per stream (stdout, stderr). */
  char pend[2][LG_LINE_MAX];
  size_t npend[2];
  /* The same records in the CRI's format at cri_path (lg_set_cri_path);
   * -1 = none. */
  int cri_fd;
  char cri_path[4096];
};

static void path_of(const char *dir, int n, char *buf, size_t len) {
  if (n == 0)
    snprintf(buf, len, "%s/container.log", dir);
  else
    snprintf(buf, len, "%s/container.log.%d", dir, n);
}

lg_writer *lg_open(const char *dir, int64_t max_bytes, int max_files, vs_err *err) {
  lg_writer *w = calloc(1, sizeof *w);
  if (!w) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  snprintf(w->dir, sizeof w->dir, "%s", dir);
  if (max_files > LG_MAX_FILES) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "logs: at most %d files, not %d", LG_MAX_FILES, max_files);
    free(w);
    return NULL;
  }
  w->max_bytes = max_bytes > 0 ? max_bytes : LG_DEFAULT_MAX_BYTES;
  w->max_files = max_files > 0 ? max_files : LG_DEFAULT_MAX_FILES;
  char p[4100];
  path_of(dir, 0, p, sizeof p);
  w->fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (w->fd < 0) {
    vs_err_errno(err, VS_INTERNAL, errno, "open %s", p);
    free(w);
    return NULL;
  }
  struct stat st;
  fstat(w->fd, &st);
  w->size = st.st_size;
  w->cri_fd = -1;
  pthread_mutex_init(&w->mu, NULL);
  return w;
}

/* Opens w->cri_path (its directory made), with w->mu held. */
static int cri_open(lg_writer *w, vs_err *err) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", w->cri_path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) /* mkdir -p */
      if (*p == '/') {
        *p = '\0';
        mkdir(dir, 0755);
        *p = '/';
      }
    mkdir(dir, 0755);
  }
  w->cri_fd = open(w->cri_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  return w->cri_fd < 0 ? vs_err_errno(err, VS_INTERNAL, errno, "open %s", w->cri_path) : 0;
}

int lg_set_cri_path(lg_writer *w, const char *path, vs_err *err) {
  pthread_mutex_lock(&w->mu);
  if (w->cri_fd >= 0) close(w->cri_fd);
  w->cri_fd = -1;
  snprintf(w->cri_path, sizeof w->cri_path, "%s", path ? path : "");
  int rc = path && *path ? cri_open(w, err) : 0;
  pthread_mutex_unlock(&w->mu);
  return rc;
}

int lg_reopen_cri(lg_writer *w, vs_err *err) {
  pthread_mutex_lock(&w->mu);
  int rc = vs_err_set(err, VS_FAILED_PRECONDITION, "this log has no CRI file");
  if (w->cri_path[0]) {
    if (w->cri_fd >= 0) close(w->cri_fd);
    rc = cri_open(w, err);
  }
  pthread_mutex_unlock(&w->mu);
  return rc;
}

void lg_close(lg_writer *w) {
  if (!w) return;
  vs_err ignore;
  lg_flush(w, &ignore);
  close(w->fd);
  if (w->cri_fd >= 0) close(w->cri_fd);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

static int rotate(lg_writer *w, vs_err *err) {
  char from[4100], to[4100];
  path_of(w->dir, w->max_files - 1, to, sizeof to);
  unlink(to);
  for (int i = w->max_files - 2; i >= 0; i--) {
    path_of(w->dir, i, from, sizeof from);
    path_of(w->dir, i + 1, to, sizeof to);
    rename(from, to);
  }
  close(w->fd);
  path_of(w->dir, 0, from, sizeof from);
  w->fd = open(from, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  w->size = 0;
  if (w->fd < 0) return vs_err_errno(err, VS_INTERNAL, errno, "open %s", from);
  return 0;
}

/* Appends one JSON record of data to out (a growing buffer). */
/* Appends n bytes to a growing buffer. */
static int append(char **out, size_t *n, size_t *cap, const char *data, size_t len, vs_err *err) {
  if (*n + len > *cap) {
    size_t c = (*n + len) * 2;
    char *b = realloc(*out, c);
    if (!b) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    *out = b;
    *cap = c;
  }
  memcpy(*out + *n, data, len);
  *n += len;
  return 0;
}

/* A record in the CRI's format: "<time> <stream> <F|P> <text>\n", P for a
 * partial line (the text never holds the line's '\n'). */
static int add_cri_record(lg_buf *cb, const char *when, int stream, const char *data, size_t len,
                          vs_err *err) {
  int full = len && data[len - 1] == '\n';
  char head[96];
  int h = snprintf(head, sizeof head, "%s %s %c ", when, stream == LG_STDERR ? "stderr" : "stdout",
                   full ? 'F' : 'P');
  return append(&cb->b, &cb->n, &cb->cap, head, (size_t)h, err) < 0 ||
                 append(&cb->b, &cb->n, &cb->cap, data, full ? len - 1 : len, err) < 0 ||
                 append(&cb->b, &cb->n, &cb->cap, "\n", 1, err) < 0
             ? -1
             : 0;
}

static int add_record(char **out, size_t *n, size_t *cap, lg_buf *cb, int stream, const char *data,
                      size_t len, vs_err *err) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];
  size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + k, sizeof when - k, ".%09ldZ", ts.tv_nsec);
  if (cb && add_cri_record(cb, when, stream, data, len, err) < 0) return -1;
  /* Output is bytes and JSON wants UTF-8: a record that is not valid UTF-8
   * keeps its ASCII and gets U+FFFD for every other byte. */
  json_t *s = json_stringn(data, len);
  if (!s) {
    char *esc = malloc(len * 3 + 1);
    size_t m = 0;
    for (size_t i = 0; esc && i < len; i++) {
      unsigned char c = ((const unsigned char *)data)[i];
      if (c < 0x80) {
        esc[m++] = (char)c;
      } else {
        memcpy(esc + m, "\xEF\xBF\xBD", 3);
        m += 3;
      }
    }
    s = json_stringn(esc ? esc : "", esc ? m : 0);
    free(esc);
  }
  json_t *rec = json_pack("{s:o,s:s,s:s}", "log", s, "stream", stream == LG_STDERR ? "stderr" : "stdout",
                          "time", when);
  char *line = json_dumps(rec, JSON_COMPACT);
  json_decref(rec);
  if (!line) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  int rc = append(out, n, cap, line, strlen(line), err) < 0 || append(out, n, cap, "\n", 1, err) < 0
               ? -1
               : 0;
  free(line);
  return rc;
}

/* Where a full pending buffer is cut: before a UTF-8 sequence its end
 * would split (it starts the next record), else at its end. */
static size_t cut_point(const char *b, size_t n) {
  for (size_t back = 1; back <= 3 && back <= n; back++) {
    unsigned char c = (unsigned char)b[n - back];
    if ((c & 0xC0) != 0x80) { /* a lead byte or ASCII */
      size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      return want > back && back < n ? n - back : n;
    }
  }
  return n;
}

/* Writes buf (whole records) to the current file, rotating first if it
 * would pass the size limit. With w->mu held. */
static int write_records(lg_writer *w, const char *buf, size_t n, const lg_buf *cb, vs_err *err) {
  if (cb->n && w->cri_fd >= 0 && write(w->cri_fd, cb->b, cb->n) != (ssize_t)cb->n)
    return vs_err_errno(err, VS_INTERNAL, errno, "write %s", w->cri_path);
  if (!n) return 0;
  if (w->size > 0 && w->size + (int64_t)n > w->max_bytes && rotate(w, err) < 0) return -1;
  ssize_t k = write(w->fd, buf, n);
  if (k != (ssize_t)n) return vs_err_errno(err, VS_INTERNAL, errno, "write log");
  w->size += k;
  return 0;
}

int lg_write(lg_writer *w, int stream, const void *data, size_t len, vs_err *err) {
  const char *d = data;
  int si = stream == LG_STDERR;
  char *out = NULL;
  size_t n = 0, cap = 0;
  lg_buf cb = {NULL, 0, 0};
  int rc = 0;
  pthread_mutex_lock(&w->mu);
  lg_buf *cbp = w->cri_fd >= 0 ? &cb : NULL;
  char *pend = w->pend[si];
  size_t *np = &w->npend[si];
  while (len && rc == 0) {
    const char *nl = memchr(d, '\n', len);
    size_t take = nl ? (size_t)(nl - d) + 1 : len;
    if (take > LG_LINE_MAX - *np) take = LG_LINE_MAX - *np;
    memcpy(pend + *np, d, take);
    *np += take;
    d += take;
    len -= take;
    if (pend[*np - 1] == '\n') { /* a line */
      rc = add_record(&out, &n, &cap, cbp, stream, pend, *np, err);
      *np = 0;
    } else if (*np == LG_LINE_MAX) { /* a line too long: its first part */
      size_t cut = cut_point(pend, *np);
      rc = add_record(&out, &n, &cap, cbp, stream, pend, cut, err);
      memmove(pend, pend + cut, *np - cut);
      *np -= cut;
    }
  }
  if (rc == 0) rc = write_records(w, out, n, &cb, err);
  pthread_mutex_unlock(&w->mu);
  free(out);
  free(cb.b);
  return rc;
}

int lg_flush(lg_writer *w, vs_err *err) {
  if (!w) return 0;
  char *out = NULL;
  size_t n = 0, cap = 0;
  lg_buf cb = {NULL, 0, 0};
  int rc = 0;
  pthread_mutex_lock(&w->mu);
  lg_buf *cbp = w->cri_fd >= 0 ? &cb : NULL;
  for (int si = 0; si < 2 && rc == 0; si++) {
    if (w->npend[si])
      rc = add_record(&out, &n, &cap, cbp, si ? LG_STDERR : LG_STDOUT, w->pend[si], w->npend[si], err);
    w->npend[si] = 0;
  }
  if (rc == 0) rc = write_records(w, out, n, &cb, err);
  pthread_mutex_unlock(&w->mu);
  free(out);
  free(cb.b);
  return rc;
}

void lg_pending(lg_writer *w, void (*fn)(void *arg, int stream, const char *data, size_t len),
                void *arg) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  for (int si = 0; si < 2; si++)
    if (w->npend[si]) fn(arg, si ? LG_STDERR : LG_STDOUT, w->pend[si], w->npend[si]);
  pthread_mutex_unlock(&w->mu);
}

/* ---- reading ---- */

static int64_t parse_time(const char *s) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!p) return 0;
  int64_t ns = (int64_t)timegm(&tm) * 1000000000;
  if (*p == '.') {
    int64_t frac = 0, scale = 100000000;
    for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10) frac += (*p - '0') * scale;
    ns += frac;
  }
  return ns;
}

/* Parses one line; 0 on success (e->data malloc'd). */
static int parse_line(const char *line, size_t len, lg_entry *e) {
  json_t *j = json_loadb(line, len, 0, NULL);
  if (!j) return -1;
  json_t *log = json_object_get(j, "log");
  const char *stream = json_string_value(json_object_get(j, "stream"));
  const char *when = json_string_value(json_object_get(j, "time"));
  if (!json_is_string(log) || !stream || !when) {
    json_decref(j);
    return -1;
  }
  e->stream = !strcmp(stream, "stderr") ? LG_STDERR : LG_STDOUT;
  e->time_ns = parse_time(when);
  e->len = json_string_length(log);
  e->partial = e->len == 0 || json_string_value(log)[e->len - 1] != '\n';
  e->data = malloc(e->len + 1);
  if (e->data) memcpy(e->data, json_string_value(log), e->len + 1);
  json_decref(j);
  return e->data ? 0 : -1;
}

typedef struct line_buf {
  char *data;
  size_t len, cap;
} line_buf;

/* Reads lines from fd starting at *off; calls emit per complete line. */
static int read_lines(int fd, off_t *off, line_buf *lb,
                      int (*emit)(void *arg, const char *line, size_t len), void *arg) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = pread(fd, buf, sizeof buf, *off);
    if (n <= 0) return 0;
    *off += n;
    for (ssize_t i = 0; i < n; i++) {
      if (buf[i] == '\n') {
        int stop = emit(arg, lb->data ? lb->data : "", lb->len);
        lb->len = 0;
        if (stop) return 1;
        continue;
      }
      if (lb->len + 1 >= lb->cap) {
        size_t cap = lb->cap ? lb->cap * 2 : 4096;
        char *d = realloc(lb->data, cap);
        if (!d) return -1;
        lb->data = d;
        lb->cap = cap;
      }
      lb->data[lb->len++] = buf[i];
    }
  }
}

typedef struct reader {
  const lg_read_opts *o;
  int (*fn)(void *, const lg_entry *);
  void *arg;
  int64_t skip; /* records to skip for tail */
  int64_t count;
  int counting;
} reader;

static int emit(void *arg, const char *line, size_t len) {
  reader *r = arg;
  lg_entry e;
  if (parse_line(line, len, &e) < 0) return 0; /* a torn last line: skip */
  int stop = 0;
  int late = r->o->until_ns && e.time_ns > r->o->until_ns;
  int want = (!r->o->streams || (r->o->streams & e.stream)) && e.time_ns >= r->o->since_ns && !late;
  if (late && r->o->follow && !r->counting) stop = 1; /* what follows is later still */
  if (want) {
    if (r->counting) r->count++;
    else if (r->skip > 0) r->skip--;
    else stop = r->fn(r->arg, &e);
  }
  free(e.data);
  return stop;
}

static int64_t realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int lg_read(const char *dir, const lg_read_opts *o, int (*fn)(void *, const lg_entry *),
            void *arg, vs_err *err) {
  reader r = {o, fn, arg, 0, 0, 0};
  line_buf lb = {0};
  char p[4100];
  int nfiles = 0;
  for (int i = 0; i < 100; i++) {
    path_of(dir, i, p, sizeof p);
    if (access(p, F_OK) < 0) break;
    nfiles = i + 1;
  }
  if (nfiles == 0 && !o->follow) return 0;
  if (o->tail >= 0) { /* count first, then skip all but the last N */
    r.counting = 1;
    for (int i = nfiles - 1; i >= 0; i--) {
      path_of(dir, i, p, sizeof p);
      int fd = open(p, O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      off_t off = 0;
      read_lines(fd, &off, &lb, emit, &r);
      lb.len = 0;
      close(fd);
    }
    r.counting = 0;
    r.skip = r.count > o->tail ? r.count - o->tail : 0;
  }
  int stop = 0;
  for (int i = nfiles - 1; i >= 1 && !stop; i--) {
    path_of(dir, i, p, sizeof p);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    off_t off = 0;
    stop = read_lines(fd, &off, &lb, emit, &r) != 0;
    lb.len = 0;
    close(fd);
  }
  /* The current file; when following, keep reading as it grows and move
   * to the new one when it is rotated. */
  path_of(dir, 0, p, sizeof p);
  int fd = stop ? -1 : open(p, O_RDONLY | O_CLOEXEC);
  off_t off = 0;
  struct stat st0;
  while (fd >= 0 || (o->follow && !stop)) {
    if (fd >= 0) stop = read_lines(fd, &off, &lb, emit, &r) != 0;
    if (stop || !o->follow) break;
    int finished = (o->done && o->done(o->done_arg)) || (o->until_ns && realtime_ns() > o->until_ns);
    struct stat now;
    if (fd >= 0 && fstat(fd, &st0) == 0 && stat(p, &now) == 0 && now.st_ino != st0.st_ino) {
      read_lines(fd, &off, &lb, emit, &r); /* rest of the rotated file */
      close(fd);
      fd = open(p, O_RDONLY | O_CLOEXEC);
      off = 0;
      lb.len = 0;
      continue;
    }
    if (fd < 0) fd = open(p, O_RDONLY | O_CLOEXEC);
    if (finished) {
      if (fd >= 0) read_lines(fd, &off, &lb, emit, &r);
      break;
    }
    struct pollfd pf = {o->cancel_fd, POLLIN, 0};
    if (poll(&pf, o->cancel_fd >= 0 ? 1 : 0, 100) > 0) break;
  }
  if (fd >= 0) close(fd);
  free(lb.data);
  (void)err;
  return 0;
}
