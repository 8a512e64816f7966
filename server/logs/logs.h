/* logs: container output kept on disk as JSON lines, Docker json-file style
 * ({"log":"...\n","stream":"stdout","time":"2026-11-28T05:19:54.123456789Z"}),
 * written whether or not anybody is attached, rotated by size, and read
 * back with tail / since / follow. */
#ifndef VESSEL_SERVER_LOGS_LOGS_H
#define VESSEL_SERVER_LOGS_LOGS_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { LG_STDOUT = 1, LG_STDERR = 2 };

typedef struct lg_writer lg_writer;

/* A record holds one line, its '\n' included; a longer line is split
 * into records of this many bytes (cut between UTF-8 characters), all but
 * its last "partial" (not ending in '\n'). */
#define LG_LINE_MAX 16384

/* Rotation defaults (max_bytes / max_files of 0). */
#define LG_DEFAULT_MAX_BYTES (10 << 20)
#define LG_DEFAULT_MAX_FILES 3
/* Files lg_read reads at most: max_files above it are refused. */
#define LG_MAX_FILES 100

/* Appends to <dir>/container.log; when it passes max_bytes it becomes
 * container.log.1 (older ones shift, at most max_files files in all; a
 * file holds at least one record). */
lg_writer *lg_open(const char *dir, int64_t max_bytes, int max_files, vs_err *err);
/* Output of one stream, in chunks as it arrived: a record per completed
 * line (or LG_LINE_MAX bytes); the rest waits for more. Thread-safe. */
int lg_write(lg_writer *w, int stream, const void *data, size_t len, vs_err *err);
/* Writes what waits (output that ended without '\n': partial records). */
int lg_flush(lg_writer *w, vs_err *err);
/* Calls fn with what waits, per stream (for a replay that must not miss
 * it), without writing it. */
void lg_pending(lg_writer *w, void (*fn)(void *arg, int stream, const char *data, size_t len),
                void *arg);
/* Flushes and closes. */
void lg_close(lg_writer *w);
/* Also writes every record to path in the CRI's format
 * ("2016-10-06T00:17:09.669794202Z stdout F text", P for a partial line;
 * its directory made), from now on; NULL or "" stops. */
int lg_set_cri_path(lg_writer *w, const char *path, vs_err *err);
/* Opens that path again (kubelet renamed the file to rotate it). */
int lg_reopen_cri(lg_writer *w, vs_err *err);

typedef struct lg_entry {
  int stream;
  int partial; /* data does not end a line */
  int64_t time_ns;
  char *data;
  size_t len;
} lg_entry;

/* Records pass the filters (streams, since_ns, until_ns); tail then keeps
 * the last N of those, whichever rotated files they are in. */
typedef struct lg_read_opts {
  int64_t tail;     /* last N records (-1 = all) */
  int64_t since_ns; /* records at or after (0 = any) */
  int streams;      /* LG_STDOUT|LG_STDERR, 0 = both */
  int follow;       /* keep reading new records until cancel */
  int cancel_fd;    /* readable = stop following (-1 = none) */
  /* While following: stop once this returns non-zero and no more data
   * arrived (the container exited). May be NULL. */
  int (*done)(void *arg);
  void *done_arg;
  /* Records at or before (0 = any). Following stops at the first record
   * after it, or once the clock passes it. */
  int64_t until_ns;
} lg_read_opts;

/* Calls fn for each record in order, across rotated files; fn returning
 * non-zero stops. Returns 0, or -1 with err. */
int lg_read(const char *dir, const lg_read_opts *o, int (*fn)(void *arg, const lg_entry *e),
            void *arg, vs_err *err);

#ifdef __cplusplus
}
#endif
#endif
