// SPDY/3.1 frames and header blocks, against a zlib peer set up as the
// Go peers (spdystream) set up theirs.
#include "server/streaming/spdy.h"

#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <string>
#include <vector>

namespace {

std::string hex(const unsigned char *p, size_t n) {
  std::string s;
  char b[3];
  for (size_t i = 0; i < n; i++) {
    snprintf(b, sizeof b, "%02x", p[i]);
    s += b;
  }
  return s;
}

void put32(std::vector<uint8_t> &v, uint32_t x) {
  v.push_back(x >> 24);
  v.push_back(x >> 16);
  v.push_back(x >> 8);
  v.push_back(x);
}

// A peer's compressor: one zlib stream with the dictionary, each block
// ending in a sync flush.
struct Peer {
  z_stream out{}, in{};
  uint8_t dict[SPDY_DICT_LEN];
  Peer() {
    spdy_dictionary(dict);
    deflateInit(&out, Z_BEST_COMPRESSION);
    deflateSetDictionary(&out, dict, SPDY_DICT_LEN);
    inflateInit(&in);
  }
  ~Peer() {
    deflateEnd(&out);
    inflateEnd(&in);
  }
  std::vector<uint8_t> compress(const std::vector<std::pair<std::string, std::string>> &h) {
    std::vector<uint8_t> raw;
    put32(raw, h.size());
    for (auto &kv : h) {
      put32(raw, kv.first.size());
      raw.insert(raw.end(), kv.first.begin(), kv.first.end());
      put32(raw, kv.second.size());
      raw.insert(raw.end(), kv.second.begin(), kv.second.end());
    }
    std::vector<uint8_t> z(raw.size() + 128);
    out.next_in = raw.data();
    out.avail_in = raw.size();
    out.next_out = z.data();
    out.avail_out = z.size();
    EXPECT_EQ(deflate(&out, Z_SYNC_FLUSH), Z_OK);
    z.resize(z.size() - out.avail_out);
    return z;
  }
  std::vector<uint8_t> syn_stream(uint32_t id, const std::vector<std::pair<std::string, std::string>> &h) {
    std::vector<uint8_t> block = compress(h), f(8);
    put32(f, id);
    put32(f, 0);
    f.push_back(0);
    f.push_back(0);
    f.insert(f.end(), block.begin(), block.end());
    spdy_control_header(f.data(), SPDY_SYN_STREAM, 0, f.size() - 8);
    return f;
  }
  // Inflates a block the server compressed; the number of pairs.
  int pairs(const uint8_t *p, size_t n) {
    uint8_t buf[4096];
    in.next_in = const_cast<uint8_t *>(p);
    in.avail_in = n;
    in.next_out = buf;
    in.avail_out = sizeof buf;
    int z = inflate(&in, Z_SYNC_FLUSH);
    if (z == Z_NEED_DICT) {
      inflateSetDictionary(&in, dict, SPDY_DICT_LEN);
      z = inflate(&in, Z_SYNC_FLUSH);
    }
    if (z != Z_OK || sizeof buf - in.avail_out < 4) return -1;
    return buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3];
  }
};

TEST(Spdy, DictionaryIsTheDraftsBytes) {
  uint8_t d[SPDY_DICT_LEN];
  ASSERT_EQ(spdy_dictionary(d), (size_t)SPDY_DICT_LEN);
  unsigned char sha[SHA256_DIGEST_LENGTH];
  SHA256(d, sizeof d, sha);
  // SHA-256 of the dictionary as the SPDY/3 draft lists it
  EXPECT_EQ(hex(sha, sizeof sha), "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02");
}

TEST(Spdy, ReadsHeadersOfSuccessiveFrames) {
  spdy_codec c;
  ASSERT_EQ(spdy_codec_init(&c), 0);
  Peer p;
  // Two frames back to back: the second's block depends on the first's
  // (one zlib stream per direction).
  std::vector<uint8_t> buf = p.syn_stream(1, {{"streamtype", "error"}, {"port", "80"}});
  std::vector<uint8_t> f2 = p.syn_stream(3, {{"streamtype", "data"}, {"port", "80"}, {"requestid", "0"}});
  buf.insert(buf.end(), f2.begin(), f2.end());
  spdy_frame f;
  long n = spdy_parse(buf.data(), buf.size(), &f);
  ASSERT_GT(n, 0);
  EXPECT_TRUE(f.control);
  EXPECT_EQ(f.type, SPDY_SYN_STREAM);
  EXPECT_EQ(f.stream, 1u);
  spdy_headers h;
  ASSERT_EQ(spdy_read_headers(&c, &f, &h), 0);
  EXPECT_STREQ(spdy_header(&h, "streamtype"), "error");
  ASSERT_EQ(spdy_parse(buf.data() + n, buf.size() - n, &f), (long)(buf.size() - n));
  EXPECT_EQ(f.stream, 3u);
  ASSERT_EQ(spdy_read_headers(&c, &f, &h), 0);
  EXPECT_STREQ(spdy_header(&h, "streamtype"), "data");
  EXPECT_STREQ(spdy_header(&h, "requestid"), "0");
  EXPECT_EQ(spdy_header(&h, "missing"), nullptr);
  spdy_codec_free(&c);
}

TEST(Spdy, RepliesThePeerCanRead) {
  spdy_codec c;
  ASSERT_EQ(spdy_codec_init(&c), 0);
  Peer p;
  for (uint32_t id : {1u, 3u, 5u}) {  // successive blocks share the stream
    uint8_t *f;
    size_t n;
    ASSERT_EQ(spdy_syn_reply(&c, id, nullptr, &f, &n), 0);
    spdy_frame fr;
    ASSERT_EQ(spdy_parse(f, n, &fr), (long)n);
    EXPECT_EQ(fr.type, SPDY_SYN_REPLY);
    EXPECT_EQ(fr.stream, id);
    EXPECT_EQ(p.pairs(fr.payload + 4, fr.len - 4), 0);
    free(f);
  }
  spdy_codec_free(&c);
}

TEST(Spdy, DataFramesAndIncompleteOrForeignInput) {
  uint8_t f[8 + 5];
  spdy_data_header(f, 7, SPDY_FLAG_FIN, 5);
  memcpy(f + 8, "hello", 5);
  spdy_frame fr;
  EXPECT_EQ(spdy_parse(f, 12, &fr), 0);  // a byte short
  ASSERT_EQ(spdy_parse(f, sizeof f, &fr), (long)sizeof f);
  EXPECT_FALSE(fr.control);
  EXPECT_EQ(fr.stream, 7u);
  EXPECT_EQ(fr.flags, SPDY_FLAG_FIN);
  EXPECT_EQ(std::string((const char *)fr.payload, fr.len), "hello");
  uint8_t v2[8] = {0x80, 2, 0, 1, 0, 0, 0, 0};  // SPDY/2
  EXPECT_EQ(spdy_parse(v2, sizeof v2, &fr), -1);
  const char *http = "GET / HTTP/1.1\r\n";  // not SPDY at all: a huge "frame"
  EXPECT_EQ(spdy_parse((const uint8_t *)http, 16, &fr), 0);
}

TEST(Spdy, RefusesCorruptAndOversizedBlocks) {
  spdy_codec c;
  ASSERT_EQ(spdy_codec_init(&c), 0);
  std::vector<uint8_t> f(8);
  put32(f, 1);
  put32(f, 0);
  f.push_back(0);
  f.push_back(0);
  for (int i = 0; i < 20; i++) f.push_back(0xff);  // not zlib
  spdy_control_header(f.data(), SPDY_SYN_STREAM, 0, f.size() - 8);
  spdy_frame fr;
  ASSERT_GT(spdy_parse(f.data(), f.size(), &fr), 0);
  spdy_headers h;
  EXPECT_EQ(spdy_read_headers(&c, &fr, &h), -1);
  spdy_codec_free(&c);

  // A block that inflates past 64 KiB (a compression bomb) is refused.
  ASSERT_EQ(spdy_codec_init(&c), 0);
  Peer p;
  std::string big(200000, 'a');
  std::vector<uint8_t> bomb = p.syn_stream(1, {{"x", big}});
  ASSERT_GT(spdy_parse(bomb.data(), bomb.size(), &fr), 0);
  EXPECT_EQ(spdy_read_headers(&c, &fr, &h), -1);
  spdy_codec_free(&c);
}

}  // namespace
