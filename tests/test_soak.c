/* Soak: many sequential spawn -> call -> stop -> exit cycles leave no trace
 * (open fds, child processes, handles on the loop). */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "support.h"

static void soak_1000_spawn_call_exit_cycles_leave_nothing_behind(
    void **state) {
  enum { CYCLES = 1000 };
  struct ts t;
  struct th_snap base, now;
  struct ts_exit ex;
  struct ts_call r;
  char report[1024];
  int64_t v[2];
  uint64_t t0 = th_now_ms();
  actor *a;
  int i;

  ts_start(&t);
  th_snap_take(&base);
  for (i = 0; i < CYCLES; i++) {
    a = ts_spawn(&t, "actor", &ex);
    v[0] = i;
    v[1] = 1;
    TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
    ts_wait(&t, &r.done, 5000);
    TH_OK(r.status);
    assert_int_equal(r.value, i + 1);
    TH_OK(actor_stop(a));
    ts_wait(&t, &ex.exited, 5000);
    assert_int_equal(ex.status, 0);
    TH_OK(ex.error);
    if ((i + 1) % 250 == 0) {
      th_snap_take(&now);
      if (th_leaks(&base, report, sizeof(report)) != 0)
        fail_msg("after %d cycles: %s", i + 1, report);
      assert_int_equal(now.fds, base.fds);
      assert_int_equal(now.children, base.children);
      assert_int_equal(actor_rt_actor_count(t.rt), 0);
    }
  }
  print_message("  %d cycles in %llu ms (%.2f ms per spawn/call/stop)\n",
                CYCLES, (unsigned long long)(th_now_ms() - t0),
                (double)(th_now_ms() - t0) / CYCLES);
  ts_finish(&t);
}

/* Many actors at once, then the runtime closes them all. */
static void soak_50_concurrent_actors_closed_by_the_runtime(void **state) {
  enum { N = 50 };
  struct ts t;
  static struct ts_exit ex[N];
  static struct ts_call r[N];
  int64_t v[2];
  actor *a[N];
  int i, done;

  ts_start(&t);
  for (i = 0; i < N; i++) {
    a[i] = ts_spawn(&t, "actor", &ex[i]);
    v[0] = i;
    v[1] = i;
    TH_OK(ts_call_ints(a[i], "add", v, 2, &r[i], NULL));
  }
  for (;;) {
    for (done = 0, i = 0; i < N; i++)
      done += r[i].done;
    if (done == N)
      break;
    ts_run_for(&t, 5);
  }
  for (i = 0; i < N; i++)
    assert_int_equal(r[i].value, 2 * i);
  assert_int_equal(actor_rt_actor_count(t.rt), N);
  ts_finish(&t); /* closes the runtime: every actor stopped and reaped */
  for (i = 0; i < N; i++) {
    assert_true(ex[i].exited);
    assert_int_equal(ex[i].status, 0);
  }
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST_T(soak_1000_spawn_call_exit_cycles_leave_nothing_behind, 240),
      TH_TEST(soak_50_concurrent_actors_closed_by_the_runtime),
  };
  return cmocka_run_group_tests_name("soak", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
