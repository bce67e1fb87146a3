/* actorbench — one measurement per run, for bench/runner.py.
 *
 *   actorbench MEASURE [key=value ...]
 *
 * prints one JSON object on stdout: {"value": X} (plus extra fields, e.g.
 * "rss_kb"), or {"skipped": "why"} when what is measured does not exist
 * here (a backend not built or not available, a feature not landed).  The
 * runner repeats each measurement over trials and interleaves it with its
 * reference; this program only takes one sample of n operations and
 * reports the mean per operation (or the rate).
 *
 * Measures (keys: n = operations, place = one|cross|none, kind = below):
 *   ref.pp.proc      AF_UNIX socketpair ping-pong, two processes      (us)
 *   ref.pp.thread    the same between two threads                     (us)
 *   ref.posix_spawn  posix_spawn + waitpid of /bin/true               (us)
 *   ref.fork         fork + _exit + waitpid                           (us)
 *   ref.spawn_many   n copies of the C actor's program (actorbench-c
 *                    --block: the same image, no runtime) started at
 *                    once, each alive until all have started        (s)
 *   ref.py_init      Py_InitializeEx(0) in this (fresh) process       (us)
 *   ref.subint       create + end a sub-interpreter on a fresh thread,
 *                    mode=isolated|legacy                             (us)
 *   lib.spawn        spawn -> first reply (a no-op call) -> exit      (us)
 *                    (until=reply: spawn -> first reply only)
 *   lib.rtt          sequential no-op call round trip                 (us)
 *   lib.inflight     calls/s with depth=64 calls in flight            (1/s)
 *   lib.stream       one-way stream of n small items                  (1/s)
 *                    (both also print "cpu_rate": the same per CPU-second
 *                    of host and actor together)
 *   lib.scale        n actors spawned at once, each answers a no-op
 *                    call: seconds until all replied; "rss_kb" = host
 *                    RSS growth per live actor (kB)
 *
 * Kinds of actor: c (subproc, C program: actorbench-c --actor, this
 * source linked with the core library only, as a C actor is), py
 * (subproc, Python: actor-pyhost running benchworker:main), subint,
 * subint-legacy (Python in a sub-interpreter), pool (subint from the warm
 * pool), pool-preload (the same, the parked interpreters having imported
 * benchworker ahead: actor_subint_pool_preload), fs-c (forkserver, a C entry in libbenchentry.so), fs-py
 * (forkserver, Python in the child's main interpreter).
 *
 * Placement: "one" pins both ends to CPU 0; "cross" puts the host on CPU 0
 * and the actor on CPU 1 (a subproc child or a sub-interpreter's thread
 * inherits the mask of the thread that creates it, so the loop thread moves
 * to CPU 1 for the spawn and back to CPU 0 after); "none" leaves the
 * scheduler free (used under valgrind and strace). */
#define _GNU_SOURCE
#include <libactor/actor.h>
#include <msgpack.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#ifdef ACTORBENCH_PYTHON
#include <Python.h>
#endif

extern char **environ;

static char self[4096];
static const char *benchdir = "bench"; /* holds benchworker.py */

static double now_us(void) { return (double)uv_hrtime() / 1e3; }

/* ---- key=value arguments ------------------------------------------------- */

static int g_argc;
static char **g_argv;

static const char *arg_str(const char *key, const char *dflt) {
  size_t k = strlen(key);
  for (int i = 2; i < g_argc; i++)
    if (strncmp(g_argv[i], key, k) == 0 && g_argv[i][k] == '=')
      return g_argv[i] + k + 1;
  return dflt;
}

static long arg_long(const char *key, long dflt) {
  const char *s = arg_str(key, NULL);
  return s ? strtol(s, NULL, 10) : dflt;
}

static int skipped(const char *why) {
  printf("{\"skipped\": \"");
  for (; *why; why++)
    if (*why == '"' || *why == '\\')
      printf("\\%c", *why);
    else if ((unsigned char)*why >= 0x20)
      putchar(*why);
  printf("\"}\n");
  return 0;
}

static int value(double v) {
  printf("{\"value\": %.6g}\n", v);
  return 0;
}

/* ---- placement ------------------------------------------------------------ */

static int ncpu(void) {
  cpu_set_t s;
  if (sched_getaffinity(0, sizeof(s), &s))
    return 1;
  return CPU_COUNT(&s);
}

static void pin(pid_t tid, int cpu) { /* tid 0: the calling thread */
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  sched_setaffinity(tid, sizeof(s), &s);
}

enum { PLACE_NONE, PLACE_ONE, PLACE_CROSS };

/* Returns the placement, or -1 (after printing a skip) if it cannot be
 * had here. */
static int placement(void) {
  const char *p = arg_str("place", "none");
  if (strcmp(p, "one") == 0)
    return PLACE_ONE;
  if (strcmp(p, "cross") == 0) {
    if (ncpu() < 2) {
      skipped("one CPU: no cross-core placement");
      return -1;
    }
    return PLACE_CROSS;
  }
  return PLACE_NONE;
}

/* The CPU for the actor's end, and for the host's. */
static int peer_cpu(int place) { return place == PLACE_CROSS ? 1 : 0; }

/* ---- the C actor ------------------------------------------------------------ */

static int fn_noop(actor_ctx *x, const char *a, size_t n, void *arg) {
  static const char nil = (char)0xc0;
  return actor_ctx_return(x, &nil, 1);
}

static uint64_t first_uint(const char *a, size_t n) {
  msgpack_unpacked u;
  size_t off = 0;
  uint64_t v = 0;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, a, n, &off) == MSGPACK_UNPACK_SUCCESS) {
    if (u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      v = u.data.via.u64;
    else if (u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size &&
             u.data.via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      v = u.data.via.array.ptr[0].via.u64;
  }
  msgpack_unpacked_destroy(&u);
  return v;
}

/* stream(n): n small items (each a 9-byte uint64), then nil. */
static int fn_stream(actor_ctx *x, const char *a, size_t n, void *arg) {
  uint64_t count = first_uint(a, n), i;
  char item[9];
  static const char nil = (char)0xc0;
  for (i = 0; i < count; i++) {
    item[0] = (char)0xcf;
    for (int k = 0; k < 8; k++)
      item[1 + k] = (char)(i >> (56 - 8 * k));
    if (actor_ctx_yield(x, item, sizeof(item)))
      break;
  }
  return actor_ctx_return(x, &nil, 1);
}

static int run_actor(void) {
  actor_child *c;
  int r;
  if (actor_child_new(&c, NULL))
    return 2;
  actor_child_register(c, "noop", fn_noop, NULL);
  actor_child_register(c, "stream", fn_stream, NULL);
  r = actor_child_run(c);
  actor_child_free(c);
  return r;
}

/* ---- references ---------------------------------------------------------------- */

/* 14 bytes out, 8 back: about the size of a no-op CALL and its RETURN */
static const char ping[] = "0123456789abcd";
#define PING_LEN (sizeof(ping) - 1)

static void echo_loop(int fd) {
  char b[64];
  while (read(fd, b, PING_LEN) > 0)
    if (write(fd, b, 8) != 8)
      break;
}

static double pingpong(int fd, long n) {
  char b[64];
  double t0 = 0;
  for (long i = -200; i < n; i++) { /* 200 warm-up round trips */
    if (i == 0)
      t0 = now_us();
    if (write(fd, ping, PING_LEN) != PING_LEN || read(fd, b, 8) <= 0)
      return -1;
  }
  return (now_us() - t0) / (double)n;
}

/* The ping-pong's set-up: the placement (-1: skipped, printed), the pair,
 * the host end pinned.  Returns the placement, or -2 on failure. */
static int pp_setup(int sv[2]) {
  int place = placement();
  if (place < 0)
    return -1;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
    return -2;
  if (place != PLACE_NONE)
    pin(0, 0);
  return place;
}

static int ref_pp_proc(void) {
  int sv[2], place = pp_setup(sv);
  long n = arg_long("n", 20000);
  pid_t pid;
  double r;
  if (place < 0)
    return place == -1 ? 0 : 1;
  pid = fork();
  if (pid == 0) {
    close(sv[0]);
    if (place != PLACE_NONE)
      pin(0, peer_cpu(place));
    echo_loop(sv[1]);
    _exit(0);
  }
  close(sv[1]);
  r = pingpong(sv[0], n);
  close(sv[0]);
  waitpid(pid, NULL, 0);
  return r < 0 ? 1 : value(r);
}

struct echo_arg {
  int fd, cpu;
};

static void *echo_thread(void *p) {
  struct echo_arg *e = p;
  if (e->cpu >= 0)
    pin(0, e->cpu);
  echo_loop(e->fd);
  return NULL;
}

static int ref_pp_thread(void) {
  int sv[2], place = pp_setup(sv);
  long n = arg_long("n", 20000);
  struct echo_arg e;
  pthread_t t;
  double r;
  if (place < 0)
    return place == -1 ? 0 : 1;
  e.fd = sv[1];
  e.cpu = place == PLACE_NONE ? -1 : peer_cpu(place);
  pthread_create(&t, NULL, echo_thread, &e);
  r = pingpong(sv[0], n);
  shutdown(sv[0], SHUT_RDWR);
  pthread_join(t, NULL);
  close(sv[0]);
  close(sv[1]);
  return r < 0 ? 1 : value(r);
}

/* posix_spawn + waitpid of /bin/true, or (use_fork) fork + _exit +
 * waitpid: the mean of n after 3 untimed. */
static int start_wait(int use_fork, long n) {
  char *argv[] = {"/bin/true", NULL};
  double t0 = 0;
  pid_t pid;
  int st;
  for (long i = -3; i < n; i++) {
    if (i == 0)
      t0 = now_us();
    if (use_fork) {
      pid = fork();
      if (pid == 0)
        _exit(0);
      if (pid < 0)
        return 1;
    } else if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ)) {
      return 1;
    }
    waitpid(pid, &st, 0);
  }
  return value((now_us() - t0) / (double)n);
}

static int ref_posix_spawn(void) { return start_wait(0, arg_long("n", 300)); }

/* What lib.scale's n children cost without libactor: the same program
 * started n times at once, each saying it runs (a byte on a pipe) and then
 * staying alive, as an actor waiting for calls does, until all have said
 * so: seconds until the n-th byte. */
static int ref_spawn_many(void) {
  long n = arg_long("n", 100), got = 0;
  char prog[4200], *slash, *argv[] = {prog, "--block", NULL}, b[256];
  posix_spawn_file_actions_t fa;
  int in[2], out[2], r = 0;
  struct rlimit rl;
  double t0;
  ssize_t k;
  pid_t pid;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  snprintf(prog, sizeof(prog), "%s", self);
  slash = strrchr(prog, '/');
  snprintf(slash ? slash + 1 : prog, 64, "actorbench-c");
  if (pipe(in) || pipe(out))
    return 1;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  t0 = now_us();
  for (long i = 0; i < n && r == 0; i++)
    r = posix_spawn(&pid, prog, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  while (r == 0 && got < n && (k = read(out[0], b, sizeof(b))) > 0)
    got += k;
  t0 = (now_us() - t0) / 1e6;
  close(in[1]); /* EOF: they end */
  while (wait(NULL) > 0)
    ;
  close(in[0]);
  close(out[0]);
  return r || got < n ? 1 : value(t0);
}

/* actorbench-c --block: ref.spawn_many's child. */
static int run_block(void) {
  char c;
  if (write(1, "!", 1) != 1)
    return 1;
  while (read(0, &c, 1) > 0)
    ;
  return 0;
}
static int ref_fork(void) { return start_wait(1, arg_long("n", 1000)); }

#ifdef ACTORBENCH_PYTHON
static int ref_py_init(void) {
  double t0 = now_us(), t1;
  Py_InitializeEx(0);
  t1 = now_us();
  Py_FinalizeEx();
  return value(t1 - t0);
}

static int subint_legacy_ref;

static void *interp_thread(void *arg) {
  PyInterpreterConfig cfg = {
      .use_main_obmalloc = 0, .allow_fork = 0, .allow_exec = 0,
      .allow_threads = 1, .allow_daemon_threads = 0,
      .check_multi_interp_extensions = 1, .gil = PyInterpreterConfig_OWN_GIL};
  PyThreadState *main_ts = PyThreadState_New(PyInterpreterState_Main()), *ts;
  if (subint_legacy_ref) {
    cfg.use_main_obmalloc = 1;
    cfg.allow_fork = 1;
    cfg.allow_exec = 1;
    cfg.allow_daemon_threads = 1;
    cfg.check_multi_interp_extensions = 0;
    cfg.gil = PyInterpreterConfig_SHARED_GIL;
  }
  PyEval_RestoreThread(main_ts);
  if (!PyStatus_Exception(Py_NewInterpreterFromConfig(&ts, &cfg)))
    Py_EndInterpreter(ts);
  PyThreadState_Swap(main_ts);
  PyThreadState_Clear(main_ts);
  PyThreadState_DeleteCurrent();
  return arg;
}

static int ref_subint(void) {
  long n = arg_long("n", 20);
  double t0 = 0;
  pthread_t t;
  PyThreadState *ts;
  subint_legacy_ref = strcmp(arg_str("mode", "isolated"), "legacy") == 0;
  Py_InitializeEx(0);
  ts = PyEval_SaveThread();
  for (long i = -1; i < n; i++) {
    if (i == 0)
      t0 = now_us();
    pthread_create(&t, NULL, interp_thread, NULL);
    pthread_join(t, NULL);
  }
  t0 = (now_us() - t0) / (double)n;
  PyEval_RestoreThread(ts);
  Py_FinalizeEx();
  return value(t0);
}
#else
static int ref_py_init(void) { return skipped("built without Python"); }
static int ref_subint(void) { return skipped("built without Python"); }
#endif

/* ---- libactor ------------------------------------------------------------------ */

struct st {
  int done, exited, failed;
  long items, replies, started, target, depth;
  actor *a;
};

static actor_rt *rt;
static const char *kind;

static void on_exit_cb(actor *a, void *arg) { ((struct st *)arg)->exited++; }

static void on_call(actor_call *c, int ev, int status, const char *d, size_t n,
                    void *arg) {
  struct st *s = arg;
  if (ev == ACTOR_EV_ITEM) {
    s->items++;
  } else if (ev == ACTOR_EV_DONE) {
    if (status != 0) {
      fprintf(stderr, "actorbench: call failed: %s (%s %s)\n",
              actor_strerror(status), actor_call_error_type(c),
              actor_call_error_message(c));
      s->failed = 1;
    }
    s->done = 1;
    s->replies++;
  }
}

static void wait_for(int *flag) {
  while (!*flag)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
}

/* Whether `kind` can be spawned here; prints the skip if not. */
static int kind_available(void) {
  const char *backend = "subproc", *why = NULL;
  if (strncmp(kind, "subint", 6) == 0 || strncmp(kind, "pool", 4) == 0)
    backend = "subint";
  else if (strncmp(kind, "fs-", 3) == 0)
    backend = "forkserver";
  else if (strcmp(kind, "c") != 0 && strcmp(kind, "py") != 0) {
    skipped("unknown kind of actor");
    return 0;
  }
  if (actor_backend_available(backend, &why)) {
    char msg[256];
    snprintf(msg, sizeof(msg), "backend %s: %s", backend,
             why ? why : "not available");
    skipped(msg);
    return 0;
  }
  if (strcmp(kind, "py") == 0 &&
      actor_backend_available("subint", &why) == ACTOR_ENOBACKEND) {
    skipped("built without Python");
    return 0;
  }
  if (strncmp(kind, "pool", 4) == 0 &&
      actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) < 0) {
    skipped("no warm sub-interpreter pool in this library");
    return 0;
  }
  return 1;
}

static actor *spawn_kind(struct st *s) {
  char entry[4200];
  actor_opts *o;
  actor *a;
  actor_opts_new(&o);
  if (strcmp(kind, "c") == 0) {
    /* actorbench-c, built next to this program */
    char *slash;
    snprintf(entry, sizeof(entry), "%s", self);
    slash = strrchr(entry, '/');
    snprintf(slash ? slash + 1 : entry, 64, "actorbench-c");
    actor_opts_set_program(o, entry);
    actor_opts_add_arg(o, "--actor");
  } else if (strcmp(kind, "fs-c") == 0) {
    /* A C entry preloaded by the fork server (issue 9: "libfoo.so:entry"),
     * built next to this program. */
    char *slash;
    snprintf(entry, sizeof(entry), "%s", self);
    slash = strrchr(entry, '/');
    snprintf(slash ? slash + 1 : entry, 64, "libbenchentry.so:bench_entry");
    actor_opts_set_backend(o, "forkserver");
    actor_opts_set_c_entry(o, entry);
  } else {
    if (strncmp(kind, "subint", 6) == 0 || strncmp(kind, "pool", 4) == 0)
      actor_opts_set_backend(o, "subint");
    else if (strncmp(kind, "fs-", 3) == 0)
      actor_opts_set_backend(o, "forkserver");
    if (strcmp(kind, "fs-subint") == 0)
      actor_opts_set_fork_subint(o, 1); /* a fresh isolated interpreter */
    actor_opts_set_entry(o, "benchworker:main");
    actor_opts_add_path(o, benchdir);
    if (strcmp(kind, "subint-legacy") == 0)
      actor_opts_set_subint_mode(o, ACTOR_SUBINT_LEGACY);
  }
  actor_opts_on_exit(o, on_exit_cb, s);
  if (actor_spawn(rt, o, &a)) {
    fprintf(stderr, "actorbench: spawn (%s): %s\n", kind, actor_rt_errmsg(rt));
    exit(1);
  }
  actor_opts_free(o);
  return a;
}

/* Spawn with the actor's end on the placement's CPU, the host's on 0. */
static actor *spawn_placed(struct st *s, int place) {
  actor *a;
  if (place == PLACE_NONE)
    return spawn_kind(s);
  pin(0, peer_cpu(place));
  a = spawn_kind(s);
  pin(0, 0);
  return a;
}

static const char nil_arg[] = {(char)0xc0};

static void call_noop(actor *a, struct st *s) {
  if (actor_call_start(a, "noop", nil_arg, 1, on_call, s, NULL)) {
    fprintf(stderr, "actorbench: call: %s\n", actor_rt_errmsg(rt));
    exit(1);
  }
}

static void stop_and_wait(actor *a, struct st *s) {
  actor_stop(a);
  while (!s->exited)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
}

static void sleep_in_loop(uint64_t ms);

/* until=exit (default): spawn -> first reply -> stop -> exit callback;
 * until=reply: spawn -> first reply (the stop and exit untimed). */
static int lib_spawn(void) {
  long n = arg_long("n", 100);
  int to_reply = strcmp(arg_str("until", "exit"), "reply") == 0;
  double total = 0;
  int r;
  if (strcmp(kind, "pool-preload") == 0) {
    /* pool-preload: the parked interpreters have imported the entry
     * module (actor_subint_pool_preload) */
    const char *paths[] = {benchdir, NULL}, *mods[] = {"benchworker", NULL};
    if ((r = actor_subint_pool_preload(ACTOR_SUBINT_ISOLATED, paths, mods)))
      return skipped(actor_strerror(r));
  }
  if (strncmp(kind, "pool", 4) == 0 &&
      (r = actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 4)) != 0)
    return skipped(actor_strerror(r));
  for (long i = -1; i < n; i++) { /* one warm-up (CPython's start) */
    struct st s = {0};
    actor *a;
    double t0;
    if (strncmp(kind, "pool", 4) == 0) {
      /* let the pool refill, untimed: a spawn takes a parked interpreter */
      for (int w = 0; w < 5000 &&
                      actor_subint_pool_count(ACTOR_SUBINT_ISOLATED) < 4;
           w++)
        sleep_in_loop(1);
    }
    t0 = now_us();
    a = spawn_kind(&s);
    call_noop(a, &s);
    wait_for(&s.done);
    if (i >= 0 && to_reply)
      total += now_us() - t0;
    stop_and_wait(a, &s);
    if (s.failed)
      return 1;
    if (i >= 0 && !to_reply)
      total += now_us() - t0;
  }
  if (strncmp(kind, "pool", 4) == 0)
    actor_subint_pool_set(ACTOR_SUBINT_ISOLATED, 0);
  return value(total / (double)n);
}

static int lib_rtt(void) {
  int place = placement();
  long n = arg_long("n", 20000);
  struct st s = {0};
  double t0 = 0, r;
  actor *a;
  if (place < 0)
    return 0;
  a = spawn_placed(&s, place);
  for (long i = -200; i < n; i++) {
    if (i == 0)
      t0 = now_us();
    s.done = 0;
    call_noop(a, &s);
    wait_for(&s.done);
  }
  r = (now_us() - t0) / (double)n;
  stop_and_wait(a, &s);
  return s.failed ? 1 : value(r);
}

static void on_inflight(actor_call *c, int ev, int status, const char *d,
                        size_t n, void *arg) {
  struct st *s = arg;
  on_call(c, ev, status, d, n, arg);
  if (ev == ACTOR_EV_DONE && s->started < s->target) {
    s->started++;
    if (actor_call_start(s->a, "noop", nil_arg, 1, on_inflight, s, NULL))
      s->failed = 1;
  }
}

/* CPU time (s) used so far by this process (all its threads: a subint
 * actor's included) and by the actor's process if it has one: the sum of
 * its threads' run time from /proc/PID/task/TID/schedstat (ns). */
static double cpu_s(const actor *a) {
  struct timespec ts;
  double t = 0;
  int pid = actor_pid(a);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  if (pid > 0) {
    char path[64];
    DIR *d;
    struct dirent *e;
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    d = opendir(path);
    while (d && (e = readdir(d)) != NULL) {
      char f[64 + sizeof(e->d_name) + 16];
      unsigned long long ns;
      FILE *fp;
      if (e->d_name[0] == '.')
        continue;
      snprintf(f, sizeof(f), "%s/%s/schedstat", path, e->d_name);
      fp = fopen(f, "r");
      if (fp && fscanf(fp, "%llu", &ns) == 1)
        t += (double)ns / 1e9;
      if (fp)
        fclose(fp);
    }
    if (d)
      closedir(d);
  }
  return t;
}

/* A rate, and the same per CPU-second of host and actor together
 * ("cpu_rate"): what the pair would do with the CPU to itself, whatever
 * else the machine runs — on one core, an estimate of the idle-machine
 * figure. */
static int rate_and_cpu(long n, double us, double cpu) {
  printf("{\"value\": %.6g, \"cpu_rate\": %.6g}\n", (double)n / (us / 1e6),
         (double)n / cpu);
  return 0;
}

static int lib_inflight(void) {
  int place = placement();
  long n = arg_long("n", 200000), depth = arg_long("depth", 64);
  struct st s = {0};
  double t0, t, c0, c;
  if (place < 0)
    return 0;
  s.a = spawn_placed(&s, place);
  /* warm-up: the actor said HELLO and answered */
  call_noop(s.a, &s);
  wait_for(&s.done);
  s.replies = 0;
  s.target = n;
  c0 = cpu_s(s.a);
  t0 = now_us();
  for (s.started = 0; s.started < depth && s.started < n;) {
    s.started++;
    if (actor_call_start(s.a, "noop", nil_arg, 1, on_inflight, &s, NULL))
      return 1;
  }
  while (s.replies < n && !s.failed)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
  t = now_us() - t0;
  c = cpu_s(s.a) - c0;
  stop_and_wait(s.a, &s);
  return s.failed ? 1 : rate_and_cpu(n, t, c);
}

static int lib_stream(void) {
  int place = placement();
  long n = arg_long("n", 1000000);
  struct st s = {0};
  char arg[10];
  double t0, t, c0, c;
  actor *a;
  if (place < 0)
    return 0;
  a = spawn_placed(&s, place);
  call_noop(a, &s);
  wait_for(&s.done);
  arg[0] = (char)0x91; /* [n] as a uint64 */
  arg[1] = (char)0xcf;
  for (int k = 0; k < 8; k++)
    arg[2 + k] = (char)((uint64_t)n >> (56 - 8 * k));
  s.done = 0;
  c0 = cpu_s(a);
  t0 = now_us();
  actor_call_start(a, "stream", arg, sizeof(arg), on_call, &s, NULL);
  wait_for(&s.done);
  t = now_us() - t0;
  c = cpu_s(a) - c0;
  if (s.items != n)
    fprintf(stderr, "actorbench: stream: %ld of %ld items\n", s.items, n);
  stop_and_wait(a, &s);
  return s.failed || s.items != n ? 1 : rate_and_cpu(n, t, c);
}

static long rss_kb(void) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

static int lib_scale(void) {
  long n = arg_long("n", 100);
  struct st s = {0}, w = {0};
  actor **as;
  long before, live;
  double t0, t;
  struct rlimit rl;
  /* three or so descriptors per subproc actor */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  as = calloc((size_t)n, sizeof(*as));
  if (!as)
    return 1;
  /* warm-up: whatever the first actor of a kind sets up once (CPython) */
  {
    actor *a = spawn_kind(&w);
    call_noop(a, &w);
    wait_for(&w.done);
    stop_and_wait(a, &w);
  }
  before = rss_kb();
  t0 = now_us();
  for (long i = 0; i < n; i++) {
    as[i] = spawn_kind(&s);
    call_noop(as[i], &s);
  }
  while (s.replies < n && !s.failed)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
  t = (now_us() - t0) / 1e6;
  live = rss_kb();
  for (long i = 0; i < n; i++)
    actor_stop(as[i]);
  while (s.exited < n)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
  free(as);
  if (s.failed)
    return 1;
  printf("{\"value\": %.6g, \"rss_kb\": %.6g}\n", t,
         (double)(live - before) / (double)n);
  return 0;
}

static void on_sleep(uv_timer_t *t) { *(int *)t->data = 1; }
static void on_closed(uv_handle_t *h) { *(int *)h->data = 1; }

static void sleep_in_loop(uint64_t ms) {
  uv_timer_t t;
  int fired = 0;
  t.data = &fired;
  uv_timer_init(actor_rt_loop(rt), &t);
  uv_timer_start(&t, on_sleep, ms, 0);
  wait_for(&fired);
  fired = 0;
  uv_close((uv_handle_t *)&t, on_closed);
  wait_for(&fired);
}

static int lib_measure(int (*fn)(void)) {
  int r;
  kind = arg_str("kind", "c");
  if (!kind_available())
    return 0;
  if (actor_rt_new(&rt, NULL))
    return 1;
  if (strcmp(kind, "fs-py") == 0 || strcmp(kind, "fs-subint") == 0) {
    /* a warm server: the actor's module is imported before the forks */
    actor_rt_forkserver_add_path(rt, benchdir);
    actor_rt_forkserver_preload(rt, "benchworker");
  }
  r = fn();
  fflush(stdout);
  actor_rt_shutdown(rt);
  return r;
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    int (*fn)(void);
    int lib;
  } measures[] = {
      {"ref.pp.proc", ref_pp_proc, 0},    {"ref.pp.thread", ref_pp_thread, 0},
      {"ref.posix_spawn", ref_posix_spawn, 0}, {"ref.fork", ref_fork, 0},
      {"ref.spawn_many", ref_spawn_many, 0},
      {"ref.py_init", ref_py_init, 0},    {"ref.subint", ref_subint, 0},
      {"lib.spawn", lib_spawn, 1},        {"lib.rtt", lib_rtt, 1},
      {"lib.inflight", lib_inflight, 1},  {"lib.stream", lib_stream, 1},
      {"lib.scale", lib_scale, 1},
  };
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0)
    return 1;
  self[len] = '\0';
  if (argc > 1 && strcmp(argv[1], "--actor") == 0)
    return run_actor();
  if (argc > 1 && strcmp(argv[1], "--block") == 0)
    return run_block();
  g_argc = argc;
  g_argv = argv;
  benchdir = arg_str("dir", getenv("ACTORBENCH_DIR") ? getenv("ACTORBENCH_DIR")
                                                      : benchdir);
  for (size_t i = 0; argc > 1 && i < sizeof(measures) / sizeof(*measures); i++)
    if (strcmp(argv[1], measures[i].name) == 0)
      return measures[i].lib ? lib_measure(measures[i].fn) : measures[i].fn();
  fprintf(stderr, "usage: actorbench MEASURE [key=value ...] (see the source)\n");
  return 2;
}
