/* rootfs builder: turns the ordered layer blobs of an OCI image into an ext4
 * filesystem image, without root privileges, mounts or loop devices.
 *
 * Layers are applied with OCI semantics (whiteouts, opaque directories,
 * replacement across types, merged directories, hardlinks across layers)
 * into an in-memory tree whose file contents are spooled to a temporary
 * file; the tree is then written as ext4 with e2fsprogs' libext2fs (format,
 * bitmaps, journal, checksums) plus vessel's own packing of directories
 * (hashed b-trees for large ones), extent trees and inode contents.
 *
 * Hostile layers are contained: paths are resolved lexically and symlinks
 * in parent components are followed only inside the image root, so nothing
 * is ever written outside the output file. Malformed or over-limit input is
 * rejected with an error naming the layer and the entry.
 *
 * Prefix: rfs_ ("rootfs"). */
#ifndef VESSEL_SERVER_EXT4_EXT4_H
#define VESSEL_SERVER_EXT4_EXT4_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Compression of a layer blob. AUTO sniffs the magic bytes. */
typedef enum rfs_compression {
  RFS_COMPRESSION_AUTO = 0,
  RFS_COMPRESSION_NONE = 1,
  RFS_COMPRESSION_GZIP = 2,
  RFS_COMPRESSION_ZSTD = 3,
} rfs_compression;

/* One layer blob, in application order (base layer first). */
typedef struct rfs_layer {
  const char *path;       /* file holding the blob */
  const char *media_type; /* OCI/Docker layer media type, or NULL */
  /* Used when media_type is NULL or says nothing about compression. */
  rfs_compression compression;
  /* "sha256:<hex>" of the uncompressed layer (the image config's diff_id),
   * or NULL: a layer whose content hashes otherwise fails the build with
   * DATA_LOSS naming it. */
  const char *diff_id;
} rfs_layer;

/* Maps a layer media type to its compression; AUTO for NULL or unknown
 * types. Sets err (UNIMPLEMENTED) only for types vessel cannot unpack
 * (encrypted layers, foreign compressions) and then returns -1. */
int rfs_media_type_compression(const char *media_type, rfs_compression *out,
                               vs_err *err);

typedef struct rfs_options {
  /* Exact filesystem size, rounded up to 4 KiB; 0 = content + free_bytes.
   * Too small for the content: INVALID_ARGUMENT. */
  uint64_t size_bytes;
  /* Free space guaranteed beyond the content (size_bytes == 0 only). */
  uint64_t free_bytes;
  /* Free inodes guaranteed beyond the content; 0 = one per 16 KiB of
   * free space (mke2fs' ratio), at least 1024. */
  uint64_t free_inodes;
  /* Limits against decompression bombs and absurd archives. Exceeding one
   * fails with RESOURCE_EXHAUSTED. 0 = the default noted. */
  uint64_t max_unpacked_bytes; /* file data decompressed, all layers: 64 GiB */
  uint64_t max_entries;        /* archive entries, all layers: 10 million */
  /* Host disk the build may allocate for file data (blocks of zeros are
   * holes and cost none), all layers: 16 GiB. Past it: RESOURCE_EXHAUSTED
   * naming the layer. */
  uint64_t max_data_bytes;
  /* 1 = create a journal (ext4 default), 0 = none. */
  int journal;
  /* Filesystem UUID; all zero = random. */
  uint8_t uuid[16];
  /* Volume label (max 16 bytes), or NULL. */
  const char *label;
  /* Directory for the data spool; NULL = the output's directory. */
  const char *tmp_dir;
  /* Polled between entries; returning nonzero cancels with CANCELLED. */
  int (*cancelled)(void *arg);
  void *cancelled_arg;
} rfs_options;

/* Defaults: size 0, free 0, journal on, limits as noted above. */
void rfs_options_init(rfs_options *opts);

typedef struct rfs_result {
  uint64_t size_bytes;   /* filesystem image size */
  uint64_t data_bytes;   /* bytes of file data stored (holes excluded) */
  uint64_t inodes;       /* inodes used by the content */
  uint64_t entries;      /* archive entries read */
} rfs_result;

/* Builds the ext4 image of `layers` at out_path. The image is written to a
 * temporary file next to out_path and renamed into place when complete; on
 * any error nothing is left at out_path (an existing file there is only
 * replaced on success). `result` may be NULL. */
int rfs_build(const rfs_layer *layers, size_t nlayers, const char *out_path,
              const rfs_options *opts, rfs_result *result, vs_err *err);

/* Makes a private writable copy of a finished (cached, read-only) image:
 * a reflink when the filesystem supports it, else a sparse copy. The copy
 * is atomic like rfs_build's output. ALREADY_EXISTS if dst exists. */
int rfs_copy_writable(const char *src, const char *dst, vs_err *err);

/* The same into an open file that others (a QEMU) may hold: its content is
 * replaced by src's, in place (same inode). */
int rfs_copy_into(const char *src, int dst_fd, vs_err *err);

/* The other cheap writable copy: a qcow2 overlay whose backing file is
 * the cached image (qemu-img create -f qcow2 -b src -F raw dst). The VM
 * writes only to the overlay; src must stay in place, unmodified, for as
 * long as the overlay is used. ALREADY_EXISTS if dst exists. */
int rfs_create_overlay(const char *src, const char *dst, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
