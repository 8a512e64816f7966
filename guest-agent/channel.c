/* Agent transport: vsock listener and virtio-serial bridge. */
#include "guest-agent/channel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "common/vs_log.h"
#include "guest-agent/fs.h"

#define LOG(lvl, ...) vs_log("vminitd", lvl, __VA_ARGS__)

int ch_find_port(const char *sysfs_dir, const char *name, char *dev, size_t dev_len) {
  DIR *d = opendir(sysfs_dir);
  if (!d) return errno == ENOENT ? 0 : -1;
  struct dirent *e;
  int found = 0;
  while (!found && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[512], buf[256];
    snprintf(path, sizeof path, "%s/%s/name", sysfs_dir, e->d_name);
    if (fs_read_small(path, buf, sizeof buf) <= 0) continue;
    buf[strcspn(buf, "\n")] = '\0';
    if (strcmp(buf, name) == 0) {
      snprintf(dev, dev_len, "/dev/%s", e->d_name);
      found = 1;
    }
  }
  closedir(d);
  return found;
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

#define RELAY_BUF (256 * 1024)

typedef struct ring {
  char *buf;
  size_t off, len;
  size_t safe; /* of len, the bytes known to belong to this connection */
} ring;

/* Reads into r from fd: 1 progress, 0 EOF, -1 error, 2 would block. */
static int fill(ring *r, int fd) {
  if (r->off > 0 && r->off + r->len == RELAY_BUF) { /* make room behind a held-back tail */
    memmove(r->buf, r->buf + r->off, r->len);
    r->off = 0;
  }
  size_t space = RELAY_BUF - r->off - r->len;
  if (space == 0) return 2;
  ssize_t n = read(fd, r->buf + r->off + r->len, space);
  if (n > 0) {
    r->len += (size_t)n;
    return 1;
  }
  if (n == 0) return 0;
  return errno == EAGAIN || errno == EINTR ? 2 : -1;
}

/* Writes up to limit bytes of r to fd. */
static int drain(ring *r, int fd, size_t limit) {
  size_t want = r->len < limit ? r->len : limit;
  if (want == 0) return 2;
  ssize_t n = write(fd, r->buf + r->off, want);
  if (n > 0) {
    r->off += (size_t)n;
    r->len -= (size_t)n;
    if (r->safe != (size_t)-1) r->safe -= (size_t)n;
    if (r->len == 0) r->off = 0;
    return 1;
  }
  return n < 0 && (errno == EAGAIN || errno == EINTR) ? 2 : -1;
}

/* HTTP/2 client connection preface: every new host connection starts with
 * it. When the host reconnects faster than the guest notices the hang-up,
 * the new connection's bytes arrive on the same open port, possibly in the
 * same read as the old one's last bytes. The relay follows the host's
 * HTTP/2 frames (9-byte header, 24-bit length) and forwards only whole
 * headers; a preface where a frame header is due marks the new connection.
 * (Its first bytes read as a frame of 5 MB, beyond any max frame size a
 * gRPC server allows, so no real frame looks like it; the preface inside a
 * payload - a copied file, stdin - is skipped as payload.) */
static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24
#define FRAME_HEADER 9

typedef struct h2_track {
  size_t preface_left; /* of the connection's own preface */
  size_t payload_left; /* of the current frame */
} h2_track;

/* Advances t over r's new bytes, marking them safe. 1 (and r cut there)
 * when a new connection's preface starts; 0 otherwise. */
static int track(h2_track *t, ring *r) {
  for (;;) {
    size_t avail = r->len - r->safe;
    const char *p = r->buf + r->off + r->safe;
    if (avail == 0) return 0;
    if (t->preface_left || t->payload_left) {
      size_t *left = t->preface_left ? &t->preface_left : &t->payload_left;
      size_t n = avail < *left ? avail : *left;
      *left -= n;
      r->safe += n;
      continue;
    }
    size_t cmp = avail < FRAME_HEADER ? avail : FRAME_HEADER;
    if (memcmp(p, preface, cmp) == 0) {
      if (avail < FRAME_HEADER) return 0; /* maybe a preface: wait for more */
      return 1;
    }
    if (avail < FRAME_HEADER) return 0;
    const unsigned char *h = (const unsigned char *)p;
    t->payload_left = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
    r->safe += FRAME_HEADER;
  }
}

int ch_relay(int port, int sock, ch_carry *carry) {
  set_nonblock(port);
  set_nonblock(sock);
  ring up = {malloc(RELAY_BUF), 0, 0, 0};   /* port -> sock */
  ring down = {malloc(RELAY_BUF), 0, 0, (size_t)-1}; /* sock -> port: all safe */
  h2_track t = {PREFACE_LEN, 0};
  int rc = 0;
  if (!up.buf || !down.buf) goto out;
  if (carry && carry->len) {
    memcpy(up.buf, carry->buf, carry->len);
    up.len = carry->len;
    carry->len = 0;
  }
  for (;;) {
    if (track(&t, &up)) { /* the old connection ends at up.safe */
      size_t at = up.off + up.safe, n = up.len - up.safe;
      while (up.safe && drain(&up, sock, up.safe) == 1) {
      }
      if (carry) {
        memcpy(carry->buf, up.buf + at, n);
        carry->len = n;
      }
      rc = 2;
      goto out;
    }
    struct pollfd p[2] = {{port, 0, 0}, {sock, 0, 0}};
    if (up.len < RELAY_BUF) p[0].events |= POLLIN;
    if (down.len) p[0].events |= POLLOUT;
    if (down.off + down.len < RELAY_BUF) p[1].events |= POLLIN;
    if (up.safe) p[1].events |= POLLOUT;
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      goto out;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      int r = fill(&up, port);
      /* read() 0 / POLLHUP without data: the host closed its socket. */
      if (r == 0 || r < 0 || ((p[0].revents & POLLHUP) && r == 2)) {
        /* A held-back tail that may start a preface opens the next one. */
        size_t n = up.len - up.safe;
        if (carry && n && memcmp(up.buf + up.off + up.safe, preface, n) == 0) {
          memcpy(carry->buf, up.buf + up.off + up.safe, n);
          carry->len = n;
        }
        goto out;
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      int r = fill(&down, sock);
      if (r == 0 || r < 0) {
        rc = 1;
        goto out;
      }
    }
    if (up.safe && drain(&up, sock, up.safe) < 0) {
      rc = 1;
      goto out;
    }
    if (down.len && drain(&down, port, (size_t)-1) < 0) goto out;
  }
out:
  free(up.buf);
  free(down.buf);
  return rc;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

typedef struct serial_ctx {
  vrpc_server *srv;
  char dev[256];
} serial_ctx;

/* Host connected = poll on the port does not report POLLHUP; while no host
 * is there it reports that at once, so poll cannot wait for one. The
 * driver sends SIGIO to an O_ASYNC port's owner when the host connects or
 * leaves: this thread owns the port and takes that signal, blocked, with
 * sigtimedwait (a pending one is not lost between the check and the wait).
 * Polling instead cost a VM left without its host (vesseld restarting) 8%
 * of a host core under TCG at a 5 ms pace, still 2% at 100 ms. */
static void wait_host(int port) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGIO);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  struct f_owner_ex me = {F_OWNER_TID, (pid_t)syscall(SYS_gettid)};
  int fl = fcntl(port, F_GETFL);
  int async = fl >= 0 && fcntl(port, F_SETOWN_EX, &me) == 0 &&
              fcntl(port, F_SETFL, fl | O_ASYNC) == 0;
  for (;;) {
    struct pollfd p = {port, POLLIN, 0};
    int n = poll(&p, 1, 0);
    if (n >= 0 && !(p.revents & POLLHUP)) break;
    /* Without the signal (or should it not come), look again in 1 s. */
    struct timespec ts = {async ? 1 : 0, async ? 0 : 100 * 1000000L};
    sigtimedwait(&set, NULL, &ts);
  }
  if (async) fcntl(port, F_SETFL, fl);
}

static void *serial_main(void *arg) {
  serial_ctx *c = arg;
  int port = open(c->dev, O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (port < 0) {
    LOG(VS_LOG_ERROR, "open %s: %s", c->dev, strerror(errno));
    return NULL;
  }
  static ch_carry carry; /* one serial channel per agent */
  for (;;) {
    if (!carry.len) wait_host(port);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
      LOG(VS_LOG_ERROR, "socketpair: %s", strerror(errno));
      sleep_ms(100);
      continue;
    }
    vs_err err;
    if (vrpc_server_serve_fd(c->srv, sv[0], &err) < 0) {
      LOG(VS_LOG_ERROR, "serve: %s", err.msg);
      close(sv[1]);
      sleep_ms(100);
      continue;
    }
    int r = ch_relay(port, sv[1], &carry);
    close(sv[1]); /* gRPC sees EOF and drops the connection's calls */
    if (r == 0) LOG(VS_LOG_INFO, "host disconnected from %s; waiting", c->dev);
    if (r == 2) LOG(VS_LOG_INFO, "host reconnected on %s", c->dev);
  }
  return NULL;
}

typedef struct vsock_ctx {
  vrpc_server *srv;
  int lfd;
} vsock_ctx;

static void *vsock_main(void *arg) {
  vsock_ctx *c = arg;
  for (;;) {
    int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR) sleep_ms(10);
      continue;
    }
    vs_err err;
    if (vrpc_server_serve_fd(c->srv, fd, &err) < 0)
      LOG(VS_LOG_ERROR, "serve vsock: %s", err.msg);
  }
  return NULL;
}

/* A vsock device is present when the virtio transport bound to one. */
static int have_vsock(void) {
  DIR *d = opendir("/sys/bus/virtio/drivers/vmw_vsock_virtio_transport");
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, "virtio", 6) == 0) found = 1;
  closedir(d);
  return found;
}

static int start_vsock(vrpc_server *srv, unsigned port, vs_err *err) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return vs_err_errno(err, VS_INTERNAL, errno, "vsock socket");
  struct sockaddr_vm a;
  memset(&a, 0, sizeof a);
  a.svm_family = AF_VSOCK;
  a.svm_cid = VMADDR_CID_ANY;
  a.svm_port = port;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0) {
    int e = errno;
    close(fd);
    return vs_err_errno(err, VS_INTERNAL, e, "vsock bind/listen port %u", port);
  }
  vsock_ctx *c = calloc(1, sizeof *c);
  c->srv = srv;
  c->lfd = fd;
  pthread_t t;
  if (pthread_create(&t, NULL, vsock_main, c) != 0) {
    close(fd);
    free(c);
    return vs_err_set(err, VS_INTERNAL, "cannot start vsock thread");
  }
  pthread_detach(t);
  LOG(VS_LOG_INFO, "serving on vsock port %u", port);
  return 0;
}

int ch_start(vrpc_server *srv, const char *port_name, unsigned vsock_port,
             int wait_ms, vs_err *err) {
  char dev[256];
  int waited = 0, serving = 0;
  for (;;) {
    if (!serving && have_vsock()) {
      if (start_vsock(srv, vsock_port, err) == 0) serving = 1;
    }
    int f = ch_find_port("/sys/class/virtio-ports", port_name, dev, sizeof dev);
    if (f == 1) {
      serial_ctx *c = calloc(1, sizeof *c);
      c->srv = srv;
      snprintf(c->dev, sizeof c->dev, "%s", dev);
      pthread_t t;
      if (pthread_create(&t, NULL, serial_main, c) != 0) {
        free(c);
        return vs_err_set(err, VS_INTERNAL, "cannot start serial thread");
      }
      pthread_detach(t);
      LOG(VS_LOG_INFO, "serving on %s (%s)", dev, port_name);
      return 0;
    }
    if (waited >= wait_ms) break;
    sleep_ms(2);
    waited += 2;
  }
  if (serving) return 0;
  return vs_err_set(err, VS_NOT_FOUND, "no vsock device and no virtio-serial port named %s",
                    port_name);
}
