/* The request engine of the registry client: one HTTP exchange with retries,
 * authentication and redirects. registry.c builds the distribution API on
 * top of it. */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "server/registry/registry_internal.h"

/* ---- client setup ---- */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *arg) {
  (void)h, (void)a;
  reg_client *c = arg;
  pthread_mutex_lock(&c->share_mu[d % REG_SHARE_LOCKS]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *arg) {
  (void)h;
  reg_client *c = arg;
  pthread_mutex_unlock(&c->share_mu[d % REG_SHARE_LOCKS]);
}

static int is_local(const char *host) {
  return !strncmp(host, "localhost", 9) || !strncmp(host, "127.", 4) || !strncmp(host, "[::1]", 5);
}

static int tls_failure(CURLcode cc) { return cc == CURLE_SSL_CONNECT_ERROR; }

/* TLS that checks nothing, and so loads no CA bundle (parsing the system's
 * ~140 certificates costs tens of ms per handle). */
static void no_verify(CURL *h) {
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
  curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
}

/* A local registry may speak plain HTTP: ask once whether it speaks TLS at
 * all, without loading the CA bundle for it (a verified first attempt
 * parses every system certificate, ~35 ms, only to fail on an HTTP port).
 * Nothing is sent but a TLS hello: the answer only picks the scheme, and
 * every later request over TLS is verified as usual. */
static void probe_scheme(reg_client *c) {
  CURL *h = curl_easy_init();
  if (!h) return;
  char url[4200];
  snprintf(url, sizeof url, "https://%s/v2/", c->host);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  no_verify(h);
  if (tls_failure(curl_easy_perform(h))) snprintf(c->scheme, sizeof c->scheme, "http");
  curl_easy_cleanup(h);
}

reg_client *reg_client_new(const oci_ref *ref, const reg_options *o, vs_err *err) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, (void (*)(void))curl_global_init_void);
  reg_client *c = calloc(1, sizeof *c);
  if (!c) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  reg_options def = {0};
  if (!o) o = &def;
  c->host = strdup(oci_ref_registry_host(ref));
  c->repo = strdup(ref->path);
  c->insecure = o->insecure;
  c->local = is_local(c->host);
  c->push = o->push;
  c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 5;
  c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 200;
  c->max_backoff_ms = o->max_backoff_ms > 0 ? o->max_backoff_ms : 10000;
  c->min_speed = o->min_speed > 0 ? o->min_speed : 1024;
  c->min_speed_secs = o->min_speed_secs > 0 ? o->min_speed_secs : 30;
  c->cancelled = o->cancelled;
  c->cancel_arg = o->cancel_arg;
  c->received = o->received;
  c->received_arg = o->received_arg;
  if (o->username) c->username = strdup(o->username);
  if (o->password) c->password = strdup(o->password);
  snprintf(c->scheme, sizeof c->scheme, "https");
  if (c->local && !c->insecure) probe_scheme(c);
  if (o->certs_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/ca.crt", o->certs_dir, c->host);
    if (access(path, R_OK) == 0) c->cafile = strdup(path);
  }
  pthread_mutex_init(&c->mu, NULL);
  for (int i = 0; i < REG_SHARE_LOCKS; i++) pthread_mutex_init(&c->share_mu[i], NULL);
  c->share = curl_share_init();
  curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
  curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
  curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
  curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  if (!c->host || !c->repo) {
    reg_client_free(c);
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  return c;
}

void reg_client_free(reg_client *c) {
  if (!c) return;
  if (c->share) curl_share_cleanup(c->share);
  for (int i = 0; i < REG_SHARE_LOCKS; i++) pthread_mutex_destroy(&c->share_mu[i]);
  pthread_mutex_destroy(&c->mu);
  free(c->host);
  free(c->repo);
  free(c->username);
  free(c->password);
  free(c->cafile);
  free(c->token);
  free(c);
}

/* ---- response parsing ---- */

static char *trim_dup(const char *s, size_t n) {
  while (n && isspace((unsigned char)*s)) s++, n--;
  while (n && isspace((unsigned char)s[n - 1])) n--;
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg) {
  reg_req *r = arg;
  size_t len = sz * n;
  /* A new status line (after a 100-continue or a redirect) resets them. */
  if (len > 5 && !strncasecmp(p, "HTTP/", 5)) {
    free(r->location), r->location = NULL;
    free(r->www_auth), r->www_auth = NULL;
    free(r->resp_type), r->resp_type = NULL;
    free(r->resp_digest), r->resp_digest = NULL;
    r->retry_after = -1;
    return len;
  }
  const char *colon = memchr(p, ':', len);
  if (!colon) return len;
  size_t klen = (size_t)(colon - p);
  const char *v = colon + 1;
  size_t vlen = len - klen - 1;
#define HDR(name) (klen == sizeof(name) - 1 && !strncasecmp(p, name, klen))
  if (HDR("Location")) free(r->location), r->location = trim_dup(v, vlen);
  else if (HDR("WWW-Authenticate")) free(r->www_auth), r->www_auth = trim_dup(v, vlen);
  else if (HDR("Content-Type")) free(r->resp_type), r->resp_type = trim_dup(v, vlen);
  else if (HDR("Docker-Content-Digest")) free(r->resp_digest), r->resp_digest = trim_dup(v, vlen);
  else if (HDR("Retry-After")) {
    /* Seconds, or an HTTP-date (then seconds from now; 0 if past). */
    char *s = trim_dup(v, vlen);
    if (s && isdigit((unsigned char)s[0])) {
      r->retry_after = atol(s);
    } else if (s) {
      time_t when = curl_getdate(s, NULL);
      time_t now = time(NULL);
      r->retry_after = when < 0 ? -1 : when > now ? (long)(when - now) : 0;
    }
    free(s);
  }
#undef HDR
  return len;
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg) {
  reg_req *r = arg;
  size_t len = sz * n;
  if (!r->status) curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &r->status);
  if (r->status >= 200 && r->status < 300) {
    if (r->client->received) r->client->received(r->client->received_arg, len);
    if (!r->sink) return len;
    if (!r->started && r->on_start && r->on_start(r, r->sink_arg) < 0) {
      r->sink_error = 1;
      return 0;
    }
    r->started = 1;
    if (r->sink(p, len, r->sink_arg) < 0) {
      r->sink_error = 1;
      return 0;
    }
    return len;
  }
  /* Error bodies are short diagnostics; keep the start. */
  size_t room = sizeof r->errbody - 1 - r->errlen;
  size_t k = len < room ? len : room;
  memcpy(r->errbody + r->errlen, p, k);
  r->errlen += k;
  r->errbody[r->errlen] = '\0';
  return len;
}

static size_t on_read(char *buf, size_t sz, size_t n, void *arg) {
  reg_req *r = arg;
  size_t want = sz * n;
  if (r->upload_fd >= 0) {
    ssize_t got = read(r->upload_fd, buf, want);
    return got < 0 ? CURL_READFUNC_ABORT : (size_t)got;
  }
  size_t left = r->body_len - r->body_off;
  size_t k = want < left ? want : left;
  memcpy(buf, (const char *)r->body + r->body_off, k);
  r->body_off += k;
  return k;
}

/* Lets curl rewind an upload it must send again (a reused connection
 * that turned out dead). */
static int on_seek(void *arg, curl_off_t off, int origin) {
  reg_req *r = arg;
  if (origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  if (r->upload_fd >= 0)
    return lseek(r->upload_fd, (off_t)off, SEEK_SET) < 0 ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
  if ((size_t)off > r->body_len) return CURL_SEEKFUNC_FAIL;
  r->body_off = (size_t)off;
  return CURL_SEEKFUNC_OK;
}

static int cancelled(const reg_client *c) { return c->cancelled && c->cancelled(c->cancel_arg); }

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  reg_req *r = arg;
  (void)dltotal, (void)ultotal;
  if (cancelled(r->client)) return 1; /* CURLE_ABORTED_BY_CALLBACK */
  if (r->progress) r->progress(r, r->upload_fd >= 0 ? (int64_t)ulnow : (int64_t)dlnow);
  return 0;
}

/* ---- one exchange ---- */

static void reset_response(reg_req *r) {
  free(r->location), r->location = NULL;
  free(r->www_auth), r->www_auth = NULL;
  free(r->resp_type), r->resp_type = NULL;
  free(r->resp_digest), r->resp_digest = NULL;
  r->retry_after = -1;
  r->status = 0;
  r->started = 0;
  r->sink_error = 0;
  r->errlen = 0;
  r->errbody[0] = '\0';
  r->body_off = 0;
}

void reg_req_free(reg_req *r) {
  reset_response(r);
}

/* host of an absolute URL, for the credentials check. */
static int same_host(const char *url, const char *host) {
  const char *p = strstr(url, "://");
  if (!p) return 1; /* relative: same host */
  p += 3;
  size_t n = strcspn(p, "/?#");
  return strlen(host) == n && strncasecmp(p, host, n) == 0;
}

/* Who gets credentials: nobody, the registry host only (token or Basic), or
 * the token server (Basic, whatever its host: the registry named it). */
enum { AUTH_NONE, AUTH_REGISTRY, AUTH_TOKEN_SERVER };

static CURLcode perform(reg_client *c, reg_req *r, const char *url, int auth) {
  CURL *h = curl_easy_init();
  if (!h) return CURLE_OUT_OF_MEMORY;
  r->curl = h;
  r->client = c;
  reset_response(r);
  struct curl_slist *hdrs = NULL;
  char line[8192];
  if (r->accept) {
    snprintf(line, sizeof line, "Accept: %s", r->accept);
    hdrs = curl_slist_append(hdrs, line);
  }
  if (r->content_type) {
    snprintf(line, sizeof line, "Content-Type: %s", r->content_type);
    hdrs = curl_slist_append(hdrs, line);
  }
  if (r->range_from > 0) {
    snprintf(line, sizeof line, "Range: bytes=%lld-", (long long)r->range_from);
    hdrs = curl_slist_append(hdrs, line);
  }
  if (auth == AUTH_TOKEN_SERVER && c->username) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, c->username);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
  } else if (auth == AUTH_REGISTRY && same_host(url, c->host)) {
    pthread_mutex_lock(&c->mu);
    if (c->token) {
      snprintf(line, sizeof line, "Authorization: Bearer %s", c->token);
      hdrs = curl_slist_append(hdrs, line);
    } else if (c->basic && c->username) {
      curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      curl_easy_setopt(h, CURLOPT_USERNAME, c->username);
      curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
    pthread_mutex_unlock(&c->mu);
  }
  hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "vessel/0.1");
  curl_easy_setopt(h, CURLOPT_SHARE, c->share);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  /* Redirects are followed by hand so credentials never leave the host. */
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)c->min_speed);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)c->min_speed_secs);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
  /* Bigger reads: a blob lands in 512 KiB writes instead of 16 KiB ones. */
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  if (c->insecure) {
    no_verify(h);
  } else if (c->cafile) {
    curl_easy_setopt(h, CURLOPT_CAINFO, c->cafile);
  }
  /* Always: the callback is where a cancellation is seen. */
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, r);
  const char *m = r->method ? r->method : "GET";
  if (!strcmp(m, "HEAD")) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (!strcmp(m, "PUT") || !strcmp(m, "POST") || !strcmp(m, "PATCH")) {
    if (r->upload_fd >= 0) lseek(r->upload_fd, 0, SEEK_SET);
    curl_off_t len = r->upload_fd >= 0 ? (curl_off_t)r->upload_len : (curl_off_t)r->body_len;
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, r);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, len);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
  }
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  r->status = status;
  curl_slist_free_all(hdrs);
  curl_easy_cleanup(h);
  r->curl = NULL;
  return rc;
}

/* ---- authentication ---- */

/* Value of key in a WWW-Authenticate challenge (key="value"). */
static char *challenge_param(const char *ch, const char *key) {
  size_t kl = strlen(key);
  for (const char *p = ch; (p = strstr(p, key)); p += kl) {
    if (p != ch && p[-1] != ' ' && p[-1] != ',') continue;
    if (p[kl] != '=') continue;
    const char *v = p + kl + 1;
    if (*v == '"') {
      const char *e = strchr(v + 1, '"');
      if (!e) return NULL;
      return trim_dup(v + 1, (size_t)(e - v - 1));
    }
    return trim_dup(v, strcspn(v, ","));
  }
  return NULL;
}

static int url_escape_into(char *dst, size_t n, const char *s) {
  char *e = curl_easy_escape(NULL, s, 0);
  if (!e) return -1;
  snprintf(dst, n, "%s", e);
  curl_free(e);
  return 0;
}

static int mem_sink(const void *p, size_t n, void *arg) {
  reg_membuf *b = arg;
  if (b->len + n > b->max) return -1;
  if (b->len + n + 1 > b->cap) {
    size_t cap = (b->len + n + 1) * 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int reg_mem_sink(const void *p, size_t n, void *arg) { return mem_sink(p, n, arg); }

/* Answers a 401: Basic → use the credentials; Bearer → fetch a token from
 * the realm for our scope. Returns 0 when a retry makes sense. */
static int authenticate(reg_client *c, const char *challenge, vs_err *err) {
  if (!challenge)
    return vs_err_set(err, VS_UNAUTHENTICATED, "%s: 401 without a WWW-Authenticate challenge", c->host);
  if (!strncasecmp(challenge, "Basic", 5)) {
    if (!c->username)
      return vs_err_set(err, VS_UNAUTHENTICATED, "%s requires credentials (use Images.Login)", c->host);
    pthread_mutex_lock(&c->mu);
    c->basic = 1;
    pthread_mutex_unlock(&c->mu);
    return 0;
  }
  if (strncasecmp(challenge, "Bearer", 6) != 0)
    return vs_err_set(err, VS_UNAUTHENTICATED, "%s: unsupported auth scheme in \"%s\"", c->host, challenge);
  char *realm = challenge_param(challenge, "realm");
  char *service = challenge_param(challenge, "service");
  char *scope = challenge_param(challenge, "scope");
  int rc = -1;
  if (!realm || strncmp(realm, "http", 4) != 0) {
    vs_err_set(err, VS_UNAUTHENTICATED, "%s: bearer challenge without a usable realm", c->host);
    goto out;
  }
  /* Ask for our own scope plus whatever the challenge named (a blob mount
   * also needs pull on the source repository); each as its own scope=. */
  char our_scope[1024], esc[2048], esc_service[1024] = "", url[8192];
  snprintf(our_scope, sizeof our_scope, "repository:%s:%s", c->repo, c->push ? "pull,push" : "pull");
  url_escape_into(esc, sizeof esc, our_scope);
  if (service) url_escape_into(esc_service, sizeof esc_service, service);
  int n = snprintf(url, sizeof url, "%s%sscope=%s%s%s", realm, strchr(realm, '?') ? "&" : "?", esc,
                   service ? "&service=" : "", esc_service);
  char *save = NULL;
  for (char *tok = scope ? strtok_r(scope, " ", &save) : NULL; tok; tok = strtok_r(NULL, " ", &save)) {
    if (!strcmp(tok, our_scope) || (size_t)n >= sizeof url - 1) continue;
    url_escape_into(esc, sizeof esc, tok);
    n += snprintf(url + n, sizeof url - (size_t)n, "&scope=%s", esc);
  }

  reg_req r;
  reg_req_init(&r);
  reg_membuf body = {NULL, 0, 0, 1 << 20};
  r.sink = mem_sink;
  r.sink_arg = &body;
  r.accept = "application/json";
  /* The token server gets the credentials: the registry named it. */
  CURLcode cc = perform(c, &r, url, AUTH_TOKEN_SERVER);
  if (cc != CURLE_OK) {
    vs_err_set(err, VS_UNAVAILABLE, "token server %s: %s", realm, curl_easy_strerror(cc));
  } else if (r.status == 401 || r.status == 403) {
    vs_err_set(err, VS_UNAUTHENTICATED, "token server %s rejected the credentials (HTTP %ld)", realm, r.status);
  } else if (r.status != 200) {
    vs_err_set(err, VS_UNAVAILABLE, "token server %s: HTTP %ld", realm, r.status);
  } else {
    json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (!tok) tok = json_string_value(json_object_get(j, "access_token"));
    if (!tok || !*tok || strlen(tok) > 6000) {
      vs_err_set(err, VS_UNAUTHENTICATED, "token server %s returned no token", realm);
    } else {
      json_int_t ttl = json_integer_value(json_object_get(j, "expires_in"));
      pthread_mutex_lock(&c->mu);
      free(c->token);
      c->token = strdup(tok);
      c->token_expiry = time(NULL) + (ttl > 0 ? ttl : 60) - 5;
      pthread_mutex_unlock(&c->mu);
      rc = 0;
    }
    json_decref(j);
  }
  free(body.data);
  reg_req_free(&r);
out:
  free(realm);
  free(service);
  free(scope);
  return rc;
}

/* ---- the retry / auth / redirect loop ---- */

/* Sleeps ms, in slices that see a cancellation; -1 if one came. */
static int sleep_ms(const reg_client *c, long ms) {
  while (ms > 0) {
    if (cancelled(c)) return -1;
    long slice = ms < 100 ? ms : 100;
    struct timespec ts = {0, slice * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    ms -= slice;
  }
  return cancelled(c) ? -1 : 0;
}

static int transient_curl(CURLcode cc) {
  switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_HTTP2_STREAM:
      return 1;
    default:
      return 0;
  }
}

/* The server does not speak TLS at all (a plain-HTTP registry answering a
 * ClientHello). A certificate that fails verification is not this: that
 * never downgrades to plain HTTP. */
int reg_url(reg_client *c, char *buf, size_t n, const char *fmt, ...) {
  int k = snprintf(buf, n, "%s://%s/v2/", c->scheme, c->host);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + k, n - (size_t)k, fmt, ap);
  va_end(ap);
  return 0;
}

int reg_do(reg_client *c, reg_req *r, const char *path, vs_err *err) {
  char url[8192];
  snprintf(url, sizeof url, "%s://%s/v2/%s", c->scheme, c->host, path);
  int authed = 0, redirects = 0;
  long delay = c->backoff_ms;
  for (int attempt = 1;; attempt++) {
    pthread_mutex_lock(&c->mu);
    if (c->token && time(NULL) > c->token_expiry) {
      free(c->token);
      c->token = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (r->before_attempt) r->before_attempt(r, r->sink_arg);
    CURLcode cc = perform(c, r, url, AUTH_REGISTRY);

    /* Local or insecure registries may speak plain HTTP. */
    if (cc != CURLE_OK && tls_failure(cc) && (c->local || c->insecure) &&
        !strcmp(c->scheme, "https") && !strncmp(url, "https://", 8) && same_host(url, c->host)) {
      snprintf(c->scheme, sizeof c->scheme, "http");
      snprintf(url, sizeof url, "http://%s/v2/%s", c->host, path);
      attempt--;
      continue;
    }
    if (cc == CURLE_WRITE_ERROR && r->sink_error) return -1; /* the sink said why */
    if (cc == CURLE_ABORTED_BY_CALLBACK || cancelled(c))
      return vs_err_set(err, VS_CANCELLED, "%s: cancelled", url);
    if (cc != CURLE_OK) {
      if (transient_curl(cc) && attempt < c->max_attempts) {
        if (sleep_ms(c, delay) < 0) return vs_err_set(err, VS_CANCELLED, "%s: cancelled", url);
        delay = delay * 2 > c->max_backoff_ms ? c->max_backoff_ms : delay * 2;
        continue;
      }
      if (cc == CURLE_OPERATION_TIMEDOUT)
        return vs_err_set(err, VS_UNAVAILABLE,
                          "%s: slower than %d bytes/s for %d s (after %d attempts)", url,
                          c->min_speed, c->min_speed_secs, attempt);
      if (cc == CURLE_PEER_FAILED_VERIFICATION)
        return vs_err_set(err, VS_UNAVAILABLE,
                          "%s: TLS certificate not trusted (put the registry's CA in "
                          "certs.d/%s/ca.crt under vesseld's root, or mark it insecure)",
                          url, c->host);
      return vs_err_set(err, VS_UNAVAILABLE, "%s: %s (after %d attempts)", url,
                        curl_easy_strerror(cc), attempt);
    }
    long st = r->status;
    if (st >= 300 && st < 400 && st != 304 && r->location) {
      if (++redirects > 5) return vs_err_set(err, VS_UNAVAILABLE, "%s: too many redirects", url);
      if (strstr(r->location, "://"))
        snprintf(url, sizeof url, "%s", r->location);
      else if (r->location[0] == '/')
        snprintf(url, sizeof url, "%s://%s%s", c->scheme, c->host, r->location);
      else
        return vs_err_set(err, VS_UNAVAILABLE, "%s: unsupported redirect %s", url, r->location);
      attempt--;
      continue;
    }
    if (st == 401 && !authed && same_host(url, c->host)) {
      authed = 1;
      char *challenge = r->www_auth ? strdup(r->www_auth) : NULL;
      int rc = authenticate(c, challenge, err);
      free(challenge);
      if (rc < 0) return -1;
      attempt--;
      continue;
    }
    if ((st == 408 || st == 429 || st >= 500) && attempt < c->max_attempts) {
      long wait = delay;
      if (r->retry_after >= 0) wait = r->retry_after * 1000;
      if (wait > c->max_backoff_ms) wait = c->max_backoff_ms;
      if (sleep_ms(c, wait) < 0) return vs_err_set(err, VS_CANCELLED, "%s: cancelled", url);
      delay = delay * 2 > c->max_backoff_ms ? c->max_backoff_ms : delay * 2;
      continue;
    }
    return 0; /* the caller judges the status */
  }
}

void reg_req_init(reg_req *r) {
  memset(r, 0, sizeof *r);
  r->upload_fd = -1;
  r->retry_after = -1;
}

int reg_status_err(reg_client *c, reg_req *r, const char *what, vs_err *err) {
  vs_code code = VS_UNAVAILABLE;
  switch (r->status) {
    case 401: code = VS_UNAUTHENTICATED; break;
    case 403: code = VS_PERMISSION_DENIED; break;
    case 404: code = VS_NOT_FOUND; break;
    case 400:
    case 405:
    case 413:
    case 416: code = VS_FAILED_PRECONDITION; break;
    case 429: code = VS_RESOURCE_EXHAUSTED; break;
    default: break;
  }
  /* The registry's JSON errors carry a message worth passing on. */
  const char *detail = "";
  char msg[256] = "";
  json_t *j = r->errlen ? json_loadb(r->errbody, r->errlen, 0, NULL) : NULL;
  json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
  if (json_is_string(json_object_get(e0, "message"))) {
    snprintf(msg, sizeof msg, ": %s", json_string_value(json_object_get(e0, "message")));
    detail = msg;
  }
  json_decref(j);
  return vs_err_set(err, code, "%s %s/%s: HTTP %ld%s", what, c->host, c->repo, r->status, detail);
}
