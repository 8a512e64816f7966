#include "server/daemon/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics/metrics.h"

const char vd_usage[] =
    "usage: vesseld [flags]\n"
    "\n"
    "Serves the vessel.v1 API (Images, Containers, Events, System, Networks),\n"
    "gRPC health and server reflection.\n"
    "\n"
    "  --config FILE         read flags from FILE first: one \"name = value\" per\n"
    "                        line, name a flag's long name without the dashes\n"
    "                        (repeatable ones on several lines; insecure-tcp =\n"
    "                        true), '#' starts a comment line; flags on the\n"
    "                        command line win. No file is read unless given\n"
    "                        (the systemd unit gives /etc/vessel/vesseld.conf)\n"
    "  --root DIR            state directory (default " VD_DEFAULT_ROOT ")\n"
    "  --listen URI          unix:///path or tcp://host:port; repeatable\n"
    "                        (default " VD_DEFAULT_SOCKET ")\n"
    "  --tls-cert FILE       server certificate (PEM) for TCP listeners\n"
    "  --tls-key FILE        server private key (PEM)\n"
    "  --tls-client-ca FILE  CA that client certificates must chain to (mTLS)\n"
    "  --insecure-tcp        allow plaintext TCP listeners (anyone who can reach\n"
    "                        the port controls vesseld; logs a warning)\n"
    "  --kernel FILE         guest kernel for container VMs (kernel/build.sh)\n"
    "  --initrd FILE         vminitd initramfs (//guest-agent:initramfs)\n"
    "  --qemu FILE           QEMU binary (default qemu-system-x86_64 on PATH,\n"
    "                        qemu-system-aarch64 for arm64 guests)\n"
    "  --guest-arch x86_64|arm64\n"
    "                        the VMs' architecture (default the host's); with\n"
    "                        another one, --kernel and --initrd are that arch's\n"
    "                        (kernel/build.sh --arch arm64, //guest-agent:\n"
    "                        initramfs_arm64), VMs run under TCG, images are\n"
    "                        pulled for it and no user-mode emulation is used\n"
    "  --socket-group NAME   group that may use the unix sockets (mode 0660,\n"
    "                        owner root; default vesseld's own group)\n"
    "  --max-calls-per-connection N\n"
    "                        calls one client connection may have in flight\n"
    "                        (default 512; more are RESOURCE_EXHAUSTED)\n"
    "  --pull-min-speed BYTES/SECONDS\n"
    "                        a registry transfer slower than BYTES per second\n"
    "                        for SECONDS fails (and is retried, resuming)\n"
    "                        (default 1024/30)\n"
    "  --dns-upstream IP[:PORT]\n"
    "                        a resolver the networks' DNS forwards other names\n"
    "                        to; repeatable (default: /etc/resolv.conf's)\n"
    "  --cri-listen unix:///PATH\n"
    "                        also serve Kubernetes' CRI (runtime.v1 RuntimeService\n"
    "                        and ImageService) there, for kubelet and crictl\n"
    "                        (off by default; e.g. unix:///run/vessel/cri.sock)\n"
    "  --cri-stream-address IP:PORT\n"
    "                        where the CRI's exec/attach/port-forward URLs point\n"
    "                        (default 127.0.0.1:0, a free port on loopback)\n"
    "  --cri-stream-url-ttl SECONDS\n"
    "                        how long such a URL stays valid (default 60; each\n"
    "                        works once)\n"
    "  --spares N            warm VMs kept ready, at most (default 20; 0: none):\n"
    "                        as many as the largest burst of starts (within\n"
    "                        10 s) of the last --spares-memory seconds\n"
    "  --spares-memory SECONDS\n"
    "                        how long a burst keeps the pool large (default 120)\n"
    "  --template-memory shared|copy\n"
    "                        VMs restored from a template map its RAM file\n"
    "                        copy-on-write (shared, the default) or load their\n"
    "                        own copy (copy: freed memory goes back to the host)\n"
    "  --tb-size MIB         TCG translation cache per VM (default: QEMU's)\n"
    "  --accel kvm|tcg|auto  accelerator of every VM, decided once at start (default\n"
    "                        auto: KVM when /dev/kvm is usable, the CPU has vmx or\n"
    "                        svm and a probe guest answers under KVM, else TCG with\n"
    "                        a warning saying why; kvm: refuse to start without it)\n"
    "  --log-max-size BYTES  containers' log files rotate past this size (K, M, G\n"
    "                        suffixes; default 10M); a container's own setting wins\n"
    "  --log-max-files N     rotated log files kept per container, the current one\n"
    "                        included (1..100, default 3)\n"
    "  --metrics-listen URI  serve Prometheus metrics (text format) at /metrics\n"
    "                        there: tcp://HOST:PORT or unix:///PATH (off by\n"
    "                        default; e.g. tcp://127.0.0.1:9323)\n"
    "  --trace-agent-calls FILE\n"
    "                        append \"<host RPC> <agent RPC>\" to FILE for every\n"
    "                        call to a guest agent (for tests and debugging)\n"
    "  --version             print the version and exit\n"
    "  --help                this text\n";

int vd_is_tcp(const char *uri) { return strncmp(uri, "tcp://", 6) == 0; }

int vd_config_validate(const vd_config *c, vs_err *err) {
  int tcp = 0;
  for (size_t i = 0; i < c->n_listen; i++) {
    const char *u = c->listen[i];
    if (vd_is_tcp(u)) {
      tcp = 1;
      if (!strchr(u + 6, ':'))
        return vs_err_set(err, VS_INVALID_ARGUMENT, "--listen %s: missing :port", u);
    } else if (strncmp(u, "unix://", 7) != 0 || u[7] != '/') {
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "--listen %s: use unix:///absolute/path or tcp://host:port", u);
    }
  }
  int any_tls = c->tls_cert || c->tls_key || c->tls_client_ca;
  if (any_tls && !tcp)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "TLS flags given but no tcp:// listener");
  if (tcp && !c->insecure_tcp) {
    if (!c->tls_cert || !c->tls_key)
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "a tcp:// listener needs --tls-cert and --tls-key "
                        "(or --insecure-tcp)");
    if (!c->tls_client_ca)
      return vs_err_set(err, VS_INVALID_ARGUMENT,
                        "a tcp:// listener requires client certificates: give "
                        "--tls-client-ca (or --insecure-tcp)");
  }
  if (tcp && c->insecure_tcp && any_tls)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "--insecure-tcp conflicts with TLS flags");
  return 0;
}

/* A whole number within [lo, hi] for flag, or -1 with err. */
static int int_flag(const char *flag, const char *arg, long lo, long hi, int *out, vs_err *err) {
  char *end;
  long n = strtol(arg, &end, 10);
  if (!*arg || *end || n < lo || n > hi)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "--%s %s: give a number %ld..%ld", flag, arg, lo, hi);
  *out = (int)n;
  return 0;
}

/* The flags; a config file names them too (without the dashes). */
enum { ROOT = 1, LISTEN, CERT, KEY, CA, INSECURE, VERSION, HELP, KERNEL, INITRD, QEMU, MAXCALLS, SOCKGROUP, MINSPEED, TRACE, DNSUP, CRI, CRISTREAM, CRITTL, SPARES, SPAREMEM, TPLMEM, TBSIZE, GUESTARCH, CONFIG, ACCEL, LOGSIZE, LOGFILES, METRICS };
static const struct option opts[] = {
    {"root", required_argument, NULL, ROOT},
    {"listen", required_argument, NULL, LISTEN},
    {"tls-cert", required_argument, NULL, CERT},
    {"tls-key", required_argument, NULL, KEY},
    {"tls-client-ca", required_argument, NULL, CA},
    {"insecure-tcp", no_argument, NULL, INSECURE},
    {"kernel", required_argument, NULL, KERNEL},
    {"initrd", required_argument, NULL, INITRD},
    {"qemu", required_argument, NULL, QEMU},
    {"max-calls-per-connection", required_argument, NULL, MAXCALLS},
    {"socket-group", required_argument, NULL, SOCKGROUP},
    {"pull-min-speed", required_argument, NULL, MINSPEED},
    {"trace-agent-calls", required_argument, NULL, TRACE},
    {"dns-upstream", required_argument, NULL, DNSUP},
    {"cri-listen", required_argument, NULL, CRI},
    {"cri-stream-address", required_argument, NULL, CRISTREAM},
    {"cri-stream-url-ttl", required_argument, NULL, CRITTL},
    {"spares", required_argument, NULL, SPARES},
    {"spares-memory", required_argument, NULL, SPAREMEM},
    {"template-memory", required_argument, NULL, TPLMEM},
    {"tb-size", required_argument, NULL, TBSIZE},
    {"guest-arch", required_argument, NULL, GUESTARCH},
    {"metrics-listen", required_argument, NULL, METRICS},
    {"config", required_argument, NULL, CONFIG},
    {"accel", required_argument, NULL, ACCEL},
    {"log-max-size", required_argument, NULL, LOGSIZE},
    {"log-max-files", required_argument, NULL, LOGFILES},
    {"version", no_argument, NULL, VERSION},
    {"help", no_argument, NULL, HELP},
    {NULL, 0, NULL, 0},
};

/* "10485760", "512K", "10M", "1G" (powers of 1024) as bytes, or -1. */
static int64_t size_arg(const char *arg) {
  char *end;
  long long n = strtoll(arg, &end, 10);
  int64_t unit = 1;
  if (*end == 'K' || *end == 'k') unit = 1 << 10, end++;
  else if (*end == 'M' || *end == 'm') unit = 1 << 20, end++;
  else if (*end == 'G' || *end == 'g') unit = 1 << 30, end++;
  if (end == arg || *end || n < 1 || n > (INT64_MAX >> 30)) return -1;
  return (int64_t)n * unit;
}

/* One flag (o, with its argument) into c. from_file: it came from the
 * config file; a repeatable flag given on the command line replaces the
 * file's values instead of adding to them. */
static int apply(vd_config *c, int o, char *arg, int from_file, vs_err *err) {
  switch (o) {
    case ROOT: c->root = arg; break;
    case LISTEN:
      if (!from_file && c->listen_from_file) c->n_listen = 0;
      c->listen_from_file = from_file;
      if (c->n_listen == VD_MAX_LISTEN)
        return vs_err_set(err, VS_INVALID_ARGUMENT, "at most %d --listen flags", VD_MAX_LISTEN);
      c->listen[c->n_listen++] = arg;
      break;
    case CERT: c->tls_cert = arg; break;
    case KEY: c->tls_key = arg; break;
    case CA: c->tls_client_ca = arg; break;
    case INSECURE: c->insecure_tcp = 1; break;
    case KERNEL: c->kernel = arg; break;
    case INITRD: c->initrd = arg; break;
    case QEMU: c->qemu = arg; break;
    case SOCKGROUP: c->socket_group = arg; break;
    case TRACE: c->trace_agent_calls = arg; break;
    case CRI:
      if (strncmp(arg, "unix://", 7) != 0 || !arg[7])
        return vs_err_set(err, VS_INVALID_ARGUMENT, "--cri-listen %s: give unix:///PATH", arg);
      c->cri_listen = arg;
      break;
    case CRISTREAM: c->cri_stream_address = arg; break;
    case CRITTL: return int_flag("cri-stream-url-ttl", arg, 1, 86400, &c->cri_stream_ttl, err);
    case SPARES: return int_flag("spares", arg, 0, 256, &c->spares, err);
    case SPAREMEM: return int_flag("spares-memory", arg, 1, 86400, &c->spares_memory_s, err);
    case TBSIZE: return int_flag("tb-size", arg, 1, 4096, &c->tb_size_mib, err);
    case METRICS:
      if (mt_check_uri(arg, err) < 0) return vs_err_wrap(err, "--metrics-listen");
      c->metrics_listen = arg;
      break;
    case GUESTARCH:
      if (vm_arch_parse(arg, &c->guest_arch) < 0)
        return vs_err_set(err, VS_INVALID_ARGUMENT, "--guest-arch %s: give x86_64 or arm64", arg);
      break;
    case TPLMEM:
      if (strcmp(arg, "shared") && strcmp(arg, "copy"))
        return vs_err_set(err, VS_INVALID_ARGUMENT, "--template-memory %s: give shared or copy", arg);
      c->template_memory_copy = !strcmp(arg, "copy");
      break;
    case DNSUP:
      if (!from_file && c->dns_from_file) c->n_dns_upstreams = 0;
      c->dns_from_file = from_file;
      if (c->n_dns_upstreams == 3)
        return vs_err_set(err, VS_INVALID_ARGUMENT, "at most 3 --dns-upstream flags");
      c->dns_upstreams[c->n_dns_upstreams++] = arg;
      break;
    case MAXCALLS:
      return int_flag("max-calls-per-connection", arg, 1, 1000000, &c->max_calls_per_connection, err);
    case MINSPEED: {
      char *end, *end2 = NULL;
      long b = strtol(arg, &end, 10), t = *end == '/' ? strtol(end + 1, &end2, 10) : 0;
      if (*end != '/' || !end2 || *end2 || b < 1 || t < 1 || t > 3600)
        return vs_err_set(err, VS_INVALID_ARGUMENT,
                          "--pull-min-speed %s: give BYTES/SECONDS, e.g. 1024/30", arg);
      c->pull_min_speed = (int)b;
      c->pull_min_speed_secs = (int)t;
      break;
    }
    case CONFIG: c->config = arg; break; /* read before the command line */
    case ACCEL:
      if (strcmp(arg, "auto") && strcmp(arg, "kvm") && strcmp(arg, "tcg"))
        return vs_err_set(err, VS_INVALID_ARGUMENT, "--accel %s: give kvm, tcg or auto", arg);
      c->accel = arg;
      break;
    case LOGSIZE:
      if ((c->log_max_bytes = size_arg(arg)) < 0)
        return vs_err_set(err, VS_INVALID_ARGUMENT,
                          "--log-max-size %s: give bytes, or a number with K, M or G", arg);
      break;
    case LOGFILES: return int_flag("log-max-files", arg, 1, VD_LOG_MAX_FILES, &c->log_max_files, err);
    case VERSION: c->show_version = 1; break;
    case HELP: c->show_help = 1; break;
  }
  return 0;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
  return s;
}

/* Adds one string to a growing array (NULL-terminated). */
static int push(char ***v, size_t *n, char *s, vs_err *err) {
  char **nv = s ? realloc(*v, (*n + 2) * sizeof **v) : NULL;
  if (!nv) {
    free(s);
    return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  }
  nv[(*n)++] = s;
  nv[*n] = NULL;
  *v = nv;
  return 0;
}

/* Reads the config file into c->file_args as "--name=value" flags (a
 * boolean one as "--name" when true, left out when false), and where each
 * came from ("FILE:LINE") into *where. */
static int read_file(vd_config *c, const char *path, char ***where, size_t *n_where, vs_err *err) {
  FILE *f = fopen(path, "re");
  if (!f) return vs_err_errno(err, VS_INVALID_ARGUMENT, errno, "--config %s", path);
  char *line = NULL;
  size_t cap = 0;
  int rc = 0;
  for (int no = 1; rc == 0 && getline(&line, &cap, f) >= 0; no++) {
    char *s = trim(line);
    if (!*s || *s == '#') continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "%s:%d: want name = value, got \"%.80s\"", path, no, s);
      break;
    }
    *eq = '\0';
    char *name = trim(s), *value = trim(eq + 1);
    size_t vl = strlen(value);
    if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') { /* TOML's quoted string */
      value[vl - 1] = '\0';
      value++;
    }
    const struct option *o = opts;
    while (o->name && strcmp(o->name, name) != 0) o++;
    if (!o->name)
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "%s:%d: unknown setting \"%.80s\"", path, no, name);
    else if (o->val == CONFIG || o->val == HELP || o->val == VERSION)
      rc = vs_err_set(err, VS_INVALID_ARGUMENT, "%s:%d: %s is a command-line flag only", path, no, name);
    if (rc < 0) break;
    char *flag = NULL;
    if (o->has_arg == no_argument) {
      int yes = !strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1");
      if (!yes && strcmp(value, "false") && strcmp(value, "no") && strcmp(value, "0")) {
        rc = vs_err_set(err, VS_INVALID_ARGUMENT, "%s:%d: %s = %.80s: give true or false", path, no,
                        name, value);
        break;
      }
      if (!yes) continue;
      if (asprintf(&flag, "--%s", o->name) < 0) flag = NULL;
    } else if (asprintf(&flag, "--%s=%s", o->name, value) < 0) {
      flag = NULL;
    }
    char *at = NULL;
    if (asprintf(&at, "%s:%d", path, no) < 0) at = NULL;
    if (push(&c->file_args, &c->n_file_args, flag, err) < 0 || push(where, n_where, at, err) < 0)
      rc = -1;
  }
  free(line);
  fclose(f);
  return rc;
}

/* --config's value, found before anything else is parsed. */
static const char *find_config(int argc, char **argv) {
  const char *path = NULL;
  optind = 0;
  opterr = 0;
  for (int o; (o = getopt_long(argc, argv, "", opts, NULL)) != -1;)
    if (o == CONFIG) path = optarg;
  return path;
}

void vd_config_free(vd_config *c) {
  for (size_t i = 0; i < c->n_file_args; i++) free(c->file_args[i]);
  free(c->file_args);
  c->file_args = NULL;
  c->n_file_args = 0;
}

int vd_config_parse(vd_config *c, int argc, char **argv, vs_err *err) {
  memset(c, 0, sizeof *c);
  c->root = VD_DEFAULT_ROOT;
  c->max_calls_per_connection = 512;
  c->cri_stream_address = "127.0.0.1:0";
  c->spares = 20;
  c->accel = "auto";
  /* The file's flags go first: getopt then sees the command line's after
   * them, and the last of a flag given twice wins. */
  char **where = NULL, **av = NULL;
  size_t n_where = 0;
  const char *config = find_config(argc, argv);
  if (config && read_file(c, config, &where, &n_where, err) < 0) goto fail;
  int ac = 1 + (int)c->n_file_args + (argc - 1);
  if (!(av = calloc((size_t)ac + 1, sizeof *av))) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    goto fail;
  }
  av[0] = argv[0];
  for (size_t i = 0; i < c->n_file_args; i++) av[1 + i] = c->file_args[i];
  for (int i = 1; i < argc; i++) av[c->n_file_args + (size_t)i] = argv[i];
  optind = 0;
  opterr = 0;
  for (;;) {
    int o = getopt_long(ac, av, "", opts, NULL);
    if (o == -1) break;
    /* The file's flags are whole "--name=value" words, before any other:
     * getopt never moves them. */
    size_t at = (size_t)optind - 1;
    int from_file = at >= 1 && at <= c->n_file_args;
    if (o == '?' || o == ':') {
      vs_err_set(err, VS_INVALID_ARGUMENT, "unknown or incomplete flag %s", av[optind - 1]);
      goto fail;
    }
    if (apply(c, o, optarg, from_file, err) < 0) {
      if (from_file) vs_err_wrap(err, "%s", where[at - 1]);
      goto fail;
    }
    if (c->show_help || c->show_version) break;
  }
  if (!c->show_help && !c->show_version) {
    if (optind < ac) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "unexpected argument %s", av[optind]);
      goto fail;
    }
    if (c->n_listen == 0) c->listen[c->n_listen++] = VD_DEFAULT_SOCKET;
    if (!c->root[0] || c->root[0] != '/') {
      vs_err_set(err, VS_INVALID_ARGUMENT, "--root %s: must be an absolute path", c->root);
      goto fail;
    }
    if (vd_config_validate(c, err) < 0) goto fail;
  }
  for (size_t i = 0; i < n_where; i++) free(where[i]);
  free(where);
  free(av);
  return 0;
fail:
  for (size_t i = 0; i < n_where; i++) free(where[i]);
  free(where);
  free(av);
  vd_config_free(c);
  return -1;
}
