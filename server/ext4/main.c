/* vessel-rootfs: the rootfs builder from the command line (tests, the
 * benchmark, debugging).
 *
 *   vessel-rootfs create --layer L1 [--media-type T] --layer L2 ... \
 *       --out img.ext4 [--free-bytes N | --size-bytes N] [--free-inodes N]
 *       [--no-journal] [--label L] [--max-unpacked-bytes N]
 *       [--max-entries N] [--tmp-dir D]
 *   vessel-rootfs copy SRC DST      (writable copy: reflink or sparse)
 *
 * Sizes take K, M, G, T suffixes (powers of 1024). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/ext4/ext4.h"

static int usage(void) {
  fprintf(stderr,
          "usage: vessel-rootfs create --layer FILE [--media-type TYPE] ... --out IMAGE\n"
          "           [--free-bytes N | --size-bytes N] [--free-inodes N] [--no-journal]\n"
          "           [--label L] [--max-unpacked-bytes N] [--max-entries N] [--tmp-dir D]\n"
          "       vessel-rootfs copy SRC DST\n");
  return 2;
}

static int parse_size(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-') return -1;
  int shift = 0;
  switch (*end) {
    case 'T': case 't': shift += 10; /* fall through */
    case 'G': case 'g': shift += 10; /* fall through */
    case 'M': case 'm': shift += 10; /* fall through */
    case 'K': case 'k': shift += 10; end++; break;
    case '\0': break;
    default: return -1;
  }
  if (*end == 'i' || *end == 'B') end++;
  if (*end == 'B') end++;
  if (*end) return -1;
  if (shift && v > (~0ull >> shift)) return -1;
  *out = (unsigned long long)v << shift;
  return 0;
}

static int create(int argc, char **argv) {
  rfs_options o;
  rfs_options_init(&o);
  rfs_layer *layers = calloc((size_t)argc, sizeof *layers);
  size_t n = 0;
  const char *out = NULL;
  if (!layers) return 1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t *sz = NULL;
    if (!strcmp(a, "--no-journal")) {
      o.journal = 0;
      continue;
    }
    if (!v) {
      free(layers);
      return usage();
    }
    i++;
    if (!strcmp(a, "--layer")) {
      layers[n++].path = v;
    } else if (!strcmp(a, "--media-type") && n > 0) {
      layers[n - 1].media_type = v;
    } else if (!strcmp(a, "--out")) {
      out = v;
    } else if (!strcmp(a, "--label")) {
      o.label = v;
    } else if (!strcmp(a, "--tmp-dir")) {
      o.tmp_dir = v;
    } else if (!strcmp(a, "--free-bytes")) {
      sz = &o.free_bytes;
    } else if (!strcmp(a, "--size-bytes")) {
      sz = &o.size_bytes;
    } else if (!strcmp(a, "--free-inodes")) {
      sz = &o.free_inodes;
    } else if (!strcmp(a, "--max-unpacked-bytes")) {
      sz = &o.max_unpacked_bytes;
    } else if (!strcmp(a, "--max-entries")) {
      sz = &o.max_entries;
    } else {
      free(layers);
      return usage();
    }
    if (sz && parse_size(v, sz) < 0) {
      fprintf(stderr, "vessel-rootfs: bad size for %s: %s\n", a, v);
      free(layers);
      return 2;
    }
  }
  if (!out) {
    free(layers);
    return usage();
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  vs_err err = {0};
  rfs_result r;
  int rc = rfs_build(layers, n, out, &o, &r, &err);
  free(layers);
  if (rc < 0) {
    fprintf(stderr, "vessel-rootfs: %s: %s\n", vs_code_name(err.code), err.msg);
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("size_bytes=%llu data_bytes=%llu inodes=%llu entries=%llu seconds=%.3f\n",
         (unsigned long long)r.size_bytes, (unsigned long long)r.data_bytes,
         (unsigned long long)r.inodes, (unsigned long long)r.entries,
         (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "create")) return create(argc - 2, argv + 2);
  if (argc == 4 && !strcmp(argv[1], "copy")) {
    vs_err err = {0};
    if (rfs_copy_writable(argv[2], argv[3], &err) < 0) {
      fprintf(stderr, "vessel-rootfs: %s: %s\n", vs_code_name(err.code), err.msg);
      return 1;
    }
    return 0;
  }
  return usage();
}
