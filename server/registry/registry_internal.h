/* Internals shared by http.c (the request engine) and registry.c (the
 * distribution API on top of it). */
#ifndef VESSEL_SERVER_REGISTRY_INTERNAL_H
#define VESSEL_SERVER_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <time.h>

#include <curl/curl.h>

#include "server/registry/registry.h"

#define REG_SHARE_LOCKS 8

struct reg_client {
  char *host; /* host[:port] requests go to */
  char *repo; /* repository path */
  char scheme[8];
  int local, insecure, push;
  int max_attempts, backoff_ms, max_backoff_ms;
  int min_speed, min_speed_secs;
  int (*cancelled)(void *arg);
  void *cancel_arg;
  void (*received)(void *arg, size_t n);
  void *received_arg;
  char *username, *password;
  char *cafile;

  pthread_mutex_t mu; /* guards the auth state below */
  char *token;
  time_t token_expiry;
  int basic; /* the registry asked for Basic auth */

  CURLSH *share; /* connections, DNS and TLS sessions across threads */
  pthread_mutex_t share_mu[REG_SHARE_LOCKS];
};

typedef struct reg_req reg_req;

/* One request. The caller sets the inputs, reg_do runs it (with retries,
 * auth and redirects) and leaves the final response's status and headers. */
struct reg_req {
  /* inputs */
  const char *method; /* default GET */
  const char *accept;
  const char *content_type;
  const void *body; /* upload from memory ... */
  size_t body_len;
  int upload_fd; /* ... or from a file (-1 = none) */
  int64_t upload_len;
  int64_t range_from; /* > 0: ask for bytes from here on */
  /* The 2xx body goes to sink (returning -1 aborts, with sink_error set). */
  int (*sink)(const void *p, size_t n, void *arg);
  void *sink_arg;
  int sink_error;
  /* Called before the first 2xx body byte (to restart a resumed ingest
   * when the server ignored Range) and before every attempt. */
  int (*on_start)(reg_req *r, void *arg);
  void (*before_attempt)(reg_req *r, void *arg);
  void (*progress)(reg_req *r, int64_t now);
  void *progress_arg;

  /* response */
  long status;
  char *location, *www_auth, *resp_type, *resp_digest;
  long retry_after;
  char errbody[1024];
  size_t errlen;

  /* state */
  CURL *curl;
  reg_client *client; /* during perform: for the cancellation check */
  int started;
  size_t body_off;
};

void reg_req_init(reg_req *r);
void reg_req_free(reg_req *r);
/* path is relative to /v2/ ("<repo>/manifests/<tag>"). 0 = got a final
 * response (check r->status), -1 = transport failure or auth refused. */
int reg_do(reg_client *c, reg_req *r, const char *path, vs_err *err);
/* Turns a non-success status into a vs_err with the registry's message. */
int reg_status_err(reg_client *c, reg_req *r, const char *what, vs_err *err);
/* A bounded in-memory response body. */
typedef struct reg_membuf {
  char *data; /* NUL-terminated */
  size_t len, cap, max;
} reg_membuf;
/* Sink for reg_membuf: fails (sink_error) past max bytes. */
int reg_mem_sink(const void *p, size_t n, void *arg);

static inline void curl_global_init_void(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

#endif
