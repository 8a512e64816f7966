/* vesselctl pod create|ls|inspect|stop|rm|stats: vessel.v1.Pods. A
 * container joins a pod with `run --pod POD` / `create --pod POD`. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/cli/vesselctl.h"
#include "vessel/v1/pods.pb-c.h"
#include "vessel_proto_rpc.h"

static const char pod_usage[] =
    "usage: vesselctl pod create [--name ID] [--hostname H] [--network NET]... [-p [IP:]HOST:CTR]...\n"
    "                            [--cpus N] [--memory BYTES] [--slots N] [-l K=V]...\n"
    "       vesselctl pod ls | inspect POD | stop [-t SECONDS] POD | rm [-f] POD... | stats POD\n";

/* A JSON document of m (freed), newline-ended. */
static int print_json(ProtobufCMessage *m, const ProtobufCMessage *part) {
  vc_json(stdout, part ? part : m, 0);
  putchar('\n');
  vrpc_msg_free(m);
  return 0;
}

static int create(vc_ctx *c, int argc, char **argv) {
  static Vessel__V1__NetworkAttachment net[8], *nets[8];
  static Vessel__V1__PortMapping port[16], *ports[16];
  static Vessel__V1__PodsCreateRequest__LabelsEntry label[16], *labels[16];
  static Vessel__V1__Resources res;
  Vessel__V1__PodsCreateRequest req = VESSEL__V1__PODS_CREATE_REQUEST__INIT;
  static const struct option o[] = {
      {"name", required_argument, NULL, 'N'},    {"hostname", required_argument, NULL, 'H'},
      {"network", required_argument, NULL, 'n'}, {"publish", required_argument, NULL, 'p'},
      {"cpus", required_argument, NULL, 'C'},    {"memory", required_argument, NULL, 'M'},
      {"slots", required_argument, NULL, 'S'},   {"label", required_argument, NULL, 'l'},
      {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+p:l:", o, NULL)) != -1) {
    switch (ch) {
      case 'N': req.id = optarg; break;
      case 'H': req.hostname = optarg; break;
      case 'n':
        if (req.n_networks == 8) return vc_usage_error("pod create", "too many --network flags");
        vessel__v1__network_attachment__init(&net[req.n_networks]);
        net[req.n_networks].network = optarg;
        nets[req.n_networks] = &net[req.n_networks];
        req.networks = nets;
        req.n_networks++;
        break;
      case 'p': {
        if (req.n_ports == 16) return vc_usage_error("pod create", "too many -p flags");
        Vessel__V1__PortMapping *pm = &port[req.n_ports];
        vessel__v1__port_mapping__init(pm);
        char *s = optarg, *last = strrchr(s, ':'), *first = strchr(s, ':');
        if (!last) return vc_usage_error("pod create", "publish %s: want [IP:]HOST:CTR", s);
        pm->container_port = (uint32_t)atoi(last + 1);
        *last = '\0';
        if (first != last) {
          *first = '\0';
          pm->host_ip = s;
          pm->host_port = (uint32_t)atoi(first + 1);
        } else {
          pm->host_port = (uint32_t)atoi(s);
        }
        ports[req.n_ports++] = pm;
        req.ports = ports;
        break;
      }
      case 'C':
      case 'M':
        if (!req.resources) vessel__v1__resources__init(&res), req.resources = &res;
        if (ch == 'C') res.milli_cpus = (int64_t)(strtod(optarg, NULL) * 1000);
        else res.memory_bytes = strtoll(optarg, NULL, 10);
        break;
      case 'S': req.slots = (uint32_t)atoi(optarg); break;
      case 'l': {
        char *eq = strchr(optarg, '=');
        if (!eq || req.n_labels == 16) return vc_usage_error("pod create", "label %s: want K=V", optarg);
        *eq = '\0';
        vessel__v1__pods_create_request__labels_entry__init(&label[req.n_labels]);
        label[req.n_labels].key = optarg;
        label[req.n_labels].value = eq + 1;
        labels[req.n_labels] = &label[req.n_labels];
        req.labels = labels;
        req.n_labels++;
        break;
      }
      default: return vc_usage_error("pod create", "%s", pod_usage);
    }
  }
  if (optind != argc) return vc_usage_error("pod create", "unexpected argument %s", argv[optind]);
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Pods_Create, &req.base, &m) < 0) return 1;
  Vessel__V1__Pod *p = ((Vessel__V1__PodsCreateResponse *)m)->pod;
  if (c->json) return print_json(m, &p->base);
  printf("%s\n", p->id);
  vrpc_msg_free(m);
  return 0;
}

static int list(vc_ctx *c) {
  Vessel__V1__PodsListRequest req = VESSEL__V1__PODS_LIST_REQUEST__INIT;
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Pods_List, &req.base, &m) < 0) return 1;
  if (c->json) return print_json(m, NULL);
  Vessel__V1__PodsListResponse *r = (Vessel__V1__PodsListResponse *)m;
  printf("%-16s %-8s %-16s %-10s %-6s %s\n", "POD ID", "STATE", "ADDRESS", "CONTAINERS", "SLOTS",
         "HOSTNAME");
  for (size_t i = 0; i < r->n_pods; i++) {
    const Vessel__V1__Pod *p = r->pods[i];
    char slots[24];
    snprintf(slots, sizeof slots, "%u/%u", p->slots - p->free_slots, p->slots);
    printf("%-16.12s %-8s %-16s %-10zu %-6s %s\n", p->id,
           p->state == VESSEL__V1__POD_STATE__POD_STATE_RUNNING ? "running" : "stopped",
           p->n_networks ? p->networks[0]->ip_address : "-", p->n_container_ids, slots,
           p->hostname);
  }
  vrpc_msg_free(m);
  return 0;
}

int vc_pod(vc_ctx *c, int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : "";
  ProtobufCMessage *m;
  if (!strcmp(sub, "create")) return create(c, argc - 1, argv + 1);
  if (!strcmp(sub, "ls")) {
    if (vc_check_flags("pod ls", " ", argc - 1, argv + 1) < 0) return 2;
    return list(c);
  }
  if (!strcmp(sub, "inspect") || !strcmp(sub, "stats")) {
    if (argc != 3) return vc_usage_error(sub, "give one pod");
    if (!strcmp(sub, "stats")) {
      Vessel__V1__PodsStatsRequest req = VESSEL__V1__PODS_STATS_REQUEST__INIT;
      req.pod_id = argv[2];
      if (vc_call(c, &vessel_v1_Pods_Stats, &req.base, &m) < 0) return 1;
      return print_json(m, NULL);
    }
    Vessel__V1__PodsInspectRequest req = VESSEL__V1__PODS_INSPECT_REQUEST__INIT;
    req.pod_id = argv[2];
    if (vc_call(c, &vessel_v1_Pods_Inspect, &req.base, &m) < 0) return 1;
    return print_json(m, &((Vessel__V1__PodsInspectResponse *)m)->pod->base);
  }
  if (!strcmp(sub, "stop")) {
    Vessel__V1__PodsStopRequest req = VESSEL__V1__PODS_STOP_REQUEST__INIT;
    int ch;
    optind = 1;
    while ((ch = getopt(argc - 1, argv + 1, "+t:s:")) != -1) {
      if (ch == 't') req.timeout_ms = (int64_t)(strtod(optarg, NULL) * 1000);
      else if (ch == 's') req.signal = atoi(optarg);
      else return vc_usage_error("pod stop", "usage: pod stop [-s SIG] [-t SECONDS] POD");
    }
    if (optind != argc - 2) return vc_usage_error("pod stop", "give one pod");
    req.pod_id = argv[optind + 1];
    if (vc_call(c, &vessel_v1_Pods_Stop, &req.base, &m) < 0) return 1;
    vrpc_msg_free(m);
    printf("%s\n", req.pod_id);
    return 0;
  }
  if (!strcmp(sub, "rm")) {
    Vessel__V1__PodsDeleteRequest req = VESSEL__V1__PODS_DELETE_REQUEST__INIT;
    int ch, rc = 0;
    optind = 1;
    while ((ch = getopt(argc - 1, argv + 1, "+f")) != -1) {
      if (ch == 'f') req.force = 1;
      else return vc_usage_error("pod rm", "usage: pod rm [-f] POD...");
    }
    if (optind >= argc - 1) return vc_usage_error("pod rm", "give a pod");
    for (int i = optind + 1; i < argc; i++) {
      req.pod_id = argv[i];
      if (vc_call(c, &vessel_v1_Pods_Delete, &req.base, &m) < 0) {
        rc = 1;
        continue;
      }
      vrpc_msg_free(m);
      printf("%s\n", argv[i]);
    }
    return rc;
  }
  return vc_usage_error("pod", "%s", pod_usage);
}
