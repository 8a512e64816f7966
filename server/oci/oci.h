/* oci: the OCI image model — references, digests, platforms, media types and
 * the JSON documents (index, manifest, config) — with no I/O. Everything a
 * registry or an archive hands us is parsed here and treated as hostile:
 * sizes are bounded, digests validated, unknown fields ignored. */
#ifndef VESSEL_SERVER_OCI_OCI_H
#define VESSEL_SERVER_OCI_OCI_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Manifests, indexes and configs larger than this are refused, so a hostile
 * registry cannot exhaust memory. */
#define OCI_MAX_DOCUMENT (4u << 20)
/* Layers of one image manifest (Docker's own images stop at 127). */
#define OCI_MAX_LAYERS 1000

#define OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define OCI_MT_LAYER "application/vnd.oci.image.layer.v1.tar"
#define OCI_MT_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define OCI_MT_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define DOCKER_MT_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define DOCKER_MT_CONFIG "application/vnd.docker.container.image.v1+json"
#define DOCKER_MT_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define DOCKER_MT_FOREIGN "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

/* The Accept header for resolving a reference: every manifest kind we read. */
#define OCI_ACCEPT_MANIFESTS \
  OCI_MT_INDEX ", " OCI_MT_MANIFEST ", " DOCKER_MT_LIST ", " DOCKER_MT_MANIFEST

/* ---- references ---- */

/* "alpine" -> domain "docker.io", path "library/alpine", tag "latest". */
typedef struct oci_ref {
  char *domain; /* "docker.io", "localhost:5000", "ghcr.io" */
  char *path;   /* "library/alpine" */
  char *tag;    /* NULL when only a digest is given */
  char *digest; /* "sha256:..." or NULL */
} oci_ref;

/* Parses and normalises a reference; a missing tag and digest means
 * "latest". Errors name what is wrong (INVALID_ARGUMENT). */
int oci_ref_parse(const char *s, oci_ref *out, vs_err *err);
void oci_ref_free(oci_ref *r);
/* "docker.io/library/alpine:latest", "...@sha256:..", "...:tag@sha256:..". */
char *oci_ref_string(const oci_ref *r);
/* "docker.io/library/alpine" (no tag or digest). */
char *oci_ref_name(const oci_ref *r);
/* Host to talk to: docker.io is served by registry-1.docker.io. */
const char *oci_ref_registry_host(const oci_ref *r);

/* ---- digests ---- */

/* 1 for "sha256:<64 lowercase hex>" (the only algorithm vessel accepts). */
int oci_digest_valid(const char *digest);

typedef struct oci_sha256 {
  void *ctx; /* EVP_MD_CTX */
} oci_sha256;

int oci_sha256_init(oci_sha256 *h, vs_err *err);
void oci_sha256_update(oci_sha256 *h, const void *data, size_t len);
/* Writes "sha256:<hex>" (72 bytes incl. NUL) and releases h. */
void oci_sha256_final(oci_sha256 *h, char out[72]);
void oci_sha256_free(oci_sha256 *h);
void oci_sha256_bytes(const void *data, size_t len, char out[72]);

/* ---- platforms ---- */

typedef struct oci_platform {
  char os[32];
  char arch[32];
  char variant[16];
} oci_platform;

/* Normalises aliases: x86_64/x86-64 -> amd64, aarch64 -> arm64 (v8 variant
 * dropped, the default), armhf -> arm v7, i386/i686 -> 386. */
void oci_platform_normalize(oci_platform *p);
/* The host's platform (uname). */
void oci_platform_host(oci_platform *p);
/* "linux/arm64/v8" or "linux/amd64"; fields may be empty (= host). */
int oci_platform_parse(const char *s, oci_platform *p, vs_err *err);
void oci_platform_format(const oci_platform *p, char *buf, size_t n);
/* want's empty fields match anything; compares after normalisation. */
int oci_platform_match(const oci_platform *want, const oci_platform *have);

/* ---- documents ---- */

typedef struct oci_descriptor {
  char *media_type;
  char digest[72];
  int64_t size;
  int has_platform;
  oci_platform platform;
  char **urls; /* foreign layers: where the blob lives (not fetched) */
  size_t n_urls;
} oci_descriptor;

typedef enum oci_kind {
  OCI_KIND_UNKNOWN = 0,
  OCI_KIND_INDEX,    /* OCI index or Docker manifest list */
  OCI_KIND_MANIFEST, /* OCI or Docker schema2 manifest */
} oci_kind;

/* Classifies a media type (or, when empty, the document's own fields). */
oci_kind oci_kind_of(const char *media_type);

typedef struct oci_index {
  oci_descriptor *manifests;
  size_t n_manifests;
} oci_index;

typedef struct oci_manifest {
  char *media_type;
  oci_descriptor config;
  oci_descriptor *layers;
  size_t n_layers;
} oci_manifest;

typedef struct oci_config {
  oci_platform platform;
  char **entrypoint;
  size_t n_entrypoint;
  char **cmd;
  size_t n_cmd;
  char **env;
  size_t n_env;
  char *working_dir;
  char *user;
  char *stop_signal;
  char **labels; /* key, value, ... */
  size_t n_labels;
  char **exposed_ports;
  size_t n_exposed_ports;
  char **volumes;
  size_t n_volumes;
  int64_t created; /* unix seconds, 0 = unknown */
  char **diff_ids;
  size_t n_diff_ids;
} oci_config;

/* Parsers take the raw bytes (not NUL-terminated) and reject documents over
 * OCI_MAX_DOCUMENT, invalid JSON, missing or invalid digests, negative sizes. */
int oci_index_parse(const char *json, size_t len, oci_index *out, vs_err *err);
int oci_manifest_parse(const char *json, size_t len, oci_manifest *out, vs_err *err);
int oci_config_parse(const char *json, size_t len, oci_config *out, vs_err *err);
/* The document's own mediaType field (may be NULL); returns a new string. */
char *oci_document_media_type(const char *json, size_t len);

void oci_descriptor_free(oci_descriptor *d);
void oci_index_free(oci_index *i);
void oci_manifest_free(oci_manifest *m);
void oci_config_free(oci_config *c);

/* Picks the manifest for want (empty fields: host values) from an index.
 * NOT_FOUND lists the platforms that are available. */
const oci_descriptor *oci_index_select(const oci_index *idx, const oci_platform *want,
                                       vs_err *err);

typedef enum oci_compression {
  OCI_COMP_UNKNOWN = 0,
  OCI_COMP_NONE,
  OCI_COMP_GZIP,
  OCI_COMP_ZSTD,
} oci_compression;

/* Compression of a layer media type; OCI_COMP_UNKNOWN for non-layers. */
oci_compression oci_layer_compression(const char *media_type);
/* 1 for non-distributable / foreign layers (not pulled or pushed). */
int oci_layer_is_foreign(const char *media_type);

#ifdef __cplusplus
}
#endif
#endif
