/* evqhost — a host that polls for its actors' events instead of being
 * called back: the event queue (actor_evq_*) and its call-and-wait,
 * actor_evq_call, which the Python package's Actor.call() is built on.
 *
 * It spawns one `worker` actor (examples/worker.c), waits for its HELLO,
 * makes sequential calls with actor_evq_call (and times them), starts a
 * stream with actor_call_start and, while its items arrive, makes a waited
 * call: the stream's items stay queued, in order, for the drain after it.
 * Then it stops the actor and drains until its EXIT.
 *
 *   evqhost [path/to/worker] [calls]
 *
 * Everything runs on this thread: actor_evq_call runs the loop itself;
 * after any run (its own or actor_rt_run) the host drains the queue with
 * actor_evq_next. */
#include <libactor/actor.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static actor_rt *rt;
static actor_evq *q;

static void check(int r, const char *what) {
  if (r >= 0)
    return;
  fprintf(stderr, "evqhost: %s: %s (%s) %s\n", what, actor_err_name(r),
          actor_strerror(r), actor_rt_errmsg(rt));
  exit(1);
}

/* Two small msgpack helpers (msgpack-c does the work). */
static size_t pack_ints(char *out, size_t cap, const int64_t *v, int n) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t len;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, (size_t)n);
  for (int i = 0; i < n; i++)
    msgpack_pack_int64(&pk, v[i]);
  len = sb.size <= cap ? sb.size : 0;
  memcpy(out, sb.data, len);
  msgpack_sbuffer_destroy(&sb);
  return len;
}

static int64_t unpack_int(const char *data, size_t len) {
  msgpack_unpacked u;
  size_t off = 0;
  int64_t v = -1;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
       u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
    v = u.data.via.i64;
  msgpack_unpacked_destroy(&u);
  return v;
}

/* What the drains saw. */
static struct {
  int hello, exited, exit_status;
  int64_t items, item_sum, stream_result;
  int stream_done;
  actor_call *stream;
} seen;

static void drain(void) {
  actor_evq_event ev;
  while (actor_evq_next(q, &ev)) {
    switch (ev.kind) {
    case ACTOR_EVQ_HELLO:
      seen.hello = ev.status == 0 ? 1 : -1;
      break;
    case ACTOR_EVQ_OUTPUT:
      printf("  [worker %s] %.*s\n", ev.event == 1 ? "stdout" : "stderr",
             (int)ev.len, ev.bytes);
      break;
    case ACTOR_EVQ_CALL:
      /* Handles are identities only: compared, never dereferenced. */
      if (ev.handle != seen.stream)
        break;
      if (ev.event == ACTOR_EV_ITEM) {
        seen.items++;
        seen.item_sum += unpack_int(ev.bytes, ev.len);
      } else if (ev.event == ACTOR_EV_DONE) {
        seen.stream_done = 1;
        seen.stream_result = ev.status ? -1 : unpack_int(ev.bytes, ev.len);
      }
      break;
    case ACTOR_EVQ_EXIT:
      seen.exited = 1;
      seen.exit_status = ev.exit_status;
      printf("  exit: %s\n", ev.bytes);
      break;
    }
  }
}

/* One waited call; its value, or exit on an error. */
static int64_t call_ints(actor *a, const char *fn, const int64_t *v, int n) {
  char args[64];
  size_t len = pack_ints(args, sizeof(args), v, n);
  actor_evq_event ev;
  actor_call *c = NULL;
  int r;

  r = actor_evq_call(q, a, fn, args, len, 0, 5000, &ev, &c);
  while (r == 0) { /* the queue reached its bound: drain, wait on */
    drain();
    r = actor_evq_wait(q, c, 0, 5000, &ev);
  }
  check(r, fn);
  if (ev.status) {
    fprintf(stderr, "evqhost: %s: %s: %s\n", fn, ev.error_type,
            ev.error_message);
    exit(1);
  }
  return unpack_int(ev.bytes, ev.len);
}

int main(int argc, char **argv) {
  const char *worker = argc > 1 ? argv[1] : "./worker";
  int calls = argc > 2 ? atoi(argv[2]) : 2000;
  int64_t two[2] = {40, 2}, n = 1000;
  char args[32];
  actor_opts *o;
  actor *a;
  uint64_t t0;
  double us;

  check(actor_rt_new(&rt, NULL), "actor_rt_new");
  check(actor_evq_new(&q, rt, 0), "actor_evq_new");
  check(actor_opts_new(&o), "actor_opts_new");
  check(actor_opts_set_backend(o, "subproc"), "backend");
  check(actor_opts_set_program(o, worker), "program");
  check(actor_opts_on_hello(o, actor_evq_hello_cb, q), "on_hello");
  check(actor_opts_on_exit(o, actor_evq_exit_cb, q), "on_exit");
  check(actor_opts_on_output(o, actor_evq_output_cb, q), "on_output");
  check(actor_spawn(rt, o, &a), "actor_spawn");
  actor_opts_free(o);

  while (!seen.hello) {
    check(actor_rt_run(rt, ACTOR_RUN_ONCE), "run");
    drain();
  }
  if (seen.hello < 0) {
    fprintf(stderr, "evqhost: the worker did not start\n");
    return 1;
  }
  printf("worker pid %d said hello\n", actor_pid(a));

  printf("add(40, 2) = %lld\n", (long long)call_ints(a, "add", two, 2));
  t0 = uv_hrtime();
  for (int i = 0; i < calls; i++)
    if (call_ints(a, "add", two, 2) != 42)
      return 1;
  us = (double)(uv_hrtime() - t0) / 1e3 / (calls > 0 ? calls : 1);
  printf("%d sequential actor_evq_call round trips: %.1f us each\n", calls,
         us);

  /* A stream, and a waited call while its items arrive: the items are
   * queued, in order, and the drain after the call finds them. */
  check(actor_call_start(a, "count", args, pack_ints(args, sizeof(args), &n, 1),
                         actor_evq_call_cb, q, &seen.stream),
        "count");
  printf("add(1, 2) = %lld while count(1000) streams\n",
         (long long)call_ints(a, "add", (int64_t[]){1, 2}, 2));
  drain();
  while (!seen.stream_done) {
    check(actor_rt_run(rt, ACTOR_RUN_ONCE), "run");
    drain();
  }
  printf("count(1000): %lld items, sum %lld, returned %lld\n",
         (long long)seen.items, (long long)seen.item_sum,
         (long long)seen.stream_result);

  check(actor_stop(a), "actor_stop");
  drain();
  while (!seen.exited) {
    check(actor_rt_run(rt, ACTOR_RUN_ONCE), "run");
    drain();
  }
  check(actor_rt_shutdown(rt), "actor_rt_shutdown");
  drain(); /* the queue outlives the runtime: its last events */
  actor_evq_free(q);
  return seen.items == n && seen.item_sum == n * (n - 1) / 2 &&
                 seen.stream_result == n && seen.exit_status == 0
             ? 0
             : 1;
}
