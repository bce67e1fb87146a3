/* Benchmarks for the subint backend (Python actors in sub-interpreters),
 * against references measured in the same run:
 *
 *   call round trip      vs  a raw AF_UNIX socketpair ping-pong between two
 *                            threads (target: faster, ratio < 1; <= 5 us)
 *   spawn -> reply -> exit vs creating and ending an isolated interpreter
 *                            directly with the C API on a fresh thread
 *                            (our overhead over CPython's own cost)
 *   stream of items from a Python generator (items/s)
 *
 *   spawn -> first reply, cold and from the warm pool (actor_subint_pool_set)
 *
 *   bench_subint DIR [scale] [apart]   DIR holds pyworker.py (examples/);
 *                            apart: the loop thread on CPU 0, the actor's
 *                            on CPU 1 (it inherits the spawning thread's
 *                            affinity), for the round trip across cores */
#define _GNU_SOURCE
#include <Python.h>
#include <libactor/actor.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

static const char *dir;
static int apart; /* pin the two threads of a round trip to CPUs 0 and 1 */
static double now_us(void) { return (double)uv_hrtime() / 1e3; }

struct st {
  int hello, done, exited;
  long items;
};
static void on_hello(actor *a, int s, void *arg) { ((struct st *)arg)->hello = 1; }
static void on_exit_cb(actor *a, void *arg) { ((struct st *)arg)->exited = 1; }
static void on_call(actor_call *c, int ev, int status, const char *d, size_t n,
                    void *arg) {
  struct st *s = arg;
  if (ev == ACTOR_EV_ITEM)
    s->items++;
  else if (ev == ACTOR_EV_DONE)
    s->done = status == 0 ? 1 : -1;
}

static actor *spawn(actor_rt *rt, struct st *s, int mode) {
  actor_opts *o;
  actor *a;
  actor_opts_new(&o);
  actor_opts_set_backend(o, "subint");
  actor_opts_set_entry(o, "pyworker:main");
  actor_opts_add_path(o, dir);
  actor_opts_set_subint_mode(o, mode);
  actor_opts_on_hello(o, on_hello, s);
  actor_opts_on_exit(o, on_exit_cb, s);
  if (actor_spawn(rt, o, &a)) {
    fprintf(stderr, "spawn: %s\n", actor_rt_errmsg(rt));
    exit(1);
  }
  actor_opts_free(o);
  return a;
}

static void wait_for(actor_rt *rt, int *flag) {
  while (!*flag)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void wait_parked(int n) {
  while (actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) < n)
    usleep(200);
}

/* spawn -> first reply (median of n), from the pool if `warm`. */
static double spawn_reply_us(actor_rt *rt, int n, int warm) {
  static const char args[] = {(char)0x92, 0x02, 0x28};
  double *v = calloc((size_t)n, sizeof(*v)), t0, med;
  struct st s;
  actor *a;
  int i, j;
  for (i = 0; i < n; i++) {
    if (warm)
      wait_parked(1);
    memset(&s, 0, sizeof(s));
    t0 = now_us();
    a = spawn(rt, &s, ACTOR_SUBINT_ISOLATED);
    actor_call_start(a, "add", args, sizeof(args), on_call, &s, NULL);
    wait_for(rt, &s.done);
    v[i] = now_us() - t0;
    actor_stop(a);
    wait_for(rt, &s.exited);
  }
  for (i = 1; i < n; i++) /* insertion sort: n is small */
    for (j = i; j > 0 && v[j] < v[j - 1]; j--) {
      t0 = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t0;
    }
  med = v[n / 2];
  free(v);
  return med;
}

/* ---- references ---------------------------------------------------------- */

static void *echo_thread(void *arg) {
  int fd = *(int *)arg;
  char b[64];
  while (read(fd, b, 14) > 0)
    if (write(fd, b, 8) != 8)
      break;
  return NULL;
}

static double ref_pingpong_us(int n) {
  int sv[2], i;
  char b[64];
  pthread_t t;
  double t0;
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  if (apart)
    pin(1);
  pthread_create(&t, NULL, echo_thread, &sv[1]);
  if (apart)
    pin(0);
  t0 = now_us();
  for (i = 0; i < n; i++)
    if (write(sv[0], "0123456789abcd", 14) != 14 || read(sv[0], b, 8) <= 0)
      break;
  t0 = (now_us() - t0) / n;
  shutdown(sv[0], SHUT_RDWR);
  pthread_join(t, NULL);
  close(sv[0]);
  close(sv[1]);
  return t0;
}

static void *interp_thread(void *arg) {
  const PyInterpreterConfig cfg = {
      .use_main_obmalloc = 0, .allow_fork = 0, .allow_exec = 0,
      .allow_threads = 1, .allow_daemon_threads = 0,
      .check_multi_interp_extensions = 1, .gil = PyInterpreterConfig_OWN_GIL};
  PyThreadState *main_ts = PyThreadState_New(PyInterpreterState_Main()), *ts;
  (void)arg;
  PyEval_RestoreThread(main_ts);
  if (!PyStatus_Exception(Py_NewInterpreterFromConfig(&ts, &cfg)))
    Py_EndInterpreter(ts);
  PyEval_RestoreThread(main_ts);
  PyThreadState_Clear(main_ts);
  PyThreadState_DeleteCurrent();
  return NULL;
}

static double ref_interp_us(int n) {
  double t0 = now_us();
  pthread_t t;
  for (int i = 0; i < n; i++) {
    pthread_create(&t, NULL, interp_thread, NULL);
    pthread_join(t, NULL);
  }
  return (now_us() - t0) / n;
}

int main(int argc, char **argv) {
  static const char args[] = {(char)0x92, 0x02, 0x28};
  char many[5] = {(char)0x91, (char)0xce, 0, 0, 0};
  double scale = argc > 2 ? atof(argv[2]) : 1.0;
  int n_rtt, n_spawn, i;
  double cold_reply, warm_reply;
  uint32_t n_items;
  double rtt, ref_rtt, sp, ref_sp, t0 = 0, rate;
  actor_rt *rt;
  actor *a;
  struct st s;

  if (argc < 2) {
    fprintf(stderr, "usage: bench_subint DIR [scale]\n");
    return 2;
  }
  dir = argv[1];
  apart = argc > 3 && strcmp(argv[3], "apart") == 0;
  if (scale <= 0)
    scale = 1;
  n_rtt = (int)(20000 * scale) + 10;
  n_spawn = (int)(100 * scale) + 2;
  n_items = (uint32_t)(200000 * scale) + 10;
  /* [n_items] as a uint32: 0x91 0xce b3 b2 b1 b0 */
  many[2] = (char)(n_items >> 24);
  many[3] = (char)(n_items >> 16);
  many[4] = (char)(n_items >> 8);
  if (actor_rt_new(&rt, NULL))
    return 1;

  /* call round trip (also initialises CPython) */
  memset(&s, 0, sizeof(s));
  if (apart)
    pin(1); /* the actor's thread inherits it */
  a = spawn(rt, &s, ACTOR_SUBINT_ISOLATED);
  if (apart)
    pin(0);
  wait_for(rt, &s.hello);
  for (i = -200; i < n_rtt; i++) {
    if (i == 0)
      t0 = now_us();
    s.done = 0;
    actor_call_start(a, "add", args, sizeof(args), on_call, &s, NULL);
    wait_for(rt, &s.done);
  }
  rtt = (now_us() - t0) / n_rtt;
  /* stream */
  {
    char call[6];
    memcpy(call, many, 5);
    call[5] = (char)n_items;
    s.done = 0;
    s.items = 0;
    t0 = now_us();
    actor_call_start(a, "squares", call, sizeof(call), on_call, &s, NULL);
    wait_for(rt, &s.done);
    rate = (double)s.items / ((now_us() - t0) / 1e6);
  }
  actor_stop(a);
  wait_for(rt, &s.exited);
  ref_rtt = ref_pingpong_us(n_rtt);

  /* spawn -> first reply -> exit */
  t0 = now_us();
  for (i = 0; i < n_spawn; i++) {
    memset(&s, 0, sizeof(s));
    a = spawn(rt, &s, ACTOR_SUBINT_ISOLATED);
    actor_call_start(a, "add", args, sizeof(args), on_call, &s, NULL);
    wait_for(rt, &s.done);
    actor_stop(a);
    wait_for(rt, &s.exited);
  }
  sp = (now_us() - t0) / n_spawn;
  ref_sp = ref_interp_us(n_spawn);

  /* spawn -> first reply, cold and warm */
  cold_reply = spawn_reply_us(rt, n_spawn, 0);
  actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 1);
  warm_reply = spawn_reply_us(rt, n_spawn, 1);
  actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 0);
  actor_rt_shutdown(rt);

  printf("%-36s %12s %12s %8s %10s\n", "benchmark (subint, isolated)",
         "libactor", "reference", "ratio", "target");
  printf("%-36s %9.2f us %9.2f us %8.2f %10s\n", "call round trip (Python actor)",
         rtt, ref_rtt, rtt / ref_rtt, "<1, <=5us");
  printf("%-36s %7.2f M/s %12s %8s %10s\n", "stream from a Python generator",
         rate / 1e6, "-", "-", "-");
  printf("%-36s %9.0f us %9.0f us %8.2f %10s\n", "spawn -> first reply -> exit",
         sp, ref_sp, sp / ref_sp, "-");
  printf("%-36s %9.0f us %12s %8s %10s\n", "spawn -> first reply, cold", cold_reply,
         "-", "-", "-");
  printf("%-36s %9.0f us %12s %8s %10s\n", "spawn -> first reply, warm pool",
         warm_reply, "-", "-", "<=500us");
  return 0;
}
