/* fdpeer: a private backend for the fuzz harnesses and tests — private.
 *
 * The "child" is whoever holds the other end of a socketpair: a harness
 * that writes bytes "from a child" into the real parent dispatch
 * (src/rt/actor.c's channel callbacks) without a process.  It is compiled
 * only into the fuzz and test programs (fuzz/CMakeLists.txt), never into
 * the library, and is not registered by name: spawn it with
 * actor__spawn_backend(rt, &actor__backend_fdpeer, opts, &a).
 *
 * The peer has no process, so its end is simulated: actor__fdpeer_exit()
 * says the peer "exited", and a TERM or KILL from the stop sequence makes
 * it "die" of that signal.  Either is reported to the runtime from a timer
 * callback on the loop (like a real exit, never inside the caller's stack),
 * and only the first counts. */
#ifndef ACTOR_SPAWN_FDPEER_H
#define ACTOR_SPAWN_FDPEER_H

#include "spawn/backend.h"

extern const struct actor__backend actor__backend_fdpeer;

/* The fd the next fdpeer spawn opens its channel on (a connected AF_UNIX
 * stream socket).  Taken (reset to -1) by that spawn, which owns it from
 * then on, also when the spawn fails.  Loop thread. */
extern int actor__fdpeer_next_fd;

/* The peer exited with `status`.  No-op once it has ended (or if `a` was
 * not spawned by fdpeer).  Loop thread, inside or outside callbacks. */
void actor__fdpeer_exit(actor *a, int status);

#endif
