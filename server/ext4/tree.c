#include "server/ext4/tree.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Keyed with a random seed so a hostile layer cannot precompute names that
 * all land in one bucket. */
static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

static uint64_t key_hash(uint64_t seed, const rfs_node *dir, const char *name,
                         size_t len) {
  uint64_t h = mix(seed ^ (uint64_t)(uintptr_t)dir);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, name + i, 8);
    h = mix(h ^ w) + 0x9e3779b97f4a7c15ULL;
  }
  uint64_t w = 0;
  memcpy(&w, name + i, len - i);
  return mix(h ^ w ^ ((uint64_t)len << 56));
}

int rfs_tree_init(rfs_tree *t, vs_err *err) {
  memset(t, 0, sizeof *t);
  if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != sizeof t->seed)
    t->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
  t->nbuckets = 1024;
  t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
  rfs_inode *in = rfs_inode_new(0040755);
  t->root = calloc(1, sizeof(rfs_node));
  if (!t->buckets || !in || !t->root) {
    free(t->buckets);
    free(in);
    free(t->root);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  t->root->inode = in;
  t->root->parent = t->root;
  return 0;
}

rfs_inode *rfs_inode_new(uint32_t mode) {
  rfs_inode *in = calloc(1, sizeof *in);
  if (!in) return NULL;
  in->mode = mode;
  in->nlink = 1;
  return in;
}

void rfs_inode_clear_xattrs(rfs_inode *in) {
  for (size_t i = 0; i < in->nxattrs; i++) {
    free(in->xattrs[i].name);
    free(in->xattrs[i].value);
  }
  free(in->xattrs);
  in->xattrs = NULL;
  in->nxattrs = 0;
}

int rfs_inode_add_xattr(rfs_inode *in, const char *name, const void *value,
                        size_t len) {
  rfs_xattr *x = realloc(in->xattrs, (in->nxattrs + 1) * sizeof *x);
  if (!x) return -1;
  in->xattrs = x;
  char *n = strdup(name);
  void *v = malloc(len ? len : 1);
  if (!n || !v) {
    free(n);
    free(v);
    return -1;
  }
  if (len) memcpy(v, value, len);
  x[in->nxattrs].name = n;
  x[in->nxattrs].value = v;
  x[in->nxattrs].len = len;
  in->nxattrs++;
  return 0;
}

static void inode_free(rfs_inode *in) {
  rfs_inode_clear_xattrs(in);
  free(in->symlink);
  free(in->segs);
  free(in);
}

void rfs_inode_unref(rfs_tree *t, rfs_inode *in) {
  (void)t;
  if (--in->nlink == 0) inode_free(in);
}

rfs_node *rfs_tree_lookup(const rfs_tree *t, const rfs_node *dir,
                          const char *name, size_t len) {
  uint64_t h = key_hash(t->seed, dir, name, len);
  for (rfs_node *n = t->buckets[h & (t->nbuckets - 1)]; n; n = n->hnext)
    if (n->hash == h && n->parent == dir && n->namelen == len &&
        memcmp(n->name, name, len) == 0)
      return n;
  return NULL;
}

static void grow(rfs_tree *t) {
  size_t nb = t->nbuckets * 2;
  rfs_node **b = calloc(nb, sizeof *b);
  if (!b) return; /* a longer chain is slower, not wrong */
  for (size_t i = 0; i < t->nbuckets; i++) {
    rfs_node *n = t->buckets[i];
    while (n) {
      rfs_node *next = n->hnext;
      n->hnext = b[n->hash & (nb - 1)];
      b[n->hash & (nb - 1)] = n;
      n = next;
    }
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = nb;
}

rfs_node *rfs_tree_add(rfs_tree *t, rfs_node *dir, const char *name,
                       size_t len, rfs_inode *in, uint32_t layer) {
  rfs_node *n = calloc(1, sizeof *n + len + 1);
  if (!n) return NULL;
  memcpy(n->name, name, len);
  n->namelen = (uint16_t)len;
  n->parent = dir;
  n->inode = in;
  n->layer = layer;
  n->hash = key_hash(t->seed, dir, name, len);
  if (t->count >= t->nbuckets) grow(t);
  rfs_node **b = &t->buckets[n->hash & (t->nbuckets - 1)];
  n->hnext = *b;
  *b = n;
  t->count++;
  n->prev = dir->last_child;
  if (dir->last_child)
    dir->last_child->next = n;
  else
    dir->first_child = n;
  dir->last_child = n;
  dir->nchildren++;
  return n;
}

/* Removes one node without children from its parent and the hash. */
static void unlink_leaf(rfs_tree *t, rfs_node *n) {
  rfs_node *dir = n->parent;
  if (n->prev)
    n->prev->next = n->next;
  else
    dir->first_child = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    dir->last_child = n->prev;
  dir->nchildren--;
  rfs_node **p = &t->buckets[n->hash & (t->nbuckets - 1)];
  while (*p != n) p = &(*p)->hnext;
  *p = n->hnext;
  t->count--;
  rfs_inode_unref(t, n->inode);
  free(n);
}

void rfs_tree_remove(rfs_tree *t, rfs_node *n) {
  if (n == t->root) return;
  rfs_node *cur = n;
  for (;;) {
    while (cur->first_child) cur = cur->first_child; /* descend to a leaf */
    rfs_node *up = cur->parent;
    int done = cur == n;
    unlink_leaf(t, cur);
    if (done) return;
    cur = up;
  }
}

static void free_all(rfs_tree *t, rfs_node *root) {
  /* Same walk as rfs_tree_remove, but the root is not in the hash. */
  while (root->first_child) rfs_tree_remove(t, root->first_child);
}

void rfs_tree_free(rfs_tree *t) {
  if (!t->root) return;
  free_all(t, t->root);
  inode_free(t->root->inode);
  free(t->root);
  free(t->buckets);
  memset(t, 0, sizeof *t);
}

void rfs_node_path(const rfs_node *n, char *buf, size_t size) {
  if (size < 8) {
    if (size) buf[0] = '\0';
    return;
  }
  /* Collect components leaf-to-root, then emit them in order; a path that
   * does not fit is shown as ".../tail". */
  const rfs_node *parts[64];
  size_t np = 0, total = 0;
  int cut = 0;
  for (const rfs_node *c = n; c->parent != c; c = c->parent) {
    if (np == 64 || total + c->namelen + 1 > size - 5) {
      cut = 1;
      break;
    }
    parts[np++] = c;
    total += c->namelen + 1;
  }
  size_t o = 0;
  if (cut) {
    memcpy(buf, "...", 3);
    o = 3;
  }
  if (np == 0 && !cut) buf[o++] = '/';
  while (np > 0) {
    const rfs_node *c = parts[--np];
    buf[o++] = '/';
    memcpy(buf + o, c->name, c->namelen);
    o += c->namelen;
  }
  buf[o] = '\0';
}
