/*
 * An out-of-tree program that uses an installed libactor the way a user
 * would: through <actor.h> and nothing else, found either by CMake
 * (find_package(libactor) -> libactor::actor / libactor::actor_static) or
 * by pkg-config (libactor.pc).  tests/consumer/run.sh builds and runs it.
 *
 * Exit status 0 only if every check holds.
 */
#include <actor.h>

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

int main(void) {
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

  if (rt != NULL) {
    rc = actor_rt_shutdown(rt);
    check(rc == 0, "actor_rt_shutdown(rt) == 0");
    if (rc != 0)
      printf("       actor_rt_shutdown: %s (%s)\n", actor_err_name(rc), actor_strerror(rc));
  }

  printf("%s: %s\n", CONSUMER_KIND, failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
