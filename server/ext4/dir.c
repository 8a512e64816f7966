/* Directory blocks. Small directories are linear; larger ones get the
 * hashed b-tree (htree) index that the kernel would build, so a lookup in
 * a directory of 100k entries reads two or three blocks instead of all of
 * them. The layout matches what e2fsck -D produces: leaves filled in hash
 * order, one index level when the root's entries are not enough. */
#include <stdlib.h>
#include <string.h>

#include "server/ext4/writer.h"

#define DX_TAIL 8 /* struct ext2_dx_tail */

static unsigned rec_len(uint32_t namelen) { return (8u + namelen + 3u) & ~3u; }

typedef struct packer {
  ext2_filsys fs;
  char *buf;
  size_t nblocks, cap;
  unsigned usable; /* bytes for entries per block (tail excluded) */
  int csum;
  size_t off;      /* in the current block; 0 = no block open */
  char *last;      /* last entry of the current block */
  int open;
} packer;

static char *blk(packer *p, size_t i) { return p->buf + i * p->fs->blocksize; }

static int pk_reserve(packer *p, size_t n) {
  if (n <= p->cap) return 0;
  size_t nc = p->cap ? p->cap : 4;
  while (nc < n) nc *= 2;
  char *b = realloc(p->buf, nc * p->fs->blocksize);
  if (!b) return -1;
  p->buf = b;
  p->cap = nc;
  return 0;
}

static void put_dirent(ext2_filsys fs, char *at, uint32_t ino,
                       const char *name, uint32_t len, uint8_t ft,
                       unsigned rl) {
  struct ext2_dir_entry *d = (void *)at;
  d->inode = ino;
  ext2fs_set_rec_len(fs, rl, d);
  ext2fs_dirent_set_name_len(d, (int)len);
  ext2fs_dirent_set_file_type(d, ft);
  memcpy(d->name, name, len);
}

/* Closes the open block: the last entry spans to the end, then the
 * checksum tail. */
static void pk_close(packer *p) {
  if (!p->open) return;
  char *b = blk(p, p->nblocks - 1);
  if (!p->last) {
    put_dirent(p->fs, b, 0, "", 0, 0, p->usable);
  } else {
    ext2fs_set_rec_len(p->fs, (unsigned)(b + p->usable - p->last),
                       (struct ext2_dir_entry *)p->last);
  }
  if (p->csum)
    ext2fs_initialize_dirent_tail(
        p->fs, (struct ext2_dir_entry_tail *)(b + p->fs->blocksize -
                                              sizeof(struct ext2_dir_entry_tail)));
  p->open = 0;
}

static int pk_open(packer *p) {
  pk_close(p);
  if (pk_reserve(p, p->nblocks + 1) < 0) return -1;
  memset(blk(p, p->nblocks), 0, p->fs->blocksize);
  p->nblocks++;
  p->off = 0;
  p->last = NULL;
  p->open = 1;
  return 0;
}

/* Adds an entry; *newblock is set when it had to open a new block. */
static int pk_add(packer *p, uint32_t ino, const char *name, uint32_t len,
                  uint8_t ft, int *newblock) {
  unsigned rl = rec_len(len);
  *newblock = 0;
  if (!p->open || p->off + rl > p->usable) {
    if (pk_open(p) < 0) return -1;
    *newblock = 1;
  }
  char *at = blk(p, p->nblocks - 1) + p->off;
  put_dirent(p->fs, at, ino, name, len, ft, rl);
  p->last = at;
  p->off += rl;
  return 0;
}

uint64_t rfs_dir_blocks_bound(uint64_t n, uint64_t name_bytes) {
  /* Each entry takes at most 8 + name + 3 bytes; a block wastes at most
   * one maximal entry (264 bytes) when the next does not fit. */
  uint64_t bytes = 24 + 8 * n + name_bytes + 3 * n;
  uint64_t usable = 4096 - 12 - 264;
  uint64_t leaves = bytes / usable + 1;
  if (leaves <= 1) return 1;
  return leaves + 1 + (leaves + 509) / 510; /* root and index nodes */
}

static int cmp_hash(const void *a, const void *b) {
  const rfs_dirent *x = a, *y = b;
  if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
  if (x->minor_hash != y->minor_hash)
    return x->minor_hash < y->minor_hash ? -1 : 1;
  uint32_t l = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, l);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void put_countlimit(char *at, unsigned limit, unsigned count,
                           uint32_t block0) {
  struct ext2_dx_countlimit *cl = (void *)at;
  cl->limit = ext2fs_cpu_to_le16((uint16_t)limit);
  cl->count = ext2fs_cpu_to_le16((uint16_t)count);
  ((struct ext2_dx_entry *)at)->block = ext2fs_cpu_to_le32(block0);
}

static void put_dx(char *at, unsigned i, uint32_t hash, uint32_t block) {
  struct ext2_dx_entry *e = (struct ext2_dx_entry *)at + i;
  if (i > 0) e->hash = ext2fs_cpu_to_le32(hash);
  e->block = ext2fs_cpu_to_le32(block);
}

/* Builds the htree. Returns 1 when the directory is too large for two
 * index levels (the caller then writes it linear), -1 on error. */
static int layout_htree(ext2_filsys fs, uint32_t ino, uint32_t parent,
                        rfs_dirent *ents, size_t n, packer *p, vs_err *err) {
  int csum = p->csum;
  int hv = fs->super->s_def_hash_version;
  int alg = hv;
  if (alg <= EXT2_HASH_TEA && (fs->super->s_flags & EXT2_FLAGS_UNSIGNED_HASH))
    alg += 3;
  for (size_t i = 0; i < n; i++) {
    ext2_dirhash_t h, mh;
    errcode_t e = ext2fs_dirhash2(alg, ents[i].name, (int)ents[i].len,
                                  fs->encoding, 0, fs->super->s_hash_seed,
                                  &h, &mh);
    if (e)
      return vs_err_set(err, VS_INTERNAL, "directory hash: %s",
                        error_message(e));
    ents[i].hash = h;
    ents[i].minor_hash = mh;
  }
  qsort(ents, n, sizeof *ents, cmp_hash);

  /* Leaves first, into blocks 1.. of a scratch packer; the index blocks
   * are put in front afterwards. */
  packer lp = *p;
  lp.buf = NULL;
  lp.cap = lp.nblocks = 0;
  lp.open = 0;
  uint32_t *lhash = NULL;
  size_t lcap = 0;
  for (size_t i = 0; i < n; i++) {
    int nb;
    if (pk_add(&lp, ents[i].ino, ents[i].name, ents[i].len, ents[i].ftype,
               &nb) < 0)
      goto oom;
    if (nb) {
      if (lp.nblocks > lcap) {
        lcap = lcap ? lcap * 2 : 64;
        uint32_t *x = realloc(lhash, lcap * sizeof *x);
        if (!x) goto oom;
        lhash = x;
      }
      uint32_t h = ents[i].hash;
      /* A run of equal hashes split across leaves: bit 0 tells lookups
       * to continue into this leaf. */
      if (i > 0 && ents[i - 1].hash == h) h |= 1;
      lhash[lp.nblocks - 1] = h;
    }
  }
  pk_close(&lp);
  size_t L = lp.nblocks;
  unsigned root_limit = (fs->blocksize - 32 - (csum ? DX_TAIL : 0)) / 8;
  unsigned node_limit = (fs->blocksize - 8 - (csum ? DX_TAIL : 0)) / 8;
  size_t K = 0; /* index nodes */
  if (L > root_limit) {
    K = (L + node_limit - 1) / node_limit;
    if (K > root_limit) {
      free(lp.buf);
      free(lhash);
      return 1;
    }
  }
  if (pk_reserve(p, 1 + K + L) < 0) goto oom;
  memset(p->buf, 0, (1 + K) * fs->blocksize);
  memcpy(blk(p, 1 + K), lp.buf, L * fs->blocksize);
  p->nblocks = 1 + K + L;

  /* Root: "." and ".." (spanning the block), the root info, entries. */
  char *r = blk(p, 0);
  put_dirent(fs, r, ino, ".", 1, EXT2_FT_DIR, 12);
  put_dirent(fs, r + 12, parent, "..", 2, EXT2_FT_DIR, fs->blocksize - 12);
  struct ext2_dx_root_info *info = (void *)(r + 24);
  info->reserved_zero = 0;
  info->hash_version = (uint8_t)hv;
  info->info_length = 8;
  info->indirect_levels = K ? 1 : 0;
  info->unused_flags = 0;
  char *re = r + 32;
  if (K == 0) {
    put_countlimit(re, root_limit, (unsigned)L, 1);
    for (size_t i = 1; i < L; i++)
      put_dx(re, (unsigned)i, lhash[i], (uint32_t)(1 + i));
  } else {
    size_t per = (L + K - 1) / K;
    put_countlimit(re, root_limit, (unsigned)K, 1);
    for (size_t k = 0; k < K; k++) {
      size_t first = k * per, cnt = L - first < per ? L - first : per;
      if (k > 0) put_dx(re, (unsigned)k, lhash[first], (uint32_t)(1 + k));
      char *nd = blk(p, 1 + k);
      /* A node starts with an empty entry spanning the block. */
      put_dirent(fs, nd, 0, "", 0, 0, fs->blocksize);
      char *ne = nd + 8;
      put_countlimit(ne, node_limit, (unsigned)cnt, (uint32_t)(1 + K + first));
      for (size_t i = 1; i < cnt; i++)
        put_dx(ne, (unsigned)i, lhash[first + i],
               (uint32_t)(1 + K + first + i));
    }
  }
  free(lp.buf);
  free(lhash);
  return 0;
oom:
  free(lp.buf);
  free(lhash);
  return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
}

int rfs_dir_layout(ext2_filsys fs, uint32_t ino, uint32_t parent,
                   rfs_dirent *ents, size_t n, uint32_t min_blocks,
                   char **out, uint32_t *nblocks, int *indexed, vs_err *err) {
  packer p = {0};
  p.fs = fs;
  p.csum = ext2fs_has_feature_metadata_csum(fs->super);
  p.usable = fs->blocksize - (p.csum ? sizeof(struct ext2_dir_entry_tail) : 0);
  *indexed = 0;
  int nb;
  if (pk_add(&p, ino, ".", 1, EXT2_FT_DIR, &nb) < 0 ||
      pk_add(&p, parent, "..", 2, EXT2_FT_DIR, &nb) < 0)
    goto oom;
  for (size_t i = 0; i < n; i++)
    if (pk_add(&p, ents[i].ino, ents[i].name, ents[i].len, ents[i].ftype,
               &nb) < 0)
      goto oom;
  pk_close(&p);
  if (p.nblocks > 1 && ext2fs_has_feature_dir_index(fs->super)) {
    packer h = p;
    h.buf = NULL;
    h.cap = h.nblocks = 0;
    int r = layout_htree(fs, ino, parent, ents, n, &h, err);
    if (r < 0) {
      free(p.buf);
      free(h.buf);
      return -1;
    }
    if (r == 0) {
      free(p.buf);
      p = h;
      *indexed = 1;
    } else {
      free(h.buf);
    }
  }
  while (p.nblocks < min_blocks) { /* lost+found: room to reconnect */
    if (pk_open(&p) < 0) goto oom;
    pk_close(&p);
  }
  *out = p.buf;
  *nblocks = (uint32_t)p.nblocks;
  return 0;
oom:
  free(p.buf);
  return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
}
