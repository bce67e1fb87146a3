/* Benchmarks for the subproc backend, each measured against a reference
 * taken in the same run on the same machine (ratios, not absolute times,
 * are what the targets are about):
 *
 *   call round trip    vs  a raw AF_UNIX socketpair ping-pong between two
 *                          processes (target: ratio <= 1.5)
 *   one-way stream     small items from a C child (target: >= 2 M items/s)
 *   spawn -> first reply -> exit
 *                      vs  posix_spawn + waitpid of the same binary doing
 *                          nothing (target: ratio <= 2)
 *
 *   bench_subproc [scale]      scale 1 = full run; 0.01 = smoke run
 *
 * The binary re-runs itself as the actor (--actor) and as the do-nothing
 * reference (--nothing). */
#define _GNU_SOURCE
#include <libactor/actor.h>
#include <msgpack.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;
static char self[4096];

static double now_us(void) { return (double)uv_hrtime() / 1e3; }

/* ---- the actor --------------------------------------------------------- */

static int fn_echo(actor_ctx *x, const char *a, size_t n, void *arg) {
  return actor_ctx_return(x, a, n);
}

static int fn_stream(actor_ctx *x, const char *a, size_t n, void *arg) {
  msgpack_unpacked u;
  size_t off = 0;
  uint64_t count = 0, i;
  char item[9];
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, a, n, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    count = u.data.via.u64;
  msgpack_unpacked_destroy(&u);
  for (i = 0; i < count; i++) {
    item[0] = (char)0xcf; /* uint64, big-endian */
    for (int k = 0; k < 8; k++)
      item[1 + k] = (char)(i >> (56 - 8 * k));
    if (actor_ctx_yield(x, item, sizeof(item)))
      break;
  }
  return actor_ctx_return(x, a, n);
}

static int run_actor(void) {
  actor_child *c;
  if (actor_child_new(&c, NULL))
    return 2;
  actor_child_register(c, "echo", fn_echo, NULL);
  actor_child_register(c, "stream", fn_stream, NULL);
  int r = actor_child_run(c);
  actor_child_free(c);
  return r;
}

/* ---- references ---------------------------------------------------------- */

static double ref_pingpong_us(int n) {
  int sv[2], i;
  char b[64];
  double t0, t1;
  pid_t pid;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
    return -1;
  pid = fork();
  if (pid == 0) {
    close(sv[0]);
    for (;;) {
      if (read(sv[1], b, 14) <= 0)
        _exit(0);
      if (write(sv[1], b, 8) != 8)
        _exit(1);
    }
  }
  close(sv[1]);
  t0 = now_us();
  for (i = 0; i < n; i++) {
    if (write(sv[0], "0123456789abcd", 14) != 14 || read(sv[0], b, 8) <= 0)
      break;
  }
  t1 = now_us();
  close(sv[0]);
  waitpid(pid, NULL, 0);
  return (t1 - t0) / n;
}

static double ref_spawn_us(int n) {
  char *argv[] = {self, "--nothing", NULL};
  double t0 = now_us();
  int i, st;
  pid_t pid;
  for (i = 0; i < n; i++) {
    if (posix_spawn(&pid, self, NULL, NULL, argv, environ))
      return -1;
    waitpid(pid, &st, 0);
  }
  return (now_us() - t0) / n;
}

/* ---- libactor -------------------------------------------------------------- */

struct state {
  int done, hello, exited;
  uint64_t items;
};

static void on_call(actor_call *c, int ev, int status, const char *d,
                    size_t n, void *arg) {
  struct state *s = arg;
  if (ev == ACTOR_EV_ITEM)
    s->items++;
  else if (ev == ACTOR_EV_DONE)
    s->done = status == 0 ? 1 : -1;
}
static void on_exit_cb(actor *a, void *arg) { ((struct state *)arg)->exited = 1; }

static actor *spawn_actor(actor_rt *rt, struct state *s) {
  actor_opts *o;
  actor *a;
  actor_opts_new(&o);
  actor_opts_set_program(o, self);
  actor_opts_add_arg(o, "--actor");
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

static double call_rtt_us(actor_rt *rt, int n) {
  struct state s = {0};
  actor *a = spawn_actor(rt, &s);
  static const char arg[] = {(char)0x92, 0x01, 0x02}; /* [1, 2] */
  double t0 = 0;
  int i;
  for (i = -100; i < n; i++) { /* 100 warm-up calls */
    if (i == 0)
      t0 = now_us();
    s.done = 0;
    actor_call_start(a, "echo", arg, sizeof(arg), on_call, &s, NULL);
    wait_for(rt, &s.done);
  }
  double r = (now_us() - t0) / n;
  actor_stop(a);
  wait_for(rt, &s.exited);
  return r;
}

static double stream_rate(actor_rt *rt, uint64_t n) {
  struct state s = {0};
  actor *a = spawn_actor(rt, &s);
  char arg[9];
  arg[0] = (char)0xcf;
  for (int k = 0; k < 8; k++)
    arg[1 + k] = (char)(n >> (56 - 8 * k));
  double t0 = now_us();
  actor_call_start(a, "stream", arg, sizeof(arg), on_call, &s, NULL);
  wait_for(rt, &s.done);
  double t1 = now_us();
  if (s.items != n)
    fprintf(stderr, "stream: %llu of %llu items\n", (unsigned long long)s.items,
            (unsigned long long)n);
  actor_stop(a);
  wait_for(rt, &s.exited);
  return (double)n / ((t1 - t0) / 1e6);
}

static double spawn_reply_exit_us(actor_rt *rt, int n) {
  static const char arg[] = {(char)0xc0};
  double t0 = now_us();
  for (int i = 0; i < n; i++) {
    struct state s = {0};
    actor *a = spawn_actor(rt, &s);
    actor_call_start(a, "echo", arg, 1, on_call, &s, NULL);
    wait_for(rt, &s.done);
    actor_stop(a);
    wait_for(rt, &s.exited);
  }
  return (now_us() - t0) / n;
}

int main(int argc, char **argv) {
  double scale = 1.0;
  actor_rt *rt;
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0)
    return 1;
  self[len] = '\0';
  if (argc > 1 && strcmp(argv[1], "--actor") == 0)
    return run_actor();
  if (argc > 1 && strcmp(argv[1], "--nothing") == 0)
    return 0;
  if (argc > 1)
    scale = atof(argv[1]);
  if (scale <= 0)
    scale = 1;
  int n_rtt = (int)(20000 * scale) + 10;
  uint64_t n_stream = (uint64_t)(2000000 * scale) + 10;
  int n_spawn = (int)(300 * scale) + 3;

  if (actor_rt_new(&rt, NULL))
    return 1;
  double ref_rtt = ref_pingpong_us(n_rtt);
  double rtt = call_rtt_us(rt, n_rtt);
  double rate = stream_rate(rt, n_stream);
  double ref_sp = ref_spawn_us(n_spawn);
  double sp = spawn_reply_exit_us(rt, n_spawn);
  actor_rt_shutdown(rt);

  printf("%-34s %12s %12s %8s %8s\n", "benchmark", "libactor", "reference",
         "ratio", "target");
  printf("%-34s %9.2f us %9.2f us %8.2f %8s\n", "call round trip", rtt,
         ref_rtt, rtt / ref_rtt, "<= 1.5");
  printf("%-34s %7.2f M/s %12s %8s %8s\n", "one-way stream (C child)",
         rate / 1e6, "-", "-", ">= 2 M/s");
  printf("%-34s %9.2f us %9.2f us %8.2f %8s\n", "spawn -> first reply -> exit",
         sp, ref_sp, sp / ref_sp, "<= 2");
  return 0;
}
