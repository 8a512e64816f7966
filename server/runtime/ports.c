/* Published ports: a userspace TCP proxy per mapping, listening on the
 * host address and copying bytes both ways to the container's IP. (The
 * container's IP is reachable directly too; this is for users who want a
 * host port.) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/runtime/runtime_internal.h"

typedef struct pipe_pair {
  int a, b;
} pipe_pair;

/* Copies until either side closes, then shuts both down. */
static void *splice_main(void *arg) {
  pipe_pair pp = *(pipe_pair *)arg;
  free(arg);
  char buf[1 << 15];
  struct pollfd pf[2] = {{pp.a, POLLIN, 0}, {pp.b, POLLIN, 0}};
  for (;;) {
    if (poll(pf, 2, -1) < 0 && errno != EINTR) break;
    int done = 0;
    for (int i = 0; i < 2 && !done; i++) {
      if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(pf[i].fd, buf, sizeof buf);
      if (n <= 0) {
        done = 1;
        break;
      }
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(pf[1 - i].fd, buf + off, (size_t)(n - off));
        if (w <= 0) {
          done = 1;
          break;
        }
        off += w;
      }
    }
    if (done) break;
  }
  close(pp.a);
  close(pp.b);
  return NULL;
}

static void *accept_main(void *arg) {
  rt_port *p = arg;
  struct pollfd pf[2] = {{p->listen_fd, POLLIN, 0}, {p->stop_fd, POLLIN, 0}};
  for (;;) {
    if (poll(pf, 2, -1) < 0 && errno != EINTR) break;
    if (pf[1].revents & POLLIN) break;
    if (!(pf[0].revents & POLLIN)) continue;
    int in = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (in < 0) continue;
    int out = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->container_port)};
    inet_pton(AF_INET, p->container_ip, &to.sin_addr);
    if (out < 0 || connect(out, (struct sockaddr *)&to, sizeof to) < 0) {
      close(in);
      if (out >= 0) close(out);
      continue;
    }
    pipe_pair *pp = malloc(sizeof *pp);
    pp->a = in;
    pp->b = out;
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, splice_main, pp) != 0) {
      close(in);
      close(out);
      free(pp);
    }
    pthread_attr_destroy(&at);
  }
  return NULL;
}

int rt_ports_start(rt_container *c, vs_err *err) {
  const Vessel__V1__ContainersCreateRequest *s = c->spec;
  if (!s->n_ports) return 0;
  if (!c->ip[0])
    return vs_err_set(err, VS_FAILED_PRECONDITION, "ports need a network (the container has none)");
  c->ports = calloc(s->n_ports, sizeof *c->ports);
  for (size_t i = 0; i < s->n_ports; i++) {
    const Vessel__V1__PortMapping *m = s->ports[i];
    rt_port *p = &c->ports[c->n_ports];
    snprintf(p->container_ip, sizeof p->container_ip, "%s", c->ip);
    p->container_port = (int)m->container_port;
    snprintf(p->host_ip, sizeof p->host_ip, "%s", *m->host_ip ? m->host_ip : "0.0.0.0");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)m->host_port)};
    if (inet_pton(AF_INET, p->host_ip, &a.sin_addr) != 1) {
      rt_ports_stop(c);
      return vs_err_set(err, VS_INVALID_ARGUMENT, "port mapping: bad host_ip %s", p->host_ip);
    }
    int one = 1;
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(p->listen_fd, 64) < 0) {
      int e = errno;
      if (p->listen_fd >= 0) close(p->listen_fd);
      rt_ports_stop(c);
      return vs_err_errno(err, e == EADDRINUSE ? VS_ALREADY_EXISTS : VS_INTERNAL, e,
                          "publish %s:%u", *m->host_ip ? m->host_ip : "0.0.0.0", m->host_port);
    }
    socklen_t al = sizeof a;
    getsockname(p->listen_fd, (struct sockaddr *)&a, &al);
    p->host_port = ntohs(a.sin_port);
    p->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (pthread_create(&p->thread, NULL, accept_main, p) != 0) {
      close(p->listen_fd);
      close(p->stop_fd);
      rt_ports_stop(c);
      return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "cannot start the port proxy");
    }
    c->n_ports++;
  }
  return 0;
}

void rt_ports_stop(rt_container *c) {
  for (size_t i = 0; i < c->n_ports; i++) {
    rt_port *p = &c->ports[i];
    uint64_t one = 1;
    ssize_t n = write(p->stop_fd, &one, sizeof one);
    (void)n;
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->stop_fd);
  }
  free(c->ports);
  c->ports = NULL;
  c->n_ports = 0;
}
