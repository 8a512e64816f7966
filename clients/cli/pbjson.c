/* JSON for any protobuf-c message, walked through its descriptor (the
 * CLI's --json output; protobuf-c has no JSON of its own), in protobuf's
 * proto3 JSON mapping, as grpcurl and every protobuf library print it:
 * lowerCamelCase field names, enums by name, 64-bit integers as strings,
 * bytes as base64, Timestamps as RFC 3339, default values left out. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include <openssl/evp.h>

#include "clients/cli/vesselctl.h"

static void str(FILE *o, const char *s, size_t n) {
  fputc('"', o);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    switch (ch) {
      case '"': fputs("\\\"", o); break;
      case '\\': fputs("\\\\", o); break;
      case '\n': fputs("\\n", o); break;
      case '\r': fputs("\\r", o); break;
      case '\t': fputs("\\t", o); break;
      default:
        if (ch < 0x20) fprintf(o, "\\u%04x", ch);
        else fputc(ch, o);
    }
  }
  fputc('"', o);
}

/* protoc's json_name: foo_bar_baz -> "fooBarBaz". */
static void json_name(FILE *o, const char *name) {
  fputc('"', o);
  for (int up = 0; *name; name++) {
    if (*name == '_') {
      up = 1;
      continue;
    }
    fputc(up && *name >= 'a' && *name <= 'z' ? *name - 'a' + 'A' : *name, o);
    up = 0;
  }
  fputc('"', o);
}

static void pad(FILE *o, int n) {
  fputc('\n', o);
  for (int i = 0; i < n; i++) fputc(' ', o);
}

/* One value of a field (element i of a repeated one). */
static void value(FILE *o, const ProtobufCFieldDescriptor *f, const void *p, int indent) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: fprintf(o, "%" PRId32, *(const int32_t *)p); break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: fprintf(o, "%" PRIu32, *(const uint32_t *)p); break;
    /* 64-bit integers as strings: JSON numbers are doubles to most readers */
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: fprintf(o, "\"%" PRId64 "\"", *(const int64_t *)p); break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: fprintf(o, "\"%" PRIu64 "\"", *(const uint64_t *)p); break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
      double v = f->type == PROTOBUF_C_TYPE_FLOAT ? (double)*(const float *)p : *(const double *)p;
      if (isnan(v)) fputs("\"NaN\"", o);
      else if (isinf(v)) fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", o);
      else fprintf(o, f->type == PROTOBUF_C_TYPE_FLOAT ? "%.9g" : "%.17g", v);
      break;
    }
    case PROTOBUF_C_TYPE_BOOL: fputs(*(const protobuf_c_boolean *)p ? "true" : "false", o); break;
    case PROTOBUF_C_TYPE_ENUM: {
      const ProtobufCEnumValue *ev =
          protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
      if (ev) str(o, ev->name, strlen(ev->name));
      else fprintf(o, "%d", *(const int *)p);
      break;
    }
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)p;
      str(o, s ? s : "", s ? strlen(s) : 0);
      break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      const ProtobufCBinaryData *b = p;
      unsigned char *enc = malloc(4 * (b->len / 3 + 1) + 1);
      int n = enc ? EVP_EncodeBlock(enc, b->data, (int)b->len) : 0;
      str(o, (const char *)enc, (size_t)n);
      free(enc);
      break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
      if (m) vc_json(o, m, indent);
      else fputs("null", o);
      break;
    }
  }
}

static int is_map_entry(const ProtobufCFieldDescriptor *f) {
  if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED) return 0;
  const ProtobufCMessageDescriptor *d = f->descriptor;
  size_t n = strlen(d->name);
  return n > 5 && !strcmp(d->name + n - 5, "Entry") && d->n_fields == 2 &&
         !strcmp(d->fields[0].name, "key") && !strcmp(d->fields[1].name, "value");
}

/* Field presence for proto3 scalars: default values are left out. */
static int is_set(const ProtobufCFieldDescriptor *f, const char *base) {
  const void *p = base + f->offset;
  if (f->label == PROTOBUF_C_LABEL_REPEATED) return *(const size_t *)(base + f->quantifier_offset) > 0;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: return *(char *const *)p && **(char *const *)p;
    case PROTOBUF_C_TYPE_MESSAGE: return *(void *const *)p != NULL;
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return *(const uint64_t *)p != 0;
    case PROTOBUF_C_TYPE_BOOL: return *(const protobuf_c_boolean *)p != 0;
    default: return *(const uint32_t *)p != 0;
  }
}

static size_t elem_size(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    default: return 4;
  }
}

void vc_json(FILE *o, const ProtobufCMessage *m, int indent) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  /* google.protobuf.Timestamp: RFC 3339, UTC, 0, 3, 6 or 9 digits of
   * fraction */
  if (!strcmp(d->name, "google.protobuf.Timestamp")) {
    int64_t secs = *(const int64_t *)(base + d->fields[0].offset);
    int32_t nanos = *(const int32_t *)(base + d->fields[1].offset);
    time_t t = (time_t)secs;
    struct tm tm;
    char buf[64];
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nanos % 1000000 == 0 && nanos) n += (size_t)snprintf(buf + n, sizeof buf - n, ".%03d", nanos / 1000000);
    else if (nanos % 1000 == 0 && nanos) n += (size_t)snprintf(buf + n, sizeof buf - n, ".%06d", nanos / 1000);
    else if (nanos) n += (size_t)snprintf(buf + n, sizeof buf - n, ".%09d", nanos);
    snprintf(buf + n, sizeof buf - n, "Z");
    str(o, buf, strlen(buf));
    return;
  }
  fputc('{', o);
  int first = 1;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (!is_set(f, base)) continue;
    if (!first) fputc(',', o);
    first = 0;
    pad(o, indent + 2);
    json_name(o, f->name);
    fputs(": ", o);
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
      value(o, f, base + f->offset, indent + 2);
      continue;
    }
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *arr = *(char *const *)(base + f->offset);
    if (is_map_entry(f)) {
      fputc('{', o);
      for (size_t k = 0; k < n; k++) {
        const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[k];
        const ProtobufCMessageDescriptor *ed = e->descriptor;
        const char *key = *(char *const *)((const char *)e + ed->fields[0].offset);
        if (k) fputc(',', o);
        pad(o, indent + 4);
        str(o, key ? key : "", key ? strlen(key) : 0);
        fputs(": ", o);
        value(o, &ed->fields[1], (const char *)e + ed->fields[1].offset, indent + 4);
      }
      pad(o, indent + 2);
      fputc('}', o);
      continue;
    }
    fputc('[', o);
    for (size_t k = 0; k < n; k++) {
      if (k) fputc(',', o);
      pad(o, indent + 4);
      value(o, f, arr + k * elem_size(f), indent + 4);
    }
    pad(o, indent + 2);
    fputc(']', o);
  }
  if (!first) pad(o, indent);
  fputc('}', o);
}
