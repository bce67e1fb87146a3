#include "util/buf.h"

#include <errno.h>
#include <stdlib.h>

void actor__buf_init(struct abuf *b) { memset(b, 0, sizeof(*b)); }

void actor__buf_fini(struct abuf *b) {
  free(b->base);
  memset(b, 0, sizeof(*b));
}

int actor__buf_reserve(struct abuf *b, size_t n) {
  size_t need, cap;
  char *p;

  if (b->cap - b->off - b->len >= n)
    return 0;
  /* Compact first: moving the unconsumed tail to the front is cheaper than
   * growing when most of the buffer has already been consumed. */
  if (b->off > 0) {
    if (b->len > 0)
      memmove(b->base, b->base + b->off, b->len);
    b->off = 0;
    if (b->cap - b->len >= n)
      return 0;
  }
  need = b->len + n;
  if (need < n)
    return -ENOMEM;
  cap = b->cap ? b->cap : 4096;
  while (cap < need) {
    if (cap > ((size_t)-1) / 2)
      return -ENOMEM;
    cap *= 2;
  }
  p = realloc(b->base, cap);
  if (p == NULL)
    return -ENOMEM;
  b->base = p;
  b->cap = cap;
  return 0;
}

int actor__buf_append(struct abuf *b, const void *p, size_t n) {
  int r;
  if (n == 0)
    return 0;
  r = actor__buf_reserve(b, n);
  if (r)
    return r;
  memcpy(actor__buf_tail(b), p, n);
  b->len += n;
  return 0;
}

void actor__buf_consume(struct abuf *b, size_t n) {
  if (n >= b->len) {
    b->off = 0;
    b->len = 0;
    return;
  }
  b->off += n;
  b->len -= n;
}

void actor__buf_trim(struct abuf *b, size_t keep) {
  char *p;
  if (b->len != 0 || b->cap <= keep || keep == 0)
    return;
  p = realloc(b->base, keep);
  if (p == NULL)
    return; /* keeping the larger block is harmless */
  b->base = p;
  b->cap = keep;
  b->off = 0;
}
