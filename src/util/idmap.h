/* uint32 -> pointer map (open addressing, linear probing, backward-shift
 * deletion: no tombstones, so lookups stay short under churn).  Keys are
 * nonzero.  Used for calls in flight, on both sides of a channel. */
#ifndef ACTOR_UTIL_IDMAP_H
#define ACTOR_UTIL_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
  uint32_t key; /* 0 = empty */
  void *val;
};

struct idmap {
  struct idmap_slot *slots;
  size_t mask; /* capacity - 1, capacity a power of two */
  size_t count;
};

void actor__idmap_init(struct idmap *m);
void actor__idmap_fini(struct idmap *m);
int actor__idmap_put(struct idmap *m, uint32_t key, void *val); /* 0/-ENOMEM */
void *actor__idmap_get(const struct idmap *m, uint32_t key);
void *actor__idmap_del(struct idmap *m, uint32_t key);
/* Any one value, or NULL when empty; for draining the map. */
void *actor__idmap_any(const struct idmap *m);

#endif
