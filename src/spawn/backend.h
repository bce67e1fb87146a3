/* Spawn backends — private.
 *
 * A backend decides WHERE a child runs and HOW its channel is made; the
 * protocol and the runtime are the same for every backend.  Each backend is
 * one file exporting one ops table, listed in registry.c.  Fields are only
 * ever appended (check `version`).
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
 */
#ifndef ACTOR_SPAWN_BACKEND_H
#define ACTOR_SPAWN_BACKEND_H

#include <stddef.h>

#include "libactor/actor.h"

enum { ACTOR__SIG_TERM = 1, ACTOR__SIG_KILL = 2 };

struct actor__backend {
  int version; /* 1 */
  const char *name;
  size_t state_size;
  int (*available)(const char **why);
  int (*start)(void *st, actor *a, const actor_opts *o);
  int (*signal)(void *st, int how);
  void (*close)(void *st);
};

const struct actor__backend *actor__backend_find(const char *name);

/* actor_spawn with an explicit backend, which need not be registered by
 * name: private backends (tests, fuzzing) use it.  Same contract as
 * actor_spawn; o->backend is ignored. */
int actor__spawn_backend(actor_rt *rt, const struct actor__backend *b,
                         const actor_opts *o, actor **ap);

/* The compiled-in backends.  Adding one: its file, one line here, one
 * source line in CMakeLists.txt.  The name here must equal ops->name. */
#define ACTOR__BACKENDS(XX) XX(subproc) XX(subint) XX(subint_fork)

#define ACTOR__BACKEND_DECL(n) extern const struct actor__backend actor__backend_##n;
ACTOR__BACKENDS(ACTOR__BACKEND_DECL)
#undef ACTOR__BACKEND_DECL

/* The subint_fork probe, run once per process and cached (libactor-python;
 * the core build answers ACTOR_EUNAVAIL). */
int actor__subint_fork_probe_cached(int *blocked, const char **evidence);
/* The same result only if a probe has already run (never runs one):
 * ACTOR_EUNAVAIL otherwise.  Safe on the loop thread. */
int actor__subint_fork_probe_peek(int *blocked, const char **evidence);

#endif
