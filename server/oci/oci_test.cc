#include <gtest/gtest.h>

#include <string>

#include "server/oci/oci.h"

namespace {

std::string Norm(const char *in) {
  oci_ref r;
  vs_err e;
  if (oci_ref_parse(in, &r, &e) < 0) return std::string("ERR: ") + e.msg;
  char *s = oci_ref_string(&r);
  std::string out = s;
  free(s);
  oci_ref_free(&r);
  return out;
}

const char *kDigest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

TEST(Ref, Normalisation) {
  EXPECT_EQ(Norm("alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(Norm("alpine:3.19"), "docker.io/library/alpine:3.19");
  EXPECT_EQ(Norm("user/app"), "docker.io/user/app:latest");
  EXPECT_EQ(Norm("docker.io/alpine"), "docker.io/library/alpine:latest");
  EXPECT_EQ(Norm("index.docker.io/library/alpine:1"), "docker.io/library/alpine:1");
  EXPECT_EQ(Norm("localhost/app"), "localhost/app:latest");
  EXPECT_EQ(Norm("localhost:5000/a/b/c:v1.2_3"), "localhost:5000/a/b/c:v1.2_3");
  EXPECT_EQ(Norm("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox:latest");
  EXPECT_EQ(Norm("ghcr.io/o/r"), "ghcr.io/o/r:latest");
  EXPECT_EQ(Norm((std::string("alpine@") + kDigest).c_str()),
            std::string("docker.io/library/alpine@") + kDigest);
  EXPECT_EQ(Norm((std::string("alpine:3@") + kDigest).c_str()),
            std::string("docker.io/library/alpine:3@") + kDigest);
  EXPECT_EQ(Norm("my_app.v2__x-y---z"), "docker.io/library/my_app.v2__x-y---z:latest");
}

TEST(Ref, Errors) {
  EXPECT_NE(Norm("").find("empty"), std::string::npos);
  EXPECT_NE(Norm("Alpine").find("lowercase"), std::string::npos);
  EXPECT_NE(Norm("alpine@sha256:xyz").find("digest"), std::string::npos);
  EXPECT_NE(Norm("alpine@md5:0123").find("digest"), std::string::npos);
  EXPECT_NE(Norm("alpine:-bad").find("tag"), std::string::npos);
  EXPECT_NE(Norm("a//b").find("component"), std::string::npos);
  EXPECT_NE(Norm("a/_b").find("component"), std::string::npos);
  EXPECT_NE(Norm("a/b..c").find("component"), std::string::npos);
  EXPECT_NE(Norm("host:99999999/x").find("host"), std::string::npos);
  EXPECT_NE(Norm("localhost:5000/").find("missing"), std::string::npos);
  EXPECT_NE(Norm(std::string(300, 'a').c_str()).find("longer"), std::string::npos);
  EXPECT_NE(Norm(("x:" + std::string(200, 't')).c_str()).find("tag"), std::string::npos);
}

TEST(Ref, RegistryHost) {
  oci_ref r;
  vs_err e;
  ASSERT_EQ(oci_ref_parse("alpine", &r, &e), 0);
  EXPECT_STREQ(oci_ref_registry_host(&r), "registry-1.docker.io");
  char *name = oci_ref_name(&r);
  EXPECT_STREQ(name, "docker.io/library/alpine");
  free(name);
  oci_ref_free(&r);
  ASSERT_EQ(oci_ref_parse("localhost:5000/x", &r, &e), 0);
  EXPECT_STREQ(oci_ref_registry_host(&r), "localhost:5000");
  oci_ref_free(&r);
}

TEST(Digest, Sha256) {
  char d[72];
  oci_sha256_bytes("abc", 3, d);
  EXPECT_STREQ(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(oci_digest_valid(d));
  EXPECT_FALSE(oci_digest_valid("sha256:BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  EXPECT_FALSE(oci_digest_valid("sha512:ba78"));
  EXPECT_FALSE(oci_digest_valid(nullptr));
}

std::string Plat(const char *s) {
  oci_platform p;
  vs_err e;
  if (oci_platform_parse(s, &p, &e) < 0) return "ERR";
  char buf[100];
  oci_platform_format(&p, buf, sizeof buf);
  return buf;
}

TEST(Platform, ParseAndNormalise) {
  EXPECT_EQ(Plat("linux/amd64"), "linux/amd64");
  EXPECT_EQ(Plat("linux/x86_64"), "linux/amd64");
  EXPECT_EQ(Plat("linux/aarch64"), "linux/arm64");
  EXPECT_EQ(Plat("linux/arm64/v8"), "linux/arm64");
  EXPECT_EQ(Plat("linux/arm"), "linux/arm/v7");
  EXPECT_EQ(Plat("linux/armhf"), "linux/arm/v7");
  EXPECT_EQ(Plat("linux/arm/v6"), "linux/arm/v6");
  EXPECT_EQ(Plat("linux//v7"), "ERR");
  EXPECT_EQ(Plat("a/b/c/d"), "ERR");
  EXPECT_EQ(Plat("Linux/AMD64"), "ERR");
  oci_platform a, b;
  vs_err e;
  oci_platform_parse("linux/arm64/v8", &a, &e);
  oci_platform_parse("linux/aarch64", &b, &e);
  EXPECT_TRUE(oci_platform_match(&a, &b));
}

const char kIndex[] = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 10,
     "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
     "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 11,
     "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 12,
     "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
     "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}}
  ]})";

TEST(Document, IndexSelect) {
  oci_index idx;
  vs_err e;
  ASSERT_EQ(oci_index_parse(kIndex, sizeof kIndex - 1, &idx, &e), 0) << e.msg;
  ASSERT_EQ(idx.n_manifests, 3u);
  oci_platform want;
  oci_platform_parse("linux/aarch64", &want, &e);
  const oci_descriptor *d = oci_index_select(&idx, &want, &e);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->size, 11);
  oci_platform_parse("linux/arm/v6", &want, &e);
  d = oci_index_select(&idx, &want, &e);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->size, 12);
  oci_platform_parse("linux/s390x", &want, &e);
  EXPECT_EQ(oci_index_select(&idx, &want, &e), nullptr);
  EXPECT_EQ(e.code, VS_NOT_FOUND);
  EXPECT_NE(std::string(e.msg).find("linux/arm64, linux/arm/v6"), std::string::npos) << e.msg;
  oci_index_free(&idx);
}

const char kManifest[] = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 5,
    "digest": "sha256:4444444444444444444444444444444444444444444444444444444444444444"},
  "layers": [
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 100,
     "digest": "sha256:5555555555555555555555555555555555555555555555555555555555555555"},
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "size": 200,
     "digest": "sha256:6666666666666666666666666666666666666666666666666666666666666666"}
  ]})";

TEST(Document, Manifest) {
  oci_manifest m;
  vs_err e;
  ASSERT_EQ(oci_manifest_parse(kManifest, sizeof kManifest - 1, &m, &e), 0) << e.msg;
  EXPECT_EQ(m.n_layers, 2u);
  EXPECT_EQ(m.layers[1].size, 200);
  EXPECT_EQ(oci_layer_compression(m.layers[0].media_type), OCI_COMP_GZIP);
  EXPECT_EQ(oci_layer_compression(m.layers[1].media_type), OCI_COMP_ZSTD);
  EXPECT_EQ(oci_kind_of(m.media_type), OCI_KIND_MANIFEST);
  oci_manifest_free(&m);
  char *mt = oci_document_media_type(kIndex, sizeof kIndex - 1);
  EXPECT_STREQ(mt, OCI_MT_INDEX);
  free(mt);
}

TEST(Document, HostileDocumentsAreRejected) {
  oci_manifest m;
  vs_err e;
  std::string bad = kManifest;
  bad.replace(bad.find("sha256:5555"), 11, "sha256:XYZW");
  EXPECT_EQ(oci_manifest_parse(bad.data(), bad.size(), &m, &e), -1);
  EXPECT_NE(std::string(e.msg).find("digest"), std::string::npos);
  std::string neg = kManifest;
  neg.replace(neg.find("\"size\": 100"), 11, "\"size\": -1 ");
  EXPECT_EQ(oci_manifest_parse(neg.data(), neg.size(), &m, &e), -1);
  EXPECT_NE(std::string(e.msg).find("size"), std::string::npos);
  std::string big(OCI_MAX_DOCUMENT + 1, ' ');
  EXPECT_EQ(oci_manifest_parse(big.data(), big.size(), &m, &e), -1);
  EXPECT_EQ(e.code, VS_RESOURCE_EXHAUSTED);
  EXPECT_EQ(oci_manifest_parse("[1,2]", 5, &m, &e), -1);
  EXPECT_EQ(oci_manifest_parse("{\"schemaVersion\":1}", 19, &m, &e), -1);
  EXPECT_NE(std::string(e.msg).find("schema1"), std::string::npos);
  EXPECT_EQ(oci_manifest_parse("{not json", 9, &m, &e), -1);
  EXPECT_EQ(e.code, VS_INVALID_ARGUMENT);
}

TEST(Document, Config) {
  const char cfg[] = R"({"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05.123Z",
    "config":{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],"Env":["PATH=/bin","A=b"],
      "WorkingDir":"/w","User":"nobody","Labels":{"k":"v"},"ExposedPorts":{"80/tcp":{}},
      "StopSignal":"SIGQUIT","Volumes":{"/data":{}}},
    "rootfs":{"type":"layers","diff_ids":["sha256:77"]}})";
  oci_config c;
  vs_err e;
  ASSERT_EQ(oci_config_parse(cfg, sizeof cfg - 1, &c, &e), 0) << e.msg;
  ASSERT_EQ(c.n_entrypoint, 2u);
  EXPECT_STREQ(c.entrypoint[1], "-c");
  ASSERT_EQ(c.n_cmd, 1u);
  EXPECT_EQ(c.n_env, 2u);
  EXPECT_STREQ(c.working_dir, "/w");
  EXPECT_STREQ(c.user, "nobody");
  EXPECT_STREQ(c.stop_signal, "SIGQUIT");
  ASSERT_EQ(c.n_labels, 1u);
  EXPECT_STREQ(c.labels[1], "v");
  EXPECT_STREQ(c.exposed_ports[0], "80/tcp");
  EXPECT_STREQ(c.volumes[0], "/data");
  EXPECT_EQ(c.created, 1704164645);
  EXPECT_STREQ(c.platform.arch, "amd64");
  oci_config_free(&c);
}

}  // namespace
