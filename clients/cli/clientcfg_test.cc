#include "clients/cli/clientcfg.h"

#include <gtest/gtest.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>

namespace {

class ClientCfgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vsl-cfg-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/vessel/config";
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf " + dir_).c_str()), 0); }
  void Write(const std::string &text) {
    mkdir((dir_ + "/vessel").c_str(), 0700);
    std::ofstream(path_) << text;
  }
  std::string Read() {
    std::stringstream s;
    s << std::ifstream(path_).rdbuf();
    return s.str();
  }
  /* Resolves with these inputs; the file is path_. */
  int Resolve(vcfg_inputs in, vcfg_endpoint *ep, vs_err *e) {
    in.path = path_.c_str();
    return vcfg_resolve(&in, ep, e);
  }
  std::string dir_, path_;
};

const char kTwo[] =
    R"({"current": "lab", "future_key": [1, 2],
        "contexts": {
          "lab": {"host": "tcp://lab.example:7443", "tls_ca": "certs/ca.pem",
                  "tls_cert": "/abs/client.pem", "tls_key": "/abs/client.key",
                  "server_name": "vesseld.lab"},
          "local": {"host": "unix:///tmp/other.sock"}}})";

TEST(ClientCfgPath, XdgThenHome) {
  char buf[256];
  vs_err e;
  ASSERT_EQ(vcfg_path("/x/cfg", "/home/u", buf, sizeof buf, &e), 0);
  EXPECT_STREQ(buf, "/x/cfg/vessel/config");
  ASSERT_EQ(vcfg_path("", "/home/u", buf, sizeof buf, &e), 0);
  EXPECT_STREQ(buf, "/home/u/.config/vessel/config");
  ASSERT_EQ(vcfg_path("relative", "/home/u", buf, sizeof buf, &e), 0);  // XDG: must be absolute
  EXPECT_STREQ(buf, "/home/u/.config/vessel/config");
  EXPECT_EQ(vcfg_path(nullptr, nullptr, buf, sizeof buf, &e), -1);
  EXPECT_EQ(e.code, VS_FAILED_PRECONDITION);
  EXPECT_NE(std::string(e.msg).find("HOME"), std::string::npos) << e.msg;
}

TEST_F(ClientCfgTest, PrecedenceFlagEnvContextCurrentDefault) {
  Write(kTwo);
  vcfg_endpoint ep;
  vs_err e;
  // The file's current context: its host and TLS files, relative ones
  // from the file's directory.
  ASSERT_EQ(Resolve({}, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.host, "tcp://lab.example:7443");
  EXPECT_EQ(ep.use_tls, 1);
  EXPECT_EQ(std::string(ep.tls_ca), dir_ + "/vessel/certs/ca.pem");
  EXPECT_STREQ(ep.tls_cert, "/abs/client.pem");
  EXPECT_STREQ(ep.server_name, "vesseld.lab");
  EXPECT_NE(std::string(ep.source).find("current"), std::string::npos) << ep.source;

  // VESSEL_CONTEXT beats the current one.
  vcfg_inputs in = {};
  in.env_context = "local";
  ASSERT_EQ(Resolve(in, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.host, "unix:///tmp/other.sock");
  EXPECT_EQ(ep.use_tls, 0);
  EXPECT_STREQ(ep.source, "context \"local\" (VESSEL_CONTEXT)");

  // VESSEL_HOST beats VESSEL_CONTEXT and brings VESSEL_TLS_* along.
  in.env_host = "tcp://127.0.0.1:9";
  in.env_tls_ca = "/env/ca.pem";
  in.env_tls_cert = "/env/c.pem";
  in.env_tls_key = "/env/c.key";
  ASSERT_EQ(Resolve(in, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.host, "tcp://127.0.0.1:9");
  EXPECT_STREQ(ep.tls_ca, "/env/ca.pem");
  EXPECT_STREQ(ep.tls_key, "/env/c.key");
  EXPECT_STREQ(ep.source, "VESSEL_HOST");

  // --context beats VESSEL_HOST; the context's TLS, not the environment's.
  in.context = "lab";
  ASSERT_EQ(Resolve(in, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.host, "tcp://lab.example:7443");
  EXPECT_EQ(std::string(ep.tls_ca), dir_ + "/vessel/certs/ca.pem");

  // --host beats everything, with the environment's TLS files...
  in.context = nullptr;
  in.host = "tcp://10.0.0.1:7443";
  ASSERT_EQ(Resolve(in, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.host, "tcp://10.0.0.1:7443");
  EXPECT_STREQ(ep.tls_ca, "/env/ca.pem");
  EXPECT_STREQ(ep.source, "--host");
  // ...unless TLS flags are given: they replace all three.
  in.tls_ca = "/flag/ca.pem";
  ASSERT_EQ(Resolve(in, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.tls_ca, "/flag/ca.pem");
  EXPECT_STREQ(ep.tls_cert, "");

  // A unix host drops TLS files.
  in.host = "unix:///run/x.sock";
  ASSERT_EQ(Resolve(in, &ep, &e), 0) << e.msg;
  EXPECT_EQ(ep.use_tls, 0);
  EXPECT_STREQ(ep.tls_ca, "");

  // "default" is the default socket, whatever the file says is current.
  vcfg_inputs d = {};
  d.env_context = "default";
  ASSERT_EQ(Resolve(d, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.host, VCFG_DEFAULT_HOST);
}

TEST_F(ClientCfgTest, NoFileNoCurrentIsTheDefault) {
  vcfg_endpoint ep;
  vs_err e;
  ASSERT_EQ(Resolve({}, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.host, VCFG_DEFAULT_HOST);
  EXPECT_STREQ(ep.source, "the default");
  Write(R"({"contexts": {"a": {"host": "unix:///a.sock"}}})");
  ASSERT_EQ(Resolve({}, &ep, &e), 0) << e.msg;
  EXPECT_STREQ(ep.host, VCFG_DEFAULT_HOST);
  // No path at all (no HOME): the default still works, a context does not.
  vcfg_inputs in = {};
  ASSERT_EQ(vcfg_resolve(&in, &ep, &e), 0) << e.msg;
  in.env_context = "a";
  EXPECT_EQ(vcfg_resolve(&in, &ep, &e), -1);
  EXPECT_NE(std::string(e.msg).find("no contexts file"), std::string::npos) << e.msg;
}

TEST_F(ClientCfgTest, ErrorsNameTheProblem) {
  vcfg_endpoint ep;
  vs_err e;
  vcfg_inputs in = {};
  in.host = "unix:///a";
  in.context = "lab";
  EXPECT_EQ(Resolve(in, &ep, &e), -1);
  EXPECT_STREQ(e.msg, "give --host or --context, not both");

  Write(kTwo);
  in = {};
  in.env_context = "nope";
  EXPECT_EQ(Resolve(in, &ep, &e), -1);
  EXPECT_EQ(e.code, VS_NOT_FOUND);
  EXPECT_EQ(std::string(e.msg), "VESSEL_CONTEXT: unknown context \"nope\": " + path_ +
                                    " defines lab, local");

  in = {};
  in.env_host = "tcp://127.0.0.1:9";  // TCP without a CA
  EXPECT_EQ(Resolve(in, &ep, &e), -1);
  EXPECT_NE(std::string(e.msg).find("from VESSEL_HOST) is TCP"), std::string::npos) << e.msg;
  in.env_host = "http://x";
  EXPECT_EQ(Resolve(in, &ep, &e), -1);
  EXPECT_NE(std::string(e.msg).find("must be unix:///path or tcp://host:port"), std::string::npos);

  // A current context the file does not define.
  Write(R"({"current": "gone"})");
  EXPECT_EQ(Resolve({}, &ep, &e), -1);
  EXPECT_NE(std::string(e.msg).find("the current context: unknown context \"gone\""),
            std::string::npos) << e.msg;

  struct {
    const char *text, *want;
  } bad[] = {
      {"{\"contexts\": ", "malformed contexts file: "},
      {"[]", "the top level must be an object"},
      {"{\"current\": 3}", "\"current\" must be a string"},
      {"{\"contexts\": []}", "\"contexts\" must be an object"},
      {"{\"contexts\": {\"a\": 1}}", "context \"a\" must be an object"},
      {"{\"contexts\": {\"a\": {}}}", "context \"a\" has no \"host\" string"},
      {"{\"contexts\": {\"a\": {\"host\": \"tcp://x\"}}}", "host \"tcp://x\" must be"},
      {"{\"contexts\": {\"a\": {\"host\": \"unix:///a\", \"tls_ca\": 1}}}",
       "\"tls_ca\" must be a string"},
      {"{\"contexts\": {\"a\": {\"host\": \"unix:///a\"}, \"a\": {\"host\": \"unix:///b\"}}}",
       "duplicate"},
  };
  for (const auto &b : bad) {
    Write(b.text);
    EXPECT_EQ(Resolve({}, &ep, &e), -1) << b.text;
    EXPECT_EQ(std::string(e.msg).rfind(path_ + ": ", 0), 0u) << e.msg;  // names the file
    EXPECT_NE(std::string(e.msg).find(b.want), std::string::npos) << b.text << " -> " << e.msg;
    // An address given outright does not read the file.
    vcfg_inputs h = {};
    h.env_host = "unix:///x.sock";
    EXPECT_EQ(Resolve(h, &ep, &e), 0) << b.text;
  }
}

TEST_F(ClientCfgTest, AddUseRemoveSaveKeepUnknownKeys) {
  Write(kTwo);
  vs_err e;
  vcfg_file *f = vcfg_load(path_.c_str(), &e);
  ASSERT_NE(f, nullptr) << e.msg;
  ASSERT_EQ(vcfg_count(f), 2u);
  vcfg_context c = {};
  c.name = "b2";
  c.host = "tcp://h:1";
  c.tls_ca = "/ca";
  ASSERT_EQ(vcfg_add(f, &c, &e), 0) << e.msg;
  EXPECT_EQ(vcfg_add(f, &c, &e), -1);
  EXPECT_EQ(e.code, VS_ALREADY_EXISTS);
  vcfg_context bad[] = {
      {"default", "unix:///x", nullptr, nullptr, nullptr, nullptr},
      {"-x", "unix:///x", nullptr, nullptr, nullptr, nullptr},
      {"x/y", "unix:///x", nullptr, nullptr, nullptr, nullptr},
      {"u", "unix:///x", "/ca", nullptr, nullptr, nullptr},  // TLS on unix
      {"t", "tcp://h:1", nullptr, nullptr, nullptr, nullptr},  // TCP without a CA
      {"p", "unix://relative", nullptr, nullptr, nullptr, nullptr},
  };
  for (const auto &b : bad) EXPECT_EQ(vcfg_add(f, &b, &e), -1) << b.name;
  ASSERT_EQ(vcfg_count(f), 3u);
  vcfg_at(f, 0, &c);  // sorted by name
  EXPECT_STREQ(c.name, "b2");
  ASSERT_EQ(vcfg_use(f, "b2", &e), 0);
  EXPECT_EQ(vcfg_use(f, "nope", &e), -1);
  EXPECT_STREQ(vcfg_current(f), "b2");
  ASSERT_EQ(vcfg_remove(f, "local", &e), 0);
  EXPECT_EQ(vcfg_remove(f, "local", &e), -1);
  ASSERT_EQ(vcfg_save(f, &e), 0) << e.msg;
  vcfg_free(f);

  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string text = Read();
  EXPECT_NE(text.find("future_key"), std::string::npos) << text;  // kept
  EXPECT_EQ(text.find("local"), std::string::npos) << text;

  f = vcfg_load(path_.c_str(), &e);
  ASSERT_NE(f, nullptr) << e.msg;
  EXPECT_STREQ(vcfg_current(f), "b2");
  EXPECT_EQ(vcfg_count(f), 2u);
  // Removing the current context unsets it; "default" unsets it too.
  ASSERT_EQ(vcfg_remove(f, "b2", &e), 0);
  EXPECT_EQ(vcfg_current(f), nullptr);
  ASSERT_EQ(vcfg_use(f, "lab", &e), 0);
  ASSERT_EQ(vcfg_use(f, "default", &e), 0);
  EXPECT_EQ(vcfg_current(f), nullptr);
  vcfg_free(f);
}

TEST_F(ClientCfgTest, SaveCreatesThePrivateDirectory) {
  path_ = dir_ + "/new/deeper/config";
  vs_err e;
  vcfg_file *f = vcfg_load(path_.c_str(), &e);  // missing: empty
  ASSERT_NE(f, nullptr) << e.msg;
  EXPECT_EQ(vcfg_count(f), 0u);
  vcfg_context c = {"a", "unix:///a.sock", nullptr, nullptr, nullptr, nullptr};
  ASSERT_EQ(vcfg_add(f, &c, &e), 0) << e.msg;
  ASSERT_EQ(vcfg_save(f, &e), 0) << e.msg;
  vcfg_free(f);
  struct stat st;
  ASSERT_EQ(stat((dir_ + "/new/deeper").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_NE(Read().find("\"unix:///a.sock\""), std::string::npos);
}

/* std::string with every `from` replaced by `to`. */
std::string Subst(std::string s, const std::string &from, const std::string &to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size())
    s.replace(at, from.size(), to);
  return s;
}

const char *Str(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }

// clients/testdata/config_cases.json: the cases the Python and Go clients
// check as well.
TEST_F(ClientCfgTest, SharedCases) {
  json_error_t je;
  json_t *doc = json_load_file("clients/testdata/config_cases.json", 0, &je);
  ASSERT_NE(doc, nullptr) << je.text;
  json_t *cases = json_object_get(doc, "cases");
  ASSERT_GT(json_array_size(cases), 20u);
  size_t i;
  json_t *tc;
  json_array_foreach(cases, i, tc) {
    std::string name = Str(tc, "name");
    SCOPED_TRACE(name);
    ASSERT_EQ(system(("rm -rf " + dir_ + "/vessel").c_str()), 0);
    if (json_t *file = json_object_get(tc, "file")) {
      char *text = json_dumps(file, JSON_ENCODE_ANY);
      Write(text);
      free(text);
    } else if (Str(tc, "file_text")) {
      Write(Str(tc, "file_text"));
    }
    json_t *env = json_object_get(tc, "env"), *tls = json_object_get(tc, "tls");
    vcfg_inputs in = {};
    in.host = Str(tc, "host");
    in.context = Str(tc, "context");
    in.tls_ca = Str(tls, "ca");
    in.tls_cert = Str(tls, "cert");
    in.tls_key = Str(tls, "key");
    in.env_host = Str(env, "VESSEL_HOST");
    in.env_context = Str(env, "VESSEL_CONTEXT");
    in.env_tls_ca = Str(env, "VESSEL_TLS_CA");
    in.env_tls_cert = Str(env, "VESSEL_TLS_CERT");
    in.env_tls_key = Str(env, "VESSEL_TLS_KEY");
    vcfg_endpoint ep;
    vs_err e;
    int rc = Resolve(in, &ep, &e);
    if (const char *want_err = Str(tc, "error")) {
      EXPECT_EQ(rc, -1);
      if (rc == -1) {
        std::string want = Subst(want_err, "CONFIG", path_);
        EXPECT_NE(std::string(e.msg).find(want), std::string::npos) << e.msg << "\nwant: " << want;
      }
      continue;
    }
    ASSERT_EQ(rc, 0) << e.msg;
    json_t *want = json_object_get(tc, "want");
    auto field = [&](const char *key) {
      const char *v = Str(want, key);
      return Subst(v ? v : "", "DIR", dir_ + "/vessel");
    };
    EXPECT_EQ(ep.host, field("host"));
    EXPECT_EQ(ep.tls_ca, field("tls_ca"));
    EXPECT_EQ(ep.tls_cert, field("tls_cert"));
    EXPECT_EQ(ep.tls_key, field("tls_key"));
    EXPECT_EQ(ep.server_name, field("server_name"));
    if (Str(want, "source")) EXPECT_EQ(ep.source, field("source"));
  }
  json_decref(doc);
}

}  // namespace
