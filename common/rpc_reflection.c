/* grpc.reflection (v1 and v1alpha) for any vrpc server, answered from the
 * descriptor pools that bazel/rpcgen.py embeds at build time. Both versions
 * share one wire format, so one handler on the v1 types serves both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rpc_internal.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc_proto_rpc.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp;

typedef struct refl_ctx {
  size_t n_pools;
  const vrpc_descriptor_pool *pools[8];
} refl_ctx;

static const vrpc_file_descriptor *find_file(const refl_ctx *r, const char *name) {
  for (size_t p = 0; p < r->n_pools; p++)
    for (size_t i = 0; i < r->pools[p]->n_files; i++)
      if (strcmp(r->pools[p]->files[i].name, name) == 0) return &r->pools[p]->files[i];
  return NULL;
}

static const vrpc_file_descriptor *find_symbol(const refl_ctx *r, const char *sym) {
  for (size_t p = 0; p < r->n_pools; p++)
    for (size_t i = 0; i < r->pools[p]->n_files; i++)
      for (const char *const *s = r->pools[p]->files[i].symbols; *s; s++)
        if (strcmp(*s, sym) == 0) return &r->pools[p]->files[i];
  return NULL;
}

#define MAX_FILES 64

/* The file first, then everything it imports, each once. */
static void collect(const refl_ctx *r, const vrpc_file_descriptor *f,
                    const vrpc_file_descriptor **out, size_t *n) {
  for (size_t i = 0; i < *n; i++)
    if (out[i] == f) return;
  if (*n >= MAX_FILES) return;
  out[(*n)++] = f;
  for (const char *const *d = f->deps; *d; d++) {
    const vrpc_file_descriptor *dep = find_file(r, *d);
    if (dep) collect(r, dep, out, n);
  }
}

static int answer(vrpc_call *call, const refl_ctx *r, refl_req *req, vs_err *err) {
  refl_resp resp;
  grpc__reflection__v1__server_reflection_response__init(&resp);
  resp.valid_host = req->host;
  resp.original_request = req;

  Grpc__Reflection__V1__ErrorResponse eresp;
  grpc__reflection__v1__error_response__init(&eresp);
  Grpc__Reflection__V1__FileDescriptorResponse fresp;
  grpc__reflection__v1__file_descriptor_response__init(&fresp);
  Grpc__Reflection__V1__ListServiceResponse lresp;
  grpc__reflection__v1__list_service_response__init(&lresp);
  Grpc__Reflection__V1__ExtensionNumberResponse xresp;
  grpc__reflection__v1__extension_number_response__init(&xresp);

  const vrpc_file_descriptor *files[MAX_FILES];
  ProtobufCBinaryData blobs[MAX_FILES];
  Grpc__Reflection__V1__ServiceResponse svcs[64];
  Grpc__Reflection__V1__ServiceResponse *svcp[64];
  char msg[300];
  const vrpc_file_descriptor *f = NULL;

  switch (req->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
      const char *names[64];
      size_t n = vrpc_server_services(vrpc_call_server(call), names, 64);
      if (n > 64) n = 64;
      for (size_t i = 0; i < n; i++) {
        grpc__reflection__v1__service_response__init(&svcs[i]);
        svcs[i].name = (char *)names[i];
        svcp[i] = &svcs[i];
      }
      lresp.n_service = n;
      lresp.service = svcp;
      resp.message_response_case =
          GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
      resp.list_services_response = &lresp;
      return vrpc_send(call, &resp.base, err);
    }
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
      f = find_file(r, req->file_by_filename);
      snprintf(msg, sizeof msg, "file %s not found", req->file_by_filename);
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
      f = find_symbol(r, req->file_containing_symbol);
      snprintf(msg, sizeof msg, "symbol %s not found", req->file_containing_symbol);
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
      if (find_symbol(r, req->all_extension_numbers_of_type)) {
        /* vessel's protos declare no extensions. */
        xresp.base_type_name = req->all_extension_numbers_of_type;
        resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        resp.all_extension_numbers_response = &xresp;
        return vrpc_send(call, &resp.base, err);
      }
      snprintf(msg, sizeof msg, "type %s not found", req->all_extension_numbers_of_type);
      break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
      snprintf(msg, sizeof msg, "no extensions are defined");
      break;
    default:
      eresp.error_code = VS_INVALID_ARGUMENT;
      eresp.error_message = (char *)"unsupported reflection request";
      resp.message_response_case =
          GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
      resp.error_response = &eresp;
      return vrpc_send(call, &resp.base, err);
  }
  if (!f) {
    eresp.error_code = VS_NOT_FOUND;
    eresp.error_message = msg;
    resp.message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp.error_response = &eresp;
    return vrpc_send(call, &resp.base, err);
  }
  size_t n = 0;
  collect(r, f, files, &n);
  for (size_t i = 0; i < n; i++) {
    blobs[i].data = (uint8_t *)files[i]->data;
    blobs[i].len = files[i]->len;
  }
  fresp.n_file_descriptor_proto = n;
  fresp.file_descriptor_proto = blobs;
  resp.message_response_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
  resp.file_descriptor_response = &fresp;
  return vrpc_send(call, &resp.base, err);
}

static int reflection_info(vrpc_call *call, void *ctx, vs_err *err) {
  for (;;) {
    ProtobufCMessage *in;
    int r = vrpc_recv(call, &in, err);
    if (r <= 0) return r;
    int rc = answer(call, ctx, (refl_req *)in, err);
    vrpc_msg_free(in);
    if (rc < 0) return -1;
  }
}

/* v1alpha: same messages on the wire, so the v1 descriptors decode them. */
static const vrpc_method v1alpha_info = {
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    VRPC_BIDI_STREAM,
    &grpc__reflection__v1__server_reflection_request__descriptor,
    &grpc__reflection__v1__server_reflection_response__descriptor,
};
static const vrpc_method *const v1alpha_methods[] = {&v1alpha_info};
static const vrpc_service v1alpha_service = {"grpc.reflection.v1alpha.ServerReflection", 1,
                                             v1alpha_methods};

int vrpc_reflection_register(vrpc_server *srv, const vrpc_descriptor_pool *const *pools,
                             size_t n_pools, vs_err *err) {
  refl_ctx *r = calloc(1, sizeof *r);
  if (!r) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  if (n_pools > sizeof r->pools / sizeof r->pools[0]) {
    free(r);
    return vs_err_set(err, VS_INVALID_ARGUMENT, "too many descriptor pools");
  }
  r->n_pools = n_pools;
  for (size_t i = 0; i < n_pools; i++) r->pools[i] = pools[i];
  if (vrpc_server_keep(srv, r, err) < 0) return -1;
  const grpc_reflection_v1_ServerReflection_handlers h = {.ServerReflectionInfo = reflection_info};
  if (grpc_reflection_v1_ServerReflection_register(srv, &h, r, err) < 0) return -1;
  const vrpc_handler alpha[] = {reflection_info};
  return vrpc_server_add_service(srv, &v1alpha_service, alpha, r, err);
}
