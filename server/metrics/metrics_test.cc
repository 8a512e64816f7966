#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "server/metrics/metrics.h"

namespace {

class Registry {
 public:
  Registry() {
    vs_err err;
    r_ = mt_registry_new(&err);
  }
  ~Registry() { mt_registry_free(r_); }
  mt_registry *get() { return r_; }
  std::string Render() {
    char *out = nullptr;
    size_t len = 0;
    vs_err err;
    EXPECT_EQ(mt_render(r_, &out, &len, &err), 0) << err.msg;
    std::string s(out, len);
    EXPECT_EQ(strlen(out), len);
    free(out);
    return s;
  }

 private:
  mt_registry *r_;
};

TEST(Metrics, CounterWithoutLabelsShowsZeroFromTheStart) {
  Registry r;
  vs_err err;
  mt_family *f = mt_counter(r.get(), "vessel_things_total", "Things done.", nullptr, &err);
  ASSERT_NE(f, nullptr) << err.msg;
  EXPECT_EQ(r.Render(),
            "# HELP vessel_things_total Things done.\n"
            "# TYPE vessel_things_total counter\n"
            "vessel_things_total 0\n");
  mt_add(mt_with(f, nullptr), 2);
  mt_add(mt_with(f, nullptr), 0.5);
  mt_add(mt_with(f, nullptr), -10);  // counters only go up
  EXPECT_EQ(r.Render(),
            "# HELP vessel_things_total Things done.\n"
            "# TYPE vessel_things_total counter\n"
            "vessel_things_total 2.5\n");
}

TEST(Metrics, LabelledSeriesInOrderOfFirstUse) {
  Registry r;
  vs_err err;
  const char *labels[] = {"method", "code", nullptr};
  mt_family *f = mt_counter(r.get(), "rpc_total", "Calls.", labels, &err);
  ASSERT_NE(f, nullptr) << err.msg;
  EXPECT_EQ(r.Render(), "# HELP rpc_total Calls.\n# TYPE rpc_total counter\n");
  const char *a[] = {"/x.Y/B", "OK"}, *b[] = {"/x.Y/A", "NOT_FOUND"};
  mt_add(mt_with(f, a), 1);
  mt_add(mt_with(f, b), 1);
  mt_add(mt_with(f, a), 1);
  EXPECT_EQ(mt_with(f, a), mt_with(f, a));  // one series, kept
  EXPECT_EQ(mt_value(mt_with(f, a)), 2);
  EXPECT_EQ(r.Render(),
            "# HELP rpc_total Calls.\n# TYPE rpc_total counter\n"
            "rpc_total{method=\"/x.Y/B\",code=\"OK\"} 2\n"
            "rpc_total{method=\"/x.Y/A\",code=\"NOT_FOUND\"} 1\n");
  // A missing value makes no series.
  const char *partial[] = {"/x.Y/A", nullptr};
  EXPECT_EQ(mt_with(f, partial), nullptr);
  EXPECT_EQ(mt_with(f, nullptr), nullptr);
}

TEST(Metrics, GaugeSetsAndAdds) {
  Registry r;
  vs_err err;
  const char *labels[] = {"state", nullptr};
  mt_family *f = mt_gauge(r.get(), "containers", "By state.", labels, &err);
  ASSERT_NE(f, nullptr);
  mt_set(mt_with1(f, "running"), 3);
  mt_add(mt_with1(f, "running"), -1);
  mt_set(mt_with1(f, "stopped"), 0);
  EXPECT_EQ(r.Render(),
            "# HELP containers By state.\n# TYPE containers gauge\n"
            "containers{state=\"running\"} 2\n"
            "containers{state=\"stopped\"} 0\n");
  // Wrong-kind verbs do nothing.
  mt_observe(mt_with1(f, "running"), 5);
  EXPECT_EQ(mt_value(mt_with1(f, "running")), 2);
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  Registry r;
  vs_err err;
  const char *labels[] = {"path", nullptr};
  mt_family *f = mt_gauge(r.get(), "g", "a \\ backslash\nand a \"quote\"", labels, &err);
  ASSERT_NE(f, nullptr);
  mt_set(mt_with1(f, "C:\\dir \"quoted\"\nnext line"), 1);
  EXPECT_EQ(r.Render(),
            "# HELP g a \\\\ backslash\\nand a \"quote\"\n"  // help: \ and newline only
            "# TYPE g gauge\n"
            "g{path=\"C:\\\\dir \\\"quoted\\\"\\nnext line\"} 1\n");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  vs_err err;
  const double b[] = {0.1, 1, 2.5};
  mt_family *f = mt_histogram(r.get(), "d_seconds", "Durations.", nullptr, b, 3, &err);
  ASSERT_NE(f, nullptr) << err.msg;
  mt_series *s = mt_with(f, nullptr);
  for (double v : {0.05, 0.1, 0.7, 1.0, 2.0, 100.0}) mt_observe(s, v);
  EXPECT_EQ(r.Render(),
            "# HELP d_seconds Durations.\n"
            "# TYPE d_seconds histogram\n"
            "d_seconds_bucket{le=\"0.1\"} 2\n"  // 0.05 and 0.1 (le: <=)
            "d_seconds_bucket{le=\"1\"} 4\n"
            "d_seconds_bucket{le=\"2.5\"} 5\n"
            "d_seconds_bucket{le=\"+Inf\"} 6\n"
            "d_seconds_sum 103.85\n"
            "d_seconds_count 6\n");
  EXPECT_EQ(mt_value(s), 6);
}

TEST(Metrics, HistogramWithLabelsPutsLeLast) {
  Registry r;
  vs_err err;
  const char *labels[] = {"path", nullptr};
  const double b[] = {1};
  mt_family *f = mt_histogram(r.get(), "h", "H.", labels, b, 1, &err);
  ASSERT_NE(f, nullptr);
  mt_observe(mt_with1(f, "cold"), 1.5);
  EXPECT_EQ(r.Render(),
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{path=\"cold\",le=\"1\"} 0\n"
            "h_bucket{path=\"cold\",le=\"+Inf\"} 1\n"
            "h_sum{path=\"cold\"} 1.5\n"
            "h_count{path=\"cold\"} 1\n");
}

TEST(Metrics, NumbersReadBackExactly) {
  Registry r;
  vs_err err;
  const char *labels[] = {"v", nullptr};
  mt_family *f = mt_gauge(r.get(), "n", "N.", labels, &err);
  mt_set(mt_with1(f, "a"), 0.1);
  mt_set(mt_with1(f, "b"), 1e-9);
  mt_set(mt_with1(f, "c"), 123456789012.0);
  mt_set(mt_with1(f, "d"), NAN);
  mt_set(mt_with1(f, "e"), -INFINITY);
  mt_set(mt_with1(f, "f"), 1.0 / 3);
  EXPECT_EQ(r.Render(),
            "# HELP n N.\n# TYPE n gauge\n"
            "n{v=\"a\"} 0.1\n"
            "n{v=\"b\"} 1e-09\n"
            "n{v=\"c\"} 123456789012\n"
            "n{v=\"d\"} NaN\n"
            "n{v=\"e\"} -Inf\n"
            "n{v=\"f\"} 0.3333333333333333\n");
}

TEST(Metrics, RefusesBadDefinitions) {
  Registry r;
  vs_err err;
  const double good[] = {1, 2}, unsorted[] = {2, 1}, inf[] = {1, INFINITY};
  const char *le[] = {"le", nullptr}, *reserved[] = {"__x", nullptr}, *dup[] = {"a", "a", nullptr},
             *bad[] = {"a-b", nullptr}, *many[] = {"a", "b", "c", "d", "e", nullptr};
  EXPECT_EQ(mt_counter(r.get(), "1abc", "", nullptr, &err), nullptr);
  EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
  EXPECT_EQ(mt_counter(r.get(), "a-b", "", nullptr, &err), nullptr);
  EXPECT_EQ(mt_counter(r.get(), "", "", nullptr, &err), nullptr);
  EXPECT_EQ(mt_counter(r.get(), "ok", "", reserved, &err), nullptr);
  EXPECT_NE(std::string(err.msg).find("__x"), std::string::npos) << err.msg;
  EXPECT_EQ(mt_counter(r.get(), "ok", "", dup, &err), nullptr);
  EXPECT_EQ(mt_counter(r.get(), "ok", "", bad, &err), nullptr);
  EXPECT_EQ(mt_counter(r.get(), "ok", "", many, &err), nullptr);
  EXPECT_EQ(mt_histogram(r.get(), "h", "", le, good, 2, &err), nullptr);
  EXPECT_NE(std::string(err.msg).find("le"), std::string::npos);
  EXPECT_EQ(mt_histogram(r.get(), "h", "", nullptr, unsorted, 2, &err), nullptr);
  EXPECT_EQ(mt_histogram(r.get(), "h", "", nullptr, inf, 2, &err), nullptr);
  EXPECT_EQ(mt_histogram(r.get(), "h", "", nullptr, good, 0, &err), nullptr);
  // A gauge may have a label "le"; names may hold colons.
  EXPECT_NE(mt_gauge(r.get(), "ns:ok", "", le, &err), nullptr) << err.msg;
  EXPECT_NE(mt_counter(r.get(), "ok", "", nullptr, &err), nullptr);
  EXPECT_EQ(mt_gauge(r.get(), "ok", "", nullptr, &err), nullptr);
  EXPECT_EQ(err.code, VS_ALREADY_EXISTS);
  // Nothing that failed was registered.
  EXPECT_EQ(r.Render(),
            "# HELP ns:ok \n# TYPE ns:ok gauge\n# HELP ok \n# TYPE ok counter\nok 0\n");
}

TEST(Metrics, NullFamilyAndSeriesRecordNothing) {
  mt_series *s = mt_with(nullptr, nullptr);
  EXPECT_EQ(s, nullptr);
  mt_add(nullptr, 1);
  mt_set(nullptr, 1);
  mt_observe(nullptr, 1);
  EXPECT_EQ(mt_value(nullptr), 0);
}

TEST(Metrics, SeriesPerFamilyAreBounded) {
  Registry r;
  vs_err err;
  const char *labels[] = {"id", nullptr};
  mt_family *f = mt_counter(r.get(), "c", "", labels, &err);
  for (int i = 0; i < MT_MAX_SERIES; i++)
    ASSERT_NE(mt_with1(f, std::to_string(i).c_str()), nullptr) << i;
  EXPECT_EQ(mt_with1(f, "one too many"), nullptr);
  EXPECT_NE(mt_with1(f, "7"), nullptr);  // existing ones are still found
}

TEST(Metrics, ConcurrentRecordingLosesNothing) {
  Registry r;
  vs_err err;
  const char *labels[] = {"t", nullptr};
  mt_family *c = mt_counter(r.get(), "c_total", "", labels, &err);
  mt_family *h = mt_histogram(r.get(), "h_seconds", "", nullptr, mt_seconds_buckets,
                              mt_n_seconds_buckets, &err);
  std::vector<std::thread> th;
  for (int t = 0; t < 8; t++)
    th.emplace_back([&, t] {
      for (int i = 0; i < 10000; i++) {
        mt_add(mt_with1(c, (t % 2) ? "odd" : "even"), 1);
        mt_observe(mt_with(h, nullptr), 0.001);
        if (i % 1000 == 0) {
          char *out;
          size_t len;
          vs_err e;
          if (mt_render(r.get(), &out, &len, &e) == 0) free(out);
        }
      }
    });
  for (auto &t : th) t.join();
  EXPECT_EQ(mt_value(mt_with1(c, "odd")), 40000);
  EXPECT_EQ(mt_value(mt_with1(c, "even")), 40000);
  EXPECT_EQ(mt_value(mt_with(h, nullptr)), 80000);
  EXPECT_NE(r.Render().find("h_seconds_bucket{le=\"0.005\"} 80000\n"), std::string::npos);
}

struct Collected {
  mt_series *s;
  int calls = 0;
};

TEST(Metrics, CollectorsRunBeforeEachRendering) {
  Registry r;
  vs_err err;
  Collected c;
  c.s = mt_with(mt_gauge(r.get(), "calls", "", nullptr, &err), nullptr);
  ASSERT_EQ(mt_collector(
                r.get(),
                [](void *arg) {
                  auto *c = static_cast<Collected *>(arg);
                  mt_set(c->s, ++c->calls);
                },
                &c, &err),
            0);
  EXPECT_NE(r.Render().find("calls 1\n"), std::string::npos);
  EXPECT_NE(r.Render().find("calls 2\n"), std::string::npos);
}

static int CountFds() {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  while (readdir(d)) n++;
  closedir(d);
  return n - 3;  // ., .., the directory's own
}

static double Sample(const std::string &text, const std::string &name) {
  size_t at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return strtod(text.c_str() + at + name.size() + 2, nullptr);
}

TEST(Metrics, ProcessMetricsComeFromProcSelf) {
  Registry r;
  vs_err err;
  ASSERT_EQ(mt_process_metrics(r.get(), "t_", &err), 0) << err.msg;
  int fds = CountFds();
  std::string text = r.Render();
  EXPECT_EQ(Sample(text, "t_process_open_fds"), fds) << text;
  EXPECT_GE(Sample(text, "t_process_threads"), 1);
  EXPECT_GT(Sample(text, "t_process_resident_memory_bytes"), 1 << 20);
  // Threads are counted as they come and go.
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  double before = Sample(r.Render(), "t_process_threads");
  std::thread t([&] {
    char c;
    EXPECT_EQ(read(pipefd[0], &c, 1), 1);
  });
  text = r.Render();
  EXPECT_EQ(Sample(text, "t_process_threads"), before + 1);
  EXPECT_EQ(Sample(text, "t_process_open_fds"), fds + 2);
  EXPECT_EQ(write(pipefd[1], "x", 1), 1);
  t.join();
  close(pipefd[0]);
  close(pipefd[1]);
}

/* ---- HTTP ---- */

struct Reply {
  int status = 0;
  std::string headers, body;
};

static Reply Fetch(const sockaddr *sa, socklen_t sl, const std::string &request) {
  Reply rep;
  int fd = socket(sa->sa_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, sa, sl) < 0) {
    if (fd >= 0) close(fd);
    return rep;
  }
  EXPECT_EQ(write(fd, request.data(), request.size()), (ssize_t)request.size());
  std::string all;
  char b[4096];
  for (ssize_t n; (n = read(fd, b, sizeof b)) > 0;) all.append(b, (size_t)n);
  close(fd);
  size_t split = all.find("\r\n\r\n");
  if (split == std::string::npos) return rep;
  rep.headers = all.substr(0, split);
  rep.body = all.substr(split + 4);
  sscanf(all.c_str(), "HTTP/1.%*d %d", &rep.status);
  return rep;
}

static Reply FetchTcp(const char *uri, const std::string &method, const std::string &path) {
  sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)atoi(strrchr(uri, ':') + 1));
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  return Fetch((sockaddr *)&sa, sizeof sa,
               method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                   (method == "POST" ? "Content-Length: 3\r\n\r\nabc" : "\r\n"));
}

TEST(MetricsHttp, ServesMetricsAnswers404And405) {
  Registry r;
  vs_err err;
  mt_family *f = mt_counter(r.get(), "served_total", "Served.", nullptr, &err);
  mt_add(mt_with(f, nullptr), 41);
  int fds = CountFds();
  mt_server *s = mt_server_start(r.get(), "tcp://127.0.0.1:0", &err);
  ASSERT_NE(s, nullptr) << err.msg;
  std::string uri = mt_server_uri(s);
  ASSERT_EQ(uri.rfind("tcp://127.0.0.1:", 0), 0u) << uri;
  EXPECT_NE(uri, "tcp://127.0.0.1:0");

  mt_add(mt_with(f, nullptr), 1);
  Reply ok = FetchTcp(uri.c_str(), "GET", "/metrics");
  EXPECT_EQ(ok.status, 200);
  EXPECT_NE(ok.headers.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            std::string::npos)
      << ok.headers;
  EXPECT_EQ(ok.body, r.Render());
  EXPECT_NE(ok.body.find("served_total 42\n"), std::string::npos);

  Reply q = FetchTcp(uri.c_str(), "GET", "/metrics?x=1");  // a query is ignored
  EXPECT_EQ(q.status, 200);

  Reply head = FetchTcp(uri.c_str(), "HEAD", "/metrics");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");

  Reply nf = FetchTcp(uri.c_str(), "GET", "/");
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(FetchTcp(uri.c_str(), "GET", "/metricsx").status, 404);

  Reply post = FetchTcp(uri.c_str(), "POST", "/metrics");
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.headers.find("Allow: GET, HEAD"), std::string::npos) << post.headers;
  EXPECT_EQ(FetchTcp(uri.c_str(), "DELETE", "/metrics").status, 405);

  // A second server on the same port is refused, naming the address.
  mt_server *again = mt_server_start(r.get(), uri.c_str(), &err);
  EXPECT_EQ(again, nullptr);
  EXPECT_EQ(err.code, VS_UNAVAILABLE);
  EXPECT_NE(std::string(err.msg).find(uri), std::string::npos) << err.msg;

  mt_server_stop(s);
  EXPECT_EQ(CountFds(), fds);  // the listening socket and the thread's fds are gone
  EXPECT_EQ(FetchTcp(uri.c_str(), "GET", "/metrics").status, 0);
}

TEST(MetricsHttp, ServesOnAUnixSocket) {
  Registry r;
  vs_err err;
  mt_counter(r.get(), "u_total", "U.", nullptr, &err);
  char dir[] = "/tmp/vsm-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/m.sock";
  std::string uri = "unix://" + path;
  mt_server *s = mt_server_start(r.get(), uri.c_str(), &err);
  ASSERT_NE(s, nullptr) << err.msg;
  EXPECT_EQ(std::string(mt_server_uri(s)), uri);
  sockaddr_un sa = {};
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
  Reply rep = Fetch((sockaddr *)&sa, sizeof sa,
                    "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(rep.status, 200);
  EXPECT_NE(rep.body.find("u_total 0\n"), std::string::npos) << rep.body;
  mt_server_stop(s);
  EXPECT_NE(access(path.c_str(), F_OK), 0);  // the socket is removed
  rmdir(dir);
}

TEST(MetricsHttp, ChecksAddresses) {
  vs_err err;
  for (const char *good : {"tcp://127.0.0.1:9323", "tcp://localhost:0", "tcp://[::1]:9323",
                           "tcp://0.0.0.0:65535", "unix:///run/vessel/metrics.sock"})
    EXPECT_EQ(mt_check_uri(good, &err), 0) << good << ": " << err.msg;
  for (const char *bad : {"127.0.0.1:9323", "http://127.0.0.1:9323", "tcp://127.0.0.1",
                          "tcp://127.0.0.1:", "tcp://127.0.0.1:65536", "tcp://:9323",
                          "tcp://::1:9323", "tcp://[::1]9323", "unix://relative",
                          "unix://", "tcp://127.0.0.1:9x"}) {
    EXPECT_EQ(mt_check_uri(bad, &err), -1) << bad;
    EXPECT_EQ(err.code, VS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(err.msg).find(bad), std::string::npos) << err.msg;
  }
  std::string longpath = "unix:///" + std::string(120, 'a');
  EXPECT_EQ(mt_check_uri(longpath.c_str(), &err), -1);
}

}  // namespace
