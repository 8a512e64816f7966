/* The layer applier: reads one layer archive with libarchive and applies
 * it to the in-memory tree with OCI layer semantics. File data goes to the
 * spool; the tree records where. This is the part that sees untrusted
 * bytes, and the fuzz target drives it directly. */
#ifndef VESSEL_SERVER_EXT4_APPLY_H
#define VESSEL_SERVER_EXT4_APPLY_H

#include <stdint.h>

#include "common/vs_err.h"
#include "server/ext4/ext4.h"
#include "server/ext4/spool.h"
#include "server/ext4/tree.h"

struct archive;

typedef struct rfs_applier {
  rfs_tree *tree;
  rfs_spool *spool;
  uint64_t max_unpacked, max_entries, max_data; /* limits (nonzero) */
  uint64_t unpacked;   /* file data bytes decompressed so far */
  uint64_t entries;    /* entries read so far */
  int (*cancelled)(void *arg);
  void *cancelled_arg;
} rfs_applier;

/* Longest entry path accepted, in bytes. */
#define RFS_MAX_PATH 65536
/* Symlinks followed while resolving one path (Linux' MAXSYMLINKS). */
#define RFS_MAX_FOLLOW 40
/* Largest file ext4 holds with 4 KiB blocks and extents. */
#define RFS_MAX_FILE_SIZE ((1ULL << 32) * 4096 - 4096)

/* Prepares a libarchive reader for tar with the given compression. */
int rfs_archive_reader(struct archive **out, rfs_compression c, vs_err *err);

/* Applies the entries of an opened archive as layer number `layer`
 * (1-based, increasing). `name` identifies the layer in error messages. */
int rfs_apply_archive(rfs_applier *ap, struct archive *a, uint32_t layer,
                      const char *name, vs_err *err);

/* Opens the blob of `l`, sniffs or applies its compression and applies it. */
int rfs_apply_layer(rfs_applier *ap, const rfs_layer *l, uint32_t layer,
                    vs_err *err);

#endif
