/* soak — many spawn/call/stream/teardown cycles per backend, with
 * accounting of what the process holds.
 *
 *   build/<dir>/tests/soak [--subproc N] [--subint N] [--pydir DIR]
 *                          [--concurrent]
 *        defaults: 10000 subproc cycles, 2000 subint cycles (0 skips one)
 *
 * One cycle: spawn an actor, three calls one after the other (with
 * --concurrent: all three in flight at once) — add(i, 1); count(16): 16
 * streamed items, END (optional: a Python generator sends none), return
 * 16; a two-way echo: 3 items sent, each answered +1 (the C actor
 * first sends -1: its stream is open), then END, returns 3
 * — check every answer, stop the actor and wait for its exit callback
 * (status 0, no error).  The actors are the test suite's: on subproc,
 * this program re-run as `soak --helper actor` (tests/support.c); on
 * subint, tests/py/pyactors.py in an isolated sub-interpreter.  One
 * runtime on one loop serves all cycles, as in a long-lived host.
 *
 * Accounting, per backend: open fds, threads, child processes (zombies
 * too) as the harness's leak check counts them (th_snap_take), live
 * sub-interpreter threads (actor_subint_thread_count()) and RSS,
 * printed before the first cycle, at the start (after one priming cycle,
 * which creates what lives for the whole process: libuv's signal pipe,
 * CPython), after the warm-up (the first 10% of the cycles) and at the
 * end.  It passes when every count at the end equals the start's and the
 * RSS at the end is within 5% of the warm-up's; otherwise the exit status
 * is 1.  Any failed cycle also ends it with status 1. */
#define _GNU_SOURCE
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

#ifndef SOAK_PYDIR
#define SOAK_PYDIR "."
#endif

#define COUNT_N 16
#define ECHO_N 3
#define WAIT_MS 20000

/* ------------------------------------------------------------------------ */
/* Accounting                                                               */
/* ------------------------------------------------------------------------ */

struct acct {
  int fds, threads, subints, children;
  long rss_kib;
};

static void acct_take(struct acct *a) {
  struct th_snap snap;
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f != NULL) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  th_snap_take(&snap);
  a->fds = snap.fds;
  a->threads = snap.threads;
  a->children = snap.children;
  a->subints = actor_subint_thread_count();
  a->rss_kib = resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void acct_print(const char *what, const struct acct *a,
                       const char *note) {
  printf("  %-9s %5d %7d %7d %8d %9ld%s\n", what, a->fds, a->threads,
         a->subints, a->children, a->rss_kib, note);
}

/* ------------------------------------------------------------------------ */
/* msgpack                                                                  */
/* ------------------------------------------------------------------------ */

struct pk {
  msgpack_sbuffer sb;
  msgpack_packer p;
  char why[200];
};

static void pk_init(struct pk *k) {
  msgpack_sbuffer_init(&k->sb);
  msgpack_packer_init(&k->p, &k->sb, msgpack_sbuffer_write);
}

/* ------------------------------------------------------------------------ */
/* The host                                                                 */
/* ------------------------------------------------------------------------ */

struct cycle {
  long i;
  int exited, exit_status, exit_error;
  char reason[256];
  int add_done, count_done, echo_done;
  int64_t add_value, count_value, echo_value;
  int count_items, count_ends, echo_open, echo_items, echo_ends;
  int failed;
  char why[512];
};

static void cycle_fail(struct cycle *cy, const char *what, int status,
                       const char *msg) {
  if (cy->failed++)
    return;
  snprintf(cy->why, sizeof(cy->why), "%s: %s (%s)", what,
           actor_err_name(status), msg);
}

static void on_exit_cb(actor *a, void *arg) {
  struct cycle *cy = arg;
  cy->exited = 1;
  cy->exit_status = actor_exit_status(a);
  cy->exit_error = actor_exit_error(a);
  snprintf(cy->reason, sizeof(cy->reason), "%s", actor_exit_reason(a));
}

static void on_call(actor_call *c, int ev, int status, const char *d,
                    size_t n, void *arg) {
  struct cycle *cy = arg;
  const char *fn = actor_call_fn(c);
  int64_t v = 0;

  if (ev == ACTOR_EV_DONE && status != 0) {
    cycle_fail(cy, fn, status, actor_call_error_message(c));
    v = -1;
  } else if (ev != ACTOR_EV_END) {
    v = ts_unpack_int(d, n);
    if (v == INT64_MIN)
      cycle_fail(cy, fn, 0, "not an int");
  }
  if (strcmp(fn, "add") == 0) {
    cy->add_value = v;
    cy->add_done = 1;
  } else if (strcmp(fn, "count") == 0) {
    if (ev == ACTOR_EV_ITEM && v != cy->count_items)
      cycle_fail(cy, fn, 0, "item out of order");
    cy->count_items += ev == ACTOR_EV_ITEM;
    cy->count_ends += ev == ACTOR_EV_END;
    if (ev == ACTOR_EV_DONE) {
      cy->count_value = v;
      cy->count_done = 1;
    }
  } else if (ev == ACTOR_EV_ITEM && v == -1 && !cy->echo_open &&
             cy->echo_items == 0) {
    cy->echo_open = 1; /* the C actor's "stream open" item */
  } else {
    if (ev == ACTOR_EV_ITEM && v != cy->echo_items + 11)
      cycle_fail(cy, fn, 0, "echoed item wrong or out of order");
    cy->echo_items += ev == ACTOR_EV_ITEM;
    cy->echo_ends += ev == ACTOR_EV_END;
    if (ev == ACTOR_EV_DONE) {
      cy->echo_value = v;
      cy->echo_done = 1;
    }
  }
}

static void on_timeout(uv_timer_t *t) { *(int *)t->data = 1; }

static int calls_over(const struct cycle *cy) {
  return cy->exited || (cy->add_done && cy->count_done && cy->echo_done);
}
static int add_over(const struct cycle *cy) {
  return cy->exited || cy->add_done;
}
static int count_over(const struct cycle *cy) {
  return cy->exited || cy->count_done;
}
static int actor_gone(const struct cycle *cy) { return cy->exited; }

/* Run the loop until pred(cy); 0, or -1 after WAIT_MS. */
static int wait_until(uv_loop_t *loop, int (*pred)(const struct cycle *),
                      const struct cycle *cy) {
  uv_timer_t timer;
  int expired = 0;
  if (pred(cy))
    return 0;
  uv_timer_init(loop, &timer);
  timer.data = &expired;
  uv_timer_start(&timer, on_timeout, WAIT_MS, 0);
  while (!pred(cy) && !expired)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return pred(cy) ? 0 : -1;
}

/* --concurrent: the three calls in flight at once (else one after the
 * other). */
static int concurrent;

static int one_cycle(actor_rt *rt, actor_opts *o, long i, struct cycle *cy) {
  uv_loop_t *loop = actor_rt_loop(rt);
  actor_call *echo;
  struct pk k;
  actor *a;
  int r, j;

  memset(cy, 0, sizeof(*cy));
  cy->i = i;
  actor_opts_on_exit(o, on_exit_cb, cy);
  r = actor_spawn(rt, o, &a);
  if (r) {
    snprintf(cy->why, sizeof(cy->why), "spawn: %s", actor_rt_errmsg(rt));
    return -1;
  }
  pk_init(&k);
  msgpack_pack_array(&k.p, 2);
  msgpack_pack_int64(&k.p, i);
  msgpack_pack_int64(&k.p, 1);
  r = actor_call_start(a, "add", k.sb.data, k.sb.size, on_call, cy, NULL);
  if (r == 0 && !concurrent)
    wait_until(loop, add_over, cy);
  msgpack_sbuffer_clear(&k.sb);
  msgpack_pack_array(&k.p, 1);
  msgpack_pack_int(&k.p, COUNT_N);
  if (r == 0)
    r = actor_call_start(a, "count", k.sb.data, k.sb.size, on_call, cy, NULL);
  if (r == 0 && !concurrent)
    wait_until(loop, count_over, cy);
  if (r == 0 && !cy->exited)
    r = actor_call_start(a, "echo", NULL, 0, on_call, cy, &echo);
  for (j = 0; r == 0 && j < ECHO_N; j++) {
    msgpack_sbuffer_clear(&k.sb);
    msgpack_pack_int(&k.p, 10 + j);
    r = actor_call_send(echo, k.sb.data, k.sb.size);
  }
  if (r == 0)
    r = actor_call_end(echo);
  msgpack_sbuffer_destroy(&k.sb);
  if (r)
    cycle_fail(cy, "call", r, actor_rt_errmsg(rt));

  if (wait_until(loop, calls_over, cy)) {
    snprintf(k.why, sizeof(k.why),
             "no answer in time (add %s, count %s after %d items, echo %s "
             "after %d items)",
             cy->add_done ? "done" : "pending",
             cy->count_done ? "done" : "pending", cy->count_items,
             cy->echo_done ? "done" : "pending", cy->echo_items);
    cycle_fail(cy, "calls", 0, k.why);
  }
  else if (!cy->add_done || !cy->count_done || !cy->echo_done)
    cycle_fail(cy, "calls", 0, "the actor ended before answering");
  if (!cy->exited) {
    actor_stop(a);
    if (wait_until(loop, actor_gone, cy))
      cycle_fail(cy, "stop", 0, "no exit in time");
  }
  if (!cy->failed) {
    if (cy->add_value != i + 1 || cy->count_value != COUNT_N ||
        cy->count_items != COUNT_N || cy->count_ends > 1 ||
        cy->echo_value != ECHO_N || cy->echo_items != ECHO_N)
    {
      snprintf(k.why, sizeof(k.why),
               "add %lld, count %lld with %d items and %d ends, echo %lld "
               "with %d items",
               (long long)cy->add_value, (long long)cy->count_value,
               cy->count_items, cy->count_ends, (long long)cy->echo_value,
               cy->echo_items);
      cycle_fail(cy, "wrong answers", 0, k.why);
    }
    else if (cy->exit_error != 0 || cy->exit_status != 0)
      cycle_fail(cy, "exit", cy->exit_error, cy->reason);
  }
  return cy->failed ? -1 : 0;
}

static int soak_backend(actor_rt *rt, const char *backend, long cycles,
                        const char *pydir) {
  struct acct before, start, warm, end;
  struct cycle cy;
  actor_opts *o;
  long i, warm_at = cycles / 10 > 0 ? cycles / 10 : 1;
  uint64_t t0, t1;
  double drift;
  int counts_ok, rss_ok;
  char note[64];

  actor_opts_new(&o);
  actor_opts_set_backend(o, backend);
  actor_opts_set_name(o, "soak");
  if (strcmp(backend, "subproc") == 0) {
    actor_opts_set_program(o, th_self_exe());
    actor_opts_add_arg(o, "--helper");
    actor_opts_add_arg(o, "actor");
  } else {
    actor_opts_set_entry(o, "pyactors:main");
    actor_opts_add_path(o, pydir);
  }

  printf("soak %s: %ld cycles (spawn, add + count(%d) + two-way echo(%d), "
         "stop)\n",
         backend, cycles, COUNT_N, ECHO_N);
  printf("  %-9s %5s %7s %7s %8s %9s\n", "", "fds", "threads", "subints",
         "children", "rss KiB");
  acct_take(&before);
  acct_print("before", &before, "");
  if (one_cycle(rt, o, -1, &cy)) {
    printf("  priming cycle failed: %s\n", cy.why);
    actor_opts_free(o);
    return 1;
  }
  acct_take(&start);
  acct_print("start", &start, "   (after one priming cycle)");
  t0 = uv_hrtime();
  for (i = 0; i < cycles; i++) {
    if (one_cycle(rt, o, i, &cy)) {
      printf("  cycle %ld failed: %s\n", i, cy.why);
      actor_opts_free(o);
      return 1;
    }
    if (i + 1 == warm_at) {
      acct_take(&warm);
      snprintf(note, sizeof(note), "   (after %ld cycles)", warm_at);
      acct_print("warm-up", &warm, note);
    }
  }
  t1 = uv_hrtime();
  /* Let the last actor's leftovers (a reaped child, a joined thread) go. */
  uv_run(actor_rt_loop(rt), UV_RUN_NOWAIT);
  acct_take(&end);
  acct_print("end", &end, "");
  actor_opts_free(o);

  counts_ok = end.fds == start.fds && end.threads == start.threads &&
              end.subints == start.subints && end.children == start.children;
  drift = 100.0 * (double)(end.rss_kib - warm.rss_kib) / (double)warm.rss_kib;
  rss_ok = drift <= 5.0 && drift >= -5.0;
  printf("  counts end = start: %s; rss end vs warm-up: %+.1f%% (limit 5%%): "
         "%s; %.1f s, %.2f ms per cycle\n",
         counts_ok ? "yes" : "NO", drift, rss_ok ? "ok" : "NOT OK",
         (double)(t1 - t0) / 1e9, (double)(t1 - t0) / 1e6 / (double)cycles);
  return counts_ok && rss_ok ? 0 : 1;
}

static long arg_long(const char *s) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*end != '\0' || v < 0) {
    fprintf(stderr, "soak: not a count: %s\n", s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  long n_subproc = 10000, n_subint = 2000;
  const char *pydir = SOAK_PYDIR, *why;
  uv_loop_t loop;
  actor_rt *rt;
  int i, bad = 0;

  if (argc >= 2 && strcmp(argv[1], "--helper") == 0)
    return th_main(argc, argv, ts_helpers, NULL);
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--subproc") == 0 && i + 1 < argc)
      n_subproc = arg_long(argv[++i]);
    else if (strcmp(argv[i], "--subint") == 0 && i + 1 < argc)
      n_subint = arg_long(argv[++i]);
    else if (strcmp(argv[i], "--pydir") == 0 && i + 1 < argc)
      pydir = argv[++i];
    else if (strcmp(argv[i], "--concurrent") == 0)
      concurrent = 1;
    else {
      fprintf(stderr,
              "usage: soak [--subproc N] [--subint N] [--pydir DIR] "
              "[--concurrent]\n");
      return 2;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  uv_loop_init(&loop);
  if (actor_rt_new(&rt, &loop)) {
    fprintf(stderr, "soak: cannot create the runtime\n");
    return 1;
  }
  if (n_subproc > 0)
    bad |= soak_backend(rt, "subproc", n_subproc, pydir);
  if (n_subint > 0) {
    if (actor_backend_available("subint", &why) != 0)
      printf("soak subint: skipped: %s\n", why ? why : "unavailable");
    else
      bad |= soak_backend(rt, "subint", n_subint, pydir);
  }
  actor_rt_shutdown(rt);
  uv_run(&loop, UV_RUN_NOWAIT);
  if (uv_loop_close(&loop) != 0) {
    printf("soak: handles left open on the loop\n");
    bad = 1;
  }
  printf("soak: %s\n", bad ? "FAILED" : "passed");
  return bad;
}
