/* libbenchentry.so — the C entry a fork server loads for the benchmark's
 * "fs-c" rows: a forkserver C entry is `int f(actor_child *c)` (the
 * runtime built `c` on the forked child's channel; docs/backends.md,
 * "forkserver").  It serves the same no-op as actorbench's C actor.  It
 * does not link libactor: the actor_* functions are the server's own. */
#include <libactor/actor.h>

__attribute__((visibility("default"))) int bench_entry(actor_child *c);

static int fn_noop(actor_ctx *x, const char *a, size_t n, void *arg) {
  static const char nil = (char)0xc0;
  (void)a, (void)n, (void)arg;
  return actor_ctx_return(x, &nil, 1);
}

int bench_entry(actor_child *c) {
  actor_child_register(c, "noop", fn_noop, NULL);
  return actor_child_run(c); /* the child's exit status */
}
