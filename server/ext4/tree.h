/* The in-memory filesystem tree that layers are applied to before it is
 * written as ext4. Directory entries (rfs_node) and inodes (rfs_inode) are
 * separate so hardlinks share one inode. Lookups go through one hash table
 * keyed by (parent, name), so directories with millions of entries stay
 * O(1) per operation. Nothing here recurses: hostile archives can nest
 * directories arbitrarily deep. */
#ifndef VESSEL_SERVER_EXT4_TREE_H
#define VESSEL_SERVER_EXT4_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/vs_err.h"

/* A run of file data kept in the spool. */
typedef struct rfs_seg {
  uint64_t file_off; /* offset in the file */
  uint64_t len;
  uint64_t spool_off; /* offset in the spool file */
} rfs_seg;

typedef struct rfs_xattr {
  char *name;
  void *value;
  size_t len;
} rfs_xattr;

typedef struct rfs_inode {
  uint32_t mode; /* S_IF* type | permission bits (incl. setuid/setgid/sticky) */
  uint32_t uid, gid;
  int64_t mtime, atime;
  uint32_t mtime_ns, atime_ns;
  uint64_t size;               /* regular files: apparent size */
  uint32_t dev_major, dev_minor;
  char *symlink;               /* symlink target */
  rfs_seg *segs;               /* regular files: data, by file_off */
  size_t nsegs, segs_cap;
  rfs_xattr *xattrs;
  size_t nxattrs;
  uint32_t nlink; /* number of nodes referring to this inode */
  uint32_t ino;   /* assigned by the writer */
  uint32_t subdirs; /* directories: child directories (writer) */
} rfs_inode;

typedef struct rfs_node {
  struct rfs_node *parent;
  struct rfs_node *first_child, *last_child; /* directories */
  struct rfs_node *prev, *next;              /* siblings, insertion order */
  struct rfs_node *hnext;                    /* hash chain */
  uint64_t hash;
  rfs_inode *inode;
  uint32_t layer;    /* last layer that created or touched this entry */
  uint32_t nchildren;
  uint16_t namelen;
  char name[];       /* not NUL-terminated beyond namelen; namelen <= 255 */
} rfs_node;

typedef struct rfs_tree {
  rfs_node *root;
  rfs_node **buckets;
  size_t nbuckets, count; /* count: nodes in the hash (all but root) */
  uint64_t seed;
} rfs_tree;

int rfs_tree_init(rfs_tree *t, vs_err *err);
void rfs_tree_free(rfs_tree *t);

rfs_inode *rfs_inode_new(uint32_t mode);
/* Drops one reference; frees the inode at zero. */
void rfs_inode_unref(rfs_tree *t, rfs_inode *in);
/* Replaces the inode's xattrs with copies of the given ones. */
void rfs_inode_clear_xattrs(rfs_inode *in);
int rfs_inode_add_xattr(rfs_inode *in, const char *name, const void *value,
                        size_t len);

static inline int rfs_is_dir(const rfs_node *n) {
  return (n->inode->mode & 0170000) == 0040000;
}

rfs_node *rfs_tree_lookup(const rfs_tree *t, const rfs_node *dir,
                          const char *name, size_t len);
/* Adds a child holding a new reference to `in` (the caller's reference is
 * taken over). NULL on allocation failure. */
rfs_node *rfs_tree_add(rfs_tree *t, rfs_node *dir, const char *name,
                       size_t len, rfs_inode *in, uint32_t layer);
/* Unlinks and frees `n` and everything below it. */
void rfs_tree_remove(rfs_tree *t, rfs_node *n);

/* Writes the node's path ("/a/b") into buf, truncating with "..." if long. */
void rfs_node_path(const rfs_node *n, char *buf, size_t size);

#endif
