/* VM templates: boot kernel + vminitd once per (kernel, initramfs, memory,
 * vCPUs, NIC or not, accelerator), save the VM's state, and start later
 * containers by restoring it (~0.3 s instead of a ~1.5 s cold boot under
 * TCG). Built in the background the first time a kind of VM is needed;
 * until then, and whenever a restore fails, containers cold-boot. The key
 * hashes every input, so a new kernel or initramfs means a new template;
 * templates of inputs no longer in use are pruned when vesseld starts. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/vs_fs.h"
#include "server/oci/oci.h"
#include "server/runtime/runtime_internal.h"

/* Bump when what a template holds changes. */
#define TEMPLATE_FORMAT "vessel-template-1"
/* Every template VM has a disk this large (sparse): the restored guest
 * keeps the capacity it saw, and containers' root filesystems fit in it. */
#define PLACEHOLDER_BYTES (64ll << 30)
#define TEMPLATE_MAC "02:42:00:00:00:01"

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
  snprintf(out, n, "%s|%s|%s|", TEMPLATE_FORMAT, a, b);
}

void rt_template_paths(rt_container *c, int with_nic, rt_template *t) {
  rt_runtime *rt = c->rt;
  char shared[2600], d[72];
  shared_inputs(rt, shared, sizeof shared);
  snprintf(t->inputs, sizeof t->inputs, "%s%d|%d|%d|%s", shared, c->memory_mib, c->vcpus,
           with_nic, vm_kvm_usable() ? "kvm" : "tcg");
  const char *k = t->inputs;
  oci_sha256_bytes(k, strlen(k), d);
  snprintf(t->dir, sizeof t->dir, "%s/templates/%.24s", rt->root, d + 7);
  snprintf(t->state, sizeof t->state, "%s/state", t->dir);
  snprintf(t->disk, sizeof t->disk, "%s/placeholder.img", t->dir);
  t->with_nic = with_nic;
  t->memory_mib = c->memory_mib;
  t->vcpus = c->vcpus;
}

typedef struct build_job {
  rt_runtime *rt;
  rt_template t;
} build_job;

static void *build_main(void *arg) {
  build_job *j = arg;
  rt_runtime *rt = j->rt;
  rt_template *t = &j->t;
  vs_err err;
  char tmp[4400], sock[4200], qmp[4200], console[4400], tap[16] = "";
  snprintf(tmp, sizeof tmp, "%s.tmp", t->state);
  snprintf(console, sizeof console, "%s/console.log", t->dir);
  char d[72];
  oci_sha256_bytes(t->dir, strlen(t->dir), d);
  snprintf(sock, sizeof sock, "%s/run/t%.12s.sock", rt->root, d + 7);
  snprintf(qmp, sizeof qmp, "%s/run/t%.12s.qmp", rt->root, d + 7);
  unlink(sock);
  unlink(qmp);
  int fd = open(t->disk, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate(fd, PLACEHOLDER_BYTES) < 0) goto fail;
  close(fd);
  fd = -1;
  if (t->with_nic) { /* any tap will do: the NIC only has to exist */
    snprintf(tap, sizeof tap, "vtt%.10s", d + 7);
    if (rt_tap_create(tap, NULL, &err) < 0) goto fail;
  }
  vm_config vc;
  rt_vm_config(rt, &vc, t->vcpus, t->memory_mib, t->disk, sock, console);
  vc.tap = t->with_nic ? tap : NULL;
  vc.mac = t->with_nic ? TEMPLATE_MAC : NULL;
  vc.qmp_socket = qmp;
  vm *v = vm_start(&vc, &err);
  int ok = v && vm_wait_ready(v, 60000, &err) == 0;
  if (ok) {
    vm_detach(v); /* the agent sees the host leave and waits for the next */
    usleep(300000);
    char inputs[4400];
    snprintf(inputs, sizeof inputs, "%s/inputs", t->dir);
    ok = vm_save(v, qmp, tmp, &err) == 0 &&
         vs_write_atomic(inputs, t->inputs, strlen(t->inputs), 0600, &err) == 0 &&
         rename(tmp, t->state) == 0;
  }
  if (v) {
    vm_kill(v);
    vm_free(v);
  }
  unlink(sock);
  unlink(qmp);
  if (tap[0]) rt_tap_delete(tap);
  if (!ok) goto fail;
  goto out;
fail:
  if (fd >= 0) close(fd);
  unlink(tmp);
out:
  pthread_mutex_lock(&rt->mu);
  rt->building--;
  pthread_mutex_unlock(&rt->mu);
  free(j);
  return NULL;
}

int rt_template_ready(rt_container *c, rt_template *t) {
  if (access(t->state, R_OK) == 0) return 1;
  rt_runtime *rt = c->rt;
  pthread_mutex_lock(&rt->mu);
  int busy = rt->building > 0 || rt->closing;
  if (!busy) rt->building++;
  pthread_mutex_unlock(&rt->mu);
  if (busy) return 0; /* one build at a time; cold boot meanwhile */
  char tdir[4200];
  snprintf(tdir, sizeof tdir, "%s/templates", rt->root);
  mkdir(tdir, 0700);
  mkdir(t->dir, 0700);
  build_job *j = malloc(sizeof *j);
  j->rt = rt;
  j->t = *t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  if (pthread_create(&th, &at, build_main, j) != 0) {
    free(j);
    pthread_mutex_lock(&rt->mu);
    rt->building--;
    pthread_mutex_unlock(&rt->mu);
  }
  pthread_attr_destroy(&at);
  return 0;
}

const char *rt_template_mac(void) { return TEMPLATE_MAC; }

void rt_templates_prune(rt_runtime *rt) {
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
