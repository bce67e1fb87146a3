/* Runtime internals shared by src/rt, src/spawn and src/child — private. */
#ifndef ACTOR_RT_INTERNAL_H
#define ACTOR_RT_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <uv.h>

#include "libactor/actor.h"
#include "ipc/chan.h"
#include "util/idmap.h"
#include "util/list.h"

struct actor__backend;

#define ACTOR__ERRMSG_MAX 512

/* ---- logging (rt/log.c) ------------------------------------------------ */

struct actor__log {
  int level; /* messages above it are dropped */
  actor_log_cb cb;
  void *arg;
};

void actor__log_init(struct actor__log *lg);
void actor__logf(const struct actor__log *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- spawn options (rt/opts.c) ------------------------------------------ */

struct actor_opts {
  char *backend;
  char *program;
  char *cwd;
  char *name;
  char **args; /* NULL-terminated */
  size_t nargs;
  char **env; /* additions, NULL-terminated */
  size_t nenv;
  int clear_env;
  char *entry;  /* Python actors: "package.module:function" */
  char **paths; /* NULL-terminated, for sys.path */
  size_t npaths;
  int subint_mode;
  /* forkserver (flat, like subint_mode: see actor.h; other backends
   * ignore them) */
  char *c_entry; /* "lib.so:function" */
  int fork_subint;
  int stdio[3];
  uint64_t hello_ms, graceful_ms, term_ms, kill_ms;
  actor_exit_cb exit_cb;
  void *exit_arg;
  actor_hello_cb hello_cb;
  void *hello_arg;
  actor_output_cb output_cb;
  void *output_arg;
};

/* A NULL-terminated vector of copies: append a copy of s (-EINVAL for
 * NULL, -ENOMEM); free it all. */
int actor__vec_push(char ***vec, size_t *n, const char *s);
void actor__vec_free(char **v);

/* ---- the runtime --------------------------------------------------------- */

/* Runtime-scoped state of one backend (backend.h, version 2). */
#define ACTOR__RT_BACKENDS 4
struct actor__rt_bslot {
  const struct actor__backend *b; /* NULL: a free slot */
  void *state;
  int closing, closed;
};

struct actor_rt {
  uv_loop_t *loop;
  int owns_loop;
  struct actor__log log;
  size_t max_frame;
  size_t max_queue; /* bytes queued for one actor before calls are refused */
  actor_drain_cb drain_cb;
  void *drain_arg;
  char errmsg[ACTOR__ERRMSG_MAX];
  struct alist actors; /* every actor not yet freed, stillborn ones too */
  size_t nlive;        /* of those, the ones the user holds */
  uint64_t next_actor_id;
  unsigned flush_waiting; /* channels with a flush scheduled (chan.h) */
  struct alist free_calls; /* recycled actor_call structs */
  size_t nfree_calls;
  int closing;
  int closed;
  int close_pending;
  uv_idle_t close_idle; /* finishes the close outside the caller's stack */
  actor_rt_close_cb close_cb;
  void *close_arg;
  struct actor__rt_bslot bslots[ACTOR__RT_BACKENDS];
  int bclosing; /* the backends' rt_close hooks have been called */
};

void actor__seterr(actor_rt *rt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void actor__rt_actor_gone(actor_rt *rt);

/* ---- actors -------------------------------------------------------------- */

struct actor {
  actor_rt *rt;
  struct alist node;
  uint64_t id;
  const struct actor__backend *backend;
  void *bstate;
  char *name;
  int state;
  int pid;
  int stillborn; /* start failed: freed silently, no callbacks */
  void *data;

  struct actor__chan chan;
  int chan_open;   /* chan initialised and on_closed not yet seen */
  int chan_closed; /* on_closed seen (or never opened) */
  int got_hello;

  struct idmap calls;
  uint32_t next_call_id;
  int call_ids_wrapped; /* next_call_id has passed 2^32 - 1 once */
  actor_call *rx_call;  /* the call the last frame read was for (in calls) */

  uv_timer_t timer; /* hello deadline, then the stop escalation */
  int timer_closed;
  int stage; /* enum actor__stage */
  uint64_t hello_ms, graceful_ms, term_ms, kill_ms;

  int exited; /* the backend reported the end */
  int backend_closed;
  int finishing;
  int exit_status, exit_signal, exit_error;
  int cause; /* the first error noted (exit_error may become EABANDONED) */
  size_t eof_partial; /* EOF came in the middle of a frame (bytes held) */
  char reason[ACTOR__ERRMSG_MAX];
  char how[200]; /* the backend's words, if any */

  actor_exit_cb exit_cb;
  void *exit_arg;
  actor_hello_cb hello_cb;
  void *hello_arg;
  actor_output_cb output_cb;
  void *output_arg;
};

enum actor__stage {
  ACTOR__STAGE_NONE = 0,
  ACTOR__STAGE_HELLO,    /* timer: hello deadline */
  ACTOR__STAGE_GRACEFUL, /* STOP sent; timer: graceful deadline */
  ACTOR__STAGE_TERM,     /* SIGTERM sent; timer: term deadline */
  ACTOR__STAGE_KILL,     /* SIGKILL sent; timer: kill deadline */
  ACTOR__STAGE_ABANDONED
};

/* Channel callbacks for the parent side; backends pass them with `a`. */
extern const struct actor__chan_cbs actor__parent_chan_cbs;

/* Backends report: the child is gone (status/signal as waitpid says;
 * err for a failure of the backend itself). */
void actor__backend_exited(actor *a, int64_t status, int sig, int err);
/* Backends may say in words how the child ended ("entry raised
 * ValueError: bad"), before actor__backend_exited; it joins the reason. */
void actor__backend_set_how(actor *a, const char *how);
/* Backends report: close finished. */
void actor__backend_closed(actor *a);
/* Backends hand over captured output, one line at a time. */
void actor__output_line(actor *a, int fd, const char *line, size_t len);

/* ---- the child's side of the environment (child/env.c) -------------------- */

struct actor__child_env {
  int fd;           /* the channel (close-on-exec from now on) */
  size_t max_frame;
  char *name;       /* owned */
  char *backend;    /* owned */
};
/* The child runtime on an explicit channel (a forked child has no
 * environment to read it from): `e` is taken over (its fd and strings are
 * the child's from now on, also on failure).  actor_child_new is this
 * after actor__child_env_take. */
int actor__child_new_env(actor_child **cp, uv_loop_t *loop,
                         struct actor__child_env *e);
/* Find the parent's channel, arm PR_SET_PDEATHSIG, check the parent is
 * still there, and remove the LIBACTOR_* variables from the environment.
 * ACTOR_ENOTCHILD when this process was not started as an actor. */
int actor__child_env_take(struct actor__child_env *e);
/* Finished call contexts the child keeps for reuse, at most
 * ACTOR__CHILD_CTX_CACHE (none in AddressSanitizer builds). */
#define ACTOR__CHILD_CTX_CACHE 64
size_t actor__child_ctx_cached(const actor_child *c);
void actor__child_env_free(struct actor__child_env *e);
/* The HELLO a child says first. */
void actor__msg_hello(struct actor__msg *m, const char *backend,
                      const char *name);

/* 1 when "NAME=value" names one of the variables below. */
int actor__env_reserved(const char *name_value);

/* Environment names shared by the parent and the child runtime. */
#define ACTOR__ENV_FD "LIBACTOR_FD"
#define ACTOR__ENV_NAME "LIBACTOR_NAME"
#define ACTOR__ENV_MAX_FRAME "LIBACTOR_MAX_FRAME"
#define ACTOR__ENV_PPID "LIBACTOR_PPID"
#define ACTOR__ENV_PROTO "LIBACTOR_PROTOCOL"
#define ACTOR__ENV_BACKEND "LIBACTOR_BACKEND"

#endif
