/* pbmap: map<string, string> fields of protobuf-c messages. protobuf-c
 * gives every map field an entry type of its own (FooRequest__LabelsEntry,
 * Foo__LabelsEntry, ...), all of one shape: these work on any of them,
 * named by the entry type's descriptor.
 *
 *   PBMAP_ADD(&msg, labels, vessel__v1__pod__labels_entry, "k", "v");
 *   PBMAP_COPY(&to, labels, runtime__v1__pod_sandbox__labels_entry,
 *              from->labels, from->n_labels, NULL, NULL);
 */
#ifndef VESSEL_COMMON_PBMAP_H
#define VESSEL_COMMON_PBMAP_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Appends key=value as a new entry (of descriptor entry) to *entries. */
void pbmap_add(const ProtobufCMessageDescriptor *entry, void ***entries, size_t *n,
               const char *key, const char *value);
/* The value of key, or NULL. */
const char *pbmap_get(void *const *entries, size_t n, const char *key);
/* Appends the entries of from: with want, only those whose key starts with
 * it, want cut from their keys; with skip, not those whose key starts with
 * it (NULL: no condition). */
void pbmap_copy(const ProtobufCMessageDescriptor *entry, void ***to, size_t *nt, void *const *from,
                size_t nf, const char *want, const char *skip);
/* 1 if every key=value of sel is in entries. */
int pbmap_match(void *const *sel, size_t ns, void *const *entries, size_t n);

#define PBMAP_ADD(msg, field, type, k, v) \
  pbmap_add(&type##__descriptor, (void ***)&(msg)->field, &(msg)->n_##field, k, v)
#define PBMAP_COPY(msg, field, type, from, nfrom, want, skip)                               \
  pbmap_copy(&type##__descriptor, (void ***)&(msg)->field, &(msg)->n_##field, \
             (void *const *)(from), nfrom, want, skip)
#define PBMAP_GET(msg, field, key) pbmap_get((void *const *)(msg)->field, (msg)->n_##field, key)

#ifdef __cplusplus
}
#endif
#endif
