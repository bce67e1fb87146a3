/* Finding the helper programs relocatably (see helper.h for the rules).
 *
 * Why dladdr and not a path compiled in only: distributions and users
 * install the same binary under different prefixes (cmake --install
 * --prefix, a relocated tree, a package unpacked elsewhere), and a helper
 * path baked in at build time would then name a helper of another install,
 * or none.  The library's own file is the one thing that moves with the
 * install, so the helpers are looked up relative to it first. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
