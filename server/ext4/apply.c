#include "server/ext4/apply.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLK 4096u

/* ext4 stores seconds as 32 bits plus two epoch bits: 1901..2446. */
#define TIME_MIN (-(1LL << 31))
#define TIME_MAX ((1LL << 34) - (1LL << 31) - 1)

/* Context for error messages: "layer 2 (blob): entry "a/b": ...". */
typedef struct ctx {
  rfs_applier *ap;
  uint32_t layer;
  const char *name;
  const char *path; /* the entry's path as in the archive */
} ctx;

/* Formats an error naming the layer and, when known, the entry. */
#define FAIL(c, err, code, ...)                                              \
  fail_at((c), (err), (code), __VA_ARGS__)

static int fail_at(const ctx *c, vs_err *err, vs_code code, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static int fail_at(const ctx *c, vs_err *err, vs_code code, const char *fmt,
                   ...) {
  char msg[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c->path)
    return vs_err_set(err, code, "layer %u (%s): entry \"%.120s\": %s",
                      c->layer, c->name, c->path, msg);
  return vs_err_set(err, code, "layer %u (%s): %s", c->layer, c->name, msg);
}

/* ---- paths ---------------------------------------------------------- */

typedef struct comp {
  const char *p;
  size_t len;
} comp;

typedef struct comps {
  comp *v;
  size_t n, cap;
} comps;

/* Splits a path lexically: "." and empty parts vanish, ".." drops the
 * previous part and stops at the root, a leading "/" is ignored. This is
 * what Go's filepath.Clean-based extractors (umoci, containerd) do; it
 * keeps every entry inside the image root by construction. */
static int split_path(const char *path, comps *out) {
  out->n = 0;
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *s = p;
    while (*p && *p != '/') p++;
    size_t len = (size_t)(p - s);
    if (len == 1 && s[0] == '.') continue;
    if (len == 2 && s[0] == '.' && s[1] == '.') {
      if (out->n) out->n--;
      continue;
    }
    if (out->n == out->cap) {
      size_t nc = out->cap ? out->cap * 2 : 16;
      comp *v = realloc(out->v, nc * sizeof *v);
      if (!v) return -1;
      out->v = v;
      out->cap = nc;
    }
    out->v[out->n].p = s;
    out->v[out->n].len = len;
    out->n++;
  }
  return 0;
}

/* WALK_NOTDIR: without create, a component is neither a directory nor a
 * symlink (no error set: for a whiteout, nothing is there to hide). */
enum walk_result { WALK_OK = 0, WALK_MISSING = 1, WALK_NOTDIR = 2, WALK_ERROR = -1 };

static rfs_node *new_dir(rfs_applier *ap, rfs_node *parent, const char *name,
                         size_t len, uint32_t layer) {
  /* Implicit parents: what extractors create for a path whose directories
   * the archive does not list. */
  rfs_inode *in = rfs_inode_new(0040755);
  if (!in) return NULL;
  rfs_node *n = rfs_tree_add(ap->tree, parent, name, len, in, layer);
  if (!n) {
    free(in);
    return NULL;
  }
  return n;
}

/* Walks the components of `path` (a symlink target; a leading "/" means
 * the image root) from `cur`, each component naming a directory. Symlinks
 * are followed inside the image root: ".." stops at the root, absolute
 * targets restart at it. With `create`, missing directories are made and
 * every directory passed is stamped with `layer` (it is present in that
 * layer, which matters for opaque whiteouts). */
static int walk(const ctx *c, rfs_node *cur, const char *path, size_t plen,
                int create, int *follows, rfs_node **out, vs_err *err) {
  rfs_applier *ap = c->ap;
  rfs_node *root = ap->tree->root;
  size_t i = 0;
  if (plen > 0 && path[0] == '/') cur = root;
  while (i < plen) {
    while (i < plen && path[i] == '/') i++;
    if (i >= plen) break;
    size_t s = i;
    while (i < plen && path[i] != '/') i++;
    const char *name = path + s;
    size_t len = i - s;
    if (len == 1 && name[0] == '.') continue;
    if (len == 2 && name[0] == '.' && name[1] == '.') {
      cur = cur->parent; /* the root is its own parent */
      continue;
    }
    if (len > 255)
      return FAIL(c, err, VS_INVALID_ARGUMENT,
                  "path component longer than 255 bytes");
    rfs_node *n = rfs_tree_lookup(ap->tree, cur, name, len);
    if (!n) {
      if (!create) return WALK_MISSING;
      n = new_dir(ap, cur, name, len, c->layer);
      if (!n) return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
      cur = n;
      continue;
    }
    uint32_t type = n->inode->mode & S_IFMT;
    if (type == S_IFDIR) {
      if (create) n->layer = c->layer;
      cur = n;
    } else if (type == S_IFLNK) {
      if (++*follows > RFS_MAX_FOLLOW)
        return FAIL(c, err, VS_INVALID_ARGUMENT,
                    "too many levels of symbolic links");
      const char *t = n->inode->symlink;
      rfs_node *next;
      int r = walk(c, n->parent, t, strlen(t), create, follows, &next, err);
      if (r != WALK_OK) return r;
      cur = next;
    } else {
      if (!create) return WALK_NOTDIR;
      return FAIL(c, err, VS_INVALID_ARGUMENT,
                  "a parent path component is not a directory");
    }
  }
  *out = cur;
  return WALK_OK;
}

/* Resolves the directory holding the last of `cs` (all but the last
 * component walked from the root). */
static int walk_parent(const ctx *c, const comps *cs, int create,
                       rfs_node **out, vs_err *err) {
  rfs_node *cur = c->ap->tree->root;
  int follows = 0;
  for (size_t i = 0; i + 1 < cs->n; i++) {
    rfs_node *next;
    int r = walk(c, cur, cs->v[i].p, cs->v[i].len, create, &follows, &next,
                 err);
    if (r != WALK_OK) return r;
    cur = next;
  }
  *out = cur;
  return WALK_OK;
}

/* ---- tree edits ----------------------------------------------------- */

/* Opaque directory: hides everything below `dir` that came from lower
 * layers. Entries of this layer stay, but lower content inside them goes
 * too (an opaque directory does not merge with anything below it). */
static int prune_lower(rfs_applier *ap, rfs_node *dir, uint32_t layer) {
  size_t n = 0, cap = 64;
  rfs_node **stack = malloc(cap * sizeof *stack);
  if (!stack) return -1;
  stack[n++] = dir;
  while (n > 0) {
    rfs_node *d = stack[--n];
    rfs_node *ch = d->first_child;
    while (ch) {
      rfs_node *next = ch->next;
      if (ch->layer < layer) {
        rfs_tree_remove(ap->tree, ch);
      } else if (rfs_is_dir(ch)) {
        if (n == cap) {
          rfs_node **s = realloc(stack, cap * 2 * sizeof *s);
          if (!s) {
            free(stack);
            return -1;
          }
          stack = s;
          cap *= 2;
        }
        stack[n++] = ch;
      }
      ch = next;
    }
  }
  free(stack);
  return 0;
}

static int64_t clamp_time(int64_t t) {
  return t < TIME_MIN ? TIME_MIN : t > TIME_MAX ? TIME_MAX : t;
}

/* Copies an entry's metadata (not its type) into an inode. */
static int set_meta(const ctx *c, struct archive_entry *e, rfs_inode *in,
                    vs_err *err) {
  int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
  /* (uid_t)-1 is "no change" for chown and never a real owner. */
  if (uid < 0 || uid >= 0xffffffffLL || gid < 0 || gid >= 0xffffffffLL)
    return FAIL(c, err, VS_INVALID_ARGUMENT,
                "owner %lld:%lld out of range", (long long)uid,
                (long long)gid);
  in->uid = (uint32_t)uid;
  in->gid = (uint32_t)gid;
  in->mode = (in->mode & S_IFMT) | ((uint32_t)archive_entry_perm(e) & 07777);
  long ns = archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0;
  in->mtime = archive_entry_mtime_is_set(e)
                  ? clamp_time((int64_t)archive_entry_mtime(e))
                  : 0;
  in->mtime_ns = ns >= 0 && ns < 1000000000 ? (uint32_t)ns : 0;
  if (archive_entry_atime_is_set(e)) {
    ns = archive_entry_atime_nsec(e);
    in->atime = clamp_time((int64_t)archive_entry_atime(e));
    in->atime_ns = ns >= 0 && ns < 1000000000 ? (uint32_t)ns : 0;
  } else {
    in->atime = in->mtime;
    in->atime_ns = in->mtime_ns;
  }
  /* A layer entry carries the complete metadata of the path: xattrs that
   * an earlier layer set and this one omits are gone. */
  rfs_inode_clear_xattrs(in);
  archive_entry_xattr_reset(e);
  const char *xn;
  const void *xv;
  size_t xl;
  while (archive_entry_xattr_next(e, &xn, &xv, &xl) == ARCHIVE_OK) {
    size_t nl = xn ? strlen(xn) : 0;
    if (nl == 0 || nl > 255)
      return FAIL(c, err, VS_INVALID_ARGUMENT, "bad xattr name length %zu",
                  nl);
    if (xl > 65536)
      return FAIL(c, err, VS_INVALID_ARGUMENT,
                  "xattr %s: value of %zu bytes exceeds 64 KiB", xn, xl);
    if (rfs_inode_add_xattr(in, xn, xv, xl) < 0)
      return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  return 0;
}

static int is_zero(const char *p, size_t n) {
  return p[0] == 0 && memcmp(p, p + 1, n - 1) == 0;
}

static int add_seg(const ctx *c, rfs_inode *in, uint64_t file_off,
                   const char *p, size_t n, vs_err *err) {
  rfs_applier *ap = c->ap;
  uint64_t soff;
  if (ap->spool->size + n > ap->max_data)
    return FAIL(c, err, VS_RESOURCE_EXHAUSTED,
                "file data exceeds the limit of %llu bytes of host disk",
                (unsigned long long)ap->max_data);
  if (rfs_spool_append(ap->spool, p, n, &soff, err) < 0)
    return vs_err_wrap(err, "layer %u (%s)", c->layer, c->name);
  if (in->nsegs > 0) {
    rfs_seg *last = &in->segs[in->nsegs - 1];
    if (last->file_off + last->len == file_off &&
        last->spool_off + last->len == soff) {
      last->len += n;
      return 0;
    }
  }
  if (in->nsegs == in->segs_cap) {
    size_t nc = in->segs_cap ? in->segs_cap * 2 : 1;
    rfs_seg *s = realloc(in->segs, nc * sizeof *s);
    if (!s) return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
    in->segs = s;
    in->segs_cap = nc;
  }
  in->segs[in->nsegs++] = (rfs_seg){file_off, n, soff};
  return 0;
}

/* The file block being assembled from pieces (chunks of libarchive need
 * not end at block boundaries): written once complete, and only if not
 * all zeros, so zeros become holes however the data was chunked. */
typedef struct part_block {
  uint64_t no; /* block number; UINT64_MAX = none */
  size_t hi;   /* bytes [0, hi) of it arrived (or are zeros before them) */
  int dirty;   /* a non-zero byte arrived */
  char b[BLK];
} part_block;

static int part_flush(const ctx *c, rfs_inode *in, part_block *pb, vs_err *err) {
  int rc = 0;
  if (pb->no != UINT64_MAX && pb->dirty) rc = add_seg(c, in, pb->no * BLK, pb->b, pb->hi, err);
  pb->no = UINT64_MAX;
  return rc;
}

static void part_add(part_block *pb, uint64_t no, size_t at, const char *p, size_t n) {
  if (pb->no != no) {
    pb->no = no;
    pb->hi = 0;
    pb->dirty = 0;
    memset(pb->b, 0, sizeof pb->b);
  }
  memcpy(pb->b + at, p, n);
  if (at + n > pb->hi) pb->hi = at + n;
  if (!is_zero(p, n)) pb->dirty = 1;
}

/* Streams a regular file's data into the spool. Blocks of zeros become
 * holes, as do the holes of sparse archive entries. */
static int read_data(const ctx *c, struct archive *a, rfs_inode *in,
                     vs_err *err) {
  rfs_applier *ap = c->ap;
  uint64_t end = 0; /* data must arrive in order, without overlap */
  part_block *pb = malloc(sizeof *pb);
  if (!pb) return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
  pb->no = UINT64_MAX;
  int rc = 0;
  while (rc == 0) {
    const void *buf;
    size_t n;
    la_int64_t off;
    int r = archive_read_data_block(a, &buf, &n, &off);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      rc = FAIL(c, err, VS_INVALID_ARGUMENT, "reading data: %s",
                archive_error_string(a) ? archive_error_string(a) : "unknown error");
      break;
    }
    if (n == 0) continue;
    if (off < 0 || (uint64_t)off < end || (uint64_t)off + n > in->size) {
      rc = FAIL(c, err, VS_INVALID_ARGUMENT,
                "data block at %lld+%zu outside the file or out of order", (long long)off, n);
      break;
    }
    ap->unpacked += n;
    if (ap->unpacked > ap->max_unpacked) {
      rc = FAIL(c, err, VS_RESOURCE_EXHAUSTED, "unpacked data exceeds the limit of %llu bytes",
                (unsigned long long)ap->max_unpacked);
      break;
    }
    end = (uint64_t)off + n;
    const char *p = buf;
    uint64_t fo = (uint64_t)off;
    while (n > 0 && rc == 0) {
      uint64_t no = fo / BLK;
      size_t at = (size_t)(fo % BLK), piece = BLK - at;
      if (piece > n) piece = n;
      if (no != pb->no) rc = part_flush(c, in, pb, err); /* it is complete */
      if (rc < 0) break;
      if (at == 0 && piece == BLK) {
        /* Whole blocks: non-zero runs go to the spool in one write. */
        size_t run = 0;
        while (n - run >= BLK && !is_zero(p + run, BLK)) run += BLK;
        if (run) rc = add_seg(c, in, fo, p, run, err);
        piece = run ? run : BLK; /* (a zero block: a hole) */
      } else {
        part_add(pb, no, at, p, piece);
        if (at + piece == BLK) rc = part_flush(c, in, pb, err);
      }
      p += piece;
      fo += piece;
      n -= piece;
    }
  }
  if (rc == 0) rc = part_flush(c, in, pb, err);
  free(pb);
  return rc;
}

/* ---- entries -------------------------------------------------------- */

static const char *entry_path(struct archive_entry *e) {
  const char *p = archive_entry_pathname(e);
  return p ? p : archive_entry_pathname_utf8(e);
}

static int apply_whiteout(const ctx *c, const comps *cs, const char *base,
                          size_t blen, vs_err *err) {
  rfs_applier *ap = c->ap;
  rfs_node *dir;
  if (blen == 12 && memcmp(base, ".wh..wh..opq", 12) == 0) {
    /* The marker says this directory exists in this layer, opaque. */
    int r = walk_parent(c, cs, 1, &dir, err);
    if (r != WALK_OK) return r == WALK_MISSING ? 0 : -1;
    if (prune_lower(ap, dir, c->layer) < 0)
      return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
  }
  if (blen >= 8 && memcmp(base, ".wh..wh.", 8) == 0)
    return 0; /* other AUFS metadata (.wh..wh.plnk etc.): not content */
  const char *name = base + 4;
  size_t len = blen - 4;
  if (len == 0 || (len == 1 && name[0] == '.') ||
      (len == 2 && name[0] == '.' && name[1] == '.'))
    return FAIL(c, err, VS_INVALID_ARGUMENT, "invalid whiteout name");
  int r = walk_parent(c, cs, 0, &dir, err);
  /* Under a missing path or a file it hides nothing (as umoci has it). */
  if (r == WALK_MISSING || r == WALK_NOTDIR) return 0;
  if (r != WALK_OK) return -1;
  rfs_node *n = rfs_tree_lookup(ap->tree, dir, name, len);
  /* Whiteouts hide lower layers only; an entry this layer made stays. */
  if (n && n->layer < c->layer) rfs_tree_remove(ap->tree, n);
  return 0;
}

static int apply_hardlink(const ctx *c, rfs_node *dir, const char *name,
                          size_t len, rfs_node *existing, const char *target,
                          comps *tcs, vs_err *err) {
  rfs_applier *ap = c->ap;
  if (strlen(target) > RFS_MAX_PATH || split_path(target, tcs) < 0)
    return FAIL(c, err, VS_INVALID_ARGUMENT, "hardlink target too long");
  if (tcs->n == 0)
    return FAIL(c, err, VS_INVALID_ARGUMENT,
                "hardlink to the root directory");
  rfs_node *tdir;
  int r = walk_parent(c, tcs, 0, &tdir, err);
  if (r == WALK_ERROR) return -1;
  rfs_node *t = r == WALK_OK ? rfs_tree_lookup(ap->tree, tdir,
                                               tcs->v[tcs->n - 1].p,
                                               tcs->v[tcs->n - 1].len)
                             : NULL;
  if (!t)
    return FAIL(c, err, VS_INVALID_ARGUMENT,
                "hardlink target \"%.120s\" does not exist", target);
  if (rfs_is_dir(t))
    return FAIL(c, err, VS_INVALID_ARGUMENT,
                "hardlink target \"%.120s\" is a directory", target);
  if (t == existing) {
    existing->layer = c->layer;
    return 0;
  }
  /* Reference first: removing `existing` may drop another link to it. */
  rfs_inode *in = t->inode;
  in->nlink++;
  if (existing) rfs_tree_remove(ap->tree, existing);
  if (!rfs_tree_add(ap->tree, dir, name, len, in, c->layer)) {
    rfs_inode_unref(ap->tree, in);
    return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  return 0;
}

static int apply_entry(const ctx *c, struct archive *a, struct archive_entry *e,
                       comps *cs, comps *tcs, vs_err *err) {
  rfs_applier *ap = c->ap;
  const char *path = c->path;
  if (strlen(path) > RFS_MAX_PATH)
    return FAIL(c, err, VS_INVALID_ARGUMENT, "path longer than %d bytes",
                RFS_MAX_PATH);
  if (split_path(path, cs) < 0)
    return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < cs->n; i++)
    if (cs->v[i].len > 255)
      return FAIL(c, err, VS_INVALID_ARGUMENT,
                  "path component longer than 255 bytes");

  const char *hardlink = archive_entry_hardlink(e);
  if (!hardlink) hardlink = archive_entry_hardlink_utf8(e);
  uint32_t type = (uint32_t)archive_entry_filetype(e);

  if (cs->n == 0) {
    /* "./" or "/": the root directory's own metadata. */
    if (hardlink || type != AE_IFDIR)
      return FAIL(c, err, VS_INVALID_ARGUMENT,
                  "entry for the root directory is not a directory");
    return set_meta(c, e, ap->tree->root->inode, err);
  }
  const char *base = cs->v[cs->n - 1].p;
  size_t blen = cs->v[cs->n - 1].len;
  if (blen >= 4 && memcmp(base, ".wh.", 4) == 0)
    return apply_whiteout(c, cs, base, blen, err);

  rfs_node *dir;
  if (walk_parent(c, cs, 1, &dir, err) != WALK_OK) return -1;
  rfs_node *existing = rfs_tree_lookup(ap->tree, dir, base, blen);

  if (hardlink)
    return apply_hardlink(c, dir, base, blen, existing, hardlink, tcs, err);

  if (type == AE_IFDIR && existing && rfs_is_dir(existing)) {
    /* Directories merge: new metadata, children kept. */
    existing->layer = c->layer;
    return set_meta(c, e, existing->inode, err);
  }

  rfs_inode *in;
  switch (type) {
    case AE_IFREG:
    case AE_IFDIR:
    case AE_IFLNK:
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
    case AE_IFSOCK:
      in = rfs_inode_new(type);
      break;
    default:
      return FAIL(c, err, VS_INVALID_ARGUMENT, "unsupported entry type 0%o",
                  type);
  }
  if (!in) return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
  int rc = set_meta(c, e, in, err);
  if (rc == 0 && type == AE_IFLNK) {
    /* Linux symlinks are always 0777, whatever the header says. */
    in->mode = AE_IFLNK | 0777;
    const char *t = archive_entry_symlink(e);
    if (!t) t = archive_entry_symlink_utf8(e);
    size_t tl = t ? strlen(t) : 0;
    if (tl == 0)
      rc = FAIL(c, err, VS_INVALID_ARGUMENT, "empty symlink target");
    else if (tl > 4095)
      rc = FAIL(c, err, VS_INVALID_ARGUMENT,
                "symlink target longer than 4095 bytes");
    else if (!(in->symlink = strdup(t)))
      rc = FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
    in->size = tl;
  } else if (rc == 0 && (type == AE_IFCHR || type == AE_IFBLK)) {
    uint64_t ma = archive_entry_rdevmajor(e), mi = archive_entry_rdevminor(e);
    /* ext4's device encoding: 12-bit major, 20-bit minor. */
    if (ma > 0xfff || mi > 0xfffff)
      rc = FAIL(c, err, VS_INVALID_ARGUMENT, "device %llu:%llu out of range",
                (unsigned long long)ma, (unsigned long long)mi);
    in->dev_major = (uint32_t)ma;
    in->dev_minor = (uint32_t)mi;
  } else if (rc == 0 && type == AE_IFREG) {
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (size < 0 || (uint64_t)size > RFS_MAX_FILE_SIZE)
      rc = FAIL(c, err, VS_INVALID_ARGUMENT, "file size %lld out of range",
                (long long)size);
    else {
      in->size = (uint64_t)size;
      rc = read_data(c, a, in, err);
    }
  }
  if (rc < 0) {
    rfs_inode_unref(ap->tree, in);
    return -1;
  }
  if (existing) rfs_tree_remove(ap->tree, existing);
  if (!rfs_tree_add(ap->tree, dir, base, blen, in, c->layer)) {
    rfs_inode_unref(ap->tree, in);
    return FAIL(c, err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  return 0;
}

int rfs_apply_archive(rfs_applier *ap, struct archive *a, uint32_t layer,
                      const char *name, vs_err *err) {
  ctx c = {ap, layer, name, NULL};
  comps cs = {0}, tcs = {0};
  int rc = 0;
  for (;;) {
    struct archive_entry *e;
    c.path = NULL;
    if (ap->cancelled && ap->cancelled(ap->cancelled_arg)) {
      rc = vs_err_set(err, VS_CANCELLED, "rootfs build cancelled");
      break;
    }
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      const char *m = archive_error_string(a);
      rc = FAIL(&c, err, VS_INVALID_ARGUMENT, "reading archive: %s",
                m ? m : "unknown error");
      break;
    }
    if (++ap->entries > ap->max_entries) {
      rc = FAIL(&c, err, VS_RESOURCE_EXHAUSTED,
                "more than %llu archive entries",
                (unsigned long long)ap->max_entries);
      break;
    }
    /* Headers count against the unpacked limit too: an archive of
     * endless empty entries or huge extended headers is a bomb as well. */
    if ((uint64_t)archive_filter_bytes(a, 0) >
        ap->max_unpacked + ap->max_entries * 1024) {
      rc = FAIL(&c, err, VS_RESOURCE_EXHAUSTED,
                "archive exceeds the unpacked size limit");
      break;
    }
    c.path = entry_path(e);
    if (!c.path) {
      rc = FAIL(&c, err, VS_INVALID_ARGUMENT, "entry without a path");
      break;
    }
    if (archive_entry_is_encrypted(e)) {
      rc = FAIL(&c, err, VS_UNIMPLEMENTED, "encrypted entry");
      break;
    }
    if (apply_entry(&c, a, e, &cs, &tcs, err) < 0) {
      rc = -1;
      break;
    }
  }
  free(cs.v);
  free(tcs.v);
  return rc;
}

/* A reader of comp-compressed input: with raw, of the whole decompressed
 * stream as one entry, else of its tar entries. */
static int reader(struct archive **out, rfs_compression comp, int raw, vs_err *err) {
  struct archive *a = archive_read_new();
  if (!a) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  if (raw) {
    archive_read_support_format_raw(a);
  } else {
    archive_read_support_format_tar(a);
    archive_read_support_format_empty(a);
  }
  /* Never archive_read_support_filter_all: it would run external programs
   * (lrzip, lzop, ...) on untrusted input. */
  if (comp == RFS_COMPRESSION_GZIP || comp == RFS_COMPRESSION_AUTO)
    archive_read_support_filter_gzip(a);
  if (comp == RFS_COMPRESSION_ZSTD || comp == RFS_COMPRESSION_AUTO)
    archive_read_support_filter_zstd(a);
  archive_read_support_filter_none(a);
  *out = a;
  return 0;
}

int rfs_archive_reader(struct archive **out, rfs_compression comp, vs_err *err) {
  return reader(out, comp, 0, err);
}

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* A layer with a diff_id is read twice over in one pass: a raw reader
 * decompresses it, its bytes are hashed on their way to the tar reader. */
typedef struct tap {
  struct archive *raw;
  EVP_MD_CTX *md;
} tap;

static la_ssize_t tap_read(struct archive *a, void *arg, const void **buf) {
  tap *t = arg;
  size_t n;
  la_int64_t off;
  int r = archive_read_data_block(t->raw, buf, &n, &off);
  if (r == ARCHIVE_EOF) return 0;
  if (r < ARCHIVE_WARN) {
    const char *m = archive_error_string(t->raw);
    archive_set_error(a, EIO, "%s", m ? m : "decompression failed");
    return -1;
  }
  EVP_DigestUpdate(t->md, *buf, n);
  return (la_ssize_t)n;
}

/* Opens the tar reader *a on fd; with a diff_id through a tap (t). */
static int open_layer(struct archive **a, tap *t, int fd, rfs_compression comp, int hashed,
                      vs_err *err) {
  if (!hashed) {
    if (rfs_archive_reader(a, comp, err) < 0) return -1;
    return archive_read_open_fd(*a, fd, 1 << 20) == ARCHIVE_OK ? 0 : 1;
  }
  struct archive_entry *e;
  if (reader(&t->raw, comp, 1, err) < 0) return -1;
  if (!(t->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(t->md, EVP_sha256(), NULL) != 1 ||
      !(*a = archive_read_new()))
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  archive_read_support_format_tar(*a);
  archive_read_support_format_empty(*a);
  archive_read_support_filter_none(*a);
  if (archive_read_open_fd(t->raw, fd, 1 << 20) != ARCHIVE_OK ||
      archive_read_next_header(t->raw, &e) != ARCHIVE_OK)
    return 2;
  return archive_read_open(*a, t, NULL, tap_read, NULL) == ARCHIVE_OK ? 0 : 1;
}

/* After the tar reader is done: the rest of the stream (tar padding)
 * hashed too, and the digest compared. */
static int check_diff_id(tap *t, const rfs_layer *l, uint32_t layer, vs_err *err) {
  const void *buf;
  size_t n;
  la_int64_t off;
  int r;
  while ((r = archive_read_data_block(t->raw, &buf, &n, &off)) == ARCHIVE_OK)
    EVP_DigestUpdate(t->md, buf, n);
  if (r != ARCHIVE_EOF)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "layer %u (%s): %s", layer, base_name(l->path),
                      archive_error_string(t->raw) ? archive_error_string(t->raw) : "read error");
  unsigned char d[32];
  unsigned int dl = 0;
  EVP_DigestFinal_ex(t->md, d, &dl);
  char got[72] = "sha256:";
  for (int i = 0; i < 32; i++) snprintf(got + 7 + 2 * i, 3, "%02x", d[i]);
  if (strcmp(got, l->diff_id) != 0)
    return vs_err_set(err, VS_DATA_LOSS,
                      "layer %u (%s): its uncompressed content is %s, the image config's "
                      "diff_id says %.80s", layer, base_name(l->path), got, l->diff_id);
  return 0;
}

int rfs_apply_layer(rfs_applier *ap, const rfs_layer *l, uint32_t layer,
                    vs_err *err) {
  rfs_compression comp = l->compression;
  if (l->media_type) {
    rfs_compression mc;
    if (rfs_media_type_compression(l->media_type, &mc, err) < 0)
      return vs_err_wrap(err, "layer %u (%s)", layer, base_name(l->path));
    if (mc != RFS_COMPRESSION_AUTO) comp = mc;
  }
  int fd = open(l->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vs_err_errno(err, errno == ENOENT ? VS_NOT_FOUND : VS_INTERNAL,
                        errno, "layer %u: opening %s", layer, l->path);
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
    close(fd); /* an empty blob is an empty layer */
    return 0;
  }
  struct archive *a = NULL;
  tap t = {NULL, NULL};
  int rc = open_layer(&a, &t, fd, comp, l->diff_id != NULL, err);
  if (rc > 0) {
    struct archive *bad = rc == 2 ? t.raw : a;
    const char *m = archive_error_string(bad);
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "layer %u (%s): %s", layer,
                    base_name(l->path), m ? m : "not a tar archive");
  } else if (rc == 0) {
    rc = rfs_apply_archive(ap, a, layer, base_name(l->path), err);
    if (rc == 0 && l->diff_id) rc = check_diff_id(&t, l, layer, err);
  }
  if (a) archive_read_free(a);
  if (t.raw) archive_read_free(t.raw);
  EVP_MD_CTX_free(t.md);
  close(fd);
  return rc;
}

int rfs_media_type_compression(const char *mt, rfs_compression *out,
                               vs_err *err) {
  *out = RFS_COMPRESSION_AUTO;
  if (!mt || !*mt) return 0;
  size_t n = strlen(mt);
#define ENDS(s) (n >= sizeof(s) - 1 && strcmp(mt + n - (sizeof(s) - 1), s) == 0)
  if (strstr(mt, "encrypted"))
    return vs_err_set(err, VS_UNIMPLEMENTED,
                      "encrypted layers are not supported (%s)", mt);
  if (ENDS("+gzip") || ENDS(".tar.gzip") || ENDS("tar.gz"))
    *out = RFS_COMPRESSION_GZIP;
  else if (ENDS("+zstd") || ENDS(".tar.zstd"))
    *out = RFS_COMPRESSION_ZSTD;
  else if (ENDS(".tar") || ENDS("layer.v1.tar") || ENDS("rootfs.diff.tar"))
    *out = RFS_COMPRESSION_NONE;
  else if (strchr(mt, '+'))
    return vs_err_set(err, VS_UNIMPLEMENTED,
                      "unsupported layer compression (%s)", mt);
#undef ENDS
  return 0;
}
