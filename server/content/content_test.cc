#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include "server/content/content.h"
#include "server/oci/oci.h"

namespace {

class ContentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vsl-cs-XXXXXX";
    dir_ = mkdtemp(tmpl);
    vs_err e;
    cs_ = cs_open((dir_ + "/content").c_str(), &e);
    ASSERT_NE(cs_, nullptr) << e.msg;
  }
  void TearDown() override {
    cs_close(cs_);
    ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0);
  }
  static std::string Digest(const std::string &s) {
    char d[72];
    oci_sha256_bytes(s.data(), s.size(), d);
    return d;
  }
  std::string dir_;
  cs_store *cs_ = nullptr;
};

TEST_F(ContentTest, PutAndReadVerified) {
  vs_err e;
  char d[72];
  ASSERT_EQ(cs_put(cs_, "hello", 5, nullptr, d, &e), 0);
  EXPECT_EQ(std::string(d), Digest("hello"));
  int64_t size = 0;
  EXPECT_EQ(cs_exists(cs_, d, &size), 1);
  EXPECT_EQ(size, 5);
  char *data;
  size_t len;
  ASSERT_EQ(cs_read(cs_, d, 100, &data, &len, &e), 0);
  EXPECT_EQ(std::string(data, len), "hello");
  free(data);
  EXPECT_EQ(cs_read(cs_, d, 4, &data, &len, &e), -1);  // over the limit
  EXPECT_EQ(e.code, VS_RESOURCE_EXHAUSTED);
}

TEST_F(ContentTest, PutWithWrongDigestStoresNothing) {
  vs_err e;
  std::string other = Digest("other");
  EXPECT_EQ(cs_put(cs_, "hello", 5, other.c_str(), nullptr, &e), -1);
  EXPECT_EQ(e.code, VS_DATA_LOSS);
  EXPECT_EQ(cs_exists(cs_, other.c_str(), nullptr), 0);
  EXPECT_EQ(cs_exists(cs_, Digest("hello").c_str(), nullptr), 0);
}

TEST_F(ContentTest, CorruptionOnDiskIsDetected) {
  vs_err e;
  char d[72], path[4200];
  ASSERT_EQ(cs_put(cs_, "hello", 5, nullptr, d, &e), 0);
  cs_blob_path(cs_, d, path, sizeof path);
  std::ofstream(path) << "jello";
  char *data;
  size_t len;
  EXPECT_EQ(cs_read(cs_, d, 100, &data, &len, &e), -1);
  EXPECT_EQ(e.code, VS_DATA_LOSS);
}

TEST_F(ContentTest, IngestResumesAfterInterruption) {
  std::string blob(100000, 'x');
  for (size_t i = 0; i < blob.size(); i++) blob[i] = (char)(i * 7);
  std::string d = Digest(blob);
  vs_err e;
  cs_writer *w;
  ASSERT_EQ(cs_writer_open(cs_, d.c_str(), (int64_t)blob.size(), &w, &e), 0);
  ASSERT_EQ(cs_writer_write(w, blob.data(), 40000, &e), 0);
  cs_writer_abort(w, 1);  // e.g. the connection dropped
  EXPECT_EQ(cs_exists(cs_, d.c_str(), nullptr), 0);

  ASSERT_EQ(cs_writer_open(cs_, d.c_str(), (int64_t)blob.size(), &w, &e), 0);
  EXPECT_EQ(cs_writer_offset(w), 40000);
  ASSERT_EQ(cs_writer_write(w, blob.data() + 40000, blob.size() - 40000, &e), 0);
  ASSERT_EQ(cs_writer_commit(w, &e), 0) << e.msg;
  EXPECT_EQ(cs_exists(cs_, d.c_str(), nullptr), 1);
  // A second ingest finds it.
  EXPECT_EQ(cs_writer_open(cs_, d.c_str(), (int64_t)blob.size(), &w, &e), 1);
}

// Small pieces are gathered before they are written; big ones go straight
// through; both land in order, and a restart drops what was gathered.
TEST_F(ContentTest, SmallAndBigPiecesLandInOrder) {
  std::string blob(6 << 20, '\0');
  for (size_t i = 0; i < blob.size(); i++) blob[i] = (char)(i * 31 + (i >> 12));
  std::string d = Digest(blob);
  vs_err e;
  cs_writer *w;
  ASSERT_EQ(cs_writer_open(cs_, d.c_str(), (int64_t)blob.size(), &w, &e), 0);
  ASSERT_EQ(cs_writer_write(w, "junk", 4, &e), 0);
  ASSERT_EQ(cs_writer_restart(w, &e), 0);
  size_t off = 0;
  for (; off < (3u << 20) + 100; off += 16384)
    ASSERT_EQ(cs_writer_write(w, blob.data() + off, 16384, &e), 0);
  ASSERT_EQ(cs_writer_write(w, blob.data() + off, 2 << 20, &e), 0);  // bigger than the buffer
  off += 2 << 20;
  ASSERT_EQ(cs_writer_write(w, blob.data() + off, blob.size() - off, &e), 0);
  EXPECT_EQ(cs_writer_offset(w), (int64_t)blob.size());
  ASSERT_EQ(cs_writer_commit(w, &e), 0) << e.msg;
  ASSERT_EQ(cs_sync(cs_, &e), 0);
  char path[4200];
  cs_blob_path(cs_, d.c_str(), path, sizeof path);
  std::ifstream f(path, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(got == blob);
}

TEST_F(ContentTest, MismatchIsDataLossAndNothingVisible) {
  std::string d = Digest("expected");
  vs_err e;
  cs_writer *w;
  ASSERT_EQ(cs_writer_open(cs_, d.c_str(), 8, &w, &e), 0);
  ASSERT_EQ(cs_writer_write(w, "tampered", 8, &e), 0);
  EXPECT_EQ(cs_writer_commit(w, &e), -1);
  EXPECT_EQ(e.code, VS_DATA_LOSS);
  EXPECT_EQ(cs_exists(cs_, d.c_str(), nullptr), 0);
  // The bad bytes are not resumed.
  ASSERT_EQ(cs_writer_open(cs_, d.c_str(), 8, &w, &e), 0);
  EXPECT_EQ(cs_writer_offset(w), 0);
  cs_writer_abort(w, 0);
}

TEST_F(ContentTest, OversizedSourceIsRefused) {
  std::string d = Digest("abc");
  vs_err e;
  cs_writer *w;
  ASSERT_EQ(cs_writer_open(cs_, d.c_str(), 3, &w, &e), 0);
  EXPECT_EQ(cs_writer_write(w, "abcd", 4, &e), -1);
  EXPECT_EQ(e.code, VS_DATA_LOSS);
  cs_writer_abort(w, 0);
  EXPECT_EQ(cs_writer_open(cs_, "sha256:nothex", 3, &w, &e), -1);
  EXPECT_EQ(e.code, VS_INVALID_ARGUMENT);
}

TEST_F(ContentTest, ConcurrentIngestsOfOneDigestWriteOnce) {
  std::string blob = "shared layer";
  std::string d = Digest(blob);
  vs_err e;
  cs_writer *w;
  ASSERT_EQ(cs_writer_open(cs_, d.c_str(), (int64_t)blob.size(), &w, &e), 0);
  std::atomic<int> second{-2};
  std::thread t([&] {
    vs_err e2;
    cs_writer *w2 = nullptr;
    second = cs_writer_open(cs_, d.c_str(), (int64_t)blob.size(), &w2, &e2);
    if (w2) cs_writer_abort(w2, 1);
  });
  usleep(200000);
  EXPECT_EQ(second.load(), -2);  // still waiting for the first ingest
  ASSERT_EQ(cs_writer_write(w, blob.data(), blob.size(), &e), 0);
  ASSERT_EQ(cs_writer_commit(w, &e), 0);
  t.join();
  EXPECT_EQ(second.load(), 1);  // found the blob instead of downloading again
}

TEST_F(ContentTest, WalkAndDelete) {
  vs_err e;
  char a[72], b[72];
  cs_put(cs_, "a", 1, nullptr, a, &e);
  cs_put(cs_, "bb", 2, nullptr, b, &e);
  int64_t total = 0;
  cs_walk(cs_, [](const char *, int64_t size, void *arg) {
    *static_cast<int64_t *>(arg) += size;
    return 0;
  }, &total);
  EXPECT_EQ(total, 3);
  ASSERT_EQ(cs_delete(cs_, a, &e), 0);
  EXPECT_EQ(cs_exists(cs_, a, nullptr), 0);
  EXPECT_EQ(cs_exists(cs_, b, nullptr), 1);
}

TEST_F(ContentTest, LeftoverTempFilesAreCleanedOnOpen) {
  std::string tmp = dir_ + "/content/ingest/deadbeef.123.tmp";
  std::ofstream(tmp) << "junk";
  cs_close(cs_);
  vs_err e;
  cs_ = cs_open((dir_ + "/content").c_str(), &e);
  EXPECT_NE(access(tmp.c_str(), F_OK), 0);
}

TEST_F(ContentTest, PartialsNobodyOwnsAreReclaimedLiveOnesKept) {
  vs_err e;
  std::string live = Digest("live blob"), dead = Digest("dead blob");
  cs_writer *w;
  ASSERT_EQ(cs_writer_open(cs_, live.c_str(), 9, &w, &e), 0);
  ASSERT_EQ(cs_writer_write(w, "live", 4, &e), 0);
  std::string stray = dir_ + "/content/ingest/" + dead.substr(7) + ".partial";
  std::ofstream(stray) << "dead";
  int64_t bytes = 0;
  EXPECT_EQ(cs_reclaim_partials(cs_, &bytes), 1);
  EXPECT_GT(bytes, 0);
  EXPECT_NE(access(stray.c_str(), F_OK), 0);
  std::string mine = dir_ + "/content/ingest/" + live.substr(7) + ".partial";
  EXPECT_EQ(access(mine.c_str(), F_OK), 0);  // locked by w: kept
  ASSERT_EQ(cs_writer_write(w, " blob", 5, &e), 0);
  ASSERT_EQ(cs_writer_commit(w, &e), 0) << e.msg;
  // A partial left by a dead vesseld goes when the store opens again.
  std::ofstream(stray) << "dead";
  cs_close(cs_);
  cs_ = cs_open((dir_ + "/content").c_str(), &e);
  EXPECT_NE(access(stray.c_str(), F_OK), 0);
}

TEST_F(ContentTest, AnAbortedEmptyIngestLeavesNoPartial) {
  vs_err e;
  std::string d = Digest("never written");
  cs_writer *w;
  ASSERT_EQ(cs_writer_open(cs_, d.c_str(), 13, &w, &e), 0);
  cs_writer_abort(w, 1);  // "keep for a resume", but there is nothing
  EXPECT_NE(access((dir_ + "/content/ingest/" + d.substr(7) + ".partial").c_str(), F_OK), 0);
}

}  // namespace
