#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string.h>
#include <time.h>

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
  Got all = Read({-1, 0, 0, 0, -1, nullptr, nullptr, 0});
  ASSERT_EQ(all.lines.size(), 11u);
  EXPECT_EQ(all.lines[3], "line 3\n");
  EXPECT_EQ(all.streams[3], LG_STDERR);
  EXPECT_NE(all.lines[10].find("binary \"quoted\""), std::string::npos);
  EXPECT_TRUE(all.partial[10]);  // written at close, without a newline
  EXPECT_FALSE(all.partial[3]);
  Got tail = Read({3, 0, 0, 0, -1, nullptr, nullptr, 0});
  ASSERT_EQ(tail.lines.size(), 3u);
  EXPECT_EQ(tail.lines[0], "line 8\n");
  Got err_only = Read({-1, 0, LG_STDERR, 0, -1, nullptr, nullptr, 0});
  EXPECT_EQ(err_only.lines.size(), 5u);
  Got since = Read({-1, all.times[5], 0, 0, -1, nullptr, nullptr, 0});
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
  Got g = Read({-1, 0, 0, 0, -1, nullptr, nullptr, 0});
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
  Got g = Read({-1, 0, 0, 1, cancel, nullptr, nullptr, 0});
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
  Got g = Read({-1, 0, 0, 0, -1, nullptr, nullptr, 0});
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
  Got g = Read({-1, 0, 0, 0, -1, nullptr, nullptr, 0});
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
  EXPECT_EQ(Read({-1, 0, 0, 0, -1, nullptr, nullptr, 0}).lines.size(), 1u);
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
  EXPECT_EQ(Read({-1, 0, 0, 0, -1, nullptr, nullptr, 0}).lines.size(), 4u);
  lg_close(w);
}

// Records r0..r19, ~4 to a file (5 files); their times as written.
class RotatedLogsTest : public LogsTest {
 protected:
  void SetUp() override {
    LogsTest::SetUp();
    vs_err e;
    lg_writer *w = lg_open(dir_.c_str(), 300, 10, &e);
    ASSERT_NE(w, nullptr) << e.msg;
    for (int i = 0; i < 20; i++) {
      std::string s = "r" + std::to_string(i) + "\n";
      ASSERT_EQ(lg_write(w, i % 3 ? LG_STDOUT : LG_STDERR, s.data(), s.size(), &e), 0);
      usleep(1000);  // distinct times, whatever the clock's resolution
    }
    lg_close(w);
    Got all = Read(Opts());
    ASSERT_EQ(all.lines.size(), 20u);
    t_ = all.times;
    for (int i = 1; i < 20; i++) ASSERT_LT(t_[i - 1], t_[i]);
  }
  static lg_read_opts Opts() { return {-1, 0, 0, 0, -1, nullptr, nullptr, 0}; }
  // The records' numbers, in the order read.
  std::vector<int> Numbers(lg_read_opts o) {
    std::vector<int> v;
    for (auto &l : Read(o).lines) v.push_back(std::stoi(l.substr(1)));
    return v;
  }
  static std::vector<int> Range(int from, int to) {
    std::vector<int> v;
    for (int i = from; i <= to; i++) v.push_back(i);
    return v;
  }
  // Which file (0: container.log, 1: container.log.1, ...) holds r<n>.
  int FileOf(int n) {
    std::string want = "\"r" + std::to_string(n) + "\\n\"";
    for (int f = 0; f < 10; f++) {
      std::string p = dir_ + "/container.log" + (f ? "." + std::to_string(f) : "");
      FILE *fp = fopen(p.c_str(), "r");
      if (!fp) break;
      char buf[512];
      bool found = false;
      while (!found && fgets(buf, sizeof buf, fp)) found = strstr(buf, want.c_str()) != nullptr;
      fclose(fp);
      if (found) return f;
    }
    return -1;
  }
  std::vector<int64_t> t_;
};

TEST_F(RotatedLogsTest, TailSpansFiles) {
  ASSERT_GE(FileOf(0), 4);  // the layout the cases below rely on
  auto o = Opts();
  o.tail = 5;
  EXPECT_EQ(Numbers(o), Range(15, 19));
  EXPECT_NE(FileOf(15), FileOf(19));
  o.tail = 20;
  EXPECT_EQ(Numbers(o), Range(0, 19));
  o.tail = 1000;
  EXPECT_EQ(Numbers(o), Range(0, 19));
  o.tail = 0;
  EXPECT_TRUE(Numbers(o).empty());
  // The last N of the filtered records: stderr ones are r0, r3, ... r18.
  o.tail = 3;
  o.streams = LG_STDERR;
  EXPECT_EQ(Numbers(o), (std::vector<int>{12, 15, 18}));
}

TEST_F(RotatedLogsTest, SinceInAnOlderFile) {
  auto o = Opts();
  o.since_ns = t_[2];  // at or after: r2 itself is in
  ASSERT_GT(FileOf(2), FileOf(19));
  EXPECT_EQ(Numbers(o), Range(2, 19));
  o.since_ns = t_[2] + 1;
  EXPECT_EQ(Numbers(o), Range(3, 19));
  o.tail = 4;  // tail within since
  EXPECT_EQ(Numbers(o), Range(16, 19));
  o.since_ns = t_[18];
  o.tail = 5;  // fewer than tail pass since
  EXPECT_EQ(Numbers(o), Range(18, 19));
  o.since_ns = t_[19] + 1;
  EXPECT_TRUE(Numbers(o).empty());
}

TEST_F(RotatedLogsTest, UntilBeforeTheNewest) {
  auto o = Opts();
  o.until_ns = t_[12];  // at or before: r12 itself is in
  EXPECT_EQ(Numbers(o), Range(0, 12));
  o.until_ns = t_[12] - 1;
  EXPECT_EQ(Numbers(o), Range(0, 11));
  o.until_ns = t_[12];
  o.tail = 3;  // the last 3 up to until, not of the whole log
  EXPECT_EQ(Numbers(o), Range(10, 12));
  o.tail = -1;
  o.since_ns = t_[4];  // a window across files
  o.until_ns = t_[9];
  EXPECT_EQ(Numbers(o), Range(4, 9));
  EXPECT_NE(FileOf(4), FileOf(9));
  o.since_ns = 0;
  o.until_ns = t_[0] - 1;
  EXPECT_TRUE(Numbers(o).empty());
}

TEST_F(LogsTest, FollowEndsAtUntil) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 0, 0, &e);
  ASSERT_EQ(lg_write(w, LG_STDOUT, "stored\n", 7, &e), 0);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t until = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + 400 * 1000000LL;
  std::thread t([&] {
    usleep(100000);
    lg_write(w, LG_STDOUT, "in time\n", 8, &e);
    usleep(600000);  // past until
    lg_write(w, LG_STDOUT, "too late\n", 9, &e);
  });
  auto o = lg_read_opts{-1, 0, 0, 1, -1, nullptr, nullptr, until};
  Got g = Read(o);  // no cancel: it ends by itself once until passed
  struct timespec end;
  clock_gettime(CLOCK_REALTIME, &end);
  t.join();
  ASSERT_EQ(g.lines.size(), 2u);
  EXPECT_EQ(g.lines[1], "in time\n");
  EXPECT_LT((int64_t)end.tv_sec * 1000000000 + end.tv_nsec, until + 1000 * 1000000LL);
  // An until already past: the stored records up to it, at once.
  Got past = Read({-1, 0, 0, 1, -1, nullptr, nullptr, g.times[0]});
  ASSERT_EQ(past.lines.size(), 1u);
  EXPECT_EQ(past.lines[0], "stored\n");
  lg_close(w);
}

TEST_F(LogsTest, NeverMoreFilesThanMax) {
  vs_err e;
  lg_writer *w = lg_open(dir_.c_str(), 500, 4, &e);
  ASSERT_NE(w, nullptr) << e.msg;
  auto count = [&] {
    int n = 0;
    for (int f = 0; f < 20; f++)
      n += access((dir_ + "/container.log" + (f ? "." + std::to_string(f) : "")).c_str(), F_OK) == 0;
    return n;
  };
  for (int i = 0; i < 300; i++) {
    std::string s = "line " + std::to_string(i) + "\n";
    ASSERT_EQ(lg_write(w, LG_STDOUT, s.data(), s.size(), &e), 0);
    ASSERT_LE(count(), 4) << "after line " << i;
  }
  EXPECT_EQ(count(), 4);
  lg_close(w);
  EXPECT_EQ(lg_open(dir_.c_str(), 0, LG_MAX_FILES + 1, &e), nullptr);
  EXPECT_EQ(e.code, VS_INVALID_ARGUMENT);
}

}  // namespace
