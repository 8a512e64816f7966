/* Pull: resolve, fetch manifests, download blobs in parallel, record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/images/images_internal.h"
#include "server/registry/registry.h"

void img_pin_add(img_store *s, img_pin *pin, const char *digest) {
  pthread_mutex_lock(&s->mu);
  if (!pin->n && !pin->d) { /* first use: link it */
    pin->next = s->pins;
    s->pins = pin;
  }
  void *nd = realloc(pin->d, (pin->n + 1) * sizeof *pin->d);
  if (nd) {
    pin->d = nd;
    snprintf(pin->d[pin->n++], 72, "%s", digest);
  }
  pthread_mutex_unlock(&s->mu);
}

void img_pin_release(img_store *s, img_pin *pin) {
  pthread_mutex_lock(&s->mu);
  for (img_pin **p = &s->pins; *p; p = &(*p)->next)
    if (*p == pin) {
      *p = pin->next;
      break;
    }
  pthread_mutex_unlock(&s->mu);
  free(pin->d);
  memset(pin, 0, sizeof *pin);
}

int img_pinned(img_store *s, const char *digest) {
  for (img_pin *p = s->pins; p; p = p->next)
    for (size_t i = 0; i < p->n; i++)
      if (!strcmp(p->d[i], digest)) return 1;
  return 0;
}

void img_creds(img_store *s, const char *domain, const char *user, const char *pass, char **u,
               char **p) {
  *u = *p = NULL;
  if (user && *user) {
    *u = strdup(user);
    *p = strdup(pass ? pass : "");
    return;
  }
  char docker[4200];
  const char *dc = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
  if (dc)
    snprintf(docker, sizeof docker, "%s/config.json", dc);
  else
    snprintf(docker, sizeof docker, "%s/.docker/config.json", home ? home : "/root");
  vs_err ignore;
  if (reg_creds_lookup(domain, s->auth_path, docker, u, p, &ignore) != 1) *u = *p = NULL;
}

typedef struct pull {
  img_store *s;
  reg_client *rc;
  const img_pull_opts *o;
  pthread_mutex_t mu;
  img_blob_progress *blobs;
  const oci_descriptor **descs;
  size_t n, next;
  int failed;
  vs_err err;
  img_phase phase;
} pull;

static void report(pull *p) { /* with p->mu held */
  if (!p->o->progress) return;
  img_progress pr = {p->phase, p->blobs, p->n};
  p->o->progress(p->o->progress_arg, &pr);
}

static void on_bytes(void *arg, const char *digest, int64_t done, int64_t total) {
  pull *p = arg;
  pthread_mutex_lock(&p->mu);
  for (size_t i = 0; i < p->n; i++)
    if (!strcmp(p->blobs[i].digest, digest) && p->blobs[i].state != IMG_BLOB_DONE) {
      p->blobs[i].done = done;
      p->blobs[i].total = total;
      p->blobs[i].state = done >= total ? IMG_BLOB_VERIFYING : IMG_BLOB_TRANSFERRING;
    }
  report(p);
  pthread_mutex_unlock(&p->mu);
}

static void *worker(void *arg) {
  pull *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    if (!p->failed && p->o->cancelled && p->o->cancelled(p->o->cancel_arg)) {
      p->failed = 1;
      vs_err_set(&p->err, VS_CANCELLED, "pull cancelled");
    }
    int stop = p->failed || p->next >= p->n;
    size_t i = p->next++;
    pthread_mutex_unlock(&p->mu);
    if (stop) return NULL;
    const oci_descriptor *d = p->descs[i];
    int existed = cs_exists(img_content(p->s), d->digest, NULL);
    vs_err e;
    int rc = reg_fetch_blob(p->rc, d, img_content(p->s), on_bytes, p, &e);
    pthread_mutex_lock(&p->mu);
    if (rc < 0) {
      if (!p->failed) {
        p->failed = 1;
        p->err = e;
      }
    } else {
      p->blobs[i].done = d->size;
      p->blobs[i].state = existed ? IMG_BLOB_EXISTS : IMG_BLOB_DONE;
      report(p);
    }
    pthread_mutex_unlock(&p->mu);
  }
}

/* Fetches a manifest/index, stores it, returns its bytes. */
static int fetch_doc(img_store *s, reg_client *rc, const char *ref, char **body, size_t *len,
                     oci_descriptor *desc, vs_err *err) {
  char *mt;
  if (reg_get_manifest(rc, ref, body, len, &mt, desc->digest, err) < 0) return -1;
  desc->media_type = mt;
  desc->size = (int64_t)*len;
  if (cs_put(img_content(s), *body, *len, desc->digest, NULL, err) < 0) {
    free(*body);
    *body = NULL;
    return -1;
  }
  return 0;
}

/* A pull that began at t0 ends with rc: its duration, and its code if it
 * failed, to the metrics. */
static int pull_done(img_store *s, double t0, int rc, const vs_err *err) {
  if (rc < 0) mt_add(mt_with1(s->m_pull_errors, vs_code_name(err->code)), 1);
  mt_observe(s->m_pull_secs, img_clock() - t0);
  return rc;
}

int img_pull(img_store *s, const char *reference, const img_pull_opts *o, img_info *out,
             vs_err *err) {
  img_pull_opts def;
  memset(&def, 0, sizeof def);
  if (!o) o = &def;
  memset(out, 0, sizeof *out);
  double t0 = img_clock();
  oci_ref ref;
  if (oci_ref_parse(reference, &ref, err) < 0) return pull_done(s, t0, -1, err);
  char *name = oci_ref_string(&ref);
  char *user, *pass;
  img_creds(s, ref.domain, o->username, o->password, &user, &pass);
  reg_options ro = {.insecure = o->insecure, .certs_dir = s->certs_dir, .username = user,
                    .password = pass, .min_speed = o->min_speed,
                    .min_speed_secs = o->min_speed_secs, .cancelled = o->cancelled,
                    .cancel_arg = o->cancel_arg, .received = img_pull_received,
                    .received_arg = s};
  reg_client *rc = reg_client_new(&ref, &ro, err);
  free(user);
  free(pass);
  if (!rc) {
    oci_ref_free(&ref);
    free(name);
    return pull_done(s, t0, -1, err);
  }
  pull p;
  memset(&p, 0, sizeof p);
  p.s = s;
  p.rc = rc;
  p.o = o;
  p.phase = IMG_PHASE_RESOLVING;
  pthread_mutex_init(&p.mu, NULL);
  img_pin pin = {0};
  oci_descriptor top = {0}, md = {0};
  oci_manifest m = {0};
  oci_index idx = {0};
  char *body = NULL;
  size_t len = 0;
  int result = -1;

  pthread_mutex_lock(&p.mu);
  report(&p);
  pthread_mutex_unlock(&p.mu);
  if (fetch_doc(s, rc, ref.digest ? ref.digest : ref.tag, &body, &len, &top, err) < 0) {
    if (err->code == VS_NOT_FOUND) vs_err_wrap(err, "pull %s", name);
    goto out;
  }
  img_pin_add(s, &pin, top.digest);
  oci_kind kind = oci_kind_of(top.media_type);
  if (kind == OCI_KIND_INDEX) {
    if (oci_index_parse(body, len, &idx, err) < 0) goto out;
    oci_platform want;
    img_want(s, &o->platform, &want);
    const oci_descriptor *sel = oci_index_select(&idx, &want, err);
    if (!sel) {
      vs_err_wrap(err, "pull %s", name);
      goto out;
    }
    free(body);
    body = NULL;
    if (fetch_doc(s, rc, sel->digest, &body, &len, &md, err) < 0) goto out;
    img_pin_add(s, &pin, md.digest);
  } else if (kind == OCI_KIND_MANIFEST) {
    md = top;
    md.media_type = strdup(top.media_type);
  } else {
    vs_err_set(err, VS_INVALID_ARGUMENT, "pull %s: unsupported manifest type %s", name, top.media_type);
    goto out;
  }
  if (oci_manifest_parse(body, len, &m, err) < 0) goto out;

  p.n = m.n_layers + 1;
  p.blobs = calloc(p.n, sizeof *p.blobs);
  p.descs = calloc(p.n, sizeof *p.descs);
  if (!p.blobs || !p.descs) {
    vs_err_set(err, VS_RESOURCE_EXHAUSTED, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < p.n; i++) {
    const oci_descriptor *d = i == 0 ? &m.config : &m.layers[i - 1];
    if (i > 0 && oci_layer_compression(d->media_type) == OCI_COMP_UNKNOWN) {
      vs_err_set(err, VS_INVALID_ARGUMENT, "pull %s: layer %s has unsupported media type %s", name,
                 d->digest, d->media_type);
      goto out;
    }
    p.descs[i] = d;
    snprintf(p.blobs[i].digest, sizeof p.blobs[i].digest, "%s", d->digest);
    snprintf(p.blobs[i].media_type, sizeof p.blobs[i].media_type, "%s",
             d->media_type ? d->media_type : "");
    p.blobs[i].total = d->size;
    p.blobs[i].state = IMG_BLOB_WAITING;
    img_pin_add(s, &pin, d->digest);
  }
  pthread_mutex_lock(&p.mu);
  p.phase = IMG_PHASE_DOWNLOADING;
  report(&p);
  pthread_mutex_unlock(&p.mu);

  int nw = o->max_concurrent > 0 ? o->max_concurrent : 4;
  if (nw > 16) nw = 16;
  if ((size_t)nw > p.n) nw = (int)p.n;
  pthread_t th[16];
  int started = 0;
  for (int i = 0; i < nw; i++)
    if (pthread_create(&th[i], NULL, worker, &p) == 0) started++;
  if (!started) worker(&p);
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  if (p.failed) {
    *err = p.err;
    vs_err_wrap(err, "pull %s", name);
    goto out;
  }
  pthread_mutex_lock(&s->mu);
  int rec = img_set_ref(s, name, &top, err);
  pthread_mutex_unlock(&s->mu);
  if (rec < 0) goto out;
  pthread_mutex_lock(&p.mu);
  p.phase = IMG_PHASE_DONE;
  report(&p);
  pthread_mutex_unlock(&p.mu);
  result = img_build_info(s, name, &top, &o->platform, time(NULL), out, err);
out:
  img_pin_release(s, &pin);
  free(body);
  free(p.blobs);
  free(p.descs);
  oci_manifest_free(&m);
  oci_index_free(&idx);
  oci_descriptor_free(&top);
  oci_descriptor_free(&md);
  pthread_mutex_destroy(&p.mu);
  reg_client_free(rc);
  oci_ref_free(&ref);
  free(name);
  return pull_done(s, t0, result, err);
}

int img_login(img_store *s, const char *server, const char *username, const char *password,
              int insecure, vs_err *err) {
  char probe[600];
  snprintf(probe, sizeof probe, "%s/vessel/login", server);
  oci_ref ref;
  if (oci_ref_parse(probe, &ref, err) < 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "invalid registry server \"%s\"", server);
  reg_options ro = {.insecure = insecure, .certs_dir = s->certs_dir, .username = username,
                    .password = password};
  reg_client *rc = reg_client_new(&ref, &ro, err);
  int r = rc ? reg_ping(rc, err) : -1;
  reg_client_free(rc);
  if (r == 0) r = reg_creds_store(s->auth_path, ref.domain, username, password, err);
  oci_ref_free(&ref);
  return r;
}

int img_logout(img_store *s, const char *server, vs_err *err) {
  char probe[600];
  snprintf(probe, sizeof probe, "%s/vessel/logout", server);
  oci_ref ref;
  if (oci_ref_parse(probe, &ref, err) < 0)
    return vs_err_set(err, VS_INVALID_ARGUMENT, "invalid registry server \"%s\"", server);
  int r = reg_creds_store(s->auth_path, ref.domain, NULL, NULL, err);
  oci_ref_free(&ref);
  return r;
}
