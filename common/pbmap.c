#include "common/pbmap.h"

#include <stdlib.h>
#include <string.h>

/* What every map entry type is. */
typedef struct entry {
  ProtobufCMessage base;
  char *key, *value;
} entry;

void pbmap_add(const ProtobufCMessageDescriptor *d, void ***entries, size_t *n, const char *key,
               const char *value) {
  void **grown = realloc(*entries, (*n + 1) * sizeof *grown);
  entry *e = malloc(sizeof *e);
  if (grown) *entries = grown;
  if (!grown || !e) {
    free(e);
    return;
  }
  protobuf_c_message_init(d, e);
  e->key = strdup(key);
  e->value = strdup(value);
  (*entries)[(*n)++] = e;
}

const char *pbmap_get(void *const *entries, size_t n, const char *key) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(((const entry *)entries[i])->key, key)) return ((const entry *)entries[i])->value;
  return NULL;
}

void pbmap_copy(const ProtobufCMessageDescriptor *d, void ***to, size_t *nt, void *const *from,
                size_t nf, const char *want, const char *skip) {
  size_t wl = want ? strlen(want) : 0, sl = skip ? strlen(skip) : 0;
  for (size_t i = 0; i < nf; i++) {
    const entry *e = from[i];
    if ((want && strncmp(e->key, want, wl) != 0) || (skip && !strncmp(e->key, skip, sl))) continue;
    pbmap_add(d, to, nt, e->key + wl, e->value);
  }
}

int pbmap_match(void *const *sel, size_t ns, void *const *entries, size_t n) {
  for (size_t i = 0; i < ns; i++) {
    const entry *s = sel[i];
    const char *v = pbmap_get(entries, n, s->key);
    if (!v || strcmp(v, s->value) != 0) return 0;
  }
  return 1;
}
