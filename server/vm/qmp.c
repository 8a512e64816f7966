/* QEMU's monitor protocol (QMP), as vm.c uses it: one command at a time
 * on one connection, events skipped.
 *
 * QEMU sends events whenever they happen, also in the same read as a reply
 * (a migration emits several). Input is read through its own stdio stream
 * and commands are written to the socket directly: one stream for both
 * ("r+") is undefined behaviour on a socket, and glibc then tries to seek
 * back over buffered unread input before writing, fails (ESPIPE), and
 * drops the command, which made template saves fail now and then with
 * "QMP went away". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/vm/vm.h"

struct vm_qmp {
  int fd;
  FILE *in;
  char *line; /* the last line read (getline's buffer, kept) */
  size_t cap;
};

vm_qmp *vm_qmp_open(int fd) {
  vm_qmp *q = calloc(1, sizeof *q);
  FILE *in = q ? fdopen(fd, "r") : NULL;
  if (!in) {
    free(q);
    close(fd);
    return NULL;
  }
  q->fd = fd;
  q->in = in;
  if (getline(&q->line, &q->cap, in) <= 0 || !strstr(q->line, "\"QMP\"") || /* greeting */
      vm_qmp_cmd(q, "{\"execute\":\"qmp_capabilities\"}", NULL, 0) < 0) {
    vm_qmp_close(q);
    return NULL;
  }
  return q;
}

static int send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int vm_qmp_cmd(vm_qmp *q, const char *json, char *reply, size_t n) {
  if (reply && n) reply[0] = '\0';
  if (send_all(q->fd, json, strlen(json)) < 0 || send_all(q->fd, "\n", 1) < 0) return -1;
  while (getline(&q->line, &q->cap, q->in) > 0) {
    /* A reply is {"return": ...} or {"error": ...}; events begin with
     * their "timestamp". */
    int ok = !strncmp(q->line, "{\"return\"", 9);
    if (!ok && strncmp(q->line, "{\"error\"", 8)) continue;
    if (reply && n) snprintf(reply, n, "%s", q->line);
    return ok ? 0 : -1;
  }
  return -1;
}

void vm_qmp_close(vm_qmp *q) {
  if (!q) return;
  fclose(q->in); /* and its fd */
  free(q->line);
  free(q);
}
