/* The C child runtime (src/child/child.c): stopping, and freeing.
 *
 * Two kinds of test: through a real parent (the "child" helper, this
 * binary re-run as an actor), and in-process, where the test plays the
 * parent on a socketpair and drives the child's loop itself — which lets
 * it send what a libactor parent never would and count the child's
 * writes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/codec.h"
#include "support.h"
#include "util/buf.h"

/* ======================================================================== */
/* The "child" helper                                                       */
/* ======================================================================== */

static int64_t g_seq;

static int ret_int(actor_ctx *x, int64_t v) {
  char b[16];
  return actor_ctx_return(x, b, ts_pack_int(b, sizeof(b), v));
}

/* hold(): answers nothing; its cancel callback answers every held call
 * (the others included) with their index. */
#define HELD_MAX 64
static actor_ctx *g_held[HELD_MAX];
static int g_nheld;

static void hold_cancel(actor_ctx *x, void *arg) {
  int i;
  for (i = 0; i < g_nheld; i++)
    if (g_held[i] != NULL) {
      actor_ctx *y = g_held[i];
      g_held[i] = NULL;
      ret_int(y, i);
    }
}

static int fn_hold(actor_ctx *x, const char *a, size_t n, void *arg) {
  if (g_nheld == HELD_MAX)
    return actor_ctx_error(x, "Full", "too many held calls", "");
  g_held[g_nheld++] = x;
  actor_ctx_on_cancel(x, hold_cancel, NULL);
  return 0;
}

/* seq(): its place among the calls dispatched. */
static int fn_seq(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ret_int(x, ++g_seq);
}

static void child_register_all(actor_child *c) {
  actor_child_register(c, "hold", fn_hold, NULL);
  actor_child_register(c, "seq", fn_seq, NULL);
}

static int helper_child(int argc, char **argv) {
  actor_child *c;
  int r = actor_child_new(&c, NULL);
  if (r) {
    fprintf(stderr, "child helper: %s\n", actor_strerror(r));
    return 2;
  }
  child_register_all(c);
  r = actor_child_run(c);
  actor_child_free(c);
  return r;
}

/* ======================================================================== */
/* Through a real parent                                                    */
/* ======================================================================== */

/* Stop cancels every call; the first cancel callback answers all the
 * others, which frees their contexts while the stop still walks them. */
static void child_stop_survives_a_cancel_callback_that_answers_other_calls(
    void **state) {
  enum { N = 20 };
  struct ts t;
  struct ts_exit ex;
  static struct ts_call r[N];
  actor *a;
  int i;

  ts_start(&t);
  a = ts_spawn(&t, "child", &ex);
  for (i = 0; i < N; i++)
    TH_OK(ts_call_ints(a, "hold", NULL, 0, &r[i], NULL));
  ts_run_for(&t, 100);
  for (i = 0; i < N; i++)
    assert_false(r[i].done);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  /* A use-after-free in the stop shows as a crash here (or an ASan
   * report and a non-zero status). */
  assert_int_equal(ex.signal, 0);
  assert_int_equal(ex.status, 0);
  for (i = 0; i < N; i++) {
    assert_true(r[i].done);
    TH_OK(r[i].status);
    assert_int_equal(r[i].value, i);
    assert_true(r[i].order_ok);
  }
  ts_finish(&t);
}

/* ======================================================================== */
/* In-process: the test plays the parent                                    */
/* ======================================================================== */

struct ip {
  uv_loop_t loop;
  actor_child *c;
  int peer;
  struct abuf in;
  msgpack_zone zone;
  int packets; /* reads that returned data (SOCK_SEQPACKET: child writes) */
};

static void ip_open(struct ip *p, int type, const char *max_frame) {
  int sv[2];
  char fd[16];

  memset(p, 0, sizeof(*p));
  assert_int_equal(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
  snprintf(fd, sizeof(fd), "%d", sv[1]);
  setenv("LIBACTOR_FD", fd, 1);
  setenv("LIBACTOR_NAME", "inproc", 1);
  if (max_frame != NULL)
    setenv("LIBACTOR_MAX_FRAME", max_frame, 1);
  TH_OK(uv_loop_init(&p->loop));
  TH_OK(actor_child_new(&p->c, &p->loop));
  assert_null(getenv("LIBACTOR_FD"));
  p->peer = sv[0];
  assert_int_equal(fcntl(p->peer, F_SETFL, O_NONBLOCK), 0);
  actor__buf_init(&p->in);
  assert_true(msgpack_zone_init(&p->zone, 1024));
}

/* Free the child, let its closes complete, and check the loop is clean. */
static void ip_close(struct ip *p) {
  if (p->c != NULL)
    actor_child_free(p->c);
  uv_run(&p->loop, UV_RUN_NOWAIT);
  TH_OK(uv_loop_close(&p->loop));
  close(p->peer);
  actor__buf_fini(&p->in);
  msgpack_zone_destroy(&p->zone);
}

static void ip_send_raw(struct ip *p, const void *data, size_t len) {
  assert_int_equal(send(p->peer, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void ip_encode(struct abuf *b, int kind, uint32_t id, const char *fn,
                      const void *payload, size_t len) {
  struct actor__msg m;
  memset(&m, 0, sizeof(m));
  m.kind = kind;
  m.id = id;
  if (fn != NULL) {
    m.fn.p = fn;
    m.fn.n = strlen(fn);
  }
  m.payload = payload;
  m.payload_len = len;
  TH_OK(actor__msg_encode(b, &m, ACTOR__DEFAULT_MAX_FRAME));
}

static void ip_send(struct ip *p, int kind, uint32_t id, const char *fn,
                    const void *payload, size_t len) {
  struct abuf b;
  actor__buf_init(&b);
  ip_encode(&b, kind, id, fn, payload, len);
  ip_send_raw(p, actor__buf_data(&b), b.len);
  actor__buf_fini(&b);
}

/* Read what the child wrote (non-blocking); 0 at EOF, else 1. */
static int ip_read(struct ip *p) {
  for (;;) {
    ssize_t n;
    TH_OK(actor__buf_reserve(&p->in, 65536));
    n = recv(p->peer, actor__buf_tail(&p->in), actor__buf_room(&p->in), 0);
    if (n == 0)
      return 0;
    if (n < 0) {
      assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
      return 1;
    }
    p->packets++;
    p->in.len += (size_t)n;
  }
}

/* The next whole frame from the child, decoded; 0 if none yet. */
static int ip_next(struct ip *p, struct actor__msg *m) {
  const unsigned char *h;
  uint32_t n;
  if (p->in.len < 4)
    return 0;
  h = (const unsigned char *)actor__buf_data(&p->in);
  n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) |
      h[3];
  if (p->in.len < 4 + (size_t)n)
    return 0;
  msgpack_zone_clear(&p->zone);
  TH_OK(actor__msg_decode(m, (const char *)h + 4, n, &p->zone));
  /* Fields point into p->in, which stays until the next read. */
  actor__buf_consume(&p->in, 4 + (size_t)n);
  return 1;
}

/* Run the child's loop without blocking until `pred` holds (2 s max). */
static void ip_run_until(struct ip *p, int (*pred)(struct ip *p)) {
  uint64_t t0 = th_now_ms();
  while (!pred(p)) {
    uv_run(&p->loop, UV_RUN_NOWAIT);
    if (th_now_ms() - t0 > 2000)
      fail_msg("condition not reached within 2 s");
    usleep(1000);
  }
}

static void ip_expect_hello(struct ip *p) {
  struct actor__msg m;
  TH_OK(actor_child_start(p->c));
  uv_run(&p->loop, UV_RUN_NOWAIT);
  ip_read(p);
  assert_true(ip_next(p, &m));
  assert_int_equal(m.kind, ACTOR__MSG_HELLO);
}

/* ---- freeing ------------------------------------------------------------ */

static int g_timer_runs;
static void count_timer(uv_timer_t *h) { g_timer_runs++; }

/* An adopted loop is the program's: actor_child_free must not run it (a
 * due timer of the program would fire inside it).  Its memory goes when
 * the owner next runs the loop, and the loop then closes cleanly. */
static void child_free_does_not_run_an_adopted_loop(void **state) {
  struct ip p;
  uv_timer_t t;

  ip_open(&p, SOCK_STREAM, NULL);
  ip_expect_hello(&p);
  TH_OK(uv_timer_init(&p.loop, &t));
  g_timer_runs = 0;
  TH_OK(uv_timer_start(&t, count_timer, 0, 0));
  actor_child_free(p.c);
  p.c = NULL;
  assert_int_equal(g_timer_runs, 0);
  /* The channel is closed at once: the parent sees EOF. */
  assert_int_equal(ip_read(&p), 0);
  /* The owner runs its loop: the timer fires, the child's closes end. */
  uv_run(&p.loop, UV_RUN_NOWAIT);
  assert_int_equal(g_timer_runs, 1);
  uv_close((uv_handle_t *)&t, NULL);
  ip_close(&p);
}

static int held_one(struct ip *p) { return g_nheld == 1; }

/* The same with a call in progress and input not read yet. */
static void child_free_with_calls_in_progress_on_an_adopted_loop(
    void **state) {
  struct ip p;
  char nil = (char)0xc0;

  ip_open(&p, SOCK_STREAM, NULL);
  child_register_all(p.c);
  ip_expect_hello(&p);
  g_nheld = 0;
  ip_send(&p, ACTOR__MSG_CALL, 1, "hold", &nil, 1);
  ip_run_until(&p, held_one);
  ip_send(&p, ACTOR__MSG_CALL, 2, "seq", &nil, 1);
  actor_child_free(p.c);
  p.c = NULL;
  g_nheld = 0; /* the held context went with the child */
  ip_close(&p);
}

static int g_closed;
static void count_close(uv_handle_t *h) { g_closed++; }

/* An owned loop is freed only once it has closed: handles the program
 * left open on it are closed first (a pending close callback runs), and
 * nothing is left pointing at freed memory. */
static void child_free_closes_what_is_left_on_its_owned_loop(void **state) {
  uv_timer_t stray, armed;
  uv_idle_t closing;
  actor_child *c;
  uv_loop_t *loop;
  int sv[2];
  char fd[16];

  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  snprintf(fd, sizeof(fd), "%d", sv[1]);
  setenv("LIBACTOR_FD", fd, 1);
  TH_OK(actor_child_new(&c, NULL));
  loop = actor_child_loop(c);
  TH_OK(uv_timer_init(loop, &stray)); /* never started, never closed */
  TH_OK(uv_timer_init(loop, &armed));
  TH_OK(uv_timer_start(&armed, count_timer, 60000, 0));
  TH_OK(uv_idle_init(loop, &closing));
  g_closed = 0;
  uv_close((uv_handle_t *)&closing, count_close);
  actor_child_free(c);
  assert_int_equal(g_closed, 1);
  assert_true(uv_is_closing((uv_handle_t *)&stray));
  assert_true(uv_is_closing((uv_handle_t *)&armed));
  close(sv[0]);
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(child_stop_survives_a_cancel_callback_that_answers_other_calls),
      TH_TEST(child_free_does_not_run_an_adopted_loop),
      TH_TEST(child_free_with_calls_in_progress_on_an_adopted_loop),
      TH_TEST(child_free_closes_what_is_left_on_its_owned_loop),
  };
  return cmocka_run_group_tests_name("child", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  static struct th_helper helpers[16];
  int i;
  for (i = 0; ts_helpers[i].name != NULL; i++)
    helpers[i] = ts_helpers[i];
  helpers[i].name = "child";
  helpers[i].fn = helper_child;
  return th_main(argc, argv, helpers, run_all);
}
