/* vesselctl: the command-line client of vesseld, on the shared vrpc runtime. */
#ifndef VESSEL_CLIENTS_CLI_VESSELCTL_H
#define VESSEL_CLIENTS_CLI_VESSELCTL_H

#include <stdio.h>

#define VC_VERSION "0.1.0"

#include "clients/cli/clientcfg.h"
#include "common/rpc.h"

typedef struct vc_ctx {
  vcfg_inputs cfg;     /* flags, VESSEL_* and the contexts file's path */
  vs_err cfg_err;      /* why cfg.path is NULL */
  char cfg_path[4096];
  vcfg_endpoint ep;    /* resolved from cfg before a verb that dials runs */
  const char *host;    /* ep.host */
  vrpc_tls tls;        /* ep's files */
  int use_tls;
  int json;
  vrpc_channel *ch; /* dialled on first use */
  vs_err last_err;  /* of the last failed call (vc_fail) */
} vc_ctx;

/* The channel to vesseld (exits with a message when it cannot dial). */
vrpc_channel *vc_channel(vc_ctx *c);
/* Unary call; on error prints "vesselctl: <message>" and returns -1. */
int vc_call(vc_ctx *c, const vrpc_method *m, const ProtobufCMessage *req, ProtobufCMessage **resp);
/* A server-streaming call: sends req, calls on_msg for every response
 * (a non-zero return stops early). 0 at the end, -1 with err on failure. */
int vc_stream(vc_ctx *c, const vrpc_method *m, const ProtobufCMessage *req,
              int (*on_msg)(void *arg, const ProtobufCMessage *msg), void *arg, vs_err *err);

/* Prints an error (with the gRPC code name) and returns exit status 1. */
int vc_fail(vc_ctx *c, const vs_err *err);
/* For a verb (or subcommand) that parses no options with getopt: 0, or 2
 * after a usage error naming the first argument starting with '-' that is
 * not in flags (" -a --all "; NULL: any). */
int vc_check_flags(const char *name, const char *flags, int argc, char **argv);
int vc_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* JSON rendering of any protobuf-c message (proto3 JSON mapping, camelCase
 * off: field names as in the .proto). */
void vc_json(FILE *out, const ProtobufCMessage *m, int indent);

/* "3.2 MB" */
void vc_human_size(int64_t bytes, char *buf, size_t n);
/* "2 minutes ago" from unix seconds */
void vc_ago(int64_t secs, char *buf, size_t n);

/* Verbs. argv[0] is the verb. Each returns the process exit status. */
int vc_image(vc_ctx *c, int argc, char **argv);
int vc_login(vc_ctx *c, int argc, char **argv);
int vc_logout(vc_ctx *c, int argc, char **argv);
int vc_rootfs(vc_ctx *c, int argc, char **argv);
int vc_run(vc_ctx *c, int argc, char **argv);
int vc_create(vc_ctx *c, int argc, char **argv);
int vc_start(vc_ctx *c, int argc, char **argv);
int vc_exec(vc_ctx *c, int argc, char **argv);
int vc_ps(vc_ctx *c, int argc, char **argv);
int vc_logs(vc_ctx *c, int argc, char **argv);
int vc_stop(vc_ctx *c, int argc, char **argv);
int vc_kill(vc_ctx *c, int argc, char **argv);
int vc_rm(vc_ctx *c, int argc, char **argv);
int vc_inspect(vc_ctx *c, int argc, char **argv);
int vc_stats(vc_ctx *c, int argc, char **argv);
int vc_update(vc_ctx *c, int argc, char **argv);
int vc_cp(vc_ctx *c, int argc, char **argv);
int vc_events(vc_ctx *c, int argc, char **argv);
int vc_network(vc_ctx *c, int argc, char **argv);
int vc_pod(vc_ctx *c, int argc, char **argv);
int vc_system(vc_ctx *c, int argc, char **argv);
int vc_version(vc_ctx *c, int argc, char **argv);
int vc_context(vc_ctx *c, int argc, char **argv);

#endif
