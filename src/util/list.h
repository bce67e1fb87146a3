/* Intrusive doubly linked list (circular, with a sentinel head). */
#ifndef ACTOR_UTIL_LIST_H
#define ACTOR_UTIL_LIST_H

#include <stddef.h>

struct alist {
  struct alist *next, *prev;
};

#define ALIST_ENTRY(ptr, type, field)                                          \
  ((type *)((char *)(ptr) - offsetof(type, field)))

static inline void alist_init(struct alist *h) { h->next = h->prev = h; }
static inline int alist_empty(const struct alist *h) { return h->next == h; }
static inline void alist_insert_tail(struct alist *h, struct alist *n) {
  n->next = h;
  n->prev = h->prev;
  h->prev->next = n;
  h->prev = n;
}
static inline void alist_remove(struct alist *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = n;
}

#endif
