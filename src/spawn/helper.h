/* Where libactor's helper programs are — private.
 *
 * The helpers (actor-pyhost, subint-fork-probe, actor-forkserver) are
 * installed in one directory of their own, ACTOR_HELPER_DIR
 * (<libexecdir>/libactor/<SOVERSION>; Debian: /usr/lib/<triplet>/libactor/0).
 * A helper is found, first match wins:
 *
 *   1. $ENV (e.g. LIBACTOR_PYHOST), if set and not empty: development and
 *      tests point it into a build tree (ignored in a set-user-ID process:
 *      secure_getenv);
 *   2. next to the library that is running this code: the directory of the
 *      loaded libactor(-python).so (dladdr, symlinks resolved) joined with
 *      ACTOR_HELPER_RELDIR, the helper directory relative to the library
 *      directory as configured (so a tree installed with --prefix DIR, or
 *      moved, finds its own helpers), if the file there is executable;
 *   3. ACTOR_HELPER_DIR/NAME, the configured absolute path (also what a
 *      program that linked the static library gets: its "library" is the
 *      executable itself).
 *
 * Any thread; nothing is cached but the library's directory (once per
 * process), so the environment is read at every lookup. */
#ifndef ACTOR_SPAWN_HELPER_H
#define ACTOR_SPAWN_HELPER_H

#include <spawn.h>
#include <stddef.h>

#include "libactor/actor.h"

/* The path of helper `name`, per the rules above.  Returns the value of
 * $env, or `buf` (filled, NUL-terminated), or -- if buf is too small -- the
 * bare name, which the caller then looks up in PATH. */
const char *actor__helper_path(const char *name, const char *env, char *buf,
                               size_t len);

/* What the process-spawning backends share (subproc, forkserver). */

/* Set rt's message for a failed step `what` of backend `bname` and return
 * r.  Running out of descriptors is said as such: it is the host's state,
 * not the program's fault. */
int actor__spawn_fail(actor_rt *rt, const char *bname, int r,
                      const char *what);
/* The child's working directory, checked in the host so that a bad one
 * is reported as such (the child's chdir fails with the codes of a
 * program that cannot run).  0, or the error with rt's message set;
 * NULL: 0. */
int actor__spawn_check_cwd(actor_rt *rt, const char *bname, const char *cwd);
/* A child that leads a session (hence a process group) of its own, with an
 * empty signal mask and every disposition default: nothing the host
 * blocked or ignored carries over.  0 or a positive errno. */
int actor__spawnattr_clean(posix_spawnattr_t *at);

#endif
