#include "util/idmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t idmap__hash(uint32_t k, size_t mask) {
  return (size_t)((k * 2654435761u) ^ (k >> 16)) & mask;
}

void actor__idmap_init(struct idmap *m) { memset(m, 0, sizeof(*m)); }

void actor__idmap_fini(struct idmap *m) {
  free(m->slots);
  memset(m, 0, sizeof(*m));
}

#define IDMAP_MIN 16

/* Rehash into `cap` slots (a power of two that holds every key). */
static int idmap__resize(struct idmap *m, size_t cap) {
  struct idmap_slot *old = m->slots;
  size_t oldcap = m->slots ? m->mask + 1 : 0;
  size_t i, j;

  m->slots = calloc(cap, sizeof(*m->slots));
  if (m->slots == NULL) {
    m->slots = old;
    return -ENOMEM;
  }
  m->mask = cap - 1;
  for (i = 0; i < oldcap; i++) {
    if (old[i].key == 0)
      continue;
    j = idmap__hash(old[i].key, m->mask);
    while (m->slots[j].key != 0)
      j = (j + 1) & m->mask;
    m->slots[j] = old[i];
  }
  free(old);
  return 0;
}

int actor__idmap_put(struct idmap *m, uint32_t key, void *val) {
  size_t i;
  if (m->slots == NULL || (m->count + 1) * 4 > (m->mask + 1) * 3)
    if (idmap__resize(m, m->slots ? (m->mask + 1) * 2 : IDMAP_MIN))
      return -ENOMEM;
  i = idmap__hash(key, m->mask);
  while (m->slots[i].key != 0 && m->slots[i].key != key)
    i = (i + 1) & m->mask;
  if (m->slots[i].key == 0)
    m->count++;
  m->slots[i].key = key;
  m->slots[i].val = val;
  return 0;
}

void *actor__idmap_get(const struct idmap *m, uint32_t key) {
  size_t i;
  if (m->slots == NULL || key == 0)
    return NULL;
  i = idmap__hash(key, m->mask);
  while (m->slots[i].key != 0) {
    if (m->slots[i].key == key)
      return m->slots[i].val;
    i = (i + 1) & m->mask;
  }
  return NULL;
}

void *actor__idmap_del(struct idmap *m, uint32_t key) {
  size_t i, j, h;
  void *val;

  if (m->slots == NULL || key == 0)
    return NULL;
  i = idmap__hash(key, m->mask);
  while (m->slots[i].key != key) {
    if (m->slots[i].key == 0)
      return NULL;
    i = (i + 1) & m->mask;
  }
  val = m->slots[i].val;
  /* Backward-shift: pull later members of the probe run into the hole as
   * long as that does not move them before their home slot. */
  j = i;
  for (;;) {
    j = (j + 1) & m->mask;
    if (m->slots[j].key == 0)
      break;
    h = idmap__hash(m->slots[j].key, m->mask);
    if (((j - h) & m->mask) >= ((j - i) & m->mask)) {
      m->slots[i] = m->slots[j];
      i = j;
    }
  }
  m->slots[i].key = 0;
  m->slots[i].val = NULL;
  m->count--;
  /* Give memory back after a burst: shrink to half once an eighth is in
   * use (growth happens at three quarters, so the two never alternate).
   * A failed shrink keeps the larger table, which is harmless. */
  if (m->mask + 1 > IDMAP_MIN && m->count * 8 < m->mask + 1)
    (void)idmap__resize(m, (m->mask + 1) / 2);
  return val;
}

void *actor__idmap_any(const struct idmap *m) {
  size_t i;
  if (m->count == 0)
    return NULL;
  for (i = 0; i <= m->mask; i++)
    if (m->slots[i].key != 0)
      return m->slots[i].val;
  return NULL;
}
