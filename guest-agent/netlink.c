/* rtnetlink requests built by hand: no libnl in the guest. */
#include "guest-agent/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

typedef struct req {
  struct nlmsghdr h;
  char buf[1024];
} req;

int nl_open(nl_sock *s, vs_err *err) {
  s->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  s->seq = 1;
  if (s->fd < 0) return vs_err_errno(err, VS_INTERNAL, errno, "netlink socket");
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(s->fd);
    s->fd = -1;
    return vs_err_errno(err, VS_INTERNAL, e, "netlink bind");
  }
  return 0;
}

void nl_close(nl_sock *s) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
}

static void *tail(struct nlmsghdr *h) { return (char *)h + NLMSG_ALIGN(h->nlmsg_len); }

static void add_attr(struct nlmsghdr *h, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = tail(h);
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Sends h and reads the ACK: 0, or -errno from the kernel. */
static int talk(nl_sock *s, struct nlmsghdr *h) {
  h->nlmsg_seq = ++s->seq;
  h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (send(s->fd, h, h->nlmsg_len, 0) < 0) return -errno;
  char buf[8192];
  for (;;) {
    ssize_t n = recv(s->fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, (size_t)n);
         r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != s->seq) continue;
      if (r->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(r);
        return e->error;
      }
    }
  }
}

int nl_parse_addr(const char *str, nl_addr *out, vs_err *err) {
  memset(out, 0, sizeof *out);
  out->prefix = -1;
  char buf[80];
  if (!str || strlen(str) >= sizeof buf)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad address \"%s\"", str ? str : "");
  strcpy(buf, str);
  char *slash = strchr(buf, '/');
  if (slash) {
    *slash++ = '\0';
    char *end;
    long p = strtol(slash, &end, 10);
    if (!*slash || *end || p < 0)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "bad prefix in \"%s\"", str);
    out->prefix = (int)p;
  }
  if (inet_pton(AF_INET, buf, out->bytes) == 1) {
    out->family = AF_INET;
    if (out->prefix > 32) return vs_err_set(err, VS_INVALID_ARGUMENT, "bad prefix in \"%s\"", str);
  } else if (inet_pton(AF_INET6, buf, out->bytes) == 1) {
    out->family = AF_INET6;
    if (out->prefix > 128) return vs_err_set(err, VS_INVALID_ARGUMENT, "bad prefix in \"%s\"", str);
  } else {
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad address \"%s\"", str);
  }
  return 0;
}

static size_t alen(int family) { return family == AF_INET ? 4 : 16; }

int nl_parse_mac(const char *s, uint8_t mac[6], vs_err *err) {
  unsigned v[6];
  char extra;
  if (!s || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &extra) != 6)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad MAC address \"%s\"", s ? s : "");
  for (int i = 0; i < 6; i++) mac[i] = (uint8_t)v[i];
  return 0;
}

void nl_format_mac(const uint8_t m[6], char *out, size_t n) {
  snprintf(out, n, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

int nl_link_index(const char *name, vs_err *err) {
  unsigned i = if_nametoindex(name);
  if (i == 0) return vs_err_set(err, VS_NOT_FOUND, "no interface %s", name);
  return (int)i;
}

static int link_req(nl_sock *s, int index, unsigned flags, unsigned change,
                    unsigned short attr, const void *data, size_t len) {
  req r;
  memset(&r, 0, sizeof r);
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  r.h.nlmsg_type = RTM_NEWLINK;
  struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  ifi->ifi_flags = flags;
  ifi->ifi_change = change;
  if (attr) add_attr(&r.h, attr, data, len);
  return talk(s, &r.h);
}

int nl_link_set(nl_sock *s, int index, int up, unsigned mtu, const uint8_t *mac,
                const char *new_name, vs_err *err) {
  int rc;
  if (up == 0 && (rc = link_req(s, index, 0, IFF_UP, 0, NULL, 0)) < 0)
    return vs_err_errno(err, VS_INTERNAL, -rc, "link %d down", index);
  if (new_name && *new_name) {
    if (strlen(new_name) >= IFNAMSIZ)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "interface name \"%s\" too long", new_name);
    rc = link_req(s, index, 0, 0, IFLA_IFNAME, new_name, strlen(new_name) + 1);
    if (rc == -EEXIST) return vs_err_set(err, VS_ALREADY_EXISTS, "interface %s exists", new_name);
    if (rc < 0) return vs_err_errno(err, VS_INTERNAL, -rc, "rename link %d", index);
  }
  if (mac && (rc = link_req(s, index, 0, 0, IFLA_ADDRESS, mac, 6)) < 0)
    return vs_err_errno(err, rc == -EINVAL ? VS_INVALID_ARGUMENT : VS_INTERNAL, -rc,
                        "set MAC of link %d", index);
  if (mtu && (rc = link_req(s, index, 0, 0, IFLA_MTU, &mtu, sizeof mtu)) < 0)
    return vs_err_errno(err, rc == -EINVAL ? VS_INVALID_ARGUMENT : VS_INTERNAL, -rc,
                        "set MTU %u of link %d", mtu, index);
  if (up == 1 && (rc = link_req(s, index, IFF_UP, IFF_UP, 0, NULL, 0)) < 0)
    return vs_err_errno(err, VS_INTERNAL, -rc, "link %d up", index);
  return 0;
}

int nl_addr_add(nl_sock *s, int index, const nl_addr *a, vs_err *err) {
  if (a->prefix < 0) return vs_err_set(err, VS_INVALID_ARGUMENT, "address needs a prefix length");
  req r;
  memset(&r, 0, sizeof r);
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  r.h.nlmsg_type = RTM_NEWADDR;
  r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
  struct ifaddrmsg *ifa = NLMSG_DATA(&r.h);
  ifa->ifa_family = (unsigned char)a->family;
  ifa->ifa_prefixlen = (unsigned char)a->prefix;
  ifa->ifa_index = (unsigned)index;
  add_attr(&r.h, IFA_LOCAL, a->bytes, alen(a->family));
  add_attr(&r.h, IFA_ADDRESS, a->bytes, alen(a->family));
  if (a->family == AF_INET && a->prefix < 31) {
    uint8_t brd[4];
    uint32_t ip;
    memcpy(&ip, a->bytes, 4);
    uint32_t mask = a->prefix == 0 ? 0 : htonl(~0u << (32 - a->prefix));
    ip |= ~mask;
    memcpy(brd, &ip, 4);
    add_attr(&r.h, IFA_BROADCAST, brd, 4);
  }
  int rc = talk(s, &r.h);
  if (rc == -EEXIST) return 0;
  if (rc < 0)
    return vs_err_errno(err, rc == -EINVAL ? VS_INVALID_ARGUMENT : VS_INTERNAL, -rc,
                        "add address to link %d", index);
  return 0;
}

int nl_route_add(nl_sock *s, const nl_addr *dst, const nl_addr *gw, int index,
                 uint32_t metric, vs_err *err) {
  if (gw && gw->family != dst->family)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "gateway family differs from destination");
  req r;
  memset(&r, 0, sizeof r);
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
  r.h.nlmsg_type = RTM_NEWROUTE;
  r.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
  struct rtmsg *rt = NLMSG_DATA(&r.h);
  rt->rtm_family = (unsigned char)dst->family;
  rt->rtm_dst_len = (unsigned char)(dst->prefix < 0 ? alen(dst->family) * 8 : (size_t)dst->prefix);
  rt->rtm_table = RT_TABLE_MAIN;
  rt->rtm_protocol = RTPROT_STATIC;
  rt->rtm_scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rt->rtm_type = RTN_UNICAST;
  if (rt->rtm_dst_len) add_attr(&r.h, RTA_DST, dst->bytes, alen(dst->family));
  if (gw) add_attr(&r.h, RTA_GATEWAY, gw->bytes, alen(gw->family));
  if (index > 0) {
    uint32_t oif = (uint32_t)index;
    add_attr(&r.h, RTA_OIF, &oif, 4);
  }
  if (metric) add_attr(&r.h, RTA_PRIORITY, &metric, 4);
  int rc = talk(s, &r.h);
  if (rc == -ENETUNREACH || rc == -EHOSTUNREACH)
    return vs_err_set(err, VS_FAILED_PRECONDITION, "gateway unreachable");
  if (rc == -ENODEV) return vs_err_set(err, VS_NOT_FOUND, "no such device");
  if (rc < 0)
    return vs_err_errno(err, rc == -EINVAL ? VS_INVALID_ARGUMENT : VS_INTERNAL, -rc, "add route");
  return 0;
}

/* Dumps type (RTM_GETLINK / RTM_GETADDR) and calls fn for each message. */
static int dump(nl_sock *s, int type, size_t hdr_len,
                void (*fn)(struct nlmsghdr *, void *), void *arg) {
  req r;
  memset(&r, 0, sizeof r);
  r.h.nlmsg_len = NLMSG_LENGTH(hdr_len);
  r.h.nlmsg_type = (unsigned short)type;
  r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  r.h.nlmsg_seq = ++s->seq;
  if (send(s->fd, &r, r.h.nlmsg_len, 0) < 0) return -errno;
  char *buf = malloc(32768);
  if (!buf) return -ENOMEM;
  int rc = 0;
  for (int done = 0; !done;) {
    ssize_t n = recv(s->fd, buf, 32768, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      rc = -errno;
      break;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != s->seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) {
        done = 1;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        rc = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
        done = 1;
        break;
      }
      fn(h, arg);
    }
  }
  free(buf);
  return rc;
}

typedef struct links {
  nl_link *v;
  size_t n, cap;
} links;

static void on_link(struct nlmsghdr *h, void *arg) {
  links *l = arg;
  if (h->nlmsg_type != RTM_NEWLINK) return;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    nl_link *v = realloc(l->v, cap * sizeof *v);
    if (!v) return;
    l->v = v;
    l->cap = cap;
  }
  struct ifinfomsg *ifi = NLMSG_DATA(h);
  nl_link *k = &l->v[l->n++];
  memset(k, 0, sizeof *k);
  k->index = ifi->ifi_index;
  k->up = (ifi->ifi_flags & IFF_UP) != 0;
  int len = (int)IFLA_PAYLOAD(h);
  for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == IFLA_IFNAME)
      snprintf(k->name, sizeof k->name, "%s", (char *)RTA_DATA(a));
    else if (a->rta_type == IFLA_MTU)
      memcpy(&k->mtu, RTA_DATA(a), 4);
    else if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) {
      memcpy(k->mac, RTA_DATA(a), 6);
      k->has_mac = 1;
    }
  }
}

static void on_addr(struct nlmsghdr *h, void *arg) {
  links *l = arg;
  if (h->nlmsg_type != RTM_NEWADDR) return;
  struct ifaddrmsg *ifa = NLMSG_DATA(h);
  int len = (int)IFA_PAYLOAD(h);
  const void *addr = NULL;
  for (struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == IFA_LOCAL) addr = RTA_DATA(a);
    if (a->rta_type == IFA_ADDRESS && !addr) addr = RTA_DATA(a);
  }
  if (!addr) return;
  for (size_t i = 0; i < l->n; i++) {
    nl_link *k = &l->v[i];
    if (k->index != (int)ifa->ifa_index || k->n_addrs == NL_MAX_ADDRS) continue;
    char txt[INET6_ADDRSTRLEN];
    inet_ntop(ifa->ifa_family, addr, txt, sizeof txt);
    snprintf(k->addrs[k->n_addrs++], 64, "%s/%u", txt, ifa->ifa_prefixlen);
  }
}

static int by_index(const void *a, const void *b) {
  return ((const nl_link *)a)->index - ((const nl_link *)b)->index;
}

int nl_list_links(nl_sock *s, nl_link **out, size_t *n, vs_err *err) {
  links l = {NULL, 0, 0};
  int rc = dump(s, RTM_GETLINK, sizeof(struct ifinfomsg), on_link, &l);
  if (rc == 0) rc = dump(s, RTM_GETADDR, sizeof(struct ifaddrmsg), on_addr, &l);
  if (rc < 0) {
    free(l.v);
    return vs_err_errno(err, VS_INTERNAL, -rc, "netlink dump");
  }
  if (l.n) qsort(l.v, l.n, sizeof *l.v, by_index);
  *out = l.v;
  *n = l.n;
  return 0;
}

int nl_first_ipv4(const char *ifname, char *out, size_t n) {
  struct ifaddrs *ifs;
  if (getifaddrs(&ifs) < 0) return -1;
  int rc = -1;
  for (struct ifaddrs *i = ifs; i && rc < 0; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || strcmp(i->ifa_name, ifname) != 0)
      continue;
    inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)n);
    rc = 0;
  }
  freeifaddrs(ifs);
  return rc;
}
