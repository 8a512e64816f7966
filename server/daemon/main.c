/* vesseld: the vessel host server. Parses flags, prepares the state
 * directory, serves the API until SIGINT/SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/rpc.h"
#include "common/vs_fs.h"
#include "common/vs_log.h"
#include "grpc_proto_rpc.h"
#include "server/daemon/daemon.h"
#include "cri_proto_rpc.h"
#include "vessel_proto_rpc.h"

#define LOG(level, ...) vs_log("vesseld", level, __VA_ARGS__)

/* --accel: decided once, here, for every VM (vm_accel_decide probes KVM).
 * KVM asked for but unusable stops vesseld with the reason. */
static int decide_accel(vd_daemon *d, vs_err *err) {
  const char *want = d->cfg.accel;
  vm_accel w = !strcmp(want, "kvm") ? VM_ACCEL_KVM : !strcmp(want, "tcg") ? VM_ACCEL_TCG : VM_ACCEL_AUTO;
  char why[512];
  if (vm_accel_decide(d->cfg.qemu, d->cfg.guest_arch, w, 5000, &d->accel, why, sizeof why, err) < 0)
    return vs_err_wrap(err, "--accel kvm");
  if (w == VM_ACCEL_AUTO)
    snprintf(d->accel_reason, sizeof d->accel_reason, "%s", why);
  else
    snprintf(d->accel_reason, sizeof d->accel_reason, "chosen by --accel %s%s%s", want,
             w == VM_ACCEL_KVM ? ": " : "", w == VM_ACCEL_KVM ? why : "");
  if (w == VM_ACCEL_AUTO && d->accel == VM_ACCEL_TCG)
    LOG(VS_LOG_WARN, "VMs run under TCG (emulation, much slower than KVM): %s", why);
  else
    LOG(VS_LOG_INFO, "accelerator %s: %s", d->accel == VM_ACCEL_KVM ? "kvm" : "tcg", d->accel_reason);
  return 0;
}

/* One vesseld per root: a second one would corrupt the stores. */
static int lock_root(const char *root, vs_err *err) {
  if (vs_mkdir_p(root, 0700, err) < 0) return -1;
  char path[4096];
  snprintf(path, sizeof path, "%s/vesseld.lock", root);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return vs_err_errno(err, VS_INTERNAL, errno, "open %s", path);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    close(fd);
    return vs_err_set(err, VS_FAILED_PRECONDITION,
                      "another vesseld is using root %s", root);
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (ftruncate(fd, 0) < 0 || write(fd, pid, (size_t)n) != n) {
    /* the pid is informational only */
  }
  return fd;
}

static int setup_listeners(vd_daemon *d, vrpc_server *srv, vs_err *err) {
  const vd_config *c = &d->cfg;
  for (size_t i = 0; i < c->n_listen; i++) {
    const char *uri = c->listen[i];
    vrpc_tls tls = {c->tls_cert, c->tls_key, c->tls_client_ca, NULL};
    const vrpc_tls *t = NULL;
    if (vd_is_tcp(uri)) {
      if (c->insecure_tcp)
        LOG(VS_LOG_WARN,
            "%s: plaintext TCP without client authentication: anyone who can "
            "reach this port controls vesseld", uri);
      else
        t = &tls;
    } else {
      /* unix:///run/vessel/vessel.sock: make its directory, private. */
      char dir[4096];
      snprintf(dir, sizeof dir, "%s", uri + 7);
      char *slash = strrchr(dir, '/');
      if (slash && slash != dir) {
        *slash = '\0';
        if (vs_mkdir_p(dir, 0755, err) < 0) return -1;
      }
    }
    int port = 0;
    if (vrpc_server_listen(srv, uri, t, &port, err) < 0) return -1;
    if (vd_is_tcp(uri)) {
      char host[128];
      const char *hp = uri + 6;
      const char *colon = strrchr(hp, ':');
      snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
      snprintf(d->listen_buf[i], sizeof d->listen_buf[i], "tcp://%s:%d", host, port);
    } else {
      snprintf(d->listen_buf[i], sizeof d->listen_buf[i], "%s", uri);
    }
    d->listen_uris[i] = d->listen_buf[i];
    d->n_listen = i + 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  vd_daemon d;
  memset(&d, 0, sizeof d);
  vs_err err;
  vs_err_clear(&err);
  if (vd_config_parse(&d.cfg, argc, argv, &err) < 0) {
    fprintf(stderr, "vesseld: %s\n\n%s", err.msg, vd_usage);
    return 2;
  }
  if (d.cfg.show_help || d.cfg.show_version) {
    if (d.cfg.show_help) fputs(vd_usage, stdout);
    else printf("vesseld %s (API %s)\n", VESSEL_VERSION, VESSEL_API_VERSION);
    vd_config_free(&d.cfg);
    return 0;
  }
  clock_gettime(CLOCK_REALTIME, &d.started);

  /* Signals are taken synchronously by main; every thread created from here
   * on inherits the blocked mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
  vs_log_crashes("vesseld");
  /* Output moves through in chunks of up to 1 MiB: with glibc's dynamic
   * threshold such chunks end up in the heap once one was freed, and a
   * long-running daemon keeps the high-water mark. A fixed threshold keeps
   * them mmap'd, so freeing them gives the memory back. */
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  /* Every container holds a few fds (its VM's channel, eventfds, logs):
   * the soft limit's 1024 would stop a long-running vesseld early. */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) < 0) LOG(VS_LOG_WARN, "cannot raise the fd limit");
  }

  /* The unix sockets' group (Docker's "docker" group): checked first. */
  long socket_gid = -1;
  if (d.cfg.socket_group) {
    struct group *g = getgrnam(d.cfg.socket_group);
    if (!g) {
      LOG(VS_LOG_ERROR, "--socket-group %s: no such group", d.cfg.socket_group);
      return 1;
    }
    socket_gid = (long)g->gr_gid;
  }

  /* Before the root is touched: --accel kvm without KVM leaves nothing. */
  if (decide_accel(&d, &err) < 0) {
    LOG(VS_LOG_ERROR, "%s", err.msg);
    return 1;
  }
  int lock_fd = lock_root(d.cfg.root, &err);
  if (lock_fd < 0) {
    LOG(VS_LOG_ERROR, "%s", err.msg);
    return 1;
  }

  /* Metrics (with --metrics-listen) are recorded from the start; they are
   * served once everything else is up. */
  if (vd_metrics_open(&d, &err) < 0) {
    LOG(VS_LOG_ERROR, "%s", err.msg);
    return 1;
  }
  d.images = img_open(d.cfg.root, &err);
  if (d.images && d.metrics && img_metrics(d.images, d.metrics, &err) < 0) {
    img_close(d.images);
    d.images = NULL;
  }
  d.events = d.images ? evb_new(4096, &err) : NULL;
  d.networks = d.events ? net_open(d.cfg.root, &err) : NULL;
  if (d.networks) {
    rt_config rc = {.root = d.cfg.root, .kernel = d.cfg.kernel, .initrd = d.cfg.initrd,
                    .qemu = d.cfg.qemu, .images = d.images, .networks = d.networks,
                    .events = d.events, .trace_agent_calls = d.cfg.trace_agent_calls,
                    .dns_upstreams = d.cfg.dns_upstreams,
                    .n_dns_upstreams = d.cfg.n_dns_upstreams,
                    .template_memory_copy = d.cfg.template_memory_copy,
                    .tb_size_mib = d.cfg.tb_size_mib,
                    .max_spares = d.cfg.spares ? d.cfg.spares : -1,
                    .spare_memory_s = d.cfg.spares_memory_s,
                    .accel = d.accel,
                    .log_max_bytes = d.cfg.log_max_bytes,
                    .log_max_files = d.cfg.log_max_files,
                    .guest_arch = d.cfg.guest_arch, .metrics = d.metrics};
    d.runtime = rt_open(&rc, &err);
  }
  char native[1][32]; /* the VMs' own platform: what a pull without one means */
  if (d.runtime && rt_emu_platforms(d.runtime, native, 1) == 1 &&
      img_set_native(d.images, native[0], &err) < 0) {
    rt_close(d.runtime);
    d.runtime = NULL;
  }
  if (!d.runtime) {
    LOG(VS_LOG_ERROR, "%s", err.msg);
    mt_registry_free(d.metrics);
    return 1;
  }
  pthread_mutex_init(&d.probe_mu, NULL);
  vrpc_server_opts so = {.max_calls_per_connection = d.cfg.max_calls_per_connection,
                         .unix_mode = 0660, .has_unix_gid = socket_gid >= 0,
                         .unix_gid = (unsigned)socket_gid,
                         .on_done = d.metrics ? vd_metrics_rpc_done : NULL, .on_done_arg = &d};
  vrpc_server *srv = vrpc_server_new(&so, &err);
  const vrpc_descriptor_pool *pools[] = {&vessel_proto_pool, &grpc_proto_pool};
  if (!srv || vd_system_register(srv, &d, &err) < 0 || vd_images_register(srv, &d, &err) < 0 ||
      vd_events_register(srv, &d, &err) < 0 || vd_networks_register(srv, &d, &err) < 0 ||
      vd_pods_register(srv, &d, &err) < 0 ||
      vd_containers_register(srv, &d, &err) < 0 ||
      vrpc_health_register(srv, &err) < 0 ||
      vrpc_reflection_register(srv, pools, 2, &err) < 0 ||
      setup_listeners(&d, srv, &err) < 0 || vrpc_server_start(srv, &err) < 0) {
    LOG(VS_LOG_ERROR, "%s", err.msg);
    vrpc_server_free(srv);
    img_close(d.images);
    rt_close(d.runtime);
    evb_free(d.events);
    net_close(d.networks);
    mt_registry_free(d.metrics);
    return 1;
  }
  /* Kubernetes' CRI, on a server (and socket) of its own when asked. */
  vrpc_server *cri = NULL;
  ss_backend sb;
  vd_stream_backend(&d, &sb);
  if (d.cfg.cri_listen) {
    const vrpc_descriptor_pool *cri_pools[] = {&cri_proto_pool, &grpc_proto_pool};
    unlink(d.cfg.cri_listen + 7);
    if (!(d.stream = ss_start(d.cfg.cri_stream_address, d.cfg.cri_stream_ttl, &sb, &err)) ||
        !(cri = vrpc_server_new(&so, &err)) || vd_cri_register(cri, &d, &err) < 0 ||
        vrpc_health_register(cri, &err) < 0 || vrpc_reflection_register(cri, cri_pools, 2, &err) < 0 ||
        vrpc_server_listen(cri, d.cfg.cri_listen, NULL, NULL, &err) < 0 || vrpc_server_start(cri, &err) < 0) {
      LOG(VS_LOG_ERROR, "--cri-listen %s: %s", d.cfg.cri_listen, err.msg);
      vrpc_server_free(cri);
      ss_stop(d.stream);
      vrpc_server_shutdown(srv, 0);
      vrpc_server_free(srv);
      rt_close(d.runtime);
      img_close(d.images);
      evb_free(d.events);
      net_close(d.networks);
      mt_registry_free(d.metrics);
      return 1;
    }
    LOG(VS_LOG_INFO, "serving the CRI (runtime.v1) on %s, streaming on %s", d.cfg.cri_listen,
        ss_base_url(d.stream));
  }
  if (d.metrics && !(d.metrics_server = mt_server_start(d.metrics, d.cfg.metrics_listen, &err))) {
    LOG(VS_LOG_ERROR, "--metrics-listen %s: %s", d.cfg.metrics_listen, err.msg);
    if (cri) vrpc_server_shutdown(cri, 0);
    vrpc_server_shutdown(srv, 0);
    vrpc_server_free(cri);
    vrpc_server_free(srv);
    ss_stop(d.stream);
    rt_close(d.runtime);
    img_close(d.images);
    evb_free(d.events);
    net_close(d.networks);
    mt_registry_free(d.metrics);
    return 1;
  }
  if (d.metrics_server)
    LOG(VS_LOG_INFO, "serving metrics on %s/metrics", mt_server_uri(d.metrics_server));
  for (size_t i = 0; i < d.n_listen; i++)
    LOG(VS_LOG_INFO, "listening on %s", d.listen_uris[i]);
  LOG(VS_LOG_INFO, "vesseld %s ready (root %s)", VESSEL_VERSION, d.cfg.root);
  /* Type=notify: systemd counts vesseld started once it serves. */
  sd_notify(0, "READY=1");

  int sig = 0;
  sigwait(&sigs, &sig);
  LOG(VS_LOG_INFO, "signal %d: shutting down", sig);
  /* Metrics first: its collectors read the runtime and the image store. */
  mt_server_stop(d.metrics_server);
  sd_notify(0, "STOPPING=1");
  if (cri) vrpc_server_shutdown(cri, 2000);
  vrpc_server_shutdown(srv, 2000);
  vrpc_server_free(cri);
  vrpc_server_free(srv);
  ss_stop(d.stream);
  if (d.cfg.cri_listen) unlink(d.cfg.cri_listen + 7);
  rt_close(d.runtime);
  img_close(d.images);
  evb_free(d.events);
  net_close(d.networks);
  for (size_t i = 0; i < d.cfg.n_listen; i++)
    if (!vd_is_tcp(d.cfg.listen[i])) unlink(d.cfg.listen[i] + 7);
  mt_registry_free(d.metrics); /* after the servers: their on_done records in it */
  close(lock_fd);
  LOG(VS_LOG_INFO, "stopped");
  vd_config_free(&d.cfg);
  return 0;
}
