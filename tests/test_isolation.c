/* subproc isolation: what a child inherits from its host (descriptors,
 * environment, signals), how the stop escalation reaches the processes an
 * actor started itself, and the host's faults (killed outright, out of
 * descriptors). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

extern char **environ;

/* ======================================================================== */
/* Child side                                                               */
/* ======================================================================== */

/* What the child had when it started, before its runtime opened anything:
 * "fd:target|" for each descriptor, and the signal state. */
static char g_fds[2048];
static char g_sigs[128];

static void snap_start(void) {
  char path[64], target[256], line[256];
  struct dirent *e;
  size_t off = 0;
  ssize_t n;
  FILE *f;
  DIR *d;

  d = opendir("/proc/self/fd");
  while (d != NULL && (e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == dirfd(d))
      continue;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    off += (size_t)snprintf(g_fds + off, sizeof(g_fds) - off, "%d:%s|", fd,
                            target);
    if (off >= sizeof(g_fds))
      break;
  }
  if (d != NULL)
    closedir(d);
  f = fopen("/proc/self/status", "r");
  while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "SigBlk:", 7) == 0 || strncmp(line, "SigIgn:", 7) == 0) {
      line[strcspn(line, "\n")] = '\0';
      strncat(g_sigs, line, sizeof(g_sigs) - strlen(g_sigs) - 2);
      strcat(g_sigs, " ");
    }
  }
  if (f != NULL)
    fclose(f);
}

/* The first element of an array argument: an int, or a str copied out. */
static int64_t arg0(const char *a, size_t n, char *str, size_t cap) {
  msgpack_unpacked u;
  size_t off = 0;
  int64_t v = 0;
  if (str != NULL)
    str[0] = '\0';
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, a, n, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size > 0) {
    msgpack_object *o = &u.data.via.array.ptr[0];
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      v = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_STR && str != NULL)
      snprintf(str, cap, "%.*s", (int)o->via.str.size, o->via.str.ptr);
  }
  msgpack_unpacked_destroy(&u);
  return v;
}

static int fn_fds(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ts_ret_str(x, g_fds);
}

static int fn_signals(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ts_ret_str(x, g_sigs);
}

static int fn_getenv(actor_ctx *x, const char *a, size_t n, void *arg) {
  char name[128];
  const char *v;
  arg0(a, n, name, sizeof(name));
  v = getenv(name);
  return ts_ret_str(x, v ? v : "<unset>");
}

static int fn_environ(actor_ctx *x, const char *a, size_t n, void *arg) {
  char buf[4096] = "";
  size_t i;
  for (i = 0; environ[i] != NULL; i++) {
    strncat(buf, environ[i], sizeof(buf) - strlen(buf) - 2);
    strcat(buf, "\n");
  }
  return ts_ret_str(x, buf);
}

static int fn_name(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ts_ret_str(x, actor_child_name(actor_ctx_child(x)));
}

static int fn_pid(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ts_ret_int(x, getpid());
}

/* Start a plain process (not an actor) running helper `what` of this
 * binary; return its pid once it has exec'd (a close-on-exec pipe says
 * so), so that what the fork child set up before exec is in place. */
static int start_grandchild(const char *what, int deaf_to_term) {
  int p[2], pid;
  char c;
  if (pipe2(p, O_CLOEXEC))
    return -1;
  pid = fork();
  if (pid == 0) {
    if (deaf_to_term)
      signal(SIGTERM, SIG_IGN); /* kept across exec */
    execl(th_self_exe(), th_self_exe(), "--helper", what, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  while (read(p[0], &c, 1) < 0 && errno == EINTR)
    ;
  close(p[0]);
  return pid;
}

/* sleeper(deaf): a plain grandchild that sleeps; deaf: it ignores SIGTERM. */
static int fn_sleeper(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ts_ret_int(x, start_grandchild("sleep", (int)arg0(a, n, NULL, 0)));
}

/* A plain grandchild that writes to our stdout (a capture pipe) as fast as
 * it can. */
static int fn_flood(actor_ctx *x, const char *a, size_t n, void *arg) {
  return ts_ret_int(x, start_grandchild("flood", 0));
}

/* Blocks the actor's loop: STOP is not read while it sleeps. */
static int fn_block(actor_ctx *x, const char *a, size_t n, void *arg) {
  int64_t ms = arg0(a, n, NULL, 0);
  usleep((useconds_t)ms * 1000);
  return ts_ret_int(x, ms);
}

struct later {
  uv_timer_t t;
  int code;
};
static void later_fire(uv_timer_t *t) {
  _exit(((struct later *)t->data)->code);
}

/* exit_after(ms): answers at once, _exits ms later. */
static int fn_exit_after(actor_ctx *x, const char *a, size_t n, void *arg) {
  static struct later l;
  l.code = 3;
  uv_timer_init(actor_child_loop(actor_ctx_child(x)), &l.t);
  l.t.data = &l;
  uv_timer_start(&l.t, later_fire, (uint64_t)arg0(a, n, NULL, 0), 0);
  return ts_ret_int(x, 0);
}

static int fn_exit_now(actor_ctx *x, const char *a, size_t n, void *arg) {
  _exit((int)arg0(a, n, NULL, 0));
}

static int helper_iso(int argc, char **argv) {
  actor_child *c;
  int r;
  snap_start();
  r = actor_child_new(&c, NULL);
  if (r) {
    fprintf(stderr, "iso: %s\n", actor_strerror(r));
    return 2;
  }
  actor_child_register(c, "fds", fn_fds, NULL);
  actor_child_register(c, "signals", fn_signals, NULL);
  actor_child_register(c, "getenv", fn_getenv, NULL);
  actor_child_register(c, "environ", fn_environ, NULL);
  actor_child_register(c, "name", fn_name, NULL);
  actor_child_register(c, "pid", fn_pid, NULL);
  actor_child_register(c, "sleeper", fn_sleeper, NULL);
  actor_child_register(c, "flood", fn_flood, NULL);
  actor_child_register(c, "block", fn_block, NULL);
  actor_child_register(c, "exit_after", fn_exit_after, NULL);
  actor_child_register(c, "exit_now", fn_exit_now, NULL);
  r = actor_child_run(c);
  actor_child_free(c);
  return r;
}

/* A plain process: sleeps, bounded so that nothing lingers for long if a
 * test fails before it ends it. */
static int helper_sleep(int argc, char **argv) {
  int i;
  for (i = 0; i < 600; i++)
    usleep(100 * 1000);
  return 0;
}

/* Writes short lines to stdout, 64 KiB per write — faster than a reader
 * taking a few KiB per read can drain — until the pipe closes (or 60 s). */
static int helper_flood(int argc, char **argv) {
  static char buf[64 * 1024];
  uint64_t t0 = th_now_ms();
  size_t i;
  signal(SIGPIPE, SIG_DFL);
  /* A pipe holding 1 MiB (the unprivileged maximum) stays full: a reader
   * that stops only when it finds the pipe empty never stops. */
  fcntl(1, F_SETPIPE_SZ, 1024 * 1024);
  for (i = 0; i < sizeof(buf); i++)
    buf[i] = i % 64 == 63 ? '\n' : 'x';
  while (th_now_ms() - t0 < 60000)
    if (write(1, buf, sizeof(buf)) < 0 && errno != EINTR)
      break;
  return 0;
}

/* ---- helper hosts: processes that play the host ------------------------- */

static int g_report_fd = -1;

/* A host whose stdin, stdout and stderr are closed spawns an iso actor and
 * writes the child's descriptor listing to the fd given as argv[1]. */
struct listing {
  int done;
  char s[2048];
};
static void listing_cb(actor_call *c, int ev, int status, const char *d,
                       size_t n, void *arg) {
  struct listing *l = arg;
  msgpack_unpacked u;
  size_t off = 0;
  if (ev != ACTOR_EV_DONE)
    return;
  l->done = 1;
  snprintf(l->s, sizeof(l->s), "call failed: %s", actor_err_name(status));
  msgpack_unpacked_init(&u);
  if (status == 0 &&
      msgpack_unpack_next(&u, d, n, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_STR)
    snprintf(l->s, sizeof(l->s), "%.*s", (int)u.data.via.str.size,
             u.data.via.str.ptr);
  msgpack_unpacked_destroy(&u);
}

static int helper_closed_stdio_host(int argc, char **argv) {
  struct listing l;
  actor_rt *rt;
  actor_opts *o;
  actor *a;
  int r;

  g_report_fd = atoi(argv[1]);
  memset(&l, 0, sizeof(l));
  if (actor_rt_new(&rt, NULL) || actor_opts_new(&o))
    return 2;
  /* After the loop's own descriptors exist (else they would be 0..2): the
   * channel's socketpair now gets 0 and 1. */
  close(0);
  close(1);
  close(2);
  actor_opts_set_program(o, th_self_exe());
  actor_opts_add_arg(o, "--helper");
  actor_opts_add_arg(o, "iso");
  actor_opts_set_deadlines(o, 5000, 1000, 1000, 1000);
  r = actor_spawn(rt, o, &a);
  actor_opts_free(o);
  if (r) {
    snprintf(l.s, sizeof(l.s), "spawn failed: %s", actor_rt_errmsg(rt));
  } else {
    actor_call_start(a, "fds", NULL, 0, listing_cb, &l, NULL);
    while (!l.done && actor_rt_run(rt, ACTOR_RUN_ONCE))
      ;
  }
  if (write(g_report_fd, l.s, strlen(l.s)) < 0)
    return 4;
  actor_rt_shutdown(rt);
  return 0;
}

/* The tree host: 5 actors, each with a grandchild actor of its own; writes
 * the 10 pids to the fd given as argv[1], then serves until killed. */
#define TREE_N 5
static int g_tree_pids[2 * TREE_N];
static int g_tree_got;

static void tree_pid_cb(actor_call *c, int ev, int status, const char *d,
                        size_t n, void *arg) {
  int *slot = arg;
  if (ev != ACTOR_EV_DONE)
    return;
  *slot = status == 0 ? (int)ts_unpack_int(d, n) : -1;
  if (++g_tree_got == 2 * TREE_N &&
      write(g_report_fd, g_tree_pids, sizeof(g_tree_pids)) !=
          sizeof(g_tree_pids))
    _exit(5);
}

static void tree_add_cb(actor_call *c, int ev, int status, const char *d,
                        size_t n, void *arg) {
  int i = (int)(intptr_t)arg;
  if (ev != ACTOR_EV_DONE)
    return;
  if (status != 0)
    _exit(6);
  /* The grandchild exists now: ask both pids. */
  actor_call_start(actor_call_actor(c), "pid", NULL, 0, tree_pid_cb,
                   &g_tree_pids[2 * i], NULL);
  actor_call_start(actor_call_actor(c), "tree_pid", NULL, 0, tree_pid_cb,
                   &g_tree_pids[2 * i + 1], NULL);
}

static int helper_tree_host(int argc, char **argv) {
  static const unsigned char args[] = {0x92, 0x01, 0x02}; /* [1, 2] */
  actor_rt *rt;
  actor_opts *o;
  actor *a;
  int i;

  g_report_fd = atoi(argv[1]);
  if (actor_rt_new(&rt, NULL) || actor_opts_new(&o))
    return 2;
  actor_opts_set_program(o, th_self_exe());
  actor_opts_add_arg(o, "--helper");
  actor_opts_add_arg(o, "actor");
  for (i = 0; i < TREE_N; i++) {
    if (actor_spawn(rt, o, &a))
      return 3;
    actor_call_start(a, "tree_add", (const char *)args, sizeof(args),
                     tree_add_cb, (void *)(intptr_t)i, NULL);
  }
  actor_opts_free(o);
  actor_rt_run(rt, ACTOR_RUN_DEFAULT);
  return 0;
}

/* ======================================================================== */
/* Parent side                                                              */
/* ======================================================================== */

static actor *spawn_iso(struct ts *t, struct ts_exit *ex, actor_opts *o) {
  return ts_spawn_opts(t, o != NULL ? o : ts_opts("iso"), ex);
}

/* Call fn(arg) and wait for the answer. */
static void call_wait(struct ts *t, actor *a, const char *fn, int64_t arg,
                      struct ts_call *r) {
  TH_OK(ts_call_ints(a, fn, &arg, 1, r, NULL));
  ts_wait(t, &r->done, 10000);
  TH_OK(r->status);
}

static void call_str_wait(struct ts *t, actor *a, const char *fn,
                          const char *arg, struct ts_call *r) {
  TH_OK(ts_call_str(a, fn, arg, r));
  ts_wait(t, &r->done, 10000);
  TH_OK(r->status);
}

/* Split a "fd:target|" listing; returns the number of fds. */
static int parse_fds(const char *s, int *fds, char targets[][128], int max) {
  int n = 0;
  while (*s != '\0' && n < max) {
    const char *colon = strchr(s, ':'), *bar = strchr(s, '|');
    if (colon == NULL || bar == NULL || colon > bar)
      break;
    fds[n] = atoi(s);
    snprintf(targets[n], 128, "%.*s", (int)(bar - colon - 1), colon + 1);
    n++;
    s = bar + 1;
  }
  return n;
}

/* The child's listing must be exactly 0..3, with 0 and `null_fds` on
 * /dev/null, `pipe_fds` on pipes, and 3 the channel socket. */
static void assert_child_fds(const char *listing, unsigned null_fds,
                             unsigned pipe_fds) {
  int fds[64], n, i;
  char targets[64][128];
  n = parse_fds(listing, fds, targets, 64);
  if (n != 4)
    fail_msg("the child has %d fds, not 4: %s", n, listing);
  for (i = 0; i < 4; i++) {
    if (fds[i] != i)
      fail_msg("fd %d in the child: %s", fds[i], listing);
    if ((null_fds | 1u) & (1u << i))
      assert_string_equal(targets[i], "/dev/null");
    if (pipe_fds & (1u << i) && strncmp(targets[i], "pipe:", 5) != 0)
      fail_msg("fd %d is not a pipe: %s", i, listing);
  }
  if (strncmp(targets[3], "socket:", 7) != 0)
    fail_msg("fd 3 is not the channel: %s", listing);
}

/* 1 when pid has ended: gone from /proc, or a zombie nobody reaped yet. */
static int pid_gone(int pid) {
  char path[64], buf[512], st = '?';
  FILE *f;
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  f = fopen(path, "r");
  if (f == NULL)
    return 1;
  if (fgets(buf, sizeof(buf), f) != NULL) {
    char *rp = strrchr(buf, ')');
    if (rp != NULL && rp[1] == ' ')
      st = rp[2];
  }
  fclose(f);
  return st == 'Z' || st == 'X';
}

/* Milliseconds until pid has ended; fails the test after `ms`. */
static uint64_t wait_gone(int pid, unsigned ms) {
  uint64_t t0 = th_now_ms();
  while (!pid_gone(pid)) {
    if (th_now_ms() - t0 > ms)
      fail_msg("process %d still running %u ms later", pid, ms);
    usleep(2000);
  }
  return th_now_ms() - t0;
}

/* Run helper host `name` of this binary as a child process, with the write
 * end of a pipe as its argv[1]; *rfd is the read end. */
static pid_t start_helper_host(const char *name, int *rfd) {
  char fdarg[16];
  int p[2];
  pid_t pid;

  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int w = fcntl(p[1], F_DUPFD, 10); /* inheritable across exec */
    snprintf(fdarg, sizeof(fdarg), "%d", w);
    execl(th_self_exe(), th_self_exe(), "--helper", name, fdarg, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  *rfd = p[0];
  return pid;
}

/* ---- descriptors -------------------------------------------------------- */

/* An open file, a listening TCP socket and a pipe, all inheritable, one of
 * them at a high number: none reaches the child, whatever its stdio. */
static void fault_child_fds_are_only_stdio_and_channel(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  struct sockaddr_in sin;
  int file, lsock, p[2], high;
  actor_opts *o;
  actor *a;

  file = open(th_self_exe(), O_RDONLY);
  lsock = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(file >= 0 && lsock >= 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(lsock, (struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(listen(lsock, 4), 0);
  assert_int_equal(pipe(p), 0);
  high = dup2(file, 900);
  assert_int_equal(high, 900);

  ts_start(&t);
  a = spawn_iso(&t, &ex, NULL);
  call_wait(&t, a, "fds", 0, &r);
  print_message("child fds, stdio inherited: %s\n", r.str);
  assert_child_fds(r.str, 0, 0);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);

  o = ts_opts("iso");
  TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_set_stdio(o, 2, ACTOR_STDIO_DISCARD));
  a = spawn_iso(&t, &ex, o);
  call_wait(&t, a, "fds", 0, &r);
  print_message("child fds, stdout captured, stderr discarded: %s\n", r.str);
  assert_child_fds(r.str, 1u << 2, 1u << 1);
  ts_finish(&t);

  close(file);
  close(lsock);
  close(p[0]);
  close(p[1]);
  close(high);
}

/* A host with 0, 1 and 2 closed: the channel and the child's stdio still
 * land where they belong, and the child gets /dev/null rather than a hole
 * its first open() would fill. */
static void
isolation_host_with_closed_stdio_gives_the_child_devnull(void **state) {
  char buf[2048];
  int rfd, st;
  ssize_t n;
  size_t got = 0;
  pid_t host;

  host = start_helper_host("closed_stdio_host", &rfd);
  while ((n = read(rfd, buf + got, sizeof(buf) - 1 - got)) > 0)
    got += (size_t)n;
  buf[got] = '\0';
  close(rfd);
  assert_int_equal(waitpid(host, &st, 0), host);
  print_message("child fds, host stdio closed: %s\n", buf);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  assert_child_fds(buf, (1u << 1) | (1u << 2), 0);
}

/* ---- signals ------------------------------------------------------------ */

/* The host's ignored signals and blocked mask do not reach the child (exec
 * would keep both). */
static void
isolation_child_starts_with_default_signals_and_empty_mask(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  struct sigaction ign_act, old_term, old_pipe;
  sigset_t block, old_mask;
  unsigned long long ignored;
  const char *ign;
  actor *a;

  memset(&ign_act, 0, sizeof(ign_act));
  ign_act.sa_handler = SIG_IGN;
  sigaction(SIGTERM, &ign_act, &old_term);
  sigaction(SIGPIPE, &ign_act, &old_pipe);
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  sigaddset(&block, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &block, &old_mask);

  ts_start(&t);
  a = spawn_iso(&t, &ex, NULL);
  call_wait(&t, a, "signals", 0, &r);
  pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGPIPE, &old_pipe, NULL);
  print_message("child signal state: %s\n", r.str);
  assert_non_null(strstr(r.str, "SigBlk:\t0000000000000000"));
  /* Nothing ignored but glibc's two internal signals (32 and 33), which
   * posix_spawn leaves ignored in the child and glibc claims again in any
   * program that uses it. */
  ign = strstr(r.str, "SigIgn:\t");
  assert_non_null(ign);
  ignored = strtoull(ign + 8, NULL, 16) & ~(3ull << 31);
  assert_int_equal(ignored, 0);
  /* And SIGTERM ends it, as it would not if ignored. */
  TH_OK(actor_kill(a, 0));
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.signal, SIGTERM);
  ts_finish(&t);
}

/* ---- the process group -------------------------------------------------- */

/* An actor with a plain grandchild of its own (fork+exec, in its group). */
static actor *spawn_with_grandchild(struct ts *t, struct ts_exit *ex, int deaf,
                                    int *gc) {
  struct ts_call r;
  actor *a = spawn_iso(t, ex, NULL);
  call_wait(t, a, "sleeper", deaf, &r);
  *gc = (int)r.value;
  assert_true(*gc > 0);
  assert_int_equal(getpgid(*gc), actor_pid(a)); /* the actor leads it */
  assert_int_equal(getsid(actor_pid(a)), actor_pid(a));
  return a;
}

static void isolation_kill_hard_ends_the_actors_own_children(void **state) {
  struct ts t;
  struct ts_exit ex;
  int gc;
  actor *a;

  ts_start(&t);
  a = spawn_with_grandchild(&t, &ex, 0, &gc);
  TH_OK(actor_kill(a, 1));
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.signal, SIGKILL);
  TH_ERR(ex.error, ACTOR_EKILLED);
  print_message("grandchild gone %llu ms after the actor's exit\n",
                (unsigned long long)wait_gone(gc, 5000));
  ts_finish(&t);
}

/* The actor's loop is blocked, so STOP goes unread and SIGTERM follows the
 * graceful deadline: it reaches the whole group. */
static void
isolation_stop_escalation_ends_the_actors_own_children(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int64_t ms = 30000;
  int gc;
  actor *a;

  ts_start(&t);
  a = spawn_with_grandchild(&t, &ex, 0, &gc);
  TH_OK(ts_call_ints(a, "block", &ms, 1, &r, NULL));
  ts_run_for(&t, 50);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 8000);
  assert_int_equal(ex.signal, SIGTERM);
  assert_non_null(strstr(ex.reason, "SIGTERM"));
  wait_gone(gc, 5000);
  ts_finish(&t);
}

/* A grandchild that ignores SIGTERM outlives the actor's own SIGTERM death
 * by no more than the reaping: what is left of the group is SIGKILLed. */
static void
isolation_escalation_sigkills_group_members_that_ignore_sigterm(void **state) {
  struct ts t;
  struct ts_exit ex;
  int gc;
  actor *a;

  ts_start(&t);
  a = spawn_with_grandchild(&t, &ex, 1, &gc);
  TH_OK(actor_kill(a, 0));
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.signal, SIGTERM); /* the actor died of SIGTERM */
  wait_gone(gc, 5000);
  ts_finish(&t);
}

/* An actor that ends by itself (STOP obeyed) leaves its group alone: its
 * children are its business, as documented. */
static void
isolation_graceful_exit_leaves_the_actors_children_running(void **state) {
  struct ts t;
  struct ts_exit ex;
  int gc;
  actor *a;

  ts_start(&t);
  a = spawn_with_grandchild(&t, &ex, 0, &gc);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  assert_int_equal(ex.status, 0);
  TH_OK(ex.error);
  ts_run_for(&t, 100);
  assert_false(pid_gone(gc));
  assert_int_equal(kill(gc, SIGKILL), 0);
  wait_gone(gc, 5000);
  ts_finish(&t);
}

/* ---- the host killed outright ------------------------------------------- */

static void fault_host_sigkilled_every_descendant_gone(void **state) {
  int rfd, pids[2 * TREE_N], st, i;
  size_t got = 0;
  uint64_t t0, worst = 0;
  struct pollfd pfd;
  ssize_t n;
  pid_t host;

  host = start_helper_host("tree_host", &rfd);
  pfd.fd = rfd;
  pfd.events = POLLIN;
  while (got < sizeof(pids)) {
    if (poll(&pfd, 1, 20000) <= 0)
      break;
    n = read(rfd, (char *)pids + got, sizeof(pids) - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(rfd);
  if (got != sizeof(pids)) {
    kill(host, SIGKILL);
    waitpid(host, &st, 0);
    fail_msg("the tree host reported %zu of %zu bytes of pids", got,
             sizeof(pids));
  }
  for (i = 0; i < 2 * TREE_N; i++) {
    assert_true(pids[i] > 0);
    assert_false(pid_gone(pids[i]));
  }
  assert_int_equal(kill(host, SIGKILL), 0);
  assert_int_equal(waitpid(host, &st, 0), host);
  t0 = th_now_ms();
  for (i = 0; i < 2 * TREE_N; i++)
    wait_gone(pids[i], 3000); /* the bound: 1 s promised, margin for ASan */
  worst = th_now_ms() - t0;
  print_message("host SIGKILLed: all %d descendants (%d actors, %d "
                "grandchild actors) gone in %llu ms\n",
                2 * TREE_N, TREE_N, TREE_N, (unsigned long long)worst);
  assert_true(worst < 3000);
}

/* ---- descriptor exhaustion ---------------------------------------------- */

struct exhaust_step {
  int free_fds; /* free descriptors before the spawn */
  int r;        /* actor_spawn's result */
  int left;     /* free descriptors after it */
  int children; /* 1 if a child process was left */
  char msg[256];
};

static int g_fill_src = -1;

static int fill_fds(int *fill, int n, int max) {
  int fd;
  while (n < max && (fd = dup(g_fill_src)) >= 0)
    fill[n++] = fd;
  return n;
}

/* With `k` descriptors free for k = 0, 1, 2..., spawn until it works: each
 * failure is -EMFILE with a message that says so, leaves the k descriptors
 * free and no process behind.  Then, the limit raised again, spawning
 * works. */
static void exhaust_run(struct ts *t, int capture, const struct rlimit *low,
                        const struct rlimit *old) {
  enum { MAXFILL = 4096, MAXSTEP = 16 };
  static int fill[MAXFILL];
  struct exhaust_step steps[MAXSTEP];
  struct ts_exit ex[MAXSTEP];
  struct ts_call r;
  siginfo_t si;
  actor_opts *o;
  actor *ok = NULL, *a;
  int nfill, k, nsteps = 0, i;

  memset(steps, 0, sizeof(steps));
  memset(ex, 0, sizeof(ex));
  o = ts_opts("iso");
  if (capture) {
    TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE));
    TH_OK(actor_opts_set_stdio(o, 2, ACTOR_STDIO_CAPTURE));
  }
  TH_OK(actor_opts_on_exit(o, ts_on_exit, &ex[0]));
  if (capture) {
    /* libuv keeps one spare descriptor per loop, taken by the first stream
     * handle made on it (loop->emfile_fd, for accept() at EMFILE).  Let it
     * take it now, or the step that first makes a capture pipe would see
     * it go and count it as ours. */
    uv_pipe_t warm;
    uv_pipe_init(&t->loop, &warm, 0);
    uv_close((uv_handle_t *)&warm, NULL);
    uv_run(&t->loop, UV_RUN_NOWAIT);
  }

  /* From here to the restore, no assertion: a failure must not leave the
   * process at the low limit. */
  setrlimit(RLIMIT_NOFILE, low);
  nfill = fill_fds(fill, 0, MAXFILL);
  for (k = 0; k < MAXSTEP && ok == NULL; k++) {
    struct exhaust_step *s = &steps[nsteps++];
    for (i = 0; i < k && nfill > 0; i++)
      close(fill[--nfill]);
    s->free_fds = k;
    s->r = actor_spawn(t->rt, o, &a);
    snprintf(s->msg, sizeof(s->msg), "%s", actor_rt_errmsg(t->rt));
    if (s->r == 0) {
      ok = a;
      break;
    }
    i = nfill;
    nfill = fill_fds(fill, nfill, MAXFILL);
    s->left = nfill - i;
    memset(&si, 0, sizeof(si));
    s->children = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
  }
  while (nfill > 0)
    close(fill[--nfill]);
  setrlimit(RLIMIT_NOFILE, old);
  actor_opts_free(o);

  for (i = 0; i < nsteps; i++) {
    struct exhaust_step *s = &steps[i];
    print_message("%s, %d fds free: %s%s\n", capture ? "capture" : "plain",
                  s->free_fds, s->r == 0 ? "spawned" : actor_err_name(s->r),
                  s->r == 0 ? "" : s->msg);
    if (s->r == 0)
      break;
    TH_ERR(s->r, -EMFILE);
    assert_non_null(strstr(s->msg, "out of file descriptors"));
    assert_non_null(strstr(s->msg, "EMFILE"));
    assert_null(strstr(s->msg, "cannot execute"));
    assert_int_equal(s->left, s->free_fds); /* nothing leaked */
    assert_int_equal(s->children, 0);       /* nothing left running */
  }
  if (ok == NULL)
    fail_msg("no spawn succeeded with up to %d free fds", MAXSTEP - 1);
  assert_true(nsteps >= 3); /* channel, /dev/null, ... each failed first */

  /* Recovery: the actor spawned at the edge works, and so does a new one. */
  call_wait(t, ok, "pid", 0, &r);
  assert_int_equal(r.value, actor_pid(ok));
  a = spawn_iso(t, &ex[1], NULL);
  call_wait(t, a, "fds", 0, &r);
  assert_child_fds(r.str, 0, 0);
  TH_OK(actor_stop(ok));
  TH_OK(actor_stop(a));
  ts_wait(t, &ex[0].exited, 5000);
  ts_wait(t, &ex[1].exited, 5000);
}

static void
fault_descriptor_exhaustion_clean_emfile_then_recovery(void **state) {
  struct rlimit old, low;
  struct ts t;
  struct dirent *e;
  int high = 0;
  DIR *d;

  /* valgrind emulates RLIMIT_NOFILE (it keeps descriptors above the soft
   * limit for itself and fails opens against its own count). */
  TH_SKIP_UNDER_VALGRIND("valgrind emulates RLIMIT_NOFILE");
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
  d = opendir("/proc/self/fd");
  assert_non_null(d);
  while ((e = readdir(d)) != NULL)
    if (atoi(e->d_name) > high)
      high = atoi(e->d_name);
  closedir(d);
  low = old;
  low.rlim_cur = (rlim_t)high + 64;
  if (low.rlim_cur > old.rlim_cur)
    low.rlim_cur = old.rlim_cur;

  g_fill_src = open("/dev/null", O_RDONLY | O_CLOEXEC);
  assert_true(g_fill_src >= 0);
  ts_start(&t);
  exhaust_run(&t, 0, &low, &old);
  exhaust_run(&t, 1, &low, &old);
  ts_finish(&t);
  close(g_fill_src);
}

/* ---- environment -------------------------------------------------------- */

/* Channel variables left in the host's environment (as if the host were an
 * actor that never consumed them) are not inherited; the library's other
 * variables are, for the whole tree. */
static void isolation_env_drops_stale_channel_variables_keeps_libactor_config(
    void **state) {
  static const char *const stale[] = {
      "LIBACTOR_FD=99",       "LIBACTOR_NAME=stale",  "LIBACTOR_PPID=1",
      "LIBACTOR_MAX_FRAME=1", "LIBACTOR_PROTOCOL=99", "LIBACTOR_BACKEND=stale"};
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  actor_opts *o;
  actor *a;
  size_t i;

  for (i = 0; i < sizeof(stale) / sizeof(stale[0]); i++)
    putenv((char *)stale[i]);
  setenv("LIBACTOR_PYHOST", "/opt/elsewhere/actor-pyhost", 1);
  setenv("LIBACTOR_LOG", "error", 1);
  ts_start(&t);
  o = ts_opts("iso");
  TH_OK(actor_opts_set_name(o, "fresh"));
  a = spawn_iso(&t, &ex, o);
  for (i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
    char name[32];
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(stale[i], "="), stale[i]);
    unsetenv(name);
  }
  call_wait(&t, a, "name", 0, &r);
  assert_string_equal(r.str, "fresh");
  call_str_wait(&t, a, "getenv", "LIBACTOR_PYHOST", &r);
  assert_string_equal(r.str, "/opt/elsewhere/actor-pyhost");
  call_str_wait(&t, a, "getenv", "LIBACTOR_LOG", &r);
  assert_string_equal(r.str, "error");
  call_str_wait(&t, a, "getenv", "LIBACTOR_NAME", &r);
  assert_string_equal(r.str, "<unset>"); /* consumed by the child runtime */
  unsetenv("LIBACTOR_PYHOST");
  unsetenv("LIBACTOR_LOG");
  ts_finish(&t);
  TH_OK(ex.error);
}

/* clear_env + add_env: the child's whole environment is the additions (the
 * last of a name winning), once its runtime has taken the channel's. */
static void isolation_clear_env_leaves_only_the_additions(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  actor_opts *o;
  actor *a;

  ts_start(&t);
  o = ts_opts("iso");
  TH_OK(actor_opts_clear_env(o));
  TH_OK(actor_opts_add_env(o, "A=1"));
  TH_OK(actor_opts_add_env(o, "PATH=/usr/bin:/bin"));
  TH_OK(actor_opts_add_env(o, "A=2"));
  a = spawn_iso(&t, &ex, o);
  call_wait(&t, a, "environ", 0, &r);
  assert_string_equal(r.str, "PATH=/usr/bin:/bin\nA=2\n");
  ts_finish(&t);
}

/* ---- failed spawns say what failed -------------------------------------- */

static void isolation_bad_cwd_is_reported_as_a_directory_error(void **state) {
  struct ts t;
  actor_opts *o;
  actor *a;

  ts_start(&t);
  o = ts_opts("iso");
  TH_OK(actor_opts_set_cwd(o, "/nonexistent-libactor-dir"));
  TH_ERR(actor_spawn(t.rt, o, &a), -ENOENT);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "working directory"));
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "/nonexistent-libactor-dir"));
  assert_null(strstr(actor_rt_errmsg(t.rt), "cannot execute"));
  TH_OK(actor_opts_set_cwd(o, th_self_exe()));
  TH_ERR(actor_spawn(t.rt, o, &a), -ENOTDIR);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "working directory"));
  actor_opts_free(o);
  ts_finish(&t);
}

/* A bare name is looked up in the PATH the child will have. */
static void isolation_program_name_is_found_in_the_childs_path(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  char dir[4096], env[4200];
  const char *slash = strrchr(th_self_exe(), '/');
  actor_opts *o;
  actor *a;

  ts_start(&t);
  TH_OK(actor_opts_new(&o));
  TH_OK(actor_opts_set_program(o, "libactor-no-such-program"));
  TH_ERR(actor_spawn(t.rt, o, &a), -ENOENT);
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "cannot execute"));
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "libactor-no-such-program"));
  assert_non_null(strstr(actor_rt_errmsg(t.rt), "PATH"));
  actor_opts_free(o);

  snprintf(dir, sizeof(dir), "%.*s", (int)(slash - th_self_exe()),
           th_self_exe());
  snprintf(env, sizeof(env), "PATH=/nonexistent:%s", dir);
  o = ts_opts("iso");
  TH_OK(actor_opts_set_program(o, slash + 1));
  TH_OK(actor_opts_add_env(o, env));
  a = spawn_iso(&t, &ex, o);
  call_wait(&t, a, "pid", 0, &r);
  assert_int_equal(r.value, actor_pid(a));
  ts_finish(&t);
}

/* ---- exit ---------------------------------------------------------------- */

/* Counts lines, and takes its time over each (2 µs) so that the flooder
 * is always ahead: a reader that stops only at an empty pipe never would. */
static void count_line(actor *a, int fd, const char *line, size_t len,
                       void *arg) {
  struct timespec t0, t1;
  (*(long *)arg)++;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do
    clock_gettime(CLOCK_MONOTONIC, &t1);
  while ((t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec <
         2000);
}

/* A grandchild that inherited the capture pipe and writes faster than we
 * read must not hold the exit callback: the drain at exit is bounded. */
static void
isolation_exit_not_held_by_a_grandchild_flooding_stdout(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  long lines = 0;
  int64_t code = 4;
  actor_opts *o;
  actor *a;
  int gc;

  ts_start(&t);
  o = ts_opts("iso");
  TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_on_output(o, count_line, &lines));
  a = spawn_iso(&t, &ex, o);
  call_wait(&t, a, "flood", 0, &r);
  gc = (int)r.value;
  ts_run_for(&t, 100);
  TH_OK(ts_call_ints(a, "exit_now", &code, 1, &r, NULL));
  ts_wait(&t, &ex.exited, 10000);
  assert_int_equal(ex.status, 4);
  print_message("%ld lines captured before the exit\n", lines);
  assert_true(lines > 0);
  /* With the pipe closed, the flooder ends (EPIPE). */
  wait_gone(gc, 5000);
  ts_finish(&t);
}

/* A captured child that writes nothing: no line, and (under UBSan) no
 * memchr on the empty buffer's NULL at the exit-time drain. */
static void isolation_silent_captured_child_gives_no_lines(void **state) {
  struct ts t;
  struct ts_exit ex;
  long lines = 0;
  actor_opts *o;
  actor *a;

  ts_start(&t);
  o = ts_opts("iso");
  TH_OK(actor_opts_set_stdio(o, 1, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_set_stdio(o, 2, ACTOR_STDIO_CAPTURE));
  TH_OK(actor_opts_on_output(o, count_line, &lines));
  a = spawn_iso(&t, &ex, o);
  ts_wait(&t, &ex.hello, 5000);
  TH_OK(actor_stop(a));
  ts_wait(&t, &ex.exited, 5000);
  TH_OK(ex.error);
  assert_int_equal(lines, 0);
  ts_finish(&t);
}

/* Someone else reaped our child (a host's waitpid): the actor still ends,
 * with ECHILD, instead of waiting for an exit it can no longer see. */
static void isolation_child_reaped_elsewhere_ends_with_echild(void **state) {
  struct ts t;
  struct ts_exit ex;
  struct ts_call r;
  int st;
  actor *a;

  ts_start(&t);
  a = spawn_iso(&t, &ex, NULL);
  call_wait(&t, a, "exit_after", 100, &r);
  assert_int_equal(waitpid(actor_pid(a), &st, 0), actor_pid(a));
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 3);
  ts_wait(&t, &ex.exited, 5000);
  TH_ERR(ex.error, -ECHILD);
  assert_int_equal(ex.status, -1);
  assert_non_null(strstr(ex.reason, "reaped elsewhere"));
  ts_finish(&t);
}

/* Where pidfd_send_signal does not exist (valgrind, some seccomp
 * sandboxes: ENOSYS), the escalation still reaches the actor and its group
 * (the group check falls back to a waitid that reaps nothing).  A forked
 * host installs a seccomp filter that makes the call fail with ENOSYS,
 * then kills an actor that has a grandchild. */
static void isolation_escalation_works_without_pidfd_send_signal(
    void **state) {
  pid_t host;
  int status = -1, i;
  (void)state;

  host = fork();
  assert_true(host >= 0);
  if (host == 0) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pidfd_send_signal, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & 0xffff)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof(f) / sizeof(f[0])), f};
    struct ts t;
    struct ts_exit ex;
    int gc;
    actor *a;

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
      _exit(2);
    if (syscall(__NR_pidfd_send_signal, -1, 0, NULL, 0) != -1 ||
        errno != ENOSYS)
      _exit(3);
    ts_start(&t);
    a = spawn_with_grandchild(&t, &ex, 0, &gc);
    if (actor_kill(a, 1) != 0)
      _exit(4);
    ts_wait(&t, &ex.exited, 5000);
    if (ex.signal != SIGKILL)
      _exit(5);
    wait_gone(gc, 5000);
    ts_finish(&t);
    /* libuv's fork handler gave this process a signal pipe of its own,
     * which only uv_library_shutdown closes; valgrind (--track-fds=yes)
     * counts an fd left open at exit as an error and would turn this
     * exit into its error code. */
    uv_library_shutdown();
    _exit(0);
  }
  for (i = 0; i < 200 && waitpid(host, &status, WNOHANG) == 0; i++)
    usleep(50 * 1000);
  if (i == 200) {
    kill(host, SIGKILL);
    waitpid(host, &status, 0);
    fail_msg("the host with the seccomp filter did not finish in 10 s");
  }
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(fault_child_fds_are_only_stdio_and_channel),
      TH_TEST(isolation_host_with_closed_stdio_gives_the_child_devnull),
      TH_TEST(isolation_child_starts_with_default_signals_and_empty_mask),
      TH_TEST(isolation_kill_hard_ends_the_actors_own_children),
      TH_TEST(isolation_stop_escalation_ends_the_actors_own_children),
      TH_TEST(isolation_escalation_sigkills_group_members_that_ignore_sigterm),
      TH_TEST(isolation_graceful_exit_leaves_the_actors_children_running),
      TH_TEST(fault_host_sigkilled_every_descendant_gone),
      TH_TEST_T(fault_descriptor_exhaustion_clean_emfile_then_recovery, 60),
      TH_TEST(isolation_escalation_works_without_pidfd_send_signal),
      TH_TEST(
          isolation_env_drops_stale_channel_variables_keeps_libactor_config),
      TH_TEST(isolation_clear_env_leaves_only_the_additions),
      TH_TEST(isolation_bad_cwd_is_reported_as_a_directory_error),
      TH_TEST(isolation_program_name_is_found_in_the_childs_path),
      TH_TEST(isolation_exit_not_held_by_a_grandchild_flooding_stdout),
      TH_TEST(isolation_silent_captured_child_gives_no_lines),
      TH_TEST(isolation_child_reaped_elsewhere_ends_with_echild),
  };
  return cmocka_run_group_tests_name("isolation", tests, ts_group_setup, NULL);
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    th_helper_fn fn;
  } ours[] = {
      {"iso", helper_iso},
      {"sleep", helper_sleep},
      {"flood", helper_flood},
      {"closed_stdio_host", helper_closed_stdio_host},
      {"tree_host", helper_tree_host},
  };
  static struct th_helper helpers[32];
  size_t i, n;
  for (n = 0; ts_helpers[n].name != NULL; n++)
    helpers[n] = ts_helpers[n];
  for (i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
    helpers[n].name = ours[i].name;
    helpers[n++].fn = ours[i].fn;
  }
  return th_main(argc, argv, helpers, run_all);
}
