/* subproc backend: calls, streams, cancellation, stop escalation, exit
 * information, spawn options, stdio, orphans and actor trees. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static void subproc_call_returns_value(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t v[2] = {2, 40};
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  assert_int_equal(actor_state(a), ACTOR_STATE_STARTING);
  assert_true(actor_pid(a) > 0);
  assert_string_equal(actor_backend(a), "subproc");
  assert_string_equal(actor_name(a), "actor");
  TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  assert_true(r.has_value);
  assert_int_equal(r.value, 42);
  assert_int_equal(ex.hello, 1);
  assert_int_equal(actor_state(a), ACTOR_STATE_RUNNING);
  assert_int_equal(actor_rt_actor_count(t.rt), 1);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.status, 0);
  assert_int_equal(ex.signal, 0);
  TH_OK(ex.error);
  assert_int_equal(actor_rt_actor_count(t.rt), 0);
  ts_call_fini(&r);
  ts_finish(&t);
}

/* 200 calls in flight at once, with distinct arguments: each reply must
 * reach the caller that asked. */
static void subproc_concurrent_calls_each_reply_finds_its_caller(void **state) {
  enum { N = 200 };
  struct ts t;
  struct ts_exit ex;
  static struct ts_call r[N];
  int64_t v[2];
  actor *a;
  int i, done;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  for (i = 0; i < N; i++) {
    v[0] = i;
    v[1] = 1000 * i;
    /* Mix in slow calls so replies come back out of order. */
    if (i % 10 == 0) {
      int64_t ms = 50 - i / 10;
      TH_OK(ts_call_ints(a, "nap", &ms, 1, &r[i], NULL));
    } else {
      TH_OK(ts_call_ints(a, "add", v, 2, &r[i], NULL));
    }
  }
  for (;;) {
    done = 0;
    for (i = 0; i < N; i++)
      done += r[i].done;
    if (done == N)
      break;
    ts_run_for(&t, 5);
  }
  for (i = 0; i < N; i++) {
    TH_OK(r[i].status);
    assert_int_equal(r[i].value, i % 10 == 0 ? 0 : 1001 * i);
    assert_true(r[i].order_ok);
  }
  ts_finish(&t);
  assert_true(ex.exited);
}

static void subproc_remote_error_carries_type_message_traceback(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "fail", NULL, 0, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_ERR(r.status, ACTOR_EREMOTE);
  assert_string_equal(r.etype, "ValueError");
  assert_string_equal(r.emsg, "bad value: 42");
  assert_non_null(strstr(r.etb, "Traceback (most recent call last)"));
  assert_non_null(strstr(r.etb, "in fn_fail"));
  /* The actor is fine afterwards. */
  {
    int64_t v[2] = {1, 2};
    TH_OK(ts_call_ints(a, "add", v, 2, &r, NULL));
    ts_wait(&t, &r.done, 5000);
    assert_int_equal(r.value, 3);
  }
  ts_finish(&t);
}

/* A function that returns an error code without answering: the runtime
 * answers for it, and a code the parent knows keeps its meaning. */
static void subproc_function_returning_a_code_is_answered(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t which;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  which = 1;
  TH_OK(ts_call_ints(a, "give_up", &which, 1, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_ERR(r.status, ACTOR_ECANCELED);
  which = 2;
  TH_OK(ts_call_ints(a, "give_up", &which, 1, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_ERR(r.status, ACTOR_EREMOTE);
  assert_string_equal(r.etype, "EIO");
  ts_finish(&t);
}

static void subproc_unknown_function_is_enofunc(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "no_such_fn", NULL, 0, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_ERR(r.status, ACTOR_ENOFUNC);
  assert_string_equal(r.etype, "libactor.NoSuchFunction");
  assert_non_null(strstr(r.emsg, "no_such_fn"));
  ts_finish(&t);
}

static void subproc_one_way_stream_10000_items_complete_and_in_order(
    void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t n = 10000, i;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "count", &n, 1, &r, NULL));
  ts_wait(&t, &r.done, 10000);
  TH_OK(r.status);
  assert_int_equal(r.nitems, 10000);
  for (i = 0; i < n; i++)
    if (r.items[i] != i)
      fail_msg("item %lld is %lld", (long long)i, (long long)r.items[i]);
  assert_int_equal(r.ends, 1);
  assert_int_equal(r.value, 10000);
  assert_true(r.order_ok);
  ts_call_fini(&r);
  ts_finish(&t);
}

struct pingpong {
  struct ts_call r;
  actor_call *c;
  int sent;
  int limit;
  int bad;
};

static void pingpong_cb(actor_call *c, int ev, int status, const char *d,
                        size_t n, void *arg) {
  struct pingpong *p = arg;
  char b[16];
  int64_t v;
  ts_call_cb(c, ev, status, d, n, &p->r);
  if (ev != ACTOR_EV_ITEM)
    return;
  v = ts_unpack_int(d, n);
  /* The first item (-1) opens the stream; then each pong is ping + 1. */
  if (p->sent == 0 ? v != -1 : v != p->sent)
    p->bad++;
  if (p->sent < p->limit) {
    p->sent++;
    /* Pings are 0, 1, 2...; the echo answers ping + 1 == p->sent. */
    TH_OK(actor_call_send(c, b, ts_pack_int(b, sizeof(b), p->sent - 1)));
  } else {
    TH_OK(actor_call_end(c));
    TH_ERR(actor_call_send(c, b, ts_pack_int(b, sizeof(b), 1)), ACTOR_ESTATE);
  }
}

static void subproc_two_way_stream_ping_pong(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct pingpong p;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  memset(&p, 0, sizeof(p));
  ts_call_init(&p.r);
  p.limit = 500;
  TH_OK(actor_call_start(a, "echo", NULL, 0, pingpong_cb, &p, &p.c));
  assert_string_equal(actor_call_fn(p.c), "echo");
  assert_ptr_equal(actor_call_actor(p.c), a);
  ts_wait(&t, &p.r.done, 10000);
  TH_OK(p.r.status);
  assert_int_equal(p.bad, 0);
  assert_int_equal(p.r.nitems, 501); /* the opening item + 500 pongs */
  assert_int_equal(p.r.value, 500);  /* the actor saw 500 pings */
  ts_call_fini(&p.r);
  ts_finish(&t);
}

static void subproc_call_cancel_completes_with_ecanceled(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r, r2;
  actor_call *c;
  int64_t ms = 60000;
  uint64_t t0;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "nap", &ms, 1, &r, &c));
  ts_run_for(&t, 50);
  assert_false(r.done);
  t0 = th_now_ms();
  TH_OK(actor_call_cancel(c));
  ts_wait(&t, &r.done, 5000);
  assert_true(th_now_ms() - t0 < 2000);
  TH_ERR(r.status, ACTOR_ECANCELED);
  assert_string_equal(r.emsg, "nap cancelled");
  /* A function that ignores cancellation is answered for by the runtime. */
  TH_OK(ts_call_ints(a, "nap_deaf", &ms, 1, &r2, &c));
  ts_run_for(&t, 20);
  TH_OK(actor_call_cancel(c));
  TH_OK(actor_call_cancel(c)); /* idempotent */
  ts_wait(&t, &r2.done, 5000);
  TH_ERR(r2.status, ACTOR_ECANCELED);
  ts_finish(&t);
}

static void subproc_stop_is_graceful_and_cancels_calls(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t ms = 60000;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "nap", &ms, 1, &r, NULL));
  ts_wait(&t, &ex.hello, 5000);
  TH_OK(actor_stop(a));
  TH_OK(actor_stop(a)); /* idempotent */
  assert_int_equal(actor_state(a), ACTOR_STATE_STOPPING);
  TH_ERR(ts_call_ints(a, "add", NULL, 0, &r, NULL), ACTOR_ESTATE);
  ts_wait(&t, &ex.exited, 5000);
  /* The call was cancelled by the stop, before the exit callback. */
  TH_ERR(r.status, ACTOR_ECANCELED);
  assert_int_equal(ex.status, 0);
  assert_int_equal(ex.signal, 0);
  TH_OK(ex.error);
  assert_string_equal(ex.reason, "exited with status 0");
  ts_finish(&t);
}

/* The actor's loop is blocked (it sleeps inside a function) so it never
 * reads STOP: after the graceful deadline it gets SIGTERM, which kills it. */
static void subproc_stop_escalates_to_sigterm(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t ms = 30000;
  uint64_t t0;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "block", &ms, 1, &r, NULL));
  ts_wait(&t, &ex.hello, 5000);
  ts_run_for(&t, 50);
  t0 = th_now_ms();
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  assert_true(th_now_ms() - t0 >= 900); /* the 1 s graceful deadline */
  assert_int_equal(ex.signal, SIGTERM);
  assert_int_equal(ex.status, -1);
  TH_ERR(ex.error, ACTOR_EKILLED);
  assert_non_null(strstr(ex.reason, "did not stop within 1000 ms"));
  assert_non_null(strstr(ex.reason, "SIGTERM"));
  TH_ERR(r.status, ACTOR_ECLOSED);
  assert_non_null(strstr(r.emsg, "before answering"));
  ts_finish(&t);
}

/* A child that ignores SIGTERM too is killed with SIGKILL. */
static void subproc_cancel_escalates_to_kill(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r, r2;
  int64_t ms = 30000;
  uint64_t t0;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "ignore_term", NULL, 0, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_OK(ts_call_ints(a, "block", &ms, 1, &r2, NULL));
  ts_run_for(&t, 50);
  t0 = th_now_ms();
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 8000);
  assert_true(th_now_ms() - t0 >= 1900); /* graceful + term deadlines */
  assert_int_equal(ex.signal, SIGKILL);
  TH_ERR(ex.error, ACTOR_EKILLED);
  assert_non_null(strstr(ex.reason, "SIGKILL"));
  TH_ERR(r2.status, ACTOR_ECLOSED);
  ts_finish(&t);
}

static void subproc_kill_hard_is_immediate(void **state) {
  struct ts t;
  struct ts_exit ex;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  ts_wait(&t, &ex.hello, 5000);
  TH_OK(actor_kill(a, 1));
  ts_wait(&t, &ex.exited, 2000);
  assert_int_equal(ex.signal, SIGKILL);
  TH_ERR(ex.error, ACTOR_EKILLED);
  ts_finish(&t);
}

static void subproc_exit_code_and_signal_are_reported(void **state) {
  struct ts t;
  struct ts_exit ex1, ex2;
  struct ts_call r1, r2;
  int64_t code = 7;
  actor *a1, *a2;

  ts_start(&t);
  a1 = ts_spawn(&t, "actor", &ex1);
  a2 = ts_spawn(&t, "actor", &ex2);
  TH_OK(ts_call_ints(a1, "exit_now", &code, 1, &r1, NULL));
  TH_OK(ts_call_ints(a2, "crash", NULL, 0, &r2, NULL));
  ts_wait(&t, &ex1.exited, 5000);
  ts_wait(&t, &ex2.exited, 5000);
  assert_int_equal(ex1.status, 7);
  assert_int_equal(ex1.signal, 0);
  TH_ERR(r1.status, ACTOR_ECLOSED);
  assert_non_null(strstr(r1.emsg, "exited with status 7 before answering"));
  assert_int_equal(ex2.signal, SIGABRT);
  TH_ERR(r2.status, ACTOR_ECLOSED);
  assert_non_null(strstr(r2.emsg, "SIGABRT"));
  ts_finish(&t);
}

static void subproc_spawn_options_args_env_cwd_name(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  actor_opts *o;
  actor *a;

  ts_start(&t);
  o = ts_opts("actor");
  memset(&ex, 0, sizeof(ex));
  TH_OK(actor_opts_add_arg(o, "extra-arg"));
  TH_OK(actor_opts_add_env(o, "LIBACTOR_TEST_VAR=hello world"));
  TH_OK(actor_opts_set_cwd(o, "/tmp"));
  TH_OK(actor_opts_set_name(o, "custom-name"));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, &ex));
  TH_ERR(actor_opts_add_env(o, "NOEQUALS"), -EINVAL);
  TH_ERR(actor_opts_set_stdio(o, 0, ACTOR_STDIO_CAPTURE), -EINVAL);
  TH_OK(actor_spawn(t.rt, o, &a));
  actor_opts_free(o);
  assert_string_equal(actor_name(a), "custom-name");

  TH_OK(ts_call_str(a, "getenv", "LIBACTOR_TEST_VAR", &r));
  ts_wait(&t, &r.done, 5000);
  assert_string_equal(r.str, "hello world");
  TH_OK(ts_call_str(a, "getenv", "LIBACTOR_FD", &r));
  ts_wait(&t, &r.done, 5000);
  assert_string_equal(r.str, "<unset>"); /* consumed by the child runtime */
  TH_OK(ts_call_ints(a, "cwd", NULL, 0, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  assert_string_equal(r.str, "/tmp");
  TH_OK(ts_call_ints(a, "argv", NULL, 0, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  assert_string_equal(r.str, "actor|extra-arg|");
  ts_finish(&t);
  assert_true(ex.exited);
}

static void subproc_clear_env_starts_from_nothing(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  actor_opts *o;
  actor *a;

  setenv("LIBACTOR_TEST_PARENT_ONLY", "x", 1);
  ts_start(&t);
  o = ts_opts("actor");
  TH_OK(actor_opts_clear_env(o));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, &ex));
  memset(&ex, 0, sizeof(ex));
  TH_OK(actor_spawn(t.rt, o, &a));
  actor_opts_free(o);
  TH_OK(ts_call_str(a, "getenv", "LIBACTOR_TEST_PARENT_ONLY", &r));
  ts_wait(&t, &r.done, 5000);
  assert_string_equal(r.str, "<unset>");
  ts_finish(&t);
  unsetenv("LIBACTOR_TEST_PARENT_ONLY");
}

struct lines {
  char buf[8][64];
  int fd[8];
  int n;
};

static void on_line(actor *a, int fd, const char *line, size_t len,
                    void *arg) {
  struct lines *l = arg;
  if (l->n < 8) {
    snprintf(l->buf[l->n], sizeof(l->buf[0]), "%.*s", (int)len, line);
    l->fd[l->n] = fd;
  }
  l->n++;
}

static void subproc_stdio_captured_line_by_line(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  struct lines l;
  actor_opts *o;
  actor *a;
  int i, out = 0;

  memset(&l, 0, sizeof(l));
  memset(&ex, 0, sizeof(ex));
  ts_start(&t);
  o = ts_opts("actor");
  TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_set_stdio(o, 2, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_on_output(o, on_line, &l));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, &ex));
  TH_OK(actor_spawn(t.rt, o, &a));
  actor_opts_free(o);
  TH_OK(ts_call_ints(a, "say", NULL, 0, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  /* Every line arrived before the exit callback, the unterminated tail
   * included. */
  assert_int_equal(l.n, 5);
  for (i = 0; i < l.n; i++) {
    if (l.fd[i] == 1) {
      static const char *const want[] = {"line 1", "line 2", "line 3",
                                         "tail without newline"};
      assert_string_equal(l.buf[i], want[out]);
      out++;
    } else {
      assert_int_equal(l.fd[i], 2);
      assert_string_equal(l.buf[i], "an error line");
    }
  }
  assert_int_equal(out, 4);
  ts_finish(&t);
}

static void subproc_stdio_discarded(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  struct lines l;
  actor_opts *o;
  actor *a;

  memset(&l, 0, sizeof(l));
  memset(&ex, 0, sizeof(ex));
  ts_start(&t);
  o = ts_opts("actor");
  TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_DISCARD));
  TH_OK(actor_opts_set_stdio(o, 2, ACTOR_STDIO_DISCARD));
  TH_OK(actor_opts_on_output(o, on_line, &l));
  TH_OK(actor_opts_on_exit(o, ts_on_exit, &ex));
  TH_OK(actor_spawn(t.rt, o, &a));
  actor_opts_free(o);
  TH_OK(ts_call_ints(a, "say", NULL, 0, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  TH_OK(r.status);
  ts_finish(&t);
  assert_int_equal(l.n, 0);
}

/* A child actor spawns a grandchild with the same API and forwards a call
 * to it; stopping the child stops the grandchild too. */
static void subproc_actor_tree_child_spawns_grandchild(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t v[2] = {3, 4};
  int gc_pid;
  uint64_t t0;
  actor *a;

  ts_start(&t);
  a = ts_spawn(&t, "actor", &ex);
  TH_OK(ts_call_ints(a, "tree_add", v, 2, &r, NULL));
  ts_wait(&t, &r.done, 10000);
  TH_OK(r.status);
  assert_int_equal(r.value, 7000);
  TH_OK(ts_call_ints(a, "tree_pid", NULL, 0, &r, NULL));
  ts_wait(&t, &r.done, 5000);
  gc_pid = (int)r.value;
  assert_true(gc_pid > 0);
  assert_int_equal(kill(gc_pid, 0), 0);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.status, 0);
  TH_OK(ex.error);
  /* The grandchild was reaped by the child before it exited. */
  t0 = th_now_ms();
  while (kill(gc_pid, 0) == 0 && th_now_ms() - t0 < 3000)
    usleep(10000);
  assert_int_equal(kill(gc_pid, 0), -1);
  ts_finish(&t);
}

/* ---- orphans ---------------------------------------------------------- */

static int g_report_fd = -1;

static void report_pid(actor_call *c, int ev, int status, const char *d,
                       size_t n, void *arg) {
  int pid;
  if (ev != ACTOR_EV_DONE || status != 0)
    return;
  pid = (int)ts_unpack_int(d, n);
  if (write(g_report_fd, &pid, sizeof(pid)) != sizeof(pid))
    _exit(5);
}

/* An intermediate parent: spawns an actor, reports the actor's pid through
 * the pipe given as argv[1], then waits to be killed. */
static int helper_middle(int argc, char **argv) {
  actor_rt *rt;
  actor_opts *o;
  actor *a;
  g_report_fd = atoi(argv[1]);
  if (actor_rt_new(&rt, NULL))
    return 2;
  actor_opts_new(&o);
  actor_opts_set_program(o, th_self_exe());
  actor_opts_add_arg(o, "--helper");
  actor_opts_add_arg(o, "actor");
  if (actor_spawn(rt, o, &a))
    return 3;
  actor_opts_free(o);
  actor_call_start(a, "pid", NULL, 0, report_pid, NULL, NULL);
  actor_rt_run(rt, ACTOR_RUN_DEFAULT);
  return 0;
}

static void subproc_parent_death_kills_child(void **state) {
  int p[2], child_pid = 0, st;
  char fdarg[16];
  pid_t mid;
  uint64_t t0;

  assert_int_equal(pipe(p), 0);
  mid = fork();
  assert_true(mid >= 0);
  if (mid == 0) {
    close(p[0]);
    snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
    execl(th_self_exe(), th_self_exe(), "--helper", "middle", fdarg,
          (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  assert_int_equal(read(p[0], &child_pid, sizeof(child_pid)),
                   sizeof(child_pid));
  close(p[0]);
  assert_true(child_pid > 0);
  assert_int_equal(kill(child_pid, 0), 0);
  /* The parent of the actor dies without any chance to clean up. */
  assert_int_equal(kill(mid, SIGKILL), 0);
  assert_int_equal(waitpid(mid, &st, 0), mid);
  /* The actor is not our child: it goes to init (or a subreaper), so watch
   * /proc for it to disappear or turn into a zombie. */
  t0 = th_now_ms();
  for (;;) {
    char path[64], buf[256], pstate = '?';
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/stat", child_pid);
    f = fopen(path, "r");
    if (f == NULL)
      break;
    if (fgets(buf, sizeof(buf), f) != NULL) {
      char *rp = strrchr(buf, ')');
      if (rp != NULL && rp[1] == ' ')
        pstate = rp[2];
    }
    fclose(f);
    if (pstate == 'Z' || pstate == 'X')
      break;
    if (th_now_ms() - t0 > 3000)
      fail_msg("orphaned actor %d still running 3 s after its parent died",
               child_pid);
    usleep(10000);
  }
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(subproc_call_returns_value),
      TH_TEST(subproc_concurrent_calls_each_reply_finds_its_caller),
      TH_TEST(subproc_remote_error_carries_type_message_traceback),
      TH_TEST(subproc_unknown_function_is_enofunc),
      TH_TEST(subproc_function_returning_a_code_is_answered),
      TH_TEST(subproc_one_way_stream_10000_items_complete_and_in_order),
      TH_TEST(subproc_two_way_stream_ping_pong),
      TH_TEST(subproc_call_cancel_completes_with_ecanceled),
      TH_TEST(subproc_stop_is_graceful_and_cancels_calls),
      TH_TEST(subproc_stop_escalates_to_sigterm),
      TH_TEST(subproc_cancel_escalates_to_kill),
      TH_TEST(subproc_kill_hard_is_immediate),
      TH_TEST(subproc_exit_code_and_signal_are_reported),
      TH_TEST(subproc_spawn_options_args_env_cwd_name),
      TH_TEST(subproc_clear_env_starts_from_nothing),
      TH_TEST(subproc_stdio_captured_line_by_line),
      TH_TEST(subproc_stdio_discarded),
      TH_TEST(subproc_actor_tree_child_spawns_grandchild),
      TH_TEST(subproc_parent_death_kills_child),
  };
  return cmocka_run_group_tests_name("subproc", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  static struct th_helper helpers[16];
  int i;
  for (i = 0; ts_helpers[i].name != NULL; i++)
    helpers[i] = ts_helpers[i];
  helpers[i].name = "middle";
  helpers[i].fn = helper_middle;
  return th_main(argc, argv, helpers, run_all);
}
