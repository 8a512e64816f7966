/* Guest-wide system operations. */
#include "guest-agent/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest-agent/fs.h"

int sy_set_time(int64_t seconds, int32_t nanos, vs_err *err) {
  if (nanos < 0 || nanos >= 1000000000)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "nanos out of range");
  struct timespec ts = {(time_t)seconds, nanos};
  if (clock_settime(CLOCK_REALTIME, &ts) < 0)
    return vs_err_errno(err, VS_INTERNAL, errno, "clock_settime");
  return 0;
}

int sy_add_entropy(const void *data, size_t len, vs_err *err) {
  if (len == 0 || len > 4096)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "entropy must be 1..4096 bytes, got %zu", len);
  struct rand_pool_info *info = malloc(sizeof *info + len);
  if (!info) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  info->entropy_count = (int)(len * 8);
  info->buf_size = (int)len;
  memcpy(info->buf, data, len);
  int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
  int rc = 0;
  if (fd < 0) {
    rc = vs_err_errno(err, VS_INTERNAL, errno, "open /dev/urandom");
  } else {
    if (ioctl(fd, RNDADDENTROPY, info) < 0)
      rc = vs_err_errno(err, VS_INTERNAL, errno, "RNDADDENTROPY");
    /* Added entropy reaches the crng only at its next reseed, which may be
     * a minute away: a VM restored from a template would keep producing
     * the template's numbers until then. Reseed now. */
    else if (ioctl(fd, RNDRESEEDCRNG) < 0)
      rc = vs_err_errno(err, VS_INTERNAL, errno, "RNDRESEEDCRNG");
    close(fd);
  }
  free(info);
  return rc;
}

int sy_sysctl_path(const char *key, char *path, size_t size, vs_err *err) {
  if (!key || !*key || strstr(key, "..") || key[0] == '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad sysctl key \"%s\"", key ? key : "");
  int n = snprintf(path, size, "/proc/sys/%s", key);
  if (n < 0 || (size_t)n >= size) return vs_err_set(err, VS_INVALID_ARGUMENT, "key too long");
  /* Dotted keys use '/' as separator; slashed ones are already paths. */
  if (!strchr(key, '/'))
    for (char *p = path + 10; *p; p++)
      if (*p == '.') *p = '/';
  if (access(path, F_OK) < 0) return vs_err_set(err, VS_NOT_FOUND, "unknown sysctl %s", key);
  return 0;
}

int sy_sysctl_ipc(const char *key) {
  const char *k = key + (strncmp(key, "kernel/", 7) && strncmp(key, "kernel.", 7) ? 0 : 7);
  return (k != key && (!strncmp(k, "shm", 3) || !strncmp(k, "msg", 3) || !strcmp(k, "sem"))) ||
         !strncmp(key, "fs.mqueue.", 10) || !strncmp(key, "fs/mqueue/", 10);
}

int sy_sysctl(const char *key, const char *value, vs_err *err) {
  char path[512];
  if (sy_sysctl_path(key, path, sizeof path, err) < 0) return -1;
  if (fs_write_file(path, value, strlen(value), 0644, 0, err) < 0) {
    if (err && err->code == VS_INTERNAL) err->code = VS_INVALID_ARGUMENT;
    return -1;
  }
  return 0;
}

static int meminfo_field(const char *text, const char *name, uint64_t *out) {
  const char *p = strstr(text, name);
  if (!p) return -1;
  p += strlen(name);
  while (*p == ' ' || *p == ':') p++;
  *out = strtoull(p, NULL, 10) * 1024;
  return 0;
}

int sy_parse_meminfo(const char *text, uint64_t *total, uint64_t *avail) {
  *total = *avail = 0;
  if (meminfo_field(text, "MemTotal:", total) < 0) return -1;
  if (meminfo_field(text, "MemAvailable:", avail) < 0) return -1;
  return 0;
}

static int put_escaped(char *out, size_t out_len, size_t *pos, const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (*pos + 5 >= out_len) return -1;
    *pos += (size_t)snprintf(out + *pos, out_len - *pos, "\\x%02x", b[i]);
  }
  return 0;
}

int sy_binfmt_line(const char *name, int type, unsigned offset,
                   const uint8_t *magic, size_t magic_len, const uint8_t *mask,
                   size_t mask_len, const char *interpreter, const char *flags,
                   char *out, size_t out_len, vs_err *err) {
  if (!name || !*name || strchr(name, '/') || strchr(name, ':') ||
      strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strcmp(name, "register") == 0 ||
      strcmp(name, "status") == 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad binfmt name \"%s\"", name ? name : "");
  if (type != 1 && type != 2) return vs_err_set(err, VS_INVALID_ARGUMENT, "binfmt type unspecified");
  if (magic_len == 0) return vs_err_set(err, VS_INVALID_ARGUMENT, "empty magic");
  if (mask_len && mask_len != magic_len)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "mask length differs from magic length");
  if (!interpreter || interpreter[0] != '/' || strchr(interpreter, ':'))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "interpreter must be an absolute path");
  if (flags && strspn(flags, "POCF") != strlen(flags))
    return vs_err_set(err, VS_INVALID_ARGUMENT, "bad binfmt flags \"%s\"", flags);
  size_t pos = 0;
  int n = snprintf(out, out_len, ":%s:%c:", name, type == 1 ? 'M' : 'E');
  if (n < 0 || (size_t)n >= out_len) goto toolong;
  pos = (size_t)n;
  if (type == 1) {
    n = snprintf(out + pos, out_len - pos, "%u:", offset);
    if (n < 0 || pos + (size_t)n >= out_len) goto toolong;
    pos += (size_t)n;
    if (put_escaped(out, out_len, &pos, magic, magic_len) < 0) goto toolong;
  } else {
    for (size_t i = 0; i < magic_len; i++)
      if (magic[i] == ':' || magic[i] == '/' || magic[i] < 0x20)
        return vs_err_set(err, VS_INVALID_ARGUMENT, "bad extension");
    if (pos + magic_len + 2 >= out_len) goto toolong;
    out[pos++] = ':';
    memcpy(out + pos, magic, magic_len);
    pos += magic_len;
  }
  if (pos + 2 >= out_len) goto toolong;
  out[pos++] = ':';
  if (type == 1 && put_escaped(out, out_len, &pos, mask, mask_len) < 0) goto toolong;
  n = snprintf(out + pos, out_len - pos, ":%s:%s", interpreter, flags ? flags : "");
  if (n < 0 || pos + (size_t)n >= out_len) goto toolong;
  return 0;
toolong:
  return vs_err_set(err, VS_INVALID_ARGUMENT, "binfmt entry too long");
}

int sy_binfmt_register(const char *name, const char *line, vs_err *err) {
  const char *dir = "/proc/sys/fs/binfmt_misc";
  char path[512];
  snprintf(path, sizeof path, "%s/register", dir);
  if (access(path, F_OK) < 0 &&
      mount("binfmt_misc", dir, "binfmt_misc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return vs_err_errno(err, VS_INTERNAL, errno, "mount binfmt_misc");
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (access(path, F_OK) == 0)
    return vs_err_set(err, VS_ALREADY_EXISTS, "binfmt entry %s exists", name);
  snprintf(path, sizeof path, "%s/register", dir);
  if (fs_write_file(path, line, strlen(line), 0200, 0, err) < 0) {
    if (err) err->code = VS_INVALID_ARGUMENT;
    return vs_err_wrap(err, "register binfmt %s", name);
  }
  return 0;
}
