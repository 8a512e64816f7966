#include "server/daemon/config.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics/metrics.h"

const char vd_usage[] =
    "usage: vesseld [flags]\n"
    "\n"
    "Serves the vessel.v1 API (Images, Containers, Events, System, Networks),\n"
    "gRPC health and server reflection.\n"
    "\n"
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

int vd_config_parse(vd_config *c, int argc, char **argv, vs_err *err) {
  enum { ROOT = 1, LISTEN, CERT, KEY, CA, INSECURE, VERSION, HELP, KERNEL, INITRD, QEMU, MAXCALLS, SOCKGROUP, MINSPEED, TRACE, DNSUP, CRI, CRISTREAM, CRITTL, SPARES, SPAREMEM, TPLMEM, TBSIZE, GUESTARCH, METRICS };
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
      {"version", no_argument, NULL, VERSION},
      {"help", no_argument, NULL, HELP},
      {NULL, 0, NULL, 0},
  };
  memset(c, 0, sizeof *c);
  c->root = VD_DEFAULT_ROOT;
  c->max_calls_per_connection = 512;
  c->cri_stream_address = "127.0.0.1:0";
  c->spares = 20;
  optind = 1;
  opterr = 0;
  for (;;) {
    int o = getopt_long(argc, argv, "", opts, NULL);
    if (o == -1) break;
    switch (o) {
      case ROOT: c->root = optarg; break;
      case LISTEN:
        if (c->n_listen == VD_MAX_LISTEN)
          return vs_err_set(err, VS_INVALID_ARGUMENT, "at most %d --listen flags", VD_MAX_LISTEN);
        c->listen[c->n_listen++] = optarg;
        break;
      case CERT: c->tls_cert = optarg; break;
      case KEY: c->tls_key = optarg; break;
      case CA: c->tls_client_ca = optarg; break;
      case INSECURE: c->insecure_tcp = 1; break;
      case KERNEL: c->kernel = optarg; break;
      case INITRD: c->initrd = optarg; break;
      case QEMU: c->qemu = optarg; break;
      case SOCKGROUP: c->socket_group = optarg; break;
      case TRACE: c->trace_agent_calls = optarg; break;
      case CRI:
        if (strncmp(optarg, "unix://", 7) != 0 || !optarg[7])
          return vs_err_set(err, VS_INVALID_ARGUMENT, "--cri-listen %s: give unix:///PATH", optarg);
        c->cri_listen = optarg;
        break;
      case CRISTREAM: c->cri_stream_address = optarg; break;
      case METRICS:
        if (mt_check_uri(optarg, err) < 0) return vs_err_wrap(err, "--metrics-listen");
        c->metrics_listen = optarg;
        break;
      case CRITTL:
        if (int_flag("cri-stream-url-ttl", optarg, 1, 86400, &c->cri_stream_ttl, err) < 0) return -1;
        break;
      case SPARES:
        if (int_flag("spares", optarg, 0, 256, &c->spares, err) < 0) return -1;
        break;
      case SPAREMEM:
        if (int_flag("spares-memory", optarg, 1, 86400, &c->spares_memory_s, err) < 0) return -1;
        break;
      case TBSIZE:
        if (int_flag("tb-size", optarg, 1, 4096, &c->tb_size_mib, err) < 0) return -1;
        break;
      case GUESTARCH:
        if (vm_arch_parse(optarg, &c->guest_arch) < 0)
          return vs_err_set(err, VS_INVALID_ARGUMENT, "--guest-arch %s: give x86_64 or arm64", optarg);
        break;
      case TPLMEM:
        if (strcmp(optarg, "shared") && strcmp(optarg, "copy"))
          return vs_err_set(err, VS_INVALID_ARGUMENT, "--template-memory %s: give shared or copy", optarg);
        c->template_memory_copy = !strcmp(optarg, "copy");
        break;
      case DNSUP:
        if (c->n_dns_upstreams == 3)
          return vs_err_set(err, VS_INVALID_ARGUMENT, "at most 3 --dns-upstream flags");
        c->dns_upstreams[c->n_dns_upstreams++] = optarg;
        break;
      case MAXCALLS:
        if (int_flag("max-calls-per-connection", optarg, 1, 1000000, &c->max_calls_per_connection, err) < 0)
          return -1;
        break;
      case MINSPEED: {
        char *end, *end2 = NULL;
        long b = strtol(optarg, &end, 10), t = *end == '/' ? strtol(end + 1, &end2, 10) : 0;
        if (*end != '/' || !end2 || *end2 || b < 1 || t < 1 || t > 3600)
          return vs_err_set(err, VS_INVALID_ARGUMENT,
                            "--pull-min-speed %s: give BYTES/SECONDS, e.g. 1024/30", optarg);
        c->pull_min_speed = (int)b;
        c->pull_min_speed_secs = (int)t;
        break;
      }
      case VERSION: c->show_version = 1; return 0;
      case HELP: c->show_help = 1; return 0;
      default:
        return vs_err_set(err, VS_INVALID_ARGUMENT, "unknown or incomplete flag %s",
                          argv[optind - 1]);
    }
  }
  if (optind < argc)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "unexpected argument %s", argv[optind]);
  if (c->n_listen == 0) c->listen[c->n_listen++] = VD_DEFAULT_SOCKET;
  if (!c->root[0] || c->root[0] != '/')
    return vs_err_set(err, VS_INVALID_ARGUMENT, "--root %s: must be an absolute path", c->root);
  return vd_config_validate(c, err);
}
