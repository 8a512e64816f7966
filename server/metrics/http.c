/* The scrape endpoint: libmicrohttpd on a socket bound here (TCP or unix),
 * one internal thread polling every connection: a rendering takes
 * microseconds, scrapers are few. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server/metrics/metrics.h"

/* Scrapers at once, and how long an idle connection is kept (s). */
#define MT_HTTP_CONNECTIONS 64
#define MT_HTTP_TIMEOUT_S 30

struct mt_server {
  mt_registry *r;
  struct MHD_Daemon *mhd;
  char uri[160];
  char unix_path[108]; /* "" for TCP */
};

typedef struct mt_addr {
  int is_unix;
  char host[128];
  char port[8];
  char path[108];
} mt_addr;

static int parse_uri(const char *uri, mt_addr *a, vs_err *err) {
  memset(a, 0, sizeof *a);
  if (!uri) return vs_err_set(err, VS_INVALID_ARGUMENT, "no metrics address");
  if (!strncmp(uri, "unix://", 7)) {
    const char *p = uri + 7;
    if (p[0] != '/' || !p[1])
      return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: give unix:///absolute/path", uri);
    if (strlen(p) >= sizeof a->path)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: a unix socket path is at most %zu bytes",
                        uri, sizeof a->path - 1);
    a->is_unix = 1;
    snprintf(a->path, sizeof a->path, "%s", p);
    return 0;
  }
  if (strncmp(uri, "tcp://", 6) != 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: give tcp://HOST:PORT or unix:///PATH", uri);
  const char *h = uri + 6, *colon;
  size_t hlen;
  if (*h == '[') { /* [IPv6]:port */
    const char *close = strchr(h, ']');
    if (!close || close[1] != ':')
      return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: give tcp://[IPV6]:PORT", uri);
    h++;
    hlen = (size_t)(close - h);
    colon = close + 1;
  } else {
    colon = strrchr(h, ':');
    if (!colon) return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: missing :PORT", uri);
    hlen = (size_t)(colon - h);
    if (memchr(h, ':', hlen))
      return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: write an IPv6 address as [ADDR]", uri);
  }
  if (hlen == 0 || hlen >= sizeof a->host)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: missing or overlong host", uri);
  const char *port = colon + 1;
  char *end;
  long n = strtol(port, &end, 10);
  if (!*port || *end || n < 0 || n > 65535)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: the port must be 0..65535", uri);
  memcpy(a->host, h, hlen);
  snprintf(a->port, sizeof a->port, "%ld", n);
  return 0;
}

int mt_check_uri(const char *uri, vs_err *err) {
  mt_addr a;
  return parse_uri(uri, &a, err);
}

/* A listening socket for a; the URI as bound (port 0 resolved) in s->uri. */
static int bind_listen(mt_server *s, const mt_addr *a, const char *uri, vs_err *err) {
  if (a->is_unix) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a->path);
    struct stat st;
    if (lstat(a->path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(a->path); /* a stale one */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
      int e = errno;
      if (fd >= 0) close(fd);
      return vs_err_errno(err, VS_UNAVAILABLE, e, "cannot listen on %s", uri);
    }
    snprintf(s->unix_path, sizeof s->unix_path, "%s", a->path);
    snprintf(s->uri, sizeof s->uri, "unix://%s", a->path);
    return fd;
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
  struct addrinfo *res;
  int g = getaddrinfo(a->host, a->port, &hints, &res);
  if (g != 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "%s: cannot resolve %s: %s", uri, a->host,
                      gai_strerror(g));
  int fd = -1, e = 0;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      e = errno;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
      e = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return vs_err_errno(err, VS_UNAVAILABLE, e, "cannot listen on %s", uri);
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char host[INET6_ADDRSTRLEN + 2], port[8];
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
      getnameinfo((struct sockaddr *)&ss, sl, host + 1, sizeof host - 2, port, sizeof port,
                  NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    int v6 = ss.ss_family == AF_INET6;
    snprintf(s->uri, sizeof s->uri, "tcp://%s%s%s:%s", v6 ? "[" : "", host + 1, v6 ? "]" : "",
             port);
  } else {
    snprintf(s->uri, sizeof s->uri, "%s", uri);
  }
  return fd;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned code, const char *msg,
                              const char *allow) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
  if (allow) MHD_add_response_header(r, "Allow", allow);
  enum MHD_Result ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  mt_server *s = cls;
  (void)version;
  (void)upload_data;
  (void)upload_data_size;
  (void)con_cls;
  if (strcmp(url, "/metrics") != 0)
    return answer(c, MHD_HTTP_NOT_FOUND, "not found: metrics are at /metrics\n", NULL);
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET\n", "GET, HEAD");
  char *text;
  size_t len;
  vs_err err;
  if (mt_render(s->r, &text, &len, &err) < 0)
    return answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics\n", NULL);
  struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(r, "Content-Type", MT_CONTENT_TYPE);
  enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

mt_server *mt_server_start(mt_registry *r, const char *uri, vs_err *err) {
  mt_addr a;
  if (parse_uri(uri, &a, err) < 0) return NULL;
  mt_server *s = calloc(1, sizeof *s);
  if (!s) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  s->r = r;
  int fd = bind_listen(s, &a, uri, err);
  if (fd < 0) {
    free(s);
    return NULL;
  }
  /* MHD takes the socket: MHD_stop_daemon closes it. */
  s->mhd = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL,
                            on_request, s, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)MT_HTTP_CONNECTIONS,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)MT_HTTP_TIMEOUT_S,
                            MHD_OPTION_END);
  if (!s->mhd) {
    close(fd);
    if (*s->unix_path) unlink(s->unix_path);
    free(s);
    vs_err_set(err, VS_INTERNAL, "cannot start the HTTP server on %s", uri);
    return NULL;
  }
  return s;
}

const char *mt_server_uri(const mt_server *s) { return s->uri; }

void mt_server_stop(mt_server *s) {
  if (!s) return;
  MHD_stop_daemon(s->mhd);
  if (*s->unix_path) unlink(s->unix_path);
  free(s);
}
