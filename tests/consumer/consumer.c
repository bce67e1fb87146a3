/*
 * An out-of-tree program that uses an installed libactor the way a user
 * would: through <libactor/actor.h> and nothing else, found either by CMake
 * (find_package(libactor) -> libactor::actor / libactor::actor_static /
 * libactor::actor_python) or by pkg-config (libactor.pc,
 * libactor-python.pc).  tests/consumer/run.sh builds and runs it.
 *
 *   consumer [PYDIR]
 *
 * Built with CONSUMER_PYTHON (linked against libactor-python), it also runs
 * the Python actor PYDIR/consumer_actor.py on subint, subproc and
 * forkserver, and the subint_fork probe: the helper programs (actor-pyhost,
 * subint-fork-probe, actor-forkserver) must be found where the library is
 * installed, with no environment variable pointing at them (run.sh unsets
 * them).
 *
 * Exit status 0 only if every check holds.
 */
#include <libactor/actor.h>

#include <stdio.h>
#include <string.h>

#ifndef CONSUMER_KIND
#define CONSUMER_KIND "consumer"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

static int failures;

static void check(int ok, const char *what) {
  printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok)
    failures++;
}

#ifdef CONSUMER_PYTHON
struct py_call {
  int done, status;
  unsigned char value;
  char err[256];
  int exited;
};

static void py_on_exit(actor *a, void *arg) {
  (void)a;
  ((struct py_call *)arg)->exited = 1;
}

static void py_on_call(actor_call *c, int ev, int status, const char *d,
                       size_t n, void *arg) {
  struct py_call *pc = arg;
  if (ev != ACTOR_EV_DONE)
    return;
  pc->done = 1;
  pc->status = status;
  if (status == 0 && n == 1)
    pc->value = (unsigned char)d[0]; /* a positive fixint */
  else if (status != 0)
    snprintf(pc->err, sizeof(pc->err), "%s: %s", actor_call_error_type(c),
             actor_call_error_message(c));
}

/* Spawn consumer_actor:main on `backend`, call add(2, 3), stop it. */
static void python_actor(actor_rt *rt, const char *backend, const char *dir) {
  static const char args[] = {(char)0x92, 0x02, 0x03}; /* [2, 3] */
  struct py_call pc = {0, 0, 0, "", 0};
  char what[96];
  actor_opts *o = NULL;
  actor *a = NULL;
  int rc;

  rc = actor_opts_new(&o);
  if (rc == 0)
    rc = actor_opts_set_backend(o, backend);
  if (rc == 0)
    rc = actor_opts_set_entry(o, "consumer_actor:main");
  if (rc == 0)
    rc = actor_opts_add_path(o, dir);
  if (rc == 0)
    rc = actor_opts_on_exit(o, py_on_exit, &pc);
  if (rc == 0)
    rc = actor_spawn(rt, o, &a);
  actor_opts_free(o);
  snprintf(what, sizeof(what), "%s: spawn consumer_actor:main", backend);
  check(rc == 0, what);
  if (rc != 0) {
    printf("       %s: %s\n", actor_err_name(rc), actor_rt_errmsg(rt));
    return;
  }
  rc = actor_call_start(a, "add", args, sizeof(args), py_on_call, &pc, NULL);
  while (rc == 0 && !pc.done)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
  snprintf(what, sizeof(what), "%s: add(2, 3) == 5", backend);
  check(rc == 0 && pc.status == 0 && pc.value == 5, what);
  if (rc != 0 || pc.status != 0)
    printf("       %s %s\n", actor_err_name(rc ? rc : pc.status), pc.err);
  /* The handle is freed once the exit callback has run: an actor that
   * died (the failure above) must not be stopped again. */
  if (!pc.exited)
    actor_stop(a);
  while (!pc.exited)
    actor_rt_run(rt, ACTOR_RUN_ONCE);
}
#endif

int main(int argc, char **argv) {
  const char *why = NULL;
  actor_rt *rt = NULL;
  int rc;

  printf("%s: libactor %s (header %s)\n", CONSUMER_KIND,
         actor_version_string(),
         STR(ACTOR_VERSION_MAJOR) "." STR(ACTOR_VERSION_MINOR) "." STR(
             ACTOR_VERSION_PATCH));

  /* The library we run against is the one whose header we compiled with. */
  check(actor_version() == ACTOR_VERSION_HEX, "actor_version() == ACTOR_VERSION_HEX");
  check(strcmp(actor_version_string(),
               STR(ACTOR_VERSION_MAJOR) "." STR(ACTOR_VERSION_MINOR) "." STR(
                   ACTOR_VERSION_PATCH)) == 0,
        "actor_version_string() matches the header");

  rc = actor_rt_new(&rt, NULL);
  check(rc == 0 && rt != NULL, "actor_rt_new(&rt, NULL) == 0");
  if (rc != 0)
    printf("       actor_rt_new: %s (%s)\n", actor_err_name(rc), actor_strerror(rc));

  why = NULL;
  rc = actor_backend_available("subproc", &why);
  check(rc == 0, "actor_backend_available(\"subproc\") == 0");
  if (rc != 0)
    printf("       got %s: %s\n", actor_err_name(rc), why ? why : "(no reason)");

  why = NULL;
  rc = actor_backend_available("nope", &why);
  check(rc == ACTOR_ENOBACKEND, "actor_backend_available(\"nope\") == ACTOR_ENOBACKEND");
  if (rc != ACTOR_ENOBACKEND)
    printf("       got %d (%s)\n", rc, actor_err_name(rc));
  check(strcmp(actor_err_name(ACTOR_ENOBACKEND), "ACTOR_ENOBACKEND") == 0,
        "actor_err_name(ACTOR_ENOBACKEND) == \"ACTOR_ENOBACKEND\"");

#ifdef CONSUMER_PYTHON
  {
    const char *dir = argc > 1 ? argv[1] : ".";
    char evidence[2048];
    int blocked = 0;

    why = NULL;
    rc = actor_backend_available("subint", &why);
    check(rc == 0, "actor_backend_available(\"subint\") == 0");
    if (rc != 0)
      printf("       got %s: %s\n", actor_err_name(rc), why ? why : "(no reason)");
    if (rt != NULL) {
      python_actor(rt, "subint", dir);
      python_actor(rt, "subproc", dir); /* runs the actor-pyhost helper */
      python_actor(rt, "forkserver", dir); /* the actor-forkserver helper */
    }
    /* Runs the subint-fork-probe helper. */
    rc = actor_subint_fork_probe(&blocked, evidence, sizeof(evidence));
    check(rc == 0 && blocked == 1,
          "actor_subint_fork_probe() ran the helper: fork from a subinterpreter blocked");
    if (rc != 0 || blocked != 1)
      printf("       got %s, blocked %d: %s\n", rc ? actor_err_name(rc) : "0",
             blocked, evidence);
  }
#else
  (void)argc;
  (void)argv;
#endif

  if (rt != NULL) {
    rc = actor_rt_shutdown(rt);
    check(rc == 0, "actor_rt_shutdown(rt) == 0");
    if (rc != 0)
      printf("       actor_rt_shutdown: %s (%s)\n", actor_err_name(rc), actor_strerror(rc));
  }

  printf("%s: %s\n", CONSUMER_KIND, failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
