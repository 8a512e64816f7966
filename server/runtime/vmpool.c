/* The VM pool: hands out VMs, never touches a container.
 *
 * VM templates: boot kernel + vminitd once per (kernel, initramfs, memory,
 * vCPUs, NIC or not, accelerator), save the VM's state, and start later
 * containers by restoring it (~0.3 s instead of a ~1.5 s cold boot under
 * TCG). Built in the background the first time a kind of VM is needed;
 * until then, and whenever a restore fails, containers cold-boot. The key
 * hashes every input, so a new kernel or initramfs means a new template;
 * templates of inputs no longer in use are pruned when vesseld starts.
 *
 * A template's guest RAM is a file (<template>/ram) that every VM restored
 * from it maps copy-on-write (cfg.template_memory_copy = 0): the pages a
 * container never writes (the kernel, vminitd, what they set up) are held
 * once in the page cache for all of them, and a restore reads only the
 * devices' state. The file never changes once built: a new build renames a
 * new file over it, and removing it leaves running VMs their mapping.
 * With template_memory_copy each VM loads its own copy of RAM instead.
 * Warm spares, restored from a template ahead of need, are at the end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/vs_fs.h"
#include "server/ext4/ext4.h"
#include "server/oci/oci.h"
#include "common/vs_log.h"
#include "server/runtime/runtime_internal.h"
#include "vessel/v1/agent.pb-c.h"
#include "vessel_proto_rpc.h"

/* Bump when what a template holds changes. */
#define TEMPLATE_FORMAT "vessel-template-3" /* 3: x86 TCG CPU without ERMS */
/* Spares are made in the background, niced, so that they hardly slow the
 * containers running meanwhile (10: about a tenth of a CPU against a busy
 * one; never starved); a spare taken over gets its priority back. (Not
 * templates: a slow one means cold boots for longer.) */
#define BACKGROUND_NICE 10

void rt_template_mac(size_t i, char out[18]) {
  snprintf(out, 18, "02:42:00:00:00:%02x", (unsigned)(i + 1) & 0xff);
}

typedef struct rt_template {
  char dir[4200], state[4300], disk[4300], ram[4300];
  char emu_disk[4300]; /* the emulators' disk (vdb), or "" */
  int shared_ram; /* restores map ram copy-on-write */
  char inputs[4096]; /* what the key hashes; kept beside the state */
  int n_nics, n_slots, memory_mib, vcpus, n_shares;
} rt_template;

typedef struct rt_spare rt_spare;

/* Starts remembered to size the spare pool by. */
#define DEMAND_MAX 256

struct rt_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;    /* wakes the spare keeper */
  int building;         /* template builds running */
  rt_spare *spares;     /* warm VMs ready to be taken, all of kind */
  int n_spares;
  unsigned spare_seq;
  rt_template kind;     /* what spares are made of: the kind last started */
  int have_kind;
  int64_t starts[DEMAND_MAX]; /* ring of recent starts of that kind (ms) */
  size_t n_starts;
  int stop;
  pthread_t keeper;
  int keeper_running;
};

void rt_trace_call(void *arg, const vrpc_method *m) {
  rt_runtime *rt = arg;
  const vrpc_method *host = vrpc_current_method();
  char line[300];
  int n = snprintf(line, sizeof line, "%s %s\n", host ? host->path : "-", m->path);
  ssize_t w = write(rt->trace_fd, line, (size_t)n); /* O_APPEND: whole lines */
  (void)w;
}

void rt_vm_config(rt_runtime *rt, vm_config *vc, int vcpus, int memory_mib, const char *disk,
                  const char *agent_socket, const char *console) {
  memset(vc, 0, sizeof *vc);
  vc->arch = rt->cfg.guest_arch;
  vc->qemu = rt->cfg.qemu;
  vc->kernel = rt->cfg.kernel;
  vc->initrd = rt->cfg.initrd;
  vc->vcpus = vcpus;
  vc->memory_mib = memory_mib;
  vc->root_disk = disk;
  vc->agent_socket = agent_socket;
  vc->console_log = console;
  vc->record = 1; /* every QEMU of vesseld's: found again if vesseld dies */
  vc->free_page_reporting = 1; /* not for shared template RAM: template_vm */
  vc->tb_size_mib = rt->cfg.tb_size_mib;
  vc->accel = rt->cfg.accel;
  if (rt->trace_fd >= 0) {
    vc->on_call = rt_trace_call;
    vc->on_call_arg = rt;
  }
}

static void nice_this_thread(void) {
  setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), BACKGROUND_NICE);
}

static void file_id(const char *path, char *out, size_t n) {
  struct stat st;
  if (path && stat(path, &st) == 0)
    snprintf(out, n, "%s:%lld:%lld", path, (long long)st.st_size, (long long)st.st_mtime);
  else
    snprintf(out, n, "%s:missing", path ? path : "");
}

/* The inputs every template of this vesseld shares: format, kernel, initramfs. */
static void shared_inputs(rt_runtime *rt, char *out, size_t n) {
  char a[1200], b[1200];
  file_id(rt->cfg.kernel, a, sizeof a);
  file_id(rt->cfg.initrd, b, sizeof b);
  snprintf(out, n, "%s|%s|%s|%s|", TEMPLATE_FORMAT, vm_arch_name(rt->cfg.guest_arch), a, b);
}

static void template_paths(rt_runtime *rt, const rt_vm_kind *k, rt_template *t) {
  char shared[2600], d[72];
  shared_inputs(rt, shared, sizeof shared);
  t->shared_ram = !rt->cfg.template_memory_copy;
  snprintf(t->inputs, sizeof t->inputs, "%s%d|%d|%d|%s|ram %s|tb %d", shared, k->memory_mib,
           k->vcpus, k->n_nics, rt->cfg.accel == VM_ACCEL_KVM ? "kvm" : "tcg", t->shared_ram ? "shared" : "copy",
           rt->cfg.tb_size_mib);
  if (k->n_slots) { /* a pod's: its slots for a root disk */
    size_t l = strlen(t->inputs);
    snprintf(t->inputs + l, sizeof t->inputs - l, "|slots %d", k->n_slots);
  }
  if (k->n_shares) {
    size_t l = strlen(t->inputs);
    snprintf(t->inputs + l, sizeof t->inputs - l, "|shares %d", k->n_shares);
  }
  snprintf(t->emu_disk, sizeof t->emu_disk, "%s", k->emu_disk ? k->emu_disk : "");
  if (k->emu_disk) { /* its name is its emulators' hash */
    size_t l = strlen(t->inputs);
    snprintf(t->inputs + l, sizeof t->inputs - l, "|emu %s", k->emu_disk);
  }
  oci_sha256_bytes(t->inputs, strlen(t->inputs), d);
  snprintf(t->dir, sizeof t->dir, "%s/templates/%.24s", rt->root, d + 7);
  snprintf(t->state, sizeof t->state, "%s/state", t->dir);
  snprintf(t->disk, sizeof t->disk, "%s/placeholder.img", t->dir);
  snprintf(t->ram, sizeof t->ram, "%s/ram", t->dir);
  t->n_nics = k->n_nics;
  t->n_slots = k->n_slots;
  t->n_shares = k->n_shares;
  t->memory_mib = k->memory_mib;
  t->vcpus = k->vcpus;
}

/* vc restores t: with shared RAM, the template's RAM file copy-on-write
 * (and no free page reporting, which would punch holes into it). */
static void template_vm(const rt_template *t, vm_config *vc) {
  vc->incoming = t->state;
  if (t->shared_ram) {
    vc->ram_file = t->ram;
    vc->ram_shared = 0;
    vc->free_page_reporting = 0;
  }
}

typedef struct build_job {
  rt_runtime *rt;
  rt_template t;
} build_job;

/* One attempt at building j's template; 1 if it was built. */
static int build_once(build_job *j) {
  rt_runtime *rt = j->rt;
  rt_template *t = &j->t;
  vs_err err;
  vs_err_set(&err, VS_INTERNAL, "cannot create its disk");
  int ok = 0;
  vm *v = NULL;
  char tmp[4400], ram_tmp[4400], sock[4200], qmp[4200], console[4400], taps[VM_MAX_NICS][16],
      macs[VM_MAX_NICS][18];
  vm_nic nics[VM_MAX_NICS];
  size_t n_taps = 0;
  snprintf(tmp, sizeof tmp, "%s.tmp", t->state);
  /* a new file: VMs restored from an earlier build map the old one */
  snprintf(ram_tmp, sizeof ram_tmp, "%s.tmp", t->ram);
  unlink(ram_tmp);
  snprintf(console, sizeof console, "%s/console.log", t->dir);
  char d[72];
  oci_sha256_bytes(t->dir, strlen(t->dir), d);
  snprintf(sock, sizeof sock, "%s/run/t%.12s.sock", rt->root, d + 7);
  snprintf(qmp, sizeof qmp, "%s/run/t%.12s.qmp", rt->root, d + 7);
  unlink(sock);
  unlink(qmp);
  /* Its disks: a placeholder root disk, or a pod's empty slots. */
  char slot_paths[RT_MAX_SLOTS][4400];
  vm_disk slots[RT_MAX_SLOTS];
  int fd = -1;
  for (int i = 0; i < (t->n_slots ? t->n_slots : 1); i++) {
    snprintf(slot_paths[i], sizeof slot_paths[i], "%s/slot%d.img", t->dir, i);
    slots[i] = (vm_disk){slot_paths[i], 0};
    fd = open(t->n_slots ? slot_paths[i] : t->disk, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, RT_DISK_BYTES) < 0) goto fail;
    close(fd);
    fd = -1;
  }
  for (; n_taps < (size_t)t->n_nics; n_taps++) { /* any taps will do: the NICs only have to exist */
    char stem[16];
    snprintf(stem, sizeof stem, "vtt%.10s", d + 7);
    rt_tap_name(stem, n_taps, taps[n_taps]);
    rt_template_mac(n_taps, macs[n_taps]);
    nics[n_taps] = (vm_nic){taps[n_taps], macs[n_taps]};
    if (rt_tap_create(taps[n_taps], NULL, &err) < 0) goto fail;
  }
  vm_config vc;
  rt_vm_config(rt, &vc, t->vcpus, t->memory_mib, t->disk, sock, console);
  vc.nics = nics;
  vc.n_nics = n_taps;
  vm_disk emu = {t->emu_disk, 1};
  if (t->n_slots) {
    vc.root_disk = NULL;
    vc.disks = slots;
    vc.n_disks = (size_t)t->n_slots;
  } else if (t->emu_disk[0]) {
    vc.disks = &emu;
    vc.n_disks = 1;
  }
  /* Its shares: empty directories; the guest never mounts them here (a 9p
   * device that is not mounted migrates, and a restore points it at the
   * VM's own directories). */
  char share_dirs[RT_MAX_SHARES][4400], share_tags[RT_MAX_SHARES][16];
  vm_share shares[RT_MAX_SHARES];
  for (int i = 0; i < t->n_shares && i < RT_MAX_SHARES; i++) {
    snprintf(share_dirs[i], sizeof share_dirs[i], "%s/share%d", t->dir, i);
    snprintf(share_tags[i], sizeof share_tags[i], "vol%d", i);
    mkdir(share_dirs[i], 0700);
    shares[i] = (vm_share){share_dirs[i], share_tags[i], 0};
  }
  vc.shares = shares;
  vc.n_shares = (size_t)t->n_shares;
  vc.qmp_socket = qmp;
  if (t->shared_ram) {
    vc.ram_file = ram_tmp;
    vc.ram_shared = 1;
    vc.free_page_reporting = 0;
  }
  v = vm_start(&vc, &err);
  ok = v && vm_wait_ready(v, 60000, &err) == 0 &&
       (!t->emu_disk[0] || rt_emu_setup(vm_channel(v), &err) == 0);
  if (ok) {
    vm_detach(v); /* the agent sees the host leave and waits for the next */
    usleep(300000);
    char inputs[4400];
    snprintf(inputs, sizeof inputs, "%s/inputs", t->dir);
    ok = vm_save(v, qmp, tmp, &err) == 0 &&
         vs_write_atomic(inputs, t->inputs, strlen(t->inputs), 0600, &err) == 0 &&
         (!t->shared_ram || rename(ram_tmp, t->ram) == 0) && rename(tmp, t->state) == 0;
  }
  if (v) {
    vm_kill(v);
    vm_free(v);
  }
  unlink(sock);
  unlink(qmp);
  if (!ok) goto fail;
  goto out;
fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
  unlink(ram_tmp);
out:
  for (size_t i = 0; i < n_taps; i++) rt_tap_delete(taps[i]);
  if (!ok) vs_log("vesseld", VS_LOG_WARN, "template %s not built: %s", t->dir, err.msg);
  return ok;
}

/* A failed build is tried twice more, 3 and 6 s later: until a template
 * exists every VM of its kind cold-boots, and nothing else would ask for
 * it again before the next VM of that kind. Not once vesseld is closing. */
static void *build_main(void *arg) {
  build_job *j = arg;
  rt_runtime *rt = j->rt;
  for (int attempt = 1; !build_once(j) && attempt < 3; attempt++) {
    for (int i = 0; i < 30 * attempt && !rt_closing(rt); i++) usleep(100000);
    if (rt_closing(rt)) break;
  }
  pthread_mutex_lock(&rt->pool->mu);
  rt->pool->building--;
  pthread_mutex_unlock(&rt->pool->mu);
  free(j);
  return NULL;
}

/* Runs fn on a copy of t in the background; *count (under pool->mu) was
 * raised for it by the caller and is lowered here if it cannot start. */
static void start_job(rt_runtime *rt, const rt_template *t, void *(*fn)(void *), int *count) {
  build_job *j = malloc(sizeof *j);
  if (j) {
    j->rt = rt;
    j->t = *t;
  }
  if (!j || rt_spawn_detached(fn, j) < 0) {
    free(j);
    pthread_mutex_lock(&rt->pool->mu);
    (*count)--;
    pthread_mutex_unlock(&rt->pool->mu);
  }
}

/* 1 if the template's state exists; else starts building it (one build at
 * a time) and returns 0. */
static int template_ready(rt_runtime *rt, const rt_template *t) {
  if (access(t->state, R_OK) == 0) return 1;
  rt_pool *pool = rt->pool;
  pthread_mutex_lock(&pool->mu);
  int busy = pool->building > 0 || rt_closing(rt);
  if (!busy) pool->building++;
  pthread_mutex_unlock(&pool->mu);
  if (busy) return 0;
  char tdir[4200];
  snprintf(tdir, sizeof tdir, "%s/templates", rt->root);
  mkdir(tdir, 0700);
  mkdir(t->dir, 0700);
  start_job(rt, t, build_main, &pool->building);
  return 0;
}

/* Removes templates whose kernel or initramfs is not this vesseld's. */
static void templates_prune(rt_runtime *rt) {
  char dir[4200], shared[2600];
  snprintf(dir, sizeof dir, "%s/templates", rt->root);
  shared_inputs(rt, shared, sizeof shared);
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char sub[4500], inputs[4600];
    snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
    snprintf(inputs, sizeof inputs, "%s/inputs", sub);
    vs_err ignore;
    char *have = vs_read_file(inputs, 8192, NULL, &ignore);
    if (!have || strncmp(have, shared, strlen(shared)) != 0) vs_rm_rf(sub);
    free(have);
  }
  if (d) closedir(d);
}

/* ---- warm spares ----
 * Under TCG a fresh QEMU translates every guest code path on its first
 * run: most of a restore's time is the restored agent's first calls. A
 * spare is a VM restored from a template ahead of need, its agent already
 * warm, with a placeholder disk and a tap of its own; a container of the
 * same kind takes it over (its rootfs copied into that disk, the tap added
 * to its bridge).
 *
 * The pool is sized by demand: as many spares as the most containers of
 * that kind started within BURST_MS of each other during the last
 * cfg.spare_memory_s seconds (default DEFAULT_DEMAND_S): a burst seen once
 * is met by spares for a while after. At least 1, at most cfg.max_spares,
 * and none while the host's available memory is below the VM's size plus
 * SPARE_MEM_RESERVE_MIB. One keeper thread, niced, owns making and ending
 * them: it restores one at a time (running containers keep the CPU), and
 * ends the ones demand no longer asks for. Spares follow the kind of VM
 * last started; those of another kind go. */

#define BURST_MS 10000
#define DEFAULT_DEMAND_S 120
#define SPARE_MEM_RESERVE_MIB 1024
#define DEFAULT_MAX_SPARES 20

struct rt_spare {
  rt_spare *next;
  vm *v;
  char dir[4200], disk[4300], console[4300], sock[4200], tap[16];
  char inputs[4096];
};

int rt_guest_refresh(vrpc_channel *ch, vs_err *err) {
  int64_t now;
  rt_now(&now);
  Google__Protobuf__Timestamp ts;
  google__protobuf__timestamp__init(&ts);
  ts.seconds = now / 1000000000;
  ts.nanos = (int32_t)(now % 1000000000);
  Vessel__V1__AgentSetTimeRequest st;
  vessel__v1__agent_set_time_request__init(&st);
  st.time = &ts;
  vrpc_call_opts o = {AGENT_TIMEOUT_MS, NULL};
  ProtobufCMessage *r = NULL;
  if (vrpc_unary(ch, &vessel_v1_Agent_SetTime, &st.base, &r, &o, err) < 0) return -1;
  vrpc_msg_free(r);
  uint8_t rnd[256];
  FILE *f = fopen("/dev/urandom", "rb");
  size_t n = f ? fread(rnd, 1, sizeof rnd, f) : 0;
  if (f) fclose(f);
  if (n != sizeof rnd) return vs_err_set(err, VS_INTERNAL, "cannot read /dev/urandom");
  Vessel__V1__AgentAddEntropyRequest ae;
  vessel__v1__agent_add_entropy_request__init(&ae);
  ae.data.data = rnd;
  ae.data.len = n;
  r = NULL;
  if (vrpc_unary(ch, &vessel_v1_Agent_AddEntropy, &ae.base, &r, &o, err) < 0) return -1;
  vrpc_msg_free(r);
  return 0;
}

/* Runs the agent paths a container's creation takes (netlink, an ext4
 * mount, cgroups, spawning its init) once, on a throwaway container whose
 * root is the spare's empty ext4, so they are translated before a real
 * container needs them. (The guest drops the disk's cached blocks before
 * each rootfs mount, so nothing of this one survives into the next.) Best
 * effort: errors only mean less warmth. */
static void spare_warm(vrpc_channel *ch) {
  vrpc_call_opts o = {AGENT_TIMEOUT_MS, NULL};
  ProtobufCMessage *r;
  vs_err ignore;
#define CALL(method, msg) \
  if (vrpc_unary(ch, &method, &(msg).base, &r, &o, &ignore) == 0) vrpc_msg_free(r)
  Vessel__V1__AgentListInterfacesRequest li = VESSEL__V1__AGENT_LIST_INTERFACES_REQUEST__INIT;
  CALL(vessel_v1_Agent_ListInterfaces, li);
  char *lo_addr[1] = {(char *)"127.0.0.1/8"};
  Vessel__V1__NetworkInterface lo = VESSEL__V1__NETWORK_INTERFACE__INIT;
  lo.name = (char *)"lo";
  lo.addresses = lo_addr;
  lo.n_addresses = 1;
  Vessel__V1__AgentConfigureInterfaceRequest ci = VESSEL__V1__AGENT_CONFIGURE_INTERFACE_REQUEST__INIT;
  ci.interface = &lo;
  CALL(vessel_v1_Agent_ConfigureInterface, ci);
  Vessel__V1__Mount root = VESSEL__V1__MOUNT__INIT;
  root.type = (char *)"ext4";
  root.source = (char *)"/dev/vda";
  char *args[1] = {(char *)"/warm-up"};
  Vessel__V1__ProcessSpec proc = VESSEL__V1__PROCESS_SPEC__INIT;
  proc.args = args;
  proc.n_args = 1;
  proc.cwd = (char *)"/";
  Vessel__V1__AgentCreateContainerRequest cc = VESSEL__V1__AGENT_CREATE_CONTAINER_REQUEST__INIT;
  cc.container_id = (char *)"vessel-warm-up";
  cc.rootfs = &root;
  cc.hostname = (char *)"warm-up";
  cc.process = &proc;
  CALL(vessel_v1_Agent_CreateContainer, cc);
  Vessel__V1__AgentStartProcessRequest sp = VESSEL__V1__AGENT_START_PROCESS_REQUEST__INIT;
  sp.container_id = cc.container_id; /* fails: there is no /warm-up to run */
  CALL(vessel_v1_Agent_StartProcess, sp);
  Vessel__V1__AgentSyncRequest sy = VESSEL__V1__AGENT_SYNC_REQUEST__INIT;
  CALL(vessel_v1_Agent_Sync, sy);
  Vessel__V1__AgentDeleteContainerRequest dc = VESSEL__V1__AGENT_DELETE_CONTAINER_REQUEST__INIT;
  dc.container_id = (char *)"vessel-warm-up";
  dc.force = 1;
  CALL(vessel_v1_Agent_DeleteContainer, dc);
#undef CALL
}

static void spare_free(rt_spare *s) {
  if (!s) return;
  if (s->v) {
    vm_kill(s->v);
    vm_free(s->v);
  }
  if (s->tap[0]) rt_tap_delete(s->tap);
  unlink(s->sock);
  vs_rm_rf(s->dir);
  free(s);
}

/* Restores one spare of t's kind, warm; NULL if that failed. */
static rt_spare *spare_make(rt_runtime *rt, const rt_template *t) {
  rt_pool *pool = rt->pool;
  rt_spare *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  vs_err err;
  pthread_mutex_lock(&pool->mu);
  unsigned seq = ++pool->spare_seq;
  pthread_mutex_unlock(&pool->mu);
  snprintf(s->dir, sizeof s->dir, "%s/spares/%u", rt->root, seq);
  snprintf(s->disk, sizeof s->disk, "%s/rootfs.ext4", s->dir);
  snprintf(s->console, sizeof s->console, "%s/console.log", s->dir);
  snprintf(s->inputs, sizeof s->inputs, "%s", t->inputs);
  char d[72];
  oci_sha256_bytes(s->dir, strlen(s->dir), d);
  snprintf(s->sock, sizeof s->sock, "%s/run/s%.12s.sock", rt->root, d + 7);
  if (t->n_nics) snprintf(s->tap, sizeof s->tap, "vs%.12s", d + 7);
  /* Its disk holds an empty ext4 until a container's replaces it: the
   * warm-up mounts it (the guest sees the template's disk size anyway). */
  rfs_options o;
  rfs_options_init(&o);
  o.size_bytes = 8 << 20;
  int ok = vs_mkdir_p(s->dir, 0700, &err) == 0 && rfs_build(NULL, 0, s->disk, &o, NULL, &err) == 0 &&
           truncate(s->disk, RT_DISK_BYTES) == 0; /* QEMU sizes the disk by the file */
  if (ok && s->tap[0]) ok = rt_tap_create(s->tap, NULL, &err) == 0;
  if (!ok) s->tap[0] = '\0';
  if (ok) {
    vm_config vc;
    rt_vm_config(rt, &vc, t->vcpus, t->memory_mib, s->disk, s->sock, s->console);
    template_vm(t, &vc);
    char mac[18];
    rt_template_mac(0, mac);
    vm_nic nic = {s->tap, mac};
    vc.nics = &nic;
    vc.n_nics = s->tap[0] ? 1 : 0;
    vc.nice = BACKGROUND_NICE;
    s->v = vm_start(&vc, &err);
    /* Its first calls are the slow ones: made here, not by a container. */
    ok = s->v && vm_wait_ready(s->v, 10000, &err) == 0 &&
         rt_guest_refresh(vm_channel(s->v), &err) == 0;
    if (ok) spare_warm(vm_channel(s->v));
  }
  if (ok) { /* ready: says so (and which QEMU) to whoever looks */
    char pid[4400], text[32];
    snprintf(pid, sizeof pid, "%s/qemu.pid", s->dir);
    snprintf(text, sizeof text, "%d", (int)vm_pid(s->v));
    ok = vs_write_atomic(pid, text, strlen(text), 0600, &err) == 0;
  }
  if (ok) return s;
  vs_log("vesseld", VS_LOG_WARN, "warm spare not made: %s", err.msg);
  spare_free(s);
  return NULL;
}

static long mem_available_mib(void) {
  FILE *f = fopen("/proc/meminfo", "re");
  char line[256];
  long kib = -1;
  while (f && kib < 0 && fgets(line, sizeof line, f))
    if (sscanf(line, "MemAvailable: %ld kB", &kib) != 1) kib = -1;
  if (f) fclose(f);
  return kib < 0 ? 0 : kib / 1024;
}

/* How many spares demand asks for now (pool->mu held). */
static int spares_wanted(rt_runtime *rt, int64_t now) {
  rt_pool *pool = rt->pool;
  if (!pool->have_kind || rt_closing(rt)) return 0;
  int64_t memory = (rt->cfg.spare_memory_s > 0 ? rt->cfg.spare_memory_s : DEFAULT_DEMAND_S) * 1000ll;
  size_t have = pool->n_starts < DEMAND_MAX ? pool->n_starts : DEMAND_MAX;
  int n = 0; /* the largest burst: starts within BURST_MS after one start */
  for (size_t i = 0; i < have; i++) {
    int64_t t = pool->starts[i];
    if (now - t > memory) continue;
    int k = 0;
    for (size_t j = 0; j < have; j++) k += pool->starts[j] >= t && pool->starts[j] - t < BURST_MS;
    if (k > n) n = k;
  }
  int max = rt->cfg.max_spares < 0 ? 0 : rt->cfg.max_spares ? rt->cfg.max_spares : DEFAULT_MAX_SPARES;
  if (n < 1) n = 1;
  return n > max ? max : n;
}

/* The keeper: makes spares up to what demand asks for, one at a time, and
 * ends those it no longer asks for. */
static void *keeper_main(void *arg) {
  rt_runtime *rt = arg;
  rt_pool *pool = rt->pool;
  nice_this_thread();
  pthread_mutex_lock(&pool->mu);
  while (!pool->stop) {
    /* A spare whose QEMU died (killed, out of memory) is no spare: it goes
     * (reaped, its files removed) and the pool makes up for it. */
    for (rt_spare **pp = &pool->spares; *pp;) {
      rt_spare *s = *pp;
      if (vm_running(s->v)) {
        pp = &s->next;
        continue;
      }
      *pp = s->next;
      pool->n_spares--;
      pthread_mutex_unlock(&pool->mu);
      vs_log("vesseld", VS_LOG_WARN, "warm spare %s: its QEMU exited; replaced", s->dir);
      spare_free(s);
      pthread_mutex_lock(&pool->mu);
      pp = &pool->spares; /* the list may have changed meanwhile */
    }
    int64_t now = rt_mono_ms();
    int want = spares_wanted(rt, now);
    long avail = pool->have_kind ? mem_available_mib() : 0;
    if (pool->have_kind && avail < pool->kind.memory_mib + SPARE_MEM_RESERVE_MIB) want = 0;
    if (pool->n_spares > want) { /* the oldest goes first: it is at the end */
      rt_spare **pp = &pool->spares;
      while ((*pp)->next) pp = &(*pp)->next;
      rt_spare *old = *pp;
      *pp = NULL;
      pool->n_spares--;
      pthread_mutex_unlock(&pool->mu);
      spare_free(old);
      pthread_mutex_lock(&pool->mu);
      continue;
    }
    int wait_ms = pool->n_spares < want ? 500 : 5000; /* below target: no template yet? */
    if (pool->n_spares < want && access(pool->kind.state, R_OK) == 0) {
      rt_template t = pool->kind;
      pthread_mutex_unlock(&pool->mu);
      rt_spare *s = spare_make(rt, &t);
      pthread_mutex_lock(&pool->mu);
      if (s && !pool->stop && pool->have_kind && !strcmp(pool->kind.inputs, s->inputs)) {
        s->next = pool->spares;
        pool->spares = s;
        pool->n_spares++;
        continue;
      }
      if (s) { /* of a kind no longer wanted */
        pthread_mutex_unlock(&pool->mu);
        spare_free(s);
        pthread_mutex_lock(&pool->mu);
        continue;
      }
      wait_ms = 2000; /* it failed (logged): not again at once */
    }
    struct timespec until = rt_deadline(wait_ms);
    pthread_cond_timedwait(&pool->cv, &pool->mu, &until);
  }
  pthread_mutex_unlock(&pool->mu);
  return NULL;
}

/* A container of kind t starts: demand for spares of that kind. Spares
 * of another kind go (pool->mu held; returns them to free unlocked). */
static rt_spare *spare_demand(rt_runtime *rt, const rt_template *t) {
  rt_pool *pool = rt->pool;
  rt_spare *old = NULL;
  if (!pool->have_kind || strcmp(pool->kind.inputs, t->inputs)) {
    old = pool->spares;
    pool->spares = NULL;
    pool->n_spares = 0;
    pool->n_starts = 0;
    pool->kind = *t;
    pool->have_kind = 1;
  }
  pool->starts[pool->n_starts++ % DEMAND_MAX] = rt_mono_ms();
  pthread_cond_signal(&pool->cv);
  return old;
}

static void spares_free(rt_spare *s) {
  while (s) {
    rt_spare *next = s->next;
    spare_free(s);
    s = next;
  }
}

/* Makes spare s the VM of a container: rootfs_src copied into the disk it
 * has open, renamed to root; its tap into bridge; clock and entropy fresh.
 * On failure the spare is gone. */
static int spare_claim(rt_spare *s, const char *rootfs_src, const char *root, const char *console,
                       const char *bridge, rt_pool_vm *out, vs_err *err) {
  vm_renice(s->v, 0);
  int fd = open(s->disk, O_WRONLY | O_CLOEXEC);
  int rc = fd < 0 ? vs_err_errno(err, VS_INTERNAL, errno, "open %s", s->disk)
                  : rfs_copy_into(rootfs_src, fd, err);
  if (fd >= 0) close(fd);
  if (rc == 0 && rename(s->disk, root) < 0)
    rc = vs_err_errno(err, VS_INTERNAL, errno, "rename %s", s->disk);
  if (rc == 0) rename(s->console, console); /* QEMU keeps writing to it */
  if (rc == 0 && s->tap[0]) rc = rt_tap_attach(s->tap, bridge, err);
  if (rc == 0) rc = rt_guest_refresh(vm_channel(s->v), err); /* the clock moved on */
  if (rc < 0) {
    if (access(root, F_OK) == 0 && access(s->disk, F_OK) < 0) unlink(root);
    spare_free(s);
    return -1;
  }
  out->v = s->v;
  s->v = NULL;
  snprintf(out->tap, sizeof out->tap, "%s", s->tap);
  s->tap[0] = '\0';
  snprintf(out->sock, sizeof out->sock, "%s", s->sock);
  s->sock[0] = '\0';
  spare_free(s);
  return 0;
}

int rt_pool_take_spare(rt_runtime *rt, const rt_vm_kind *k, const char *rootfs_src,
                       const char *root, const char *console, const char *bridge,
                       rt_pool_vm *out) {
  rt_template t;
  template_paths(rt, k, &t);
  /* rare, or a pod's, or with host directories fixed at its start, or
   * emulating: no spares */
  if (t.n_nics > 1 || t.n_slots || t.n_shares || t.emu_disk[0]) return 0;
  rt_pool *pool = rt->pool;
  pthread_mutex_lock(&pool->mu);
  rt_spare *old = spare_demand(rt, &t);
  rt_spare *s = pool->spares;
  if (s) {
    pool->spares = s->next;
    pool->n_spares--;
    s->next = NULL;
  }
  pthread_mutex_unlock(&pool->mu);
  spares_free(old);
  int64_t t0 = rt_mono_ms();
  vs_err err;
  int ok = s && spare_claim(s, rootfs_src, root, console, bridge, out, &err) == 0;
  if (s && !ok) vs_log("vesseld", VS_LOG_WARN, "warm spare not usable: %s", err.msg);
  if (ok) out->boot_ms = rt_mono_ms() - t0;
  return ok;
}

int rt_pool_restore(rt_runtime *rt, const rt_vm_kind *k, const vm_config *vc, rt_pool_vm *out) {
  rt_template t;
  template_paths(rt, k, &t);
  if (!template_ready(rt, &t)) return 0;
  vm_config tc = *vc;
  template_vm(&t, &tc);
  vm_nic nics[VM_MAX_NICS]; /* the template's MACs: the guest gets its own after */
  char macs[VM_MAX_NICS][18];
  for (size_t i = 0; i < vc->n_nics && i < VM_MAX_NICS; i++) {
    rt_template_mac(i, macs[i]);
    nics[i] = (vm_nic){vc->nics[i].tap, macs[i]};
  }
  tc.nics = nics;
  vs_err err;
  vm *v = vm_start(&tc, &err);
  if (v && vm_wait_ready(v, 10000, &err) == 0 && rt_guest_refresh(vm_channel(v), &err) == 0) {
    out->v = v;
    out->boot_ms = vm_ready_ms(v);
    return 1;
  }
  vs_log("vesseld", VS_LOG_WARN, "template restore failed, cold boot: %s", err.msg);
  if (v) {
    vm_kill(v);
    vm_free(v);
  }
  unlink(vc->agent_socket);
  return 0;
}

int rt_pool_open(rt_runtime *rt, vs_err *err) {
  rt_pool *pool = calloc(1, sizeof *pool);
  if (!pool) return vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
  pthread_mutex_init(&pool->mu, NULL);
  pthread_cond_init(&pool->cv, NULL);
  rt->pool = pool;
  templates_prune(rt);
  /* Spares of a vesseld that did not end them (killed): their QEMUs and
   * taps went with the orphans (rt_reap_orphans); their files go here. */
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/spares", rt->root);
  vs_rm_rf(dir);
  int rc = pthread_create(&pool->keeper, NULL, keeper_main, rt);
  if (rc) {
    rt_pool_close(rt);
    return vs_err_errno(err, VS_RESOURCE_EXHAUSTED, rc, "spare keeper thread");
  }
  pool->keeper_running = 1;
  return 0;
}

void rt_pool_close(rt_runtime *rt) {
  rt_pool *pool = rt->pool;
  if (!pool) return;
  pthread_mutex_lock(&pool->mu);
  pool->stop = 1;
  pthread_cond_signal(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
  if (pool->keeper_running) pthread_join(pool->keeper, NULL); /* a spare being made ends first */
  for (int i = 0; i < 900; i++) { /* template builds in flight finish first */
    pthread_mutex_lock(&pool->mu);
    int b = pool->building;
    pthread_mutex_unlock(&pool->mu);
    if (!b) break;
    usleep(100000);
  }
  spares_free(pool->spares);
  pthread_cond_destroy(&pool->cv);
  pthread_mutex_destroy(&pool->mu);
  free(pool);
  rt->pool = NULL;
}
