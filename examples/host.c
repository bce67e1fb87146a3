/* host — the demo: a C program that supervises a few actors.
 *
 * It spawns three `worker` actors (examples/worker.c) as child processes,
 * calls them, consumes a one-way stream, runs a two-way ping-pong stream,
 * cancels a call, stops one actor in the middle of a call, and closes the
 * runtime — printing what happened and how long each step took.
 *
 *   host [path/to/worker]
 *
 * The library's API is asynchronous (callbacks on a libuv loop).  To keep
 * the story readable this host runs the loop until each step's callback has
 * fired (wait_until), which is a fine way to write a sequential program on
 * top of it. */
#include <libactor/actor.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static actor_rt *rt;

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

static void wait_until(const int *flag) {
  while (!*flag)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
}

static void check(int r, const char *what) {
  if (r == 0)
    return;
  fprintf(stderr, "host: %s: %s (%s) %s\n", what, actor_err_name(r),
          actor_strerror(r), actor_rt_errmsg(rt));
  exit(1);
}

/* msgpack helpers: the library carries msgpack bytes; msgpack-c makes them. */
struct packed {
  msgpack_sbuffer sb;
  msgpack_packer pk;
};
static void packed_init(struct packed *p) {
  msgpack_sbuffer_init(&p->sb);
  msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}
static int64_t unpack_int(const char *data, size_t len) {
  msgpack_unpacked u;
  size_t off = 0;
  int64_t v = -1;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS) {
    if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      v = (int64_t)u.data.via.u64;
    else if (u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
      v = u.data.via.i64;
  }
  msgpack_unpacked_destroy(&u);
  return v;
}

/* ---- per-call bookkeeping ---------------------------------------------- */

struct result {
  int done;
  int status;
  int64_t value;
  int64_t items, item_sum, ends;
  char error[256];
};

static void on_call(actor_call *c, int ev, int status, const char *data,
                    size_t len, void *arg) {
  struct result *r = arg;
  if (ev == ACTOR_EV_ITEM) {
    r->items++;
    r->item_sum += unpack_int(data, len);
    return;
  }
  if (ev == ACTOR_EV_END) {
    r->ends++;
    return;
  }
  r->done = 1;
  r->status = status;
  if (status == 0)
    r->value = unpack_int(data, len);
  else
    snprintf(r->error, sizeof(r->error), "%s: %s", actor_call_error_type(c),
             actor_call_error_message(c));
}

struct who {
  const char *label;
  int hello, exited;
  double t_spawn, t_hello;
};

static void on_hello(actor *a, int status, void *arg) {
  struct who *w = arg;
  w->hello = status == 0 ? 1 : -1;
  w->t_hello = now_ms();
}

static void on_exit_cb(actor *a, void *arg) {
  struct who *w = arg;
  w->exited = 1;
  printf("  %-6s pid %-7d %s (error: %s)\n", w->label, actor_pid(a),
         actor_exit_reason(a), actor_err_name(actor_exit_error(a)));
}

static actor *spawn(const char *program, struct who *w) {
  actor_opts *o;
  actor *a;
  check(actor_opts_new(&o), "opts");
  actor_opts_set_program(o, program);
  actor_opts_set_name(o, w->label);
  actor_opts_on_hello(o, on_hello, w);
  actor_opts_on_exit(o, on_exit_cb, w);
  actor_opts_set_deadlines(o, 5000, 1000, 1000, 1000);
  w->t_spawn = now_ms();
  check(actor_spawn(rt, o, &a), "spawn");
  actor_opts_free(o);
  return a;
}

int main(int argc, char **argv) {
  const char *worker = argc > 1 ? argv[1] : "./worker";
  struct who w[3] = {{.label = "alpha"}, {.label = "beta"}, {.label = "gamma"}};
  actor *a[3];
  struct packed p;
  struct result r;
  actor_call *call;
  double t0, t1;
  int i, n;

  printf("libactor %s demo — worker: %s\n\n", actor_version_string(), worker);
  check(actor_rt_new(&rt, NULL), "runtime");

  /* 1. Spawn. */
  printf("1. spawn three subproc actors\n");
  for (i = 0; i < 3; i++)
    a[i] = spawn(worker, &w[i]);
  for (i = 0; i < 3; i++) {
    wait_until(&w[i].hello);
    if (w[i].hello < 0) {
      fprintf(stderr, "host: %s never said hello\n", w[i].label);
      return 1;
    }
    printf("  %-6s pid %-7d hello after %.2f ms\n", w[i].label,
           actor_pid(a[i]), w[i].t_hello - w[i].t_spawn);
  }

  /* 2. A call, then many. */
  printf("\n2. calls\n");
  packed_init(&p);
  msgpack_pack_array(&p.pk, 2);
  msgpack_pack_int(&p.pk, 2);
  msgpack_pack_int(&p.pk, 40);
  memset(&r, 0, sizeof(r));
  t0 = now_ms();
  check(actor_call_start(a[0], "add", p.sb.data, p.sb.size, on_call, &r, NULL),
        "call add");
  wait_until(&r.done);
  printf("  alpha.add(2, 40) = %lld in %.3f ms\n", (long long)r.value,
         now_ms() - t0);
  n = 2000;
  t0 = now_ms();
  for (i = 0; i < n; i++) {
    memset(&r, 0, sizeof(r));
    check(actor_call_start(a[0], "add", p.sb.data, p.sb.size, on_call, &r,
                           NULL),
          "call add");
    wait_until(&r.done);
  }
  t1 = now_ms();
  printf("  %d sequential calls: %.1f us per round trip\n", n,
         (t1 - t0) * 1000.0 / n);
  msgpack_sbuffer_destroy(&p.sb);

  /* 3. A one-way stream. */
  printf("\n3. one-way stream\n");
  packed_init(&p);
  msgpack_pack_array(&p.pk, 1);
  msgpack_pack_int(&p.pk, 1000000);
  memset(&r, 0, sizeof(r));
  t0 = now_ms();
  check(actor_call_start(a[1], "count", p.sb.data, p.sb.size, on_call, &r,
                         NULL),
        "call count");
  wait_until(&r.done);
  t1 = now_ms();
  printf("  beta.count(1000000): %lld items (sum %lld), returned %lld, "
         "%.0f ms, %.2f M items/s\n",
         (long long)r.items, (long long)r.item_sum, (long long)r.value,
         t1 - t0, (double)r.items / ((t1 - t0) * 1000.0));
  msgpack_sbuffer_destroy(&p.sb);

  /* 4. A two-way stream: ping-pong. */
  printf("\n4. two-way stream (ping-pong)\n");
  memset(&r, 0, sizeof(r));
  check(actor_call_start(a[2], "echo", NULL, 0, on_call, &r, &call), "echo");
  n = 1000;
  t0 = now_ms();
  for (i = 0; i < n; i++) {
    int64_t before = r.items;
    char item[16];
    size_t len;
    packed_init(&p);
    msgpack_pack_int(&p.pk, i);
    len = p.sb.size;
    memcpy(item, p.sb.data, len);
    msgpack_sbuffer_destroy(&p.sb);
    check(actor_call_send(call, item, len), "send");
    while (r.items == before && !r.done)
      actor_rt_run(rt, ACTOR_RUN_ONCE);
  }
  check(actor_call_end(call), "end");
  wait_until(&r.done);
  t1 = now_ms();
  printf("  gamma.echo: %d pings, %lld pongs (sum %lld), returned %lld, "
         "%.1f us per exchange\n",
         n, (long long)r.items, (long long)r.item_sum, (long long)r.value,
         (t1 - t0) * 1000.0 / n);

  /* 5. Cancel a call. */
  printf("\n5. cancel a call\n");
  packed_init(&p);
  msgpack_pack_array(&p.pk, 1);
  msgpack_pack_int(&p.pk, 60000);
  memset(&r, 0, sizeof(r));
  check(actor_call_start(a[0], "nap", p.sb.data, p.sb.size, on_call, &r,
                         &call),
        "nap");
  t0 = now_ms();
  check(actor_call_cancel(call), "cancel");
  wait_until(&r.done);
  printf("  alpha.nap(60 s) cancelled: %s (%s) after %.2f ms\n",
         actor_err_name(r.status), r.error, now_ms() - t0);

  /* 6. Stop an actor in the middle of a call. */
  printf("\n6. stop an actor while a call is running\n");
  memset(&r, 0, sizeof(r));
  check(actor_call_start(a[1], "nap", p.sb.data, p.sb.size, on_call, &r,
                         NULL),
        "nap");
  msgpack_sbuffer_destroy(&p.sb);
  t0 = now_ms();
  check(actor_stop(a[1]), "stop");
  wait_until(&r.done);
  printf("  beta's call ended: %s (%s) after %.2f ms\n",
         actor_err_name(r.status), r.error, now_ms() - t0);
  wait_until(&w[1].exited);
  printf("  beta stopped after %.2f ms\n", now_ms() - t0);

  /* 7. Close everything. */
  printf("\n7. close the runtime (stops the others)\n");
  t0 = now_ms();
  check(actor_rt_shutdown(rt), "shutdown");
  printf("  closed in %.2f ms; every actor reaped\n", now_ms() - t0);
  return 0;
}
