/* runtime.v1 pod sandboxes and containers over vessel's pods: a sandbox is
 * a vessel pod (one VM), a CRI container a container in it. What the CRI
 * names and vessel has no field for (metadata, a container's annotations,
 * log paths) is kept in labels and annotations under "io.vessel.cri/",
 * which the CRI side never shows. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cri_proto_rpc.h"
#include "runtime/v1/api.pb-c.h"
#include "common/pbmap.h"
#include "server/daemon/daemon.h"
#include "vessel/v1/pods.pb-c.h"

#define KEY "io.vessel.cri/"
#define ANNOTATION KEY "annotation."

/* s starts with want (any s when want is ""): IDs filter by prefix. */
static int prefixed(const char *s, const char *want) { return !strncmp(s, want, strlen(want)); }

static int64_t ns_of(const Google__Protobuf__Timestamp *t) {
  return t ? t->seconds * 1000000000 + t->nanos : 0;
}

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Annotation key of pod p (may be NULL), copied to out ("" if none). */
static void annotation_of(const Vessel__V1__Pod *p, const char *key, char *out, size_t n) {
  const char *v = p ? PBMAP_GET(p, annotations, key) : NULL;
  snprintf(out, n, "%s", v ? v : "");
}

/* A staged mount's record, label KEY "mount.<i>" (written at create):
 * container path, host path, "ro"/"rw", staged entry, tab-separated. 1
 * with f filled; 0 for any other label. */
static int mount_record(const Vessel__V1__Container__LabelsEntry *l, char f[4][PATH_MAX]) {
  return !strncmp(l->key, KEY "mount.", sizeof KEY "mount." - 1) &&
         sscanf(l->value, "%4095[^\t]\t%4095[^\t]\t%2s\t%4095[^\t]", f[0], f[1], f[2], f[3]) == 4;
}

/* Undoes a container's staged mounts. */
static void unstage_mounts(const Vessel__V1__Container *c) {
  char f[4][PATH_MAX];
  for (size_t i = 0; i < c->n_labels; i++)
    if (mount_record(c->labels[i], f)) vd_cri_unstage(f[3]);
}

/* Stop and Remove are idempotent in the CRI: a sandbox or container that
 * is not there is no error. Sends desc's empty response unless rc failed
 * otherwise (e). */
static int send_unless_failed(vrpc_call *call, int rc, const vs_err *e,
                              const ProtobufCMessageDescriptor *desc, vs_err *err) {
  if (rc < 0 && e->code != VS_NOT_FOUND) {
    *err = *e;
    return -1;
  }
  return vd_send_empty(call, desc, err);
}

/* ---- security: what a VM can honour, and what it refuses by name ---- */

static int check_profile(const Runtime__V1__SecurityProfile *p, const char *field, vs_err *err) {
  /* RuntimeDefault and Unconfined: no seccomp or AppArmor profile is loaded
   * in the guest (the VM is the boundary; README says so). A profile of
   * the node's cannot be had in the VM. */
  if (p && p->profile_type == RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost)
    return vs_err_set(err, VS_UNIMPLEMENTED, "%s: Localhost profiles (%s) are not supported in a VM",
                      field, p->localhost_ref);
  return 0;
}

static int check_namespaces(const Runtime__V1__NamespaceOption *ns, const char *who, vs_err *err) {
  if (!ns) return 0;
  static const char *const name[] = {"network", "pid", "ipc"};
  const Runtime__V1__NamespaceMode mode[] = {ns->network, ns->pid, ns->ipc};
  for (int i = 0; i < 3; i++)
    if (mode[i] == RUNTIME__V1__NAMESPACE_MODE__NODE || mode[i] == RUNTIME__V1__NAMESPACE_MODE__TARGET)
      return vs_err_set(err, VS_UNIMPLEMENTED,
                        "%s.namespace_options.%s %s: a container in a VM cannot share the node's or "
                        "another container's namespace",
                        who, name[i], mode[i] == RUNTIME__V1__NAMESPACE_MODE__NODE ? "NODE" : "TARGET");
  if (ns->userns_options && ns->userns_options->mode == RUNTIME__V1__NAMESPACE_MODE__POD)
    return vs_err_set(err, VS_UNIMPLEMENTED, "%s.namespace_options.userns_options: user namespaces are not supported yet", who);
  return 0;
}

static int refuse_privileged(int privileged, const char *who, vs_err *err) {
  return privileged ? vs_err_set(err, VS_INVALID_ARGUMENT,
                                 "%s.privileged: privileged containers are not supported (the VM is "
                                 "the isolation boundary; the node's devices are not in it)",
                                 who)
                    : 0;
}

/* "NET_ADMIN" as "CAP_NET_ADMIN" (kubelet passes either); "ALL" stays. */
static char **cap_names(char **in, size_t n) {
  char **out = calloc(n + 1, sizeof *out);
  for (size_t i = 0; out && i < n; i++)
    if (asprintf(&out[i], "%s%s", !strncmp(in[i], "CAP_", 4) || !strcmp(in[i], "ALL") ? "" : "CAP_", in[i]) < 0)
      out[i] = NULL;
  return out;
}

static void free_names(char **v, size_t n) {
  for (size_t i = 0; v && i < n; i++) free(v[i]);
  free(v);
}

/* ---- sandboxes ---- */

static Runtime__V1__PodSandboxMetadata *pod_metadata(const Vessel__V1__Pod *p) {
  Runtime__V1__PodSandboxMetadata *m = malloc(sizeof *m);
  runtime__v1__pod_sandbox_metadata__init(m);
  void *const *a = (void *const *)p->annotations;
  const char *name = pbmap_get(a, p->n_annotations, KEY "name"),
             *uid = pbmap_get(a, p->n_annotations, KEY "uid"),
             *ns = pbmap_get(a, p->n_annotations, KEY "namespace"),
             *attempt = pbmap_get(a, p->n_annotations, KEY "attempt");
  m->name = strdup(name ? name : p->id);
  m->uid = strdup(uid ? uid : "");
  m->namespace_ = strdup(ns ? ns : "");
  m->attempt = attempt ? (uint32_t)atoi(attempt) : 0;
  return m;
}

static Runtime__V1__PodSandboxState pod_state(const Vessel__V1__Pod *p) {
  return p->state == VESSEL__V1__POD_STATE__POD_STATE_RUNNING ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                                              : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
}

static int run_pod_sandbox(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__RunPodSandboxRequest, req);
  const Runtime__V1__PodSandboxConfig *cfg = req->config;
  Vessel__V1__PodsCreateRequest p = VESSEL__V1__PODS_CREATE_REQUEST__INIT;
  Vessel__V1__Dns dns = VESSEL__V1__DNS__INIT;
  Vessel__V1__PortMapping *ports = NULL, **pp = NULL;
  int rc = 0;
  if (!cfg || !cfg->metadata || !*cfg->metadata->name)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "PodSandboxConfig.metadata.name is needed");
  else if (*req->runtime_handler && strcmp(req->runtime_handler, "vessel") != 0)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "runtime_handler \"%s\": this runtime is \"vessel\"",
                    req->runtime_handler);
  const Runtime__V1__LinuxSandboxSecurityContext *sc =
      cfg && cfg->linux ? cfg->linux->security_context : NULL;
  if (rc == 0 && sc &&
      (refuse_privileged(sc->privileged, "PodSandboxConfig.linux.security_context", err) < 0 ||
       check_namespaces(sc->namespace_options, "PodSandboxConfig.linux.security_context", err) < 0 ||
       check_profile(sc->seccomp, "PodSandboxConfig.linux.security_context.seccomp", err) < 0 ||
       check_profile(sc->apparmor, "PodSandboxConfig.linux.security_context.apparmor", err) < 0))
    rc = -1;
  if (rc == 0 && sc && sc->namespace_options) { /* POD: one for the pod's containers */
    p.share_pid = sc->namespace_options->pid == RUNTIME__V1__NAMESPACE_MODE__POD;
    p.share_ipc = sc->namespace_options->ipc == RUNTIME__V1__NAMESPACE_MODE__POD;
  }
  if (rc == 0) {
    p.hostname = cfg->hostname;
    if (cfg->dns_config) {
      dns.nameservers = cfg->dns_config->servers;
      dns.n_nameservers = cfg->dns_config->n_servers;
      dns.search = cfg->dns_config->searches;
      dns.n_search = cfg->dns_config->n_searches;
      dns.options = cfg->dns_config->options;
      dns.n_options = cfg->dns_config->n_options;
      p.dns = &dns;
    }
    ports = calloc(cfg->n_port_mappings + 1, sizeof *ports);
    pp = calloc(cfg->n_port_mappings + 1, sizeof *pp);
    /* Only those with a host port: kubelet lists every declared container
     * port, and host_port 0 means "not published" (vessel's 0 would pick
     * one). */
    for (size_t i = 0; ports && pp && i < cfg->n_port_mappings; i++) {
      const Runtime__V1__PortMapping *m = cfg->port_mappings[i];
      if (m->host_port <= 0) continue;
      Vessel__V1__PortMapping *v = &ports[p.n_ports];
      vessel__v1__port_mapping__init(v);
      v->host_ip = m->host_ip;
      v->host_port = (uint32_t)m->host_port;
      v->container_port = (uint32_t)(m->container_port > 0 ? m->container_port : 0);
      v->protocol = m->protocol == RUNTIME__V1__PROTOCOL__UDP ? VESSEL__V1__PORT_PROTOCOL__PORT_PROTOCOL_UDP
                                                             : VESSEL__V1__PORT_PROTOCOL__PORT_PROTOCOL_TCP;
      pp[p.n_ports++] = v;
    }
    p.ports = pp;
    PBMAP_COPY(&p, labels, vessel__v1__pods_create_request__labels_entry, cfg->labels, cfg->n_labels, NULL, KEY);
    PBMAP_COPY(&p, annotations, vessel__v1__pods_create_request__annotations_entry, cfg->annotations,
            cfg->n_annotations, NULL, KEY);
    const Runtime__V1__PodSandboxMetadata *md = cfg->metadata;
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%u", md->attempt);
#define ANN(k, v) PBMAP_ADD(&p, annotations, vessel__v1__pods_create_request__annotations_entry, KEY k, v)
    ANN("name", md->name);
    ANN("uid", md->uid);
    ANN("namespace", md->namespace_);
    ANN("attempt", attempt);
    ANN("log-directory", cfg->log_directory);
  }
  /* where its containers' host mounts will be staged (cri_mounts.c) */
  char staging[PATH_MAX] = "";
  Vessel__V1__Mount vol = VESSEL__V1__MOUNT__INIT, *volp = &vol;
  if (rc == 0 && (rc = vd_cri_staging_new(d, staging, err)) == 0) {
    vol.type = (char *)"bind";
    vol.source = staging;
    p.volumes = &volp;
    p.n_volumes = 1;
    ANN("staging", staging);
#undef ANN
  }
  char id[128];
  if (rc == 0) rc = rt_pod_create(d->runtime, &p, id, err);
  if (rc < 0 && *staging) vd_cri_staging_remove(staging);
  for (size_t i = 0; i < p.n_labels; i++) protobuf_c_message_free_unpacked(&p.labels[i]->base, NULL);
  for (size_t i = 0; i < p.n_annotations; i++)
    protobuf_c_message_free_unpacked(&p.annotations[i]->base, NULL);
  free(p.labels);
  free(p.annotations);
  free(ports);
  free(pp);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Runtime__V1__RunPodSandboxResponse r = RUNTIME__V1__RUN_POD_SANDBOX_RESPONSE__INIT;
  r.pod_sandbox_id = id;
  return vrpc_send(call, &r.base, err);
}

static int stop_pod_sandbox(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__StopPodSandboxRequest, req);
  vs_err e;
  /* kubelet has stopped the containers with their grace periods before:
   * what still runs is killed at once (as containerd does). */
  int rc = rt_pod_stop(d->runtime, req->pod_sandbox_id, SIGKILL, 1, &e);
  vrpc_msg_free(req_msg);
  return send_unless_failed(call, rc, &e, &runtime__v1__stop_pod_sandbox_response__descriptor, err);
}

static int remove_pod_sandbox(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__RemovePodSandboxRequest, req);
  vs_err e;
  char staging[PATH_MAX];
  Vessel__V1__Pod *p = rt_pod_describe(d->runtime, req->pod_sandbox_id, &e);
  annotation_of(p, KEY "staging", staging, sizeof staging);
  if (p) protobuf_c_message_free_unpacked(&p->base, NULL);
  int rc = rt_pod_delete(d->runtime, req->pod_sandbox_id, 1, &e);
  if (rc == 0 && *staging) vd_cri_staging_remove(staging); /* its containers' mounts too */
  vrpc_msg_free(req_msg);
  return send_unless_failed(call, rc, &e, &runtime__v1__remove_pod_sandbox_response__descriptor, err);
}

/* The CRI's status of pod p (free with protobuf_c_message_free_unpacked). */
static Runtime__V1__PodSandboxStatus *pod_status(const Vessel__V1__Pod *p) {
  Runtime__V1__PodSandboxStatus *st = malloc(sizeof *st);
  runtime__v1__pod_sandbox_status__init(st);
  st->id = strdup(p->id);
  st->metadata = pod_metadata(p);
  st->state = pod_state(p);
  st->created_at = ns_of(p->created_at);
  st->network = malloc(sizeof *st->network);
  runtime__v1__pod_sandbox_network_status__init(st->network);
  st->network->ip = strdup(p->n_networks ? p->networks[0]->ip_address : "");
  st->runtime_handler = strdup("vessel");
  PBMAP_COPY(st, labels, runtime__v1__pod_sandbox_status__labels_entry, p->labels, p->n_labels, NULL, KEY);
  PBMAP_COPY(st, annotations, runtime__v1__pod_sandbox_status__annotations_entry, p->annotations,
          p->n_annotations, NULL, KEY);
  return st;
}

static int pod_sandbox_status(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__PodSandboxStatusRequest, req);
  Vessel__V1__Pod *p = rt_pod_describe(d->runtime, req->pod_sandbox_id, err);
  vrpc_msg_free(req_msg);
  if (!p) return -1;
  Runtime__V1__PodSandboxStatusResponse r = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
  r.status = pod_status(p);
  r.timestamp = now_ns();
  int rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.status->base, NULL);
  protobuf_c_message_free_unpacked(&p->base, NULL);
  return rc;
}

static int list_pod_sandbox(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ListPodSandboxRequest, req);
  const Runtime__V1__PodSandboxFilter *f = req->filter;
  Vessel__V1__Pod **all;
  size_t n;
  int rc = rt_pod_list(d->runtime, &all, &n, err), listed = rc == 0;
  Runtime__V1__ListPodSandboxResponse r = RUNTIME__V1__LIST_POD_SANDBOX_RESPONSE__INIT;
  if (rc == 0) r.items = calloc(n ? n : 1, sizeof *r.items);
  for (size_t i = 0; rc == 0 && r.items && i < n; i++) {
    const Vessel__V1__Pod *p = all[i];
    if (f && !prefixed(p->id, f->id)) continue;
    if (f && f->state && f->state->state != pod_state(p)) continue;
    if (f && !pbmap_match((void *const *)f->label_selector, f->n_label_selector, (void *const *)p->labels,
                       p->n_labels))
      continue;
    Runtime__V1__PodSandbox *s = malloc(sizeof *s);
    runtime__v1__pod_sandbox__init(s);
    s->id = strdup(p->id);
    s->metadata = pod_metadata(p);
    s->state = pod_state(p);
    s->created_at = ns_of(p->created_at);
    s->runtime_handler = strdup("vessel");
    PBMAP_COPY(s, labels, runtime__v1__pod_sandbox__labels_entry, p->labels, p->n_labels, NULL, KEY);
    PBMAP_COPY(s, annotations, runtime__v1__pod_sandbox__annotations_entry, p->annotations,
            p->n_annotations, NULL, KEY);
    r.items[r.n_items++] = s;
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; i < r.n_items; i++) protobuf_c_message_free_unpacked(&r.items[i]->base, NULL);
  free(r.items);
  if (listed) rt_pod_list_free(all, n);
  vrpc_msg_free(req_msg);
  return rc;
}

/* ---- containers ---- */

/* kubelet's <log_directory>/<log_path> for a container of sandbox p ("" if
 * either is empty). */
static void log_file(const Vessel__V1__Pod *p, const char *log_path, char *out, size_t n) {
  char dir[PATH_MAX];
  annotation_of(p, KEY "log-directory", dir, sizeof dir);
  out[0] = '\0';
  if (log_path[0] == '/') snprintf(out, n, "%s", log_path);
  else if (*log_path && *dir) snprintf(out, n, "%s/%s", dir, log_path);
}

static int create_container(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__CreateContainerRequest, req);
  char log[4096] = "";
  const Runtime__V1__ContainerConfig *cfg = req->config;
  Vessel__V1__ContainersCreateRequest c = VESSEL__V1__CONTAINERS_CREATE_REQUEST__INIT;
  Vessel__V1__ProcessSpec ps = VESSEL__V1__PROCESS_SPEC__INIT;
  Vessel__V1__EntrypointOverride ep = VESSEL__V1__ENTRYPOINT_OVERRIDE__INIT;
  Vessel__V1__Resources res = VESSEL__V1__RESOURCES__INIT;
  char **env = NULL;
  char staging[PATH_MAX] = "", (*entries)[PATH_MAX] = NULL;
  Vessel__V1__Mount *mounts = NULL, **mp = NULL;
  static char *const ro_opt[1] = {"ro"};
  size_t n_staged = 0;
  int rc = 0;
  if (!cfg || !cfg->metadata || !*cfg->metadata->name || !cfg->image || !*cfg->image->image)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "ContainerConfig needs metadata.name and image");
  else if (cfg->n_devices || cfg->n_cdi_devices)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "ContainerConfig.devices: a VM's devices are not the host's");
  const Runtime__V1__LinuxContainerSecurityContext *sc =
      cfg && cfg->linux ? cfg->linux->security_context : NULL;
  const char *who = "ContainerConfig.linux.security_context";
  if (rc == 0 && sc &&
      (refuse_privileged(sc->privileged, who, err) < 0 ||
       check_namespaces(sc->namespace_options, who, err) < 0 ||
       check_profile(sc->seccomp, "ContainerConfig.linux.security_context.seccomp", err) < 0 ||
       check_profile(sc->apparmor, "ContainerConfig.linux.security_context.apparmor", err) < 0))
    rc = -1;
  if (rc == 0 && sc && sc->run_as_group && !sc->run_as_user && !*sc->run_as_username)
    rc = vs_err_set(err, VS_INVALID_ARGUMENT, "%s.run_as_group is set without run_as_user or run_as_username", who);
  if (rc == 0 && sc && sc->capabilities && sc->capabilities->n_add_ambient_capabilities)
    rc = vs_err_set(err, VS_UNIMPLEMENTED,
                    "%s.capabilities.add_ambient_capabilities: not supported yet", who);
  Vessel__V1__User user = VESSEL__V1__USER__INIT;
  Vessel__V1__PathRestrictions paths = VESSEL__V1__PATH_RESTRICTIONS__INIT;
  Vessel__V1__Capabilities caps = VESSEL__V1__CAPABILITIES__INIT;
  uint32_t *gids = NULL;
  char uname[300] = "";
  if (rc == 0 && sc) { /* who it runs as, its capabilities, no_new_privs, a read-only root */
    if (*sc->run_as_username) {
      snprintf(uname, sizeof uname, sc->run_as_group ? "%s:%lld" : "%s", sc->run_as_username,
               sc->run_as_group ? (long long)sc->run_as_group->value : 0LL);
      user.name = uname;
    }
    if (sc->run_as_user) user.uid = (uint32_t)sc->run_as_user->value;
    if (sc->run_as_group) user.gid = (uint32_t)sc->run_as_group->value;
    gids = calloc(sc->n_supplemental_groups + 1, sizeof *gids);
    for (size_t i = 0; gids && i < sc->n_supplemental_groups; i++) gids[i] = (uint32_t)sc->supplemental_groups[i];
    user.additional_gids = gids;
    user.n_additional_gids = gids ? sc->n_supplemental_groups : 0;
    if (*sc->run_as_username || sc->run_as_user || sc->run_as_group || sc->n_supplemental_groups)
      ps.user = &user;
    if (sc->capabilities) {
      caps.add = cap_names(sc->capabilities->add_capabilities, sc->capabilities->n_add_capabilities);
      caps.n_add = caps.add ? sc->capabilities->n_add_capabilities : 0;
      caps.drop = cap_names(sc->capabilities->drop_capabilities, sc->capabilities->n_drop_capabilities);
      caps.n_drop = caps.drop ? sc->capabilities->n_drop_capabilities : 0;
      ps.capabilities = &caps;
    }
    ps.no_new_privileges = sc->no_new_privs;
    c.read_only_rootfs = sc->readonly_rootfs;
    /* kubelet's lists, exactly (empty both: vessel's defaults) */
    if (sc->n_masked_paths || sc->n_readonly_paths) {
      paths.masked = sc->masked_paths;
      paths.n_masked = sc->n_masked_paths;
      paths.readonly = sc->readonly_paths;
      paths.n_readonly = sc->n_readonly_paths;
      c.path_restrictions = &paths;
    }
  }
  /* The sandbox's sysctls (its namespaces are the VM's: they apply there). */
  const Runtime__V1__LinuxPodSandboxConfig *sl =
      req->sandbox_config ? req->sandbox_config->linux : NULL;
  if (rc == 0 && sl)
    PBMAP_COPY(&c, sysctls, vessel__v1__containers_create_request__sysctls_entry, sl->sysctls,
            sl->n_sysctls, NULL, NULL);
  if (rc == 0) {
    c.pod_id = req->pod_sandbox_id;
    c.image = cfg->image->image;
    /* the CRI's image ID (ImageStatus.id, PullImage's image_ref), which
     * ContainerStatus.image_id must repeat: for an index, not the
     * platform's manifest the container runs */
    img_info im;
    vs_err ignore;
    if (vd_cri_find_image(d, cfg->image, &im, &ignore) > 0) {
      PBMAP_ADD(&c, labels, vessel__v1__containers_create_request__labels_entry, KEY "image-id",
                im.target.digest);
      img_info_free(&im);
    }
    if (cfg->n_command) { /* command replaces the entrypoint, args the cmd */
      ep.args = cfg->command;
      ep.n_args = cfg->n_command;
      c.entrypoint = &ep;
    }
    ps.args = cfg->args;
    ps.n_args = cfg->n_args;
    ps.cwd = cfg->working_dir;
    ps.terminal = cfg->tty;
    env = calloc(cfg->n_envs + 1, sizeof *env);
    for (size_t i = 0; env && i < cfg->n_envs; i++)
      if (asprintf(&env[ps.n_env], "%s=%.*s", cfg->envs[i]->key, (int)cfg->envs[i]->value.len,
                   (const char *)cfg->envs[i]->value.data) >= 0)
        ps.n_env++;
    ps.env = env;
    c.process = &ps;
    const Runtime__V1__LinuxContainerResources *lr = cfg->linux ? cfg->linux->resources : NULL;
    if (lr && (lr->memory_limit_in_bytes > 0 || (lr->cpu_quota > 0 && lr->cpu_period > 0))) {
      res.memory_bytes = lr->memory_limit_in_bytes > 0 ? lr->memory_limit_in_bytes : 0;
      if (lr->cpu_quota > 0 && lr->cpu_period > 0) res.milli_cpus = lr->cpu_quota * 1000 / lr->cpu_period;
      c.resources = &res;
    }
    PBMAP_COPY(&c, labels, vessel__v1__containers_create_request__labels_entry, cfg->labels,
            cfg->n_labels, NULL, KEY);
    for (size_t i = 0; i < cfg->n_annotations; i++) {
      char k[512];
      snprintf(k, sizeof k, ANNOTATION "%s", cfg->annotations[i]->key);
      PBMAP_ADD(&c, labels, vessel__v1__containers_create_request__labels_entry, k, cfg->annotations[i]->value);
    }
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%u", cfg->metadata->attempt);
    PBMAP_ADD(&c, labels, vessel__v1__containers_create_request__labels_entry, KEY "name", cfg->metadata->name);
    PBMAP_ADD(&c, labels, vessel__v1__containers_create_request__labels_entry, KEY "attempt", attempt);
    if (cfg->stdin) /* for Attach: whether stdin is there and closes with the first client's */
      PBMAP_ADD(&c, labels, vessel__v1__containers_create_request__labels_entry, KEY "stdin",
                cfg->stdin_once ? "once" : "1");
    /* (no sandbox: rt_create says so) */
    Vessel__V1__Pod *pod = rt_pod_describe(d->runtime, req->pod_sandbox_id, &ignore);
    log_file(pod, cfg->log_path, log, sizeof log);
    annotation_of(pod, KEY "staging", staging, sizeof staging);
    if (pod) protobuf_c_message_free_unpacked(&pod->base, NULL);
    if (cfg->n_mounts) { /* host paths, staged into the sandbox's volume */
      mounts = calloc(cfg->n_mounts, sizeof *mounts);
      mp = calloc(cfg->n_mounts, sizeof *mp);
      entries = calloc(cfg->n_mounts, sizeof *entries);
      if (!*staging)
        rc = vs_err_set(err, VS_FAILED_PRECONDITION, "pod sandbox %s has no mount staging (made before mounts were supported)",
                        req->pod_sandbox_id);
      else if (!mounts || !mp || !entries)
        rc = vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; rc == 0 && i < cfg->n_mounts; i++) {
      const Runtime__V1__Mount *m = cfg->mounts[i];
      if (vd_cri_stage(staging, m, entries[i], err) < 0) {
        rc = -1;
        break;
      }
      n_staged++;
      vessel__v1__mount__init(&mounts[i]);
      mounts[i].type = (char *)"bind";
      mounts[i].source = entries[i];
      mounts[i].destination = m->container_path;
      mounts[i].options = (char **)ro_opt;
      mounts[i].n_options = m->readonly;
      mp[i] = &mounts[i];
      char k[64], v[3 * PATH_MAX];
      snprintf(k, sizeof k, KEY "mount.%zu", i);
      snprintf(v, sizeof v, "%s\t%s\t%s\t%s", m->container_path, m->host_path, m->readonly ? "ro" : "rw",
               entries[i]);
      PBMAP_ADD(&c, labels, vessel__v1__containers_create_request__labels_entry, k, v);
    }
    c.mounts = mp;
    c.n_mounts = rc == 0 ? cfg->n_mounts : 0;
    PBMAP_ADD(&c, labels, vessel__v1__containers_create_request__labels_entry, KEY "log-path", log);
  }
  char id[128];
  if (rc == 0) rc = rt_create(d->runtime, &c, id, err);
  if (rc < 0)
    for (size_t i = 0; i < n_staged; i++) vd_cri_unstage(entries[i]);
  free(mounts);
  free(mp);
  free(entries);
  if (rc == 0 && *log && rt_log_cri(d->runtime, id, log, err) < 0) {
    vs_err ignore;
    rt_delete(d->runtime, id, 1, &ignore);
    rc = -1;
  }
  for (size_t i = 0; i < c.n_labels; i++) protobuf_c_message_free_unpacked(&c.labels[i]->base, NULL);
  free(c.labels);
  for (size_t i = 0; i < c.n_sysctls; i++) protobuf_c_message_free_unpacked(&c.sysctls[i]->base, NULL);
  free(c.sysctls);
  free_names(caps.add, caps.n_add);
  free_names(caps.drop, caps.n_drop);
  free(gids);
  for (size_t i = 0; i < ps.n_env; i++) free(env[i]);
  free(env);
  vrpc_msg_free(req_msg);
  if (rc < 0) return -1;
  Runtime__V1__CreateContainerResponse r = RUNTIME__V1__CREATE_CONTAINER_RESPONSE__INIT;
  r.container_id = id;
  return vrpc_send(call, &r.base, err);
}

static int start_container(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__StartContainerRequest, req);
  int rc = rt_start(d->runtime, req->container_id, err);
  vrpc_msg_free(req_msg);
  return rc < 0 ? -1 : vd_send_empty(call, &runtime__v1__start_container_response__descriptor, err);
}

static int stop_container(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__StopContainerRequest, req);
  /* timeout: seconds before SIGKILL; 0 = at once. */
  vs_err e;
  int rc = rt_stop(d->runtime, req->container_id, req->timeout > 0 ? 0 : SIGKILL,
                   req->timeout > 0 ? req->timeout * 1000 : 1, -1, NULL, &e);
  vrpc_msg_free(req_msg);
  return send_unless_failed(call, rc, &e, &runtime__v1__stop_container_response__descriptor, err);
}

static int remove_container(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__RemoveContainerRequest, req);
  vs_err e;
  Vessel__V1__Container *c = rt_describe(d->runtime, req->container_id, &e);
  int rc = rt_delete(d->runtime, req->container_id, 1, &e);
  if (rc == 0 && c) unstage_mounts(c);
  if (c) protobuf_c_message_free_unpacked(&c->base, NULL);
  vrpc_msg_free(req_msg);
  return send_unless_failed(call, rc, &e, &runtime__v1__remove_container_response__descriptor, err);
}

/* Its image's CRI ID (set at create), else the manifest it runs. */
static const char *ct_image_id(const Vessel__V1__Container *c) {
  const char *id = pbmap_get((void *const *)c->labels, c->n_labels, KEY "image-id");
  return id ? id : c->image_digest;
}

static Runtime__V1__ContainerState ct_state(const Vessel__V1__Container *c) {
  switch (c->state) {
    case VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_CREATED: return RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
    case VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_RUNNING:
    case VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_STOPPING: return RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
    case VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_STOPPED: return RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
    default: return RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
  }
}

static Runtime__V1__ContainerMetadata *ct_metadata(const Vessel__V1__Container *c) {
  Runtime__V1__ContainerMetadata *m = malloc(sizeof *m);
  runtime__v1__container_metadata__init(m);
  const char *name = pbmap_get((void *const *)c->labels, c->n_labels, KEY "name"),
             *attempt = pbmap_get((void *const *)c->labels, c->n_labels, KEY "attempt");
  m->name = strdup(name ? name : c->id);
  m->attempt = attempt ? (uint32_t)atoi(attempt) : 0;
  return m;
}

static Runtime__V1__ImageSpec *ct_image(const Vessel__V1__Container *c) {
  Runtime__V1__ImageSpec *s = malloc(sizeof *s);
  runtime__v1__image_spec__init(s);
  s->image = strdup(c->image);
  return s;
}

/* The CRI's status of container c (free with protobuf_c_message_free_unpacked). */
static Runtime__V1__ContainerStatus *ct_status(const Vessel__V1__Container *c) {
  Runtime__V1__ContainerStatus *st = malloc(sizeof *st);
  runtime__v1__container_status__init(st);
  st->id = strdup(c->id);
  st->metadata = ct_metadata(c);
  st->state = ct_state(c);
  st->created_at = ns_of(c->created_at);
  st->started_at = ns_of(c->started_at);
  st->finished_at = ns_of(c->finished_at);
  st->image = ct_image(c);
  st->image_ref = strdup(ct_image_id(c));
  st->image_id = strdup(ct_image_id(c));
  const char *reason = "", *message = "";
  if (c->exit_status) {
    st->exit_code = c->exit_status->signal ? 128 + c->exit_status->signal : c->exit_status->code;
    reason = c->exit_status->oom_killed ? "OOMKilled" : st->exit_code == 0 ? "Completed" : "Error";
    message = c->exit_status->reason;
  }
  st->reason = strdup(reason);
  st->message = strdup(message);
  const char *log = pbmap_get((void *const *)c->labels, c->n_labels, KEY "log-path");
  st->log_path = strdup(log ? log : "");
  PBMAP_COPY(st, labels, runtime__v1__container_status__labels_entry, c->labels, c->n_labels, NULL, KEY);
  PBMAP_COPY(st, annotations, runtime__v1__container_status__annotations_entry, c->labels, c->n_labels, ANNOTATION, NULL);
  st->mounts = calloc(c->n_labels + 1, sizeof *st->mounts);
  for (size_t i = 0; st->mounts && i < c->n_labels; i++) {
    char f[4][PATH_MAX];
    if (!mount_record(c->labels[i], f)) continue;
    Runtime__V1__Mount *m = malloc(sizeof *m);
    runtime__v1__mount__init(m);
    m->container_path = strdup(f[0]);
    m->host_path = strdup(f[1]);
    m->readonly = !strcmp(f[2], "ro");
    st->mounts[st->n_mounts++] = m;
  }
  return st;
}

static int container_status(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ContainerStatusRequest, req);
  Vessel__V1__Container *c = rt_describe(d->runtime, req->container_id, err);
  vrpc_msg_free(req_msg);
  if (!c) return -1;
  Runtime__V1__ContainerStatusResponse r = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
  r.status = ct_status(c);
  int rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.status->base, NULL);
  protobuf_c_message_free_unpacked(&c->base, NULL);
  return rc;
}

static int list_containers(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ListContainersRequest, req);
  const Runtime__V1__ContainerFilter *f = req->filter;
  Vessel__V1__Container **all;
  size_t n;
  int rc = rt_list(d->runtime, &all, &n, err), listed = rc == 0;
  Runtime__V1__ListContainersResponse r = RUNTIME__V1__LIST_CONTAINERS_RESPONSE__INIT;
  if (rc == 0) r.containers = calloc(n ? n : 1, sizeof *r.containers);
  for (size_t i = 0; rc == 0 && r.containers && i < n; i++) {
    const Vessel__V1__Container *c = all[i];
    if (!*c->pod_id) continue; /* vessel's own containers are not the CRI's */
    if (f && !prefixed(c->id, f->id)) continue;
    if (f && !prefixed(c->pod_id, f->pod_sandbox_id)) continue;
    if (f && f->state && f->state->state != ct_state(c)) continue;
    if (f && !pbmap_match((void *const *)f->label_selector, f->n_label_selector, (void *const *)c->labels,
                       c->n_labels))
      continue;
    Runtime__V1__Container *m = malloc(sizeof *m);
    runtime__v1__container__init(m);
    m->id = strdup(c->id);
    m->pod_sandbox_id = strdup(c->pod_id);
    m->metadata = ct_metadata(c);
    m->image = ct_image(c);
    m->image_ref = strdup(ct_image_id(c));
    m->image_id = strdup(ct_image_id(c));
    m->state = ct_state(c);
    m->created_at = ns_of(c->created_at);
    PBMAP_COPY(m, labels, runtime__v1__container__labels_entry, c->labels, c->n_labels, NULL, KEY);
    PBMAP_COPY(m, annotations, runtime__v1__container__annotations_entry, c->labels, c->n_labels, ANNOTATION, NULL);
    r.containers[r.n_containers++] = m;
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; i < r.n_containers; i++) protobuf_c_message_free_unpacked(&r.containers[i]->base, NULL);
  free(r.containers);
  if (listed) rt_list_free(all, n);
  vrpc_msg_free(req_msg);
  return rc;
}

/* Appends data to a growing buffer (capped: ExecSync output is for probes). */
static void grow(ProtobufCBinaryData *b, const char *data, size_t len) {
  if (b->len + len > (16u << 20)) return;
  uint8_t *p = realloc(b->data, b->len + len + 1);
  if (!p) return;
  memcpy(p + b->len, data, len);
  b->data = p;
  b->len += len;
}

static int exec_sync(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ExecSyncRequest, req);
  Vessel__V1__ProcessSpec ps = VESSEL__V1__PROCESS_SPEC__INIT;
  ps.args = req->cmd;
  ps.n_args = req->n_cmd;
  char exec_id[128];
  int pid, rc = req->n_cmd ? 0 : vs_err_set(err, VS_INVALID_ARGUMENT, "ExecSyncRequest.cmd is empty");
  if (rc == 0) rc = rt_exec(d->runtime, req->container_id, "", &ps, exec_id, &pid, err);
  rt_attach *a = rc == 0 ? rt_attach_open(d->runtime, req->container_id, exec_id,
                                           RT_ATTACH_STDOUT | RT_ATTACH_STDERR | RT_ATTACH_LOGS, err)
                         : NULL;
  Runtime__V1__ExecSyncResponse r = RUNTIME__V1__EXEC_SYNC_RESPONSE__INIT;
  if (rc == 0 && !a) rc = -1;
  /* timeout (seconds; 0 = none but the call's deadline): a timer ends the
   * wait and the command. */
  int timer = -1;
  if (a && req->timeout > 0 && (timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)) >= 0) {
    struct itimerspec its = {{0, 0}, {(time_t)req->timeout, 0}};
    timerfd_settime(timer, 0, &its, NULL);
  }
  while (a) {
    int stream;
    char *data;
    size_t len;
    rt_exit ex;
    int got = rt_attach_next(a, timer >= 0 ? timer : vrpc_cancel_fd(call), &stream, &data, &len, &ex, err);
    if (got == 1) {
      grow(stream == 2 ? &r.stderr : &r.stdout, data, len);
      free(data);
      continue;
    }
    if (got == 0) r.exit_code = ex.signal ? 128 + ex.signal : ex.code;
    else if (timer >= 0) {
      rc = vs_err_set(err, VS_DEADLINE_EXCEEDED, "command timed out after %lld s", (long long)req->timeout);
      vs_err ignore;
      rt_signal(d->runtime, req->container_id, exec_id, SIGKILL, 0, &ignore);
    } else rc = -1;
    break;
  }
  if (timer >= 0) close(timer);
  if (a) rt_attach_close(a);
  vrpc_msg_free(req_msg);
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  free(r.stdout.data);
  free(r.stderr.data);
  return rc;
}

static int reopen_container_log(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ReopenContainerLogRequest, req);
  int rc = rt_log_cri_reopen(d->runtime, req->container_id, err);
  vrpc_msg_free(req_msg);
  return rc < 0 ? -1 : vd_send_empty(call, &runtime__v1__reopen_container_log_response__descriptor, err);
}

/* ---- stats ---- */

static Runtime__V1__UInt64Value *u64(uint64_t v) {
  Runtime__V1__UInt64Value *m = malloc(sizeof *m);
  runtime__v1__uint64_value__init(m);
  m->value = v;
  return m;
}

/* A container's CRI stats from its cgroup sample (s may be NULL: not
 * running) and its description. */
static Runtime__V1__ContainerStats *ct_stats(const Vessel__V1__Container *c, const Vessel__V1__Statistics *s) {
  Runtime__V1__ContainerStats *m = malloc(sizeof *m);
  runtime__v1__container_stats__init(m);
  Runtime__V1__ContainerAttributes *a = malloc(sizeof *a);
  runtime__v1__container_attributes__init(a);
  a->id = strdup(c->id);
  a->metadata = ct_metadata(c);
  PBMAP_COPY(a, labels, runtime__v1__container_attributes__labels_entry, c->labels, c->n_labels, NULL, KEY);
  PBMAP_COPY(a, annotations, runtime__v1__container_attributes__annotations_entry, c->labels, c->n_labels, ANNOTATION, NULL);
  m->attributes = a;
  int64_t t = s && s->timestamp ? ns_of(s->timestamp) : now_ns();
  m->cpu = malloc(sizeof *m->cpu);
  runtime__v1__cpu_usage__init(m->cpu);
  m->cpu->timestamp = t;
  m->memory = malloc(sizeof *m->memory);
  runtime__v1__memory_usage__init(m->memory);
  m->memory->timestamp = t;
  if (s && s->cpu) m->cpu->usage_core_nano_seconds = u64(s->cpu->usage_usec * 1000);
  if (s && s->memory) {
    const Vessel__V1__MemoryStatistics *mem = s->memory;
    /* working set: what cannot be dropped (the page cache can) */
    uint64_t ws = mem->usage_bytes > mem->file_bytes ? mem->usage_bytes - mem->file_bytes : 0;
    m->memory->usage_bytes = u64(mem->usage_bytes);
    m->memory->working_set_bytes = u64(ws);
    m->memory->rss_bytes = u64(mem->anon_bytes);
    if (mem->limit_bytes > ws) m->memory->available_bytes = u64(mem->limit_bytes - ws);
  }
  return m;
}

static int container_stats(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ContainerStatsRequest, req);
  Vessel__V1__Container *c = rt_describe(d->runtime, req->container_id, err);
  ProtobufCMessage *s = NULL;
  vs_err ignore; /* a container not running has no sample, only attributes */
  if (c && c->state == VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_RUNNING)
    rt_stats(d->runtime, c->id, &s, &ignore);
  vrpc_msg_free(req_msg);
  if (!c) return -1;
  Runtime__V1__ContainerStatsResponse r = RUNTIME__V1__CONTAINER_STATS_RESPONSE__INIT;
  r.stats = ct_stats(c, (Vessel__V1__Statistics *)s);
  int rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.stats->base, NULL);
  vrpc_msg_free(s);
  protobuf_c_message_free_unpacked(&c->base, NULL);
  return rc;
}

static int list_container_stats(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ListContainerStatsRequest, req);
  const Runtime__V1__ContainerStatsFilter *f = req->filter;
  Vessel__V1__Container **all;
  size_t n;
  int rc = rt_list(d->runtime, &all, &n, err), listed = rc == 0;
  Runtime__V1__ListContainerStatsResponse r = RUNTIME__V1__LIST_CONTAINER_STATS_RESPONSE__INIT;
  if (rc == 0) r.stats = calloc(n ? n : 1, sizeof *r.stats);
  for (size_t i = 0; rc == 0 && r.stats && i < n; i++) {
    const Vessel__V1__Container *c = all[i];
    if (!*c->pod_id || c->state != VESSEL__V1__CONTAINER_STATE__CONTAINER_STATE_RUNNING) continue;
    if (f && !prefixed(c->id, f->id)) continue;
    if (f && !prefixed(c->pod_id, f->pod_sandbox_id)) continue;
    if (f && !pbmap_match((void *const *)f->label_selector, f->n_label_selector, (void *const *)c->labels,
                       c->n_labels))
      continue;
    ProtobufCMessage *s = NULL;
    vs_err ignore;
    rt_stats(d->runtime, c->id, &s, &ignore);
    r.stats[r.n_stats++] = ct_stats(c, (Vessel__V1__Statistics *)s);
    vrpc_msg_free(s);
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; i < r.n_stats; i++) protobuf_c_message_free_unpacked(&r.stats[i]->base, NULL);
  free(r.stats);
  if (listed) rt_list_free(all, n);
  vrpc_msg_free(req_msg);
  return rc;
}

/* The sandbox's stats: its VM as the host sees it, and its containers. */
static Runtime__V1__PodSandboxStats *pod_stats(vd_daemon *d, const Vessel__V1__Pod *p, vs_err *err) {
  Vessel__V1__PodsStatsResponse *ps = NULL;
  if (p->state == VESSEL__V1__POD_STATE__POD_STATE_RUNNING && rt_pod_stats(d->runtime, p->id, &ps, err) < 0)
    return NULL;
  Runtime__V1__PodSandboxStats *m = malloc(sizeof *m);
  runtime__v1__pod_sandbox_stats__init(m);
  Runtime__V1__PodSandboxAttributes *a = malloc(sizeof *a);
  runtime__v1__pod_sandbox_attributes__init(a);
  a->id = strdup(p->id);
  a->metadata = pod_metadata(p);
  PBMAP_COPY(a, labels, runtime__v1__pod_sandbox_attributes__labels_entry, p->labels, p->n_labels, NULL, KEY);
  PBMAP_COPY(a, annotations, runtime__v1__pod_sandbox_attributes__annotations_entry, p->annotations,
          p->n_annotations, NULL, KEY);
  m->attributes = a;
  Runtime__V1__LinuxPodSandboxStats *lx = malloc(sizeof *lx);
  runtime__v1__linux_pod_sandbox_stats__init(lx);
  m->linux = lx;
  int64_t t = now_ns();
  lx->cpu = malloc(sizeof *lx->cpu);
  runtime__v1__cpu_usage__init(lx->cpu);
  lx->cpu->timestamp = t;
  lx->memory = malloc(sizeof *lx->memory);
  runtime__v1__memory_usage__init(lx->memory);
  lx->memory->timestamp = t;
  if (ps && ps->vm) { /* the VM: QEMU on the host */
    lx->cpu->usage_core_nano_seconds = u64(ps->vm->host_cpu_usec * 1000);
    lx->memory->usage_bytes = u64(ps->vm->host_rss_bytes);
    lx->memory->working_set_bytes = u64(ps->vm->host_rss_bytes);
    if ((uint64_t)ps->vm->memory_bytes > ps->vm->host_rss_bytes)
      lx->memory->available_bytes = u64((uint64_t)ps->vm->memory_bytes - ps->vm->host_rss_bytes);
  }
  size_t nc = ps ? ps->n_containers : 0;
  lx->containers = calloc(nc + 1, sizeof *lx->containers);
  for (size_t i = 0; lx->containers && i < nc; i++) {
    vs_err ignore;
    Vessel__V1__Container *c = rt_describe(d->runtime, ps->containers[i]->container_id, &ignore);
    if (!c) continue;
    lx->containers[lx->n_containers++] = ct_stats(c, ps->containers[i]);
    protobuf_c_message_free_unpacked(&c->base, NULL);
  }
  if (ps) protobuf_c_message_free_unpacked(&ps->base, NULL);
  return m;
}

static int pod_sandbox_stats(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__PodSandboxStatsRequest, req);
  Vessel__V1__Pod *p = rt_pod_describe(d->runtime, req->pod_sandbox_id, err);
  vrpc_msg_free(req_msg);
  Runtime__V1__PodSandboxStatsResponse r = RUNTIME__V1__POD_SANDBOX_STATS_RESPONSE__INIT;
  r.stats = p ? pod_stats(d, p, err) : NULL;
  if (p) protobuf_c_message_free_unpacked(&p->base, NULL);
  if (!r.stats) return -1;
  int rc = vrpc_send(call, &r.base, err);
  protobuf_c_message_free_unpacked(&r.stats->base, NULL);
  return rc;
}

static int list_pod_sandbox_stats(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__ListPodSandboxStatsRequest, req);
  const Runtime__V1__PodSandboxStatsFilter *f = req->filter;
  Vessel__V1__Pod **all;
  size_t n;
  int rc = rt_pod_list(d->runtime, &all, &n, err), listed = rc == 0;
  Runtime__V1__ListPodSandboxStatsResponse r = RUNTIME__V1__LIST_POD_SANDBOX_STATS_RESPONSE__INIT;
  if (rc == 0) r.stats = calloc(n ? n : 1, sizeof *r.stats);
  for (size_t i = 0; rc == 0 && r.stats && i < n; i++) {
    const Vessel__V1__Pod *p = all[i];
    if (f && !prefixed(p->id, f->id)) continue;
    if (f && !pbmap_match((void *const *)f->label_selector, f->n_label_selector, (void *const *)p->labels,
                       p->n_labels))
      continue;
    vs_err ignore; /* (one going away meanwhile is left out) */
    Runtime__V1__PodSandboxStats *s = pod_stats(d, p, &ignore);
    if (s) r.stats[r.n_stats++] = s;
  }
  if (rc == 0) rc = vrpc_send(call, &r.base, err);
  for (size_t i = 0; i < r.n_stats; i++) protobuf_c_message_free_unpacked(&r.stats[i]->base, NULL);
  free(r.stats);
  if (listed) rt_pod_list_free(all, n);
  vrpc_msg_free(req_msg);
  return rc;
}

/* ---- events (kubelet's evented PLEG) ---- */

/* The CRI event of a vessel event about a CRI container or sandbox; -1 if
 * it has none. */
static int event_type(const evb_event *e) {
  int pod = !e->container_id[0];
  switch (e->type) {
    case EVB_CONTAINER_CREATED: return RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT;
    case EVB_CONTAINER_STARTED: return RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT;
    case EVB_CONTAINER_EXITED: return RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT;
    case EVB_CONTAINER_DELETED: return RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT;
    case EVB_POD_CREATED: return pod ? RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT : -1;
    case EVB_POD_STOPPED: return pod ? RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT : -1;
    case EVB_POD_DELETED: return pod ? RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT : -1;
    default: return -1;
  }
}

static int get_container_events(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  if (vd_recv_unused(call, err) < 0) return -1;
  evb_sub *sub = evb_subscribe(d->events, 0, 0, err);
  int rc = sub ? 0 : -1;
  while (rc == 0) {
    evb_event e;
    int got = evb_next(sub, &e, vrpc_cancel_fd(call), -1, err);
    if (got <= 0) {
      rc = got < 0 ? -1 : vs_err_set(err, VS_CANCELLED, "the event stream ended");
      break;
    }
    int type = e.pod_id[0] ? event_type(&e) : -1;
    if (type < 0) continue;
    Runtime__V1__ContainerEventResponse r = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
    r.container_id = e.container_id[0] ? e.container_id : e.pod_id;
    r.container_event_type = (Runtime__V1__ContainerEventType)type;
    r.created_at = e.time_ns;
    /* The sandbox as it is now, with its containers (what kubelet relists). */
    vs_err ignore;
    Vessel__V1__Pod *p = rt_pod_describe(d->runtime, e.pod_id, &ignore);
    if (p) {
      r.pod_sandbox_status = pod_status(p);
      r.containers_statuses = calloc(p->n_container_ids + 1, sizeof *r.containers_statuses);
      for (size_t i = 0; r.containers_statuses && i < p->n_container_ids; i++) {
        Vessel__V1__Container *c = rt_describe(d->runtime, p->container_ids[i], &ignore);
        if (!c) continue;
        r.containers_statuses[r.n_containers_statuses++] = ct_status(c);
        protobuf_c_message_free_unpacked(&c->base, NULL);
      }
      protobuf_c_message_free_unpacked(&p->base, NULL);
    }
    rc = vrpc_send(call, &r.base, err);
    if (r.pod_sandbox_status) protobuf_c_message_free_unpacked(&r.pod_sandbox_status->base, NULL);
    for (size_t i = 0; i < r.n_containers_statuses; i++)
      protobuf_c_message_free_unpacked(&r.containers_statuses[i]->base, NULL);
    free(r.containers_statuses);
  }
  evb_unsubscribe(sub);
  return rc;
}

static int update_container_resources(vrpc_call *call, void *ctx, vs_err *err) {
  vd_daemon *d = ctx;
  RECV(Runtime__V1__UpdateContainerResourcesRequest, req);
  const Runtime__V1__LinuxContainerResources *lr = req->linux;
  Vessel__V1__Resources res = VESSEL__V1__RESOURCES__INIT;
  if (lr && lr->memory_limit_in_bytes > 0) res.memory_bytes = lr->memory_limit_in_bytes;
  if (lr && lr->cpu_quota > 0 && lr->cpu_period > 0) {
    res.cpu_quota_us = lr->cpu_quota;
    res.cpu_period_us = lr->cpu_period;
  }
  int rc = rt_update(d->runtime, req->container_id, &res, err);
  vrpc_msg_free(req_msg);
  return rc < 0 ? -1 : vd_send_empty(call, &runtime__v1__update_container_resources_response__descriptor, err);
}

void vd_cri_pod_handlers(runtime_v1_RuntimeService_handlers *h) {
  h->UpdateContainerResources = update_container_resources;
  h->GetContainerEvents = get_container_events;
  h->ContainerStats = container_stats;
  h->ListContainerStats = list_container_stats;
  h->PodSandboxStats = pod_sandbox_stats;
  h->ListPodSandboxStats = list_pod_sandbox_stats;
  h->ReopenContainerLog = reopen_container_log;
  h->RunPodSandbox = run_pod_sandbox;
  h->StopPodSandbox = stop_pod_sandbox;
  h->RemovePodSandbox = remove_pod_sandbox;
  h->PodSandboxStatus = pod_sandbox_status;
  h->ListPodSandbox = list_pod_sandbox;
  h->CreateContainer = create_container;
  h->StartContainer = start_container;
  h->StopContainer = stop_container;
  h->RemoveContainer = remove_container;
  h->ListContainers = list_containers;
  h->ContainerStatus = container_status;
  h->ExecSync = exec_sync;
}
