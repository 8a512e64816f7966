/* Containers as the API shows them (List, Inspect, Start's answer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server/runtime/runtime_internal.h"

Google__Protobuf__Timestamp *rt_timestamp(int64_t ns) {
  if (ns <= 0) return NULL;
  Google__Protobuf__Timestamp *t = malloc(sizeof *t);
  google__protobuf__timestamp__init(t);
  t->seconds = ns / 1000000000;
  t->nanos = (int32_t)(ns % 1000000000);
  return t;
}

Vessel__V1__ExitStatus *rt_exit_msg(const rt_exit *e) {
  Vessel__V1__ExitStatus *x = malloc(sizeof *x);
  vessel__v1__exit_status__init(x);
  x->code = e->code;
  x->signal = e->signal;
  x->oom_killed = e->oom_killed;
  x->exited_at = rt_timestamp(e->exited_ns);
  x->reason = strdup(e->reason);
  return x;
}

static Vessel__V1__ContainerState api_state(rt_state s) {
  return (Vessel__V1__ContainerState)s; /* same numbering */
}

Vessel__V1__VmInfo *rt_vm_info(rt_container *c) {
  if (!c->vm) return NULL;
  Vessel__V1__VmInfo *v = malloc(sizeof *v);
  vessel__v1__vm_info__init(v);
  v->qemu_pid = c->qemu_pid;
  v->kernel = strdup("optimized");
  v->kernel_path = strdup(c->rt->cfg.kernel ? c->rt->cfg.kernel : "");
  v->boot_mode = c->from_template ? VESSEL__V1__BOOT_MODE__BOOT_MODE_TEMPLATE
                                  : VESSEL__V1__BOOT_MODE__BOOT_MODE_COLD;
  v->vcpus = (uint32_t)c->vcpus;
  v->memory_bytes = (int64_t)c->memory_mib << 20;
  v->accelerator = strdup(c->rt->cfg.accel == VM_ACCEL_KVM ? "kvm" : "tcg");
  v->boot_duration_ms = c->boot_ms;
  return v;
}

/* With c->mu held. */
Vessel__V1__Container *rt_describe_locked(rt_container *c) {
  Vessel__V1__Container *m = malloc(sizeof *m);
  vessel__v1__container__init(m);
  m->id = strdup(c->id);
  m->image = strdup(c->spec->image);
  m->image_digest = strdup(c->image_digest);
  m->state = api_state(c->state);
  m->pid = c->state == RT_RUNNING ? c->init.pid : 0;
  if (c->has_exit && c->state == RT_STOPPED) m->exit_status = rt_exit_msg(&c->last_exit);
  m->created_at = rt_timestamp(c->created_ns);
  m->started_at = rt_timestamp(c->started_ns);
  m->finished_at = c->state == RT_STOPPED ? rt_timestamp(c->finished_ns) : NULL;
  if (c->spec->n_labels) {
    m->labels = calloc(c->spec->n_labels, sizeof *m->labels);
    for (size_t i = 0; m->labels && i < c->spec->n_labels; i++) {
      Vessel__V1__Container__LabelsEntry *e = malloc(sizeof *e);
      vessel__v1__container__labels_entry__init(e);
      e->key = strdup(c->spec->labels[i]->key);
      e->value = strdup(c->spec->labels[i]->value);
      m->labels[m->n_labels++] = e;
    }
  }
  if (c->spec->process) m->process = (Vessel__V1__ProcessSpec *)rt_copy_msg(&c->spec->process->base);
  if (c->spec->resources) m->resources = (Vessel__V1__Resources *)rt_copy_msg(&c->spec->resources->base);
  if (c->n_nics) m->networks = calloc(c->n_nics, sizeof *m->networks);
  for (size_t i = 0; m->networks && i < c->n_nics; i++) {
    const rt_nic *n = &c->nics[i];
    Vessel__V1__NetworkAttachment *a = malloc(sizeof *a);
    vessel__v1__network_attachment__init(a);
    a->network = strdup(n->network);
    a->ip_address = strdup(n->ip);
    a->mac_address = strdup(n->mac);
    char eth[16];
    rt_nic_ifname(i, eth);
    a->interface = strdup(eth);
    a->gateway = strdup(n->gateway);
    a->prefix_length = n->prefix;
    const Vessel__V1__NetworkAttachment *asked = i < c->spec->n_networks ? c->spec->networks[i] : NULL;
    if (asked && asked->n_aliases) {
      a->aliases = calloc(asked->n_aliases, sizeof *a->aliases);
      for (size_t k = 0; a->aliases && k < asked->n_aliases; k++)
        a->aliases[a->n_aliases++] = strdup(asked->aliases[k]);
    }
    m->networks[m->n_networks++] = a;
  }
  if (c->n_ports) m->ports = calloc(c->n_ports, sizeof *m->ports);
  for (size_t i = 0; m->ports && i < c->n_ports; i++) {
    Vessel__V1__PortMapping *pm = malloc(sizeof *pm);
    vessel__v1__port_mapping__init(pm);
    pm->host_ip = strdup(c->ports[i].host_ip);
    pm->host_port = (uint32_t)c->ports[i].host_port;
    pm->container_port = (uint32_t)c->ports[i].container_port;
    pm->protocol = VESSEL__V1__PORT_PROTOCOL__PORT_PROTOCOL_TCP;
    m->ports[m->n_ports++] = pm;
  }
  m->hostname = strdup(c->spec->hostname);
  m->auto_remove = c->spec->auto_remove;
  if (c->spec->restart_policy)
    m->restart_policy = (Vessel__V1__RestartPolicy *)rt_copy_msg(&c->spec->restart_policy->base);
  m->restart_count = c->restart_count;
  m->read_only_rootfs = c->spec->read_only_rootfs;
  m->log = malloc(sizeof *m->log);
  if (m->log) {
    vessel__v1__log_config__init(m->log);
    rt_log_limits(c, &m->log->max_size_bytes, &m->log->max_files);
  }
  if (c->spec->n_mounts) m->mounts = calloc(c->spec->n_mounts, sizeof *m->mounts);
  for (size_t i = 0; m->mounts && i < c->spec->n_mounts; i++)
    m->mounts[m->n_mounts++] = (Vessel__V1__Mount *)rt_copy_msg(&c->spec->mounts[i]->base);
  m->pod_id = strdup(c->spec->pod_id);
  rt_container *h = rt_vm_host(c); /* (a container's mu before its pod's) */
  if (h != c) pthread_mutex_lock(&h->mu);
  m->vm = rt_vm_info(h);
  if (h != c) pthread_mutex_unlock(&h->mu);
  size_t ne = 0;
  for (rt_proc *p = c->execs; p; p = p->next) ne += !p->exited;
  if (ne) m->exec_ids = calloc(ne, sizeof *m->exec_ids);
  for (rt_proc *p = c->execs; m->exec_ids && p; p = p->next)
    if (!p->exited) m->exec_ids[m->n_exec_ids++] = strdup(p->id);
  char rootfs[4400];
  struct stat st;
  if (c->pod) rt_pod_slot_path(c->pod, c->slot, rootfs);
  else snprintf(rootfs, sizeof rootfs, "%s/rootfs.ext4", c->dir);
  if (stat(rootfs, &st) == 0) m->rootfs_size_bytes = (int64_t)st.st_blocks * 512;
  return m;
}

Vessel__V1__Container *rt_describe(rt_runtime *rt, const char *id, vs_err *err) {
  rt_container *c = rt_get(rt, id, err);
  if (!c) return NULL;
  pthread_mutex_lock(&c->mu);
  Vessel__V1__Container *m = rt_describe_locked(c);
  pthread_mutex_unlock(&c->mu);
  rt_put(c);
  return m;
}

int rt_list(rt_runtime *rt, Vessel__V1__Container ***out, size_t *n, vs_err *err) {
  pthread_mutex_lock(&rt->mu);
  *n = 0;
  *out = calloc(rt->n ? rt->n : 1, sizeof **out);
  for (size_t i = 0; *out && i < rt->n; i++) {
    rt_container *c = rt->list[rt->n - 1 - i]; /* newest first */
    if (c->is_pod) continue;
    pthread_mutex_lock(&c->mu);
    (*out)[(*n)++] = rt_describe_locked(c);
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_unlock(&rt->mu);
  if (!*out) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  return 0;
}

void rt_list_free(Vessel__V1__Container **list, size_t n) {
  for (size_t i = 0; i < n; i++) protobuf_c_message_free_unpacked(&list[i]->base, NULL);
  free(list);
}
