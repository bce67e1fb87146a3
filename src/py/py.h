/* The Python layer — private.  Only files under src/py include Python.h.
 *
 * This layer is compiled into libactor-python (the core + this layer) and
 * never links libpython: the Py* symbols come from the process that loads
 * it (docs/python.md).  Everything here must therefore work whether the
 * process's CPython was started by us (a C host: initialised on demand) or
 * by someone else (a Python host through the cffi shim). */
#ifndef ACTOR_PY_PY_H
#define ACTOR_PY_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "libactor/actor.h"

/* ---- msgpack <-> Python (convert.c) ---------------------------------------
 * None<->nil, bool<->bool, int<->int (the int64/uint64 range; beyond it an
 * OverflowError), float<->float64, str<->str, bytes/bytearray->bin (bin ->
 * bytes), list/tuple->array (array -> list), dict->map (map -> dict).
 * Anything else is a TypeError naming the type.  Both directions accept
 * values nested up to ACTOR__MAX_DEPTH (512) arrays/maps deep and refuse
 * deeper ones with a ValueError naming the limit. */

/* Append the encoding of `obj`.  0, or -1 with a Python exception set. */
int actor__py_pack(msgpack_packer *pk, PyObject *obj);
/* Decode exactly one value from [data, data+len): a new reference, or NULL
 * with an exception set (ValueError for malformed or trailing bytes). */
PyObject *actor__py_unpack(const char *data, size_t len);

/* ---- the child's end of a channel, blocking (endpoint.c) ------------------
 * Python actors are written as blocking code on their own thread (or
 * process), so their end of the channel is a blocking one: the same frames
 * as everywhere, through memory (subint) or a socket (actor-pyhost).
 * Nobody holds a GIL while calling these. */
struct abuf;
struct actor__inproc;
struct actor__py_ep {
  /* Append whole frames, atomically with respect to other writers (any
   * Python thread may send: a frame is never interleaved with another).
   * 0 or an error (ACTOR_ECLOSED: the peer is gone).  Any thread. */
  int (*write)(struct actor__py_ep *ep, const char *p, size_t n);
  /* Wait up to timeout_ms (-1 forever) for bytes, appended to `in`.
   * 0, -ETIMEDOUT (also when woken with nothing to read), ACTOR_ECLOSED.
   * One reader at a time (the inbox's token holder). */
  int (*read)(struct actor__py_ep *ep, struct abuf *in, int timeout_ms);
  /* Make a read in progress (or the next one) return -ETIMEDOUT soon.
   * Any thread. */
  void (*wake)(struct actor__py_ep *ep);
  /* Tell the parent we are done (EOF). */
  void (*close)(struct actor__py_ep *ep);
  pthread_mutex_t wmu; /* whole frames, one writer at a time */
  struct actor__inproc *ip; /* inproc */
  int fd;                   /* socket */
  int wakefd;               /* socket: an eventfd that ends a poll */
  /* Held stream items (socket only; see actor__py_ep_hold).  Under wmu,
   * except `nheld` (also read without it, as a hint). */
  int can_hold;
  struct abuf *held;
  atomic_size_t nheld;      /* bytes in `held` */
  uint64_t flush_by;        /* 0, or when the watcher flushes next */
  atomic_uint_fast64_t nitems; /* ITEM frames sent, for the watcher */
};
/* 0, or -errno (the socket's eventfd).  actor__py_ep_fini after use. */
int actor__py_ep_inproc(struct actor__py_ep *ep, struct actor__inproc *ip);
int actor__py_ep_socket(struct actor__py_ep *ep, int fd);
void actor__py_ep_fini(struct actor__py_ep *ep);

/* Holding frames.  One send() per item was most of a Python actor's
 * stream (0.38 M items/s): an ITEM frame — or a RETURN with more calls
 * queued behind it (calls in flight) — may instead wait in `held` when
 * someone is due to send it soon: the inbox's watcher, which wakes every
 * ACTOR__PY_HOLD_MS while frames are being held (inbox.c).  Every other
 * write sends the held bytes first, in the same send(), so frames keep
 * their order; so does a thread about to wait for input.  Nothing is
 * held past `flush_by`, which is never more than ACTOR__PY_HOLD_MS
 * ahead.
 *
 * _hold: with the caller's GIL held and without waiting (a trylock):
 * 1 when the frame is held, 0 when the caller must write it. */
#define ACTOR__PY_HOLD_MS 1
#define ACTOR__PY_HOLD_MAX (32 * 1024)
int actor__py_ep_hold(struct actor__py_ep *ep, const char *p, size_t n);
/* Send what is held without blocking (MSG_DONTWAIT) and make `flush_by`
 * the next flush (0: nobody will; nothing is held from now on until the
 * next call with a deadline).  Returns the bytes still held (the socket
 * was full), or SIZE_MAX when a writer had wmu (nothing done: come back
 * within ACTOR__PY_HOLD_MS).  The caller may hold the inbox's mutex; it
 * never waits here. */
size_t actor__py_ep_flush_until(struct actor__py_ep *ep, uint64_t flush_by);
/* Send what is held, blocking.  No GIL held.  0 or an error as write. */
int actor__py_ep_flush(struct actor__py_ep *ep);

/* ---- the inbox and the watcher (inbox.c) -----------------------------------
 * What the parent sends, filed for the Python code that waits for it, and
 * a watch on the channel while a call runs (docs/python.md, "Cancelling a
 * busy function").
 *
 * Filing.  Frames go to one of two places: the main queue (CALL, STOP, and
 * a malformed frame), which serve() reads in order; or the queue of the
 * pending call they belong to (its stream ITEM/END), which the call reads
 * when it iterates its input — so a call's items never wait behind other
 * calls, and other calls never get dropped while one call reads its own.
 * A CANCEL is not queued: it marks its call cancelled (a call that has not
 * started is then refused when it starts) or, for the call that runs, has
 * libactor_child.Cancelled injected into the thread that runs it.  A STOP
 * (or EOF) does the same to the running call and to every call that has
 * not started yet.  Frames for calls that are not pending are dropped.
 *
 * Reading.  Whoever needs a message and finds none reads the transport
 * itself (one reader at a time: a token under the inbox mutex), so an idle
 * serve() reads the parent's next CALL directly, with no extra thread
 * hop.  A call that runs Python code never reads; if it runs for more
 * than ACTOR__PY_WATCH_GRACE_MS, a watcher thread of the inbox takes the
 * token and reads the transport until the call ends, so that a CANCEL or
 * STOP reaches even a busy loop.  The watcher sleeps while no call runs
 * and while calls end quickly.
 *
 * Injection.  PyThreadState_SetAsyncExc only searches the current
 * interpreter: the reader that filed the CANCEL/STOP injects once it is
 * attached to a thread state of the actor's interpreter (a Python thread
 * re-attaching its own; the watcher a thread state of its own, created on
 * its thread, attached only for that).  It injects only while the call is
 * still the one that was cancelled (a generation number under the mutex),
 * and actor__py_inbox_end() — the serving thread, with its GIL, in the C
 * code that called the function — ends the call and clears an injection
 * that did not land, under the same mutex, so an injection never lands in
 * serve()'s own code.  The runtime's own interrupt (the subint backend's
 * KeyboardInterrupt) goes through actor__py_inbox_interrupt, which wins
 * over Cancelled and is never cleared. */
#define ACTOR__PY_WATCH_GRACE_MS 5

struct actor__py_inbox;

enum {
  ACTOR__PY_MSG_OVERSIZE = 1, /* the frame exceeded max_frame (no payload) */
  ACTOR__PY_MSG_BAD = 2,      /* malformed, or not a parent's message */
  ACTOR__PY_MSG_DEEP = 4      /* well formed, nested deeper than 512 */
};
/* One message, decoded in place: fn and payload point into it. */
struct actor__py_msg {
  struct actor__py_msg *next;
  int kind;
  uint32_t id;
  int flags;
  int err;            /* BAD: the decoder's code */
  uint64_t len;       /* OVERSIZE: the announced length */
  const char *fn;     /* CALL */
  size_t fn_len;
  const char *payload; /* CALL args, ITEM value */
  size_t payload_len;
  size_t size; /* bytes held, for the inbox's bound */
};

/* The inbox of one actor, over `ep` (heap-allocated: the inbox owns it
 * from now on, and on failure too).  NULL on ENOMEM. */
struct actor__py_inbox *actor__py_inbox_new(struct actor__py_ep *ep,
                                            size_t max_frame);
/* After actor__py_inbox_stop and the interpreter's end: frees the inbox
 * and its endpoint.  A thread of the actor may still be inside one of
 * their calls (a legacy interpreter's daemon thread): waited for up to a
 * second, then both are left allocated for it and -EBUSY is returned (the
 * caller keeps the transport alive too).  0 otherwise; NULL: no-op. */
int actor__py_inbox_free(struct actor__py_inbox *ib);
/* Around a blocking use of the endpoint with the GIL released (module.c's
 * writes): counted, so that _free never pulls it from under a thread. */
void actor__py_inbox_enter(struct actor__py_inbox *ib);
void actor__py_inbox_leave(struct actor__py_inbox *ib);

/* Start the watcher.  With a thread state of the actor's interpreter
 * attached; `cancelled` (the exception class to inject) is referenced
 * until stop.  0 or -errno. */
int actor__py_inbox_start(struct actor__py_inbox *ib, PyObject *cancelled);
/* Stop the watcher and join it; from now on actor__py_inbox_next answers
 * ACTOR_ECLOSED.  With the interpreter's thread state attached (it is
 * released while joining).  Idempotent. */
void actor__py_inbox_stop(struct actor__py_inbox *ib);

/* The next message of the main queue (cid 0) or of pending call `cid`,
 * waiting up to timeout_ms (-1 forever).  No GIL held.  Returns 0 and
 * *out (free it with actor__py_msg_free), -ETIMEDOUT (also when woken for
 * the calling thread), ACTOR_ECLOSED (the parent is gone and nothing is
 * left), -ENOENT (cid is not a pending call), -ENOMEM, or
 * ACTOR__PY_INJECT: this thread filed a CANCEL/STOP for the running call;
 * re-attach, call actor__py_inbox_inject(), and ask again. */
#define ACTOR__PY_INJECT 1
int actor__py_inbox_next(struct actor__py_inbox *ib, uint32_t cid,
                         int timeout_ms, struct actor__py_msg **out);
void actor__py_msg_free(struct actor__py_msg *m);
/* Does the main queue hold a message?  Cheap, no blocking. */
int actor__py_inbox_pending(struct actor__py_inbox *ib);
/* With a thread state of the actor's interpreter attached: perform an
 * injection filed by this thread, if it is still due. */
void actor__py_inbox_inject(struct actor__py_inbox *ib);

/* The call `cid` starts running on the calling thread (GIL held): 0, or
 * ACTOR_ECANCELED (it was cancelled, or the actor is stopping: *stopping
 * says which; it must not run, and its queue is gone), or ACTOR_ESTATE (a
 * call is running). */
int actor__py_inbox_begin(struct actor__py_inbox *ib, uint32_t cid,
                          int *stopping);
/* The running call has ended (same thread, GIL held); its queue goes. */
void actor__py_inbox_end(struct actor__py_inbox *ib);
/* Call `cid` is answered without running: drop its queue. */
void actor__py_inbox_forget(struct actor__py_inbox *ib, uint32_t cid);
/* STOP (or EOF) seen? */
int actor__py_inbox_stopping(struct actor__py_inbox *ib);

/* The runtime's interrupt: with a thread state of the actor's interpreter
 * attached, inject `exc` into thread `tid` (it is never cleared by _end,
 * and no Cancelled replaces it), then wake that thread if it waits. */
void actor__py_inbox_interrupt(struct actor__py_inbox *ib, unsigned long tid,
                               PyObject *exc);
/* Make thread `tid`, if it waits in actor__py_inbox_next (or is about to),
 * return -ETIMEDOUT.  Any thread. */
void actor__py_inbox_wake(struct actor__py_inbox *ib, unsigned long tid);

/* ---- running a Python actor (module.c) --------------------------------------
 * With a thread state of the actor's interpreter attached: install the
 * modules _libactor (bound to `ep` and `ib`) and libactor_child, prepend
 * `paths` to sys.path, start the inbox's watcher, say HELLO, import and
 * call `entry`, stop the watcher.  Returns the exit status (0: the entry
 * returned; SystemExit's code; 1: it raised) and describes the end in
 * `how` (e.g. "entry raised ValueError: bad").  *interrupted is set when
 * the entry ended in the KeyboardInterrupt the runtime injects.  The
 * caller frees `ib` (and with it `ep`, its endpoint) only after the
 * interpreter has ended: threads of the actor may send until then.
 *
 * guard_exits: os._exit() and os.abort() raise SystemExit instead of
 * ending the process (an isolated sub-interpreter: the process is the
 * host's; see docs/backends.md). */
struct actor__py_run {
  struct actor__py_ep *ep;
  struct actor__py_inbox *ib;
  const char *entry;
  char *const *paths;
  const char *name;
  const char *backend;
  size_t max_frame;
  int guard_exits;
  /* NULL, or what actor__py_prepare made in this interpreter (a warm
   * pool's): the runner takes the reference and binds it to this actor
   * instead of installing the modules. */
  PyObject *prepared;
  char how[256];
  int interrupted;
};
int actor__py_run_actor(struct actor__py_run *run);
/* Ahead of an actor (subint's warm pool), with a thread state of a fresh
 * interpreter attached: install _libactor, unbound, and import
 * libactor_child, as actor__py_run_actor would.  A new reference to
 * _libactor for run.prepared, or NULL with an exception set.  The name and
 * frame limit are the actor's, set when it runs; guard_exits is fixed
 * here. */
PyObject *actor__py_prepare(const char *backend, int guard_exits);
/* After actor__py_prepare (the warm pool's preload): prepend `paths` to
 * sys.path and import `modules` (NULL-terminated; either may be NULL).
 * 0, or -1 with an exception set. */
int actor__py_preload(char *const *paths, char *const *modules);
/* For a fork server, before it imports its preloads: install _libactor
 * and libactor_child unbound (their calls raise RuntimeError), so that a
 * preloaded module can `import libactor_child`.  In each forked child,
 * actor__py_run_actor executes libactor_child again into the same module
 * object, bound to that child's channel: `libactor_child.serve` then works
 * through the preloaded module's reference (names taken with
 * `from libactor_child import ...` at preload time stay the server's).
 * Main interpreter, GIL held; 0 or -1 with an exception set. */
int actor__py_preinstall(void);

/* ---- CPython in this process (runtime.c) ------------------------------------ */

/* 0 when this process's CPython can host sub-interpreters (3.14+),
 * initialising it on demand for a C host (install_signal_handlers = 0, the
 * GIL released afterwards).  Otherwise an error with a static reason.
 * Loop thread. */
int actor__py_ensure(const char **why);
/* Version gate only, without initialising: any thread. */
int actor__py_version_ok(const char **why);

#endif
