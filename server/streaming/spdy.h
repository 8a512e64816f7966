/* SPDY/3.1 framing (the parts Kubernetes' streaming uses: SYN_STREAM,
 * SYN_REPLY, DATA with FIN, RST_STREAM, PING, GOAWAY; flow control is
 * not enforced, as in the Go peers) and its zlib-compressed header
 * blocks. Internal to server/streaming. */
#ifndef VESSEL_SERVER_STREAMING_SPDY_H
#define VESSEL_SERVER_STREAMING_SPDY_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  SPDY_SYN_STREAM = 1,
  SPDY_SYN_REPLY = 2,
  SPDY_RST_STREAM = 3,
  SPDY_SETTINGS = 4,
  SPDY_PING = 6,
  SPDY_GOAWAY = 7,
  SPDY_HEADERS = 8,
  SPDY_WINDOW_UPDATE = 9,
};
#define SPDY_FLAG_FIN 0x01
#define SPDY_MAX_FRAME (1u << 24)

typedef struct spdy_frame {
  int control; /* 1: control frame of `type`; 0: DATA of `stream` */
  int type, flags;
  uint32_t stream; /* DATA, and the control frames that name one */
  const uint8_t *payload;
  size_t len;
} spdy_frame;

/* One direction's header compression each way (SPDY keeps one zlib
 * stream per direction for the whole connection). */
#define SPDY_DICT_LEN 1423
typedef struct spdy_codec {
  z_stream in, out;
  int in_ok, out_ok;
  uint8_t dict[SPDY_DICT_LEN];
} spdy_codec;

#define SPDY_MAX_HEADERS 16
typedef struct spdy_headers {
  size_t n;
  char name[SPDY_MAX_HEADERS][64];
  char value[SPDY_MAX_HEADERS][256];
} spdy_headers;

/* Writes the SPDY/3 header dictionary (from the draft's definition);
 * returns its length. */
size_t spdy_dictionary(uint8_t out[SPDY_DICT_LEN]);

int spdy_codec_init(spdy_codec *c);
void spdy_codec_free(spdy_codec *c);

/* One frame from buf: its size, 0 if buf holds less than a frame, -1 when
 * it is not SPDY/3 (or larger than SPDY_MAX_FRAME). */
long spdy_parse(const uint8_t *buf, size_t n, spdy_frame *f);

/* The header block of a SYN_STREAM/SYN_REPLY/HEADERS payload, inflated
 * (every block must be, to keep the stream in step); names lowercased.
 * -1 on a corrupt block. */
int spdy_read_headers(spdy_codec *c, const spdy_frame *f, spdy_headers *h);
const char *spdy_header(const spdy_headers *h, const char *name);

/* An 8-byte DATA frame header. */
void spdy_data_header(uint8_t out[8], uint32_t stream, int flags, size_t len);
/* A control frame with a compressed header block of h (NULL: no pairs):
 * SYN_REPLY for stream (malloc'd into *out). */
int spdy_syn_reply(spdy_codec *c, uint32_t stream, const spdy_headers *h, uint8_t **out,
                   size_t *n);
/* An 8-byte control frame header. */
void spdy_control_header(uint8_t out[8], int type, int flags, size_t len);

#ifdef __cplusplus
}
#endif
#endif
