/* Copies into and out of a container as tar streams, made by the image's
 * own tar run as an exec (a missing tar is the agent's
 * FAILED_PRECONDITION). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/runtime/runtime_internal.h"

/* Runs argv in the container with its output on att (a missing tar is the
 * agent's FAILED_PRECONDITION). */
static int run_tar(rt_runtime *rt, const char *id, char **argv, size_t argc, int flags,
                   rt_attach **att, char eid[128], vs_err *err) {
  Vessel__V1__ProcessSpec spec;
  vessel__v1__process_spec__init(&spec);
  spec.args = argv;
  spec.n_args = argc;
  int pid;
  return rt_exec_attached(rt, id, NULL, &spec, flags, att, eid, &pid, err);
}

/* Drains att until exit: stdout to write (if any), stderr kept for errors. */
static int finish_tar(rt_attach *att, const char *what,
                      int (*write)(void *, const void *, size_t, vs_err *), void *arg, vs_err *err) {
  char errbuf[300] = "";
  size_t errlen = 0;
  rt_exit e;
  int rc = 0;
  for (;;) {
    int stream;
    char *data;
    size_t len;
    int r = rt_attach_next(att, -1, &stream, &data, &len, &e, err);
    if (r < 0) return -1;
    if (r == 0) break;
    if (stream == LG_STDERR) {
      size_t k = len < sizeof errbuf - 1 - errlen ? len : sizeof errbuf - 1 - errlen;
      memcpy(errbuf + errlen, data, k);
      errlen += k;
      errbuf[errlen] = '\0';
    } else if (write && rc == 0) {
      rc = write(arg, data, len, err);
    }
    free(data);
  }
  if (rc < 0) return -1;
  if (e.code != 0) {
    errbuf[strcspn(errbuf, "\n")] = '\0';
    return vs_err_set(err, e.code == 127 ? VS_FAILED_PRECONDITION : VS_INVALID_ARGUMENT,
                      "%s: tar exited %d%s%s", what, e.code, errbuf[0] ? ": " : "", errbuf);
  }
  return 0;
}

int rt_copy_in(rt_runtime *rt, const char *id, const char *dst,
               int (*read)(void *, const void **, size_t *, vs_err *), void *arg, int64_t *bytes,
               vs_err *err) {
  if (!dst || dst[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "copy destination \"%s\" must be absolute", dst);
  char *argv[] = {(char *)"tar", (char *)"-x", (char *)"-f", (char *)"-", (char *)"-C", (char *)dst};
  rt_attach *att = NULL;
  char eid[128];
  if (run_tar(rt, id, argv, 6, RT_ATTACH_STDOUT | RT_ATTACH_STDERR | RT_ATTACH_STDIN, &att, eid,
              err) < 0)
    return -1;
  int rc = 0;
  *bytes = 0;
  for (;;) {
    const void *data;
    size_t len;
    int r = read(arg, &data, &len, err);
    if (r < 0) {
      rc = -1;
      break;
    }
    if (r == 0) break;
    if (rt_attach_stdin(att, data, len, 0, err) < 0) {
      rc = -1;
      break;
    }
    *bytes += (int64_t)len;
  }
  vs_err ignore;
  rt_attach_stdin(att, "", 0, 1, &ignore); /* EOF either way: tar ends */
  if (rc < 0) rt_signal(rt, id, eid, 9, 0, &ignore);
  int frc = finish_tar(att, "copy in", NULL, NULL, rc < 0 ? &ignore : err);
  rt_attach_close(att);
  return rc < 0 ? -1 : frc;
}

int rt_copy_out(rt_runtime *rt, const char *id, const char *path,
                int (*write)(void *, const void *, size_t, vs_err *), void *arg, vs_err *err) {
  if (!path || path[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "copy source \"%s\" must be absolute", path);
  char dir[4096], base[4096];
  snprintf(dir, sizeof dir, "%s", path);
  while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/') dir[strlen(dir) - 1] = '\0';
  char *slash = strrchr(dir, '/');
  snprintf(base, sizeof base, "%s", slash[1] ? slash + 1 : ".");
  if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
  char *argv[] = {(char *)"tar", (char *)"-c", (char *)"-f", (char *)"-", (char *)"-C", dir, base};
  rt_attach *att = NULL;
  char eid[128];
  if (run_tar(rt, id, argv, 7, RT_ATTACH_STDOUT | RT_ATTACH_STDERR, &att, eid, err) < 0) return -1;
  int rc = finish_tar(att, "copy out", write, arg, err);
  rt_attach_close(att);
  return rc;
}
