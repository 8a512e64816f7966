/* Host side of a container's network: the network's bridge (created on
 * first use, with the gateway address, and NAT for egress unless the
 * network is internal; iproute2 and iptables, once per network) and one
 * tap device per VM, enslaved to it (ioctls: per container, no process
 * to spawn). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/vs_log.h"
#include "server/oci/oci.h"
#include "server/runtime/runtime_internal.h"

extern char **environ;

/* Runs argv; 0 on exit status 0, else -1 with its stderr in err. */
int rt_run(vs_err *err, const char *const *argv) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) return vs_err_errno(err, VS_INTERNAL, errno, "pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    return vs_err_errno(err, VS_FAILED_PRECONDITION, rc, "cannot run %s", argv[0]);
  }
  char msg[300];
  ssize_t n = read(pipefd[0], msg, sizeof msg - 1);
  close(pipefd[0]);
  msg[n > 0 ? n : 0] = '\0';
  msg[strcspn(msg, "\n")] = '\0';
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  char cmd[256] = "";
  for (int i = 0; argv[i]; i++) {
    size_t l = strlen(cmd);
    snprintf(cmd + l, sizeof cmd - l, "%s%s", i ? " " : "", argv[i]);
  }
  return vs_err_set(err, VS_INTERNAL, "%s: %s", cmd, msg[0] ? msg : "failed");
}


/* iptables [-t table] op chain [1] rule...: op "-C" checks, "-A" appends,
 * "-I" inserts first, "-D" deletes. A network's rules are named once
 * (below) for adding and for deleting. */
#define RULE(...) ((const char *const[]){__VA_ARGS__, NULL})
static int iptables(vs_err *err, const char *table, const char *op, const char *chain,
                    const char *const *rule) {
  const char *argv[24];
  size_t n = 0;
  argv[n++] = "iptables";
  if (table) {
    argv[n++] = "-t";
    argv[n++] = table;
  }
  argv[n++] = op;
  argv[n++] = chain;
  if (!strcmp(op, "-I")) argv[n++] = "1";
  for (size_t i = 0; rule[i] && n < 23; i++) argv[n++] = rule[i];
  argv[n] = NULL;
  return rt_run(err, argv);
}

/* Adds the rule (op "-A" or "-I") unless it is there. */
static int ensure_rule(vs_err *err, const char *table, const char *op, const char *chain,
                       const char *const *rule) {
  vs_err ignore;
  return iptables(&ignore, table, "-C", chain, rule) == 0 ? 0 : iptables(err, table, op, chain, rule);
}

/* Networks are isolated from each other, as Docker's are: whatever comes
 * from one vessel bridge and would leave by another is dropped (two chains:
 * stage 1 names the bridges traffic comes from, stage 2 those it must not
 * go to). An internal network refuses what would leave it; the others are
 * masqueraded when they leave by another link. */
#define ISO1 "VESSEL-ISOLATION-1"
#define ISO2 "VESSEL-ISOLATION-2"
#define FROM_BRIDGE(b) RULE("-i", b, "!", "-o", b, "-j", ISO2)
#define TO_BRIDGE(b) RULE("-o", b, "-j", "DROP")
#define NOTHING_LEAVES(b) RULE("-i", b, "!", "-o", b, "-j", "REJECT")
#define NAT(n) RULE("-s", (n)->subnet, "!", "-o", (n)->bridge, "-j", "MASQUERADE")

static int isolate(const char *bridge, vs_err *err) {
  vs_err ignore;
  RT_RUN(&ignore, "iptables", "-N", ISO1); /* (exists already: fine) */
  RT_RUN(&ignore, "iptables", "-N", ISO2);
  return ensure_rule(err, NULL, "-I", "FORWARD", RULE("-j", ISO1)) < 0 ||
                 ensure_rule(err, NULL, "-A", ISO1, FROM_BRIDGE(bridge)) < 0 ||
                 ensure_rule(err, NULL, "-A", ISO2, TO_BRIDGE(bridge)) < 0
             ? -1
             : 0;
}

static int ensure_bridge(const net_network *n, int prefix, vs_err *err) {
  vs_err ignore;
  if (RT_RUN(&ignore, "ip", "link", "show", "dev", n->bridge) != 0) {
    if (RT_RUN(err, "ip", "link", "add", n->bridge, "type", "bridge") < 0) {
      /* a concurrent start may have created it */
      if (RT_RUN(&ignore, "ip", "link", "show", "dev", n->bridge) != 0) return -1;
    }
  }
  char cidr[40];
  snprintf(cidr, sizeof cidr, "%s/%d", n->gateway, prefix);
  if (RT_RUN(&ignore, "ip", "addr", "add", cidr, "dev", n->bridge) < 0 &&
      !strstr(ignore.msg, "exists") && !strstr(ignore.msg, "already"))
    return vs_err_set(err, VS_INTERNAL, "%s", ignore.msg);
  if (RT_RUN(err, "ip", "link", "set", n->bridge, "up") < 0) return -1;
  if (isolate(n->bridge, err) < 0) return -1;
  if (n->internal) /* nothing leaves: refuse at once rather than time out */
    return ensure_rule(err, NULL, "-A", "FORWARD", NOTHING_LEAVES(n->bridge));
  /* NAT for egress: forward and masquerade what leaves by another link. */
  FILE *f = fopen("/proc/sys/net/ipv4/ip_forward", "w");
  if (!f || fputs("1", f) < 0 || fclose(f) != 0)
    return vs_err_errno(err, VS_INTERNAL, errno, "enable IPv4 forwarding");
  return ensure_rule(err, "nat", "-A", "POSTROUTING", NAT(n));
}

/* Bridge, address and firewall rules once per network and vesseld: each
 * `ip`/`iptables` run costs milliseconds on every container start. */
static int bridge_once(rt_runtime *rt, const net_network *n, vs_err *err) {
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n_bridges; i++)
    if (!strcmp(rt->bridges[i], n->bridge)) {
      pthread_mutex_unlock(&rt->mu);
      return 0;
    }
  pthread_mutex_unlock(&rt->mu);
  if (ensure_bridge(n, net_prefix_len(n->subnet), err) < 0) return -1;
  /* The network's DNS on its gateway (the bridge has that address now).
   * Port 53 taken there (a host DNS server on all addresses): containers
   * get the host's resolvers instead. */
  vs_err derr;
  if (rt->dns && dns_listen(rt->dns, n->gateway, 53, &derr) < 0)
    vs_log("vesseld", VS_LOG_WARN, "network %s: no DNS for its containers: %s", n->name, derr.msg);
  pthread_mutex_lock(&rt->mu);
  if (rt->n_bridges < 32) snprintf(rt->bridges[rt->n_bridges++], 16, "%s", n->bridge);
  pthread_mutex_unlock(&rt->mu);
  return 0;
}

/* 1 if c (with c->mu held) answers to name: its ID, the first 12
 * characters of it, its hostname, or an alias of its attachment i. */
static int named(const rt_container *c, size_t i, const char *name) {
  if (!strcasecmp(c->id, name) || (strlen(name) == 12 && !strncasecmp(c->id, name, 12)) ||
      !strcasecmp(c->spec->hostname, name))
    return 1;
  const Vessel__V1__NetworkAttachment *na = i < c->spec->n_networks ? c->spec->networks[i] : NULL;
  for (size_t k = 0; na && k < na->n_aliases; k++)
    if (!strcasecmp(na->aliases[k], name)) return 1;
  return 0;
}

/* Whether c (c->mu held, VM up) has a NIC on the network of gateway. */
static const rt_nic *nic_on(const rt_container *c, const char *gateway) {
  for (size_t i = 0; c->vm && i < c->n_nics; i++)
    if (!strcmp(c->nics[i].gateway, gateway)) return &c->nics[i];
  return NULL;
}

/* The address of name for the client at `client` that asked the DNS on
 * gateway: a container (VM up) named so on a network the client's
 * container is on (as Docker's: the networks of the one asking), the
 * gateway's network first. A client that is no container sees the
 * gateway's network only. */
static int dns_lookup(void *arg, const char *gateway, const char *client, const char *name,
                      struct in_addr *addr) {
  rt_runtime *rt = arg;
  char gws[VM_MAX_NICS][16];
  size_t n_gws = 1;
  snprintf(gws[0], sizeof gws[0], "%s", gateway);
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n && n_gws == 1; i++) { /* the client's other networks */
    rt_container *c = rt->list[i];
    pthread_mutex_lock(&c->mu);
    const rt_nic *mine = nic_on(c, gateway);
    for (size_t k = 0; mine && !strcmp(mine->ip, client) && k < c->n_nics; k++)
      if (&c->nics[k] != mine) snprintf(gws[n_gws++], sizeof gws[0], "%s", c->nics[k].gateway);
    pthread_mutex_unlock(&c->mu);
  }
  int found = 0;
  for (size_t g = 0; g < n_gws && !found; g++)
    for (size_t i = 0; i < rt->n && !found; i++) {
      rt_container *c = rt->list[i];
      pthread_mutex_lock(&c->mu);
      const rt_nic *nic = nic_on(c, gws[g]);
      found = nic && named(c, (size_t)(nic - c->nics), name) && inet_pton(AF_INET, nic->ip, addr) == 1;
      pthread_mutex_unlock(&c->mu);
    }
  pthread_mutex_unlock(&rt->mu);
  return found;
}

int rt_dns_open(rt_runtime *rt, vs_err *err) {
  dns_resolv host; /* vesseld's own resolvers: loopback ones serve it too */
  dns_resolv_conf("/etc/resolv.conf", 0, &host);
  char *ns[3] = {host.ns[0], host.ns[1], host.ns[2]};
  rt->dns = rt->cfg.n_dns_upstreams
                ? dns_open(dns_lookup, rt, rt->cfg.dns_upstreams, rt->cfg.n_dns_upstreams, err)
                : dns_open(dns_lookup, rt, ns, host.n_ns, err);
  return rt->dns ? 0 : -1;
}

/* Attaches to tap name (creating it if absent) and makes it outlive the
 * fd (persist) or not; closing a non-persistent tap removes it. 0, or the
 * errno of the failure (also in err). */
static int tap_persist(const char *name, int persist, vs_err *err) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    vs_err_errno(err, VS_FAILED_PRECONDITION, e, "open /dev/net/tun");
    return e;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  int e = 0;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, persist) < 0) {
    e = errno;
    vs_err_errno(err, VS_INTERNAL, e, "tap %s", name);
  }
  close(fd);
  return e;
}

void rt_tap_name(const char *stem, size_t i, char out[16]) {
  if (i) snprintf(out, 16, "%.14s%c", stem, 'g' + (int)(i % 20));
  else snprintf(out, 16, "%.14s", stem);
}

int rt_tap_create(const char *name, const char *bridge, vs_err *err) {
  /* A leftover of a crash with this name is simply taken over. A tap of
   * this name just deleted may still be unregistering (EBUSY): wait. */
  int e;
  for (int i = 0; (e = tap_persist(name, 1, err)) == EBUSY && i < 50; i++) usleep(20000);
  if (e) return -1;
  if (rt_tap_attach(name, bridge, err) < 0) {
    rt_tap_delete(name);
    return -1;
  }
  return 0;
}

int rt_tap_attach(const char *name, const char *bridge, vs_err *err) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return vs_err_errno(err, VS_INTERNAL, errno, "socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  int rc = 0;
  char master[64], link[300];
  snprintf(link, sizeof link, "/sys/class/net/%s/master", name);
  ssize_t ml = readlink(link, master, sizeof master - 1);
  master[ml > 0 ? ml : 0] = '\0';
  const char *in = strrchr(master, '/');
  if (bridge && *bridge && !(in && !strcmp(in + 1, bridge))) { /* not in it already */
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", bridge);
    ifr.ifr_ifindex = (int)if_nametoindex(name);
    if (!ifr.ifr_ifindex || ioctl(s, SIOCBRADDIF, &ifr) < 0)
      rc = vs_err_errno(err, VS_INTERNAL, errno, "add %s to bridge %s", name, bridge);
  }
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  if (rc == 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = vs_err_errno(err, VS_INTERNAL, errno, "set %s up", name);
  }
  close(s);
  return rc;
}

void rt_tap_delete(const char *name) {
  vs_err ignore;
  tap_persist(name, 0, &ignore);
}

int rt_net_setup(rt_runtime *rt, rt_nic *nic, const net_network *n, vs_err *err) {
  if (bridge_once(rt, n, err) < 0) return -1;
  snprintf(nic->bridge, sizeof nic->bridge, "%s", n->bridge);
  return 0;
}

void rt_net_teardown(rt_container *c) {
  for (size_t i = 0; i < c->n_nics; i++)
    if (c->nics[i].tap[0]) {
      rt_tap_delete(c->nics[i].tap);
      c->nics[i].tap[0] = '\0';
    }
}

void rt_net_remove(rt_runtime *rt, const net_network *n) {
  vs_err ignore;
  pthread_mutex_lock(&rt->mu);
  for (size_t i = 0; i < rt->n_bridges; i++)
    if (!strcmp(rt->bridges[i], n->bridge)) {
      memmove(rt->bridges[i], rt->bridges[i + 1], (rt->n_bridges - i - 1) * sizeof rt->bridges[0]);
      rt->n_bridges--;
      break;
    }
  pthread_mutex_unlock(&rt->mu);
  iptables(&ignore, NULL, "-D", "FORWARD", NOTHING_LEAVES(n->bridge));
  iptables(&ignore, NULL, "-D", ISO1, FROM_BRIDGE(n->bridge));
  iptables(&ignore, NULL, "-D", ISO2, TO_BRIDGE(n->bridge));
  iptables(&ignore, "nat", "-D", "POSTROUTING", NAT(n));
  RT_RUN(&ignore, "ip", "link", "del", n->bridge);
  if (rt->dns) dns_unlisten(rt->dns, n->gateway);
}
