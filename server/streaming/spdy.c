/* SPDY/3.1 frames and header blocks (see spdy.h). */
#include "server/streaming/spdy.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* The draft defines the dictionary as these names and values, each after
 * its 4-byte big-endian length, followed by one unprefixed string. */
static const char *const dict_words[] = {
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
    "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
    "if-range", "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after", "server", "te",
    "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
    "public", "set-cookie", "keep-alive", "origin"};
static const char dict_tail[] =
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
    "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
    "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
    "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/"
    "xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,"
    "sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

static void put32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t spdy_dictionary(uint8_t dict[SPDY_DICT_LEN]) {
  size_t o = 0;
  for (size_t i = 0; i < sizeof dict_words / sizeof *dict_words; i++) {
    size_t n = strlen(dict_words[i]);
    put32(dict + o, (uint32_t)n);
    memcpy(dict + o + 4, dict_words[i], n);
    o += 4 + n;
  }
  memcpy(dict + o, dict_tail, sizeof dict_tail - 1);
  return o + sizeof dict_tail - 1;
}

int spdy_codec_init(spdy_codec *c) {
  memset(c, 0, sizeof *c);
  size_t n = spdy_dictionary(c->dict);
  if (inflateInit(&c->in) != Z_OK) return -1;
  c->in_ok = 1;
  if (deflateInit(&c->out, Z_DEFAULT_COMPRESSION) != Z_OK ||
      deflateSetDictionary(&c->out, c->dict, (uInt)n) != Z_OK) {
    spdy_codec_free(c);
    return -1;
  }
  c->out_ok = 1;
  return 0;
}

void spdy_codec_free(spdy_codec *c) {
  if (c->in_ok) inflateEnd(&c->in);
  if (c->out_ok) deflateEnd(&c->out);
  c->in_ok = c->out_ok = 0;
}

long spdy_parse(const uint8_t *buf, size_t n, spdy_frame *f) {
  if (n < 8) return 0;
  size_t len = (size_t)buf[5] << 16 | (size_t)buf[6] << 8 | buf[7];
  memset(f, 0, sizeof *f);
  f->control = buf[0] >> 7;
  f->flags = buf[4];
  if (f->control) {
    if ((((buf[0] & 0x7f) << 8) | buf[1]) != 3) return -1;
    f->type = buf[2] << 8 | buf[3];
  } else {
    f->stream = get32(buf) & 0x7fffffff;
  }
  if (len >= SPDY_MAX_FRAME) return -1;
  if (n < 8 + len) return 0;
  f->payload = buf + 8;
  f->len = len;
  if (f->control && f->type != SPDY_SETTINGS && f->type != SPDY_PING && f->type != SPDY_GOAWAY) {
    if (len < 4) return -1;
    f->stream = get32(f->payload) & 0x7fffffff;
  }
  return (long)(8 + len);
}

int spdy_read_headers(spdy_codec *c, const spdy_frame *f, spdy_headers *h) {
  size_t skip = f->type == SPDY_SYN_STREAM ? 10 : 4;
  memset(h, 0, sizeof *h);
  if (f->len < skip) return -1;
  /* Inflate to at most 64 KiB (headers are small; a bomb is refused). */
  size_t cap = 64 << 10, got = 0;
  uint8_t *out = malloc(cap);
  if (!out) return -1;
  c->in.next_in = (Bytef *)f->payload + skip;
  c->in.avail_in = (uInt)(f->len - skip);
  int rc = 0;
  while (c->in.avail_in > 0 && rc == 0) {
    c->in.next_out = out + got;
    c->in.avail_out = (uInt)(cap - got);
    int z = inflate(&c->in, Z_SYNC_FLUSH);
    got = cap - c->in.avail_out;
    if (z == Z_NEED_DICT) {
      if (inflateSetDictionary(&c->in, c->dict, SPDY_DICT_LEN) != Z_OK) rc = -1;
    } else if (z == Z_BUF_ERROR && c->in.avail_out == 0) {
      rc = -1;
    } else if (z != Z_OK && z != Z_BUF_ERROR) {
      rc = -1;
    }
  }
  /* pairs: count, then (length, name, length, value) */
  size_t o = 4;
  uint32_t count = got >= 4 && rc == 0 ? get32(out) : 0;
  if (got < 4) rc = -1;
  for (uint32_t i = 0; rc == 0 && i < count; i++) {
    size_t nl, vl;
    if (o + 4 > got || (nl = get32(out + o)) > got - o - 4) { rc = -1; break; }
    const uint8_t *name = out + o + 4;
    o += 4 + nl;
    if (o + 4 > got || (vl = get32(out + o)) > got - o - 4) { rc = -1; break; }
    const uint8_t *value = out + o + 4;
    o += 4 + vl;
    if (h->n == SPDY_MAX_HEADERS || nl >= sizeof h->name[0] || vl >= sizeof h->value[0])
      continue; /* headers this server has no use for */
    for (size_t k = 0; k < nl; k++) h->name[h->n][k] = (char)tolower(name[k]);
    memcpy(h->value[h->n], value, vl);
    h->n++;
  }
  free(out);
  return rc;
}

const char *spdy_header(const spdy_headers *h, const char *name) {
  for (size_t i = 0; i < h->n; i++)
    if (!strcmp(h->name[i], name)) return h->value[i];
  return NULL;
}

void spdy_data_header(uint8_t out[8], uint32_t stream, int flags, size_t len) {
  put32(out, stream & 0x7fffffff);
  put32(out + 4, (uint32_t)len);
  out[4] = (uint8_t)flags;
}

void spdy_control_header(uint8_t out[8], int type, int flags, size_t len) {
  out[0] = 0x80;
  out[1] = 3;
  out[2] = (uint8_t)(type >> 8);
  out[3] = (uint8_t)type;
  put32(out + 4, (uint32_t)len);
  out[4] = (uint8_t)flags;
}

int spdy_syn_reply(spdy_codec *c, uint32_t stream, const spdy_headers *h, uint8_t **out,
                   size_t *n) {
  /* the uncompressed block */
  size_t blen = 4;
  for (size_t i = 0; h && i < h->n; i++) blen += 8 + strlen(h->name[i]) + strlen(h->value[i]);
  uint8_t *block = malloc(blen);
  size_t cap = 12 + blen + blen / 100 + 64;
  uint8_t *f = malloc(cap);
  if (!block || !f) {
    free(block);
    free(f);
    return -1;
  }
  put32(block, h ? (uint32_t)h->n : 0);
  size_t o = 4;
  for (size_t i = 0; h && i < h->n; i++) {
    size_t nl = strlen(h->name[i]), vl = strlen(h->value[i]);
    put32(block + o, (uint32_t)nl);
    memcpy(block + o + 4, h->name[i], nl);
    o += 4 + nl;
    put32(block + o, (uint32_t)vl);
    memcpy(block + o + 4, h->value[i], vl);
    o += 4 + vl;
  }
  c->out.next_in = block;
  c->out.avail_in = (uInt)blen;
  c->out.next_out = f + 12;
  c->out.avail_out = (uInt)(cap - 12);
  int z = deflate(&c->out, Z_SYNC_FLUSH);
  free(block);
  if (z != Z_OK || c->out.avail_in) {
    free(f);
    return -1;
  }
  size_t len = cap - 12 - c->out.avail_out + 4;
  spdy_control_header(f, SPDY_SYN_REPLY, 0, len);
  put32(f + 8, stream & 0x7fffffff);
  *out = f;
  *n = 8 + len;
  return 0;
}
