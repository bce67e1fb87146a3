/*
 * Test harness for libactor's cmocka tests.
 *
 * Every test program links tests/harness.c and gets:
 *
 *  - a watchdog that turns a hang into a failed test with the stacks of all
 *    threads written to a file (instead of a silent ctest timeout),
 *  - a leak check run after every test: file descriptors, threads and child
 *    processes must be back to what they were before the test,
 *  - assertion macros that print libactor error codes by name,
 *  - "helpers": the test binary re-runs itself with `--helper <name>` to
 *    play the part of a child process (libuv's spawn_helper pattern).
 *
 * A test program looks like this:
 *
 *   static void spawn_and_stop(void **state) {
 *     const char *name = *state;        // the test's name, see TH_TEST
 *     TH_OK(actor_rt_new(&rt, loop));
 *     ...
 *   }
 *
 *   static int echo_helper(int argc, char **argv) { ... return 0; }
 *
 *   static int run_all(void) {        // not "run_tests": a cmocka 1.1 macro
 *     const struct CMUnitTest tests[] = {
 *       TH_TEST(spawn_and_stop),
 *       TH_TEST_T(slow_one, 120),
 *     };
 *     return cmocka_run_group_tests_name("spawn", tests, NULL, NULL);
 *   }
 *
 *   int main(int argc, char **argv) {
 *     static const struct th_helper helpers[] = {
 *       { "echo", echo_helper },
 *       { NULL, NULL },
 *     };
 *     return th_main(argc, argv, helpers, run_all);
 *   }
 *
 * Link with -lcmocka -pthread and with -rdynamic (CMake: ENABLE_EXPORTS ON)
 * so that backtrace_symbols_fd(), used when gdb is unavailable, can name the
 * functions of the test binary itself.
 *
 * Environment variables:
 *   LIBACTOR_TEST_TIMEOUT   seconds; when set (a positive integer) it
 *                           replaces the timeout of every watchdog arm,
 *                           including TH_TEST_T's.
 *   LIBACTOR_TEST_DUMP_DIR  directory for watchdog dump files (default ".");
 *                           its last component is created if missing, and
 *                           if the file cannot be created the dump goes to
 *                           stderr.
 *   LIBACTOR_TEST_NO_GDB    when set and not "0", the watchdog does not try
 *                           gdb and uses in-process backtraces directly.
 *
 * Linux only.  Not thread-safe except where noted: tests run one at a time
 * on the main thread, and the harness keeps per-test state in globals.
 */
#ifndef LIBACTOR_TESTS_HARNESS_H
#define LIBACTOR_TESTS_HARNESS_H

/* cmocka.h wants these first. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "libactor/actor.h"

/* ------------------------------------------------------------------------ */
/* Watchdog                                                                 */
/* ------------------------------------------------------------------------ */

/* Timeout of a test declared with TH_TEST. */
#define TH_DEFAULT_TIMEOUT 30

/* Exit status of a process whose watchdog fired (the same as timeout(1)). */
#define TH_WATCHDOG_EXIT 124

/* Start (or restart) the watchdog: if th_watchdog_disarm() is not called
 * within `seconds` (or $LIBACTOR_TEST_TIMEOUT seconds when that is set), the
 * watchdog thread writes the stacks of all threads and the list of child
 * processes to $LIBACTOR_TEST_DUMP_DIR/watchdog-<test_name>-<pid>.txt,
 * prints one line
 *   WATCHDOG: test '<name>' exceeded <N> s; thread stacks in <file>
 * to stderr, SIGKILLs the process's descendants and calls _exit(124).
 *
 * Re-arming replaces the previous deadline and name.  The first call
 * creates the watchdog thread (all signals blocked, named "th-watchdog");
 * it is never counted by the leak check.  Stacks come from
 * `gdb -batch -p <pid>`; when gdb is missing, cannot attach or
 * $LIBACTOR_TEST_NO_GDB is set, each thread is sent SIGURG and writes its
 * own backtrace() from the signal handler instead.
 *
 * Thread-safe.  A child created by fork() starts with the watchdog disarmed
 * and gets its own thread if it arms it. */
void th_watchdog_arm(const char *test_name, unsigned seconds);

/* Cancel the deadline.  Thread-safe; a no-op when not armed. */
void th_watchdog_disarm(void);

/* ------------------------------------------------------------------------ */
/* Leak snapshot                                                            */
/* ------------------------------------------------------------------------ */

#define TH_SNAP_MAX_FD 1024   /* fds below this are tracked one by one */
#define TH_SNAP_MAX_IDS 512   /* thread and child ids tracked one by one */

/* What a process holds at one moment.  Only the first three fields are
 * meant to be read by tests; the rest lets th_leaks() name what is new. */
struct th_snap {
  int fds;       /* open file descriptors */
  int threads;   /* threads of this process, except the watchdog thread */
  int children;  /* child processes (any state, zombies too) */

  uint64_t fdset[TH_SNAP_MAX_FD / 64];  /* bit per open fd < TH_SNAP_MAX_FD */
  int fds_high;                         /* open fds >= TH_SNAP_MAX_FD */
  int tids[TH_SNAP_MAX_IDS];            /* first TH_SNAP_MAX_IDS threads */
  int child_pids[TH_SNAP_MAX_IDS];      /* first TH_SNAP_MAX_IDS children */
};

/* Record the fds, threads and children of the process now. */
void th_snap_take(struct th_snap *s);

/* Count what exists now but not in `before`: fds (their numbers), threads
 * (their tids) and children (their pids).  When `report` is not NULL, a
 * description of each leaked item (fd and its readlink target, tid and comm,
 * pid, comm and state) is written into it, NUL-terminated and truncated to
 * `n` bytes.  Returns the number of leaked items; never fails the test. */
int th_leaks(const struct th_snap *before, char *report, size_t n);

/* Fail the current test (fail_msg) if th_leaks(before) stays non-zero for
 * about 2 s: things released at the end of a test may take a moment to go
 * (a child that was just killed, a thread finishing its exit). */
void th_assert_no_leaks(const struct th_snap *before);

/* Number of open file descriptors (without the one used to count them). */
int th_count_fds(void);

/* ------------------------------------------------------------------------ */
/* Per-test setup and teardown                                              */
/* ------------------------------------------------------------------------ */

/* What TH_TEST and TH_TEST_T hand to th_setup as the prestate. */
struct th_test_info {
  const char *name;
  unsigned timeout;  /* seconds; 0 means TH_DEFAULT_TIMEOUT */
};

/* Declare a test with the harness's setup and teardown and a timeout of
 * TH_DEFAULT_TIMEOUT (TH_TEST) or `secs` seconds (TH_TEST_T).
 *
 * The test function sees its own name, a `const char *`, in *state.
 *
 * The prestate is a compound literal: use the macros in a file-scope array
 * or in an automatic array inside the function that runs the group (as in
 * the example above), not in a `static` array inside a function, where a
 * compound literal is not a constant. */
#define TH_TEST_T(f, secs)                                                     \
  cmocka_unit_test_prestate_setup_teardown(                                    \
      f, th_setup, th_teardown,                                                \
      ((void *)&(struct th_test_info){#f, (unsigned)(secs)}))
#define TH_TEST(f) TH_TEST_T(f, TH_DEFAULT_TIMEOUT)

/* Setup: arm the watchdog with the test's name and timeout, take the leak
 * snapshot, and set *state to the test's name.  Teardown: disarm, then
 * th_assert_no_leaks() unless the test called th_skip_leak_check().
 * A failing test still gets its teardown, so the leak report may repeat
 * what the failure left behind. */
int th_setup(void **state);
int th_teardown(void **state);

/* Skip the leak check of the running test only.  For the rare test that
 * must leave something behind on purpose: e.g. one that checks that the
 * library abandons a thread stuck in a call it cannot interrupt, or one that
 * warms up a process-wide resource (a thread pool, a global pipe) that lives
 * until exit.  Say why in a comment next to the call. */
void th_skip_leak_check(void);

/* A test of something valgrind emulates unlike the kernel calls this
 * first: in the valgrind lane (LIBACTOR_TEST_VALGRIND set) it is then
 * reported SKIPPED with the reason — never counted as passed — and every
 * other lane runs it. */
#define TH_SKIP_UNDER_VALGRIND(why)                                            \
  do {                                                                         \
    if (getenv("LIBACTOR_TEST_VALGRIND") != NULL) {                            \
      print_message("  skipped under valgrind: %s\n", why);                   \
      skip();                                                                  \
    }                                                                          \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Assertions that name error codes                                         */
/* ------------------------------------------------------------------------ */

/* `expr` (an int) must be 0. */
#define TH_OK(expr)                                                            \
  do {                                                                         \
    int th__r = (expr);                                                        \
    if (th__r != 0)                                                            \
      fail_msg("%s failed: %s (%s)", #expr, actor_err_name(th__r),             \
               actor_strerror(th__r));                                         \
  } while (0)

/* `expr` (an int) must be exactly `code`. */
#define TH_ERR(expr, code)                                                     \
  do {                                                                         \
    int th__r = (expr);                                                        \
    int th__want = (code);                                                     \
    if (th__r != th__want)                                                     \
      fail_msg("%s returned %s (%s), expected %s (%s)", #expr,                 \
               th__r == 0 ? "0" : actor_err_name(th__r),                       \
               th__r == 0 ? "success" : actor_strerror(th__r),                 \
               th__want == 0 ? "0" : actor_err_name(th__want),                 \
               th__want == 0 ? "success" : actor_strerror(th__want));          \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Helpers: the test binary as a child process                              */
/* ------------------------------------------------------------------------ */

/* A helper gets argv from its own name on: `prog --helper echo a b` calls
 * the "echo" helper with argc 3 and argv {"echo", "a", "b", NULL}.  Its
 * return value becomes the exit status of the process. */
typedef int (*th_helper_fn)(int argc, char **argv);

struct th_helper {
  const char *name;
  th_helper_fn fn;
};

/* The body of main().  `helpers` ends with { NULL, NULL } (or is NULL).
 * With argv[1] == "--helper", runs the helper named by argv[2] and returns
 * what it returns; an unknown or missing name prints the known ones to
 * stderr and exits with status 2.  Otherwise returns run_all().
 *
 * Do not call your function run_tests: cmocka 1.1 defines a function-like
 * macro of that name. */
int th_main(int argc, char **argv, const struct th_helper *helpers,
            int (*run_all)(void));

/* Absolute path of the running binary (readlink /proc/self/exe), computed
 * once; never NULL (aborts if /proc is missing).  Thread-safe. */
const char *th_self_exe(void);

/* ------------------------------------------------------------------------ */
/* Utilities                                                                */
/* ------------------------------------------------------------------------ */

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t th_now_ms(void);

#endif /* LIBACTOR_TESTS_HARNESS_H */
