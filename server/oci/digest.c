/* SHA-256 digests ("sha256:<hex>") with OpenSSL's EVP interface. */
#include <string.h>

#include <openssl/evp.h>

#include "server/oci/oci.h"

int oci_digest_valid(const char *d) {
  if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71) return 0;
  for (const char *p = d + 7; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  return 1;
}

int oci_sha256_init(oci_sha256 *h, vs_err *err) {
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
    EVP_MD_CTX_free(c);
    h->ctx = NULL;
    return vs_err_set(err, VS_INTERNAL, "cannot initialise SHA-256");
  }
  h->ctx = c;
  return 0;
}

void oci_sha256_update(oci_sha256 *h, const void *data, size_t len) {
  if (len) EVP_DigestUpdate(h->ctx, data, len);
}

void oci_sha256_final(oci_sha256 *h, char out[72]) {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(h->ctx, md, &n);
  static const char hex[] = "0123456789abcdef";
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < 32; i++) {
    out[7 + 2 * i] = hex[md[i] >> 4];
    out[8 + 2 * i] = hex[md[i] & 15];
  }
  out[71] = '\0';
  oci_sha256_free(h);
}

void oci_sha256_free(oci_sha256 *h) {
  EVP_MD_CTX_free(h->ctx);
  h->ctx = NULL;
}

void oci_sha256_bytes(const void *data, size_t len, char out[72]) {
  oci_sha256 h;
  if (oci_sha256_init(&h, NULL) < 0) {
    out[0] = '\0';
    return;
  }
  oci_sha256_update(&h, data, len);
  oci_sha256_final(&h, out);
}
