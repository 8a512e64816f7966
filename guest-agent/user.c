/* Container user resolution from passwd/group files (no NSS: the files
 * belong to the container image, not to the guest). */
#include "guest-agent/user.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_number(const char *s) {
  if (!*s) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

/* Splits a colon-separated line in place into at most max fields. */
static size_t split(char *line, char **f, size_t max) {
  size_t n = 0;
  line[strcspn(line, "\n")] = '\0';
  f[n++] = line;
  for (char *p = line; *p && n < max; p++) {
    if (*p == ':') {
      *p = '\0';
      f[n++] = p + 1;
    }
  }
  return n;
}

/* passwd: name:x:uid:gid:gecos:home:shell. Matches by name or by uid. */
static int find_passwd(const char *path, const char *name, long uid, usr_ident *out) {
  FILE *fp = fopen(path, "re");
  if (!fp) return 0;
  char line[1024];
  int found = 0;
  while (!found && fgets(line, sizeof line, fp)) {
    char *f[7];
    if (line[0] == '#' || split(line, f, 7) < 7) continue;
    if (!is_number(f[2]) || !is_number(f[3])) continue;
    if ((name && strcmp(f[0], name) == 0) || (!name && strtol(f[2], NULL, 10) == uid)) {
      out->uid = (uid_t)strtoul(f[2], NULL, 10);
      out->gid = (gid_t)strtoul(f[3], NULL, 10);
      snprintf(out->home, sizeof out->home, "%s", f[5][0] ? f[5] : "/");
      snprintf(out->name, sizeof out->name, "%s", f[0]);
      found = 1;
    }
  }
  fclose(fp);
  return found;
}

/* group: name:x:gid:member,member */
static int find_group(const char *path, const char *name, gid_t *gid) {
  FILE *fp = fopen(path, "re");
  if (!fp) return 0;
  char line[4096];
  int found = 0;
  while (!found && fgets(line, sizeof line, fp)) {
    char *f[4];
    if (line[0] == '#' || split(line, f, 4) < 3 || !is_number(f[2])) continue;
    if (strcmp(f[0], name) == 0) {
      *gid = (gid_t)strtoul(f[2], NULL, 10);
      found = 1;
    }
  }
  fclose(fp);
  return found;
}

static void add_group(usr_ident *u, gid_t g) {
  for (size_t i = 0; i < u->n_groups; i++)
    if (u->groups[i] == g) return;
  if (u->n_groups < USR_MAX_GROUPS) u->groups[u->n_groups++] = g;
}

static void member_groups(const char *path, const char *user, usr_ident *u) {
  FILE *fp = fopen(path, "re");
  if (!fp) return;
  char line[4096];
  while (fgets(line, sizeof line, fp)) {
    char *f[4];
    if (line[0] == '#' || split(line, f, 4) < 4 || !is_number(f[2])) continue;
    for (char *save = NULL, *m = strtok_r(f[3], ",", &save); m; m = strtok_r(NULL, ",", &save))
      if (strcmp(m, user) == 0) add_group(u, (gid_t)strtoul(f[2], NULL, 10));
  }
  fclose(fp);
}

int usr_resolve(const char *passwd, const char *group, const char *spec,
                uid_t uid, gid_t gid, const gid_t *extra_gids, size_t n_extra,
                usr_ident *out, vs_err *err) {
  memset(out, 0, sizeof *out);
  snprintf(out->home, sizeof out->home, "/");
  if (!spec || !*spec) {
    out->uid = uid;
    out->gid = gid;
    usr_ident pw;
    memset(&pw, 0, sizeof pw);
    if (find_passwd(passwd, NULL, (long)uid, &pw)) {
      snprintf(out->home, sizeof out->home, "%s", pw.home);
      snprintf(out->name, sizeof out->name, "%s", pw.name);
    }
  } else {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    char *grp = strchr(buf, ':');
    if (grp) *grp++ = '\0';
    const char *usr = buf;
    if (!*usr) return vs_err_set(err, VS_INVALID_ARGUMENT, "bad user \"%s\"", spec);
    usr_ident pw;
    memset(&pw, 0, sizeof pw);
    if (is_number(usr)) {
      out->uid = (uid_t)strtoul(usr, NULL, 10);
      out->gid = 0;
      if (find_passwd(passwd, NULL, (long)out->uid, &pw)) {
        out->gid = pw.gid;
        snprintf(out->home, sizeof out->home, "%s", pw.home);
        snprintf(out->name, sizeof out->name, "%s", pw.name);
      }
    } else {
      if (!find_passwd(passwd, usr, -1, &pw))
        return vs_err_set(err, VS_NOT_FOUND, "unable to find user %s: no matching entries in passwd file", usr);
      *out = pw;
    }
    if (grp) {
      if (!*grp) return vs_err_set(err, VS_INVALID_ARGUMENT, "bad user \"%s\"", spec);
      if (is_number(grp)) {
        out->gid = (gid_t)strtoul(grp, NULL, 10);
      } else if (!find_group(group, grp, &out->gid)) {
        return vs_err_set(err, VS_NOT_FOUND, "unable to find group %s: no matching entries in group file", grp);
      }
    }
  }
  if (out->name[0]) member_groups(group, out->name, out);
  for (size_t i = 0; i < n_extra; i++) add_group(out, extra_gids[i]);
  return 0;
}
