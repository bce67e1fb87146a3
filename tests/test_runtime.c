/* The parent-side runtime through the public API: errors and version,
 * loop ownership, close, foreign-loop driving, backends, logging, option
 * and argument validation, actor states. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

/* ------------------------------------------------------------------------ */
/* Errors and version                                                       */
/* ------------------------------------------------------------------------ */

static void errors_have_names_and_messages(void **state) {
  static const struct {
    int code;
    const char *name;
    const char *msg;
  } map[] = {
#define XX(name, val, msg) {val, "ACTOR_" #name, msg},
      ACTOR_ERRNO_MAP(XX)
#undef XX
  };
  static const int unknown[] = {1,       42,      INT_MAX, INT_MIN, -4095,
                                -4096,   -5000,   -29999,  -30000,  -30019,
                                -31000,  -100000};
  size_t n = sizeof(map) / sizeof(map[0]), i, j;
  (void)state;

  assert_true(n >= 18);
  for (i = 0; i < n; i++) {
    const char *name = actor_err_name(map[i].code);
    const char *msg = actor_strerror(map[i].code);
    assert_non_null(name);
    assert_non_null(msg);
    assert_true(map[i].code < ACTOR_ERRNO_MAX);
    assert_true(map[i].code < -4095); /* never collides with -errno */
    assert_int_equal(strncmp(name, "ACTOR_E", 7), 0);
    assert_string_equal(name, map[i].name);
    assert_true(msg[0] != '\0');
    assert_string_equal(msg, map[i].msg);
    for (j = 0; j < i; j++) {
      assert_int_not_equal(map[i].code, map[j].code);
      if (strcmp(name, actor_err_name(map[j].code)) == 0)
        fail_msg("%s named twice", name);
    }
  }
  assert_string_equal(actor_err_name(ACTOR_ECLOSED), "ACTOR_ECLOSED");

  /* -errno passes through. */
  assert_string_equal(actor_err_name(-ENOENT), "ENOENT");
  assert_string_equal(actor_strerror(-ENOENT), strerror(ENOENT));
  assert_string_equal(actor_err_name(-EINVAL), "EINVAL");
  assert_string_equal(actor_strerror(-EINVAL), strerror(EINVAL));
  assert_string_equal(actor_err_name(-ENOMEM), "ENOMEM");

  assert_string_equal(actor_err_name(0), "OK");
  assert_non_null(actor_strerror(0));
  assert_true(actor_strerror(0)[0] != '\0');

  for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
    const char *name = actor_err_name(unknown[i]);
    const char *msg = actor_strerror(unknown[i]);
    if (name == NULL || msg == NULL)
      fail_msg("code %d: NULL name or message", unknown[i]);
    assert_true(name[0] != '\0');
    assert_true(msg[0] != '\0');
  }
}

static void version_is_consistent(void **state) {
  char want[32];
  (void)state;
  assert_int_equal(actor_version(), ACTOR_VERSION_HEX);
  assert_int_equal(ACTOR_VERSION_HEX, (ACTOR_VERSION_MAJOR << 16) |
                                          (ACTOR_VERSION_MINOR << 8) |
                                          ACTOR_VERSION_PATCH);
  snprintf(want, sizeof(want), "%d.%d.%d", ACTOR_VERSION_MAJOR,
           ACTOR_VERSION_MINOR, ACTOR_VERSION_PATCH);
  assert_non_null(actor_version_string());
  assert_string_equal(actor_version_string(), want);
  assert_string_equal(actor_version_string(), "0.1.0");
  assert_int_equal(actor_version(), 0x000100);
}

/* ------------------------------------------------------------------------ */
/* Loops                                                                    */
/* ------------------------------------------------------------------------ */

/* Run an owned runtime's loop until *flag, bounded by `ms`. */
static void run_rt_until(actor_rt *rt, const int *flag, unsigned ms) {
  uint64_t t0 = th_now_ms();
  while (!*flag) {
    if (th_now_ms() - t0 > ms)
      fail_msg("condition not reached within %u ms", ms);
    actor_rt_run(rt, ACTOR_RUN_ONCE);
  }
}

static void on_closed_flag(actor_rt *rt, void *arg) {
  (void)rt;
  (*(int *)arg)++;
}

static void rt_owned_loop_is_closed_by_free(void **state) {
  actor_rt *rt;
  actor_opts *o;
  actor *a;
  struct ts_exit ex;
  struct ts_call r;
  int64_t v[2] = {20, 22};
  int fds0, closed = 0;
  (void)state;

  fds0 = th_count_fds();
  TH_OK(actor_rt_new(&rt, NULL));
  assert_non_null(rt);
  assert_non_null(actor_rt_loop(rt));
  /* The owned loop holds descriptors of its own (epoll, signal pipe). */
  assert_true(th_count_fds() > fds0);
  assert_true(actor_rt_backend_fd(rt) >= 0);

  /* It works as a loop. */
  o = ts_opts("actor");
  memset(&ex, 0, sizeof(ex));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, &ex));
  TH_OK(actor_spawn(rt, o, &a));
  actor_opts_free(o);
  TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
  run_rt_until(rt, &r.done, 5000);
  TH_OK(r.status);
  assert_int_equal(r.value, 42);

  TH_OK(actor_rt_close(rt, on_closed_flag, &closed));
  run_rt_until(rt, &closed, 5000);
  assert_int_equal(closed, 1);
  assert_true(ex.exited);
  /* Nothing is left on the loop: running it returns at once with 0. */
  assert_int_equal(actor_rt_run(rt, ACTOR_RUN_DEFAULT), 0);
  TH_OK(actor_rt_free(rt));
  /* Freeing closed the loop: its descriptors are gone. */
  assert_int_equal(th_count_fds(), fds0);
  TH_OK(actor_rt_free(NULL));
  TH_OK(actor_rt_shutdown(NULL));

  /* The same through actor_rt_shutdown, with an actor still running. */
  TH_OK(actor_rt_new(&rt, NULL));
  o = ts_opts("actor");
  memset(&ex, 0, sizeof(ex));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, &ex));
  TH_OK(actor_spawn(rt, o, &a));
  actor_opts_free(o);
  TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
  run_rt_until(rt, &r.done, 5000);
  TH_OK(actor_rt_shutdown(rt));
  assert_true(ex.exited);
  assert_int_equal(th_count_fds(), fds0);

  /* And a runtime that never spawned. */
  TH_OK(actor_rt_new(&rt, NULL));
  TH_OK(actor_rt_free(rt));
  assert_int_equal(th_count_fds(), fds0);
}

static void host_timer_cb(uv_timer_t *h) { (*(int *)h->data)++; }

static void rt_adopted_loop_is_never_closed(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t v[2] = {1, 2};
  uv_timer_t timer;
  int fired = 0, backend_fd;
  actor *a;
  (void)state;

  ts_start(&t);
  assert_ptr_equal(actor_rt_loop(t.rt), &t.loop);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  assert_int_equal(r.value, 3);
  backend_fd = uv_backend_fd(&t.loop);

  /* Shut the runtime down, but not through ts_finish: the loop must
   * survive it. */
  TH_OK(actor_rt_shutdown(t.rt));
  t.rt = NULL;
  assert_true(ex.exited);
  assert_int_equal(uv_backend_fd(&t.loop), backend_fd);
  assert_true(fcntl(backend_fd, F_GETFD) >= 0);
  assert_int_equal(uv_loop_alive(&t.loop), 0);

  /* The host's loop is still usable. */
  TH_OK(uv_timer_init(&t.loop, &timer));
  timer.data = &fired;
  TH_OK(uv_timer_start(&timer, host_timer_cb, 10, 0));
  assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fired, 1);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&t.loop, UV_RUN_DEFAULT);
  /* ts_finish (runtime already gone) asserts uv_loop_close succeeds. */
  ts_finish(&t);
}

static void rt_free_refuses_while_actors_live(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t v[2] = {40, 2};
  actor *a;
  (void)state;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_ERR(actor_rt_free(t.rt), ACTOR_ESTATE);
  /* Nothing was freed: the runtime and the actor still work. */
  assert_int_equal(actor_rt_actor_count(t.rt), 1);
  assert_int_equal(actor_state(a), ACTOR_STATE_STARTING);
  TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  assert_int_equal(r.value, 42);
  TH_ERR(actor_rt_free(t.rt), ACTOR_ESTATE);

  /* Neither while a close is under way. */
  TH_OK(actor_rt_close(t.rt, NULL, NULL));
  TH_ERR(actor_rt_free(t.rt), ACTOR_ESTATE);
  assert_false(ex.exited);
  ts_finish(&t);
  assert_true(ex.exited);
}

/* ---- close --------------------------------------------------------------- */

static int g_seq;

struct closing {
  struct ts_exit ex[3];
  int exit_seq[3];
  int close_seq;
  int close_calls;
  size_t count_at_close;
  actor_rt *rt;
};

static struct closing *g_closing;

static void closing_exit(actor *a, void *arg) {
  int i = (int)(intptr_t)arg;
  ts_on_exit(a, &g_closing->ex[i]);
  g_closing->exit_seq[i] = ++g_seq;
}

static void closing_cb(actor_rt *rt, void *arg) {
  struct closing *c = arg;
  assert_ptr_equal(rt, c->rt);
  c->close_calls++;
  c->close_seq = ++g_seq;
  c->count_at_close = actor_rt_actor_count(rt);
}

static void rt_close_is_async_idempotent_and_reaps_all(void **state) {
  struct ts t;
  struct closing c;
  actor_opts *o;
  actor *a[3], *late = (actor *)&c;
  int i;
  (void)state;

  memset(&c, 0, sizeof(c));
  g_closing = &c;
  g_seq = 0;
  ts_start(&t);
  c.rt = t.rt;
  for (i = 0; i < 3; i++) {
    o = ts_opts("actor");
    TH_OK(actor_opts_on_exit(o, closing_exit, (void *)(intptr_t)i));
    TH_OK(actor_opts_on_hello(o, ts_on_hello, &c.ex[i]));
    TH_OK(actor_spawn(t.rt, o, &a[i]));
    actor_opts_free(o);
    /* Two of them running, the third still starting when close comes. */
    if (i < 2)
      ts_wait(&t, &c.ex[i].hello, 5000);
  }
  assert_int_equal(actor_rt_actor_count(t.rt), 3);
  assert_int_equal(actor_state(a[0]), ACTOR_STATE_RUNNING);
  assert_int_equal(actor_state(a[2]), ACTOR_STATE_STARTING);

  TH_OK(actor_rt_close(t.rt, closing_cb, &c));
  TH_OK(actor_rt_close(t.rt, closing_cb, &c));
  /* Asynchronous: nothing has completed yet. */
  assert_int_equal(c.close_calls, 0);
  for (i = 0; i < 3; i++) {
    assert_false(c.ex[i].exited);
    assert_int_equal(actor_state(a[i]), ACTOR_STATE_STOPPING);
  }
  /* No spawn after close. */
  o = ts_opts("actor");
  TH_ERR(actor_spawn(t.rt, o, &late), ACTOR_ESTATE);
  assert_null(late);
  assert_true(actor_rt_errmsg(t.rt)[0] != '\0');

  ts_wait(&t, &c.close_calls, 10000);
  ts_run_for(&t, 20);
  assert_int_equal(c.close_calls, 1);
  assert_int_equal(c.count_at_close, 0);
  for (i = 0; i < 3; i++) {
    assert_true(c.ex[i].exited);
    assert_true(c.exit_seq[i] > 0);
    assert_true(c.exit_seq[i] < c.close_seq);
    TH_OK(c.ex[i].error);
  }
  assert_int_equal(actor_rt_actor_count(t.rt), 0);

  /* Still idempotent after completion, and still no spawn. */
  TH_OK(actor_rt_close(t.rt, closing_cb, &c));
  late = (actor *)&c;
  TH_ERR(actor_spawn(t.rt, o, &late), ACTOR_ESTATE);
  assert_null(late);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "closing"));
  actor_opts_free(o);
  ts_run_for(&t, 20);
  assert_int_equal(c.close_calls, 1);
  ts_finish(&t);
  assert_int_equal(c.close_calls, 1);
  g_closing = NULL;
}

/* ---- foreign loop -------------------------------------------------------- */

struct foreign_stats {
  int polls;
  int timeouts_zero;
  int max_timeout;
};

/* One turn of a foreign event loop: wait on the backend fd with the
 * backend timeout, then run the libuv loop without blocking. */
static void foreign_turn(actor_rt *rt, struct foreign_stats *st) {
  struct pollfd p;
  int timeout = actor_rt_backend_timeout(rt);
  int r;

  p.fd = actor_rt_backend_fd(rt);
  p.events = POLLIN;
  p.revents = 0;
  assert_true(p.fd >= 0);
  if (timeout == 0)
    st->timeouts_zero++;
  if (timeout > st->max_timeout)
    st->max_timeout = timeout;
  do
    r = poll(&p, 1, timeout);
  while (r < 0 && errno == EINTR);
  assert_true(r >= 0);
  st->polls++;
  actor_rt_run(rt, ACTOR_RUN_NOWAIT);
}

static void foreign_until(actor_rt *rt, const int *flag, unsigned ms,
                          struct foreign_stats *st) {
  uint64_t t0 = th_now_ms();
  while (!*flag) {
    if (th_now_ms() - t0 > ms)
      fail_msg("condition not reached within %u ms of foreign-loop driving "
               "(%d polls)",
               ms, st->polls);
    foreign_turn(rt, st);
  }
}

/* A call made between two runs of the loop is sent by the next run, which
 * then sleeps until the reply: one uv_run(ONCE) per sequential call.  (The
 * send used to start an idle handle, which libuv takes as "do not block":
 * the run polled with timeout 0, found nothing and returned, so every call
 * cost two runs and a wasted epoll_wait.) */
static void rt_sequential_call_takes_one_blocking_run(void **state) {
  struct ts t;
  struct ts_exit ex;
  int64_t v[2] = {1, 2};
  int i, runs = 0, n = 300;
  actor *a;
  (void)state;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  {
    struct ts_call r;
    TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
    ts_wait(&t, &r.done, 5000);
    TH_OK(r.status);
    ts_call_fini(&r);
  }
  for (i = 0; i < n; i++) {
    struct ts_call r;
    uint64_t t0 = th_now_ms();
    TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
    while (!r.done && th_now_ms() - t0 < 5000) {
      actor_rt_run(t.rt, ACTOR_RUN_ONCE);
      runs++;
    }
    assert_true(r.done);
    assert_int_equal(r.value, 3);
    ts_call_fini(&r);
  }
  printf("  %d sequential calls took %d runs of the loop\n", n, runs);
  /* Exactly one each, with a little room for an unrelated wake-up (a
   * signal's); the old behaviour was two each. */
  assert_true(runs <= n + n / 20);
  ts_finish(&t);
}

static void rt_driven_from_a_foreign_loop(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r, r2;
  struct foreign_stats st;
  int64_t v[2] = {19, 23};
  uint64_t t0;
  actor *a;
  (void)state;

  memset(&st, 0, sizeof(st));
  ts_start(&t);
  assert_int_equal(actor_rt_backend_fd(t.rt), uv_backend_fd(&t.loop));
  a = ts_spawn(&t, "actor", &ex);
  t0 = th_now_ms();
  /* A call made at once, before HELLO: queued until the actor is up.  The
   * timeout is 0 now, so the foreign loop's first wait does not sleep
   * (libuv must still register the new channel with the backend fd). */
  TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
  assert_int_equal(actor_rt_backend_timeout(t.rt), 0);
  foreign_until(t.rt, &r.done, 4000, &st);
  TH_OK(r.status);
  assert_int_equal(r.value, 42);
  assert_int_equal(ex.hello, 1);
  /* Well within the 5 s hello deadline: the foreign loop never slept on
   * work the runtime had. */
  assert_true(th_now_ms() - t0 < 3000);

  /* Let the loop settle: with nothing to do, the foreign loop would sleep
   * (timeout -1 or a timer's). */
  {
    int turns = 0;
    while (actor_rt_backend_timeout(t.rt) == 0 && turns++ < 100)
      actor_rt_run(t.rt, ACTOR_RUN_NOWAIT);
    assert_int_not_equal(actor_rt_backend_timeout(t.rt), 0);
  }
  /* A call on a running actor: its output is pending, so the timeout is 0
   * and a foreign loop does not sleep on it. */
  TH_OK(ts_call_ints(a, "add", v, 2, &r2, NULL));
  assert_int_equal(actor_rt_backend_timeout(t.rt), 0);
  foreign_until(t.rt, &r2.done, 3000, &st);
  TH_OK(r2.status);
  assert_int_equal(r2.value, 42);
  ts_finish(&t);
}

/* ---- backends, logging, settings ---------------------------------------- */

static void rt_backend_lookup(void **state) {
  struct ts t;
  const char *why = "unchanged";
  const char *const *names;
  actor_opts *o;
  actor *a = (actor *)&why;
  int i, found = 0;
  (void)state;

  TH_OK(actor_backend_available("subproc", NULL));
  TH_OK(actor_backend_available("subproc", &why));
  TH_ERR(actor_backend_available("nope", &why), ACTOR_ENOBACKEND);
  assert_non_null(why);
  assert_true(why[0] != '\0');
  TH_ERR(actor_backend_available("nope", NULL), ACTOR_ENOBACKEND);
  TH_ERR(actor_backend_available("", &why), ACTOR_ENOBACKEND);
  TH_ERR(actor_backend_available(NULL, &why), ACTOR_ENOBACKEND);

  names = actor_backend_names();
  assert_non_null(names);
  for (i = 0; names[i] != NULL; i++) {
    assert_true(i < 64);
    if (strcmp(names[i], "subproc") == 0)
      found++;
    /* Every listed backend can be looked up. */
    assert_int_not_equal(actor_backend_available(names[i], NULL),
                         ACTOR_ENOBACKEND);
  }
  assert_int_equal(found, 1);

  ts_start(&t);
  o = ts_opts("actor");
  TH_OK(actor_opts_set_backend(o, "nope"));
  TH_ERR(actor_spawn(t.rt, o, &a), ACTOR_ENOBACKEND);
  assert_null(a);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "nope"));
  assert_int_equal(actor_rt_actor_count(t.rt), 0);
  actor_opts_free(o);
  ts_finish(&t);
}

#define LOG_MAX 64
struct logrec {
  int n;
  int levels[LOG_MAX];
  char msgs[LOG_MAX][256];
  int max_level;
};

static void log_hook(int level, const char *msg, void *arg) {
  struct logrec *l = arg;
  assert_non_null(msg);
  if (level > l->max_level)
    l->max_level = level;
  if (l->n < LOG_MAX) {
    l->levels[l->n] = level;
    snprintf(l->msgs[l->n], sizeof(l->msgs[0]), "%s", msg);
  }
  l->n++;
}

static void spawn_and_stop_named(struct ts *t, const char *name) {
  struct ts_exit ex;
  actor_opts *o = ts_opts("actor");
  actor *a;
  memset(&ex, 0, sizeof(ex));
  TH_OK(actor_opts_set_name(o, name));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, &ex));
  TH_OK(actor_opts_on_hello(o, ts_on_hello, &ex));
  TH_OK(actor_spawn(t->rt, o, &a));
  actor_opts_free(o);
  ts_wait(t, &ex.hello, 5000);
  TH_OK(actor_stop(a));
  ts_wait(t, &ex.exited, 5000);
  TH_OK(ex.error);
}

static void rt_log_hook_receives_library_messages(void **state) {
  struct ts t;
  struct logrec dbg, err;
  int i, named = 0;
  (void)state;

  memset(&dbg, 0, sizeof(dbg));
  memset(&err, 0, sizeof(err));
  dbg.max_level = err.max_level = -1;
  ts_start(&t);
  actor_rt_set_log(t.rt, ACTOR_LOG_DEBUG, log_hook, &dbg);
  spawn_and_stop_named(&t, "log-probe-7f3a");
  assert_true(dbg.n > 0);
  for (i = 0; i < dbg.n && i < LOG_MAX; i++) {
    assert_true(dbg.levels[i] >= ACTOR_LOG_ERROR &&
                dbg.levels[i] <= ACTOR_LOG_DEBUG);
    if (strstr(dbg.msgs[i], "log-probe-7f3a") != NULL)
      named++;
  }
  assert_true(named >= 1);
  assert_int_equal(dbg.max_level, ACTOR_LOG_DEBUG);

  /* At ERROR, a normal life produces nothing above ERROR. */
  actor_rt_set_log(t.rt, ACTOR_LOG_ERROR, log_hook, &err);
  i = dbg.n;
  spawn_and_stop_named(&t, "log-probe-quiet");
  assert_int_equal(dbg.n, i); /* the old hook is gone */
  for (i = 0; i < err.n && i < LOG_MAX; i++)
    if (err.levels[i] > ACTOR_LOG_ERROR)
      fail_msg("level %d message at ERROR: %s", err.levels[i], err.msgs[i]);
  assert_true(err.max_level <= ACTOR_LOG_ERROR);
  ts_finish(&t);
}

static void rt_max_frame_validation(void **state) {
  struct ts t;
  (void)state;
  ts_start(&t);
  TH_ERR(actor_rt_set_max_frame(t.rt, 0), -EINVAL);
  TH_ERR(actor_rt_set_max_frame(t.rt, 1), -EINVAL);
  TH_ERR(actor_rt_set_max_frame(t.rt, 1023), -EINVAL);
  TH_OK(actor_rt_set_max_frame(t.rt, 1024));
  TH_OK(actor_rt_set_max_frame(t.rt, 1u << 20));
  TH_ERR(actor_rt_set_max_frame(t.rt, (size_t)UINT32_MAX + 1), -EINVAL);
  TH_ERR(actor_rt_set_max_frame(t.rt, (size_t)-1), -EINVAL);
  ts_finish(&t);
}

static void opts_validation(void **state) {
  actor_opts *o;
  (void)state;

  actor_opts_free(NULL); /* no-op */
  TH_OK(actor_opts_new(&o));
  assert_non_null(o);
  TH_ERR(actor_opts_set_program(o, NULL), -EINVAL);
  TH_ERR(actor_opts_set_program(o, ""), -EINVAL);
  TH_OK(actor_opts_set_program(o, "/bin/true"));
  TH_ERR(actor_opts_set_backend(o, ""), -EINVAL);
  TH_ERR(actor_opts_set_backend(o, NULL), -EINVAL);
  TH_OK(actor_opts_set_backend(o, "subproc"));
  TH_ERR(actor_opts_set_stdio(o, 0, ACTOR_STDIO_DISCARD), -EINVAL);
  TH_ERR(actor_opts_set_stdio(o, 3, ACTOR_STDIO_DISCARD), -EINVAL);
  TH_ERR(actor_opts_set_stdio(o, -1, ACTOR_STDIO_DISCARD), -EINVAL);
  TH_ERR(actor_opts_set_stdio(o, 1, 3), -EINVAL);
  TH_ERR(actor_opts_set_stdio(o, 2, -1), -EINVAL);
  TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_set_stdio(o, 2, ACTOR_STDIO_INHERIT));
  TH_ERR(actor_opts_add_env(o, "NOEQUALS"), -EINVAL);
  TH_ERR(actor_opts_add_env(o, "=value"), -EINVAL);
  TH_ERR(actor_opts_add_env(o, NULL), -EINVAL);
  TH_OK(actor_opts_add_env(o, "A=b"));
  TH_OK(actor_opts_add_env(o, "EMPTY="));
  TH_ERR(actor_opts_add_arg(o, NULL), -EINVAL);
  TH_OK(actor_opts_add_arg(o, ""));
  TH_ERR(actor_opts_set_name(o, NULL), -EINVAL);
  TH_ERR(actor_opts_set_name(o, ""), -EINVAL);
  TH_ERR(actor_opts_set_cwd(o, NULL), -EINVAL);
  TH_OK(actor_opts_set_deadlines(o, 0, 0, 0, 0));
  actor_opts_free(o);
}

/* ---- calls ---------------------------------------------------------------- */

static int g_refused_cb_runs;

static void refused_cb(actor_call *c, int ev, int status, const char *data,
                       size_t len, void *arg) {
  (void)c;
  (void)ev;
  (void)status;
  (void)data;
  (void)len;
  (void)arg;
  g_refused_cb_runs++;
}

static void call_argument_validation(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t v[2] = {30, 12};
  actor_call *c;
  actor *a;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char *blob;
  static const char two_values[] = {0x01, 0x02};
  static const char truncated[] = {(char)0x92, 0x01}; /* [1, ...] */
  static const char bad_byte[] = {(char)0xc1};
  (void)state;

  g_refused_cb_runs = 0;
  ts_start(&t);
  TH_OK(actor_rt_set_max_frame(t.rt, 4096));
  a = ts_spawn(&t, "actor", &ex);
  ts_wait(&t, &ex.hello, 5000);
  assert_int_equal(actor_state(a), ACTOR_STATE_RUNNING);

  c = (actor_call *)&c;
  TH_ERR(actor_call_start(a, NULL, NULL, 0, refused_cb, NULL, &c), -EINVAL);
  assert_null(c);
  TH_ERR(actor_call_start(a, "", NULL, 0, refused_cb, NULL, &c), -EINVAL);
  assert_null(c);
  assert_true(actor_rt_errmsg(t.rt)[0] != '\0');

  TH_ERR(actor_call_start(a, "add", two_values, sizeof(two_values),
                          refused_cb, NULL, &c),
         -EINVAL);
  assert_null(c);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "msgpack"));
  TH_ERR(actor_call_start(a, "add", truncated, sizeof(truncated), refused_cb,
                          NULL, &c),
         -EINVAL);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "msgpack"));
  TH_ERR(actor_call_start(a, "add", bad_byte, sizeof(bad_byte), refused_cb,
                          NULL, NULL),
         -EINVAL);
  TH_ERR(actor_call_start(a, "add", NULL, 5, refused_cb, NULL, NULL), -EINVAL);

  /* Bigger than the maximum frame (4 KiB): an 8 KiB bin. */
  blob = calloc(1, 8192);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_bin(&pk, 8192);
  msgpack_pack_bin_body(&pk, blob, 8192);
  TH_ERR(actor_call_start(a, "add", sb.data, sb.size, refused_cb, NULL, &c),
         ACTOR_E2BIG);
  assert_null(c);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "maximum"));
  msgpack_sbuffer_destroy(&sb);
  free(blob);

  /* NULL args of length 0 is fine: the actor gets nil. */
  ts_call_init(&r);
  TH_OK(actor_call_start(a, "pid", NULL, 0, ts_call_cb, &r, &c));
  assert_non_null(c);
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  assert_int_equal(r.value, actor_pid(a));

  /* The actor still answers a good call. */
  TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  assert_int_equal(r.value, 42);

  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  TH_OK(ex.error);
  /* No refused call ever called back, not even at the actor's end. */
  assert_int_equal(g_refused_cb_runs, 0);
  ts_finish(&t);
  assert_int_equal(g_refused_cb_runs, 0);
}

/* NULL args with a non-zero length is refused like any bad args; the
 * message must say what was wrong with the call. */
static void call_null_args_with_length_errmsg_names_the_args(void **state) {
  struct ts t;
  struct ts_exit ex;
  actor *a;
  char msg[512];
  int r;
  (void)state;

  g_refused_cb_runs = 0;
  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  ts_wait(&t, &ex.hello, 5000);
  r = actor_call_start(a, "add", NULL, 5, refused_cb, NULL, NULL);
  snprintf(msg, sizeof(msg), "%s", actor_rt_errmsg(t.rt));
  ts_finish(&t);
  TH_ERR(r, -EINVAL);
  assert_int_equal(g_refused_cb_runs, 0);
  /* The function name "add" is fine; blaming it sends the user looking in
   * the wrong place. */
  if (strstr(msg, "function name is required") != NULL ||
      strstr(msg, "args") == NULL)
    fail_msg("errmsg for NULL args of length 5 with fn \"add\": \"%s\"", msg);
}

/* ---- states ---------------------------------------------------------------- */

struct hello_rec {
  struct ts_exit ex;
  int hello_calls;
  int hello_status;
  int state_in_hello;
  int exit_calls;
  void *data_in_exit;
};

static void rec_hello(actor *a, int status, void *arg) {
  struct hello_rec *h = arg;
  h->hello_calls++;
  h->hello_status = status;
  h->state_in_hello = actor_state(a);
  ts_on_hello(a, status, &h->ex);
}

static void rec_exit(actor *a, void *arg) {
  struct hello_rec *h = arg;
  h->exit_calls++;
  h->data_in_exit = actor_get_data(a);
  ts_on_exit(a, &h->ex); /* asserts ACTOR_STATE_EXITED */
}

static void hello_callback_and_states(void **state) {
  enum { N = 3 };
  struct ts t;
  struct hello_rec h[N];
  actor_opts *o;
  actor *a[N];
  int i, tag[N];
  (void)state;

  memset(h, 0, sizeof(h));
  ts_start(&t);
  for (i = 0; i < N; i++) {
    o = ts_opts("actor");
    TH_OK(actor_opts_on_hello(o, rec_hello, &h[i]));
    TH_OK(actor_opts_on_exit(o, rec_exit, &h[i]));
    TH_OK(actor_spawn(t.rt, o, &a[i]));
    actor_opts_free(o);
    assert_int_equal(actor_state(a[i]), ACTOR_STATE_STARTING);
    assert_null(actor_get_data(a[i]));
    actor_set_data(a[i], &tag[i]);
    assert_ptr_equal(actor_get_data(a[i]), &tag[i]);
    if (i > 0)
      assert_true(actor_id(a[i]) > actor_id(a[i - 1]));
  }
  for (i = 0; i < N; i++) {
    ts_wait(&t, &h[i].ex.hello, 5000);
    assert_int_equal(h[i].hello_calls, 1);
    assert_int_equal(h[i].hello_status, 0);
    assert_int_equal(h[i].state_in_hello, ACTOR_STATE_RUNNING);
    assert_int_equal(actor_state(a[i]), ACTOR_STATE_RUNNING);
  }
  for (i = 0; i < N; i++) {
    TH_OK(actor_stop(a[i]));
    assert_int_equal(actor_state(a[i]), ACTOR_STATE_STOPPING);
  }
  for (i = 0; i < N; i++) {
    ts_wait(&t, &h[i].ex.exited, 5000);
    assert_int_equal(h[i].exit_calls, 1);
    assert_ptr_equal(h[i].data_in_exit, &tag[i]);
    assert_int_equal(h[i].ex.status, 0);
    TH_OK(h[i].ex.error);
    assert_int_equal(h[i].hello_calls, 1); /* no second hello at the end */
  }
  ts_finish(&t);
}

/* The core library has no Python: subint is listed, unavailable with the
 * reason, and spawning on it fails with that reason, leaving nothing. */
static void subint_core_build_reports_unavailable_with_reason(void **state) {
  struct ts t;
  const char *why = NULL;
  const char *const *names = actor_backend_names();
  actor_opts *o;
  actor *a = NULL;
  int i, listed = 0;

  for (i = 0; names[i] != NULL; i++)
    listed += strcmp(names[i], "subint") == 0;
  assert_int_equal(listed, 1);
  TH_ERR(actor_backend_available("subint", &why), ACTOR_EUNAVAIL);
  assert_non_null(why);
  assert_non_null(strstr(why, "built without Python"));
  assert_non_null(strstr(why, "libactor-python"));
  assert_non_null(strstr(why, "3.14"));
  ts_start(&t);
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_backend(o, "subint"));
  TH_OK(actor_opts_set_entry(o, "mod:main"));
  TH_ERR(actor_spawn(t.rt, o, &a), ACTOR_EUNAVAIL);
  assert_null(a);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "subint: "));
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "built without Python"));
  assert_int_equal(actor_rt_actor_count(t.rt), 0);
  TH_ERR(actor_subint_fork_probe(&i, NULL, 0), ACTOR_EUNAVAIL);
  assert_int_equal(actor_subint_abandoned_count(), 0);
  actor_opts_free(o);
  ts_finish(&t);
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(errors_have_names_and_messages),
      TH_TEST(version_is_consistent),
      TH_TEST(rt_owned_loop_is_closed_by_free),
      TH_TEST(rt_adopted_loop_is_never_closed),
      TH_TEST(rt_free_refuses_while_actors_live),
      TH_TEST(rt_close_is_async_idempotent_and_reaps_all),
      TH_TEST(rt_driven_from_a_foreign_loop),
      TH_TEST(rt_sequential_call_takes_one_blocking_run),
      TH_TEST(rt_backend_lookup),
      TH_TEST(rt_log_hook_receives_library_messages),
      TH_TEST(rt_max_frame_validation),
      TH_TEST(opts_validation),
      TH_TEST(call_argument_validation),
      TH_TEST(call_null_args_with_length_errmsg_names_the_args),
      TH_TEST(hello_callback_and_states),
      TH_TEST(subint_core_build_reports_unavailable_with_reason),
  };
  return cmocka_run_group_tests_name("runtime", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
