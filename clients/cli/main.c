/* vesselctl: global flags, dispatch, and the helpers every verb uses. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clients/cli/vesselctl.h"

static const char usage[] =
    "usage: vesselctl [global flags] COMMAND [ARGS...]\n"
    "\n"
    "Containers, each in its own VM, through vesseld's vessel.v1 API.\n"
    "\n"
    "Containers:\n"
    "  run [-i] [-t] [-d] [--rm] [--name N] [-e K=V] [-v HOST:CTR[:ro]] [-p [IP:]HOST:CTR]\n"
    "      [-w DIR] [-u USER] [--cpus N] [--memory BYTES] [--network NET] [--pod POD] [--platform P]\n"
    "      IMAGE [CMD...]               create, start and attach; exits with the container's code\n"
    "  create [run flags] IMAGE [CMD...]  create (the VM boots) without starting\n"
    "  start [-a] ID                    start a created container\n"
    "  exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] ID CMD...\n"
    "  ps [-a]                          list containers (running ones without -a)\n"
    "  logs [-f] [--tail N] [--since T] [--until T] ID\n"
    "                                   stored output (follow until it stops with -f);\n"
    "                                   T: RFC 3339, Unix seconds or a duration ago (10m)\n"
    "  stop [-s SIG] [-t SECONDS] ID    signal, wait, then kill; shuts the VM down\n"
    "  kill [-s SIG] ID                 send a signal to init\n"
    "  rm [-f] ID...                    delete (running ones with -f)\n"
    "  inspect ID                       details as JSON\n"
    "  stats ID                         cgroup statistics from the guest\n"
    "  update [--memory B] [--cpus N] [--pids-limit N] ID   new limits, in place\n"
    "  cp SRC DST                       copy files in or out (ID:PATH)\n"
    "  events [--container ID]          stream events until interrupted\n"
    "Images:\n"
    "  image pull|push|ls|rm|tag|inspect|save|load|prune ...\n"
    "  login [-u USER] [-p PASSWORD] [--insecure] [SERVER]\n"
    "  logout [SERVER]\n"
    "  rootfs create [--size BYTES|--free BYTES] IMAGE PATH\n"
    "Pods (several containers in one VM; run/create --pod POD to add one):\n"
    "  pod create [--name ID] [--hostname H] [--network NET] [-p ...] [--slots N]\n"
    "  pod ls | inspect POD | stop POD | rm [-f] POD | stats POD\n"
    "Networks and the daemon:\n"
    "  network create|ls|rm ...\n"
    "  system info|df\n"
    "  version\n"
    "  completion bash|zsh              a shell completion script: source <(vesselctl completion bash)\n"
    "  context ls|use NAME|create NAME --host ADDR [--tls-...]|rm NAME...\n"
    "                                   named vesselds in ~/.config/vessel/config\n"
    "\n"
    "Global flags:\n"
    "  --host ADDR      unix:///path or tcp://host:port\n"
    "  --context NAME   a context of the contexts file (not with --host)\n"
    "  --tls-ca FILE    CA of vesseld's certificate (TCP)\n"
    "  --tls-cert FILE  client certificate (TCP; vesseld requires one)\n"
    "  --tls-key FILE   client key\n"
    "  --json           the messages in protobuf's proto3 JSON mapping (as grpcurl\n"
    "                   prints them: lowerCamelCase names, enums by name, 64-bit\n"
    "                   integers as strings); inspect prints it always\n"
    "  -h, --help       this text; COMMAND --help for a command's\n"
    "\n"
    "Which vesseld: --host or --context; else VESSEL_HOST (TLS files from\n"
    "VESSEL_TLS_CA, VESSEL_TLS_CERT, VESSEL_TLS_KEY); else VESSEL_CONTEXT; else\n"
    "the current context of $XDG_CONFIG_HOME/vessel/config (~/.config/vessel/config);\n"
    "else unix:///run/vessel/vessel.sock. --tls-* replace the TLS files that came\n"
    "with the address.\n"
    "\n"
    "Exit codes: 0 success; 1 a failed request (the message names the gRPC\n"
    "status); 2 a usage error (unknown command or flag). run, start -a and exec\n"
    "exit with the process's code (128+N when killed by signal N), or: 125 the\n"
    "container could not be created or started, 126 the command cannot be\n"
    "invoked (not executable; exec: any failure to start it), 127 the command\n"
    "was not found. A configuration naming no usable vesseld (unknown context,\n"
    "malformed contexts file, TCP without TLS files) is a usage error.\n";

vrpc_channel *vc_channel(vc_ctx *c) {
  if (c->ch) return c->ch;
  vs_err err;
  c->ch = vrpc_dial(c->host, c->use_tls ? &c->tls : NULL, NULL, &err);
  if (!c->ch) {
    fprintf(stderr, "vesselctl: %s\n", err.msg);
    exit(1);
  }
  return c->ch;
}

int vc_fail(vc_ctx *c, const vs_err *err) {
  const char *hint = "";
  /* Only when vesseld itself could not be reached: its own UNAVAILABLE
   * (a registry or a VM out of reach) says what it means. */
  int reached = c && c->ch && vrpc_channel_connected(c->ch);
  /* TLS 1.3: a server refusing our certificate just closes the socket. */
  int tls_failed = c && c->use_tls && (strstr(err->msg, "Socket closed") ||
                                       strcasestr(err->msg, "handshake") || strstr(err->msg, "SSL"));
  if (err->code == VS_UNAVAILABLE && !reached)
    hint = tls_failed ? " (the TLS handshake failed: vesseld requires a client certificate "
                        "signed by its --tls-client-ca (--tls-cert, --tls-key), and --tls-ca "
                        "must be the CA of vesseld's certificate)"
                      : " (is vesseld running? address from ";
  if (c) c->last_err = *err;
  fprintf(stderr, "vesselctl: %s%s%s%s [%s]\n", err->msg, hint,
          *hint && !tls_failed ? c->ep.source : "", *hint && !tls_failed ? ")" : "",
          vs_code_name(err->code));
  return 1;
}

int vc_call(vc_ctx *c, const vrpc_method *m, const ProtobufCMessage *req, ProtobufCMessage **resp) {
  vs_err err;
  vrpc_call_opts o = {0, NULL};
  if (vrpc_unary(vc_channel(c), m, req, resp, &o, &err) < 0) {
    vc_fail(c, &err);
    return -1;
  }
  return 0;
}

int vc_stream(vc_ctx *c, const vrpc_method *m, const ProtobufCMessage *req,
              int (*on_msg)(void *arg, const ProtobufCMessage *msg), void *arg, vs_err *err) {
  vrpc_call *call = vrpc_call_start(vc_channel(c), m, NULL, err);
  if (!call) return -1;
  int rc = vrpc_send(call, req, err) < 0 || vrpc_close_send(call, err) < 0 ? -1 : 0;
  while (rc == 0) {
    ProtobufCMessage *msg;
    int r = vrpc_recv(call, &msg, err);
    if (r <= 0) {
      rc = r;
      break;
    }
    int stop = on_msg(arg, msg);
    vrpc_msg_free(msg);
    if (stop) break;
  }
  vrpc_call_free(call);
  return rc;
}

int vc_usage_error(const char *verb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "vesselctl %s: ", verb);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nsee: vesselctl %s --help\n", verb);
  va_end(ap);
  return 2;
}

void vc_human_size(int64_t b, char *buf, size_t n) {
  const char *u[] = {"B", "kB", "MB", "GB", "TB"};
  double v = (double)b;
  int i = 0;
  while (v >= 1000 && i < 4) v /= 1000, i++;
  snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

void vc_ago(int64_t secs, char *buf, size_t n) {
  if (secs <= 0) {
    snprintf(buf, n, "-");
    return;
  }
  int64_t d = (int64_t)time(NULL) - secs;
  if (d < 60) snprintf(buf, n, "%lld seconds ago", (long long)(d < 0 ? 0 : d));
  else if (d < 3600) snprintf(buf, n, "%lld minutes ago", (long long)d / 60);
  else if (d < 86400) snprintf(buf, n, "%lld hours ago", (long long)d / 3600);
  else snprintf(buf, n, "%lld days ago", (long long)d / 86400);
}

typedef struct verb {
  const char *name;
  int (*fn)(vc_ctx *, int, char **);
  /* Verbs that parse no options with getopt: the flags they take (" -a
   * --all "); any other argument starting with '-' is a usage error. */
  const char *flags;
  /* Its sub-commands (" pull push "), for shell completion. */
  const char *subs;
} verb;

int vc_check_flags(const char *name, const char *flags, int argc, char **argv) {
  for (int i = 1; flags && i < argc; i++) {
    if (argv[i][0] != '-' || !argv[i][1]) continue;
    char want[256];
    snprintf(want, sizeof want, " %s ", argv[i]);
    if (!strstr(flags, want)) return vc_usage_error(name, "unknown flag %s", argv[i]);
  }
  return 0;
}

/* "vesselctl VERB --help": the verb's lines of the overview, unless the
 * verb has a fuller text of its own (run, create, exec, image). */
static int verb_help(const char *name) {
  printf("usage: vesselctl ");
  const char *p = usage;
  size_t n = strlen(name);
  int found = 0;
  while ((p = strstr(p, name))) {
    if (p[-1] == ' ' && p[-2] == ' ' && (p[n] == ' ' || p[n] == '\n')) {
      const char *e = strchr(p, '\n');
      printf("%s%.*s\n", found ? "       vesselctl " : "", (int)(e - p), p);
      found = 1;
    }
    p += n;
  }
  if (!found) printf("%s\n", name);
  return 0;
}

#define IMAGE_SUBS " pull push ls rm tag inspect save load prune "
static int vc_completion(vc_ctx *c, int argc, char **argv);

static const verb verbs[] = {
    {"run", vc_run, NULL, NULL},
    {"create", vc_create, NULL, NULL},
    {"start", vc_start, NULL, NULL},
    {"exec", vc_exec, NULL, NULL},
    {"ps", vc_ps, " -a --all ", NULL},
    {"logs", vc_logs, NULL, NULL},
    {"stop", vc_stop, NULL, NULL},
    {"kill", vc_kill, NULL, NULL},
    {"rm", vc_rm, NULL, NULL},
    {"inspect", vc_inspect, " ", NULL},
    {"stats", vc_stats, " ", NULL},
    {"cp", vc_cp, " ", NULL},
    {"events", vc_events, NULL, NULL},
    {"image", vc_image, NULL, IMAGE_SUBS},
    {"images", vc_image, NULL, IMAGE_SUBS},
    {"login", vc_login, NULL, NULL},
    {"logout", vc_logout, " ", NULL},
    {"rootfs", vc_rootfs, NULL, " create "},
    {"network", vc_network, NULL, " create ls rm "},
    {"system", vc_system, " ", " info df "},
    {"version", vc_version, " ", NULL},
    {"pod", vc_pod, NULL, " create ls inspect stop rm stats "},
    {"update", vc_update, NULL, NULL},
    {"completion", vc_completion, " ", " bash zsh "},
    {"context", vc_context, NULL, " ls use create rm "},
};
#define N_VERBS (sizeof verbs / sizeof verbs[0])

static const char global_flags[] = "--host --context --tls-ca --tls-cert --tls-key --json --help";

/* "completion bash|zsh": a completion script made from the verb table
 * (zsh runs the same function through bashcompinit). */
static int vc_completion(vc_ctx *c, int argc, char **argv) {
  (void)c;
  int zsh = argc == 2 && !strcmp(argv[1], "zsh");
  if (argc != 2 || (!zsh && strcmp(argv[1], "bash")))
    return vc_usage_error("completion", "give bash or zsh");
  if (zsh) /* bash's completion function through zsh's bashcompinit */
    printf("(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -u; }\n"
           "autoload -U +X bashcompinit && bashcompinit\n");
  printf("_vesselctl() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} i=1 verb=\n"
         "  while [ $i -lt $COMP_CWORD ]; do\n"
         "    case ${COMP_WORDS[i]} in\n"
         "      --host|--context|--tls-ca|--tls-cert|--tls-key) i=$((i+1)) ;;\n"
         "      -*) ;;\n"
         "      *) verb=${COMP_WORDS[i]}; break ;;\n"
         "    esac\n"
         "    i=$((i+1))\n"
         "  done\n"
         "  if [ -z \"$verb\" ]; then\n"
         "    case $cur in\n"
         "      -*) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")) ;;\n"
         "      *) COMPREPLY=($(compgen -W \"",
         global_flags);
  for (size_t i = 0; i < N_VERBS; i++) printf("%s%s", i ? " " : "", verbs[i].name);
  printf("\" -- \"$cur\")) ;;\n"
         "    esac\n"
         "    return\n"
         "  fi\n"
         "  local words=\n"
         "  case $verb in\n");
  for (size_t i = 0; i < N_VERBS; i++)
    if (verbs[i].subs || (verbs[i].flags && strcmp(verbs[i].flags, " ")))
      printf("    %s) [ $((COMP_CWORD - i)) -eq 1 ] && words=\"%s\" || words=\"%s\" ;;\n",
             verbs[i].name, verbs[i].subs ? verbs[i].subs : verbs[i].flags,
             verbs[i].flags && strcmp(verbs[i].flags, " ") ? verbs[i].flags : "");
  printf("  esac\n"
         "  [ -n \"$words\" ] && COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
         "}\n"
         "complete -o default -F _vesselctl vesselctl\n");
  return 0;
}

/* Verbs that never dial vesseld: no address needs resolving for them. */
static int dials(const verb *v) { return v->fn != vc_completion && v->fn != vc_context; }

/* The address and TLS files from flags, VESSEL_* and the contexts file:
 * 0, or 2 after printing why none is usable. */
static int resolve(vc_ctx *c) {
  vs_err err;
  if (vcfg_resolve(&c->cfg, &c->ep, &err) < 0) {
    fprintf(stderr, "vesselctl: %s\n", err.msg);
    return 2;
  }
  c->host = c->ep.host;
  c->use_tls = c->ep.use_tls;
  c->tls.ca_file = c->ep.tls_ca[0] ? c->ep.tls_ca : NULL;
  c->tls.cert_file = c->ep.tls_cert[0] ? c->ep.tls_cert : NULL;
  c->tls.key_file = c->ep.tls_key[0] ? c->ep.tls_key : NULL;
  c->tls.server_name = c->ep.server_name[0] ? c->ep.server_name : NULL;
  return 0;
}

int main(int argc, char **argv) {
  vc_ctx c;
  memset(&c, 0, sizeof c);
  c.cfg.env_host = getenv("VESSEL_HOST");
  c.cfg.env_context = getenv("VESSEL_CONTEXT");
  c.cfg.env_tls_ca = getenv("VESSEL_TLS_CA");
  c.cfg.env_tls_cert = getenv("VESSEL_TLS_CERT");
  c.cfg.env_tls_key = getenv("VESSEL_TLS_KEY");
  if (vcfg_path(getenv("XDG_CONFIG_HOME"), getenv("HOME"), c.cfg_path, sizeof c.cfg_path,
                &c.cfg_err) == 0)
    c.cfg.path = c.cfg_path;
  enum { HOST = 1, CONTEXT, CA, CERT, KEY, JSON };
  static const struct option opts[] = {
      {"host", required_argument, NULL, HOST},     {"context", required_argument, NULL, CONTEXT},
      {"tls-ca", required_argument, NULL, CA},     {"tls-cert", required_argument, NULL, CERT},
      {"tls-key", required_argument, NULL, KEY},   {"json", no_argument, NULL, JSON},
      {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
  int o;
  /* '+': stop at the command; its flags are its own */
  while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (o) {
      case HOST: c.cfg.host = optarg; break;
      case CONTEXT: c.cfg.context = optarg; break;
      case CA: c.cfg.tls_ca = optarg; break;
      case CERT: c.cfg.tls_cert = optarg; break;
      case KEY: c.cfg.tls_key = optarg; break;
      case JSON: c.json = 1; break;
      case 'h': fputs(usage, stdout); return 0;
      default: fputs(usage, stderr); return 2;
    }
  }
  if (optind >= argc) {
    fputs(usage, stderr);
    return 2;
  }
  int asks_help = optind + 1 < argc && (!strcmp(argv[optind + 1], "--help") ||
                                        !strcmp(argv[optind + 1], "-h"));
  static const char *const own_help[] = {"run", "create", "exec", "image", "images", "context"};
  for (size_t i = 0; asks_help && i < sizeof own_help / sizeof own_help[0]; i++)
    if (!strcmp(argv[optind], own_help[i])) asks_help = 0;
  for (size_t i = 0; i < N_VERBS; i++)
    if (!strcmp(argv[optind], verbs[i].name)) {
      if (asks_help) return verb_help(verbs[i].name);
      if (vc_check_flags(verbs[i].name, verbs[i].flags, argc - optind, argv + optind)) return 2;
      if (dials(&verbs[i]) && resolve(&c)) return 2;
      int rc = verbs[i].fn(&c, argc - optind, argv + optind);
      vrpc_channel_free(c.ch);
      return rc;
    }
  fprintf(stderr, "vesselctl: unknown command \"%s\"\n\n%s", argv[optind], usage);
  return 2;
}
