/* vesseld's command line: parsed into a plain struct, validated apart from
 * any I/O so the rules (TCP needs mutual TLS) are unit-tested. */
#ifndef VESSEL_SERVER_DAEMON_CONFIG_H
#define VESSEL_SERVER_DAEMON_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/vs_err.h"
#include "server/vm/vm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VD_MAX_LISTEN 8
#define VD_DEFAULT_ROOT "/var/lib/vessel"
#define VD_DEFAULT_SOCKET "unix:///run/vessel/vessel.sock"
#define VD_LOG_MAX_FILES 100 /* --log-max-files at most (server/logs reads that many) */

typedef struct vd_config {
  const char *root;
  const char *listen[VD_MAX_LISTEN];
  size_t n_listen;
  const char *tls_cert, *tls_key, *tls_client_ca;
  int insecure_tcp; /* allow plaintext TCP (logs a warning) */
  const char *kernel, *initrd, *qemu; /* guest boot files; NULL = none */
  int max_calls_per_connection; /* per client connection, in flight */
  const char *socket_group;     /* group of the unix sockets; NULL = ours */
  int pull_min_speed, pull_min_speed_secs; /* 0 = the registry client's default */
  const char *trace_agent_calls; /* rt_config.trace_agent_calls */
  const char *cri_listen;        /* unix:// URI of the CRI server, or NULL */
  const char *metrics_listen;    /* where /metrics is served (mt_server_start), or NULL */
  const char *cri_stream_address; /* IPv4:port of its streaming server */
  int cri_stream_ttl;             /* seconds its URLs stay valid; 0 = 60 */
  char *dns_upstreams[3];        /* rt_config.dns_upstreams */
  int spares;                    /* --spares: warm VMs at most (0: none) */
  int spares_memory_s;           /* rt_config.spare_memory_s */
  int template_memory_copy;      /* rt_config.template_memory_copy */
  int tb_size_mib;               /* rt_config.tb_size_mib */
  vm_arch guest_arch;            /* --guest-arch: rt_config.guest_arch */
  size_t n_dns_upstreams;
  const char *config;            /* --config FILE, or NULL */
  const char *accel;             /* --accel: "auto" (default), "kvm" or "tcg" */
  int64_t log_max_bytes;         /* --log-max-size; 0 = server/logs' default */
  int log_max_files;             /* --log-max-files; 0 = server/logs' default */
  int show_help, show_version;
  /* What the config file held, as "--name=value" words (the fields above
   * point into them), and whether listen / dns_upstreams came from it. */
  char **file_args;
  size_t n_file_args;
  int listen_from_file, dns_from_file;
} vd_config;

/* Parses argv (argv[0] is the program). Returns 0, or -1 with err naming the
 * bad flag. Applies defaults and validation (vd_config_validate).
 *
 * With --config FILE, FILE's settings come first and the command line's
 * after them: a flag given in both takes the command line's value, and a
 * repeatable flag (listen, dns-upstream) given on the command line replaces
 * the file's list. FILE has one "name = value" per line, name being a
 * flag's long name without the dashes (a repeatable flag on several lines;
 * a flag without a value takes true or false), the value optionally in
 * double quotes; blank lines and lines starting with '#' are skipped. A bad
 * line is an error naming FILE:LINE. No file is read without --config.
 * Strings of cfg may point into argv and into what the file held: free
 * with vd_config_free. */
int vd_config_parse(vd_config *cfg, int argc, char **argv, vs_err *err);
void vd_config_free(vd_config *cfg);

/* TCP listeners need --tls-cert, --tls-key and --tls-client-ca (mutual TLS)
 * unless --insecure-tcp; TLS files without a TCP listener are an error. */
int vd_config_validate(const vd_config *cfg, vs_err *err);

/* 1 if uri is a TCP listener (tcp://host:port). */
int vd_is_tcp(const char *uri);

extern const char vd_usage[];

#ifdef __cplusplus
}
#endif
#endif
