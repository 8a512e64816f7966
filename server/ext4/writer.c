#include "server/ext4/writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BS 4096u
#define EXT4_LINK_MAX 65000u
/* Blocks a root-owned /lost+found gets up front, like mke2fs (16 KiB). */
#define LPF_BLOCKS 4

/* ---- planning ------------------------------------------------------- */

typedef struct plan {
  rfs_inode **in;  /* by inode number; 2 = root, content from 11 */
  rfs_node **node; /* a node of each inode (the only one for dirs) */
  uint32_t next;   /* one past the last inode number used */
  uint64_t content_blocks; /* upper bound of blocks the content takes */
  uint64_t data_blocks;    /* file data blocks (exact) */
} plan;

static uint8_t ftype(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return EXT2_FT_REG_FILE;
    case S_IFDIR: return EXT2_FT_DIR;
    case S_IFCHR: return EXT2_FT_CHRDEV;
    case S_IFBLK: return EXT2_FT_BLKDEV;
    case S_IFIFO: return EXT2_FT_FIFO;
    case S_IFSOCK: return EXT2_FT_SOCK;
    case S_IFLNK: return EXT2_FT_SYMLINK;
  }
  return EXT2_FT_UNKNOWN;
}

static int is_lost_found(const rfs_tree *t, const rfs_node *n) {
  return n->parent == t->root && n->namelen == 10 &&
         memcmp(n->name, "lost+found", 10) == 0 && rfs_is_dir(n);
}

/* Calls fn(range start block, block count) for the blocks a file's data
 * occupies: segments rounded out to whole blocks, adjacent ones merged. */
typedef int (*range_fn)(void *arg, uint64_t lblk, uint64_t n, vs_err *err);

static int data_ranges(const rfs_inode *in, range_fn fn, void *arg,
                       vs_err *err) {
  uint64_t cs = 0, ce = 0; /* current range [cs, ce) in blocks */
  int open = 0;
  for (size_t i = 0; i < in->nsegs; i++) {
    const rfs_seg *s = &in->segs[i];
    uint64_t b0 = s->file_off / BS, b1 = (s->file_off + s->len + BS - 1) / BS;
    if (open && b0 <= ce) {
      if (b1 > ce) ce = b1;
      continue;
    }
    if (open && fn(arg, cs, ce - cs, err) < 0) return -1;
    cs = b0;
    ce = b1;
    open = 1;
  }
  if (open && fn(arg, cs, ce - cs, err) < 0) return -1;
  return 0;
}

typedef struct count_arg {
  uint64_t blocks, extents;
} count_arg;

static int count_range(void *arg, uint64_t lblk, uint64_t n, vs_err *err) {
  (void)lblk;
  (void)err;
  count_arg *c = arg;
  c->blocks += n;
  c->extents += (n + 32767) / 32768;
  return 0;
}

/* Bytes of an inode's xattrs in ext4's entry format (prefixes shortened
 * to an index, as libext2fs stores them). */
static uint64_t xattr_bytes(const rfs_inode *in) {
  static const char *const pfx[] = {"user.", "trusted.", "security.",
                                    "system.posix_acl_access",
                                    "system.posix_acl_default", "system."};
  uint64_t total = 4;
  for (size_t i = 0; i < in->nxattrs; i++) {
    size_t nl = strlen(in->xattrs[i].name);
    for (size_t k = 0; k < sizeof pfx / sizeof pfx[0]; k++)
      if (strncmp(in->xattrs[i].name, pfx[k], strlen(pfx[k])) == 0) {
        nl -= strlen(pfx[k]);
        break;
      }
    total += 16 + ((nl + 3) & ~3ull) + ((in->xattrs[i].len + 3) & ~3ull);
  }
  return total;
}

static int make_plan(rfs_tree *t, plan *p, vs_err *err) {
  memset(p, 0, sizeof *p);
  size_t cap = t->count + 12;
  p->in = calloc(cap, sizeof *p->in);
  p->node = calloc(cap, sizeof *p->node);
  size_t qcap = 64, qh = 0, qt = 0;
  rfs_node **q = malloc(qcap * sizeof *q);
  if (!p->in || !p->node || !q) goto oom;
  /* Breadth-first, each directory's children numbered together: `ls -l`
   * and path walks touch few inode table blocks. */
  t->root->inode->ino = EXT2_ROOT_INO;
  t->root->inode->subdirs = 0;
  p->in[EXT2_ROOT_INO] = t->root->inode;
  p->node[EXT2_ROOT_INO] = t->root;
  uint32_t next = EXT2_GOOD_OLD_FIRST_INO;
  q[qt++] = t->root;
  while (qh < qt) {
    rfs_node *d = q[qh++];
    uint64_t name_bytes = 0;
    for (rfs_node *c = d->first_child; c; c = c->next) {
      rfs_inode *in = c->inode;
      name_bytes += c->namelen;
      if (!in->ino) {
        in->ino = next;
        p->in[next] = in;
        p->node[next] = c;
        next++;
        in->subdirs = 0;
        if (!rfs_is_dir(c) && in->nlink > EXT4_LINK_MAX) {
          char path[256];
          rfs_node_path(c, path, sizeof path);
          free(q);
          return vs_err_set(err, VS_INVALID_ARGUMENT,
                            "%s: %u hardlinks exceed ext4's limit of %u",
                            path, in->nlink, EXT4_LINK_MAX);
        }
      }
      if (rfs_is_dir(c)) {
        d->inode->subdirs++;
        if (qt == qcap) {
          /* Reclaim the consumed front before growing. */
          memmove(q, q + qh, (qt - qh) * sizeof *q);
          qt -= qh;
          qh = 0;
          if (qt == qcap) {
            rfs_node **nq = realloc(q, qcap * 2 * sizeof *q);
            if (!nq) goto oom;
            q = nq;
            qcap *= 2;
          }
        }
        q[qt++] = c;
      }
    }
    uint64_t db = rfs_dir_blocks_bound(d->nchildren, name_bytes);
    if (is_lost_found(t, d) && db < LPF_BLOCKS) db = LPF_BLOCKS;
    p->content_blocks += db + rfs_extent_tree_blocks((db + 32767) / 32768);
  }
  free(q);
  q = NULL;
  p->next = next;
  for (uint32_t ino = EXT2_GOOD_OLD_FIRST_INO; ino < next; ino++) {
    rfs_inode *in = p->in[ino];
    if (S_ISREG(in->mode)) {
      count_arg c = {0, 0};
      data_ranges(in, count_range, &c, NULL);
      p->data_blocks += c.blocks;
      p->content_blocks += c.blocks + rfs_extent_tree_blocks(c.extents);
    } else if (S_ISLNK(in->mode) && in->size >= sizeof(((struct ext2_inode *)0)->i_block)) {
      p->content_blocks += 1;
    }
    if (in->nxattrs && xattr_bytes(in) > 256 - 128 - 32 - 4)
      p->content_blocks += 1;
  }
  if (t->root->inode->nxattrs) p->content_blocks += 1;
  return 0;
oom:
  free(q);
  return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
}

static void free_plan(plan *p) {
  free(p->in);
  free(p->node);
}

/* ---- geometry ------------------------------------------------------- */

static errcode_t init_fs(const char *path, uint64_t blocks, uint64_t inodes,
                         ext2_filsys *out) {
  struct ext2_super_block param;
  memset(&param, 0, sizeof param);
  ext2fs_blocks_count_set(&param, blocks);
  param.s_log_block_size = 2; /* 4 KiB */
  param.s_log_cluster_size = 2;
  param.s_rev_level = EXT2_DYNAMIC_REV;
  param.s_inode_size = 256;
  param.s_inodes_count = inodes > 0xffffffffull ? 0xffffffffu : (uint32_t)inodes;
  param.s_log_groups_per_flex = 4;
  param.s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
  /* mke2fs -t ext4 as of e2fsprogs 1.47, without orphan_file (kernels
   * before 5.15 would mount read-only). The journal flag comes with the
   * journal. */
  param.s_feature_compat = EXT2_FEATURE_COMPAT_EXT_ATTR |
                           EXT2_FEATURE_COMPAT_RESIZE_INODE |
                           EXT2_FEATURE_COMPAT_DIR_INDEX;
  param.s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE |
                             EXT3_FEATURE_INCOMPAT_EXTENTS |
                             EXT4_FEATURE_INCOMPAT_64BIT |
                             EXT4_FEATURE_INCOMPAT_FLEX_BG;
  param.s_feature_ro_compat = EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER |
                              EXT2_FEATURE_RO_COMPAT_LARGE_FILE |
                              EXT4_FEATURE_RO_COMPAT_HUGE_FILE |
                              EXT4_FEATURE_RO_COMPAT_DIR_NLINK |
                              EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE |
                              EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
  param.s_default_mount_opts = EXT2_DEFM_XATTR_USER | EXT2_DEFM_ACL;
  return ext2fs_initialize(path, EXT2_FLAG_64BITS, &param, unix_io_manager,
                           out);
}

static uint64_t free_blocks(ext2_filsys fs) {
  blk64_t used = 0;
  blk64_t first = fs->super->s_first_data_block;
  blk64_t last = ext2fs_blocks_count(fs->super) - 1;
  if (ext2fs_count_used_clusters(fs, first, last, &used)) return 0;
  return last - first + 1 - used;
}

/* Blocks the journal and resize inode will take in an fs of `blocks`. */
static uint64_t fixed_extra(uint64_t blocks, int journal) {
  uint64_t x = 8; /* resize inode's block, bad-block inode, slack */
  if (journal) {
    int j = ext2fs_default_journal_size(blocks);
    if (j > 0) x += (uint64_t)j + 1 + rfs_extent_tree_blocks((uint64_t)j / 32768 + 2);
  }
  return x;
}

/* Chooses the size and formats (in memory) a filesystem with room for
 * the content. */
static int make_fs(const char *path, int fd, const plan *p, const rfs_options *o,
                   ext2_filsys *out, vs_err *err) {
  uint64_t inodes_used = (uint64_t)p->next; /* reserved ones included */
  /* Group boundaries and the journal can split a file's extents; each
   * split may cost a tree block. */
  uint64_t content = p->content_blocks + 64;
  uint64_t blocks;
  uint64_t free_req = (o->free_bytes + BS - 1) / BS;
  if (o->size_bytes) {
    blocks = (o->size_bytes + BS - 1) / BS;
    free_req = 0;
  } else {
    blocks = content + free_req + inodes_used / 16 + 2048;
  }
  if (!o->size_bytes && blocks < 2048) blocks = 2048; /* 8 MiB: room for a journal */
  for (int attempt = 0; attempt < 12; attempt++) {
    uint64_t slack = 2 * (blocks / 32768 + 8);
    uint64_t free_inodes = o->free_inodes;
    if (!free_inodes) {
      free_inodes = (o->size_bytes ? blocks * BS / 16384 : free_req * BS / 16384);
      if (free_inodes < 1024) free_inodes = 1024;
    }
    uint64_t inodes = inodes_used + free_inodes;
    if (o->size_bytes && inodes < blocks * BS / 16384) inodes = blocks * BS / 16384;
    if (ftruncate(fd, (off_t)(blocks * BS)) < 0)
      return vs_err_errno(err, errno == EFBIG || errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL,
                          errno, "sizing %s", path);
    ext2_filsys fs = NULL;
    errcode_t e = init_fs(path, blocks, inodes, &fs);
    if (!e) e = ext2fs_allocate_tables(fs);
    uint64_t need = content + slack + free_req + fixed_extra(blocks, o->journal);
    uint64_t have = e ? 0 : free_blocks(fs);
    if (!e && have >= need) {
      *out = fs;
      return 0;
    }
    if (fs) ext2fs_free(fs);
    if (e && e != EXT2_ET_TOO_MANY_INODES && e != EXT2_ET_RES_GDT_BLOCKS)
      return vs_err_set(err, VS_INTERNAL, "formatting %s: %s", path,
                        error_message(e));
    if (o->size_bytes) {
      if (e == EXT2_ET_TOO_MANY_INODES)
        return vs_err_set(err, VS_INVALID_ARGUMENT,
                          "size_bytes %llu too small for %llu inodes",
                          (unsigned long long)o->size_bytes,
                          (unsigned long long)inodes_used);
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "size_bytes %llu too small for the content "
                        "(needs about %llu bytes)",
                        (unsigned long long)o->size_bytes,
                        (unsigned long long)((blocks + need - have) * BS));
    }
    /* Grow by the shortfall (or 1/8 when the inodes did not fit). */
    blocks += e ? blocks / 8 + 1024 : need - have + 64;
  }
  return vs_err_set(err, VS_INTERNAL, "could not size the filesystem");
}

/* ---- inodes --------------------------------------------------------- */

static void put_time(int64_t sec, uint32_t ns, __u32 *lo, __u32 *extra) {
  /* ext4: low 32 bits signed, two epoch bits and nanoseconds in extra. */
  *lo = (uint32_t)sec;
  *extra = (uint32_t)(((sec - (int64_t)(int32_t)(uint32_t)sec) >> 32) & 3) |
           (ns << 2);
}

static void base_inode(const rfs_inode *in, struct ext2_inode_large *li) {
  memset(li, 0, sizeof *li);
  li->i_mode = (uint16_t)in->mode;
  li->i_uid = (uint16_t)in->uid;
  ext2fs_set_i_uid_high(*li, in->uid >> 16);
  li->i_gid = (uint16_t)in->gid;
  ext2fs_set_i_gid_high(*li, in->gid >> 16);
  li->i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
  put_time(in->mtime, in->mtime_ns, &li->i_mtime, &li->i_mtime_extra);
  put_time(in->atime, in->atime_ns, &li->i_atime, &li->i_atime_extra);
  /* ctime cannot come from an archive; the change happened at mtime as far
   * as the image knows. */
  put_time(in->mtime, in->mtime_ns, &li->i_ctime, &li->i_ctime_extra);
  put_time(in->mtime, in->mtime_ns, &li->i_crtime, &li->i_crtime_extra);
  li->i_links_count = (uint16_t)in->nlink;
}

static int lib_err(vs_err *err, errcode_t e, const char *what, const rfs_node *n) {
  char path[256];
  rfs_node_path(n, path, sizeof path);
  return vs_err_set(err, e == EXT2_ET_BLOCK_ALLOC_FAIL ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL,
                    "%s: %s: %s", path, what, error_message(e));
}

static int copy_data(rfs_writer *w, uint64_t soff, uint64_t doff, uint64_t n,
                     vs_err *err) {
  while (n > 0 && !w->no_copy_range) {
    off_t si = (off_t)soff, di = (off_t)doff;
    ssize_t r = copy_file_range(w->spool_fd, &si, w->fd, &di, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                  errno == EOPNOTSUPP)) {
      w->no_copy_range = 1;
      break;
    }
    if (r < 0)
      return vs_err_errno(err, errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL,
                          errno, "copying file data into the image");
    if (r == 0) return vs_err_set(err, VS_INTERNAL, "data spool truncated");
    soff += (uint64_t)r;
    doff += (uint64_t)r;
    n -= (uint64_t)r;
  }
  if (n == 0) return 0;
  /* Fallback for spools on another filesystem (or old kernels). */
  enum { CHUNK = 1 << 20 };
  char *chunk = malloc(CHUNK);
  if (!chunk) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  int rc = 0;
  while (n > 0 && rc == 0) {
    size_t want = n < CHUNK ? (size_t)n : CHUNK;
    ssize_t r = pread(w->spool_fd, chunk, want, (off_t)soff);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      rc = vs_err_errno(err, VS_INTERNAL, r < 0 ? errno : EIO, "reading data spool");
      break;
    }
    size_t done = 0;
    while (done < (size_t)r) {
      ssize_t wr = pwrite(w->fd, chunk + done, (size_t)r - done, (off_t)(doff + done));
      if (wr < 0 && errno == EINTR) continue;
      if (wr < 0) {
        rc = vs_err_errno(err, errno == ENOSPC ? VS_RESOURCE_EXHAUSTED : VS_INTERNAL,
                          errno, "writing file data into the image");
        break;
      }
      done += (size_t)wr;
    }
    soff += (uint64_t)r;
    doff += (uint64_t)r;
    n -= (uint64_t)r;
  }
  free(chunk);
  return rc;
}

static int alloc_range(void *arg, uint64_t lblk, uint64_t n, vs_err *err) {
  return rfs_alloc_extents(arg, lblk, n, err);
}

static int write_file(rfs_writer *w, rfs_inode *in, struct ext2_inode_large *li,
                      uint64_t *blocks, vs_err *err) {
  w->nex = 0;
  if (data_ranges(in, alloc_range, w, err) < 0) return -1;
  /* Copy each segment to where its blocks landed. */
  size_t x = 0;
  for (size_t i = 0; i < in->nsegs; i++) {
    const rfs_seg *s = &in->segs[i];
    uint64_t fo = s->file_off, so = s->spool_off, left = s->len;
    while (left > 0) {
      uint64_t b = fo / BS;
      while (x < w->nex && (uint64_t)w->ex[x].lblk + w->ex[x].len <= b) x++;
      if (x == w->nex) return vs_err_set(err, VS_INTERNAL, "extent map lost a block");
      const rfs_ext *e = &w->ex[x];
      uint64_t ext_end = ((uint64_t)e->lblk + e->len) * BS;
      uint64_t n = ext_end - fo < left ? ext_end - fo : left;
      uint64_t dst = (e->pblk + (b - e->lblk)) * BS + fo % BS;
      if (copy_data(w, so, dst, n, err) < 0) return -1;
      fo += n;
      so += n;
      left -= n;
    }
  }
  for (size_t i = 0; i < w->nex; i++) *blocks += w->ex[i].len;
  return rfs_extent_tree(w, in->ino, w->ex, w->nex, li, blocks, err);
}

static int write_dir(rfs_writer *w, const rfs_tree *t, rfs_node *d,
                     struct ext2_inode_large *li, uint64_t *blocks,
                     vs_err *err) {
  ext2_filsys fs = w->fs;
  rfs_dirent *ents = malloc((d->nchildren ? d->nchildren : 1) * sizeof *ents);
  if (!ents) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  size_t n = 0;
  for (rfs_node *c = d->first_child; c; c = c->next)
    ents[n++] = (rfs_dirent){c->name, c->namelen, c->inode->ino,
                             ftype(c->inode->mode), 0, 0};
  uint32_t ino = d->inode->ino;
  uint32_t parent = d == t->root ? EXT2_ROOT_INO : d->parent->inode->ino;
  char *buf = NULL;
  uint32_t nb = 0;
  int indexed = 0;
  int rc = rfs_dir_layout(fs, ino, parent, ents, n,
                          is_lost_found(t, d) ? LPF_BLOCKS : 1, &buf, &nb,
                          &indexed, err);
  free(ents);
  if (rc < 0) return -1;
  w->nex = 0;
  if (rfs_alloc_extents(w, 0, nb, err) < 0) {
    free(buf);
    return -1;
  }
  for (size_t i = 0; i < w->nex; i++) {
    for (uint32_t k = 0; k < w->ex[i].len; k++) {
      errcode_t e = ext2fs_write_dir_block4(
          fs, w->ex[i].pblk + k, buf + (size_t)(w->ex[i].lblk + k) * BS, 0, ino);
      if (e) {
        free(buf);
        return lib_err(err, e, "writing directory block", d);
      }
    }
  }
  free(buf);
  *blocks += nb;
  if (indexed) li->i_flags |= EXT2_INDEX_FL;
  uint32_t links = 2 + d->inode->subdirs;
  li->i_links_count = (uint16_t)(links > EXT4_LINK_MAX ? 1 : links);
  ext2fs_inode_size_set(fs, (struct ext2_inode *)li, (uint64_t)nb * BS);
  return rfs_extent_tree(w, ino, w->ex, w->nex, li, blocks, err);
}

static int write_symlink(rfs_writer *w, rfs_inode *in,
                         struct ext2_inode_large *li, uint64_t *blocks,
                         vs_err *err) {
  size_t len = strlen(in->symlink);
  if (len < sizeof li->i_block) { /* fast symlink: target in the inode */
    memcpy(li->i_block, in->symlink, len);
    return 0;
  }
  w->nex = 0;
  if (rfs_alloc_extents(w, 0, 1, err) < 0) return -1;
  memset(w->buf, 0, BS);
  memcpy(w->buf, in->symlink, len);
  errcode_t e = io_channel_write_blk64(w->fs->io, w->ex[0].pblk, 1, w->buf);
  if (e) return vs_err_set(err, VS_INTERNAL, "writing symlink: %s", error_message(e));
  *blocks += 1;
  return rfs_extent_tree(w, in->ino, w->ex, w->nex, li, blocks, err);
}

static int write_xattrs(rfs_writer *w, rfs_inode *in, const rfs_node *n,
                        vs_err *err) {
  struct ext2_xattr_handle *h = NULL;
  errcode_t e = ext2fs_xattrs_open(w->fs, in->ino, &h);
  if (!e) e = ext2fs_xattrs_read(h);
  for (size_t i = 0; !e && i < in->nxattrs; i++)
    e = ext2fs_xattr_set(h, in->xattrs[i].name, in->xattrs[i].value,
                         in->xattrs[i].len);
  errcode_t ce = h ? ext2fs_xattrs_close(&h) : 0;
  if (!e) e = ce;
  if (e == EXT2_ET_EA_NO_SPACE || e == EXT2_ET_EA_KEY_NOT_FOUND ||
      e == EXT2_ET_EA_BAD_NAME_LEN || e == EXT2_ET_EA_BAD_VALUE_SIZE) {
    char path[256];
    rfs_node_path(n, path, sizeof path);
    return vs_err_set(err, VS_INVALID_ARGUMENT,
                      "%s: extended attributes do not fit in ext4 (%s)", path,
                      error_message(e));
  }
  if (e) return lib_err(err, e, "writing extended attributes", n);
  return 0;
}

static int write_inode(rfs_writer *w, const rfs_tree *t, const plan *p,
                       uint32_t ino, vs_err *err) {
  ext2_filsys fs = w->fs;
  rfs_inode *in = p->in[ino];
  rfs_node *n = p->node[ino];
  struct ext2_inode_large li;
  base_inode(in, &li);
  uint64_t blocks = 0;
  int rc = 0;
  ext2fs_inode_alloc_stats2(fs, ino, +1, S_ISDIR(in->mode));
  switch (in->mode & S_IFMT) {
    case S_IFDIR:
      rc = write_dir(w, t, n, &li, &blocks, err);
      break;
    case S_IFREG:
      ext2fs_inode_size_set(fs, (struct ext2_inode *)&li, in->size);
      rc = write_file(w, in, &li, &blocks, err);
      break;
    case S_IFLNK:
      li.i_size = (uint32_t)strlen(in->symlink);
      rc = write_symlink(w, in, &li, &blocks, err);
      break;
    case S_IFCHR:
    case S_IFBLK:
      /* The kernel's old (8:8) encoding when it fits, else the new one. */
      if (in->dev_major < 256 && in->dev_minor < 256) {
        li.i_block[0] = ext2fs_cpu_to_le32(in->dev_major * 256 + in->dev_minor);
      } else {
        li.i_block[1] = ext2fs_cpu_to_le32((in->dev_minor & 0xff) |
                                           (in->dev_major << 8) |
                                           ((in->dev_minor & ~0xffu) << 12));
      }
      break;
    default: /* FIFOs and sockets: nothing but the inode */
      break;
  }
  if (rc < 0) return -1;
  ext2fs_iblk_set(fs, (struct ext2_inode *)&li, blocks);
  errcode_t e = ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)&li, sizeof li);
  if (e) return lib_err(err, e, "writing inode", n);
  if (in->nxattrs && write_xattrs(w, in, n, err) < 0) return -1;
  return 0;
}

/* ---- the image ------------------------------------------------------ */

static int setup_fs(ext2_filsys fs, const rfs_options *o, time_t now, vs_err *err) {
  struct ext2_super_block *sb = fs->super;
  static const uint8_t zero[16];
  if (memcmp(o->uuid, zero, 16) != 0) {
    memcpy(sb->s_uuid, o->uuid, 16);
  } else if (getentropy(sb->s_uuid, 16) < 0) {
    return vs_err_errno(err, VS_INTERNAL, errno, "generating a UUID");
  }
  sb->s_uuid[6] = (sb->s_uuid[6] & 0x0f) | 0x40; /* RFC 4122 version 4 */
  sb->s_uuid[8] = (sb->s_uuid[8] & 0x3f) | 0x80;
  /* The htree hash seed derives from the UUID so equal inputs and UUID
   * give equal images. */
  for (int i = 0; i < 4; i++) {
    uint32_t v = ext2fs_crc32c_le(0x5eed0000u + (uint32_t)i, sb->s_uuid, 16);
    sb->s_hash_seed[i] = v;
  }
  sb->s_def_hash_version = EXT2_HASH_HALF_MD4;
  sb->s_checksum_type = EXT2_CRC32C_CHKSUM;
  sb->s_kbytes_written = 1;
  sb->s_max_mnt_count = -1;
  sb->s_mkfs_time = sb->s_wtime = sb->s_lastcheck = (uint32_t)now;
  if (o->label) strncpy((char *)sb->s_volume_name, o->label, sizeof sb->s_volume_name);
  ext2fs_init_csum_seed(fs);
  /* The image file is new, so its inode tables read as zeros already: the
   * kernel need not zero them again. */
  for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
    ext2fs_bg_flags_set(fs, g, EXT2_BG_INODE_ZEROED);
    ext2fs_group_desc_csum_set(fs, g);
  }
  /* Reserved inodes carry valid checksums even when unused (as mke2fs). */
  char zi[256] = {0};
  for (ext2_ino_t ino = 1; ino < EXT2_FIRST_INODE(sb); ino++) {
    errcode_t e = ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)zi,
                                          EXT2_INODE_SIZE(sb));
    if (e) return vs_err_set(err, VS_INTERNAL, "writing reserved inodes: %s", error_message(e));
  }
  for (ext2_ino_t ino = EXT2_ROOT_INO + 1; ino < EXT2_FIRST_INODE(sb); ino++)
    ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
  ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
  errcode_t e = ext2fs_update_bb_inode(fs, NULL);
  if (!e && ext2fs_has_feature_resize_inode(sb)) e = ext2fs_create_resize_inode(fs);
  if (e) return vs_err_set(err, VS_INTERNAL, "creating reserved inodes: %s", error_message(e));
  /* Tiny filesystems (under 8 MiB) get no journal, as with mke2fs. */
  if (o->journal && ext2fs_default_journal_size(ext2fs_blocks_count(sb)) > 0) {
    struct ext2fs_journal_params jp;
    e = ext2fs_get_journal_params(&jp, fs);
    if (!e)
      e = ext2fs_add_journal_inode3(fs, &jp, ~0ULL,
                                    EXT2_MKJOURNAL_LAZYINIT | EXT2_MKJOURNAL_NO_MNT_CHECK);
    if (e) return vs_err_set(err, VS_INTERNAL, "creating the journal: %s", error_message(e));
  }
  return 0;
}

static int ensure_lost_found(rfs_tree *t, time_t now, vs_err *err) {
  if (rfs_tree_lookup(t, t->root, "lost+found", 10)) return 0;
  rfs_inode *in = rfs_inode_new(040700);
  if (!in) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  in->mtime = in->atime = now;
  if (!rfs_tree_add(t, t->root, "lost+found", 10, in, 0)) {
    free(in);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  return 0;
}

int rfs_write_image(rfs_tree *t, rfs_spool *s, int fd, const char *path,
                    const rfs_options *o, rfs_result *res, vs_err *err) {
  time_t now = time(NULL);
  if (ensure_lost_found(t, now, err) < 0) return -1;
  if (rfs_spool_flush(s, err) < 0) return -1;
  plan p;
  if (make_plan(t, &p, err) < 0) {
    free_plan(&p);
    return -1;
  }
  rfs_writer w = {0};
  w.fd = fd;
  w.spool_fd = s->fd;
  w.buf = malloc(BS);
  int rc = -1;
  if (!w.buf) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  if (make_fs(path, fd, &p, o, &w.fs, err) < 0) goto out;
  if (setup_fs(w.fs, o, now, err) < 0) goto out;
  w.cursor = w.fs->super->s_first_data_block;
  if (write_inode(&w, t, &p, EXT2_ROOT_INO, err) < 0) goto out;
  for (uint32_t ino = EXT2_GOOD_OLD_FIRST_INO; ino < p.next; ino++)
    if (write_inode(&w, t, &p, ino, err) < 0) goto out;
  ext2fs_mark_super_dirty(w.fs);
  uint64_t blocks = ext2fs_blocks_count(w.fs->super);
  errcode_t e = ext2fs_close_free(&w.fs);
  if (e) {
    vs_err_set(err, VS_INTERNAL, "writing filesystem metadata: %s", error_message(e));
    goto out;
  }
  if (res) {
    res->size_bytes = blocks * BS;
    res->data_bytes = p.data_blocks * BS;
    res->inodes = p.next - EXT2_GOOD_OLD_FIRST_INO + 1;
  }
  rc = 0;
out:
  if (w.fs) ext2fs_free(w.fs);
  free(w.ex);
  free(w.buf);
  free_plan(&p);
  return rc;
}
