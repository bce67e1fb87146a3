/* subproc: a child process started with uv_spawn().
 *
 * The channel is one end of an AF_UNIX socketpair that the child inherits
 * as fd 3 (LIBACTOR_FD tells the child runtime where it is).  Our end is
 * created close-on-exec, so no other child we spawn inherits it, and the
 * child runtime marks its own end close-on-exec as soon as it starts, so
 * grandchildren do not hold it open either: when the child dies, we see EOF.
 *
 * The child becomes the leader of a new session (UV_PROCESS_DETACHED): a
 * Ctrl-C typed at the host's terminal reaches the host alone, whose own
 * SIGINT handler can then stop its actors in order (actor_rt_close), instead
 * of every child dying behind its back.  The library installs no handler.  The
 * child runtime sets PR_SET_PDEATHSIG so that the child still dies with us
 * if we are killed outright.
 *
 * stdout/stderr are inherited, sent to /dev/null, or captured through pipes
 * and handed to the host line by line.  When the child exits, whatever is
 * left in a capture pipe is read without blocking and the pipe is closed:
 * a grandchild that inherited it must not delay the exit callback. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rt/internal.h"
#include "spawn/backend.h"

extern char **environ;

#define LINE_MAX_BYTES (64 * 1024)

struct subproc_out {
  uv_pipe_t pipe;
  struct subproc *sp;
  int fd; /* 1 or 2 */
  int active;
  struct abuf line;
};

struct subproc {
  actor *a;
  uv_process_t proc;
  int spawned;   /* proc initialised (even if uv_spawn failed) */
  int proc_done; /* exit callback ran (or spawn failed) */
  int closing;
  int reap_wait; /* started but unusable: killed, close waits for reaping */
  int pending;   /* handles being closed */
  struct subproc_out out[2];
};

static int subproc_available(const char **why) {
  (void)why;
  return 0;
}

/* ---- captured output --------------------------------------------------- */

static void out__emit(struct subproc_out *o, int final) {
  char *p, *nl;
  size_t n;

  for (;;) {
    p = actor__buf_data(&o->line);
    nl = memchr(p, '\n', o->line.len);
    if (nl != NULL) {
      n = (size_t)(nl - p);
      actor__output_line(o->sp->a, o->fd, p, n);
      actor__buf_consume(&o->line, n + 1);
      continue;
    }
    /* A line longer than the limit goes out in pieces rather than growing
     * the buffer without bound. */
    if (o->line.len >= LINE_MAX_BYTES || (final && o->line.len > 0)) {
      actor__output_line(o->sp->a, o->fd, p, o->line.len);
      actor__buf_consume(&o->line, o->line.len);
    }
    return;
  }
}

static void out__alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  struct subproc_out *o = h->data;
  (void)hint;
  if (actor__buf_reserve(&o->line, 4096)) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  buf->base = actor__buf_tail(&o->line);
  buf->len = actor__buf_room(&o->line);
}

static void out__closed(uv_handle_t *h);

static void out__close(struct subproc_out *o) {
  if (!o->active)
    return;
  o->active = 0;
  o->sp->pending++;
  uv_close((uv_handle_t *)&o->pipe, out__closed);
}

static void out__read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct subproc_out *o = s->data;
  (void)buf;
  if (n > 0) {
    o->line.len += (size_t)n;
    out__emit(o, 0);
    return;
  }
  if (n < 0) {
    out__emit(o, 1);
    uv_read_stop(s);
    /* EOF before the child exited: nothing more will come; keep the handle
     * until close so that the bookkeeping stays in one place. */
  }
}

/* Read what is already in the pipe, without blocking. */
static void out__drain(struct subproc_out *o) {
  uv_os_fd_t fd;
  ssize_t n;

  if (!o->active || uv_fileno((uv_handle_t *)&o->pipe, &fd))
    return;
  for (;;) {
    if (actor__buf_reserve(&o->line, 4096))
      break;
    n = read(fd, actor__buf_tail(&o->line), actor__buf_room(&o->line));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    o->line.len += (size_t)n;
    out__emit(o, 0);
  }
  out__emit(o, 1);
}

/* ---- process ----------------------------------------------------------- */

static void subproc__maybe_closed(struct subproc *sp) {
  if (sp->closing && sp->pending == 0)
    actor__backend_closed(sp->a);
}

static void out__closed(uv_handle_t *h) {
  struct subproc_out *o = h->data;
  actor__buf_fini(&o->line);
  o->sp->pending--;
  subproc__maybe_closed(o->sp);
}

static void proc__closed(uv_handle_t *h) {
  struct subproc *sp = h->data;
  sp->pending--;
  subproc__maybe_closed(sp);
}

static void subproc__close_all(struct subproc *sp) {
  out__drain(&sp->out[0]);
  out__drain(&sp->out[1]);
  out__close(&sp->out[0]);
  out__close(&sp->out[1]);
  if (sp->spawned) {
    sp->spawned = 0;
    sp->pending++;
    uv_close((uv_handle_t *)&sp->proc, proc__closed);
  }
  subproc__maybe_closed(sp);
}

static void proc__exit(uv_process_t *p, int64_t status, int sig) {
  struct subproc *sp = p->data;
  sp->proc_done = 1;
  if (sp->closing) {
    /* Close was requested before the exit (failed start): finish it now
     * that the process is reaped. */
    subproc__close_all(sp);
    return;
  }
  actor__backend_exited(sp->a, status, sig, 0);
}

/* The environment: ours (unless cleared), the caller's additions replacing
 * same-named entries, then the channel's variables. */
static char **subproc__env(const actor_opts *o, const actor_rt *rt, int fd,
                           const char *name, char *own[6]) {
  size_t n = 0, i, j, k, cap;
  char **env;

  if (!o->clear_env)
    while (environ[n] != NULL)
      n++;
  cap = n + o->nenv + 7;
  env = calloc(cap, sizeof(*env));
  if (env == NULL)
    return NULL;
  k = 0;
  for (i = 0; i < n; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    int skip = actor__env_reserved(environ[i]);
    for (j = 0; !skip && j < o->nenv; j++)
      if (strncmp(o->env[j], environ[i], nl + 1) == 0)
        skip = 1;
    if (!skip)
      env[k++] = environ[i];
  }
  for (j = 0; j < o->nenv; j++)
    env[k++] = o->env[j];
  if (asprintf(&own[0], "%s=%d", ACTOR__ENV_FD, fd) < 0 ||
      asprintf(&own[1], "%s=%s", ACTOR__ENV_NAME, name) < 0 ||
      asprintf(&own[2], "%s=%zu", ACTOR__ENV_MAX_FRAME, rt->max_frame) < 0 ||
      asprintf(&own[3], "%s=%d", ACTOR__ENV_PPID, (int)getpid()) < 0 ||
      asprintf(&own[4], "%s=%d", ACTOR__ENV_PROTO, ACTOR_PROTOCOL_VERSION) <
          0 ||
      asprintf(&own[5], "%s=subproc", ACTOR__ENV_BACKEND) < 0) {
    free(env);
    return NULL;
  }
  for (i = 0; i < 6; i++)
    env[k++] = own[i];
  env[k] = NULL;
  return env;
}

static int subproc_start(void *st, actor *a, const actor_opts *o) {
  struct subproc *sp = st;
  actor_rt *rt = a->rt;
  uv_process_options_t po;
  uv_stdio_container_t stdio[4];
  char *own[6] = {0};
  char **argv = NULL, **env = NULL;
  const char *program;
  int sv[2] = {-1, -1};
  size_t i, argc;
  int r;

  sp->a = a;
  program = o->program;
  if (program == NULL && o->entry != NULL) {
    /* A Python actor: run it in the Python actor host. */
    program = getenv("LIBACTOR_PYHOST");
    if (program == NULL || *program == '\0')
      program = ACTOR_PYHOST_DEFAULT;
  }
  if (program == NULL) {
    actor__seterr(rt, "subproc: no program given (actor_opts_set_program)");
    return -EINVAL;
  }
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
    r = -errno;
    actor__seterr(rt, "subproc: socketpair: %s", strerror(-r));
    return r;
  }
  argv = calloc(o->nargs + 2 * o->npaths + 3, sizeof(*argv));
  env = subproc__env(o, rt, 3, a->name, own);
  if (argv == NULL || env == NULL) {
    r = -ENOMEM;
    goto out;
  }
  argc = 0;
  argv[argc++] = (char *)program;
  if (o->entry != NULL) { /* actor-pyhost [-p DIR]... ENTRY */
    for (i = 0; i < o->npaths; i++) {
      argv[argc++] = "-p";
      argv[argc++] = o->paths[i];
    }
    argv[argc++] = o->entry;
  }
  for (i = 0; i < o->nargs; i++)
    argv[argc++] = o->args[i];

  memset(stdio, 0, sizeof(stdio));
  stdio[0].flags = UV_IGNORE;
  for (i = 1; i <= 2; i++) {
    struct subproc_out *out = &sp->out[i - 1];
    out->sp = sp;
    out->fd = (int)i;
    switch (o->stdio[i]) {
    case ACTOR_STDIO_DISCARD:
      stdio[i].flags = UV_IGNORE;
      break;
    case ACTOR_STDIO_CAPTURE:
      uv_pipe_init(rt->loop, &out->pipe, 0);
      out->pipe.data = out;
      out->active = 1;
      actor__buf_init(&out->line);
      stdio[i].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
      stdio[i].data.stream = (uv_stream_t *)&out->pipe;
      break;
    default:
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = (int)i;
      break;
    }
  }
  stdio[3].flags = UV_INHERIT_FD;
  stdio[3].data.fd = sv[1];

  memset(&po, 0, sizeof(po));
  po.exit_cb = proc__exit;
  po.file = program;
  po.args = argv;
  po.env = env;
  po.cwd = o->cwd;
  po.flags = UV_PROCESS_DETACHED;
  po.stdio_count = 4;
  po.stdio = stdio;

  sp->proc.data = sp;
  r = uv_spawn(rt->loop, &sp->proc, &po);
  /* Even a failed uv_spawn leaves a handle that must be closed. */
  sp->spawned = 1;
  sp->proc.data = sp;
  if (r) {
    sp->proc_done = 1;
    actor__seterr(rt, "subproc: cannot execute '%s': %s", program,
                  uv_strerror(r));
    goto out;
  }
  a->pid = sp->proc.pid;
  for (i = 0; i < 2; i++)
    if (sp->out[i].active)
      uv_read_start((uv_stream_t *)&sp->out[i].pipe, out__alloc, out__read);

  r = actor__stream_open(&a->chan, rt->loop, sv[0], rt->max_frame,
                         &actor__parent_chan_cbs, a);
  sv[0] = -1; /* owned (and closed on failure) by the channel now */
  if (r) {
    actor__seterr(rt, "subproc: channel: %s", actor_strerror(r));
    /* The child runs but cannot be reached: kill it, and let close wait
     * for its exit so that it is reaped. */
    uv_process_kill(&sp->proc, SIGKILL);
    sp->reap_wait = 1;
  }

out:
  if (sv[0] >= 0)
    close(sv[0]);
  if (sv[1] >= 0)
    close(sv[1]);
  for (i = 0; i < 6; i++)
    free(own[i]);
  free(env);
  free(argv);
  return r;
}

static int subproc_signal(void *st, int how) {
  struct subproc *sp = st;
  int r;
  if (!sp->spawned || sp->proc_done)
    return -ESRCH;
  r = uv_process_kill(&sp->proc, how == ACTOR__SIG_KILL ? SIGKILL : SIGTERM);
  return r;
}

static void subproc_close(void *st) {
  struct subproc *sp = st;
  if (sp->closing)
    return;
  sp->closing = 1;
  if (sp->reap_wait && !sp->proc_done)
    return; /* proc__exit finishes the close */
  /* Otherwise the child has been reaped, or it was abandoned after
   * SIGKILL failed to end it in time: closing the handle then stops
   * libuv tracking it, which is what abandoning means. */
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
