#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "server/logs/logs.h"

namespace {

struct Got {
  std::vector<std::string> lines;
  std::vector<int> streams;
  std::vector<int64_t> times;
  std::vector<int> partial;
};

int Collect(void *arg, const lg_entry *e) {
  auto *g = static_cast<Got *>(arg);
  g->lines.emplace_back(e->data, e->len);
  g->streams.push_back(e->stream);
  g->times.push_back(e->time_ns);
  g->partial.push_back(e->partial);
  return 0;
}

class LogsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vsl-logs-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0); }
  Got Read(lg_read_opts o) {
    Got g;
    vs_err e;
    EXPECT_EQ(lg_read(dir_.c_str(), &o, Collect, &g, &e), 0);
    return g;
  }
  std::string dir_;
};

TEST_F(LogsTest, WriteReadTailStreamsSince) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 0, 0, &e);
  ASSERT_NE(w, nullptr);
  for (int i = 0; i < 10; i++) {
    std::string s = "line " + std::to_string(i) + "\n";
    ASSERT_EQ(lg_write(w, i % 2 ? LG_STDERR : LG_STDOUT, s.data(), s.size(), &e), 0);
  }
  const char bin[] = "\xff\xfe binary \"quoted\"";
  ASSERT_EQ(lg_write(w, LG_STDOUT, bin, sizeof bin - 1, &e), 0);
  lg_close(w);
  Got all = Read({-1, 0, 0, 0, -1, nullptr, nullptr});
  ASSERT_EQ(all.lines.size(), 11u);
  EXPECT_EQ(all.lines[3], "line 3\n");
  EXPECT_EQ(all.streams[3], LG_STDERR);
  EXPECT_NE(all.lines[10].find("binary \"quoted\""), std::string::npos);
  EXPECT_TRUE(all.partial[10]);  // written at close, without a newline
  EXPECT_FALSE(all.partial[3]);
  Got tail = Read({3, 0, 0, 0, -1, nullptr, nullptr});
  ASSERT_EQ(tail.lines.size(), 3u);
  EXPECT_EQ(tail.lines[0], "line 8\n");
  Got err_only = Read({-1, 0, LG_STDERR, 0, -1, nullptr, nullptr});
  EXPECT_EQ(err_only.lines.size(), 5u);
  Got since = Read({-1, all.times[5], 0, 0, -1, nullptr, nullptr});
  EXPECT_EQ(since.lines.front(), "line 5\n");
}

TEST_F(LogsTest, RotationKeepsOrderAndBoundsFiles) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 2000, 3, &e);
  for (int i = 0; i < 200; i++) {
    std::string s = "record " + std::to_string(i) + "\n";
    ASSERT_EQ(lg_write(w, LG_STDOUT, s.data(), s.size(), &e), 0);
  }
  lg_close(w);
  EXPECT_EQ(access((dir_ + "/container.log.2").c_str(), F_OK), 0);
  EXPECT_NE(access((dir_ + "/container.log.3").c_str(), F_OK), 0);
  Got g = Read({-1, 0, 0, 0, -1, nullptr, nullptr});
  ASSERT_GT(g.lines.size(), 10u);
  EXPECT_LT(g.lines.size(), 200u);  // old ones rotated away
  EXPECT_EQ(g.lines.back(), "record 199\n");
  for (size_t i = 1; i < g.lines.size(); i++)
    EXPECT_EQ(std::stoi(g.lines[i].substr(7)), std::stoi(g.lines[i - 1].substr(7)) + 1);
}

TEST_F(LogsTest, FollowSeesNewRecordsUntilCancelled) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 0, 0, &e);
  lg_write(w, LG_STDOUT, "before\n", 7, &e);
  int cancel = eventfd(0, EFD_CLOEXEC);
  std::thread t([&] {
    usleep(150000);
    lg_write(w, LG_STDOUT, "after\n", 6, &e);
    usleep(300000);
    uint64_t one = 1;
    ASSERT_EQ(write(cancel, &one, 8), 8);
  });
  Got g = Read({-1, 0, 0, 1, cancel, nullptr, nullptr});
  t.join();
  close(cancel);
  lg_close(w);
  ASSERT_EQ(g.lines.size(), 2u);
  EXPECT_EQ(g.lines[1], "after\n");
}

TEST_F(LogsTest, RecordsAreLinesWhateverTheChunks) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 0, 0, &e);
  // "one\ntwo\n" in chunks cut inside lines; stderr interleaved.
  for (const char *c : {"o", "ne\ntw", "o\nthr"}) ASSERT_EQ(lg_write(w, LG_STDOUT, c, strlen(c), &e), 0);
  ASSERT_EQ(lg_write(w, LG_STDERR, "err\n", 4, &e), 0);
  ASSERT_EQ(lg_write(w, LG_STDOUT, "ee\n", 3, &e), 0);
  // A 40,000-byte line: 16 KiB, 16 KiB, the rest (with its newline).
  std::string big(40000, 'x');
  big += "\n";
  for (size_t off = 0; off < big.size(); off += 8192)
    ASSERT_EQ(lg_write(w, LG_STDOUT, big.data() + off, std::min<size_t>(8192, big.size() - off), &e), 0);
  ASSERT_EQ(lg_write(w, LG_STDOUT, "no newline", 10, &e), 0);
  ASSERT_EQ(lg_flush(w, &e), 0);
  lg_close(w);
  Got g = Read({-1, 0, 0, 0, -1, nullptr, nullptr});
  ASSERT_EQ(g.lines.size(), 8u);
  EXPECT_EQ(g.lines[0], "one\n");
  EXPECT_EQ(g.lines[1], "two\n");
  EXPECT_EQ(g.lines[2], "err\n");
  EXPECT_EQ(g.streams[2], LG_STDERR);
  EXPECT_EQ(g.lines[3], "three\n");
  EXPECT_EQ(g.lines[4].size(), (size_t)LG_LINE_MAX);
  EXPECT_EQ(g.lines[5].size(), (size_t)LG_LINE_MAX);
  EXPECT_EQ(g.lines[6].size(), 40001u - 2 * LG_LINE_MAX);
  EXPECT_EQ(g.lines[7], "no newline");
  std::vector<int> want = {0, 0, 0, 0, 1, 1, 0, 1};
  EXPECT_EQ(g.partial, want);
}

TEST_F(LogsTest, LongLinesAreCutBetweenUtf8Characters) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 0, 0, &e);
  // "é" (2 bytes) after an odd number of ASCII bytes: a cut at 16384
  // bytes would split one.
  std::string line(1, 'a');
  while (line.size() < 3 * LG_LINE_MAX) line += "\xc3\xa9";
  line += "\n";
  ASSERT_EQ(lg_write(w, LG_STDOUT, line.data(), line.size(), &e), 0);
  lg_close(w);
  Got g = Read({-1, 0, 0, 0, -1, nullptr, nullptr});
  ASSERT_GE(g.lines.size(), 3u);
  std::string joined;
  for (auto &l : g.lines) {
    EXPECT_LE(l.size(), (size_t)LG_LINE_MAX);
    joined += l;
  }
  EXPECT_EQ(joined, line);  // no U+FFFD: every record valid UTF-8
}

TEST_F(LogsTest, PendingShowsTheUnendedLine) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 0, 0, &e);
  ASSERT_EQ(lg_write(w, LG_STDOUT, "done\nprompt> ", 13, &e), 0);
  std::string seen;
  lg_pending(w, [](void *arg, int, const char *d, size_t n) {
    static_cast<std::string *>(arg)->append(d, n);
  }, &seen);
  EXPECT_EQ(seen, "prompt> ");
  EXPECT_EQ(Read({-1, 0, 0, 0, -1, nullptr, nullptr}).lines.size(), 1u);
  lg_close(w);
}

TEST_F(LogsTest, CriFormatMirrorAndReopen) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 0, 0, &e);
  ASSERT_NE(w, nullptr) << e.msg;
  std::string cri = dir_ + "/pods/ctr/0.log";  // its directory is made
  ASSERT_EQ(lg_set_cri_path(w, cri.c_str(), &e), 0) << e.msg;
  ASSERT_EQ(lg_write(w, LG_STDOUT, "one\ntw", 6, &e), 0);
  ASSERT_EQ(lg_write(w, LG_STDERR, "oops\n", 5, &e), 0);
  ASSERT_EQ(lg_flush(w, &e), 0);  // "tw" ended without a newline: partial
  auto lines = [](const std::string &path) {
    std::vector<std::string> v;
    FILE *f = fopen(path.c_str(), "r");
    char buf[256];
    while (f && fgets(buf, sizeof buf, f)) v.emplace_back(buf);
    if (f) fclose(f);
    return v;
  };
  auto v = lines(cri);
  ASSERT_EQ(v.size(), 3u);
  // 2016-10-06T00:17:09.669794202Z stdout F text
  EXPECT_EQ(v[0].size(), 30 + std::string(" stdout F one\n").size()) << v[0];
  EXPECT_EQ(v[0][4], '-');
  EXPECT_EQ(v[0][29], 'Z');
  EXPECT_EQ(v[0].substr(30), " stdout F one\n");
  EXPECT_EQ(v[1].substr(30), " stderr F oops\n");
  EXPECT_EQ(v[2].substr(30), " stdout P tw\n");
  // kubelet's rotation: the file renamed, then reopened at the path.
  ASSERT_EQ(rename(cri.c_str(), (cri + ".1").c_str()), 0);
  ASSERT_EQ(lg_reopen_cri(w, &e), 0) << e.msg;
  ASSERT_EQ(lg_write(w, LG_STDOUT, "after\n", 6, &e), 0);
  v = lines(cri);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].substr(30), " stdout F after\n");
  EXPECT_EQ(lines(cri + ".1").size(), 3u);
  // The JSON log has every record too.
  EXPECT_EQ(Read({-1, 0, 0, 0, -1, nullptr, nullptr}).lines.size(), 4u);
  lg_close(w);
}

}  // namespace
