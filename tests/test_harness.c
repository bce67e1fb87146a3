/*
 * Tests of the test harness itself (tests/harness.c).
 *
 * Several tests re-run this binary as a helper (th_main's --helper) to watch
 * the harness fail on purpose from the outside: a watchdog that fires, a
 * TH_OK that fails, a teardown that finds a leak.
 *
 * Link with -rdynamic: when gdb is unavailable (or LIBACTOR_TEST_NO_GDB=1)
 * the watchdog dump comes from backtrace_symbols_fd(), which can only name
 * functions of the executable that are in its dynamic symbol table.
 */
#define _GNU_SOURCE

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The name the watchdog helper arms with, hence part of the dump's name. */
#define WD_HELPER_TEST "harness_watchdog_helper"

/* ------------------------------------------------------------------------ */
/* Tools for these tests                                                    */
/* ------------------------------------------------------------------------ */

/* Read a whole (small) file into a malloc'd NUL-terminated string. */
static char *slurp(const char *path) {
  char *buf;
  size_t len;
  size_t cap;
  ssize_t n;
  int fd;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  cap = 65536;
  len = 0;
  buf = malloc(cap);
  assert_non_null(buf);
  for (;;) {
    if (len + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
    n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  return buf;
}

static void make_temp_dir(char *dir, size_t size) {
  const char *tmp;

  tmp = getenv("TMPDIR");
  snprintf(dir, size, "%s/libactor-harness-XXXXXX",
           tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
  assert_non_null(mkdtemp(dir));
}

static void remove_temp_dir(const char *dir) {
  struct dirent *e;
  char path[PATH_MAX];
  DIR *d;

  d = opendir(dir);
  if (d == NULL)
    return;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

/* Run this binary as `--helper <helper>`, stdout and stderr to out_path.
 * The child's environment is ours without LIBACTOR_TEST_TIMEOUT (which
 * would override the helper's short watchdog), without CMOCKA_* (an XML
 * output setting or a test filter meant for us would hide or skip the
 * helper's own cmocka output) and, if dump_dir is given,
 * with LIBACTOR_TEST_DUMP_DIR=dump_dir.  LIBACTOR_TEST_NO_GDB passes
 * through, so running this test with it set tests the fallback dump. */
static pid_t spawn_helper(const char *helper, const char *dump_dir,
                          const char *out_path) {
  posix_spawn_file_actions_t fa;
  char *argv[4];
  char **envp;
  char *dump_env;
  size_t n;
  size_t i;
  size_t j;
  pid_t pid;
  int err;

  for (n = 0; environ[n] != NULL; n++)
    ;
  envp = calloc(n + 2, sizeof(*envp));
  assert_non_null(envp);
  for (i = 0, j = 0; i < n; i++) {
    if (strncmp(environ[i], "LIBACTOR_TEST_TIMEOUT=", 22) == 0 ||
        strncmp(environ[i], "LIBACTOR_TEST_DUMP_DIR=", 23) == 0 ||
        strncmp(environ[i], "CMOCKA_", 7) == 0)
      continue;
    envp[j++] = environ[i];
  }
  dump_env = NULL;
  if (dump_dir != NULL) {
    assert_true(asprintf(&dump_env, "LIBACTOR_TEST_DUMP_DIR=%s", dump_dir) > 0);
    envp[j++] = dump_env;
  }
  envp[j] = NULL;

  argv[0] = (char *)th_self_exe();
  argv[1] = "--helper";
  argv[2] = (char *)helper;
  argv[3] = NULL;

  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  err = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  free(dump_env);
  free(envp);
  if (err != 0)
    fail_msg("posix_spawn %s: %s", argv[0], strerror(err));
  return pid;
}

/* waitpid with a bound: polls, and SIGKILLs (and reaps) the child if it is
 * still running after `ms`.  Returns 0 with *status set, or -1 on timeout. */
static int wait_bounded(pid_t pid, unsigned ms, int *status) {
  uint64_t start;
  pid_t r;

  start = th_now_ms();
  for (;;) {
    r = waitpid(pid, status, WNOHANG);
    if (r == pid)
      return 0;
    if (r < 0 && errno != EINTR)
      fail_msg("waitpid %d: %s", (int)pid, strerror(errno));
    if (th_now_ms() - start >= ms) {
      kill(pid, SIGKILL);
      while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
      return -1;
    }
    usleep(20 * 1000);
  }
}

/* Poll th_leaks() until it reports `want` items (things take a moment to
 * appear or go away), for at most 2 s.  Returns the last count. */
static int leaks_settle(const struct th_snap *before, int want, char *report,
                        size_t n) {
  uint64_t start;
  int got;

  start = th_now_ms();
  for (;;) {
    got = th_leaks(before, report, n);
    if (got == want || th_now_ms() - start >= 2000)
      return got;
    usleep(10 * 1000);
  }
}

/* ------------------------------------------------------------------------ */
/* Helpers (run in a child by th_main)                                      */
/* ------------------------------------------------------------------------ */

/* Non-static and never inlined so that its name is in the symbol tables
 * (gdb's and, with -rdynamic, backtrace_symbols_fd's) and in its own frame
 * on the stack of the thread that blocks in it. */
void th_test_sleeps_forever_in_helper(void);

__attribute__((noinline))
void th_test_sleeps_forever_in_helper(void) {
  for (;;) {
    sleep(1000);
    /* Keep the loop (and the frame) from being optimised into anything
     * that hides the function. */
    __asm__ volatile("" ::: "memory");
  }
}

static void *sleeper_thread(void *arg) {
  (void)arg;
  th_test_sleeps_forever_in_helper();
  return NULL;
}

/* Arms a 1 s watchdog, then blocks forever: the watchdog must dump the
 * stacks and exit with 124. */
static int helper_watchdog_sleeper(int argc, char **argv) {
  pthread_t t;

  (void)argc;
  (void)argv;
  th_watchdog_arm(WD_HELPER_TEST, 1);
  if (pthread_create(&t, NULL, sleeper_thread, NULL) != 0)
    return 3;
  pthread_join(t, NULL);
  return 4;  /* not reached */
}

/* A cmocka group whose only test fails in TH_OK, to see the message. */
static void failing_th_ok(void **state) {
  (void)state;
  TH_OK(ACTOR_ECLOSED);
}

static void failing_th_err(void **state) {
  (void)state;
  TH_ERR(-ENOENT, ACTOR_ENOFUNC);
}

static int helper_th_ok_fails(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    TH_TEST(failing_th_ok),
    TH_TEST(failing_th_err),
  };

  (void)argc;
  (void)argv;
  return cmocka_run_group_tests_name("th_ok_fails", tests, NULL, NULL);
}

/* A cmocka group whose only test leaks an fd: its teardown must fail. */
static void leaks_dev_null(void **state) {
  (void)state;
  assert_true(open("/dev/null", O_RDONLY) >= 0);
}

static int helper_teardown_leak(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    TH_TEST(leaks_dev_null),
  };

  (void)argc;
  (void)argv;
  return cmocka_run_group_tests_name("teardown_leak", tests, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

static void harness_watchdog_fires_and_dumps_stacks(void **state) {
  char dir[512];
  char out_path[600];
  char dump_path[700];
  char want[800];
  struct stat st;
  char *dump;
  char *out;
  pid_t pid;
  int status;

  (void)state;
  make_temp_dir(dir, sizeof(dir));
  snprintf(out_path, sizeof(out_path), "%s/helper-output.txt", dir);

  pid = spawn_helper("watchdog_sleeper", dir, out_path);
  if (wait_bounded(pid, 15000, &status) != 0) {
    remove_temp_dir(dir);
    fail_msg("the watchdog helper still ran after 15 s");
  }

  out = slurp(out_path);
  snprintf(dump_path, sizeof(dump_path), "%s/watchdog-%s-%d.txt", dir,
           WD_HELPER_TEST, (int)pid);
  dump = slurp(dump_path);

  if (!WIFEXITED(status) || WEXITSTATUS(status) != TH_WATCHDOG_EXIT) {
    print_message("helper output:\n%s\n", out != NULL ? out : "(none)");
    fail_msg("helper status 0x%x, expected exit %d", status, TH_WATCHDOG_EXIT);
  }
  assert_non_null(out);
  snprintf(want, sizeof(want),
           "WATCHDOG: test '%s' exceeded 1 s; thread stacks in %s\n",
           WD_HELPER_TEST, dump_path);
  if (strstr(out, want) == NULL)
    fail_msg("no watchdog line in the helper's stderr:\n%s", out);

  assert_int_equal(stat(dump_path, &st), 0);
  assert_non_null(dump);
  if (strstr(dump, "th_test_sleeps_forever_in_helper") == NULL ||
      strstr(dump, "Thread") == NULL)
    fail_msg("the dump lacks the sleeping thread's stack:\n%s", dump);
  assert_non_null(strstr(dump, "WATCHDOG: test '" WD_HELPER_TEST "'"));
  assert_non_null(strstr(dump, "=== child processes of pid"));

  if (getenv("LIBACTOR_TEST_NO_GDB") != NULL)
    assert_non_null(strstr(dump, "gdb: skipped"));
  print_message("watchdog dump made by %s (%zu bytes)\n",
                strstr(dump, "stacks from backtrace()") != NULL
                    ? "backtrace() in each thread"
                    : "gdb",
                strlen(dump));

  free(dump);
  free(out);
  remove_temp_dir(dir);
}

static void harness_watchdog_rearm_and_disarm(void **state) {
  const char *name;

  name = *state;
  /* Disarm must cancel the deadline. */
  th_watchdog_arm(name, 1);
  th_watchdog_disarm();
  usleep(1300 * 1000);
  /* Re-arming must replace the deadline, not add one. */
  th_watchdog_arm(name, 1);
  th_watchdog_arm(name, 5);
  usleep(1300 * 1000);
  /* Still alive: neither deadline fired.  Teardown disarms. */
}

static void harness_leak_check_detects_fd(void **state) {
  struct th_snap before;
  char report[1024];
  int fds;
  int fd;

  (void)state;
  th_snap_take(&before);
  assert_int_equal(th_leaks(&before, report, sizeof(report)), 0);
  assert_string_equal(report, "");

  fds = th_count_fds();
  assert_int_equal(fds, before.fds);
  fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(th_count_fds(), fds + 1);

  assert_int_equal(th_leaks(&before, report, sizeof(report)), 1);
  if (strstr(report, "/dev/null") == NULL)
    fail_msg("the report does not name /dev/null:\n%s", report);
  /* Without a report buffer, it only counts. */
  assert_int_equal(th_leaks(&before, NULL, 0), 1);

  close(fd);
  assert_int_equal(th_leaks(&before, report, sizeof(report)), 0);
}

static void harness_leak_check_detects_child(void **state) {
  struct th_snap before;
  char report[1024];
  char want[64];
  pid_t pid;
  int status;

  (void)state;
  th_snap_take(&before);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* Only async-signal-safe calls in the child of a threaded process. */
    for (;;)
      pause();
  }

  snprintf(want, sizeof(want), "leaked child pid %d ", (int)pid);
  assert_int_equal(th_leaks(&before, report, sizeof(report)), 1);
  if (strstr(report, want) == NULL)
    fail_msg("the report does not name pid %d:\n%s", (int)pid, report);

  /* A killed but unreaped child (a zombie) is still a leak. */
  assert_int_equal(kill(pid, SIGKILL), 0);
  {
    uint64_t start = th_now_ms();

    for (;;) {
      assert_int_equal(th_leaks(&before, report, sizeof(report)), 1);
      if (strstr(report, "state Z") != NULL)
        break;
      if (th_now_ms() - start >= 2000)
        fail_msg("the child never showed as a zombie:\n%s", report);
      usleep(10 * 1000);
    }
  }

  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  assert_int_equal(leaks_settle(&before, 0, report, sizeof(report)), 0);
}

static void *blocked_reader(void *arg) {
  char c;

  while (read(*(int *)arg, &c, 1) < 0 && errno == EINTR)
    ;
  return NULL;
}

static void harness_leak_check_detects_thread(void **state) {
  struct th_snap before;
  char report[1024];
  pthread_t t;
  int fds[2];

  (void)state;
  assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
  th_snap_take(&before);

  assert_int_equal(pthread_create(&t, NULL, blocked_reader, &fds[0]), 0);
  assert_int_equal(pthread_setname_np(t, "th-leaky"), 0);
  assert_int_equal(th_leaks(&before, report, sizeof(report)), 1);
  if (strstr(report, "th-leaky") == NULL)
    fail_msg("the report does not name the thread:\n%s", report);

  assert_int_equal(write(fds[1], "x", 1), 1);
  assert_int_equal(pthread_join(t, NULL), 0);
  /* The task may linger in /proc for a moment after the join. */
  assert_int_equal(leaks_settle(&before, 0, report, sizeof(report)), 0);
  close(fds[0]);
  close(fds[1]);
}

static void harness_state_is_test_name(void **state) {
  assert_non_null(*state);
  assert_string_equal((const char *)*state, "harness_state_is_test_name");
  TH_OK(0);
  TH_ERR(0, 0);
  TH_ERR(ACTOR_ECLOSED, ACTOR_ECLOSED);
  TH_ERR(-ENOENT, -ENOENT);
  assert_true(th_self_exe()[0] == '/');
}

/* Runs a helper that must fail and returns its output (malloc'd).
 * want_status -1 accepts any non-zero exit status: what cmocka returns for
 * failed tests (a count of failures, of errors, or both) varies across
 * versions. */
static char *run_failing_helper(const char *helper, int want_status) {
  char dir[512];
  char out_path[600];
  char *out;
  pid_t pid;
  int status;

  make_temp_dir(dir, sizeof(dir));
  snprintf(out_path, sizeof(out_path), "%s/helper-output.txt", dir);
  pid = spawn_helper(helper, NULL, out_path);
  if (wait_bounded(pid, 15000, &status) != 0) {
    remove_temp_dir(dir);
    fail_msg("helper %s still ran after 15 s", helper);
  }
  out = slurp(out_path);
  remove_temp_dir(dir);
  assert_non_null(out);
  if (!WIFEXITED(status) ||
      (want_status >= 0 ? WEXITSTATUS(status) != want_status
                        : WEXITSTATUS(status) == 0)) {
    print_message("helper output:\n%s\n", out);
    free(out);
    fail_msg("helper %s: status 0x%x, expected exit %d", helper, status,
             want_status);
  }
  return out;
}

static void harness_th_ok_prints_error_names(void **state) {
  char *out;

  (void)state;
  out = run_failing_helper("th_ok_fails", -1);
  if (strstr(out, "ACTOR_ECLOSED failed: ACTOR_ECLOSED (the actor ended "
                  "before answering)") == NULL ||
      strstr(out, "-ENOENT returned ENOENT (") == NULL ||
      strstr(out, "expected ACTOR_ENOFUNC (no such function in the actor)") ==
          NULL) {
    print_message("helper output:\n%s\n", out);
    free(out);
    fail_msg("unexpected TH_OK/TH_ERR messages");
  }
  free(out);
}

static void harness_teardown_reports_leak(void **state) {
  char *out;

  (void)state;
  out = run_failing_helper("teardown_leak", -1);
  if (strstr(out, "test 'leaks_dev_null' leaked 1 item(s)") == NULL ||
      strstr(out, "-> /dev/null") == NULL) {
    print_message("helper output:\n%s\n", out);
    free(out);
    fail_msg("the teardown did not report the leaked fd");
  }
  free(out);
}

static void harness_unknown_helper_exits_2(void **state) {
  char *out;

  (void)state;
  out = run_failing_helper("no_such_helper", 2);
  if (strstr(out, "unknown helper 'no_such_helper'") == NULL ||
      strstr(out, "watchdog_sleeper") == NULL) {
    print_message("helper output:\n%s\n", out);
    free(out);
    fail_msg("no useful message for an unknown helper");
  }
  free(out);
}

static int run_harness_tests(void) {
  const struct CMUnitTest tests[] = {
    /* Bounded at 15 s inside; the harness's own watchdog sits above. */
    TH_TEST_T(harness_watchdog_fires_and_dumps_stacks, 60),
    TH_TEST(harness_watchdog_rearm_and_disarm),
    TH_TEST(harness_leak_check_detects_fd),
    TH_TEST(harness_leak_check_detects_child),
    TH_TEST(harness_leak_check_detects_thread),
    TH_TEST(harness_state_is_test_name),
    TH_TEST(harness_th_ok_prints_error_names),
    TH_TEST(harness_teardown_reports_leak),
    TH_TEST(harness_unknown_helper_exits_2),
  };

  return cmocka_run_group_tests_name("harness", tests, NULL, NULL);
}

int main(int argc, char **argv) {
  static const struct th_helper helpers[] = {
    { "watchdog_sleeper", helper_watchdog_sleeper },
    { "th_ok_fails", helper_th_ok_fails },
    { "teardown_leak", helper_teardown_leak },
    { NULL, NULL },
  };

  return th_main(argc, argv, helpers, run_harness_tests);
}
