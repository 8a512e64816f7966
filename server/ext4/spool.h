/* The data spool: an unlinked temporary file that file contents are
 * appended to while layers are applied, then copied into the image once
 * its layout is known. Contents of files that a later layer replaces just
 * stay unused here. */
#ifndef VESSEL_SERVER_EXT4_SPOOL_H
#define VESSEL_SERVER_EXT4_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

typedef struct rfs_spool {
  int fd;
  uint64_t size; /* bytes appended, buffered ones included */
  char *buf;     /* write buffer: small files become one write per MiB */
  size_t buflen;
} rfs_spool;

/* Creates the spool in dir (O_TMPFILE, else a name unlinked at once). */
int rfs_spool_open(rfs_spool *s, const char *dir, vs_err *err);
/* Appends n bytes; *off receives their offset in the spool. */
int rfs_spool_append(rfs_spool *s, const void *p, size_t n, uint64_t *off,
                     vs_err *err);
/* Writes out the buffer; needed before reading the spool's fd. */
int rfs_spool_flush(rfs_spool *s, vs_err *err);
void rfs_spool_close(rfs_spool *s);

#endif
