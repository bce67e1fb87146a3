/* subproc: a child process, started with posix_spawn and watched through a
 * pidfd.
 *
 * Why not uv_spawn.  libuv's process API cannot give a child a clean
 * descriptor table: uv_spawn has no option to close inherited fds, runs no
 * user code between fork and exec, and a host's fd opened without O_CLOEXEC
 * (a file, a listening socket, a pipe — libraries do it) would end up in
 * every actor.  glibc's posix_spawn can, with
 * posix_spawn_file_actions_addclosefrom_np (close_range in the child), and
 * also does the rest of what we used libuv for: POSIX_SPAWN_SETSID,
 * addchdir_np, dup2 for stdio and the channel, signal mask and
 * dispositions reset.  The child is then watched through a pidfd
 * (pidfd_open right after posix_spawn) polled with a uv_poll_t, and reaped with
 * waitid(P_PIDFD): no SIGCHLD handler of ours, and none needed, so it coexists
 * with libuv's own SIGCHLD handling if the host also uses uv_spawn (libuv reaps
 * only the pids it started).
 *
 * The child's descriptors are exactly: 0 /dev/null, 1 and 2 as the options
 * say (inherited, /dev/null or a capture pipe), 3 the channel (an AF_UNIX
 * socketpair; LIBACTOR_FD tells the child runtime where it is).  Everything
 * else is closed before exec.  Our end of the channel is close-on-exec, and
 * the child runtime marks its own end close-on-exec as soon as it starts,
 * so grandchildren do not hold it open either: when the child dies, we see
 * EOF.
 *
 * The child leads a new session (setsid), hence its own process group
 * whose id is its pid: a Ctrl-C typed at the host's terminal reaches the
 * host alone, whose own SIGINT handler can then stop its actors in order
 * (actor_rt_close), instead of every child dying behind its back.  The
 * library installs no handler.  The child runtime sets PR_SET_PDEATHSIG so
 * that the child still dies with us if we are killed outright.
 *
 * The stop escalation signals the whole process group, so that what the
 * actor started itself (a worker, a shell pipeline) ends with it, and once
 * the leader has died after such a signal, SIGKILL goes to whatever is left
 * of the group before the leader is reaped.  Descendants that left the
 * group (setsid, setpgid: actors the actor spawned are among them, in
 * sessions of their own) are not reached this way.
 *
 * stdout/stderr are inherited, sent to /dev/null, or captured through pipes
 * and handed to the host line by line.  When the child exits, whatever is
 * left in a capture pipe is read without blocking, up to a bound, and the
 * pipe is closed: a grandchild that inherited it must not delay the exit
 * callback, not even one that keeps writing. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt/internal.h"
#include "spawn/backend.h"
#include "spawn/capture.h"
#include "spawn/helper.h"

extern char **environ;

#define ENV_OWN 6   /* the channel's variables */
#define CHILD_FDS 4 /* 0, 1, 2 and the channel */

struct subproc {
  actor *a;
  int pid;
  int pidfd;      /* -1 when none; closed after the poll handle */
  uv_poll_t poll; /* readable when the child has exited */
  int polling;    /* poll initialised and not yet closed */
  int proc_done;  /* reaped (or never started) */
  int signalled;  /* the runtime sent the group a signal */
  int closing;
  int reap_wait; /* started but unusable: killed, close waits for reaping */
  int pending;   /* handles being closed */
  struct actor__capture out[2];
};

/* What subproc_start builds for one spawn and frees before it returns. */
struct subproc_spawn {
  char **argv;
  char **env;
  char *own[ENV_OWN];
  char *path;              /* the program, found */
  int sv[2];               /* the channel: ours, the child's */
  int null_fd;             /* /dev/null */
  int out_w[2];            /* write ends of the capture pipes */
  int child_fd[CHILD_FDS]; /* what becomes the child's 0..3 */
};

/* ---- availability ------------------------------------------------------- */

static int subproc__have_pidfd; /* 0 unknown, 1 yes, -1 no */

static int subproc_available(const char **why) {
  siginfo_t si;
  int have = __atomic_load_n(&subproc__have_pidfd, __ATOMIC_RELAXED);

  if (have == 0) {
    /* Probe without creating anything: where the calls exist,
     * pidfd_open(-1) is EINVAL and waitid(P_PIDFD, INT_MAX) is EBADF
     * (no such fd; a negative one would be EINVAL).  Two
     * threads may both probe; they find the same answer. */
    have = -1;
    if (pidfd_open(-1, 0) < 0 && errno == EINVAL &&
        waitid(P_PIDFD, (id_t)INT_MAX, &si, WEXITED | WNOHANG) < 0 &&
        errno == EBADF)
      have = 1;
    __atomic_store_n(&subproc__have_pidfd, have, __ATOMIC_RELAXED);
  }
  if (have < 0) {
    if (why != NULL)
      *why = "needs pidfd_open and waitid(P_PIDFD) (Linux >= 5.4)";
    return ACTOR_EUNAVAIL;
  }
  return 0;
}

/* ---- process ----------------------------------------------------------- */

static void subproc__maybe_closed(struct subproc *sp) {
  if (sp->closing && sp->pending == 0)
    actor__backend_closed(sp->a);
}

static void out__closed(void *arg) {
  struct subproc *sp = arg;
  sp->pending--;
  subproc__maybe_closed(sp);
}

static void poll__closed(uv_handle_t *h) {
  struct subproc *sp = h->data;
  /* Only now: libuv must not watch a descriptor that is closed. */
  close(sp->pidfd);
  sp->pidfd = -1;
  sp->pending--;
  subproc__maybe_closed(sp);
}

static void subproc__close_all(struct subproc *sp) {
  sp->pending += actor__capture_finish(&sp->out[0]);
  sp->pending += actor__capture_finish(&sp->out[1]);
  if (sp->polling) {
    sp->polling = 0;
    sp->pending++;
    uv_close((uv_handle_t *)&sp->poll, poll__closed);
  } else if (sp->pidfd >= 0) {
    close(sp->pidfd);
    sp->pidfd = -1;
  }
  subproc__maybe_closed(sp);
}

/* Signal the child's process group.  Its id is the child's pid, and that
 * number cannot be reused while the child is not reaped — alive or a
 * zombie, the leader keeps its pid, hence the group id, taken — and only
 * we reap it.  The pidfd check catches the one way that could fail: some
 * other part of the host reaping our child (waitpid(-1), SIGCHLD set to
 * SIG_IGN); after that, the number may belong to someone else and we send
 * nothing.  (Linux 6.9's PIDFD_SIGNAL_PROCESS_GROUP would make the two
 * steps one.) */
static int subproc__signal_group(struct subproc *sp, int sig) {
  siginfo_t si;
  if (pidfd_send_signal(sp->pidfd, 0, NULL, 0)) {
    if (errno != ENOSYS)
      return -errno;
    /* Without pidfd_send_signal (valgrind, some seccomp sandboxes), a
     * waitid that reaps nothing asks the same question: -ECHILD once
     * someone else has reaped it. */
    memset(&si, 0, sizeof(si));
    if (waitid((idtype_t)P_PIDFD, (id_t)sp->pidfd, &si,
               WEXITED | WNOHANG | WNOWAIT))
      return -errno;
  }
  sp->signalled = 1;
  if (kill(-sp->pid, sig))
    return -errno;
  return 0;
}

static void proc__readable(uv_poll_t *h, int status, int events) {
  struct subproc *sp = h->data;
  siginfo_t si;
  int r, err = 0, code = 0, sig = 0;

  (void)status;
  (void)events;
  memset(&si, 0, sizeof(si));
  if (sp->signalled) {
    /* The runtime ended this actor: what is left of its group goes too.
     * Look without reaping — the leader, a zombie now, still holds the
     * group id, so the kill cannot reach anyone else — then reap. */
    r = waitid(P_PIDFD, (id_t)sp->pidfd, &si, WEXITED | WNOHANG | WNOWAIT);
    if (r == 0 && si.si_pid == 0)
      return; /* not exited yet */
    if (r == 0)
      kill(-sp->pid, SIGKILL);
    memset(&si, 0, sizeof(si));
  }
  r = waitid(P_PIDFD, (id_t)sp->pidfd, &si, WEXITED | WNOHANG);
  if (r == 0 && si.si_pid == 0)
    return; /* not exited yet: the poll is level-triggered, it comes back */
  if (r < 0 && errno == EINTR)
    return;
  uv_poll_stop(h);
  sp->proc_done = 1;
  if (r < 0) {
    /* ECHILD: reaped by some other part of this process. */
    err = -errno;
    actor__backend_set_how(sp->a, "reaped elsewhere, exit status unknown");
  } else if (si.si_code == CLD_EXITED) {
    code = si.si_status;
  } else {
    sig = si.si_status; /* CLD_KILLED, CLD_DUMPED */
  }
  if (sp->closing) {
    /* Close was requested before the exit (failed start): finish it now
     * that the process is reaped. */
    subproc__close_all(sp);
    return;
  }
  actor__backend_exited(sp->a, code, sig, err);
}

/* ---- the child's environment ------------------------------------------- */

static size_t env__name_len(const char *nv) {
  const char *eq = strchr(nv, '=');
  return eq ? (size_t)(eq - nv) : strlen(nv);
}

static int env__same_name(const char *a, const char *b) {
  size_t n = env__name_len(a);
  return n == env__name_len(b) && strncmp(a, b, n) == 0;
}

static int env__own(struct subproc_spawn *s, size_t *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int env__own(struct subproc_spawn *s, size_t *k, const char *fmt, ...) {
  size_t i;
  va_list ap;
  int n;

  for (i = 0; s->own[i] != NULL; i++)
    ;
  va_start(ap, fmt);
  n = vasprintf(&s->own[i], fmt, ap);
  va_end(ap);
  if (n < 0) {
    s->own[i] = NULL; /* undefined after a failure */
    return -ENOMEM;
  }
  s->env[(*k)++] = s->own[i];
  return 0;
}

/* Ours (unless cleared) without the channel's variables — stale if this
 * host is itself an actor — and without what the caller replaces; the
 * caller's additions, the last of a name winning; then the channel's
 * variables.  Every other variable passes, LIBACTOR_* ones included
 * (LIBACTOR_LOG, LIBACTOR_PYHOST: they configure the library for the
 * whole tree). */
static int subproc__env(struct subproc_spawn *s, const actor_opts *o,
                        const actor_rt *rt, const char *name) {
  size_t n = 0, i, j, k = 0;
  int skip;

  if (!o->clear_env)
    while (environ[n] != NULL)
      n++;
  s->env = calloc(n + o->nenv + ENV_OWN + 1, sizeof(*s->env));
  if (s->env == NULL)
    return -ENOMEM;
  for (i = 0; i < n; i++) {
    skip = actor__env_reserved(environ[i]);
    for (j = 0; !skip && j < o->nenv; j++)
      skip = env__same_name(o->env[j], environ[i]);
    if (!skip)
      s->env[k++] = environ[i];
  }
  for (j = 0; j < o->nenv; j++) {
    skip = 0;
    for (i = j + 1; !skip && i < o->nenv; i++)
      skip = env__same_name(o->env[j], o->env[i]);
    if (!skip)
      s->env[k++] = o->env[j];
  }
  if (env__own(s, &k, "%s=%d", ACTOR__ENV_FD, CHILD_FDS - 1) ||
      env__own(s, &k, "%s=%s", ACTOR__ENV_NAME, name) ||
      env__own(s, &k, "%s=%zu", ACTOR__ENV_MAX_FRAME, rt->max_frame) ||
      env__own(s, &k, "%s=%d", ACTOR__ENV_PPID, (int)getpid()) ||
      env__own(s, &k, "%s=%d", ACTOR__ENV_PROTO, ACTOR_PROTOCOL_VERSION) ||
      env__own(s, &k, "%s=subproc", ACTOR__ENV_BACKEND))
    return -ENOMEM;
  s->env[k] = NULL;
  return 0;
}

/* ---- finding the program ------------------------------------------------ */

/* dir/prog, made absolute for a relative PATH entry: the child looks it up
 * after changing to its working directory (as execvp there would). */
static char *path__join(const char *cwd, const char *dir, size_t dlen,
                        const char *prog) {
  char here[4096], *p = NULL;
  int n;

  if (dlen == 0) {
    dir = ".";
    dlen = 1;
  }
  if (dir[0] == '/')
    n = asprintf(&p, "%.*s/%s", (int)dlen, dir, prog);
  else if (cwd != NULL && cwd[0] == '/')
    n = asprintf(&p, "%s/%.*s/%s", cwd, (int)dlen, dir, prog);
  else if (getcwd(here, sizeof(here)) != NULL)
    n = asprintf(&p, "%s/%s%s%.*s/%s", here, cwd ? cwd : "", cwd ? "/" : "",
                 (int)dlen, dir, prog);
  else
    return NULL;
  return n < 0 ? NULL : p;
}

/* execvp's search, done here so that a missing program fails actor_spawn
 * at once with ENOENT, and done with the PATH the child will have (as
 * execvp in the child did under uv_spawn), "/bin:/usr/bin" without one.
 * A name with a slash is used as it is (relative to the child's working
 * directory). */
static int subproc__find(struct subproc_spawn *s, const char *prog,
                         const char *cwd, const char **searched) {
  const char *path = "/bin:/usr/bin", *p, *end;
  struct stat st;
  char *cand;
  size_t i;
  int err = -ENOENT;

  if (strchr(prog, '/') != NULL) {
    s->path = strdup(prog);
    return s->path ? 0 : -ENOMEM;
  }
  for (i = 0; s->env[i] != NULL; i++)
    if (strncmp(s->env[i], "PATH=", 5) == 0) {
      path = s->env[i] + 5;
      break;
    }
  *searched = path;
  for (p = path;; p = end + 1) {
    end = strchrnul(p, ':');
    cand = path__join(cwd, p, (size_t)(end - p), prog);
    if (cand == NULL)
      return -ENOMEM;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(cand, X_OK) == 0) {
        s->path = cand;
        return 0;
      }
      err = -EACCES; /* as execvp: remembered, the search goes on */
    }
    free(cand);
    if (*end == '\0')
      return err;
  }
}

/* ---- starting ----------------------------------------------------------- */

static int subproc__fail(actor_rt *rt, int r, const char *what) {
  return actor__spawn_fail(rt, "subproc", r, what);
}

/* Keep a descriptor meant for the child above 0..3, so that no dup2 onto
 * 0..3 can overwrite it before it is read (a host with stdio closed gets
 * low numbers from socketpair or pipe). */
static int fd__high(int *fd) {
  int nfd;
  if (*fd >= CHILD_FDS)
    return 0;
  nfd = fcntl(*fd, F_DUPFD_CLOEXEC, CHILD_FDS);
  if (nfd < 0)
    return -errno;
  close(*fd);
  *fd = nfd;
  return 0;
}

static int subproc__stdio(struct subproc *sp, struct subproc_spawn *s,
                          const actor_opts *o) {
  actor_rt *rt = sp->a->rt;
  const char *what;
  int i, r;

  s->null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  r = s->null_fd < 0 ? -errno : fd__high(&s->null_fd);
  if (r)
    return subproc__fail(rt, r, "cannot open /dev/null");
  s->child_fd[0] = s->null_fd;
  for (i = 1; i <= 2; i++) {
    switch (o->stdio[i]) {
    case ACTOR_STDIO_DISCARD:
      s->child_fd[i] = s->null_fd;
      break;
    case ACTOR_STDIO_CAPTURE:
      /* closed by close_all from now on, also on failure */
      r = actor__capture_open(&sp->out[i - 1], sp->a, i, &s->out_w[i - 1],
                              &what, out__closed, sp);
      if (r)
        return subproc__fail(rt, r, what);
      if ((r = fd__high(&s->out_w[i - 1])) != 0)
        return subproc__fail(rt, r, "cannot create a capture pipe");
      s->child_fd[i] = s->out_w[i - 1];
      break;
    default:
      /* Ours, if we have one: a child must not start with 1 or 2 closed
       * (its first open() would become its stdout). */
      s->child_fd[i] = fcntl(i, F_GETFD) != -1 ? i : s->null_fd;
      break;
    }
  }
  return 0;
}

/* Kill and reap a child we cannot watch.  It has just been started and is
 * SIGKILLed, so the wait is the kernel's time to end it; this is the only
 * wait of this file, on paths that only resource exhaustion takes. */
static void subproc__reap_now(int pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

/* Start the child; on success sp->pid and sp->pidfd are set.  A positive
 * errno from the spawn functions, negated. */
static int subproc__spawn(struct subproc *sp, struct subproc_spawn *s,
                          const actor_opts *o) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  pid_t pid = 0;
  int e, i, pidfd = -1;

  if ((e = posix_spawn_file_actions_init(&fa)) != 0)
    return -e;
  if ((e = posix_spawnattr_init(&at)) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return -e;
  }
  /* Every source is >= CHILD_FDS or its own target (fd__high), so the
   * dup2s cannot clobber each other; dup2(fd, fd) clears close-on-exec
   * (glibc >= 2.29).  Then everything else goes. */
  for (i = 0; e == 0 && i < CHILD_FDS; i++)
    e = posix_spawn_file_actions_adddup2(&fa, s->child_fd[i], i);
  if (e == 0)
    e = posix_spawn_file_actions_addclosefrom_np(&fa, CHILD_FDS);
  if (e == 0 && o->cwd != NULL)
    e = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
  /* Signals: the host's mask and ignored signals (SIGPIPE, often) are no
   * business of the child's, and exec keeps both. */
  if (e == 0)
    e = actor__spawnattr_clean(&at);
  if (e != 0)
    goto out;

  /* Not pidfd_spawn (glibc 2.39): it gives no pid but through
   * pidfd_getpid, which reads /proc/self/fdinfo — a descriptor more, which
   * fails exactly when descriptors run out.  posix_spawn then pidfd_open is
   * as safe: the child is ours and unreaped, so its pid still names it
   * (short of another part of the host reaping it in between). */
  e = posix_spawn(&pid, s->path, &fa, &at, s->argv, s->env);
  if (e != 0)
    goto out;
  pidfd = pidfd_open(pid, 0);
  if (pidfd < 0) {
    e = errno;
    subproc__reap_now(pid);
  }

out:
  posix_spawnattr_destroy(&at);
  posix_spawn_file_actions_destroy(&fa);
  if (e != 0)
    return -e;
  sp->pid = pid;
  sp->pidfd = pidfd;
  return 0;
}

static void subproc__spawn_fini(struct subproc_spawn *s) {
  size_t i;
  for (i = 0; i < 2; i++) {
    if (s->sv[i] >= 0)
      close(s->sv[i]);
    if (s->out_w[i] >= 0)
      close(s->out_w[i]);
  }
  if (s->null_fd >= 0)
    close(s->null_fd);
  for (i = 0; i < ENV_OWN; i++)
    free(s->own[i]);
  free(s->env);
  free(s->argv);
  free(s->path);
}

static int subproc_start(void *st, actor *a, const actor_opts *o) {
  struct subproc *sp = st;
  actor_rt *rt = a->rt;
  struct subproc_spawn s;
  const char *program, *searched = NULL;
  char what[512], pyhost[PATH_MAX];
  size_t i, argc;
  int r;

  sp->a = a;
  sp->pidfd = -1;
  memset(&s, 0, sizeof(s));
  s.sv[0] = s.sv[1] = s.null_fd = s.out_w[0] = s.out_w[1] = -1;

  program = o->program;
  if (program == NULL && o->entry != NULL) {
    /* A Python actor: run it in the Python actor host, a helper program
     * ($LIBACTOR_PYHOST, else the helper directory: spawn/helper.h). */
    program = actor__helper_path("actor-pyhost", "LIBACTOR_PYHOST", pyhost,
                                 sizeof(pyhost));
  }
  if (program == NULL) {
    actor__seterr(rt, "subproc: no program given (actor_opts_set_program)");
    return -EINVAL;
  }
  /* Checked here so that a bad directory is not reported as a program that
   * cannot be executed (the child's chdir fails with the same codes). */
  if ((r = actor__spawn_check_cwd(rt, "subproc", o->cwd)) != 0)
    return r;

  s.argv = calloc(o->nargs + 2 * o->npaths + 3, sizeof(*s.argv));
  if (s.argv == NULL || (r = subproc__env(&s, o, rt, a->name)) != 0) {
    r = -ENOMEM;
    goto out;
  }
  argc = 0;
  s.argv[argc++] = (char *)program;
  if (o->entry != NULL) { /* actor-pyhost [-p DIR]... ENTRY */
    for (i = 0; i < o->npaths; i++) {
      s.argv[argc++] = "-p";
      s.argv[argc++] = o->paths[i];
    }
    s.argv[argc++] = o->entry;
  }
  for (i = 0; i < o->nargs; i++)
    s.argv[argc++] = o->args[i];

  r = subproc__find(&s, program, o->cwd, &searched);
  if (r) {
    if (r == -ENOMEM)
      goto out;
    actor__seterr(rt, "subproc: cannot execute '%s': %s (searched PATH %s)",
                  program, uv_strerror(r), searched);
    goto out;
  }

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.sv)) {
    r = subproc__fail(rt, -errno, "cannot create the channel");
    goto out;
  }
  if ((r = fd__high(&s.sv[1])) != 0) {
    subproc__fail(rt, r, "cannot create the channel");
    goto out;
  }
  s.child_fd[CHILD_FDS - 1] = s.sv[1];
  if ((r = subproc__stdio(sp, &s, o)) != 0)
    goto out;

  r = subproc__spawn(sp, &s, o);
  if (r) {
    snprintf(what, sizeof(what), "cannot %s '%s'",
             r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -EAGAIN
                 ? "start"
                 : "execute",
             program);
    subproc__fail(rt, r, what);
    goto out;
  }
  sp->poll.data = sp;
  r = uv_poll_init(rt->loop, &sp->poll, sp->pidfd);
  if (r) {
    subproc__fail(rt, r, "cannot watch the child");
    subproc__reap_now(sp->pid);
    sp->proc_done = 1;
    goto out;
  }
  sp->polling = 1;
  uv_poll_start(&sp->poll, UV_READABLE, proc__readable);
  a->pid = sp->pid;
  for (i = 0; i < 2; i++)
    actor__capture_start(&sp->out[i]);

  r = actor__stream_open(&a->chan, rt->loop, s.sv[0], rt->max_frame,
                         &actor__parent_chan_cbs, a);
  s.sv[0] = -1; /* owned (and closed on failure) by the channel now */
  if (r) {
    actor__seterr(rt, "subproc: channel: %s", actor_strerror(r));
    /* The child runs but cannot be reached: kill it, and let close wait
     * for its exit so that it is reaped. */
    subproc__signal_group(sp, SIGKILL);
    sp->reap_wait = 1;
  }

out:
  subproc__spawn_fini(&s);
  return r;
}

static int subproc_signal(void *st, int how) {
  struct subproc *sp = st;
  if (sp->pidfd < 0 || sp->proc_done)
    return -ESRCH;
  return subproc__signal_group(sp, how == ACTOR__SIG_KILL ? SIGKILL : SIGTERM);
}

static void subproc_close(void *st) {
  struct subproc *sp = st;
  if (sp->closing)
    return;
  sp->closing = 1;
  if (sp->reap_wait && !sp->proc_done)
    return; /* proc__readable finishes the close */
  /* Otherwise the child has been reaped, or it was abandoned after
   * SIGKILL failed to end it in time: closing the pidfd then stops our
   * watching it, which is what abandoning means.  Its zombie, when it
   * finally dies, stays until the host exits (or reaps it). */
  subproc__close_all(sp);
}

const struct actor__backend actor__backend_subproc = {
    1,
    "subproc",
    sizeof(struct subproc),
    subproc_available,
    subproc_start,
    subproc_signal,
    subproc_close,
};
