/* vesselctl image …, login, logout, rootfs create. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/cli/vesselctl.h"
#include "vessel/v1/images.pb-c.h"
#include "vessel_proto_rpc.h"

static const char image_usage[] =
    "usage: vesselctl image COMMAND\n"
    "  pull [--platform OS/ARCH[/VARIANT]] [--insecure] [-u USER -p PASS] REF\n"
    "  push [--insecure] [-u USER -p PASS] REF [DEST]\n"
    "  ls                         list local images\n"
    "  rm REF...                  remove references (and blobs no image needs)\n"
    "  tag SOURCE TARGET\n"
    "  inspect REF                details as JSON\n"
    "  save -o FILE REF...        OCI image-layout archive\n"
    "  load -i FILE [--name REF]  load an OCI archive or a Docker save archive\n"
    "  prune [-a]                 delete unreferenced blobs (-a: unused images too)\n";

static void platform_of(const char *s, Vessel__V1__Platform *p) {
  vessel__v1__platform__init(p);
  char buf[128];
  snprintf(buf, sizeof buf, "%s", s);
  char *a = strchr(buf, '/'), *v = NULL;
  if (a) {
    *a++ = '\0';
    if ((v = strchr(a, '/'))) *v++ = '\0';
  }
  p->os = strdup(buf);
  p->architecture = strdup(a ? a : "");
  p->variant = strdup(v ? v : "");
}

/* A progress bar on a terminal, one line per layer change otherwise. */
static void show_progress(const Vessel__V1__TransferProgress *p, int tty) {
  static const char *const phase[] = {"", "resolving", "downloading", "uploading", "extracting", "done"};
  const char *ph = (unsigned)p->phase < 6 ? phase[p->phase] : "";
  char done[32], total[32];
  vc_human_size(p->bytes_done, done, sizeof done);
  vc_human_size(p->bytes_total, total, sizeof total);
  if (tty) {
    int width = 30, fill = p->bytes_total ? (int)(width * p->bytes_done / p->bytes_total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-11s [%s] %s / %s  (%zu blobs)   ", ph, bar, done, total, p->n_layers);
  } else {
    fprintf(stderr, "%s %s/%s\n", ph, done, total);
  }
}

typedef struct transfer {
  vc_ctx *c;
  int tty;
} transfer;

static int on_pull(void *arg, const ProtobufCMessage *m) {
  transfer *t = arg;
  const Vessel__V1__ImagesPullResponse *resp = (const Vessel__V1__ImagesPullResponse *)m;
  if (resp->kind_case == VESSEL__V1__IMAGES_PULL_RESPONSE__KIND_PROGRESS && !t->c->json) {
    show_progress(resp->progress, t->tty);
  } else if (resp->kind_case == VESSEL__V1__IMAGES_PULL_RESPONSE__KIND_IMAGE) {
    if (t->tty && !t->c->json) fputc('\n', stderr);
    if (t->c->json) {
      vc_json(stdout, &resp->image->base, 0);
      putchar('\n');
    } else {
      printf("%s\n%s\n", resp->image->name, resp->image->target->digest);
    }
  }
  return 0;
}

static int on_push(void *arg, const ProtobufCMessage *m) {
  transfer *t = arg;
  const Vessel__V1__ImagesPushResponse *resp = (const Vessel__V1__ImagesPushResponse *)m;
  if (resp->kind_case == VESSEL__V1__IMAGES_PUSH_RESPONSE__KIND_PROGRESS && !t->c->json) {
    show_progress(resp->progress, t->tty);
  } else if (resp->kind_case == VESSEL__V1__IMAGES_PUSH_RESPONSE__KIND_PUSHED) {
    if (t->tty && !t->c->json) fputc('\n', stderr);
    printf("%s\n", resp->pushed->digest);
  }
  return 0;
}

static int pull(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__ImagesPullRequest req;
  vessel__v1__images_pull_request__init(&req);
  Vessel__V1__Platform plat;
  Vessel__V1__RegistryAuth auth;
  vessel__v1__registry_auth__init(&auth);
  static const struct option o[] = {{"platform", required_argument, NULL, 'P'},
                                    {"insecure", no_argument, NULL, 'k'},
                                    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+u:p:h", o, NULL)) != -1) {
    if (ch == 'P') platform_of(optarg, &plat), req.platform = &plat;
    else if (ch == 'k') req.insecure = 1;
    else if (ch == 'u') auth.username = optarg, req.auth = &auth;
    else if (ch == 'p') auth.password = optarg, req.auth = &auth;
    else return ch == 'h' ? (fputs(image_usage, stdout), 0) : vc_usage_error("image pull", "bad flag");
  }
  if (optind != argc - 1) return vc_usage_error("image pull", "give one image reference");
  req.reference = argv[optind];
  int tty = isatty(2);
  transfer t = {c, tty};
  vs_err err;
  if (vc_stream(c, &vessel_v1_Images_Pull, &req.base, on_pull, &t, &err) < 0) {
    if (tty) fputc('\n', stderr);
    return vc_fail(c, &err);
  }
  return 0;
}

static int push(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__ImagesPushRequest req;
  vessel__v1__images_push_request__init(&req);
  Vessel__V1__RegistryAuth auth;
  vessel__v1__registry_auth__init(&auth);
  static const struct option o[] = {{"insecure", no_argument, NULL, 'k'},
                                    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+u:p:h", o, NULL)) != -1) {
    if (ch == 'k') req.insecure = 1;
    else if (ch == 'u') auth.username = optarg, req.auth = &auth;
    else if (ch == 'p') auth.password = optarg, req.auth = &auth;
    else return ch == 'h' ? (fputs(image_usage, stdout), 0) : vc_usage_error("image push", "bad flag");
  }
  if (optind >= argc || argc - optind > 2) return vc_usage_error("image push", "give REF [DEST]");
  req.reference = argv[optind];
  if (argc - optind == 2) req.destination = argv[optind + 1];
  transfer t = {c, isatty(2)};
  vs_err err;
  return vc_stream(c, &vessel_v1_Images_Push, &req.base, on_push, &t, &err) < 0 ? vc_fail(c, &err) : 0;
}

static int ls(vc_ctx *c) {
  Vessel__V1__ImagesListRequest req;
  vessel__v1__images_list_request__init(&req);
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Images_List, &req.base, &m) < 0) return 1;
  Vessel__V1__ImagesListResponse *r = (Vessel__V1__ImagesListResponse *)m;
  if (c->json) {
    vc_json(stdout, m, 0);
    putchar('\n');
  } else {
    printf("%-50s %-19s %-10s %s\n", "NAME", "DIGEST", "SIZE", "PLATFORM");
    for (size_t i = 0; i < r->n_images; i++) {
      Vessel__V1__Image *im = r->images[i];
      char size[32];
      vc_human_size(im->size, size, sizeof size);
      printf("%-50s %-19.19s %-10s %s/%s\n", im->name, im->target ? im->target->digest : "", size,
             im->platform ? im->platform->os : "", im->platform ? im->platform->architecture : "");
    }
  }
  vrpc_msg_free(m);
  return 0;
}

static int simple(vc_ctx *c, const vrpc_method *method, ProtobufCMessage *req) {
  ProtobufCMessage *m;
  if (vc_call(c, method, req, &m) < 0) return 1;
  if (c->json) {
    vc_json(stdout, m, 0);
    putchar('\n');
  }
  vrpc_msg_free(m);
  return 0;
}

/* Export and copy-out chunks to a file; a write error stops the stream. */
static int write_chunk(void *arg, const ProtobufCMessage *m) {
  const ProtobufCBinaryData *d = &((const Vessel__V1__ImagesExportResponse *)m)->data;
  return fwrite(d->data, 1, d->len, arg) != d->len;
}

static int save(vc_ctx *c, int argc, char **argv) {
  const char *out = NULL;
  int ch;
  optind = 1;
  while ((ch = getopt(argc, argv, "+o:")) != -1) {
    if (ch == 'o') out = optarg;
    else return vc_usage_error("image save", "bad flag");
  }
  if (!out || optind >= argc) return vc_usage_error("image save", "give -o FILE and images");
  Vessel__V1__ImagesExportRequest req;
  vessel__v1__images_export_request__init(&req);
  req.references = argv + optind;
  req.n_references = (size_t)(argc - optind);
  req.format = VESSEL__V1__ARCHIVE_FORMAT__ARCHIVE_FORMAT_OCI;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.partial", out);
  FILE *f = fopen(tmp, "wb");
  if (!f) return fprintf(stderr, "vesselctl: %s: %s\n", tmp, strerror(errno)), 1;
  vs_err err;
  vs_err_clear(&err);
  int rc = vc_stream(c, &vessel_v1_Images_Export, &req.base, write_chunk, f, &err);
  if (ferror(f)) rc = -1;
  if (fclose(f) != 0) rc = -1;
  if (rc < 0) { /* no half-written archive under the name asked for */
    unlink(tmp);
    return err.code ? vc_fail(c, &err) : 1;
  }
  return rename(tmp, out) == 0 ? 0 : 1;
}

static int load(vc_ctx *c, int argc, char **argv) {
  const char *in = NULL, *name = "";
  static const struct option o[] = {{"name", required_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+i:", o, NULL)) != -1) {
    if (ch == 'i') in = optarg;
    else if (ch == 'n') name = optarg;
    else return vc_usage_error("image load", "bad flag");
  }
  if (!in) return vc_usage_error("image load", "give -i FILE");
  int fd = open(in, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fprintf(stderr, "vesselctl: %s: %s\n", in, strerror(errno)), 1;
  vs_err err;
  vrpc_call *call = vrpc_call_start(vc_channel(c), &vessel_v1_Images_Import, NULL, &err);
  Vessel__V1__ImagesImportHeader h;
  vessel__v1__images_import_header__init(&h);
  h.reference = (char *)name;
  Vessel__V1__ImagesImportRequest req;
  vessel__v1__images_import_request__init(&req);
  req.kind_case = VESSEL__V1__IMAGES_IMPORT_REQUEST__KIND_HEADER;
  req.header = &h;
  int rc = call && vrpc_send(call, &req.base, &err) == 0 ? 0 : -1;
  static uint8_t buf[1 << 20];
  while (rc == 0) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    vessel__v1__images_import_request__init(&req);
    req.kind_case = VESSEL__V1__IMAGES_IMPORT_REQUEST__KIND_DATA;
    req.data.data = buf;
    req.data.len = (size_t)n;
    rc = vrpc_send(call, &req.base, &err);
  }
  close(fd);
  ProtobufCMessage *m = NULL;
  if (rc == 0 && (vrpc_close_send(call, &err) < 0 || vrpc_recv(call, &m, &err) != 1)) rc = -1;
  if (rc == 0 && vrpc_finish(call, &err) < 0) rc = -1;
  vrpc_call_free(call);
  if (rc < 0) {
    vrpc_msg_free(m);
    return vc_fail(c, &err);
  }
  Vessel__V1__ImagesImportResponse *r = (Vessel__V1__ImagesImportResponse *)m;
  /* An image the archive does not name is printed as its digest, which
   * run and the other verbs accept. */
  for (size_t i = 0; i < r->n_images; i++) {
    const char *n = r->images[i]->name;
    printf("loaded %s\n", !strncmp(n, "<none>@", 7) ? n + 7 : n);
  }
  vrpc_msg_free(m);
  return 0;
}

int vc_image(vc_ctx *c, int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    fputs(image_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *sub = argv[1];
  argc--, argv++;
  /* Subcommands without getopt take these flags only. */
  static const char *const plain[][2] = {
      {"ls", " "}, {"list", " "}, {"rm", " "}, {"tag", " "}, {"inspect", " "}, {"prune", " -a "}};
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
    if (!strcmp(sub, plain[i][0]) && vc_check_flags("image", plain[i][1], argc, argv)) return 2;
  if (!strcmp(sub, "pull")) return pull(c, argc, argv);
  if (!strcmp(sub, "push")) return push(c, argc, argv);
  if (!strcmp(sub, "ls") || !strcmp(sub, "list")) return ls(c);
  if (!strcmp(sub, "save")) return save(c, argc, argv);
  if (!strcmp(sub, "load")) return load(c, argc, argv);
  if (!strcmp(sub, "rm")) {
    if (argc < 2) return vc_usage_error("image rm", "give image references");
    int rc = 0;
    for (int i = 1; i < argc; i++) {
      Vessel__V1__ImagesDeleteRequest req;
      vessel__v1__images_delete_request__init(&req);
      req.reference = argv[i];
      ProtobufCMessage *m;
      if (vc_call(c, &vessel_v1_Images_Delete, &req.base, &m) < 0) {
        rc = 1;
        continue;
      }
      Vessel__V1__ImagesDeleteResponse *r = (Vessel__V1__ImagesDeleteResponse *)m;
      for (size_t k = 0; k < r->n_untagged; k++) printf("untagged %s\n", r->untagged[k]);
      for (size_t k = 0; k < r->n_deleted; k++) printf("deleted %s\n", r->deleted[k]);
      vrpc_msg_free(m);
    }
    return rc;
  }
  if (!strcmp(sub, "tag")) {
    if (argc != 3) return vc_usage_error("image tag", "give SOURCE TARGET");
    Vessel__V1__ImagesTagRequest req;
    vessel__v1__images_tag_request__init(&req);
    req.source = argv[1];
    req.target = argv[2];
    return simple(c, &vessel_v1_Images_Tag, &req.base);
  }
  if (!strcmp(sub, "inspect")) {
    if (argc != 2) return vc_usage_error("image inspect", "give one image");
    Vessel__V1__ImagesInspectRequest req;
    vessel__v1__images_inspect_request__init(&req);
    req.reference = argv[1];
    int json = c->json;
    c->json = 1;
    int rc = simple(c, &vessel_v1_Images_Inspect, &req.base);
    c->json = json;
    return rc;
  }
  if (!strcmp(sub, "prune")) {
    Vessel__V1__ImagesPruneRequest req;
    vessel__v1__images_prune_request__init(&req);
    req.all = argc > 1 && !strcmp(argv[1], "-a");
    ProtobufCMessage *m;
    if (vc_call(c, &vessel_v1_Images_Prune, &req.base, &m) < 0) return 1;
    Vessel__V1__ImagesPruneResponse *r = (Vessel__V1__ImagesPruneResponse *)m;
    char size[32];
    vc_human_size(r->bytes_reclaimed, size, sizeof size);
    printf("deleted %zu blobs, reclaimed %s\n", r->n_deleted, size);
    vrpc_msg_free(m);
    return 0;
  }
  return vc_usage_error("image", "unknown subcommand \"%s\"", sub);
}

int vc_login(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__ImagesLoginRequest req;
  vessel__v1__images_login_request__init(&req);
  static const struct option o[] = {{"insecure", no_argument, NULL, 'k'}, {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  while ((ch = getopt_long(argc, argv, "+u:p:", o, NULL)) != -1) {
    if (ch == 'u') req.username = optarg;
    else if (ch == 'p') req.password = optarg;
    else if (ch == 'k') req.insecure = 1;
    else return vc_usage_error("login", "bad flag");
  }
  if (optind < argc) req.server = argv[optind];
  if (!*req.username) return vc_usage_error("login", "give -u USER -p PASSWORD");
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Images_Login, &req.base, &m) < 0) return 1;
  printf("logged in to %s\n", ((Vessel__V1__ImagesLoginResponse *)m)->server);
  vrpc_msg_free(m);
  return 0;
}

int vc_logout(vc_ctx *c, int argc, char **argv) {
  Vessel__V1__ImagesLogoutRequest req;
  vessel__v1__images_logout_request__init(&req);
  if (argc > 1) req.server = argv[1];
  return simple(c, &vessel_v1_Images_Logout, &req.base);
}

int vc_rootfs(vc_ctx *c, int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "create") != 0)
    return vc_usage_error("rootfs", "usage: rootfs create [--size BYTES|--free BYTES] IMAGE PATH");
  Vessel__V1__ImagesCreateRootfsRequest req;
  vessel__v1__images_create_rootfs_request__init(&req);
  static const struct option o[] = {{"size", required_argument, NULL, 's'},
                                    {"free", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
  int ch;
  optind = 1;
  argc--, argv++;
  while ((ch = getopt_long(argc, argv, "+", o, NULL)) != -1) {
    if (ch == 's') req.size_bytes = strtoll(optarg, NULL, 10);
    else if (ch == 'f') req.free_bytes = strtoll(optarg, NULL, 10);
    else return vc_usage_error("rootfs create", "bad flag");
  }
  if (argc - optind != 2) return vc_usage_error("rootfs create", "give IMAGE PATH");
  char cwd[2048], abs[4200];
  req.reference = argv[optind];
  req.output_path = argv[optind + 1];
  if (argv[optind + 1][0] != '/') { /* vesseld wants an absolute path */
    snprintf(abs, sizeof abs, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", argv[optind + 1]);
    req.output_path = abs;
  }
  ProtobufCMessage *m;
  if (vc_call(c, &vessel_v1_Images_CreateRootfs, &req.base, &m) < 0) return 1;
  Vessel__V1__ImagesCreateRootfsResponse *r = (Vessel__V1__ImagesCreateRootfsResponse *)m;
  char size[32];
  vc_human_size(r->size_bytes, size, sizeof size);
  printf("%s (%s)\n", r->path, size);
  vrpc_msg_free(m);
  return 0;
}
