/* pyhost — a C host running Python actors (examples/pyworker.py) on the
 * subint backend (isolated and legacy sub-interpreters) and on subproc,
 * printing spawn and round-trip times for each.
 *
 *   pyhost [examples-dir]
 *
 * Link with libactor-python (which brings libpython along). */
#include <libactor/actor.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static actor_rt *rt;

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

struct st {
  int hello, exited, done, status;
  long long value, items;
  char err[200];
};

static void on_hello(actor *a, int status, void *arg) {
  ((struct st *)arg)->hello = status == 0 ? 1 : -1;
}
static void on_exit_cb(actor *a, void *arg) {
  struct st *s = arg;
  s->exited = 1;
  printf("    exit: %s\n", actor_exit_reason(a));
}
static void on_call(actor_call *c, int ev, int status, const char *d,
                    size_t n, void *arg) {
  struct st *s = arg;
  msgpack_unpacked u;
  size_t off = 0;
  if (ev == ACTOR_EV_ITEM) {
    s->items++;
    return;
  }
  if (ev != ACTOR_EV_DONE)
    return;
  s->done = 1;
  s->status = status;
  if (status != 0) {
    snprintf(s->err, sizeof(s->err), "%s: %s", actor_call_error_type(c),
             actor_call_error_message(c));
    return;
  }
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, d, n, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    s->value = (long long)u.data.via.u64;
  msgpack_unpacked_destroy(&u);
}

static void wait_for(int *flag) {
  while (!*flag)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
}

static int run_one(const char *label, const char *backend, int mode,
                   const char *dir) {
  static const char args[] = {(char)0x92, 0x02, 0x28}; /* [2, 40] */
  static const char many[] = {(char)0x91, (char)0xcd, 0x27, 0x10}; /* [10000] */
  struct st s;
  actor_opts *o;
  actor *a;
  double t0, t1;
  int i, n = 2000, r;

  memset(&s, 0, sizeof(s));
  actor_opts_new(&o);
  actor_opts_set_backend(o, backend);
  actor_opts_set_entry(o, "pyworker:main");
  actor_opts_add_path(o, dir);
  actor_opts_set_subint_mode(o, mode);
  actor_opts_set_name(o, label);
  actor_opts_on_hello(o, on_hello, &s);
  actor_opts_on_exit(o, on_exit_cb, &s);
  t0 = now_ms();
  r = actor_spawn(rt, o, &a);
  actor_opts_free(o);
  if (r) {
    printf("  %-16s spawn failed: %s — %s\n", label, actor_err_name(r),
           actor_rt_errmsg(rt));
    return 1;
  }
  wait_for(&s.hello);
  t1 = now_ms();
  printf("  %-16s spawn -> hello %7.2f ms\n", label, t1 - t0);

  s.done = 0;
  actor_call_start(a, "add", args, sizeof(args), on_call, &s, NULL);
  wait_for(&s.done);
  printf("  %-16s add(2, 40) = %lld\n", label, s.value);
  t0 = now_ms();
  for (i = 0; i < n; i++) {
    s.done = 0;
    actor_call_start(a, "add", args, sizeof(args), on_call, &s, NULL);
    wait_for(&s.done);
  }
  printf("  %-16s call round trip %7.1f us (mean of %d)\n", label,
         (now_ms() - t0) * 1000.0 / n, n);
  s.done = 0;
  s.items = 0;
  t0 = now_ms();
  actor_call_start(a, "squares", many, sizeof(many), on_call, &s, NULL);
  wait_for(&s.done);
  printf("  %-16s stream of %lld items: %.2f M items/s\n", label, s.items,
         (double)s.items / ((now_ms() - t0) * 1000.0));
  t0 = now_ms();
  actor_stop(a);
  wait_for(&s.exited);
  printf("  %-16s stop -> exit %7.2f ms\n", label, now_ms() - t0);
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  const char *why = NULL;
  int bad = 0;

  if (actor_backend_available("subint", &why) != 0) {
    fprintf(stderr, "pyhost: subint unavailable: %s\n", why);
    return 1;
  }
  if (actor_rt_new(&rt, NULL))
    return 1;
  printf("libactor %s — Python actors from %s/pyworker.py\n\n",
         actor_version_string(), dir);
  bad |= run_one("subint/isolated", "subint", ACTOR_SUBINT_ISOLATED, dir);
  bad |= run_one("subint/legacy", "subint", ACTOR_SUBINT_LEGACY, dir);
  bad |= run_one("subproc", "subproc", 0, dir);
  actor_rt_shutdown(rt);
  return bad;
}
