// Unit tests of vrpc against a real gRPC core server and client in-process.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

extern "C" {
#include "common/rpc.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc_proto_rpc.h"
#include "test.pb-c.h"
#include "test_proto_rpc.h"
}

namespace {

struct Ctx {
  std::atomic<int> cancelled_seen{0};
  std::atomic<int> handled{0};
};

using Msg = Vessel__Test__Msg;

Msg make(const char *text, int count = 0, int64_t sleep_ms = 0) {
  Msg m;
  vessel__test__msg__init(&m);
  m.text = const_cast<char *>(text);
  m.count = count;
  m.sleep_ms = sleep_ms;
  return m;
}

// Blocks for ms (or until cancelled, for -1); returns -1 if cancelled.
int nap(vrpc_call *call, Ctx *ctx, int64_t ms, vs_err *err) {
  if (ms == 0) return 0;
  struct pollfd p = {vrpc_cancel_fd(call), POLLIN, 0};
  int n = poll(&p, 1, ms < 0 ? -1 : (int)ms);
  if (n > 0) {
    ctx->cancelled_seen++;
    return vs_err_set(err, VS_CANCELLED, "handler saw cancellation");
  }
  return 0;
}

int h_unary(vrpc_call *call, void *vctx, vs_err *err) {
  Ctx *ctx = static_cast<Ctx *>(vctx);
  ctx->handled++;
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  Msg *req = reinterpret_cast<Msg *>(in);
  int rc = nap(call, ctx, req->sleep_ms, err);
  if (rc == 0 && req->fail_code)
    rc = vs_err_set(err, (vs_code)req->fail_code, "asked to fail: %s", req->text);
  if (rc == 0) rc = vrpc_send(call, in, err);
  vrpc_msg_free(in);
  return rc;
}

int h_server_stream(vrpc_call *call, void *vctx, vs_err *err) {
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  Msg *req = reinterpret_cast<Msg *>(in);
  int rc = 0;
  for (int i = 0; i < req->count && rc == 0; i++) {
    Msg out = make(req->text, i);
    rc = vrpc_send(call, &out.base, err);
  }
  vrpc_msg_free(in);
  return rc;
}

int h_client_stream(vrpc_call *call, void *vctx, vs_err *err) {
  int count = 0;
  size_t bytes = 0;
  for (;;) {
    ProtobufCMessage *in;
    int r = vrpc_recv(call, &in, err);
    if (r < 0) return -1;
    if (r == 0) break;
    Msg *m = reinterpret_cast<Msg *>(in);
    if (m->count != count) {
      vrpc_msg_free(in);
      return vs_err_set(err, VS_INVALID_ARGUMENT, "out of order: %d", m->count);
    }
    count++;
    bytes += m->data.len;
    vrpc_msg_free(in);
  }
  std::string text = std::to_string(bytes);
  Msg out = make(text.c_str(), count);
  return vrpc_send(call, &out.base, err);
}

int h_bidi(vrpc_call *call, void *vctx, vs_err *err) {
  for (;;) {
    ProtobufCMessage *in;
    int r = vrpc_recv(call, &in, err);
    if (r <= 0) return r;
    int rc = vrpc_send(call, in, err);
    vrpc_msg_free(in);
    if (rc < 0) return -1;
  }
}

int h_metadata(vrpc_call *call, void *vctx, vs_err *err) {
  ProtobufCMessage *in;
  if (vrpc_recv(call, &in, err) != 1) return -1;
  vrpc_msg_free(in);
  const char *v = vrpc_metadata(call, "x-vessel-test");
  Msg out = make(v ? v : "(none)");
  return vrpc_send(call, &out.base, err);
}

const vessel_test_Test_handlers kHandlers = {h_unary, h_server_stream, h_client_stream,
                                             h_bidi, h_metadata};

std::string TempDir() {
  char tmpl[] = "/tmp/vrpc-test-XXXXXX";  // short: unix socket paths <= 107
  return mkdtemp(tmpl);
}

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    uri_ = "unix://" + dir_ + "/s.sock";
    vs_err err;
    srv_ = vrpc_server_new(nullptr, &err);
    ASSERT_NE(srv_, nullptr) << err.msg;
    ASSERT_EQ(vessel_test_Test_register(srv_, &kHandlers, &ctx_, &err), 0) << err.msg;
    ASSERT_EQ(vrpc_health_register(srv_, &err), 0) << err.msg;
    const vrpc_descriptor_pool *pools[] = {&test_proto_pool, &grpc_proto_pool};
    ASSERT_EQ(vrpc_reflection_register(srv_, pools, 2, &err), 0) << err.msg;
  }
  void Start() {
    vs_err err;
    ASSERT_EQ(vrpc_server_listen(srv_, uri_.c_str(), nullptr, nullptr, &err), 0) << err.msg;
    ASSERT_EQ(vrpc_server_start(srv_, &err), 0) << err.msg;
    ch_ = vrpc_dial(uri_.c_str(), nullptr, nullptr, &err);
    ASSERT_NE(ch_, nullptr) << err.msg;
  }
  void TearDown() override {
    vrpc_channel_free(ch_);
    vrpc_server_free(srv_);
    std::string cmd = "rm -rf " + dir_;
    ASSERT_EQ(system(cmd.c_str()), 0);
  }

  // Unary echo; returns the status code.
  int Echo(const Msg &req, std::string *text, int64_t timeout_ms = 10000,
           vs_err *out_err = nullptr) {
    vs_err err;
    vs_err_clear(&err);
    ProtobufCMessage *resp = nullptr;
    vrpc_call_opts opts = {timeout_ms, nullptr};
    int rc = vrpc_unary(ch_, &vessel_test_Test_Unary, &req.base, &resp, &opts, &err);
    if (out_err) *out_err = err;
    if (rc < 0) return err.code;
    if (text) *text = reinterpret_cast<Msg *>(resp)->text;
    vrpc_msg_free(resp);
    return 0;
  }

  std::string dir_, uri_;
  Ctx ctx_;
  vrpc_server *srv_ = nullptr;
  vrpc_channel *ch_ = nullptr;
};

TEST_F(RpcTest, Unary) {
  Start();
  std::string text;
  EXPECT_EQ(Echo(make("hello"), &text), 0);
  EXPECT_EQ(text, "hello");
}

TEST_F(RpcTest, HandlerErrorBecomesStatus) {
  Start();
  Msg m = make("nope");
  m.fail_code = VS_NOT_FOUND;
  vs_err err;
  EXPECT_EQ(Echo(m, nullptr, 10000, &err), VS_NOT_FOUND);
  EXPECT_STREQ(err.msg, "asked to fail: nope");
}

TEST_F(RpcTest, ServerStreaming) {
  Start();
  vs_err err;
  vrpc_call *c = vrpc_call_start(ch_, &vessel_test_Test_ServerStream, nullptr, &err);
  ASSERT_NE(c, nullptr);
  Msg req = make("s", 50);
  ASSERT_EQ(vrpc_send(c, &req.base, &err), 0) << err.msg;
  ASSERT_EQ(vrpc_close_send(c, &err), 0) << err.msg;
  int n = 0;
  ProtobufCMessage *m;
  int r;
  while ((r = vrpc_recv(c, &m, &err)) == 1) {
    EXPECT_EQ(reinterpret_cast<Msg *>(m)->count, n);
    n++;
    vrpc_msg_free(m);
  }
  EXPECT_EQ(r, 0) << err.msg;
  EXPECT_EQ(n, 50);
  EXPECT_EQ(vrpc_finish(c, &err), 0);
  vrpc_call_free(c);
}

TEST_F(RpcTest, ClientStreaming) {
  Start();
  vs_err err;
  vrpc_call *c = vrpc_call_start(ch_, &vessel_test_Test_ClientStream, nullptr, &err);
  ASSERT_NE(c, nullptr);
  std::vector<uint8_t> buf(1000, 7);
  for (int i = 0; i < 100; i++) {
    Msg m = make("c", i);
    m.data.data = buf.data();
    m.data.len = buf.size();
    ASSERT_EQ(vrpc_send(c, &m.base, &err), 0) << err.msg;
  }
  ASSERT_EQ(vrpc_close_send(c, &err), 0);
  ProtobufCMessage *m;
  ASSERT_EQ(vrpc_recv(c, &m, &err), 1) << err.msg;
  EXPECT_EQ(reinterpret_cast<Msg *>(m)->count, 100);
  EXPECT_STREQ(reinterpret_cast<Msg *>(m)->text, "100000");
  vrpc_msg_free(m);
  EXPECT_EQ(vrpc_finish(c, &err), 0);
  vrpc_call_free(c);
}

TEST_F(RpcTest, BidiStreamingWithConcurrentReader) {
  Start();
  vs_err err;
  vrpc_call *c = vrpc_call_start(ch_, &vessel_test_Test_Bidi, nullptr, &err);
  ASSERT_NE(c, nullptr);
  std::atomic<int> got{0};
  std::thread reader([&] {
    vs_err rerr;
    ProtobufCMessage *m;
    while (vrpc_recv(c, &m, &rerr) == 1) {
      EXPECT_EQ(reinterpret_cast<Msg *>(m)->count, got.load());
      got++;
      vrpc_msg_free(m);
    }
  });
  for (int i = 0; i < 200; i++) {
    Msg m = make("b", i);
    ASSERT_EQ(vrpc_send(c, &m.base, &err), 0) << err.msg;
  }
  ASSERT_EQ(vrpc_close_send(c, &err), 0);
  reader.join();
  EXPECT_EQ(got.load(), 200);
  EXPECT_EQ(vrpc_finish(c, &err), 0);
  vrpc_call_free(c);
}

TEST_F(RpcTest, DeadlineExpiresAndHandlerSeesIt) {
  Start();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Echo(make("slow", 0, -1), nullptr, 300), VS_DEADLINE_EXCEEDED);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count();
  EXPECT_LT(ms, 5000);
  for (int i = 0; i < 200 && ctx_.cancelled_seen.load() == 0; i++) usleep(10000);
  EXPECT_EQ(ctx_.cancelled_seen.load(), 1);
}

TEST_F(RpcTest, ClientCancelReachesHandler) {
  Start();
  vs_err err;
  vrpc_call *c = vrpc_call_start(ch_, &vessel_test_Test_Unary, nullptr, &err);
  ASSERT_NE(c, nullptr);
  Msg req = make("block", 0, -1);
  ASSERT_EQ(vrpc_send(c, &req.base, &err), 0);
  ASSERT_EQ(vrpc_close_send(c, &err), 0);
  std::thread canceller([&] {
    while (ctx_.handled.load() == 0) usleep(1000);
    usleep(50000);
    vrpc_cancel(c);
  });
  ProtobufCMessage *m;
  EXPECT_EQ(vrpc_recv(c, &m, &err), -1);
  EXPECT_EQ(err.code, VS_CANCELLED);
  canceller.join();
  vrpc_call_free(c);
  for (int i = 0; i < 200 && ctx_.cancelled_seen.load() == 0; i++) usleep(10000);
  EXPECT_EQ(ctx_.cancelled_seen.load(), 1);
}

TEST_F(RpcTest, SixtyFourMiBMessage) {
  Start();
  std::vector<uint8_t> big(64u << 20);
  for (size_t i = 0; i < big.size(); i++) big[i] = (uint8_t)(i * 2654435761u >> 24);
  Msg req = make("big");
  req.data.data = big.data();
  req.data.len = big.size();
  vs_err err;
  ProtobufCMessage *resp;
  vrpc_call_opts opts = {60000, nullptr};
  ASSERT_EQ(vrpc_unary(ch_, &vessel_test_Test_Unary, &req.base, &resp, &opts, &err), 0)
      << err.msg;
  Msg *r = reinterpret_cast<Msg *>(resp);
  ASSERT_EQ(r->data.len, big.size());
  EXPECT_EQ(memcmp(r->data.data, big.data(), big.size()), 0);
  vrpc_msg_free(resp);
}

TEST_F(RpcTest, HundredParallelCallsWhileOneBlocks) {
  Start();
  std::atomic<int> blocker_status{-1};
  std::thread blocker([&] { blocker_status = Echo(make("wait", 0, -1), nullptr, 60000); });
  while (ctx_.handled.load() == 0) usleep(1000);

  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; i++) {
    threads.emplace_back([&, i] {
      std::string want = "call-" + std::to_string(i), got;
      // Every call sleeps a little so all 100 are in flight together.
      if (Echo(make(want.c_str(), 0, 200), &got) == 0 && got == want) ok++;
    });
  }
  for (auto &t : threads) t.join();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count();
  EXPECT_EQ(ok.load(), 100);
  EXPECT_LT(ms, 20000);  // would be 100 x 200 ms if serialised
  EXPECT_EQ(blocker_status.load(), -1);  // still blocked
  vrpc_server_shutdown(srv_, 0);
  blocker.join();
  EXPECT_NE(blocker_status.load(), 0);
}

TEST_F(RpcTest, ServeOnSocketpairFd) {
  vs_err err;
  ASSERT_EQ(vrpc_server_start(srv_, &err), 0) << err.msg;
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ASSERT_EQ(vrpc_server_serve_fd(srv_, sv[0], &err), 0) << err.msg;
  ch_ = vrpc_dial_fd(sv[1], nullptr, &err);
  ASSERT_NE(ch_, nullptr) << err.msg;
  std::string text;
  EXPECT_EQ(Echo(make("over fd"), &text), 0);
  EXPECT_EQ(text, "over fd");
  // Streaming works over the fd channel too.
  vrpc_call *c = vrpc_call_start(ch_, &vessel_test_Test_Bidi, nullptr, &err);
  Msg m = make("x", 1);
  ASSERT_EQ(vrpc_send(c, &m.base, &err), 0);
  ProtobufCMessage *in;
  ASSERT_EQ(vrpc_recv(c, &in, &err), 1);
  vrpc_msg_free(in);
  ASSERT_EQ(vrpc_close_send(c, &err), 0);
  EXPECT_EQ(vrpc_recv(c, &in, &err), 0);
  vrpc_call_free(c);
}

TEST_F(RpcTest, ShutdownCancelsCallsInFlight) {
  Start();
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int i = 0; i < 5; i++)
    threads.emplace_back([&] {
      if (Echo(make("wait", 0, -1), nullptr, 60000) != 0) failed++;
    });
  while (ctx_.handled.load() < 5) usleep(1000);
  auto t0 = std::chrono::steady_clock::now();
  vrpc_server_shutdown(srv_, 100);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count();
  for (auto &t : threads) t.join();
  EXPECT_EQ(failed.load(), 5);
  EXPECT_EQ(ctx_.cancelled_seen.load(), 5);
  EXPECT_LT(ms, 5000);
}

TEST_F(RpcTest, UnknownMethodIsUnimplemented) {
  Start();
  static const vrpc_method bogus = {"/vessel.test.Test/Nope", VRPC_UNARY,
                                    &vessel__test__msg__descriptor,
                                    &vessel__test__msg__descriptor};
  Msg req = make("x");
  vs_err err;
  ProtobufCMessage *resp;
  EXPECT_EQ(vrpc_unary(ch_, &bogus, &req.base, &resp, nullptr, &err), -1);
  EXPECT_EQ(err.code, VS_UNIMPLEMENTED);
  EXPECT_NE(std::string(err.msg).find("/vessel.test.Test/Nope"), std::string::npos);
}

TEST_F(RpcTest, RequestMetadataReachesHandler) {
  Start();
  const char *md[] = {"x-vessel-test", "hello-md", nullptr};
  vrpc_call_opts opts = {5000, md};
  Msg req = make("x");
  vs_err err;
  ProtobufCMessage *resp;
  ASSERT_EQ(vrpc_unary(ch_, &vessel_test_Test_Metadata, &req.base, &resp, &opts, &err), 0);
  EXPECT_STREQ(reinterpret_cast<Msg *>(resp)->text, "hello-md");
  vrpc_msg_free(resp);
}

TEST_F(RpcTest, HealthCheck) {
  Start();
  Grpc__Health__V1__HealthCheckRequest req;
  grpc__health__v1__health_check_request__init(&req);
  req.service = const_cast<char *>("vessel.test.Test");
  vs_err err;
  ProtobufCMessage *resp;
  ASSERT_EQ(vrpc_unary(ch_, &grpc_health_v1_Health_Check, &req.base, &resp, nullptr, &err), 0)
      << err.msg;
  EXPECT_EQ(reinterpret_cast<Grpc__Health__V1__HealthCheckResponse *>(resp)->status,
            GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
  vrpc_msg_free(resp);
  req.service = const_cast<char *>("no.such.Service");
  EXPECT_EQ(vrpc_unary(ch_, &grpc_health_v1_Health_Check, &req.base, &resp, nullptr, &err), -1);
  EXPECT_EQ(err.code, VS_NOT_FOUND);
}

TEST_F(RpcTest, ReflectionListsAndResolves) {
  Start();
  vs_err err;
  vrpc_call *c = vrpc_call_start(ch_, &grpc_reflection_v1_ServerReflection_ServerReflectionInfo,
                                 nullptr, &err);
  ASSERT_NE(c, nullptr);
  Grpc__Reflection__V1__ServerReflectionRequest req;
  grpc__reflection__v1__server_reflection_request__init(&req);
  req.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  req.list_services = const_cast<char *>("");
  ASSERT_EQ(vrpc_send(c, &req.base, &err), 0);
  ProtobufCMessage *m;
  ASSERT_EQ(vrpc_recv(c, &m, &err), 1) << err.msg;
  auto *resp = reinterpret_cast<Grpc__Reflection__V1__ServerReflectionResponse *>(m);
  ASSERT_NE(resp->list_services_response, nullptr);
  std::vector<std::string> names;
  for (size_t i = 0; i < resp->list_services_response->n_service; i++)
    names.push_back(resp->list_services_response->service[i]->name);
  vrpc_msg_free(m);
  EXPECT_NE(std::find(names.begin(), names.end(), "vessel.test.Test"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.health.v1.Health"), names.end());

  req.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  req.file_containing_symbol = const_cast<char *>("vessel.test.Test.Bidi");
  ASSERT_EQ(vrpc_send(c, &req.base, &err), 0);
  ASSERT_EQ(vrpc_recv(c, &m, &err), 1);
  resp = reinterpret_cast<Grpc__Reflection__V1__ServerReflectionResponse *>(m);
  ASSERT_NE(resp->file_descriptor_response, nullptr);
  ASSERT_GE(resp->file_descriptor_response->n_file_descriptor_proto, 1u);
  ProtobufCBinaryData fd = resp->file_descriptor_response->file_descriptor_proto[0];
  std::string bytes(reinterpret_cast<char *>(fd.data), fd.len);
  EXPECT_NE(bytes.find("test.proto"), std::string::npos);
  vrpc_msg_free(m);

  req.file_containing_symbol = const_cast<char *>("no.such.Symbol");
  ASSERT_EQ(vrpc_send(c, &req.base, &err), 0);
  ASSERT_EQ(vrpc_recv(c, &m, &err), 1);
  resp = reinterpret_cast<Grpc__Reflection__V1__ServerReflectionResponse *>(m);
  ASSERT_NE(resp->error_response, nullptr);
  EXPECT_EQ(resp->error_response->error_code, VS_NOT_FOUND);
  vrpc_msg_free(m);
  vrpc_close_send(c, &err);
  vrpc_call_free(c);
}

// TLS: certificates from the openssl CLI; the server requires client certs.
class TlsTest : public RpcTest {
 protected:
  void MakeCa(const std::string &name) {
    std::string d = dir_ + "/" + name;
    std::string cmd =
        "set -e; mkdir -p " + d + "; cd " + d +
        "; openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "-subj /CN=" + name + "-ca 2>/dev/null"
        "; for who in server client; do "
        "openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj /CN=localhost 2>/dev/null; "
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext; "
        "openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem "
        "-days 2 -extfile ext 2>/dev/null; done";
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  std::string P(const std::string &ca, const std::string &f) { return dir_ + "/" + ca + "/" + f; }
};

TEST_F(TlsTest, MutualTlsRequired) {
  MakeCa("good");
  MakeCa("evil");
  std::string scert = P("good", "server.pem"), skey = P("good", "server.key"),
              sca = P("good", "ca.pem");
  vrpc_tls stls = {scert.c_str(), skey.c_str(), sca.c_str(), nullptr};
  vs_err err;
  int port = 0;
  ASSERT_EQ(vrpc_server_listen(srv_, "tcp://127.0.0.1:0", &stls, &port, &err), 0) << err.msg;
  ASSERT_EQ(vrpc_server_start(srv_, &err), 0);
  std::string uri = "tcp://127.0.0.1:" + std::to_string(port);

  auto call = [&](const std::string &ca, const std::string &cert, const std::string &key) {
    vrpc_tls t = {cert.empty() ? nullptr : cert.c_str(), key.empty() ? nullptr : key.c_str(),
                  ca.c_str(), nullptr};
    vs_err e;
    vrpc_channel *ch = vrpc_dial(uri.c_str(), &t, nullptr, &e);
    if (!ch) return -100;
    Msg req = make("tls");
    ProtobufCMessage *resp = nullptr;
    vrpc_call_opts opts = {5000, nullptr};
    int rc = vrpc_unary(ch, &vessel_test_Test_Unary, &req.base, &resp, &opts, &e);
    vrpc_msg_free(resp);
    vrpc_channel_free(ch);
    return rc == 0 ? 0 : (int)e.code;
  };
  EXPECT_EQ(call(sca, P("good", "client.pem"), P("good", "client.key")), 0);
  EXPECT_NE(call(sca, "", ""), 0);  // no client certificate
  EXPECT_NE(call(sca, P("evil", "client.pem"), P("evil", "client.key")), 0);  // other CA
  EXPECT_NE(call(P("evil", "ca.pem"), P("good", "client.pem"), P("good", "client.key")),
            0);  // client does not trust the server
  // Plaintext against the TLS port fails too.
  vrpc_channel *plain = vrpc_dial(uri.c_str(), nullptr, nullptr, &err);
  Msg req = make("plain");
  ProtobufCMessage *resp = nullptr;
  vrpc_call_opts opts = {3000, nullptr};
  EXPECT_EQ(vrpc_unary(plain, &vessel_test_Test_Unary, &req.base, &resp, &opts, &err), -1);
  vrpc_channel_free(plain);
}

}  // namespace

namespace {
// One client connection may have at most max_calls_per_connection calls in
// flight; one more is RESOURCE_EXHAUSTED at once, while another connection
// to the same unix socket is served, and the first is served again once
// its calls ended.
TEST_F(RpcTest, CallsInFlightAreLimitedPerConnection) {
  vs_err err;
  vrpc_server_free(srv_);
  vrpc_server_opts o = {};
  o.max_calls_per_connection = 3;
  srv_ = vrpc_server_new(&o, &err);
  ASSERT_NE(srv_, nullptr) << err.msg;
  ASSERT_EQ(vessel_test_Test_register(srv_, &kHandlers, &ctx_, &err), 0) << err.msg;
  Start();
  std::vector<std::thread> slow;
  std::atomic<int> slow_ok{0};
  for (int i = 0; i < 3; i++)
    slow.emplace_back([&] {
      if (Echo(make("slow", 0, 1500), nullptr, 30000) == 0) slow_ok++;
    });
  while (ctx_.handled.load() < 3) usleep(1000);
  vs_err e;
  EXPECT_EQ(Echo(make("one too many"), nullptr, 10000, &e), VS_RESOURCE_EXHAUSTED);
  EXPECT_NE(std::string(e.msg).find("at most 3"), std::string::npos) << e.msg;
  // Another connection (channels to one target share gRPC's subchannel, so
  // connect by hand).
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s/s.sock", dir_.c_str());
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  vrpc_channel *other = vrpc_dial_fd(fd, nullptr, &err);
  ASSERT_NE(other, nullptr) << err.msg;
  Msg m = make("other connection");
  ProtobufCMessage *resp = nullptr;
  vrpc_call_opts opts = {10000, nullptr};
  EXPECT_EQ(vrpc_unary(other, &vessel_test_Test_Unary, &m.base, &resp, &opts, &err), 0) << err.msg;
  vrpc_msg_free(resp);
  vrpc_channel_free(other);
  for (auto &t : slow) t.join();
  EXPECT_EQ(slow_ok.load(), 3);
  std::string text;
  EXPECT_EQ(Echo(make("again"), &text), 0);
  EXPECT_EQ(text, "again");
}

// on_done sees every call as it ends: its method (NULL for an unknown
// path), the status sent (also one a handler sent early with
// vrpc_server_finish) and how long it took.
struct Done {
  std::mutex mu;
  std::vector<std::tuple<std::string, vs_code, int64_t>> calls;
  size_t Count() {
    std::lock_guard<std::mutex> l(mu);
    return calls.size();
  }
};

TEST_F(RpcTest, OnDoneReportsMethodStatusAndDuration) {
  vs_err err;
  vrpc_server_free(srv_);
  Done done;
  vrpc_server_opts o = {};
  o.on_done = [](void *arg, const vrpc_method *m, vs_code code, int64_t ns) {
    auto *d = static_cast<Done *>(arg);
    std::lock_guard<std::mutex> l(d->mu);
    d->calls.emplace_back(m ? m->path : "(null)", code, ns);
  };
  o.on_done_arg = &done;
  srv_ = vrpc_server_new(&o, &err);
  ASSERT_NE(srv_, nullptr) << err.msg;
  ASSERT_EQ(vessel_test_Test_register(srv_, &kHandlers, &ctx_, &err), 0) << err.msg;
  Start();
  EXPECT_EQ(Echo(make("fast"), nullptr), 0);
  Msg slow = make("slow", 0, 200);
  slow.fail_code = VS_NOT_FOUND;
  EXPECT_EQ(Echo(slow, nullptr), VS_NOT_FOUND);
  static const vrpc_method bogus = {"/vessel.test.Test/Nope", VRPC_UNARY,
                                    &vessel__test__msg__descriptor,
                                    &vessel__test__msg__descriptor};
  Msg req = make("x");
  ProtobufCMessage *resp;
  EXPECT_EQ(vrpc_unary(ch_, &bogus, &req.base, &resp, nullptr, &err), -1);
  // A report follows the status the client already has: wait for them.
  // They may come in another order than the calls (the slow call's can
  // come after the next call's): found by their codes.
  for (int i = 0; i < 5000 && done.Count() < 3; i++) usleep(1000);
  ASSERT_EQ(done.Count(), 3u);
  std::lock_guard<std::mutex> l(done.mu);
  std::map<int, std::pair<std::string, int64_t>> by_code;
  for (auto &c : done.calls) by_code[std::get<1>(c)] = {std::get<0>(c), std::get<2>(c)};
  ASSERT_EQ(by_code.size(), 3u);
  EXPECT_EQ(by_code[VS_OK].first, "/vessel.test.Test/Unary");
  EXPECT_LT(by_code[VS_OK].second, 150 * 1000000LL);
  EXPECT_EQ(by_code[VS_NOT_FOUND].first, "/vessel.test.Test/Unary");
  EXPECT_GE(by_code[VS_NOT_FOUND].second, 200 * 1000000LL);
  EXPECT_EQ(by_code[VS_UNIMPLEMENTED].first, "(null)");
}

// A call refused for the per-connection limit is reported too.
TEST_F(RpcTest, OnDoneReportsCallsRefusedAtOnce) {
  vs_err err;
  vrpc_server_free(srv_);
  Done done;
  vrpc_server_opts o = {};
  o.max_calls_per_connection = 1;
  o.on_done = [](void *arg, const vrpc_method *m, vs_code code, int64_t ns) {
    auto *d = static_cast<Done *>(arg);
    std::lock_guard<std::mutex> l(d->mu);
    d->calls.emplace_back(m ? m->path : "(null)", code, ns);
  };
  o.on_done_arg = &done;
  srv_ = vrpc_server_new(&o, &err);
  ASSERT_NE(srv_, nullptr) << err.msg;
  ASSERT_EQ(vessel_test_Test_register(srv_, &kHandlers, &ctx_, &err), 0) << err.msg;
  Start();
  std::thread t([&] { EXPECT_EQ(Echo(make("slow", 0, 500), nullptr, 30000), 0); });
  while (ctx_.handled.load() < 1) usleep(1000);
  EXPECT_EQ(Echo(make("refused"), nullptr), VS_RESOURCE_EXHAUSTED);
  t.join();
  for (int i = 0; i < 5000 && done.Count() < 2; i++) usleep(1000);
  ASSERT_EQ(done.Count(), 2u);
  std::lock_guard<std::mutex> l(done.mu);
  EXPECT_EQ(std::get<0>(done.calls[0]), "/vessel.test.Test/Unary");
  EXPECT_EQ(std::get<1>(done.calls[0]), VS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(std::get<1>(done.calls[1]), VS_OK);
}
}  // namespace
