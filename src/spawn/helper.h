/* Where libactor's helper programs are — private.
 *
 * The helpers (actor-pyhost, subint-fork-probe, and the fork server to
 * come) are installed in one directory of their own, ACTOR_HELPER_DIR
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

#include <stddef.h>

/* The path of helper `name`, per the rules above.  Returns the value of
 * $env, or `buf` (filled, NUL-terminated), or -- if buf is too small -- the
 * bare name, which the caller then looks up in PATH. */
const char *actor__helper_path(const char *name, const char *env, char *buf,
                               size_t len);

#endif
