/* vs_err: the one error object threaded through every vessel call.
 *
 * Functions that can fail take a `vs_err *err` last and return -1 (or NULL)
 * after filling it in. The code is a gRPC status code, so an error raised deep
 * in a library (OCI, ext4, netlink) reaches a client as a meaningful status
 * without translation tables. */
#ifndef VESSEL_COMMON_VS_ERR_H
#define VESSEL_COMMON_VS_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Same numbers as grpc_status_code; libraries need not include gRPC. */
typedef enum vs_code {
  VS_OK = 0,
  VS_CANCELLED = 1,
  VS_UNKNOWN = 2,
  VS_INVALID_ARGUMENT = 3,
  VS_DEADLINE_EXCEEDED = 4,
  VS_NOT_FOUND = 5,
  VS_ALREADY_EXISTS = 6,
  VS_PERMISSION_DENIED = 7,
  VS_RESOURCE_EXHAUSTED = 8,
  VS_FAILED_PRECONDITION = 9,
  VS_ABORTED = 10,
  VS_OUT_OF_RANGE = 11,
  VS_UNIMPLEMENTED = 12,
  VS_INTERNAL = 13,
  VS_UNAVAILABLE = 14,
  VS_DATA_LOSS = 15,
  VS_UNAUTHENTICATED = 16,
} vs_code;

typedef struct vs_err {
  vs_code code;
  char msg[512];
} vs_err;

/* Sets code and message; returns -1 so callers can `return vs_err_set(...)`. */
int vs_err_set(vs_err *err, vs_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like vs_err_set, appending ": strerror(errnum)". */
int vs_err_errno(vs_err *err, vs_code code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes the existing message with context ("pulling alpine: ..."). */
int vs_err_wrap(vs_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void vs_err_clear(vs_err *err);

/* "NOT_FOUND" etc. */
const char *vs_code_name(vs_code code);

#ifdef __cplusplus
}
#endif
#endif
