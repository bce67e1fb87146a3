/* Growable byte buffer, reused across messages: the hot paths append frames
 * to one and drain it, so steady-state traffic allocates nothing. */
#ifndef ACTOR_UTIL_BUF_H
#define ACTOR_UTIL_BUF_H

#include <stddef.h>
#include <string.h>

struct abuf {
  char *base;
  size_t len; /* bytes held, starting at base + off */
  size_t off; /* bytes already consumed at the front */
  size_t cap;
};

void actor__buf_init(struct abuf *b);
void actor__buf_fini(struct abuf *b);
/* Make room for `n` more bytes at the end; 0 or -ENOMEM. */
int actor__buf_reserve(struct abuf *b, size_t n);
int actor__buf_append(struct abuf *b, const void *p, size_t n);
/* Drop `n` bytes from the front (cheap; compaction happens lazily). */
void actor__buf_consume(struct abuf *b, size_t n);
/* Shrink back to a modest size after a burst so one huge message does not
 * pin memory forever. */
void actor__buf_trim(struct abuf *b, size_t keep);

static inline char *actor__buf_data(const struct abuf *b) {
  return b->base + b->off;
}
static inline char *actor__buf_tail(const struct abuf *b) {
  return b->base + b->off + b->len;
}
static inline size_t actor__buf_room(const struct abuf *b) {
  return b->cap - b->off - b->len;
}

#endif
