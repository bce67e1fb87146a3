/* libbenchentry.so — the C entry a fork server preloads for the benchmark's
 * "fs-c" rows (issue 9: entries are named "libfoo.so:entry").  It serves
 * the same functions as actorbench's C actor.  The entry's signature is
 * the forkserver backend's to define; until it lands this is written as a
 * main() of a C actor: it finds its channel as any child does
 * (actor_child_new) and serves until stopped. */
#include <libactor/actor.h>

int bench_entry(void);

static int fn_noop(actor_ctx *x, const char *a, size_t n, void *arg) {
  static const char nil = (char)0xc0;
  (void)a, (void)n, (void)arg;
  return actor_ctx_return(x, &nil, 1);
}

__attribute__((visibility("default"))) int bench_entry(void) {
  actor_child *c;
  int r;
  if (actor_child_new(&c, NULL))
    return 2;
  actor_child_register(c, "noop", fn_noop, NULL);
  r = actor_child_run(c);
  actor_child_free(c);
  return r;
}
