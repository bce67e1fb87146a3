/* Spawn backends — private.
 *
 * A backend decides WHERE a child runs and HOW its channel is made; the
 * protocol and the runtime are the same for every backend.  Each backend is
 * one file exporting one ops table, listed in registry.c.  Fields are only
 * ever appended (check `version`): version 2's come after version 1's, in
 * a struct that begins with the version 1 table (struct actor__backend_v2).
 *
 * Contract (all calls on the loop thread; none blocks):
 *   available  0, or ACTOR_EUNAVAIL/ACTOR_EBLOCKED with a static reason.
 *              Any thread.
 *   start      Start the child for actor `a`.  The runtime has allocated
 *              `st` (state_size bytes, zeroed).  On success the backend has
 *              opened a->chan (actor__stream_open or another transport,
 *              with actor__parent_chan_cbs and `a` as data) and will later
 *              call actor__backend_exited() exactly once.  On failure it
 *              returns an error, has set the message with actor__seterr(),
 *              has NOT opened a->chan, and the runtime calls `close` next
 *              (so a half-made start is undone in one place).
 *   signal     Deliver ACTOR__SIG_TERM or ACTOR__SIG_KILL (or the
 *              backend's nearest equivalent).  0 or an error.
 *   close      Release everything; idempotent; called once the child has
 *              exited (or been abandoned), or after a failed start.  It ends
 *              in actor__backend_closed(a), possibly from a later callback.
 *
 * Version 2 adds runtime-scoped state, for a backend that keeps something
 * per runtime (the forkserver backend: one fork server per runtime):
 *   rt_state_size  bytes the runtime allocates (zeroed) for this backend
 *              on first use; 0: none, and the two hooks are never called.
 *   rt_init    Called once, the first time the backend's runtime state is
 *              asked for (actor__rt_backend_state, usually from `start`).
 *              0 or an error (then the state is freed and asked for again
 *              next time).  Loop thread.
 *   rt_close   Called once by actor_rt_close, after every actor of the
 *              runtime is gone; release everything, asynchronously if need
 *              be, and end in actor__rt_backend_closed(rt, ops) — within a
 *              bound of the backend's own (the runtime waits for it: its
 *              close callback runs only after every rt_close has ended).
 *              Not called for a backend whose state was never made.
 *              Version 1 tables have none of these.
 */
#ifndef ACTOR_SPAWN_BACKEND_H
#define ACTOR_SPAWN_BACKEND_H

#include <stddef.h>

#include "libactor/actor.h"

enum { ACTOR__SIG_TERM = 1, ACTOR__SIG_KILL = 2 };

struct actor__backend {
  int version; /* 1, or 2: the table is the `ops` of an actor__backend_v2 */
  const char *name;
  size_t state_size;
  int (*available)(const char **why);
  int (*start)(void *st, actor *a, const actor_opts *o);
  int (*signal)(void *st, int how);
  void (*close)(void *st);
};

/* Version 2.  An extension around the version 1 table rather than fields
 * appended to it: version 1 tables, written positionally, stay valid
 * as they are. */
struct actor__backend_v2 {
  struct actor__backend ops; /* ops.version == 2 */
  size_t rt_state_size;
  int (*rt_init)(void *rts, actor_rt *rt);
  void (*rt_close)(void *rts, actor_rt *rt);
};
static inline const struct actor__backend_v2 *
actor__backend_v2(const struct actor__backend *b) {
  return b->version >= 2 ? (const struct actor__backend_v2 *)(const void *)b
                         : NULL;
}

/* The runtime state of backend `b` in `rt` (version 2, rt_state_size > 0):
 * made and rt_init'ed on first use.  0 and *out, or an error (rt_init's,
 * -ENOMEM, ACTOR_ESTATE once the runtime is closing, -EINVAL for a backend
 * without one).  Loop thread. */
int actor__rt_backend_state(actor_rt *rt, const struct actor__backend *b,
                            void **out);
/* The state if it exists, else NULL (never makes one). */
void *actor__rt_backend_peek(actor_rt *rt, const struct actor__backend *b);
/* rt_close of `b` has finished. */
void actor__rt_backend_closed(actor_rt *rt, const struct actor__backend *b);

const struct actor__backend *actor__backend_find(const char *name);

/* actor_spawn with an explicit backend, which need not be registered by
 * name: private backends (tests, fuzzing) use it.  Same contract as
 * actor_spawn; o->backend is ignored. */
int actor__spawn_backend(actor_rt *rt, const struct actor__backend *b,
                         const actor_opts *o, actor **ap);

/* The compiled-in backends.  Adding one: its file, one line here, one
 * source line in CMakeLists.txt, its declaration below.  The name here must
 * equal ops->name. */
#define ACTOR__BACKENDS(XX)                                                    \
  XX(subproc, actor__backend_subproc)                                          \
  XX(subint, actor__backend_subint)                                            \
  XX(forkserver, actor__backend_forkserver.ops)                                \
  XX(subint_fork, actor__backend_subint_fork)

extern const struct actor__backend actor__backend_subproc,
    actor__backend_subint, actor__backend_subint_fork;
extern const struct actor__backend_v2 actor__backend_forkserver;

/* The subint_fork probe, run once per process and cached (libactor-python;
 * the core build answers ACTOR_EUNAVAIL). */
int actor__subint_fork_probe_cached(int *blocked, const char **evidence);
/* The same result only if a probe has already run (never runs one):
 * ACTOR_EUNAVAIL otherwise.  Safe on the loop thread. */
int actor__subint_fork_probe_peek(int *blocked, const char **evidence);

#endif
