/* Filesystem helpers: mount option parsing, mkdir -p, whole-file I/O. */
#include "guest-agent/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/vs_fs.h"

typedef struct flag_word {
  const char *name;
  int clear; /* 1: the word clears the flag ("rw", "suid") */
  unsigned long flag;
} flag_word;

static const flag_word flag_words[] = {
    {"ro", 0, MS_RDONLY},       {"rw", 1, MS_RDONLY},
    {"nosuid", 0, MS_NOSUID},   {"suid", 1, MS_NOSUID},
    {"nodev", 0, MS_NODEV},     {"dev", 1, MS_NODEV},
    {"noexec", 0, MS_NOEXEC},   {"exec", 1, MS_NOEXEC},
    {"sync", 0, MS_SYNCHRONOUS}, {"async", 1, MS_SYNCHRONOUS},
    {"noatime", 0, MS_NOATIME}, {"atime", 1, MS_NOATIME},
    {"nodiratime", 0, MS_NODIRATIME}, {"relatime", 0, MS_RELATIME},
    {"norelatime", 1, MS_RELATIME}, {"strictatime", 0, MS_STRICTATIME},
    {"dirsync", 0, MS_DIRSYNC},  {"mand", 0, MS_MANDLOCK},
    {"bind", 0, MS_BIND},        {"rbind", 0, MS_BIND | MS_REC},
    {"remount", 0, MS_REMOUNT},  {"defaults", 0, 0},
};

static const flag_word prop_words[] = {
    {"private", 0, MS_PRIVATE},  {"rprivate", 0, MS_PRIVATE | MS_REC},
    {"shared", 0, MS_SHARED},    {"rshared", 0, MS_SHARED | MS_REC},
    {"slave", 0, MS_SLAVE},      {"rslave", 0, MS_SLAVE | MS_REC},
    {"unbindable", 0, MS_UNBINDABLE}, {"runbindable", 0, MS_UNBINDABLE | MS_REC},
};

int fs_parse_options(const char *const *opts, size_t n, unsigned long *flags,
                     unsigned long *propagation, char *data, size_t data_len,
                     vs_err *err) {
  *flags = 0;
  *propagation = 0;
  if (data_len) data[0] = '\0';
  size_t used = 0;
  for (size_t i = 0; i < n; i++) {
    const char *o = opts[i];
    if (!o || !*o) continue;
    int known = 0;
    for (size_t k = 0; k < sizeof flag_words / sizeof *flag_words; k++) {
      if (strcmp(o, flag_words[k].name) == 0) {
        if (flag_words[k].clear)
          *flags &= ~flag_words[k].flag;
        else
          *flags |= flag_words[k].flag;
        known = 1;
        break;
      }
    }
    for (size_t k = 0; !known && k < sizeof prop_words / sizeof *prop_words; k++) {
      if (strcmp(o, prop_words[k].name) == 0) {
        *propagation |= prop_words[k].flag;
        known = 1;
      }
    }
    if (known) continue;
    size_t len = strlen(o);
    if (used + len + 2 > data_len)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "mount options too long");
    if (used) data[used++] = ',';
    memcpy(data + used, o, len);
    used += len;
    data[used] = '\0';
  }
  return 0;
}

int fs_mkdir_all(const char *path, mode_t mode, vs_err *err) {
  if (vs_mkdir_p(path, mode, err) < 0) return -1;
  struct stat st;
  if (stat(path, &st) < 0) return vs_err_errno(err, VS_INTERNAL, errno, "stat %s", path);
  if (!S_ISDIR(st.st_mode))
    return vs_err_set(err, VS_ALREADY_EXISTS, "%s exists and is not a directory", path);
  return 0;
}

int fs_mount(const char *src, const char *dst, const char *type,
             unsigned long flags, const char *data, int mkdir, vs_err *err) {
  if (mkdir && fs_mkdir_all(dst, 0755, err) < 0) return -1;
  if (mount(src, dst, type, flags, data) < 0) {
    int e = errno;
    vs_code c = e == ENOENT ? VS_NOT_FOUND : e == EINVAL ? VS_INVALID_ARGUMENT : VS_INTERNAL;
    return vs_err_errno(err, c, e, "mount %s on %s (type %s)", src ? src : "none", dst,
                        type ? type : "none");
  }
  return 0;
}

int fs_mount_spec(const char *type, const char *src, const char *dst,
                  const char *const *opts, size_t n_opts, int mkdir, vs_err *err) {
  unsigned long flags, prop;
  char data[1024];
  if (fs_parse_options(opts, n_opts, &flags, &prop, data, sizeof data, err) < 0) return -1;
  int bind = type && strcmp(type, "bind") == 0;
  if (bind) flags |= MS_BIND;
  if (bind && mkdir) {
    /* A bind mount of a file needs a file as its target. */
    struct stat st;
    if (stat(src, &st) == 0 && !S_ISDIR(st.st_mode)) {
      char parent[4096];
      snprintf(parent, sizeof parent, "%s", dst);
      char *slash = strrchr(parent, '/');
      if (slash && slash != parent) {
        *slash = '\0';
        if (fs_mkdir_all(parent, 0755, err) < 0) return -1;
      }
      int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd >= 0) close(fd);
      mkdir = 0;
    }
  }
  if (fs_mount(src && *src ? src : (bind ? NULL : "none"), dst,
               bind ? NULL : type, flags, data[0] ? data : NULL, mkdir, err) < 0)
    return -1;
  /* A bind mount ignores most flags on the first call: remount to apply. */
  if (bind && (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)) &&
      fs_mount(NULL, dst, NULL, flags | MS_REMOUNT, NULL, 0, err) < 0)
    return -1;
  if (prop && fs_mount(NULL, dst, NULL, prop, NULL, 0, err) < 0) return -1;
  return 0;
}

int fs_write_file(const char *path, const void *data, size_t len, mode_t mode,
                  int append, vs_err *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), mode);
  if (fd < 0)
    return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL, errno,
                        "open %s", path);
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return vs_err_errno(err, e == EINVAL ? VS_INVALID_ARGUMENT : VS_INTERNAL, e,
                          "write %s", path);
    }
    p += n;
    len -= (size_t)n;
  }
  if (close(fd) < 0) return vs_err_errno(err, VS_INTERNAL, errno, "close %s", path);
  return 0;
}

ssize_t fs_read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t got = 0;
  while (got + 1 < cap) {
    ssize_t n = read(fd, buf + got, cap - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  return (ssize_t)got;
}

int fs_join(const char *root, const char *path, char *out, size_t out_len,
            vs_err *err) {
  if (!path || path[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path \"%s\" is not absolute",
                      path ? path : "");
  for (const char *p = path; (p = strstr(p, "..")) != NULL; p += 2) {
    int starts = p == path || p[-1] == '/';
    int ends = p[2] == '\0' || p[2] == '/';
    if (starts && ends)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "path \"%s\" contains \"..\"", path);
  }
  const char *r = root && strcmp(root, "/") != 0 ? root : "";
  if ((size_t)snprintf(out, out_len, "%s%s", r, path) >= out_len)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long");
  return 0;
}

int fs_secure_join(const char *root, const char *path, int follow_last, char *out,
                   size_t out_len, vs_err *err) {
  if (!path || path[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path \"%s\" is not absolute", path ? path : "");
  const char *r = root && strcmp(root, "/") != 0 ? root : "";
  size_t rl = strlen(r);
  /* todo: the components still to resolve; cur: resolved part, relative
   * to root, always starting with '/' or empty. */
  char todo[4096], cur[4096] = "", full[8192], link[4096];
  if (snprintf(todo, sizeof todo, "%s", path) >= (int)sizeof todo)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long");
  int links = 0;
  char *p = todo;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    char *end = strchr(p, '/');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char comp[256];
    if (n >= sizeof comp) return vs_err_set(err, VS_INVALID_ARGUMENT, "path component too long");
    memcpy(comp, p, n);
    comp[n] = '\0';
    p += n;
    int last = strspn(p, "/") == strlen(p);
    if (strcmp(comp, ".") == 0) continue;
    if (strcmp(comp, "..") == 0) {
      char *slash = strrchr(cur, '/');
      if (slash) *slash = '\0';
      continue;
    }
    size_t cl = strlen(cur);
    if (cl + 1 + n + 1 > sizeof cur) return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long");
    cur[cl] = '/';
    memcpy(cur + cl + 1, comp, n + 1);
    snprintf(full, sizeof full, "%s%s", r, cur);
    struct stat st;
    if (lstat(full, &st) < 0 || !S_ISLNK(st.st_mode) || (last && !follow_last)) continue;
    if (++links > 40) return vs_err_set(err, VS_INVALID_ARGUMENT, "too many symlinks in %s", path);
    ssize_t ln = readlink(full, link, sizeof link - 1);
    if (ln < 0) return vs_err_errno(err, VS_INTERNAL, errno, "readlink %s", full);
    link[ln] = '\0';
    /* The link replaces the component: continue with target + rest. */
    char rest[4096];
    snprintf(rest, sizeof rest, "%s", p);
    cur[cl] = '\0';
    if (link[0] == '/') cur[0] = '\0';
    if ((size_t)snprintf(todo, sizeof todo, "%s%s", link, rest) >= sizeof todo)
      return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long");
    p = todo;
  }
  if ((size_t)snprintf(out, out_len, "%s%s", r, cur[0] ? cur : (rl ? "" : "/")) >= out_len)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "path too long");
  if (!out[0]) snprintf(out, out_len, "/");
  return 0;
}
