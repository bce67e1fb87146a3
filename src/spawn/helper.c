/* Finding the helper programs relocatably (see helper.h for the rules).
 *
 * Why dladdr and not a path compiled in only: distributions and users
 * install the same binary under different prefixes (cmake --install
 * --prefix, a relocated tree, a package unpacked elsewhere), and a helper
 * path baked in at build time would then name a helper of another install,
 * or none.  The library's own file is the one thing that moves with the
 * install, so the helpers are looked up relative to it first. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt/internal.h"
#include "spawn/helper.h"

#ifndef ACTOR_HELPER_DIR
#error "ACTOR_HELPER_DIR must be defined by the build (CMakeLists.txt)"
#endif
#ifndef ACTOR_HELPER_RELDIR
#error "ACTOR_HELPER_RELDIR must be defined by the build (CMakeLists.txt)"
#endif

static pthread_once_t helper_once = PTHREAD_ONCE_INIT;
static char helper_libdir[PATH_MAX]; /* "" when unknown */

/* Any object of this library: dladdr maps its address to the file that
 * holds it. */
static const char helper_anchor = 0;

static void helper_find_libdir(void) {
  char real[PATH_MAX];
  Dl_info info;
  char *slash;

  helper_libdir[0] = '\0';
  if (dladdr(&helper_anchor, &info) == 0 || info.dli_fname == NULL ||
      strchr(info.dli_fname, '/') == NULL)
    return; /* not from a file we can name */
  if (realpath(info.dli_fname, real) == NULL)
    return;
  slash = strrchr(real, '/');
  if (slash == NULL)
    return;
  *slash = '\0';
  snprintf(helper_libdir, sizeof(helper_libdir), "%s", real);
}

const char *actor__helper_path(const char *name, const char *env, char *buf,
                               size_t len) {
  /* secure_getenv: in a set-user-ID (AT_SECURE) process the invoker's
   * environment must not choose the program the library runs. */
  const char *v = env != NULL ? secure_getenv(env) : NULL;
  int n;

  if (v != NULL && v[0] != '\0')
    return v;
  pthread_once(&helper_once, helper_find_libdir);
  if (helper_libdir[0] != '\0') {
    n = snprintf(buf, len, "%s/%s/%s", helper_libdir, ACTOR_HELPER_RELDIR,
                 name);
    if (n > 0 && (size_t)n < len && access(buf, X_OK) == 0)
      return buf;
  }
  n = snprintf(buf, len, "%s/%s", ACTOR_HELPER_DIR, name);
  if (n < 0 || (size_t)n >= len)
    return name;
  return buf;
}

int actor__spawn_fail(actor_rt *rt, const char *bname, int r,
                      const char *what) {
  if (r == -EMFILE || r == -ENFILE)
    actor__seterr(rt, "%s: out of file descriptors: %s: %s (%s)", bname, what,
                  uv_strerror(r), uv_err_name(r));
  else
    actor__seterr(rt, "%s: %s: %s", bname, what, uv_strerror(r));
  return r;
}

int actor__spawn_check_cwd(actor_rt *rt, const char *bname, const char *cwd) {
  char what[PATH_MAX + 64];
  struct stat st;
  int r;
  if (cwd == NULL)
    return 0;
  r = stat(cwd, &st)          ? -errno
      : !S_ISDIR(st.st_mode)  ? -ENOTDIR
      : access(cwd, X_OK)     ? -errno
                              : 0;
  if (r == 0)
    return 0;
  snprintf(what, sizeof(what), "cannot use working directory '%s'", cwd);
  return actor__spawn_fail(rt, bname, r, what);
}

int actor__spawnattr_clean(posix_spawnattr_t *at) {
  sigset_t none, all;
  int e;
  sigemptyset(&none);
  sigfillset(&all);
  e = posix_spawnattr_setflags(at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                       POSIX_SPAWN_SETSIGDEF);
  if (e == 0)
    e = posix_spawnattr_setsigmask(at, &none);
  if (e == 0)
    e = posix_spawnattr_setsigdefault(at, &all);
  return e;
}
