/* The HTTP side: libmicrohttpd serves /exec/<token>, /attach/<token> and
 * /portforward/<token>, negotiates the protocol and upgrades; the
 * session then runs in the connection's own thread (MHD's
 * thread-per-connection mode), so stopping MHD joins them all. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/streaming/streaming_internal.h"

#define MAX_TOKENS 1024

typedef struct token {
  struct token *next;
  char key[33];
  int64_t expires_ms;
  ss_request req;
} token;

struct ss_server {
  struct MHD_Daemon *mhd;
  ss_backend b;
  char base[96];
  int ttl_ms;
  pthread_mutex_t mu;
  token *tokens;
  size_t n_tokens;
  ss_session *sessions; /* running */
  int stopping;
};

/* What a connection's request left for its upgrade (or for nobody). */
typedef struct conn_state {
  ss_server *srv;
  ss_session *s;
} conn_state;

void ss_request_free(ss_request *r) {
  free((char *)r->id);
  for (size_t i = 0; i < r->n_cmd; i++) free(r->cmd[i]);
  free((char **)r->cmd);
  memset(r, 0, sizeof *r);
}

int ss_request_copy(const ss_request *in, ss_request *out) {
  *out = *in;
  out->id = strdup(in->id ? in->id : "");
  char **cmd = calloc(in->n_cmd + 1, sizeof *cmd);
  out->cmd = cmd;
  out->n_cmd = 0;
  if (!out->id || !cmd) {
    ss_request_free(out);
    return -1;
  }
  for (size_t i = 0; i < in->n_cmd; i++) {
    if (!(cmd[i] = strdup(in->cmd[i]))) {
      ss_request_free(out);
      return -1;
    }
    out->n_cmd++;
  }
  return 0;
}

/* With srv->mu held. */
static void expire(ss_server *srv) {
  int64_t now = ss_now_ms();
  for (token **p = &srv->tokens; *p;) {
    token *t = *p;
    if (t->expires_ms > now) {
      p = &t->next;
      continue;
    }
    *p = t->next;
    ss_request_free(&t->req);
    free(t);
    srv->n_tokens--;
  }
}

int ss_url(ss_server *srv, const ss_request *r, char *url, size_t n, vs_err *err) {
  static const char *const path[] = {"exec", "attach", "portforward"};
  token *t = calloc(1, sizeof *t);
  uint8_t rnd[16];
  if (!t || getrandom(rnd, sizeof rnd, 0) != sizeof rnd || ss_request_copy(r, &t->req) < 0) {
    free(t);
    return vs_err_set(err, VS_INTERNAL, "streaming: cannot make a token");
  }
  for (int i = 0; i < 16; i++) snprintf(t->key + 2 * i, 3, "%02x", rnd[i]);
  t->expires_ms = ss_now_ms() + srv->ttl_ms;
  pthread_mutex_lock(&srv->mu);
  expire(srv);
  int full = srv->n_tokens >= MAX_TOKENS;
  if (!full) {
    t->next = srv->tokens;
    srv->tokens = t;
    srv->n_tokens++;
    snprintf(url, n, "%s/%s/%s", srv->base, path[r->kind], t->key);
  }
  pthread_mutex_unlock(&srv->mu);
  if (full) {
    ss_request_free(&t->req);
    free(t);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED,
                      "streaming: %d URLs are waiting to be used; try again later", MAX_TOKENS);
  }
  return 0;
}

/* Takes the token's request (one use). */
static int take(ss_server *srv, const char *key, ss_request *out) {
  pthread_mutex_lock(&srv->mu);
  expire(srv);
  token **p = &srv->tokens;
  while (*p && strcmp((*p)->key, key)) p = &(*p)->next;
  token *t = *p;
  if (t) {
    *p = t->next;
    srv->n_tokens--;
    *out = t->req;
    free(t);
  }
  pthread_mutex_unlock(&srv->mu);
  return t ? 0 : -1;
}

/* ---- negotiation ---- */

typedef struct offers {
  const char *name; /* header looked for */
  char list[512];   /* every value, comma-joined */
} offers;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value) {
  (void)kind;
  offers *o = cls;
  if (key && value && !strcasecmp(key, o->name)) {
    size_t l = strlen(o->list);
    snprintf(o->list + l, sizeof o->list - l, "%s%s", l ? "," : "", value);
  }
  return MHD_YES;
}

/* The first of want (in order of preference) the client offers. */
static const char *pick(struct MHD_Connection *c, const char *header, const char *const *want) {
  offers o = {header, ""};
  MHD_get_connection_values(c, MHD_HEADER_KIND, collect, &o);
  for (; *want; want++) {
    char list[512];
    snprintf(list, sizeof list, "%s", o.list);
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
      while (*t == ' ') t++;
      size_t l = strlen(t);
      while (l && t[l - 1] == ' ') t[--l] = 0;
      if (!strcmp(t, *want)) return *want;
    }
  }
  return NULL;
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned code, const char *msg) {
  struct MHD_Response *r =
      MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_MUST_COPY);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
  enum MHD_Result ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ret;
}

static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
                       size_t extra_n, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
  (void)cls;
  (void)c;
  conn_state *st = con_cls;
  ss_server *srv = st->srv;
  ss_session *s = st->s;
  st->s = NULL; /* the session is this thread's now */
  pthread_mutex_lock(&srv->mu);
  int run = !srv->stopping;
  if (run) {
    s->fd = sock;
    s->next = srv->sessions;
    srv->sessions = s;
  }
  pthread_mutex_unlock(&srv->mu);
  if (run) {
    ss_session_run(s, sock, extra, extra_n);
    pthread_mutex_lock(&srv->mu);
    for (ss_session **p = &srv->sessions; *p; p = &(*p)->next)
      if (*p == s) {
        *p = s->next;
        break;
      }
    pthread_mutex_unlock(&srv->mu);
  }
  ss_session_free(s);
  MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_n, void **con_cls) {
  (void)method;
  (void)version;
  (void)upload;
  ss_server *srv = cls;
  if (!*con_cls) { /* headers only so far */
    conn_state *st = calloc(1, sizeof *st);
    if (!st) return MHD_NO;
    st->srv = srv;
    *con_cls = st;
    return MHD_YES;
  }
  if (*upload_n) { /* a body has no meaning here */
    *upload_n = 0;
    return MHD_YES;
  }
  conn_state *st = *con_cls;
  static const char *const paths[] = {"/exec/", "/attach/", "/portforward/"};
  int kind = -1;
  for (int i = 0; i < 3 && kind < 0; i++)
    if (!strncmp(url, paths[i], strlen(paths[i]))) kind = i;
  ss_request req;
  if (kind < 0 || take(srv, url + strlen(paths[kind]), &req) < 0)
    return answer(c, MHD_HTTP_NOT_FOUND, "unknown or expired streaming URL (each URL works once)\n");
  if ((int)req.kind != kind) {
    ss_request_free(&req);
    return answer(c, MHD_HTTP_NOT_FOUND, "this URL is for another kind of request\n");
  }
  const char *upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Upgrade");
  int ws = upgrade && !strcasecmp(upgrade, "websocket");
  int spdy = upgrade && !strcasecmp(upgrade, "SPDY/3.1");
  static const char *const rc_spdy[] = {"v5.channel.k8s.io", "v4.channel.k8s.io", NULL};
  static const char *const rc_ws[] = {"v5.channel.k8s.io", "v4.channel.k8s.io", NULL};
  static const char *const pf_spdy[] = {"portforward.k8s.io", NULL};
  static const char *const pf_ws[] = {"SPDY/3.1+portforward.k8s.io", NULL};
  const char *proto = NULL;
  if (spdy)
    proto = pick(c, "X-Stream-Protocol-Version", kind == SS_PORT_FORWARD ? pf_spdy : rc_spdy);
  else if (ws)
    proto = pick(c, "Sec-WebSocket-Protocol", kind == SS_PORT_FORWARD ? pf_ws : rc_ws);
  const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
  char msg[256];
  if (!proto || (ws && !key)) {
    ss_request_free(&req);
    snprintf(msg, sizeof msg,
             "%s: this server speaks %s over SPDY/3.1 and %s over WebSocket (Upgrade: %s)\n",
             paths[kind], kind == SS_PORT_FORWARD ? "portforward.k8s.io" : "v4/v5.channel.k8s.io",
             kind == SS_PORT_FORWARD ? "SPDY/3.1+portforward.k8s.io" : "v4/v5.channel.k8s.io",
             upgrade ? upgrade : "none");
    return answer(c, MHD_HTTP_BAD_REQUEST, msg);
  }
  int mode = spdy ? SS_SPDY : kind == SS_PORT_FORWARD ? SS_WS_SPDY : SS_WS_CHANNELS;
  ss_session *s = ss_session_new(&srv->b, &req, mode, proto[1] == '5' ? 5 : 4);
  if (!s) {
    ss_request_free(&req);
    return answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  }
  struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, srv);
  if (!r) {
    ss_session_free(s);
    return MHD_NO;
  }
  st->s = s;
  MHD_add_response_header(r, "Upgrade", spdy ? "SPDY/3.1" : "websocket");
  if (spdy) {
    MHD_add_response_header(r, "X-Stream-Protocol-Version", proto);
  } else {
    /* Sec-WebSocket-Accept: base64(SHA-1(key + the RFC 6455 GUID)) */
    char in[256];
    unsigned char sha[SHA_DIGEST_LENGTH], accept[64];
    snprintf(in, sizeof in, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    SHA1((const unsigned char *)in, strlen(in), sha);
    EVP_EncodeBlock(accept, sha, sizeof sha);
    MHD_add_response_header(r, "Sec-WebSocket-Accept", (const char *)accept);
    MHD_add_response_header(r, "Sec-WebSocket-Protocol", proto);
  }
  enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
  MHD_destroy_response(r);
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
  (void)cls;
  (void)c;
  (void)why;
  conn_state *st = *con_cls;
  if (!st) return;
  ss_session_free(st->s); /* never upgraded */
  free(st);
  *con_cls = NULL;
}

ss_server *ss_start(const char *addr, int ttl_s, const ss_backend *b, vs_err *err) {
  char host[64];
  const char *colon = strrchr(addr, ':');
  struct sockaddr_in sin = {.sin_family = AF_INET};
  if (!colon || (size_t)(colon - addr) >= sizeof host) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "streaming address %s: want IPv4:port", addr);
    return NULL;
  }
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || *end || port < 0 || port > 65535) {
    vs_err_set(err, VS_INVALID_ARGUMENT, "streaming address %s: want IPv4:port", addr);
    return NULL;
  }
  sin.sin_port = htons((uint16_t)port);
  if (!MHD_is_feature_supported(MHD_FEATURE_UPGRADE)) {
    vs_err_set(err, VS_UNIMPLEMENTED, "streaming: this libmicrohttpd cannot upgrade connections");
    return NULL;
  }
  ss_server *srv = calloc(1, sizeof *srv);
  if (!srv) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  srv->b = *b;
  srv->ttl_ms = (ttl_s > 0 ? ttl_s : SS_TOKEN_TTL_S) * 1000;
  pthread_mutex_init(&srv->mu, NULL);
  /* poll(), not select(): vesseld's descriptors go past FD_SETSIZE */
  srv->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                  MHD_USE_POLL | MHD_ALLOW_UPGRADE,
                              0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, &sin,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
  if (!srv->mhd) {
    vs_err_set(err, VS_UNAVAILABLE, "streaming: cannot listen on %s", addr);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    return NULL;
  }
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
  snprintf(srv->base, sizeof srv->base, "http://%s:%u", host, i ? i->port : (unsigned)port);
  return srv;
}

const char *ss_base_url(const ss_server *s) { return s->base; }

void ss_stop(ss_server *srv) {
  if (!srv) return;
  pthread_mutex_lock(&srv->mu);
  srv->stopping = 1;
  for (ss_session *s = srv->sessions; s; s = s->next) shutdown(s->fd, SHUT_RDWR);
  pthread_mutex_unlock(&srv->mu);
  MHD_stop_daemon(srv->mhd); /* joins the connections' threads */
  while (srv->tokens) {
    token *t = srv->tokens;
    srv->tokens = t->next;
    ss_request_free(&t->req);
    free(t);
  }
  pthread_mutex_destroy(&srv->mu);
  free(srv);
}
