/* forkserver — actors of every kind on the forkserver backend, with
 * timings: spawn -> first reply -> exit, the median of N cycles each.
 *
 *   forkserver [N]
 *
 * Kinds: a C entry (examples/fsentry.c, a shared object the server loads);
 * and, built with libactor-python, a Python entry (examples/pyworker.py)
 * in the child's main interpreter and in a fresh sub-interpreter
 * (isolated, legacy) on a thread of the child.  The server is started
 * once, with pyworker imported ahead of time, and every actor is a fork
 * of it.  In the build tree the example uses the tree's fork server and
 * entry (LIBACTOR_FORKSERVER, FS_EXAMPLE_ENTRY, FS_EXAMPLE_PYDIR
 * override them). */
#include <libactor/actor.h>

/* Built in the tree, the example knows where the tree's server and entry
 * are; built elsewhere, the installed server is used and the entry is
 * looked up by dlopen's rules. */
#ifndef FS_EXAMPLE_ENTRY
#define FS_EXAMPLE_ENTRY "libfsentry.so"
#endif
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

static actor_rt *rt;

static double now_ms(void) { return (double)uv_hrtime() / 1e6; }

struct st {
  int exited, done, status;
  double t_hello, t_reply, t_exit;
  char reason[256];
};

static void on_exit_cb(actor *a, void *arg) {
  struct st *s = arg;
  s->exited = 1;
  s->t_exit = now_ms();
  snprintf(s->reason, sizeof(s->reason), "%s", actor_exit_reason(a));
}

static void on_hello(actor *a, int status, void *arg) {
  (void)a, (void)status;
  ((struct st *)arg)->t_hello = now_ms();
}

static void on_call(actor_call *c, int ev, int status, const char *d,
                    size_t n, void *arg) {
  struct st *s = arg;
  (void)c, (void)d, (void)n;
  if (ev != ACTOR_EV_DONE)
    return;
  s->done = 1;
  s->status = status;
  s->t_reply = now_ms();
}

static void wait_for(int *flag) {
  while (!*flag)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v != NULL && *v != '\0' ? v : dflt;
}

enum { K_C, K_PY, K_ISOLATED, K_LEGACY };
static const char *const kind_names[] = {
    "C entry", "Python, main interpreter", "Python, fresh subint (isolated)",
    "Python, fresh subint (legacy)"};

/* One spawn -> first reply -> exit cycle; 0, or -1 (printed). */
static int cycle(int kind, double *hello_ms, double *reply_ms,
                 double *exit_ms) {
  static const char args[] = {(char)0x92, 40, 2}; /* [40, 2] */
  char spec[4096];
  struct st s;
  actor_opts *o;
  actor *a;
  double t0;
  int r;

  memset(&s, 0, sizeof(s));
  actor_opts_new(&o);
  actor_opts_set_backend(o, "forkserver");
  if (kind == K_C) {
    snprintf(spec, sizeof(spec), "%s:fsentry_main",
             env_or("FS_EXAMPLE_ENTRY", FS_EXAMPLE_ENTRY));
    actor_opts_set_c_entry(o, spec);
  } else {
    actor_opts_set_entry(o, "pyworker:main");
#ifdef FS_EXAMPLE_PYDIR
    actor_opts_add_path(o, env_or("FS_EXAMPLE_PYDIR", FS_EXAMPLE_PYDIR));
#endif
    actor_opts_set_fork_subint(o, kind != K_PY);
    actor_opts_set_subint_mode(o, kind == K_LEGACY ? ACTOR_SUBINT_LEGACY
                                                   : ACTOR_SUBINT_ISOLATED);
  }
  actor_opts_on_exit(o, on_exit_cb, &s);
  actor_opts_on_hello(o, on_hello, &s);
  t0 = now_ms();
  r = actor_spawn(rt, o, &a);
  actor_opts_free(o);
  if (r == 0)
    r = actor_call_start(a, "add", args, sizeof(args), on_call, &s, NULL);
  if (r) {
    printf("  %s: %s (%s)\n", kind_names[kind], actor_strerror(r),
           actor_rt_errmsg(rt));
    return -1;
  }
  wait_for(&s.done);
  actor_stop(a);
  wait_for(&s.exited);
  if (s.status != 0) {
    printf("  %s: the call failed: %s; %s\n", kind_names[kind],
           actor_strerror(s.status), s.reason);
    return -1;
  }
  *hello_ms = s.t_hello - t0;
  *reply_ms = s.t_reply - t0;
  *exit_ms = s.t_exit - t0;
  return 0;
}

/* The floor on this machine, now: fork + _exit + waitpid of this process. */
static double fork_floor(int n, double *v) {
  double t0;
  pid_t p;
  int i;
  for (i = 0; i < n; i++) {
    t0 = now_ms();
    p = fork();
    if (p == 0)
      _exit(0);
    waitpid(p, NULL, 0);
    v[i] = now_ms() - t0;
  }
  qsort(v, (size_t)n, sizeof(*v), cmp);
  return v[n / 2];
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 50, kind, i, nkinds = 1;
  double *hello, *reply, *end;

  if (n < 1)
    n = 1;
#ifdef FS_EXAMPLE_SERVER
  setenv("LIBACTOR_FORKSERVER", env_or("LIBACTOR_FORKSERVER", FS_EXAMPLE_SERVER),
         1);
#endif
  hello = calloc((size_t)n, sizeof(*hello));
  reply = calloc((size_t)n, sizeof(*reply));
  end = calloc((size_t)n, sizeof(*end));
  if (hello == NULL || reply == NULL || end == NULL || actor_rt_new(&rt, NULL))
    return 1;
#ifdef FS_EXAMPLE_PYDIR
  /* The server imports pyworker once; every Python child inherits it. */
  actor_rt_forkserver_add_path(rt, env_or("FS_EXAMPLE_PYDIR", FS_EXAMPLE_PYDIR));
  actor_rt_forkserver_preload(rt, "pyworker");
  nkinds = 4;
#endif
  actor_rt_forkserver_start(rt, nkinds > 1);
  printf("fork server pid %d; %d cycles per kind; medians from the spawn\n",
         actor_rt_forkserver_pid(rt), n);
  printf("  %-32s %.3f ms (the machine's floor now)\n",
         "reference: fork+_exit+waitpid", fork_floor(n, reply));
  for (kind = 0; kind < nkinds; kind++) {
    for (i = 0; i < n; i++)
      if (cycle(kind, &hello[i], &reply[i], &end[i]))
        break;
    if (i < n)
      continue;
    qsort(hello, (size_t)n, sizeof(*hello), cmp);
    qsort(reply, (size_t)n, sizeof(*reply), cmp);
    qsort(end, (size_t)n, sizeof(*end), cmp);
    printf("  %-32s hello %7.3f  first reply %7.3f  exit %7.3f ms\n",
           kind_names[kind], hello[n / 2], reply[n / 2], end[n / 2]);
  }
  free(hello);
  free(reply);
  free(end);
  return actor_rt_shutdown(rt) != 0;
}
