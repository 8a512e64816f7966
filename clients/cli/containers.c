/* vesselctl run, create, start, exec, ps, logs, stop, kill, rm, inspect,
 * stats, cp, events. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <time.h>
#include <unistd.h>

#include "clients/cli/vesselctl.h"
#include "vessel/v1/containers.pb-c.h"
#include "vessel/v1/events.pb-c.h"
#include "vessel_proto_rpc.h"

static const char run_usage[] =
    "usage: vesselctl run|create [flags] IMAGE [CMD...]\n"
    "  -i, --interactive      keep stdin open and forward it\n"
    "  -t, --tty              allocate a terminal (raw mode, window resizes forwarded)\n"
    "  -d, --detach           print the ID and leave it running (run only)\n"
    "      --rm               delete the container when it exits (run only)\n"
    "      --name NAME        container ID\n"
    "  -e, --env K=V          environment (repeatable)\n"
    "  -v, --volume HOST:CTR[:ro]  host directory (repeatable)\n"
    "  -p, --publish [IP:]HOST:CTR  publish a TCP port (HOST 0 = any free)\n"
    "  -w, --workdir DIR      working directory\n"
    "  -u, --user USER        user[:group] or uid[:gid]\n"
    "      --cpus N           vCPUs (fractions round up)\n"
    "      --memory BYTES     memory limit (suffixes k, m, g)\n"
    "      --pod POD          create it in this running pod (its VM, network, hostname)\n"
    "      --network NET      network name (\"none\": loopback only); repeat to join\n"
    "                         several (the first is eth0, the default route)\n"
    "      --platform OS/ARCH platform of a multi-platform image\n"
    "      --entrypoint CMD   replace the image ENTRYPOINT\n"
    "      --no-template      cold-boot the VM instead of restoring a template\n"
    "      --restart POLICY   no, on-failure[:N], always or unless-stopped\n"
    "      --read-only        mount the root filesystem read-only\n"
    "      --tmpfs PATH       a tmpfs mount (repeatable)\n"
    "      --log-max-size BYTES  rotate its log file past this size (suffixes k, m, g;\n"
    "                         default: vesseld's --log-max-size)\n"
    "      --log-max-files N  log files kept, the current one included (1..100;\n"
    "                         default: vesseld's --log-max-files)\n"
    "exit codes: the process's (128+N if killed by signal N); 125 not created or\n"
    "started, 126 the command cannot be invoked, 127 the command was not found\n";

typedef struct run_opts {
  int interactive, tty, detach, rm;
} run_opts;

static int64_t parse_size(const char *s) {
  char *end;
  double v = strtod(s, &end);
  switch (*end) {
    case 'k': case 'K': v *= 1024; break;
    case 'm': case 'M': v *= 1024 * 1024; break;
    case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
    default: break;
  }
  return (int64_t)v;
}

static char **push(char **v, size_t *n, const char *s) {
  v = realloc(v, (*n + 1) * sizeof *v);
  v[(*n)++] = (char *)s;
  return v;
}

/* Parses run/create flags into req; returns the index of IMAGE, or -1. */
static int parse_run(int argc, char **argv, Vessel__V1__ContainersCreateRequest *req,
                     Vessel__V1__ProcessSpec *p, run_opts *ro, const char *verb) {
  static const struct option o[] = {
      {"interactive", no_argument, NULL, 'i'}, {"tty", no_argument, NULL, 't'},
      {"detach", no_argument, NULL, 'd'},      {"rm", no_argument, NULL, 'R'},
      {"name", required_argument, NULL, 'N'},  {"env", required_argument, NULL, 'e'},
      {"volume", required_argument, NULL, 'v'}, {"publish", required_argument, NULL, 'p'},
      {"workdir", required_argument, NULL, 'w'}, {"user", required_argument, NULL, 'u'},
      {"cpus", required_argument, NULL, 'C'},  {"memory", required_argument, NULL, 'M'},
      {"network", required_argument, NULL, 'n'}, {"platform", required_argument, NULL, 'P'},
      {"entrypoint", required_argument, NULL, 'E'}, {"help", no_argument, NULL, 'h'},
      {"no-template", no_argument, NULL, 'T'}, {"restart", required_argument, NULL, 'r'},
      {"read-only", no_argument, NULL, 'O'},   {"tmpfs", required_argument, NULL, 'F'},
      {"pod", required_argument, NULL, 'D'},
      {"log-max-size", required_argument, NULL, 'L'}, {"log-max-files", required_argument, NULL, 'K'},
      {NULL, 0, NULL, 0}};
  static Vessel__V1__LogConfig log;
  static Vessel__V1__RestartPolicy restart;
  static Vessel__V1__Resources res;
  static Vessel__V1__User user;
  static Vessel__V1__Platform plat;
  static Vessel__V1__EntrypointOverride ep;
  static Vessel__V1__NetworkAttachment net[8], *nets[8];
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+itdhe:v:p:w:u:", o, NULL)) != -1) {
    switch (ch) {
      case 'i': ro->interactive = 1; break;
      case 't': ro->tty = 1; break;
      case 'd': ro->detach = 1; break;
      case 'R': ro->rm = 1; break;
      case 'N': req->id = optarg; break;
      case 'D': req->pod_id = optarg; break;
      case 'e': p->env = push(p->env, &p->n_env, optarg); break;
      case 'w': p->cwd = optarg; break;
      case 'u':
        vessel__v1__user__init(&user);
        user.name = optarg;
        p->user = &user;
        break;
      case 'C':
      case 'M':
        if (!req->resources) vessel__v1__resources__init(&res), req->resources = &res;
        if (ch == 'C') res.milli_cpus = (int64_t)(strtod(optarg, NULL) * 1000);
        else res.memory_bytes = parse_size(optarg);
        break;
      case 'n': /* repeated: one attachment each, in order (vesseld checks the count) */
        if (req->n_networks == 8) return vc_usage_error(verb, "too many --network flags"), -1;
        vessel__v1__network_attachment__init(&net[req->n_networks]);
        net[req->n_networks].network = optarg;
        nets[req->n_networks] = &net[req->n_networks];
        req->networks = nets;
        req->n_networks++;
        break;
      case 'P': {
        vessel__v1__platform__init(&plat);
        char *s = strdup(optarg), *a = strchr(s, '/'), *v = NULL;
        if (a && (*a++ = '\0', (v = strchr(a, '/')))) *v++ = '\0';
        plat.os = s;
        plat.architecture = a ? a : (char *)"";
        plat.variant = v ? v : (char *)"";
        req->platform = &plat;
        break;
      }
      case 'E':
        vessel__v1__entrypoint_override__init(&ep);
        if (*optarg) ep.args = push(ep.args, &ep.n_args, optarg);
        req->entrypoint = &ep;
        break;
      case 'v': {
        Vessel__V1__Mount *m = calloc(1, sizeof *m);
        vessel__v1__mount__init(m);
        char *s = strdup(optarg), *c1 = strchr(s, ':');
        if (!c1) return vc_usage_error(verb, "volume %s: want HOST:CONTAINER[:ro]", optarg), -1;
        *c1++ = '\0';
        char *c2 = strchr(c1, ':');
        if (c2) *c2++ = '\0';
        m->type = (char *)"bind";
        m->source = s;
        m->destination = c1;
        if (c2 && !strcmp(c2, "ro")) m->options = push(m->options, &m->n_options, "ro");
        req->mounts = (Vessel__V1__Mount **)push((char **)req->mounts, &req->n_mounts, (char *)m);
        break;
      }
      case 'p': {
        Vessel__V1__PortMapping *pm = calloc(1, sizeof *pm);
        vessel__v1__port_mapping__init(pm);
        char *s = strdup(optarg), *parts[3] = {0};
        int k = 0;
        for (char *t = strtok(s, ":"); t && k < 3; t = strtok(NULL, ":")) parts[k++] = t;
        if (k < 2) return vc_usage_error(verb, "publish %s: want [IP:]HOST:CONTAINER", optarg), -1;
        if (k == 3) pm->host_ip = parts[0];
        pm->host_port = (uint32_t)atoi(parts[k - 2]);
        pm->container_port = (uint32_t)atoi(parts[k - 1]);
        req->ports = (Vessel__V1__PortMapping **)push((char **)req->ports, &req->n_ports, (char *)pm);
        break;
      }
      case 'T': req->no_template = 1; break;
      case 'O': req->read_only_rootfs = 1; break;
      case 'L':
      case 'K': {
        if (!req->log) vessel__v1__log_config__init(&log), req->log = &log;
        char *end;
        long long n = strtoll(optarg, &end, 10);
        if (ch == 'L' && (log.max_size_bytes = parse_size(optarg)) <= 0)
          return vc_usage_error(verb, "log-max-size %s: give bytes (suffixes k, m, g)", optarg), -1;
        if (ch == 'K' && (*end || end == optarg || n < 1 || n > 100))
          return vc_usage_error(verb, "log-max-files %s: give 1..100", optarg), -1;
        if (ch == 'K') log.max_files = (int32_t)n;
        break;
      }
      case 'r': {
        vessel__v1__restart_policy__init(&restart);
        char *s = strdup(optarg), *n = strchr(s, ':');
        if (n) *n++ = '\0';
        char *end = NULL;
        restart.name = s;
        restart.max_retries = n ? (int32_t)strtol(n, &end, 10) : 0;
        if (n && (!*n || *end))
          return vc_usage_error(verb, "restart %s: want POLICY[:COUNT]", optarg), -1;
        req->restart_policy = &restart;
        break;
      }
      case 'F': {
        Vessel__V1__Mount *m = calloc(1, sizeof *m);
        vessel__v1__mount__init(m);
        m->type = (char *)"tmpfs";
        m->destination = optarg;
        req->mounts = (Vessel__V1__Mount **)push((char **)req->mounts, &req->n_mounts, (char *)m);
        break;
      }
      case 'h': fputs(run_usage, stdout); return -2;
      default: return vc_usage_error(verb, "unknown flag"), -1;
    }
  }
  if (optind >= argc) return vc_usage_error(verb, "give an image"), -1;
  req->image = argv[optind];
  for (int i = optind + 1; i < argc; i++) p->args = push(p->args, &p->n_args, argv[i]);
  p->terminal = ro->tty;
  if (ro->tty) {
    p->env = push(p->env, &p->n_env, "TERM=xterm");
  }
  req->process = p;
  return optind;
}

/* ---- attach: output to our stdout/stderr, our stdin to the process ---- */

static struct termios saved_tio;
static int raw_mode;

static void restore_tty(void) {
  if (raw_mode) tcsetattr(0, TCSANOW, &saved_tio);
  raw_mode = 0;
}

typedef struct pump {
  vrpc_call *call;
  vc_ctx *c;
  const char *id, *exec_id;
  int tty;
  int stop_fd[2];
} pump;

static void send_resize(pump *p) {
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) < 0 || !ws.ws_row) return;
  Vessel__V1__ConsoleSize size;
  vessel__v1__console_size__init(&size);
  size.rows = ws.ws_row;
  size.cols = ws.ws_col;
  Vessel__V1__ContainersAttachRequest req;
  vessel__v1__containers_attach_request__init(&req);
  req.kind_case = VESSEL__V1__CONTAINERS_ATTACH_REQUEST__KIND_RESIZE;
  req.resize = &size;
  vs_err err;
  vrpc_send(p->call, &req.base, &err);
}

static volatile sig_atomic_t winch;
static void on_winch(int sig) {
  (void)sig;
  winch = 1;
}

static void *stdin_main(void *arg) {
  pump *p = arg;
  char buf[32768];
  if (p->tty) send_resize(p);
  for (;;) {
    struct pollfd pf[2] = {{0, POLLIN, 0}, {p->stop_fd[0], POLLIN, 0}};
    int n = poll(pf, 2, 200);
    if (winch) {
      winch = 0;
      send_resize(p);
    }
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (pf[1].revents) break;
    ssize_t r = read(0, buf, sizeof buf);
    Vessel__V1__StdioFrame f;
    vessel__v1__stdio_frame__init(&f);
    f.stream = VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDIN;
    f.data.data = (uint8_t *)buf;
    f.data.len = r > 0 ? (size_t)r : 0;
    f.eof = r <= 0;
    Vessel__V1__ContainersAttachRequest req;
    vessel__v1__containers_attach_request__init(&req);
    req.kind_case = VESSEL__V1__CONTAINERS_ATTACH_REQUEST__KIND_FRAME;
    req.frame = &f;
    vs_err err;
    if (vrpc_send(p->call, &req.base, &err) < 0 || r <= 0) break;
  }
  return NULL;
}

/* Attaches (before start when start_id is set), streams until exit; returns
 * the exit code (128+signal if killed), or -1 on error. */
static int attach(vc_ctx *c, const char *id, const char *exec_id, int interactive, int tty,
                  int logs, const char *start_id) {
  vs_err err;
  vrpc_call *call = vrpc_call_start(vc_channel(c), &vessel_v1_Containers_Attach, NULL, &err);
  Vessel__V1__ContainersAttachOpen open;
  vessel__v1__containers_attach_open__init(&open);
  open.container_id = (char *)id;
  open.exec_id = (char *)(exec_id ? exec_id : "");
  open.attach_stdout = open.attach_stderr = 1;
  open.attach_stdin = interactive;
  open.logs = logs;
  Vessel__V1__ContainersAttachRequest req;
  vessel__v1__containers_attach_request__init(&req);
  req.kind_case = VESSEL__V1__CONTAINERS_ATTACH_REQUEST__KIND_OPEN;
  req.open = &open;
  if (!call || vrpc_send(call, &req.base, &err) < 0) {
    vrpc_call_free(call);
    return vc_fail(c, &err), -1;
  }
  if (start_id) {
    Vessel__V1__ContainersStartRequest sr;
    vessel__v1__containers_start_request__init(&sr);
    sr.container_id = (char *)start_id;
    ProtobufCMessage *m;
    if (vc_call(c, &vessel_v1_Containers_Start, &sr.base, &m) < 0) {
      vrpc_call_free(call);
      return -1;
    }
    vrpc_msg_free(m);
  }
  pump p = {call, c, id, exec_id, tty && isatty(0), {-1, -1}};
  pthread_t th;
  int pumping = 0;
  if (interactive && pipe(p.stop_fd) == 0) {
    if (p.tty && tcgetattr(0, &saved_tio) == 0) {
      struct termios raw = saved_tio;
      cfmakeraw(&raw);
      tcsetattr(0, TCSANOW, &raw);
      raw_mode = 1;
      atexit(restore_tty);
      signal(SIGWINCH, on_winch);
    }
    pumping = pthread_create(&th, NULL, stdin_main, &p) == 0;
  } else if (!interactive) {
    vrpc_close_send(call, &err);
  }
  int code = -1;
  for (;;) {
    ProtobufCMessage *m;
    int r = vrpc_recv(call, &m, &err);
    if (r <= 0) {
      if (r < 0) {
        restore_tty();
        vc_fail(c, &err);
      }
      break;
    }
    Vessel__V1__ContainersAttachResponse *resp = (Vessel__V1__ContainersAttachResponse *)m;
    if (resp->kind_case == VESSEL__V1__CONTAINERS_ATTACH_RESPONSE__KIND_FRAME) {
      int fd = resp->frame->stream == VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDERR ? 2 : 1;
      for (size_t off = 0; off < resp->frame->data.len;) {
        ssize_t w = write(fd, resp->frame->data.data + off, resp->frame->data.len - off);
        if (w <= 0) break;
        off += (size_t)w;
      }
    } else if (resp->kind_case == VESSEL__V1__CONTAINERS_ATTACH_RESPONSE__KIND_EXIT) {
      code = resp->exit->signal ? 128 + resp->exit->signal : resp->exit->code;
      if (code < 0) {
        restore_tty();
        fprintf(stderr, "vesselctl: %s\n", *resp->exit->reason ? resp->exit->reason : "process lost");
        code = 125;
      }
    }
    vrpc_msg_free(m);
  }
  if (pumping) {
    ssize_t w = write(p.stop_fd[1], "x", 1);
    (void)w;
    pthread_join(th, NULL);
  }
  if (p.stop_fd[0] >= 0) close(p.stop_fd[0]), close(p.stop_fd[1]);
  restore_tty();
  vrpc_call_free(call);
  return code;
}

/* The exit code of a process that could not be started, as Docker's:
 * 127 executable not found, 126 not executable, else `other`. */
static int launch_code(const vs_err *e, int other) {
  if (e->code == VS_NOT_FOUND && (strstr(e->msg, "exec ") || strstr(e->msg, "executable")))
    return 127;
  if (e->code == VS_PERMISSION_DENIED || (e->code == VS_INVALID_ARGUMENT && strstr(e->msg, "exec")))
    return 126;
  return other;
}

static int delete_container(vc_ctx *c, const char *id, int force) {
  Vessel__V1__ContainersDeleteRequest req;
  vessel__v1__containers_delete_request__init(&req);
  req.container_id = (char *)id;
  req.force = force;
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_Delete, &req.base, &m) < 0) return 1;
  vrpc_msg_free(m);
  return 0;
}

static int create_common(vc_ctx *c, int argc, char **argv, const char *verb, int is_run) {
  Vessel__V1__ContainersCreateRequest req;
  vessel__v1__containers_create_request__init(&req);
  Vessel__V1__ProcessSpec p;
  vessel__v1__process_spec__init(&p);
  run_opts ro = {0};
  int at = parse_run(argc, argv, &req, &p, &ro, verb);
  if (at == -2) return 0;
  if (at < 0) return 2;
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_Create, &req.base, &m) < 0) return 125;
  char id[160];
  snprintf(id, sizeof id, "%s", ((Vessel__V1__ContainersCreateResponse *)m)->container->id);
  vrpc_msg_free(m);
  if (!is_run) {
    printf("%s\n", id);
    return 0;
  }
  if (ro.detach) {
    Vessel__V1__ContainersStartRequest sr;
    vessel__v1__containers_start_request__init(&sr);
    sr.container_id = id;
    if (vc_call(c, &vessel_v1_Containers_Start, &sr.base, &m) < 0) return 125;
    vrpc_msg_free(m);
    printf("%s\n", id);
    return 0;
  }
  c->last_err.code = VS_OK;
  int code = attach(c, id, NULL, ro.interactive, ro.tty, 1, id);
  if (ro.rm) delete_container(c, id, 1);
  return code < 0 ? launch_code(&c->last_err, 125) : code;
}

int vc_run(vc_ctx *c, int argc, char **argv) { return create_common(c, argc, argv, "run", 1); }
int vc_create(vc_ctx *c, int argc, char **argv) { return create_common(c, argc, argv, "create", 0); }

int vc_start(vc_ctx *c, int argc, char **argv) {
  int att = 0, ch;
  optind = 1;
  while ((ch = getopt(argc, argv, "+a")) != -1) {
    if (ch == 'a') att = 1;
    else return vc_usage_error("start", "usage: start [-a] ID");
  }
  if (optind != argc - 1) return vc_usage_error("start", "give one container");
  if (att) {
    c->last_err.code = VS_OK;
    int code = attach(c, argv[optind], NULL, 0, 0, 1, argv[optind]);
    return code < 0 ? launch_code(&c->last_err, 125) : code;
  }
  Vessel__V1__ContainersStartRequest req;
  vessel__v1__containers_start_request__init(&req);
  req.container_id = argv[optind];
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_Start, &req.base, &m) < 0) return 1;
  vrpc_msg_free(m);
  printf("%s\n", argv[optind]);
  return 0;
}

int vc_exec(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__ProcessSpec p;
  vessel__v1__process_spec__init(&p);
  Vessel__V1__User user;
  int interactive = 0, tty = 0, ch;
  optind = 1;
  static const struct option o[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  while ((ch = getopt_long(argc, argv, "+ite:w:u:h", o, NULL)) != -1) {
    if (ch == 'i') interactive = 1;
    else if (ch == 't') tty = 1;
    else if (ch == 'e') p.env = push(p.env, &p.n_env, optarg);
    else if (ch == 'w') p.cwd = optarg;
    else if (ch == 'u') vessel__v1__user__init(&user), user.name = optarg, p.user = &user;
    else if (ch == 'h') return puts("usage: vesselctl exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] ID CMD..."), 0;
    else return vc_usage_error("exec", "bad flag");
  }
  if (argc - optind < 2) return vc_usage_error("exec", "give a container and a command");
  for (int i = optind + 1; i < argc; i++) p.args = push(p.args, &p.n_args, argv[i]);
  p.terminal = tty;
  Vessel__V1__ContainersExecRequest req;
  vessel__v1__containers_exec_request__init(&req);
  req.container_id = argv[optind];
  req.process = &p;
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_Exec, &req.base, &m) < 0) return launch_code(&c->last_err, 126);
  char eid[160];
  snprintf(eid, sizeof eid, "%s", ((Vessel__V1__ContainersExecResponse *)m)->exec_id);
  vrpc_msg_free(m);
  int code = attach(c, argv[optind], eid, interactive, tty, 1, NULL);
  return code < 0 ? 126 : code;
}

static const char *state_word(Vessel__V1__ContainerState s) {
  static const char *const w[] = {"?", "creating", "created", "running", "stopping", "stopped"};
  return (unsigned)s < 6 ? w[s] : "?";
}

int vc_ps(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__ContainersListRequest req;
  vessel__v1__containers_list_request__init(&req);
  req.all = argc > 1 && (!strcmp(argv[1], "-a") || !strcmp(argv[1], "--all"));
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_List, &req.base, &m) < 0) return 1;
  Vessel__V1__ContainersListResponse *r = (Vessel__V1__ContainersListResponse *)m;
  if (c->json) {
    vc_json(stdout, m, 0);
    putchar('\n');
  } else {
    printf("%-14s %-28s %-10s %-16s %-16s %s\n", "ID", "IMAGE", "STATE", "IP", "CREATED", "COMMAND");
    for (size_t i = 0; i < r->n_containers; i++) {
      Vessel__V1__Container *ct = r->containers[i];
      char ago[32], cmd[64] = "";
      vc_ago(ct->created_at ? ct->created_at->seconds : 0, ago, sizeof ago);
      for (size_t k = 0; ct->process && k < ct->process->n_args; k++) {
        size_t l = strlen(cmd);
        snprintf(cmd + l, sizeof cmd - l, "%s%s", k ? " " : "", ct->process->args[k]);
      }
      char state[32];
      if (ct->state == VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_STOPPED && ct->exit_status)
        snprintf(state, sizeof state, "exited(%d)", ct->exit_status->code);
      else
        snprintf(state, sizeof state, "%s", state_word(ct->state));
      printf("%-14.12s %-28.28s %-10s %-16s %-16s %s\n", ct->id, ct->image, state,
             ct->n_networks ? ct->networks[0]->ip_address : "-", ago, cmd);
    }
  }
  vrpc_msg_free(m);
  return 0;
}

static int on_logs(void *arg, const ProtobufCMessage *m) {
  (void)arg;
  const Vessel__V1__ContainersLogsResponse *resp = (const Vessel__V1__ContainersLogsResponse *)m;
  for (size_t i = 0; i < resp->n_entries; i++) {
    FILE *f = resp->entries[i]->stream == VESSEL__V1__STDIO_STREAM__STDIO_STREAM_STDERR ? stderr : stdout;
    fwrite(resp->entries[i]->data.data, 1, resp->entries[i]->data.len, f);
    fflush(f);
  }
  return 0;
}

/* A time for --since/--until: RFC 3339 ("2026-12-03T05:00:00Z",
 * fractions and +hh:mm offsets too), Unix seconds ("1764738000.5"), or a
 * duration ago ("90s", "10m", "1h30m"). 0, or -1 if it is none of them. */
static int parse_when(const char *s, Google__Protobuf__Timestamp *t) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (p) {
    int64_t sec = (int64_t)timegm(&tm), ns = 0;
    if (*p == '.') { /* digits exactly: a double would round nanoseconds */
      int64_t scale = 100000000;
      for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10) ns += (*p - '0') * scale;
    }
    if (*p == '+' || *p == '-') {
      int hh, mm;
      if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || strlen(p) != 6) return -1;
      sec -= (*p == '+' ? 1 : -1) * (int64_t)(hh * 3600 + mm * 60);
    } else if (strcmp(p, "Z") && strcmp(p, "z")) {
      return -1;
    }
    t->seconds = sec;
    t->nanos = (int32_t)ns;
    return 0;
  }
  char *end;
  double v = strtod(s, &end);
  if (end != s && !*end && v >= 0) { /* Unix seconds */
    t->seconds = (int64_t)v;
    t->nanos = (int32_t)((v - (double)t->seconds) * 1e9);
    return 0;
  }
  double ago = 0; /* a duration: number+unit, repeated */
  for (p = s; *p;) {
    double n = strtod(p, &end);
    if (end == p || n < 0) return -1;
    double unit = *end == 'h' ? 3600 : *end == 'm' ? 60 : *end == 's' ? 1 : 0;
    if (!unit) return -1;
    ago += n * unit;
    p = end + 1;
  }
  if (p == s) return -1;
  double at = (double)now.tv_sec + now.tv_nsec / 1e9 - ago;
  t->seconds = (int64_t)at;
  t->nanos = (int32_t)((at - (double)t->seconds) * 1e9);
  return 0;
}

int vc_logs(vc_ctx *c, int argc, char **argv) {
  static const char logs_usage[] =
      "usage: logs [-f] [--tail N] [--since T] [--until T] ID\n"
      "  T: RFC 3339 (2026-12-03T05:00:00Z), Unix seconds, or a duration ago (10m, 1h30m)";
  Vessel__V1__ContainersLogsRequest req;
  vessel__v1__containers_logs_request__init(&req);
  Google__Protobuf__Timestamp since, until;
  static const struct option o[] = {{"follow", no_argument, NULL, 'f'},
                                    {"tail", required_argument, NULL, 'T'},
                                    {"since", required_argument, NULL, 'S'},
                                    {"until", required_argument, NULL, 'U'},
                                    {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+f", o, NULL)) != -1) {
    char *end;
    if (ch == 'f') {
      req.follow = 1;
    } else if (ch == 'T') {
      req.tail = strtoll(optarg, &end, 10);
      if (*end || end == optarg || req.tail < 0)
        return vc_usage_error("logs", "tail %s: give a number of lines (0: all)", optarg);
    } else if (ch == 'S' || ch == 'U') {
      Google__Protobuf__Timestamp *t = ch == 'S' ? &since : &until;
      google__protobuf__timestamp__init(t);
      if (parse_when(optarg, t) < 0)
        return vc_usage_error("logs", "%s %s: not a time\n%s", ch == 'S' ? "since" : "until",
                              optarg, logs_usage);
      if (ch == 'S') req.since = t;
      else req.until = t;
    } else {
      return vc_usage_error("logs", "%s", logs_usage);
    }
  }
  if (optind != argc - 1) return vc_usage_error("logs", "give one container");
  req.container_id = argv[optind];
  req.include_stdout = req.include_stderr = 1;
  vs_err err;
  return vc_stream(c, &vessel_v1_Containers_Logs, &req.base, on_logs, NULL, &err) < 0 ? vc_fail(c, &err) : 0;
}

static int signal_number(const char *s) {
  static const struct { const char *n; int v; } sigs[] = {
      {"HUP", 1}, {"INT", 2}, {"QUIT", 3}, {"KILL", 9}, {"USR1", 10}, {"USR2", 12}, {"TERM", 15}};
  if (!strncmp(s, "SIG", 3)) s += 3;
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (!strcmp(s, sigs[i].n)) return sigs[i].v;
  return atoi(s);
}

int vc_stop(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__ContainersStopRequest req;
  vessel__v1__containers_stop_request__init(&req);
  int ch;
  optind = 1;
  while ((ch = getopt(argc, argv, "+s:t:")) != -1) {
    if (ch == 's') req.signal = signal_number(optarg);
    else if (ch == 't') req.timeout_ms = strtoll(optarg, NULL, 10) * 1000;
    else return vc_usage_error("stop", "usage: stop [-s SIG] [-t SECONDS] ID...");
  }
  if (optind >= argc) return vc_usage_error("stop", "give containers");
  int rc = 0;
  for (int i = optind; i < argc; i++) {
    req.container_id = argv[i];
    ProtobufCMessage *m;
    if (vc_call(c, &vessel_v1_Containers_Stop, &req.base, &m) < 0) {
      rc = 1;
      continue;
    }
    vrpc_msg_free(m);
    printf("%s\n", argv[i]);
  }
  return rc;
}

int vc_kill(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__ContainersSignalRequest req;
  vessel__v1__containers_signal_request__init(&req);
  req.signal = 9;
  int ch;
  optind = 1;
  while ((ch = getopt(argc, argv, "+s:")) != -1) {
    if (ch == 's') req.signal = signal_number(optarg);
    else return vc_usage_error("kill", "usage: kill [-s SIG] ID");
  }
  if (optind != argc - 1) return vc_usage_error("kill", "give one container");
  req.container_id = argv[optind];
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_Signal, &req.base, &m) < 0) return 1;
  vrpc_msg_free(m);
  return 0;
}

int vc_rm(vc_ctx *c, int argc, char **argv) {
  int force = 0, ch;
  optind = 1;
  while ((ch = getopt(argc, argv, "+f")) != -1) {
    if (ch == 'f') force = 1;
    else return vc_usage_error("rm", "usage: rm [-f] ID...");
  }
  if (optind >= argc) return vc_usage_error("rm", "give containers");
  int rc = 0;
  for (int i = optind; i < argc; i++) {
    if (delete_container(c, argv[i], force)) rc = 1;
    else printf("%s\n", argv[i]);
  }
  return rc;
}

int vc_inspect(vc_ctx *c, int argc, char **argv) {
  if (argc != 2) return vc_usage_error("inspect", "give one container");
  Vessel__V1__ContainersInspectRequest req;
  vessel__v1__containers_inspect_request__init(&req);
  req.container_id = argv[1];
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_Inspect, &req.base, &m) < 0) return 1;
  vc_json(stdout, &((Vessel__V1__ContainersInspectResponse *)m)->container->base, 0);
  putchar('\n');
  vrpc_msg_free(m);
  return 0;
}

int vc_update(vc_ctx *c, int argc, char **argv) {
  static const struct option o[] = {{"memory", required_argument, NULL, 'M'},
                                    {"cpus", required_argument, NULL, 'C'},
                                    {"pids-limit", required_argument, NULL, 'P'},
                                    {NULL, 0, NULL, 0}};
  Vessel__V1__Resources res = VESSEL__V1__RESOURCES__INIT;
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+", o, NULL)) != -1) {
    if (ch == 'M') res.memory_bytes = parse_size(optarg);
    else if (ch == 'C') res.milli_cpus = (int64_t)(strtod(optarg, NULL) * 1000);
    else if (ch == 'P') res.pids_max = strtoll(optarg, NULL, 10);
    else return vc_usage_error("update", "usage: update [--memory BYTES] [--cpus N] [--pids-limit N] ID");
  }
  if (optind != argc - 1) return vc_usage_error("update", "give one container");
  Vessel__V1__ContainersUpdateRequest req = VESSEL__V1__CONTAINERS_UPDATE_REQUEST__INIT;
  req.container_id = argv[optind];
  req.resources = &res;
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_Update, &req.base, &m) < 0) return 1;
  if (c->json) vc_json(stdout, &((Vessel__V1__ContainersUpdateResponse *)m)->container->base, 0), putchar('\n');
  else printf("%s\n", argv[optind]);
  vrpc_msg_free(m);
  return 0;
}

int vc_stats(vc_ctx *c, int argc, char **argv) {
  if (argc != 2) return vc_usage_error("stats", "give one container");
  Vessel__V1__ContainersStatsRequest req;
  vessel__v1__containers_stats_request__init(&req);
  req.container_id = argv[1];
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Containers_Stats, &req.base, &m) < 0) return 1;
  vc_json(stdout, m, 0);
  putchar('\n');
  vrpc_msg_free(m);
  return 0;
}

/* "ID:/path" -> id and path; 0 if arg is a local path. */
static int split_remote(const char *arg, char *id, size_t idn, const char **path) {
  const char *colon = strchr(arg, ':');
  if (!colon || colon == arg || arg[0] == '/' || arg[0] == '.') return 0;
  snprintf(id, idn, "%.*s", (int)(colon - arg), arg);
  *path = colon + 1;
  return 1;
}

/* Local side of a copy: the host's tar, fed or drained through a pipe. */
static FILE *local_tar(const char *mode, const char *dir, const char *name) {
  char cmd[8192];
  if (*mode == 'r')
    snprintf(cmd, sizeof cmd, "tar -c -f - -C '%s' '%s'", dir, name);
  else
    snprintf(cmd, sizeof cmd, "tar -x -f - -C '%s'", dir);
  if (strchr(dir, '\'') || strchr(name, '\'')) return NULL;
  return popen(cmd, mode);
}

static int write_tar(void *arg, const ProtobufCMessage *m) {
  const ProtobufCBinaryData *d = &((const Vessel__V1__ContainersCopyOutResponse *)m)->data;
  return fwrite(d->data, 1, d->len, arg) != d->len;
}

int vc_cp(vc_ctx *c, int argc, char **argv) {
  if (argc != 3) return vc_usage_error("cp", "give SRC DST (one of them ID:PATH)");
  char id[256];
  const char *rpath;
  vs_err err;
  if (split_remote(argv[1], id, sizeof id, &rpath)) { /* container -> host */
    Vessel__V1__ContainersCopyOutRequest req;
    vessel__v1__containers_copy_out_request__init(&req);
    req.container_id = id;
    req.path = (char *)rpath;
    FILE *out = local_tar("w", argv[2], "");
    if (!out) return fprintf(stderr, "vesselctl: cannot run tar into %s\n", argv[2]), 1;
    int rc = vc_stream(c, &vessel_v1_Containers_CopyOut, &req.base, write_tar, out, &err);
    int st = pclose(out);
    if (rc < 0) return vc_fail(c, &err);
    return st == 0 ? 0 : (fprintf(stderr, "vesselctl: local tar failed\n"), 1);
  }
  if (!split_remote(argv[2], id, sizeof id, &rpath))
    return vc_usage_error("cp", "one side must be ID:PATH");
  char dir[4096], name[4096]; /* host -> container */
  snprintf(dir, sizeof dir, "%s", argv[1]);
  char *slash = strrchr(dir, '/');
  if (slash && slash[1]) {
    snprintf(name, sizeof name, "%s", slash + 1);
    if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
  } else {
    snprintf(name, sizeof name, "%s", argv[1]);
    snprintf(dir, sizeof dir, ".");
  }
  FILE *in = local_tar("r", dir, name);
  if (!in) return fprintf(stderr, "vesselctl: cannot run tar on %s\n", argv[1]), 1;
  vrpc_call *call = vrpc_call_start(vc_channel(c), &vessel_v1_Containers_CopyIn, NULL, &err);
  Vessel__V1__ContainersCopyInHeader h;
  vessel__v1__containers_copy_in_header__init(&h);
  h.container_id = id;
  h.path = (char *)rpath;
  Vessel__V1__ContainersCopyInRequest req;
  vessel__v1__containers_copy_in_request__init(&req);
  req.kind_case = VESSEL__V1__CONTAINERS_COPY_IN_REQUEST__KIND_HEADER;
  req.header = &h;
  int rc = call && vrpc_send(call, &req.base, &err) == 0 ? 0 : -1;
  static uint8_t buf[1 << 20];
  while (rc == 0) {
    size_t n = fread(buf, 1, sizeof buf, in);
    if (n == 0) break;
    vessel__v1__containers_copy_in_request__init(&req);
    req.kind_case = VESSEL__V1__CONTAINERS_COPY_IN_REQUEST__KIND_DATA;
    req.data.data = buf;
    req.data.len = n;
    rc = vrpc_send(call, &req.base, &err);
  }
  int st = pclose(in);
  ProtobufCMessage *m = NULL;
  if (rc == 0 && (vrpc_close_send(call, &err) < 0 || vrpc_recv(call, &m, &err) != 1)) rc = -1;
  vrpc_msg_free(m);
  vrpc_call_free(call);
  if (rc < 0) return vc_fail(c, &err);
  return st == 0 ? 0 : (fprintf(stderr, "vesselctl: local tar failed\n"), 1);
}

static int on_event(void *arg, const ProtobufCMessage *m) {
  vc_ctx *c = arg;
  const Vessel__V1__Event *e = ((const Vessel__V1__EventsSubscribeResponse *)m)->event;
  if (c->json) {
    vc_json(stdout, &e->base, 0);
    putchar('\n');
  } else {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&vessel__v1__event_type__descriptor, e->type);
    const char *what = v ? v->name + strlen("EVENT_TYPE_") : "?";
    char when[40] = "-";
    if (e->timestamp) {
      time_t t = (time_t)e->timestamp->seconds;
      struct tm tm;
      strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    }
    /* One field per column, named: a field a type does not have is left out. */
    printf("%s %llu %s", when, (unsigned long long)e->sequence, what);
    if (*e->container_id) printf(" container=%s", e->container_id);
    if (*e->process_id) printf(" process=%s", e->process_id);
    if (*e->image) printf(" image=%s", e->image);
    if (*e->network) printf(" network=%s", e->network);
    if (e->exit_status) printf(" exit=%d", e->exit_status->code);
    putchar('\n');
  }
  fflush(stdout);
  return 0;
}

int vc_events(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__EventsSubscribeRequest req;
  vessel__v1__events_subscribe_request__init(&req);
  static const struct option o[] = {{"container", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+", o, NULL)) != -1) {
    if (ch == 'c') req.container_id = optarg;
    else return vc_usage_error("events", "usage: events [--container ID]");
  }
  vs_err err;
  return vc_stream(c, &vessel_v1_Events_Subscribe, &req.base, on_event, c, &err) < 0 ? vc_fail(c, &err) : 0;
}
