/* Block allocation and extent trees. The image is built from scratch, so
 * allocation is a forward cursor over the block bitmap: files come out
 * contiguous, in inode order, next to their directories. */
#include <stdlib.h>
#include <string.h>

#include "server/ext4/writer.h"
/* After ext2fs.h, which defines the __le types it uses. */
#include <ext2fs/ext3_extents.h>

#define EXT_MAX_LEN 32768u /* longest initialized extent */

static int ext_err(vs_err *err, errcode_t e, const char *what) {
  return vs_err_set(err, VS_INTERNAL, "%s: %s", what, error_message(e));
}

int rfs_alloc(rfs_writer *w, blk64_t want, blk64_t *start, blk64_t *got,
              vs_err *err) {
  ext2_filsys fs = w->fs;
  blk64_t last = ext2fs_blocks_count(fs->super) - 1;
  blk64_t b;
  errcode_t e;
  for (int pass = 0;; pass++) {
    if (w->cursor > last) w->cursor = fs->super->s_first_data_block;
    e = ext2fs_find_first_zero_block_bitmap2(fs->block_map, w->cursor, last,
                                             &b);
    if (e == 0) break;
    if (pass == 1 || w->cursor == fs->super->s_first_data_block)
      return vs_err_set(err, VS_RESOURCE_EXHAUSTED,
                        "filesystem image full (no free blocks)");
    w->cursor = fs->super->s_first_data_block; /* wrap once */
  }
  blk64_t end = b + want - 1;
  if (end > last || end < b) end = last;
  blk64_t used;
  e = ext2fs_find_first_set_block_bitmap2(fs->block_map, b, end, &used);
  blk64_t n = e == 0 ? used - b : end - b + 1;
  ext2fs_block_alloc_stats_range(fs, b, (unsigned)n, +1);
  w->cursor = b + n;
  *start = b;
  *got = n;
  return 0;
}

static int push_ext(rfs_writer *w, uint32_t lblk, uint32_t len, uint64_t pblk,
                    vs_err *err) {
  if (w->nex > 0) {
    rfs_ext *l = &w->ex[w->nex - 1];
    if (l->lblk + l->len == lblk && l->pblk + l->len == pblk &&
        l->len + len <= EXT_MAX_LEN) {
      l->len += len;
      return 0;
    }
  }
  if (w->nex == w->excap) {
    size_t nc = w->excap ? w->excap * 2 : 64;
    rfs_ext *x = realloc(w->ex, nc * sizeof *x);
    if (!x) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    w->ex = x;
    w->excap = nc;
  }
  w->ex[w->nex++] = (rfs_ext){lblk, len, pblk};
  return 0;
}

int rfs_alloc_extents(rfs_writer *w, uint64_t lblk, uint64_t n, vs_err *err) {
  while (n > 0) {
    blk64_t start, got;
    if (rfs_alloc(w, n, &start, &got, err) < 0) return -1;
    n -= got;
    while (got > 0) {
      uint32_t len = got > EXT_MAX_LEN ? EXT_MAX_LEN : (uint32_t)got;
      if (push_ext(w, (uint32_t)lblk, len, start, err) < 0) return -1;
      lblk += len;
      start += len;
      got -= len;
    }
  }
  return 0;
}

/* Entries per tree block: (4096 - header) / 12, the checksum tail fits in
 * the remainder. */
static unsigned per_block(ext2_filsys fs) {
  return (fs->blocksize - sizeof(struct ext3_extent_header)) /
         sizeof(struct ext3_extent);
}

uint64_t rfs_extent_tree_blocks(uint64_t n) {
  uint64_t total = 0;
  while (n > 4) {
    n = (n + 339) / 340;
    total += n;
  }
  return total;
}

static void put_header(struct ext3_extent_header *h, unsigned entries,
                       unsigned max, unsigned depth) {
  h->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
  h->eh_entries = ext2fs_cpu_to_le16((uint16_t)entries);
  h->eh_max = ext2fs_cpu_to_le16((uint16_t)max);
  h->eh_depth = ext2fs_cpu_to_le16((uint16_t)depth);
  h->eh_generation = 0;
}

static void put_leaf(struct ext3_extent *x, const rfs_ext *e) {
  x->ee_block = ext2fs_cpu_to_le32(e->lblk);
  x->ee_len = ext2fs_cpu_to_le16((uint16_t)e->len);
  x->ee_start_hi = ext2fs_cpu_to_le16((uint16_t)(e->pblk >> 32));
  x->ee_start = ext2fs_cpu_to_le32((uint32_t)e->pblk);
}

static void put_index(struct ext3_extent_idx *x, uint32_t lblk, uint64_t pblk) {
  x->ei_block = ext2fs_cpu_to_le32(lblk);
  x->ei_leaf = ext2fs_cpu_to_le32((uint32_t)pblk);
  x->ei_leaf_hi = ext2fs_cpu_to_le16((uint16_t)(pblk >> 32));
  x->ei_unused = 0;
}

/* One level of the tree above the leaves or an index level: an entry per
 * node of the level below, (first logical block, node's block). */
typedef struct idx {
  uint32_t lblk;
  uint64_t pblk;
} idx;

int rfs_extent_tree(rfs_writer *w, uint32_t ino, const rfs_ext *ex, size_t n,
                    struct ext2_inode_large *inode, uint64_t *tree_blocks,
                    vs_err *err) {
  ext2_filsys fs = w->fs;
  struct ext3_extent_header *root = (void *)inode->i_block;
  memset(inode->i_block, 0, sizeof inode->i_block);
  inode->i_flags |= EXT4_EXTENTS_FL;
  if (n <= 4) {
    put_header(root, (unsigned)n, 4, 0);
    for (size_t i = 0; i < n; i++)
      put_leaf((struct ext3_extent *)(root + 1) + i, &ex[i]);
    return 0;
  }
  /* Bottom-up: pack leaves, then index levels, until four entries or
   * fewer remain for the root in the inode. */
  unsigned per = per_block(fs);
  size_t nidx = (n + per - 1) / per;
  idx *level = malloc(nidx * sizeof *level);
  if (!level) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  unsigned depth = 0;
  size_t cur_n = n; /* entries of the level being packed */
  idx *cur = NULL;  /* NULL: the level being packed is the extents */
  int rc = 0;
  for (;;) {
    size_t nodes = (cur_n + per - 1) / per;
    blk64_t start = 0, got = 0;
    for (size_t k = 0; k < nodes; k++) {
      if (got == 0 && rfs_alloc(w, nodes - k, &start, &got, err) < 0) {
        rc = -1;
        goto out;
      }
      blk64_t blk = start++;
      got--;
      memset(w->buf, 0, fs->blocksize);
      struct ext3_extent_header *h = (void *)w->buf;
      size_t first = k * per, cnt = cur_n - first < per ? cur_n - first : per;
      put_header(h, (unsigned)cnt, per, depth);
      for (size_t i = 0; i < cnt; i++) {
        if (!cur)
          put_leaf((struct ext3_extent *)(h + 1) + i, &ex[first + i]);
        else
          put_index((struct ext3_extent_idx *)(h + 1) + i,
                    cur[first + i].lblk, cur[first + i].pblk);
      }
      errcode_t e = ext2fs_extent_block_csum_set(fs, ino, h);
      if (!e) e = io_channel_write_blk64(fs->io, blk, 1, w->buf);
      if (e) {
        rc = ext_err(err, e, "writing extent tree block");
        goto out;
      }
      /* In place: entry k of the new level is built after entries up to
       * k*per of the old one were read. */
      level[k].lblk = cur ? cur[first].lblk : ex[first].lblk;
      level[k].pblk = blk;
      (*tree_blocks)++;
    }
    cur = level;
    cur_n = nodes;
    depth++;
    if (cur_n <= 4) break;
  }
  put_header(root, (unsigned)cur_n, 4, depth);
  for (size_t i = 0; i < cur_n; i++)
    put_index((struct ext3_extent_idx *)(root + 1) + i, cur[i].lblk,
              cur[i].pblk);
out:
  free(level);
  return rc;
}
