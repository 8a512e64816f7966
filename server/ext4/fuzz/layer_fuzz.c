/* libFuzzer target for the layer applier (and the writer behind it).
 *
 * The input is split into up to four layers at the separator "\nVSL\n";
 * each is read by libarchive from memory (any compression it detects) and
 * applied in order. When every layer applies, the tree is written as an
 * ext4 image to an unlinked temporary file, so names, xattrs, hardlinks
 * and sizes from hostile archives reach the writer too. Errors are fine;
 * crashes, leaks, sanitizer reports and writes outside the temp dir are
 * not. Built and run by run.sh (clang), replayed by //server/ext4:fuzz_replay_test. */
#include <archive.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/ext4/apply.h"
#include "server/ext4/writer.h"

static const char *tmpdir(void) {
  const char *t = getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *parts[4];
  size_t lens[4], n = 0;
  const uint8_t *p = data, *end = data + size;
  while (n < 3) {
    const uint8_t *s = memmem(p, (size_t)(end - p), "\nVSL\n", 5);
    if (!s) break;
    parts[n] = p;
    lens[n++] = (size_t)(s - p);
    p = s + 5;
  }
  parts[n] = p;
  lens[n++] = (size_t)(end - p);

  vs_err err = {0};
  rfs_tree tree;
  rfs_spool spool;
  if (rfs_tree_init(&tree, &err) < 0) return 0;
  if (rfs_spool_open(&spool, tmpdir(), &err) < 0) {
    rfs_tree_free(&tree);
    return 0;
  }
  rfs_applier ap = {0};
  ap.tree = &tree;
  ap.spool = &spool;
  ap.max_unpacked = 64 << 20;
  ap.max_data = 64 << 20;
  ap.max_entries = 100000;
  int ok = 1;
  for (size_t i = 0; i < n && ok; i++) {
    struct archive *a;
    if (rfs_archive_reader(&a, RFS_COMPRESSION_AUTO, &err) < 0) break;
    if (archive_read_open_memory(a, parts[i], lens[i]) != ARCHIVE_OK ||
        rfs_apply_archive(&ap, a, (uint32_t)(i + 1), "fuzz", &err) < 0)
      ok = 0;
    archive_read_free(a);
  }
  if (ok) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fuzz-img-XXXXXX", tmpdir());
    int fd = mkstemp(path);
    if (fd >= 0) {
      rfs_options o;
      rfs_options_init(&o);
      o.journal = 0;
      o.free_bytes = 0;
      o.free_inodes = 16;
      rfs_result r;
      rfs_write_image(&tree, &spool, fd, path, &o, &r, &err);
      close(fd);
      unlink(path);
    }
  }
  rfs_spool_close(&spool);
  rfs_tree_free(&tree);
  return 0;
}
