/* The ext4 writer: lays the in-memory tree out as an ext4 image.
 * libext2fs formats (superblock, group descriptors, bitmaps, inode tables,
 * resize inode, journal) and computes every checksum; vessel packs
 * directories (dir.c), extent trees (extent.c), file data and inodes
 * (writer.c), because libext2fs' per-entry helpers (ext2fs_link,
 * ext2fs_file_write) are quadratic in directory size or copy block by
 * block. */
#ifndef VESSEL_SERVER_EXT4_WRITER_H
#define VESSEL_SERVER_EXT4_WRITER_H

#include <ext2fs/ext2fs.h>
#include <stdint.h>

#include "common/vs_err.h"
#include "server/ext4/ext4.h"
#include "server/ext4/spool.h"
#include "server/ext4/tree.h"

/* One extent: `len` (<= 32768) blocks from logical `lblk` at `pblk`. */
typedef struct rfs_ext {
  uint32_t lblk;
  uint32_t len;
  uint64_t pblk;
} rfs_ext;

typedef struct rfs_writer {
  ext2_filsys fs;
  int fd;       /* the image, for file data written directly */
  int spool_fd; /* the spool, read from */
  blk64_t cursor; /* block allocation goes forward from here */
  rfs_ext *ex;  /* scratch extent list */
  size_t nex, excap;
  char *buf;    /* scratch: one block */
  int no_copy_range; /* copy_file_range unsupported: plain copies */
} rfs_writer;

/* Allocates up to `want` contiguous free blocks (at least one). */
int rfs_alloc(rfs_writer *w, blk64_t want, blk64_t *start, blk64_t *got,
              vs_err *err);
/* Allocates `n` blocks for logical blocks lblk.., appending extents to
 * w->ex (split at fragmentation and at the 32768-block extent limit). */
int rfs_alloc_extents(rfs_writer *w, uint64_t lblk, uint64_t n, vs_err *err);

/* Number of tree blocks an extent tree of n extents needs. */
uint64_t rfs_extent_tree_blocks(uint64_t n);
/* Writes the extent tree of `ex` for inode `ino`: the root into
 * inode->i_block, further levels into newly allocated blocks (their count
 * added to *tree_blocks). Sets EXT4_EXTENTS_FL. */
int rfs_extent_tree(rfs_writer *w, uint32_t ino, const rfs_ext *ex, size_t n,
                    struct ext2_inode_large *inode, uint64_t *tree_blocks,
                    vs_err *err);

typedef struct rfs_dirent {
  const char *name;
  uint32_t len;
  uint32_t ino;
  uint8_t ftype;
  uint32_t hash, minor_hash;
} rfs_dirent;

/* Upper bound of the blocks a directory of n entries with `name_bytes` of
 * names in total takes (index blocks included). */
uint64_t rfs_dir_blocks_bound(uint64_t n, uint64_t name_bytes);
/* Lays out directory `ino` (parent `parent`) with entries `ents` (order may
 * be changed) into *out (malloc'd, *nblocks blocks, at least min_blocks).
 * Directories over one block get a hashed b-tree index when the
 * filesystem has dir_index (*indexed = 1). Checksums are filled in when
 * the blocks are written (ext2fs_write_dir_block4). */
int rfs_dir_layout(ext2_filsys fs, uint32_t ino, uint32_t parent,
                   rfs_dirent *ents, size_t n, uint32_t min_blocks,
                   char **out, uint32_t *nblocks, int *indexed, vs_err *err);

/* Writes the tree as ext4 into fd (an empty regular file at path).
 * Adds /lost+found to the tree when missing. */
int rfs_write_image(rfs_tree *t, rfs_spool *s, int fd, const char *path,
                    const rfs_options *o, rfs_result *res, vs_err *err);

#endif
