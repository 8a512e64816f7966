/* Agent handlers: Info, Shutdown, Sync, SetTime, AddEntropy, Sysctl,
 * SetupEmulator, Statistics. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "guest-agent/cgroup.h"
#include "guest-agent/fs.h"
#include "guest-agent/service.h"
#include "guest-agent/sys.h"

static int info(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentInfoRequest, req, err);
  vrpc_msg_free(req_msg);
  Vessel__V1__AgentInfoResponse r = VESSEL__V1__AGENT_INFO_RESPONSE__INIT;
  struct utsname u;
  uname(&u);
  r.agent_version = (char *)AG_VERSION;
  r.api_version = (char *)"vessel.v1";
  r.kernel_release = u.release;
  r.kernel_version = u.version;
  r.machine = u.machine;
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  r.uptime_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  r.cpus = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
  char mi[4096];
  if (fs_read_small("/proc/meminfo", mi, sizeof mi) > 0)
    sy_parse_meminfo(mi, &r.memory_total_bytes, &r.memory_available_bytes);
  pthread_mutex_lock(&a->mu);
  size_t n = 0;
  for (ag_container *c = a->containers; c; c = c->next) n++;
  char **ids = calloc(n ? n : 1, sizeof *ids);
  n = 0;
  for (ag_container *c = a->containers; c && ids; c = c->next)
    if (!c->creating) ids[n++] = strdup(c->id);
  pthread_mutex_unlock(&a->mu);
  r.n_container_ids = ids ? n : 0;
  r.container_ids = ids;
  int rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; ids && i < n; i++) free(ids[i]);
  free(ids);
  return rc;
}

static int shutdown_(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentShutdownRequest, req, err);
  int action = req->action;
  vrpc_msg_free(req_msg);
  if (action != VESSEL__V1__SHUTDOWN_ACTION__SHUTDOWN_ACTION_POWEROFF &&
      action != VESSEL__V1__SHUTDOWN_ACTION__SHUTDOWN_ACTION_REBOOT)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "shutdown action unspecified");
  sync();
  Vessel__V1__AgentShutdownResponse r = VESSEL__V1__AGENT_SHUTDOWN_RESPONSE__INIT;
  int rc = vrpc_send(call, &r.base, err);
  /* main() acts after a short delay so this response gets out first. */
  pthread_mutex_lock(&a->mu);
  a->shutdown_action = action == VESSEL__V1__SHUTDOWN_ACTION__SHUTDOWN_ACTION_REBOOT ? 2 : 1;
  pthread_mutex_unlock(&a->mu);
  uint64_t one = 1;
  ssize_t w = write(a->shutdown_fd, &one, sizeof one);
  (void)w;
  return rc;
}

static int sync_(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentSyncRequest, req, err);
  vrpc_msg_free(req_msg);
  sync();
  Vessel__V1__AgentSyncResponse r = VESSEL__V1__AGENT_SYNC_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int set_time(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentSetTimeRequest, req, err);
  int rc = req->time ? sy_set_time(req->time->seconds, req->time->nanos, err)
                     : vs_err_set(err, VS_INVALID_ARGUMENT, "time missing");
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentSetTimeResponse r = VESSEL__V1__AGENT_SET_TIME_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int add_entropy(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentAddEntropyRequest, req, err);
  int rc = sy_add_entropy(req->data.data, req->data.len, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentAddEntropyResponse r = VESSEL__V1__AGENT_ADD_ENTROPY_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int cmp_entry(const void *x, const void *y) {
  const Vessel__V1__AgentSysctlRequest__SettingsEntry *const *a = x, *const *b = y;
  return strcmp((*a)->key, (*b)->key);
}

static int sysctl_(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentSysctlRequest, req, err);
  /* Key order, as documented. */
  qsort(req->settings, req->n_settings, sizeof *req->settings, cmp_entry);
  int rc = 0;
  for (size_t i = 0; i < req->n_settings && rc == 0; i++)
    rc = sy_sysctl(req->settings[i]->key, req->settings[i]->value, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentSysctlResponse r = VESSEL__V1__AGENT_SYSCTL_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

static int setup_emulator(vrpc_call *call, void *ctx, vs_err *err) {
  SVC_RECV(call, Vessel__V1__AgentSetupEmulatorRequest, req, err);
  char line[1024];
  int rc = sy_binfmt_line(req->name, req->type, req->offset, req->magic.data, req->magic.len,
                          req->mask.data, req->mask.len, req->interpreter, req->flags, line,
                          sizeof line, err);
  if (rc == 0) rc = sy_binfmt_register(req->name, line, err);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Vessel__V1__AgentSetupEmulatorResponse r = VESSEL__V1__AGENT_SETUP_EMULATOR_RESPONSE__INIT;
  return vrpc_send(call, &r.base, err);
}

/* Network counters of every non-loopback interface. */
static size_t net_stats(Vessel__V1__NetworkStatistics **out, size_t max) {
  DIR *d = opendir("/sys/class/net");
  if (!d) return 0;
  size_t n = 0;
  struct dirent *e;
  static const char *const names[] = {"rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
                                      "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"};
  while ((e = readdir(d)) && n < max) {
    if (e->d_name[0] == '.' || strcmp(e->d_name, "lo") == 0) continue;
    Vessel__V1__NetworkStatistics *s = calloc(1, sizeof *s);
    if (!s) break;
    vessel__v1__network_statistics__init(s);
    s->interface = strdup(e->d_name);
    uint64_t *fields[] = {&s->rx_bytes, &s->rx_packets, &s->rx_errors, &s->rx_dropped,
                          &s->tx_bytes, &s->tx_packets, &s->tx_errors, &s->tx_dropped};
    for (int i = 0; i < 8; i++) {
      char p[512], v[64];
      snprintf(p, sizeof p, "/sys/class/net/%s/statistics/%s", e->d_name, names[i]);
      if (fs_read_small(p, v, sizeof v) > 0) *fields[i] = strtoull(v, NULL, 10);
    }
    out[n++] = s;
  }
  closedir(d);
  return n;
}

static int statistics(vrpc_call *call, void *ctx, vs_err *err) {
  agent *a = ctx;
  SVC_RECV(call, Vessel__V1__AgentStatisticsRequest, req, err);
  pthread_mutex_lock(&a->mu);
  size_t n = 0;
  for (ag_container *c = a->containers; c; c = c->next) n++;
  char (*paths)[300] = calloc(n + req->n_container_ids + 1, sizeof *paths);
  char (*ids)[AG_ID_MAX + 1] = calloc(n + req->n_container_ids + 1, sizeof *ids);
  size_t k = 0;
  int rc = 0;
  if (req->n_container_ids) {
    for (size_t i = 0; i < req->n_container_ids && rc == 0; i++) {
      ag_container *c = ag_find_container(a, req->container_ids[i]);
      if (!c || c->creating) {
        rc = vs_err_set(err, VS_NOT_FOUND, "no container %s", req->container_ids[i]);
        break;
      }
      snprintf(paths[k], 300, "%s", c->cgroup);
      snprintf(ids[k++], AG_ID_MAX + 1, "%s", c->id);
    }
  } else {
    for (ag_container *c = a->containers; c; c = c->next) {
      if (c->creating) continue;
      snprintf(paths[k], 300, "%s", c->cgroup);
      snprintf(ids[k++], AG_ID_MAX + 1, "%s", c->id);
    }
  }
  pthread_mutex_unlock(&a->mu);
  vrpc_msg_free(req_msg);
  Vessel__V1__Statistics *st = calloc(k + 1, sizeof *st);
  Vessel__V1__Statistics **stp = calloc(k + 1, sizeof *stp);
  Vessel__V1__CpuStatistics *cpu = calloc(k + 1, sizeof *cpu);
  Vessel__V1__MemoryStatistics *mem = calloc(k + 1, sizeof *mem);
  Vessel__V1__IoStatistics *io = calloc(k + 1, sizeof *io);
  Vessel__V1__PidsStatistics *pids = calloc(k + 1, sizeof *pids);
  Google__Protobuf__Timestamp now = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Vessel__V1__NetworkStatistics *nets[16];
  size_t n_nets = rc == 0 ? net_stats(nets, 16) : 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  now.seconds = ts.tv_sec;
  now.nanos = (int32_t)ts.tv_nsec;
  uint64_t memtotal = 0, avail = 0;
  char mi[4096];
  if (fs_read_small("/proc/meminfo", mi, sizeof mi) > 0) sy_parse_meminfo(mi, &memtotal, &avail);
  for (size_t i = 0; rc == 0 && i < k; i++) {
    const char *p = paths[i];
    vessel__v1__statistics__init(&st[i]);
    vessel__v1__cpu_statistics__init(&cpu[i]);
    vessel__v1__memory_statistics__init(&mem[i]);
    vessel__v1__io_statistics__init(&io[i]);
    vessel__v1__pids_statistics__init(&pids[i]);
    st[i].container_id = ids[i];
    st[i].timestamp = &now;
    cg_read_key(p, "cpu.stat", "usage_usec", &cpu[i].usage_usec);
    cg_read_key(p, "cpu.stat", "user_usec", &cpu[i].user_usec);
    cg_read_key(p, "cpu.stat", "system_usec", &cpu[i].system_usec);
    cg_read_key(p, "cpu.stat", "nr_periods", &cpu[i].nr_periods);
    cg_read_key(p, "cpu.stat", "nr_throttled", &cpu[i].nr_throttled);
    cg_read_key(p, "cpu.stat", "throttled_usec", &cpu[i].throttled_usec);
    cpu[i].online_cpus = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    cg_read_u64(p, "memory.current", &mem[i].usage_bytes);
    cg_read_u64(p, "memory.max", &mem[i].limit_bytes);
    if (mem[i].limit_bytes == 0) mem[i].limit_bytes = memtotal;
    cg_read_key(p, "memory.stat", "anon", &mem[i].anon_bytes);
    cg_read_key(p, "memory.stat", "file", &mem[i].file_bytes);
    cg_read_u64(p, "memory.swap.current", &mem[i].swap_bytes);
    cg_read_key(p, "memory.events", "oom", &mem[i].oom_events);
    cg_read_key(p, "memory.events", "oom_kill", &mem[i].oom_kill_events);
    char iot[4096], path[400];
    snprintf(path, sizeof path, "%s/io.stat", p);
    if (fs_read_small(path, iot, sizeof iot) >= 0)
      cg_parse_io_stat(iot, &io[i].read_bytes, &io[i].write_bytes, &io[i].read_ops,
                       &io[i].write_ops);
    cg_read_u64(p, "pids.current", &pids[i].current);
    cg_read_u64(p, "pids.max", &pids[i].max);
    st[i].cpu = &cpu[i];
    st[i].memory = &mem[i];
    st[i].io = &io[i];
    st[i].pids = &pids[i];
    st[i].n_networks = n_nets;
    st[i].networks = nets;
    stp[i] = &st[i];
  }
  if (rc == 0) {
    Vessel__V1__AgentStatisticsResponse r = VESSEL__V1__AGENT_STATISTICS_RESPONSE__INIT;
    r.n_statistics = k;
    r.statistics = stp;
    rc = vrpc_send(call, &r.base, err);
  }
  for (size_t i = 0; i < n_nets; i++) {
    free(nets[i]->interface);
    free(nets[i]);
  }
  free(st), free(stp), free(cpu), free(mem), free(io), free(pids), free(paths), free(ids);
  return rc;
}

void svc_system_handlers(vessel_v1_Agent_handlers *h) {
  h->Info = info;
  h->Shutdown = shutdown_;
  h->Sync = sync_;
  h->SetTime = set_time;
  h->AddEntropy = add_entropy;
  h->Sysctl = sysctl_;
  h->SetupEmulator = setup_emulator;
  h->Statistics = statistics;
}
