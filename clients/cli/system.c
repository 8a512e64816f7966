/* vesselctl network …, system info|df, version. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "clients/cli/vesselctl.h"
#include "vessel/v1/networks.pb-c.h"
#include "vessel/v1/system.pb-c.h"
#include "vessel_proto_rpc.h"

static int print_or_json(vc_ctx *c, ProtobufCMessage *m) {
  vc_json(stdout, m, 0);
  putchar('\n');
  vrpc_msg_free(m);
  (void)c;
  return 0;
}

int vc_network(vc_ctx *c, int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : "";
  ProtobufCMessage *m;
  if (!strcmp(sub, "create")) {
    Vessel__V1__NetworksCreateRequest req;
    vessel__v1__networks_create_request__init(&req);
    static const struct option o[] = {{"subnet", required_argument, NULL, 's'},
                                      {"gateway", required_argument, NULL, 'g'},
                                      {"internal", no_argument, NULL, 'i'}, {NULL, 0, NULL, 0}};
    int ch;
    optind = 1;
    argc--, argv++;
    while ((ch = getopt_long(argc, argv, "+", o, NULL)) != -1) {
      if (ch == 's') req.subnet = optarg;
      else if (ch == 'g') req.gateway = optarg;
      else if (ch == 'i') req.internal = 1;
      else return vc_usage_error("network create", "usage: network create [--subnet CIDR] [--gateway IP] [--internal] NAME");
    }
    if (optind != argc - 1) return vc_usage_error("network create", "give a name");
    req.name = argv[optind];
    if (vc_call(c, &vessel_v1_Networks_Create, &req.base, &m) < 0) return 1;
    Vessel__V1__Network *n = ((Vessel__V1__NetworksCreateResponse *)m)->network;
    printf("%s %s gateway %s\n", n->name, n->subnet, n->gateway);
    vrpc_msg_free(m);
    return 0;
  }
  if (!strcmp(sub, "ls")) {
    Vessel__V1__NetworksListRequest req;
    vessel__v1__networks_list_request__init(&req);
    if (vc_call(c, &vessel_v1_Networks_List, &req.base, &m) < 0) return 1;
    if (c->json) return print_or_json(c, m);
    Vessel__V1__NetworksListResponse *r = (Vessel__V1__NetworksListResponse *)m;
    printf("%-20s %-18s %-16s %-16s %s\n", "NAME", "SUBNET", "GATEWAY", "BRIDGE", "CONTAINERS");
    for (size_t i = 0; i < r->n_networks; i++)
      printf("%-20s %-18s %-16s %-16s %zu\n", r->networks[i]->name, r->networks[i]->subnet,
             r->networks[i]->gateway, r->networks[i]->bridge, r->networks[i]->n_containers);
    vrpc_msg_free(m);
    return 0;
  }
  if (!strcmp(sub, "rm")) {
    if (argc < 3) return vc_usage_error("network rm", "give a network name");
    Vessel__V1__NetworksDeleteRequest req;
    vessel__v1__networks_delete_request__init(&req);
    req.name = argv[2];
    if (vc_call(c, &vessel_v1_Networks_Delete, &req.base, &m) < 0) return 1;
    vrpc_msg_free(m);
    printf("%s\n", argv[2]);
    return 0;
  }
  return vc_usage_error("network", "usage: network create|ls|rm ...");
}

int vc_system(vc_ctx *c, int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : "";
  ProtobufCMessage *m;
  if (!strcmp(sub, "info")) {
    Vessel__V1__SystemInfoRequest req;
    vessel__v1__system_info_request__init(&req);
    if (vc_call(c, &vessel_v1_System_Info, &req.base, &m) < 0) return 1;
    if (c->json) return print_or_json(c, m);
    Vessel__V1__SystemInfoResponse *r = (Vessel__V1__SystemInfoResponse *)m;
    char mem[32];
    vc_human_size((int64_t)r->memory_bytes, mem, sizeof mem);
    printf("Root:          %s\nContainers:    %u (running %u, created %u, stopped %u)\n"
           "Images:        %u\nAccelerator:   %s (%s)\nHost:          %s, kernel %s, %s, %u CPUs, %s\n",
           r->root_dir, r->containers, r->containers_running, r->containers_created,
           r->containers_stopped, r->images, r->accelerator, r->accelerator_reason, r->host_os, r->host_kernel,
           r->host_architecture, r->cpus, mem);
    for (size_t i = 0; i < r->n_listen_addresses; i++) printf("Listening on:  %s\n", r->listen_addresses[i]);
    vrpc_msg_free(m);
    return 0;
  }
  if (!strcmp(sub, "df")) {
    Vessel__V1__SystemDiskUsageRequest req;
    vessel__v1__system_disk_usage_request__init(&req);
    if (vc_call(c, &vessel_v1_System_DiskUsage, &req.base, &m) < 0) return 1;
    if (c->json) return print_or_json(c, m);
    Vessel__V1__SystemDiskUsageResponse *r = (Vessel__V1__SystemDiskUsageResponse *)m;
    char a[32], b[32], d[32];
    vc_human_size(r->content_store_bytes, a, sizeof a);
    vc_human_size(r->rootfs_cache_bytes, b, sizeof b);
    vc_human_size(r->containers_bytes, d, sizeof d);
    printf("Content store: %s\nRootfs cache:  %s\nContainers:    %s\n", a, b, d);
    vrpc_msg_free(m);
    return 0;
  }
  return vc_usage_error("system", "usage: system info|df");
}

int vc_version(vc_ctx *c, int argc, char **argv) {
  (void)argc, (void)argv;
  Vessel__V1__SystemVersionRequest req;
  vessel__v1__system_version_request__init(&req);
  ProtobufCMessage *m;
  if (!c->json) printf("vesselctl %s\n", VC_VERSION);
  if (vc_call(c, &vessel_v1_System_Version, &req.base, &m) < 0) return 1;
  if (c->json) {
    printf("{\"clientVersion\":\"%s\",\"server\":", VC_VERSION);
    vc_json(stdout, m, 0);
    printf("}\n");
    vrpc_msg_free(m);
    return 0;
  }
  Vessel__V1__SystemVersionResponse *r = (Vessel__V1__SystemVersionResponse *)m;
  printf("vesseld   %s (API %s)\n", r->version, r->api_version);
  vrpc_msg_free(m);
  return 0;
}
