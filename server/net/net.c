#include "server/net/net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/vs_fs.h"
#include "server/oci/oci.h"

struct net_store {
  char dir[4000];
  pthread_mutex_t mu;
};

static int valid_name(const char *n) { return vs_valid_name(n, 63); }

/* "a.b.c.d/len" -> network address and prefix; -1 if malformed. */
static int parse_cidr(const char *s, uint32_t *net, int *len) {
  char buf[32];
  const char *slash = strchr(s, '/');
  if (!slash || (size_t)(slash - s) >= sizeof buf) return -1;
  memcpy(buf, s, (size_t)(slash - s));
  buf[slash - s] = '\0';
  struct in_addr a;
  char *end;
  long l = strtol(slash + 1, &end, 10);
  if (inet_pton(AF_INET, buf, &a) != 1 || *end || l < 8 || l > 30) return -1;
  uint32_t mask = l ? 0xffffffffu << (32 - l) : 0;
  *net = ntohl(a.s_addr) & mask;
  *len = (int)l;
  return 0;
}

int net_prefix_len(const char *subnet) {
  uint32_t n;
  int l;
  return parse_cidr(subnet, &n, &l) < 0 ? -1 : l;
}

static void ip_str(uint32_t ip, char out[16]) {
  struct in_addr a = {htonl(ip)};
  inet_ntop(AF_INET, &a, out, 16);
}

static uint32_t ip_val(const char *s) {
  struct in_addr a;
  return inet_pton(AF_INET, s, &a) == 1 ? ntohl(a.s_addr) : 0;
}

static void path_of(net_store *s, const char *name, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s.json", s->dir, name);
}

void net_network_free(net_network *n) {
  if (!n) return;
  free(n->leases);
  n->leases = NULL;
  n->n_leases = 0;
  for (size_t i = 0; i < n->n_labels; i++) free(n->labels[i]);
  free(n->labels);
  n->labels = NULL;
  n->n_labels = 0;
}

static int load(net_store *s, const char *name, net_network *n, vs_err *err) {
  memset(n, 0, sizeof *n);
  char p[4200];
  path_of(s, name, p, sizeof p);
  json_error_t je;
  json_t *j = json_load_file(p, 0, &je);
  if (!j) {
    if (access(p, F_OK) < 0) return vs_err_set(err, VS_NOT_FOUND, "no network named %s", name);
    return vs_err_set(err, VS_INTERNAL, "network %s: corrupt state file %s", name, p);
  }
  const char *f;
#define STR(key, dst) \
  if ((f = json_string_value(json_object_get(j, key)))) snprintf(dst, sizeof dst, "%s", f)
  STR("name", n->name);
  STR("id", n->id);
  STR("subnet", n->subnet);
  STR("gateway", n->gateway);
  STR("bridge", n->bridge);
#undef STR
  n->internal = json_is_true(json_object_get(j, "internal"));
  n->created = json_integer_value(json_object_get(j, "created"));
  json_t *leases = json_object_get(j, "leases");
  size_t cnt = json_array_size(leases);
  n->leases = calloc(cnt ? cnt : 1, sizeof *n->leases);
  size_t i;
  json_t *l;
  json_array_foreach(leases, i, l) {
    net_lease *x = &n->leases[n->n_leases++];
    snprintf(x->container, sizeof x->container, "%s", json_string_value(json_object_get(l, "container")));
    snprintf(x->ip, sizeof x->ip, "%s", json_string_value(json_object_get(l, "ip")));
    snprintf(x->mac, sizeof x->mac, "%s", json_string_value(json_object_get(l, "mac")));
  }
  json_t *labels = json_object_get(j, "labels");
  n->labels = calloc(json_array_size(labels) ? json_array_size(labels) : 1, sizeof *n->labels);
  json_array_foreach(labels, i, l)
    if (n->labels && json_is_string(l)) n->labels[n->n_labels++] = strdup(json_string_value(l));
  json_decref(j);
  return 0;
}

/* Atomically: a crash leaves the old or the new state. */
static int save(net_store *s, const net_network *n, vs_err *err) {
  json_t *leases = json_array();
  for (size_t i = 0; i < n->n_leases; i++)
    json_array_append_new(leases, json_pack("{s:s,s:s,s:s}", "container", n->leases[i].container,
                                            "ip", n->leases[i].ip, "mac", n->leases[i].mac));
  json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:o}", "name", n->name, "id", n->id,
                        "subnet", n->subnet, "gateway", n->gateway, "bridge", n->bridge, "internal",
                        n->internal, "created", (json_int_t)n->created, "leases", leases);
  json_t *labels = json_array();
  for (size_t i = 0; i < n->n_labels; i++) json_array_append_new(labels, json_string(n->labels[i]));
  json_object_set_new(j, "labels", labels);
  char p[4200];
  path_of(s, n->name, p, sizeof p);
  char *text = json_dumps(j, JSON_INDENT(2));
  json_decref(j);
  int rc = text ? vs_write_atomic(p, text, strlen(text), 0600, err)
                : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  free(text);
  return rc;
}

static int list_names(net_store *s, char names[][64], size_t max) {
  DIR *d = opendir(s->dir);
  size_t n = 0;
  for (struct dirent *e; d && (e = readdir(d)) && n < max;) {
    size_t l = strlen(e->d_name);
    if (l > 5 && l - 5 < 64 && !strcmp(e->d_name + l - 5, ".json")) {
      memcpy(names[n], e->d_name, l - 5);
      names[n++][l - 5] = '\0';
    }
  }
  if (d) closedir(d);
  return (int)n;
}

static int overlaps(uint32_t a, int al, uint32_t b, int bl) {
  int l = al < bl ? al : bl;
  uint32_t mask = 0xffffffffu << (32 - l);
  return (a & mask) == (b & mask);
}

static int create_locked(net_store *s, const char *name, const char *subnet, const char *gateway,
                         int internal, char *const *labels, size_t n_labels, net_network *out,
                         vs_err *err) {
  if (!valid_name(name))
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "network name \"%s\": use 1-63 letters, digits, '-', '_' or '.'", name);
  char p[4200];
  path_of(s, name, p, sizeof p);
  if (access(p, F_OK) == 0) return vs_err_set(err, VS_ALREADY_EXISTS, "network %s exists", name);
  char names[256][64];
  int nn = list_names(s, names, 256);
  net_network others[256];
  int no = 0;
  for (int i = 0; i < nn; i++)
    if (load(s, names[i], &others[no], NULL) == 0) no++;
  net_network n;
  memset(&n, 0, sizeof n);
  snprintf(n.name, sizeof n.name, "%s", name);
  uint32_t net;
  int len, rc = 0;
  if (subnet && *subnet) {
    if (parse_cidr(subnet, &net, &len) < 0) {
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "subnet \"%s\": want IPv4 a.b.c.d/8..30", subnet);
      goto out;
    }
  } else { /* the first 10.89.N.0/24 no other network uses */
    len = 24;
    for (net = ip_val("10.89.0.0");; net += 256) {
      int used = 0;
      for (int i = 0; i < no; i++) {
        uint32_t on;
        int ol;
        if (parse_cidr(others[i].subnet, &on, &ol) == 0 && overlaps(net, len, on, ol)) used = 1;
      }
      if (!used) break;
      if (net >= ip_val("10.89.255.0")) {
        rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "no free subnet left in 10.89.0.0/16");
        goto out;
      }
    }
  }
  for (int i = 0; i < no; i++) {
    uint32_t on;
    int ol;
    if (parse_cidr(others[i].subnet, &on, &ol) == 0 && overlaps(net, len, on, ol)) {
      rc = vs_err_set(err, VS_ALREADY_EXISTS, "subnet %s overlaps network %s (%s)", subnet,
                      others[i].name, others[i].subnet);
      goto out;
    }
  }
  char netstr[16];
  ip_str(net, netstr);
  snprintf(n.subnet, sizeof n.subnet, "%s/%d", netstr, len);
  uint32_t gw = net + 1;
  if (gateway && *gateway) {
    gw = ip_val(gateway);
    uint32_t mask = 0xffffffffu << (32 - len);
    if (!gw || (gw & mask) != net || gw == net || gw == (net | ~mask)) {
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "gateway %s is not a host address of %s", gateway,
                      n.subnet);
      goto out;
    }
  }
  ip_str(gw, n.gateway);
  n.internal = internal;
  n.created = time(NULL);
  char seed[128], digest[72];
  snprintf(seed, sizeof seed, "%s/%lld/%d", name, (long long)n.created, (int)getpid());
  oci_sha256_bytes(seed, strlen(seed), digest);
  snprintf(n.id, sizeof n.id, "%s", digest + 7);
  if (!strcmp(name, NET_DEFAULT))
    snprintf(n.bridge, sizeof n.bridge, "vessel0");
  else
    snprintf(n.bridge, sizeof n.bridge, "vsl-%.10s", n.id);
  n.labels = calloc(n_labels ? n_labels : 1, sizeof *n.labels);
  for (size_t i = 0; n.labels && i < n_labels; i++)
    if ((n.labels[n.n_labels] = strdup(labels[i]))) n.n_labels++;
  rc = n.labels ? save(s, &n, err) : vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  if (rc == 0 && out) *out = n;
  else net_network_free(&n);
out:
  for (int i = 0; i < no; i++) net_network_free(&others[i]);
  return rc;
}

net_store *net_open(const char *root, vs_err *err) {
  net_store *s = calloc(1, sizeof *s);
  if (!s) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
  }
  snprintf(s->dir, sizeof s->dir, "%s/networks", root);
  pthread_mutex_init(&s->mu, NULL);
  if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
    vs_err_errno(err, VS_INTERNAL, errno, "mkdir %s", s->dir);
    net_close(s);
    return NULL;
  }
  char p[4200];
  path_of(s, NET_DEFAULT, p, sizeof p);
  if (access(p, F_OK) < 0 && create_locked(s, NET_DEFAULT, NET_DEFAULT_SUBNET, "", 1, NULL, 0, NULL, err) < 0) {
    net_close(s);
    return NULL;
  }
  return s;
}

void net_close(net_store *s) {
  if (!s) return;
  pthread_mutex_destroy(&s->mu);
  free(s);
}

int net_create(net_store *s, const char *name, const char *subnet, const char *gateway,
               int internal, char *const *labels, size_t n_labels, net_network *out,
               vs_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = create_locked(s, name, subnet, gateway, internal, labels, n_labels, out, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int net_get(net_store *s, const char *name, net_network *out, vs_err *err) {
  if (!valid_name(name)) return vs_err_set(err, VS_NOT_FOUND, "no network named %s", name);
  pthread_mutex_lock(&s->mu);
  int rc = load(s, name, out, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int net_list(net_store *s, net_network **out, size_t *n, vs_err *err) {
  char names[256][64];
  pthread_mutex_lock(&s->mu);
  int nn = list_names(s, names, 256);
  *out = calloc(nn ? (size_t)nn : 1, sizeof **out);
  *n = 0;
  for (int i = 0; *out && i < nn; i++)
    if (load(s, names[i], &(*out)[*n], NULL) == 0) (*n)++;
  pthread_mutex_unlock(&s->mu);
  if (!*out) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

int net_delete(net_store *s, const char *name, int force, vs_err *err) {
  if (!strcmp(name, NET_DEFAULT))
    return vs_err_set(err, VS_FAILED_PRECONDITION, "the default network cannot be deleted");
  pthread_mutex_lock(&s->mu);
  net_network n;
  int rc = valid_name(name) ? load(s, name, &n, err)
                            : vs_err_set(err, VS_NOT_FOUND, "no network named %s", name);
  if (rc == 0) {
    if (n.n_leases && !force)
      rc = vs_err_set(err, VS_FAILED_PRECONDITION, "network %s is used by %zu container(s), e.g. %s",
                      name, n.n_leases, n.leases[0].container);
    net_network_free(&n);
  }
  if (rc == 0) {
    char p[4200];
    path_of(s, name, p, sizeof p);
    if (unlink(p) < 0) rc = vs_err_errno(err, VS_INTERNAL, errno, "delete %s", p);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static void mac_for(uint32_t ip, char out[18]) {
  snprintf(out, 18, "02:42:%02x:%02x:%02x:%02x", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255,
           ip & 255);
}

int net_allocate(net_store *s, const char *name, const char *container, const char *want,
                 net_lease *out, vs_err *err) {
  pthread_mutex_lock(&s->mu);
  net_network n;
  int rc = load(s, name, &n, err);
  if (rc < 0) goto done;
  for (size_t i = 0; i < n.n_leases; i++)
    if (!strcmp(n.leases[i].container, container)) { /* idempotent */
      *out = n.leases[i];
      goto done_free;
    }
  uint32_t net, gw = ip_val(n.gateway);
  int len;
  parse_cidr(n.subnet, &net, &len);
  uint32_t bcast = net | ~(0xffffffffu << (32 - len));
  uint32_t pick = 0;
  if (want && *want) {
    pick = ip_val(want);
    if (!pick || pick <= net || pick >= bcast || pick == gw) {
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "address %s is not a free host address of %s", want,
                      n.subnet);
      goto done_free;
    }
    for (size_t i = 0; i < n.n_leases; i++)
      if (ip_val(n.leases[i].ip) == pick) {
        rc = vs_err_set(err, VS_ALREADY_EXISTS, "address %s is taken by %s", want,
                        n.leases[i].container);
        goto done_free;
      }
  } else {
    for (uint32_t c = net + 1; c < bcast && !pick; c++) {
      if (c == gw) continue;
      int used = 0;
      for (size_t i = 0; i < n.n_leases && !used; i++) used = ip_val(n.leases[i].ip) == c;
      if (!used) pick = c;
    }
    if (!pick) {
      rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "network %s has no free address", name);
      goto done_free;
    }
  }
  net_lease *l = realloc(n.leases, (n.n_leases + 1) * sizeof *l);
  if (!l) {
    rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    goto done_free;
  }
  n.leases = l;
  l = &n.leases[n.n_leases++];
  memset(l, 0, sizeof *l);
  snprintf(l->container, sizeof l->container, "%s", container);
  ip_str(pick, l->ip);
  mac_for(pick, l->mac);
  rc = save(s, &n, err);
  if (rc == 0) *out = *l;
done_free:
  net_network_free(&n);
done:
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int net_release(net_store *s, const char *name, const char *container, vs_err *err) {
  pthread_mutex_lock(&s->mu);
  net_network n;
  int rc = load(s, name, &n, err);
  if (rc == 0) {
    size_t k = 0;
    for (size_t i = 0; i < n.n_leases; i++)
      if (strcmp(n.leases[i].container, container) != 0) n.leases[k++] = n.leases[i];
    if (k != n.n_leases) {
      n.n_leases = k;
      rc = save(s, &n, err);
    }
    net_network_free(&n);
  } else if (err && err->code == VS_NOT_FOUND) {
    rc = 0; /* the network is gone: nothing to release */
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}
