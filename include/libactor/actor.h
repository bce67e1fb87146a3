/*
 * libactor — spawn and supervise actors: children that share nothing with
 * their parent and talk to it only through messages.
 *
 * This header is the whole public API and its manual.  Everything not
 * declared here is private.
 *
 * Conventions
 * -----------
 *  - Functions return 0 or a negative error code (ACTOR_E*).  Operating
 *    system errors pass through as -errno; library errors have their own
 *    codes (see ACTOR_ERRNO_MAP).  actor_strerror() and actor_err_name()
 *    name them.  Richer context (a child's traceback, why a backend is
 *    unavailable, why a spawn failed) lives on the object that failed.
 *  - Handles are opaque.  No struct crosses the API by value; every callback
 *    takes a `void *arg` given when it was registered.  Nothing here works
 *    only as a macro, so the header suits a cffi shim in ABI mode.
 *  - Values are msgpack.  Arguments, return values and stream items are
 *    passed as the bytes of ONE msgpack value (encode them with msgpack-c).
 *    The library copies what it is given before returning; bytes it hands
 *    to a callback are valid only until that callback returns.
 *  - Threads.  An actor_rt, its actors and calls belong to the thread that
 *    runs their loop.  Call these functions only from that thread (from
 *    inside its callbacks or between runs of the loop).  Every callback runs
 *    on that thread.  Functions that take no handle (actor_strerror,
 *    actor_err_name, actor_version*, actor_backend_available) may be called
 *    from any thread.  Separate runtimes on separate loops are independent.
 *  - "If a call that takes a callback fails, the callback never runs."
 *
 * Message flow
 * ------------
 *  A parent spawns an actor (actor_spawn), which says HELLO.  The parent
 *  calls named functions in it (actor_call_start); a call may stream items in
 *  both directions before it completes with a return value or an error.
 *  actor_stop() asks the actor to finish; a deadline later it is sent
 *  SIGTERM, a deadline after that SIGKILL.  When the actor has exited and
 *  every pending call has completed, its exit callback runs, and after that
 *  callback returns the handle is freed.
 *
 * The child side (an actor program) uses actor_child_*: it registers named
 * functions and serves calls on its own loop.  It may itself create an
 * actor_rt on that loop and spawn children of its own.
 *
 * Using it
 * --------
 *  #include <libactor/actor.h>, and link libactor (pkg-config libactor, or
 *  CMake libactor::actor) or, for Python actors, libactor-python
 *  (pkg-config libactor-python, CMake libactor::actor_python): one of the
 *  two, never both (docs/python.md).  Linux only: glibc >= 2.36 and
 *  kernel >= 5.4 (pidfd, posix_spawn with closefrom).  The ABI rules, what
 *  a SONAME bump means and what counts as a break, are in docs/abi.md.
 */
#ifndef LIBACTOR_ACTOR_H
#define LIBACTOR_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The public symbols.  The shared libraries are built with hidden
 * visibility and a version script (docs/abi.md): only what is marked here
 * is exported, each in its library's version node. */
#if defined(__GNUC__)
#define ACTOR_EXTERN __attribute__((visibility("default")))
#else
#define ACTOR_EXTERN
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

#define ACTOR_VERSION_MAJOR 0
#define ACTOR_VERSION_MINOR 1
#define ACTOR_VERSION_PATCH 0
#define ACTOR_VERSION_HEX                                                      \
  ((ACTOR_VERSION_MAJOR << 16) | (ACTOR_VERSION_MINOR << 8) |                  \
   ACTOR_VERSION_PATCH)

/* Wire protocol version carried by HELLO (docs/protocol.md). */
#define ACTOR_PROTOCOL_VERSION 1

ACTOR_EXTERN unsigned actor_version(void);            /* ACTOR_VERSION_HEX */
ACTOR_EXTERN const char *actor_version_string(void);  /* "0.1.0" */

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Library error codes: name, value, message.  Values sit far below any
 * -errno so the two never collide. */
#define ACTOR_ERRNO_MAP(XX)                                                    \
  XX(EBADFRAME, -30001, "malformed frame or message")                          \
  XX(E2BIG, -30002, "frame larger than the configured maximum")                \
  XX(EBADKIND, -30003, "unknown message kind")                                 \
  XX(ENOFUNC, -30004, "no such function in the actor")                         \
  XX(EVERSION, -30005, "protocol version mismatch")                            \
  XX(EREMOTE, -30006, "the actor raised an error")                             \
  XX(ECLOSED, -30007, "the actor ended before answering")                      \
  XX(ENOHELLO, -30008, "the actor never said hello")                           \
  XX(ECANCELED, -30009, "cancelled")                                           \
  XX(ENOBACKEND, -30010, "no backend of that name")                            \
  XX(EUNAVAIL, -30011, "backend unavailable here")                             \
  XX(EBLOCKED, -30012, "blocked by the Python runtime")                        \
  XX(ESTATE, -30013, "operation not valid in this state")                      \
  XX(ENOTCHILD, -30014, "not started as an actor")                             \
  XX(ETYPE, -30015, "value of a type that cannot be converted")                \
  XX(EABANDONED, -30016, "the actor could not be stopped and was abandoned")   \
  XX(EKILLED, -30017, "the actor was stopped by the runtime")                  \
  XX(EPYTHON, -30018, "Python runtime error")                                 \
  XX(EDEPTH, -30019, "value nested deeper than the limit (512 levels)")

typedef enum {
#define ACTOR__ERR_ENUM(name, val, msg) ACTOR_##name = val,
  ACTOR_ERRNO_MAP(ACTOR__ERR_ENUM)
#undef ACTOR__ERR_ENUM
  ACTOR_ERRNO_MAX = -30000
} actor_errno_t;

/* Message and name of any code: ours or -errno.  Never NULL. */
ACTOR_EXTERN const char *actor_strerror(int err);
ACTOR_EXTERN const char *actor_err_name(int err);   /* "ACTOR_ECLOSED", "ENOENT" */

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum {
  ACTOR_LOG_ERROR = 0,
  ACTOR_LOG_WARN = 1,
  ACTOR_LOG_INFO = 2,
  ACTOR_LOG_DEBUG = 3
} actor_log_level;

/* The library's own messages.  `msg` is valid during the call only. */
typedef void (*actor_log_cb)(int level, const char *msg, void *arg);

/* ------------------------------------------------------------------------ */
/* Opaque handles                                                           */
/* ------------------------------------------------------------------------ */

struct uv_loop_s;                          /* libuv's uv_loop_t */

typedef struct actor_rt actor_rt;          /* parent-side runtime */
typedef struct actor_opts actor_opts;      /* spawn options */
typedef struct actor actor;                /* one child actor */
typedef struct actor_call actor_call;      /* one call (and its streams) */
typedef struct actor_child actor_child;    /* the child-side runtime */
typedef struct actor_ctx actor_ctx;        /* one call, as the child sees it */

/* ------------------------------------------------------------------------ */
/* Runtime                                                                  */
/* ------------------------------------------------------------------------ */

/* Create a runtime on `loop` (adopted: the library never runs it on its own
 * initiative except in actor_rt_shutdown, and never closes it), or, with
 * loop == NULL, on a loop the runtime owns and closes.  On failure *rtp is
 * NULL. */
ACTOR_EXTERN int actor_rt_new(actor_rt **rtp, struct uv_loop_s *loop);

ACTOR_EXTERN struct uv_loop_s *actor_rt_loop(actor_rt *rt);

/* Run the loop.  mode: 0 = until nothing is left to do, 1 = once (may
 * block), 2 = once without blocking.  Returns as uv_run() does: non-zero if
 * there is more to do.  Also fine on an adopted loop. */
enum { ACTOR_RUN_DEFAULT = 0, ACTOR_RUN_ONCE = 1, ACTOR_RUN_NOWAIT = 2 };
ACTOR_EXTERN int actor_rt_run(actor_rt *rt, int mode);

/* Driving the loop from a foreign event loop: wait until the backend fd is
 * readable or the timeout (ms, -1 = none) passes, then call
 * actor_rt_run(rt, ACTOR_RUN_NOWAIT).  The timeout is 0 while the runtime
 * has output waiting to be written, so a foreign loop never sleeps on it.
 * It is also 0 when the loop has nothing at all to do (no actor, no
 * handle): when actor_rt_run(NOWAIT) returns 0, stop polling until the next
 * spawn rather than spinning. */
ACTOR_EXTERN int actor_rt_backend_fd(actor_rt *rt);
ACTOR_EXTERN int actor_rt_backend_timeout(actor_rt *rt);

/* Log hook for the library's messages up to `level`.  Without one, messages
 * go to stderr when the environment variable LIBACTOR_LOG is set to
 * error|warn|info|debug, and nowhere otherwise. */
ACTOR_EXTERN void actor_rt_set_log(actor_rt *rt, int level, actor_log_cb cb,
                                   void *arg);

/* Largest frame accepted from, and announced to, children (default 8 MiB,
 * minimum 1 KiB).  Affects actors spawned afterwards. */
ACTOR_EXTERN int actor_rt_set_max_frame(actor_rt *rt, size_t bytes);

/* Back-pressure towards actors.  Bytes queued for one actor and not yet
 * taken by it (actor_queued) are bounded: while they are at or above the
 * limit (default 16 MiB, minimum 1 KiB; the queue may pass it by one
 * frame), actor_call_start() and actor_call_send() refuse with -EAGAIN,
 * sending nothing, and actor_rt_errmsg() says which actor is full.  The
 * drain callback then runs once, when that actor's queue has fallen to
 * half the limit: retry from there.  actor_call_end(), actor_call_cancel()
 * and actor_stop() are never refused.  Affects every actor of `rt` from the
 * next call on. */
ACTOR_EXTERN int actor_rt_set_max_queue(actor_rt *rt, size_t bytes);
typedef void (*actor_drain_cb)(actor *a, void *arg);
ACTOR_EXTERN void actor_rt_on_drain(actor_rt *rt, actor_drain_cb cb,
                                    void *arg);

/* Message for the last error returned by a call on `rt` (actor_spawn's
 * reason, for example).  Never NULL; "" when none. */
ACTOR_EXTERN const char *actor_rt_errmsg(actor_rt *rt);

/* Number of actors currently alive (spawned and not yet freed). */
ACTOR_EXTERN size_t actor_rt_actor_count(actor_rt *rt);

/* Asynchronous, idempotent close: stops every actor (actor_stop with each
 * actor's deadlines), and once all have exited and every handle is closed,
 * calls cb.  The runtime must then be freed with actor_rt_free(). No spawn
 * is accepted after close. */
typedef void (*actor_rt_close_cb)(actor_rt *rt, void *arg);
ACTOR_EXTERN int actor_rt_close(actor_rt *rt, actor_rt_close_cb cb, void *arg);

/* Free a runtime whose close has completed (or that never spawned).
 * Returns ACTOR_ESTATE, freeing nothing, if close has not completed — or
 * if a failed spawn is still releasing its handles (run the loop once), or
 * if backend state of the runtime lives on (a fork server: close first).
 * Closes and frees an owned loop.  actor_rt_free(NULL) is a no-op. */
ACTOR_EXTERN int actor_rt_free(actor_rt *rt);

/* Synchronous convenience: close, run the loop until the close completes
 * (bounded by the actors' deadlines), free.  Must not be called from
 * inside a callback of the runtime's loop. */
ACTOR_EXTERN int actor_rt_shutdown(actor_rt *rt);

/* ------------------------------------------------------------------------ */
/* Backends                                                                 */
/* ------------------------------------------------------------------------ */

/* Whether the named backend can spawn here.  Returns 0, ACTOR_ENOBACKEND,
 * or ACTOR_EUNAVAIL / ACTOR_EBLOCKED with a static reason in *why (may be
 * NULL).  Safe from any thread. */
ACTOR_EXTERN int actor_backend_available(const char *name, const char **why);

/* Names of the compiled-in backends, NULL-terminated, static. */
ACTOR_EXTERN const char *const *actor_backend_names(void);

/* ------------------------------------------------------------------------ */
/* Spawn options                                                            */
/* ------------------------------------------------------------------------ */

/* stdout/stderr of a child */
enum {
  ACTOR_STDIO_INHERIT = 0, /* the parent's (default; /dev/null if it has
                              that fd closed) */
  ACTOR_STDIO_DISCARD = 1, /* /dev/null */
  ACTOR_STDIO_CAPTURE = 2  /* read by the runtime, handed over line by line */
};

/* Options are copied in by every setter and read by actor_spawn; one
 * actor_opts may serve many spawns.  Setters return ACTOR_EINVAL-style
 * errors (-EINVAL) for bad values and -ENOMEM. */
ACTOR_EXTERN int actor_opts_new(actor_opts **op);
ACTOR_EXTERN void actor_opts_free(actor_opts *o);  /* NULL is a no-op */

/* Backend by name; default "subproc". */
ACTOR_EXTERN int actor_opts_set_backend(actor_opts *o, const char *backend);
/* subproc: the executable.  A path is used as given (a relative one from
 * the child's working directory); a bare name is looked up in the PATH of
 * the child's environment ("/bin:/usr/bin" without one), as execvp would. */
ACTOR_EXTERN int actor_opts_set_program(actor_opts *o, const char *path);
/* Appended to argv after argv[0] (the program). */
ACTOR_EXTERN int actor_opts_add_arg(actor_opts *o, const char *arg);
/* "NAME=value" added to the child's environment; it replaces an inherited
 * variable of that name, and a later addition of a name replaces an
 * earlier one.  The child starts from the parent's environment, without
 * the channel's own variables (LIBACTOR_FD, _NAME, _MAX_FRAME, _PPID,
 * _PROTOCOL, _BACKEND), which the runtime sets afresh: adding one is
 * -EINVAL.  Every other variable passes, LIBACTOR_LOG and LIBACTOR_PYHOST
 * included (docs/protocol.md §1.2). */
ACTOR_EXTERN int actor_opts_add_env(actor_opts *o, const char *name_value);
/* Start the child from an empty environment: it gets the additions and
 * nothing else of the parent's — not PATH, HOME, LIBACTOR_LOG or
 * LIBACTOR_PYHOST.  With actor_opts_add_env, the way to keep the host's
 * secrets from a child. */
ACTOR_EXTERN int actor_opts_clear_env(actor_opts *o);
/* The child's working directory; one that cannot be used fails the spawn
 * ("cannot use working directory"). */
ACTOR_EXTERN int actor_opts_set_cwd(actor_opts *o, const char *dir);
/* A name for logs and HELLO; default: the program's base name. */
ACTOR_EXTERN int actor_opts_set_name(actor_opts *o, const char *name);
/* fd: 1 or 2; mode: ACTOR_STDIO_*. */
ACTOR_EXTERN int actor_opts_set_stdio(actor_opts *o, int fd, int mode);
/* Deadlines in milliseconds; 0 keeps the default.
 *   hello:    spawn -> HELLO (default 10000)
 *   graceful: STOP -> SIGTERM (default 2000)
 *   term:     SIGTERM -> SIGKILL (default 2000)
 *   kill:     SIGKILL -> abandoned (default 2000) */
ACTOR_EXTERN int actor_opts_set_deadlines(actor_opts *o, uint64_t hello_ms,
                                          uint64_t graceful_ms,
                                          uint64_t term_ms, uint64_t kill_ms);

/* Callbacks, each with its own arg.
 *   exit:   the actor has exited and every call has completed; the handle
 *           is freed when this returns.  Query actor_exit_*() inside it.
 *   hello:  the actor said HELLO (status 0) — or failed to (status < 0,
 *           followed later by exit).
 *   output: one line of captured stdout (fd 1) or stderr (fd 2), without
 *           its newline; a final unterminated line is delivered too. */
typedef void (*actor_exit_cb)(actor *a, void *arg);
typedef void (*actor_hello_cb)(actor *a, int status, void *arg);
typedef void (*actor_output_cb)(actor *a, int fd, const char *line,
                                size_t len, void *arg);
ACTOR_EXTERN int actor_opts_on_exit(actor_opts *o, actor_exit_cb cb, void *arg);
ACTOR_EXTERN int actor_opts_on_hello(actor_opts *o, actor_hello_cb cb,
                                     void *arg);
ACTOR_EXTERN int actor_opts_on_output(actor_opts *o, actor_output_cb cb,
                                      void *arg);

/* Python actors.  An entry "package.module:function" names a Python
 * function that runs the actor (usually by calling libactor_child.serve);
 * it runs on the "subint" backend (a sub-interpreter on a thread of this
 * process) or on "subproc" (in the actor-pyhost helper program when no
 * program is set: $LIBACTOR_PYHOST if set, else the one installed with this
 * library, found relative to the library's own file; docs/abi.md).
 * Directories added with actor_opts_add_path are put in front of sys.path.
 * Python actors need libactor-python (see docs/python.md).
 *
 * CANCEL (actor_call_cancel) and STOP (actor_stop) reach a Python function
 * even in a pure-Python loop: libactor_child.Cancelled is raised in the
 * thread that runs the call at its next bytecode boundary.  A value too
 * large for a frame fails the call with ACTOR_E2BIG; one nested deeper
 * than 512 arrays/maps is that call's error (ValueError, ACTOR_EREMOTE).
 *
 * subint: a C host that embeds CPython itself must not hold the GIL (a
 * thread state attached) on the loop thread: actor_spawn then fails with
 * ACTOR_ESTATE and actor_rt_errmsg() says why.  A subint actor runs inside
 * this process; an isolated one cannot end it with os._exit()/os.abort()
 * (they raise SystemExit in the actor), but it can through ctypes or
 * signals: see docs/backends.md for what it can do to its host. */
ACTOR_EXTERN int actor_opts_set_entry(actor_opts *o, const char *entry);
ACTOR_EXTERN int actor_opts_add_path(actor_opts *o, const char *dir);
/* subint: ACTOR_SUBINT_ISOLATED (own GIL, the default) or
 * ACTOR_SUBINT_LEGACY (shares the main interpreter's GIL). */
enum { ACTOR_SUBINT_ISOLATED = 0, ACTOR_SUBINT_LEGACY = 1 };
ACTOR_EXTERN int actor_opts_set_subint_mode(actor_opts *o, int mode);

/* forkserver: actors forked by a fork server, a clean helper process
 * (actor-forkserver: $LIBACTOR_FORKSERVER if set, else the one installed
 * with this library; docs/abi.md) that the runtime starts on first use and
 * ends with actor_rt_close (bounded).  The server is not an actor: it is
 * not counted by actor_rt_actor_count.  Each child is forked from a worker
 * thread of the server attached to its main interpreter, leads its own
 * process group, and has stdin (/dev/null), stdout, stderr and the channel
 * open and nothing else; actor_pid() is its pid (known from HELLO on).
 * What a child runs (docs/backends.md, "forkserver"):
 *   - a C entry: actor_opts_set_c_entry(o, "libfoo.so:function"), a
 *     function `int function(actor_child *c)` in a shared object that the
 *     server loads (once: actor_rt_forkserver_load, or at its first use).
 *     It registers its functions and returns actor_child_run(c) — its
 *     value is the child's exit status.  Works without Python.
 *   - a Python entry (actor_opts_set_entry) in the child's main
 *     interpreter, the default; SIGINT raises KeyboardInterrupt there.
 *   - a Python entry in a fresh sub-interpreter on a thread of the child:
 *     actor_opts_set_fork_subint(o, 1), with actor_opts_set_subint_mode.
 * The per-spawn options are flat fields of actor_opts, as subint_mode is:
 * other backends ignore them.  stdout/stderr: inherited (the host's),
 * discarded, or captured as for subproc (the pipes go to the child with
 * its channel).
 * Exit codes and signals are relayed by the server; stopping escalates
 * with real signals to the child's process group, as subproc. */
ACTOR_EXTERN int actor_opts_set_c_entry(actor_opts *o, const char *lib_entry);
ACTOR_EXTERN int actor_opts_set_fork_subint(actor_opts *o, int on);

/* The fork server of a runtime, configured before it starts (a setting
 * made while it runs applies from its next start, after it died).
 *   preload:  a Python module the server imports before it forks (the
 *             server then runs CPython; children inherit the module);
 *   add_path: a directory put in front of the server's sys.path;
 *   load:     a shared object the server dlopens at start (RTLD_NOW |
 *             RTLD_GLOBAL), for C entries; one not loaded is loaded on
 *             first use.
 * actor_rt_forkserver_start() starts it now (python: initialise CPython
 * at once) instead of at the first spawn; 0 if it runs already.
 * actor_rt_forkserver_pid() is its pid, 0 when none runs.  Loop thread. */
ACTOR_EXTERN int actor_rt_forkserver_preload(actor_rt *rt, const char *module);
ACTOR_EXTERN int actor_rt_forkserver_add_path(actor_rt *rt, const char *dir);
ACTOR_EXTERN int actor_rt_forkserver_load(actor_rt *rt, const char *lib);
ACTOR_EXTERN int actor_rt_forkserver_start(actor_rt *rt, int python);
ACTOR_EXTERN int actor_rt_forkserver_pid(actor_rt *rt);

/* ------------------------------------------------------------------------ */
/* Actors (parent side)                                                     */
/* ------------------------------------------------------------------------ */

enum {
  ACTOR_STATE_STARTING = 0, /* spawned, waiting for HELLO */
  ACTOR_STATE_RUNNING = 1,  /* said HELLO */
  ACTOR_STATE_STOPPING = 2, /* actor_stop() or a failure is ending it */
  ACTOR_STATE_EXITED = 3    /* gone; only seen inside the exit callback */
};

/* Spawn.  On success *ap is the new actor (calls may be made at once; they
 * are delivered after HELLO).  On failure nothing was started, no callback
 * will run, *ap is NULL and actor_rt_errmsg() says why (for example
 * -ENOENT: "subproc: cannot execute './nope': no such file or directory";
 * -EMFILE: "subproc: out of file descriptors: cannot create the channel:
 * too many open files (EMFILE)").
 * subproc: the child has stdin (/dev/null), stdout, stderr and the channel
 * open, nothing else of the parent's; it leads a session and a process
 * group of its own, with an empty signal mask and default dispositions
 * (docs/backends.md, "What a child inherits"). */
ACTOR_EXTERN int actor_spawn(actor_rt *rt, const actor_opts *o, actor **ap);

/* Ask the actor to finish: STOP, then SIGTERM after the graceful deadline,
 * SIGKILL after the term deadline.  Idempotent.  Completes through the
 * exit callback.
 * subproc: the signals go to the actor's whole process group, so that the
 * processes it started itself end with it; once it has died of them, what
 * is left of its group is SIGKILLed.  Descendants that left the group
 * (setsid/setpgid, and the actor's own actors) are not reached; an actor
 * that ends by itself leaves its group alone (docs/protocol.md §6). */
ACTOR_EXTERN int actor_stop(actor *a);
/* Skip the graceful step: signal now (SIGTERM, or SIGKILL if `hard`), to
 * the process group as above. */
ACTOR_EXTERN int actor_kill(actor *a, int hard);

ACTOR_EXTERN int actor_state(const actor *a);
/* Bytes queued for the actor and not yet taken by it (see
 * actor_rt_set_max_queue). */
ACTOR_EXTERN size_t actor_queued(const actor *a);
ACTOR_EXTERN const char *actor_name(const actor *a);
ACTOR_EXTERN const char *actor_backend(const actor *a);
ACTOR_EXTERN int actor_pid(const actor *a);        /* 0 when none */
ACTOR_EXTERN uint64_t actor_id(const actor *a);    /* unique per runtime */
ACTOR_EXTERN void actor_set_data(actor *a, void *data);
ACTOR_EXTERN void *actor_get_data(const actor *a);

/* Exit information; meaningful in the exit callback.
 *   status: the process exit code (-1 if it did not exit normally)
 *   signal: the signal that ended it (0 if none)
 *   error:  0 for a normal end; otherwise why the runtime ended it or what
 *           went wrong (ACTOR_ENOHELLO, ACTOR_EVERSION, ACTOR_EBADFRAME,
 *           ACTOR_EKILLED, ACTOR_EABANDONED, -errno ...)
 *   reason: a sentence describing how it ended.  Never NULL. */
ACTOR_EXTERN int actor_exit_status(const actor *a);
ACTOR_EXTERN int actor_exit_signal(const actor *a);
ACTOR_EXTERN int actor_exit_error(const actor *a);
ACTOR_EXTERN const char *actor_exit_reason(const actor *a);

/* ------------------------------------------------------------------------ */
/* Calls (parent side)                                                      */
/* ------------------------------------------------------------------------ */

/* Events of a call.
 *   ITEM: the actor streamed a value (data/len: one msgpack value).
 *   END:  the actor ended its stream (no data).
 *   DONE: the call completed.  status 0: data/len is the return value.
 *         Otherwise an error code; ACTOR_EREMOTE carries details in
 *         actor_call_error_type/_message/_traceback.  The call is freed
 *         when this event's callback returns.
 * DONE always comes last and exactly once, whatever happens to the actor. */
enum { ACTOR_EV_ITEM = 1, ACTOR_EV_END = 2, ACTOR_EV_DONE = 3 };
typedef void (*actor_call_cb)(actor_call *c, int event, int status,
                              const char *data, size_t len, void *arg);

/* Call function `fn` of actor `a` with `args` (one msgpack value, usually
 * an array; NULL/0 sends nil).  *cp (optional) receives the call handle,
 * valid until DONE.  Several calls may be in flight at once.
 * Errors (nothing sent, the callback never runs): -EINVAL (no name, or
 * args not exactly one msgpack value), ACTOR_EDEPTH (args nested deeper
 * than 512 levels), ACTOR_ESTATE (the actor is stopping or its channel is
 * gone), -EAGAIN (its queue is full: see actor_rt_set_max_queue),
 * ACTOR_E2BIG (the frame would exceed the maximum), -ENOMEM.
 * A value the actor sends back nested deeper than 512 levels, or larger
 * than the maximum frame, fails that call (ACTOR_EDEPTH, ACTOR_E2BIG); the
 * actor is asked to cancel it and keeps running. */
ACTOR_EXTERN int actor_call_start(actor *a, const char *fn, const void *args,
                            size_t args_len, actor_call_cb cb, void *arg,
                            actor_call **cp);

/* Two-way streams: send one item to the actor's side of the call, or end
 * this side (the actor sees end of input).  ACTOR_ESTATE once this side
 * has ended or the call was cancelled; ACTOR_ECLOSED once the actor's
 * channel is gone (DONE is then on its way); -EINVAL, ACTOR_EDEPTH and
 * -EAGAIN as for actor_call_start.  Like every call function, valid only
 * until DONE: the handle is freed when DONE's callback returns. */
ACTOR_EXTERN int actor_call_send(actor_call *c, const void *item, size_t len);
ACTOR_EXTERN int actor_call_end(actor_call *c);

/* Ask the actor to cancel this call.  From the moment this returns, the
 * call's callback sees no more ITEM or END events, only DONE — normally
 * with status ACTOR_ECANCELED, or whatever the actor answered first.
 * Idempotent; never refused for a full queue. */
ACTOR_EXTERN int actor_call_cancel(actor_call *c);

ACTOR_EXTERN actor *actor_call_actor(const actor_call *c);
ACTOR_EXTERN const char *actor_call_fn(const actor_call *c);
/* Details of a failed call; valid inside the DONE callback; never NULL. */
ACTOR_EXTERN const char *actor_call_error_type(const actor_call *c);
ACTOR_EXTERN const char *actor_call_error_message(const actor_call *c);
ACTOR_EXTERN const char *actor_call_traceback(const actor_call *c);

/* ------------------------------------------------------------------------ */
/* Event queue (for bindings: poll instead of being called back)            */
/* ------------------------------------------------------------------------ */

/* A binding to another language (the Python package, docs/python.md) may
 * not want C to call into it: cffi callbacks need writable+executable
 * memory on hardened systems and swallow the exceptions raised in them.
 * An event queue is the alternative: register the library's own callbacks
 * below, each with the queue as its `arg`, and after each run of the loop
 * take the events out with actor_evq_next().  Everything a callback would
 * only see during the callback is copied into the event (the bytes, the
 * exit information, a failed call's type, message and traceback), so it
 * stays valid until the event is released.
 *
 * Bounds.  The queue holds every event until it is taken: none is dropped
 * (DONE and EXIT must arrive).  When the bytes it holds reach its limit
 * (actor_evq_new's `limit`; 0: 8 MiB), each further event also stops the
 * loop (uv_stop): the current run of the loop returns at the end of its
 * iteration, so the queue exceeds the limit by at most what one iteration
 * delivers (bounded by the runtime's frame and read sizes).  Drain it after
 * every run.
 *
 * Handles.  `handle` is the actor or call the event is about, as an
 * identity: an actor is freed after its EXIT event's callback, a call
 * after DONE's, so the pointer may be stale by the time the event is
 * taken; never dereference it.  A handle's events are queued in the order
 * the callbacks ran, and no handle address is reused before all the events
 * of the handle it was are queued; a binding that drains after every run
 * (and after actor_stop/_kill/actor_rt_close, which may complete calls at
 * once) before starting new calls never confuses two handles.  `data` is
 * actor_get_data() of the actor concerned (for a call, its actor's) at the
 * time of the event: a binding may keep its own token there.
 * Thread: the queue belongs to the loop's thread, as its runtime does. */
typedef struct actor_evq actor_evq;

enum {
  ACTOR_EVQ_CALL = 1,   /* actor_call_cb: event ITEM/END/DONE */
  ACTOR_EVQ_HELLO = 2,  /* actor_hello_cb */
  ACTOR_EVQ_EXIT = 3,   /* actor_exit_cb */
  ACTOR_EVQ_OUTPUT = 4  /* actor_output_cb */
};

/* One event, filled in by actor_evq_next().  Its pointers are valid until
 * the next actor_evq_next() or actor_evq_free() on the queue.  Fields are
 * only ever appended. */
typedef struct actor_evq_event {
  int kind;        /* ACTOR_EVQ_* */
  int event;       /* CALL: ACTOR_EV_*; OUTPUT: the fd (1, 2); else 0 */
  int status;      /* CALL DONE: 0 or the error; HELLO: its status;
                      EXIT: actor_exit_error(); else 0 */
  int exit_status; /* EXIT: actor_exit_status(), actor_exit_signal() */
  int exit_signal;
  int reserved;
  void *handle;    /* the actor_call (CALL) or actor (others): identity only */
  void *data;      /* actor_get_data() of the actor concerned */
  uint64_t actor_id; /* actor_id() of the actor concerned */
  const char *bytes; /* CALL ITEM/DONE: the msgpack value; OUTPUT: the line;
                        EXIT: the reason (NUL-terminated); else "" */
  size_t len;
  const char *error_type; /* CALL DONE with an error: actor_call_error_type(), */
  const char *error_message; /* _message(), _traceback(); else "" */
  const char *traceback;
} actor_evq_event;

/* A queue for the callbacks of `rt`'s actors and calls; limit: bytes held
 * before each event also stops the loop (0: 8 MiB).  Free it after the
 * runtime (its last events come from actor_rt_close's run).  Freeing
 * discards the events not taken.  NULL is a no-op. */
ACTOR_EXTERN int actor_evq_new(actor_evq **qp, actor_rt *rt, size_t limit);
ACTOR_EXTERN void actor_evq_free(actor_evq *q);
/* Take the oldest event into *ev (releasing the one taken before): 1, or 0
 * when the queue is empty (*ev untouched). */
ACTOR_EXTERN int actor_evq_next(actor_evq *q, actor_evq_event *ev);
/* Events waiting, and the bytes they hold. */
ACTOR_EXTERN size_t actor_evq_len(const actor_evq *q);
ACTOR_EXTERN size_t actor_evq_bytes(const actor_evq *q);
/* The callbacks: pass each with the queue as its `arg`
 * (actor_call_start, actor_opts_on_exit/_on_hello/_on_output). */
ACTOR_EXTERN void actor_evq_call_cb(actor_call *c, int event, int status,
                                    const char *data, size_t len, void *arg);
ACTOR_EXTERN void actor_evq_exit_cb(actor *a, void *arg);
ACTOR_EXTERN void actor_evq_hello_cb(actor *a, int status, void *arg);
ACTOR_EXTERN void actor_evq_output_cb(actor *a, int fd, const char *line,
                                      size_t len, void *arg);

/* Call and wait: the blocking binding's commonest step, `value =
 * actor.call(fn, args)`, done in C, without a trip through the binding's
 * language for every event of the loop.
 *
 * actor_evq_call() starts the call (as actor_call_start with
 * actor_evq_call_cb and `q`) and waits for it: it runs the loop itself
 * until the call's DONE arrives, which it returns in *ev instead of
 * queueing it.  actor_evq_wait() waits for a call already started that
 * way (after an earlier wait returned without its DONE); if the call's
 * DONE is already queued (a run of the loop since), it is taken out of the
 * queue and returned.
 *
 * Returns:
 *   1            the call completed: *ev is its DONE event (status 0 and
 *                bytes/len the return value, or the error with its type,
 *                message and traceback), valid until the next
 *                actor_evq_next/_wait/_call or actor_evq_free on `q`; the
 *                call is freed (*cp is NULL).
 *   0            the queue reached its limit (the events that came while
 *                waiting): drain it with actor_evq_next, then wait again.
 *   -ETIMEDOUT   timeout_ms passed (-1: no timeout; 0: run the loop once,
 *                without blocking).
 *   -EINTR       a signal interrupted the wait (the host's handler, e.g. a
 *                Ctrl-C, can run now); wait again to go on.
 *   ACTOR_ESTATE the loop has nothing left to run, or a wait on `q` is in
 *                progress already (this was called from inside a callback
 *                of the loop); actor_rt_errmsg() says which.
 *   -ENOMEM      the call completed but its DONE could not be copied.
 *   actor_evq_call only: what actor_call_start returns when it refuses the
 *   call (nothing was sent, *cp is NULL), and -EINVAL when `a` belongs to
 *   another runtime than `q`.
 * On 0, -ETIMEDOUT, -EINTR and ACTOR_ESTATE the call is still in flight
 * (actor_evq_call puts it in *cp, if not NULL) and its later events are
 * queued as usual, unless it is waited for again.
 *
 * Other events: everything else that arrives while waiting — other calls'
 * items and DONEs, output lines, hellos, exits, the waited actor's own
 * exit after the DONE — is queued, in order, as with any run of the loop;
 * drain the queue after the wait as after any run.  The waited call's own
 * ITEM and END events are not kept (a stream is for actor_call_start and
 * the queue): only its DONE is returned.
 *
 * Waiting: the loop is run without blocking, repeatedly for up to spin_us
 * microseconds (0: never; worth it only with the actor on another CPU,
 * and skipped for a while after spins that the answer did not beat), then
 * the thread sleeps in poll(2) on actor_rt_backend_fd() for the loop's own
 * timeout, between non-blocking runs.  Same thread rules as the runtime:
 * the loop's thread, never from inside one of its callbacks (the loop is
 * not re-entrant).  The handles follow the usual rules: `a` must be alive,
 * `c` a call of `q`'s runtime started with actor_evq_call_cb and `q` as its
 * arg, whose DONE the caller has not taken yet. */
ACTOR_EXTERN int actor_evq_call(actor_evq *q, actor *a, const char *fn,
                                const void *args, size_t args_len,
                                int spin_us, int timeout_ms,
                                actor_evq_event *ev, actor_call **cp);
ACTOR_EXTERN int actor_evq_wait(actor_evq *q, actor_call *c, int spin_us,
                                int timeout_ms, actor_evq_event *ev);

/* ------------------------------------------------------------------------ */
/* The Python layer (libactor-python only; the core library answers        */
/* ACTOR_EUNAVAIL)                                                          */
/* ------------------------------------------------------------------------ */

/* Sub-interpreter threads that would not end and were abandoned (their
 * actors reported ACTOR_EABANDONED), and those still alive, process-wide.
 * A kill that comes before an actor's interpreter exists prevents the
 * start; that thread ends by itself and is never counted as abandoned.
 * Any thread. */
ACTOR_EXTERN int actor_subint_abandoned_count(void);
ACTOR_EXTERN int actor_subint_thread_count(void);

/* The warm pool of sub-interpreters (docs/backends.md, "Warm pool"):
 * keep `size` (0..64) interpreters of `mode` (ACTOR_SUBINT_*) made ahead
 * of time, each parked on a thread of its own with libactor_child loaded,
 * so that a subint spawn of that mode takes one instead of making one
 * (milliseconds less).  Each serves one actor and ends with it; the pool
 * refills itself on a thread of its own, never the loop's.  Process-wide:
 * the interpreters belong to the process's CPython, not to a runtime, and
 * any runtime's spawn takes from it.  size 0 drains the mode: its parked
 * interpreters end (on their threads, in the background: this returns at
 * once).  What is parked is ended before the process exits (atexit) and,
 * in a Python host, before CPython finalises.  A spawn with the pool empty
 * takes the cold path, as without a pool.  Initialises CPython in a C
 * host, as the first subint spawn would: call it from a thread that holds
 * no Python thread state.  0, -EINVAL (mode or size), ACTOR_ESTATE (the
 * calling thread holds a Python thread state), ACTOR_EUNAVAIL /
 * ACTOR_EPYTHON (no usable CPython), or -errno (no thread). */
ACTOR_EXTERN int actor_subint_pool_set(int mode, int size);
/* Interpreters of `mode` parked and ready now (-EINVAL for a bad mode). */
ACTOR_EXTERN int actor_subint_pool_count(int mode);
/* Threads the pool owns now: its refiller and the interpreters being made,
 * parked or being ended.  An interpreter taken by a spawn leaves this
 * count for actor_subint_thread_count(), which counts the threads running
 * actors.  0: the pool has nothing left in the process.  Any thread. */
ACTOR_EXTERN int actor_subint_pool_threads(void);
/* What the pool's interpreters of `mode` import before they park (the
 * warm pool's counterpart of a fork server's preload): each one made from
 * now on prepends `paths` to its sys.path and imports `modules` (both
 * NULL-terminated, at most 64 each; NULL or empty: none), so that an actor
 * whose entry module is among them starts without importing it (most of a
 * warm spawn: docs/backends.md, "Warm pool").  The modules are imported
 * ahead of the actor, once per parked interpreter, with libactor_child
 * loaded but not bound to an actor (its name is "" and its calls raise
 * RuntimeError until the actor starts): their import-time effects happen
 * then, and the parked interpreter holds them (memory).  The actor's own
 * paths still come first on sys.path.  Interpreters parked before the call
 * are retired and remade.  A preload that fails (the traceback goes to
 * stderr) stops the refill of that mode until the next
 * actor_subint_pool_set or _preload.  Process-wide, any thread.  0,
 * -EINVAL (mode; more than 64 entries; an empty string), -ENOMEM,
 * ACTOR_EUNAVAIL (the core library). */
ACTOR_EXTERN int actor_subint_pool_preload(int mode, const char *const *paths,
                                           const char *const *modules);

/* Does CPython still refuse fork() from a sub-interpreter?  Runs the
 * experiment in a sacrificial process: a sub-interpreter on a thread forks,
 * and the fate of the forked child is recorded.  *blocked: 1 blocked, 0
 * not blocked.  `evidence` receives a report (exit status, the fatal
 * message).  0, or an error if the probe itself could not run.  The
 * sacrificial process is the subint-fork-probe helper program:
 * $LIBACTOR_SUBINT_FORK_PROBE if set, else the one installed with this
 * library (docs/abi.md). */
ACTOR_EXTERN int actor_subint_fork_probe(int *blocked, char *evidence,
                                         size_t len);

/* ------------------------------------------------------------------------ */
/* The child side                                                           */
/* ------------------------------------------------------------------------ */

/* A served function.  `args`/`len` is one msgpack value, valid during the
 * call.  The function answers with exactly one of actor_ctx_return or
 * actor_ctx_error — before returning or later, from any callback of the
 * child's loop.  Returning a negative code without having answered makes
 * the runtime answer with that error.
 *
 * Input is handled in the order the parent sent it, one message at a time:
 * functions, item callbacks and cancel callbacks run from the top of the
 * loop, never inside one another.  What arrives while a function runs
 * (actor_ctx_yield reads the channel) waits until it has returned. */
typedef int (*actor_fn)(actor_ctx *x, const char *args, size_t len,
                        void *arg);

/* Attach to the channel the parent made (found through the environment).
 * ACTOR_ENOTCHILD when the process was not started as an actor.  loop:
 * adopted, or NULL for one the child runtime owns. */
ACTOR_EXTERN int actor_child_new(actor_child **cp, struct uv_loop_s *loop);
ACTOR_EXTERN struct uv_loop_s *actor_child_loop(actor_child *c);
ACTOR_EXTERN const char *actor_child_name(actor_child *c);
ACTOR_EXTERN void actor_child_set_log(actor_child *c, int level,
                                      actor_log_cb cb, void *arg);

/* Register `fn` under `name` (copied).  Replaces an earlier one. */
ACTOR_EXTERN int actor_child_register(actor_child *c, const char *name,
                                      actor_fn fn, void *arg);

/* Called once when the parent asks the actor to stop or goes away; every
 * call in progress has been told it is cancelled (its cancel callback ran,
 * or the runtime answered for it).  Use it to close a runtime of the
 * actor's own (its children) and other handles. */
typedef void (*actor_child_stop_cb)(actor_child *c, void *arg);
ACTOR_EXTERN void actor_child_on_stop(actor_child *c, actor_child_stop_cb cb,
                                      void *arg);

/* Say HELLO and start serving on the loop. */
ACTOR_EXTERN int actor_child_start(actor_child *c);
/* Start, then run the loop until the actor is stopped and every handle on
 * the loop is closed.  Returns the exit code the process should use. */
ACTOR_EXTERN int actor_child_run(actor_child *c);
/* Finish serving on our own initiative (as if STOP had arrived). */
ACTOR_EXTERN void actor_child_stop(actor_child *c);
/* Free the child and every context (those a function kept are invalid
 * from here on).  Not from one of the child's own callbacks.  NULL is a
 * no-op.
 *   Adopted loop: the loop is the program's and is not run here.  The
 *     channel is closed at once; the rest of the memory goes when the
 *     program next runs the loop (the close callbacks), which it must do
 *     before uv_loop_close().  After actor_child_run() has returned nothing
 *     is left open and all of it goes at once.
 *   Owned loop: the loop is run (without blocking) for the close
 *     callbacks, then closed and freed.  Handles the program left open on
 *     it are closed first, their close callbacks running here.  If it still
 *     cannot close (requests in flight), it is left allocated, with a
 *     warning in the log, rather than freed under them. */
ACTOR_EXTERN void actor_child_free(actor_child *c);

/* Answer a call: completes it, and `x` is freed.  ACTOR_ECANCELED, sending
 * nothing, when the runtime has answered already (a cancellation the
 * function had no callback for, or an oversized item from the parent);
 * ACTOR_ESTATE when the function answered already.  Like every send of
 * the child, may block briefly when the parent reads slower than the
 * actor writes (see actor_ctx_yield). */
ACTOR_EXTERN int actor_ctx_return(actor_ctx *x, const void *value, size_t len);
ACTOR_EXTERN int actor_ctx_error(actor_ctx *x, const char *type,
                                 const char *message, const char *traceback);
/* Stream one item to the parent.  May block briefly when the parent reads
 * slower than the actor writes (more than 512 KiB queued: backpressure),
 * never without bound while the parent is alive.
 *
 * ACTOR_ECANCELED, sending nothing, once the call is cancelled: by a
 * CANCEL, a STOP (or the parent's end), or an oversized item from the
 * parent.  A function that streams in a loop without returning still sees
 * it: every few milliseconds, yield sends what is queued and reads what
 * has arrived (so its items also reach the parent while it runs).  A
 * function without a cancel callback is answered for by the runtime at that
 * moment (libactor.Cancelled); its own answer is then refused.  A cancel
 * callback runs after the function has returned. */
ACTOR_EXTERN int actor_ctx_yield(actor_ctx *x, const void *item, size_t len);
/* End the actor's item stream (the parent sees ACTOR_EV_END). */
ACTOR_EXTERN int actor_ctx_end(actor_ctx *x);

/* Receive the parent's items of a two-way call: data/len per item, then
 * one call with data == NULL when the parent ends its side. Register it
 * before the function returns.  Items that arrive while any function runs
 * are delivered after it returns, in order. */
typedef void (*actor_item_cb)(actor_ctx *x, const char *data, size_t len,
                              void *arg);
ACTOR_EXTERN void actor_ctx_on_item(actor_ctx *x, actor_item_cb cb, void *arg);

/* Cancellation: a flag, and an optional callback.  The flag is set when
 * the child reads the CANCEL (or a STOP), or loses an oversized item of the
 * call; actor_ctx_cancelled() is then true.  The callback runs once, from
 * the top of the loop — when the CANCEL's turn comes, at the stop, or for
 * an oversized item — never inside the function's own code, and only if
 * the function has not answered yet; it is expected to answer (after an
 * oversized item the runtime has answered, and its answer is refused). */
typedef void (*actor_cancel_cb)(actor_ctx *x, void *arg);
ACTOR_EXTERN void actor_ctx_on_cancel(actor_ctx *x, actor_cancel_cb cb,
                                      void *arg);
ACTOR_EXTERN int actor_ctx_cancelled(const actor_ctx *x);

ACTOR_EXTERN const char *actor_ctx_fn(const actor_ctx *x);
ACTOR_EXTERN actor_child *actor_ctx_child(const actor_ctx *x);

#ifdef __cplusplus
}
#endif
#endif /* LIBACTOR_ACTOR_H */
