/* The two shared libraries in one process (docs/abi.md, docs/python.md).
 *
 * libactor.so and libactor-python.so export the same public names.  Each
 * library's symbols carry a version node of its own (LIBACTOR_0.1,
 * LIBACTOR_PYTHON_0.1) and each is linked -Bsymbolic, so:
 *   - a program's references name the node of the library it linked, and
 *     bind there even when the other library was loaded first;
 *   - a library's own calls to its public functions stay inside it, even
 *     when the process has another copy of those names first in the lookup
 *     order — as this very program has: it links the static core and
 *     exports it (-rdynamic), unversioned.
 * Loading both is therefore harmless: two independent copies, each used by
 * whoever linked it.  (Handles of one must not be given to the other.)
 *
 * The libraries of the build tree are named by $LIBACTOR_TEST_LIBACTOR and
 * $LIBACTOR_TEST_LIBACTOR_PYTHON; this program links libpython, which
 * libactor-python leaves to whoever loads it.  They are not dlclose()d:
 * CPython cannot be unloaded. */
#define _GNU_SOURCE /* dlvsym */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "harness.h"

#define NODE_CORE "LIBACTOR_0.1"
#define NODE_PY "LIBACTOR_PYTHON_0.1"

typedef int (*rt_new_fn)(actor_rt **, struct uv_loop_s *);
typedef int (*rt_shutdown_fn)(actor_rt *);
typedef int (*available_fn)(const char *, const char **);
typedef const char *(*version_string_fn)(void);

static void *lib_core, *lib_py;

static void *open_lib(const char *env) {
  const char *path = getenv(env);
  void *h;
  if (path == NULL || path[0] == '\0')
    fail_msg("$%s is not set (ctest sets it)", env);
  h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (h == NULL)
    fail_msg("dlopen %s: %s", path, dlerror());
  return h;
}

/* The core first, so that it is ahead of libactor-python in the global
 * lookup order: the case where a careless binding would go wrong. */
static void load_both(void) {
  if (lib_core == NULL)
    lib_core = open_lib("LIBACTOR_TEST_LIBACTOR");
  if (lib_py == NULL)
    lib_py = open_lib("LIBACTOR_TEST_LIBACTOR_PYTHON");
}

static void *sym(void *h, const char *name, const char *node) {
  void *p = dlvsym(h, name, node);
  if (p == NULL)
    fail_msg("dlvsym(%s@%s): %s", name, node, dlerror());
  return p;
}

static void both_libraries_load_and_each_name_binds_to_its_own_node(void **state) {
  void *core_new, *py_new;
  (void)state;
  load_both();
  core_new = sym(lib_core, "actor_rt_new", NODE_CORE);
  py_new = sym(lib_py, "actor_rt_new", NODE_PY);
  assert_ptr_not_equal(core_new, py_new);
  assert_ptr_not_equal(core_new, (void *)&actor_rt_new); /* our static copy */
  assert_ptr_not_equal(py_new, (void *)&actor_rt_new);
  /* Neither library has the other's node. */
  assert_null(dlvsym(lib_core, "actor_rt_new", NODE_PY));
  assert_null(dlvsym(lib_py, "actor_rt_new", NODE_CORE));
  /* A program linked against libactor-python asks for NODE_PY and gets
   * libactor-python's, though libactor (and our unversioned copy) come
   * first in the global scope; likewise for libactor. */
  assert_ptr_equal(dlvsym(RTLD_DEFAULT, "actor_rt_new", NODE_PY), py_new);
  assert_ptr_equal(dlvsym(RTLD_DEFAULT, "actor_rt_new", NODE_CORE), core_new);
  assert_string_equal(((version_string_fn)sym(lib_core, "actor_version_string",
                                               NODE_CORE))(),
                      actor_version_string());
  assert_string_equal(((version_string_fn)sym(lib_py, "actor_version_string",
                                               NODE_PY))(),
                      actor_version_string());
}

/* Each library answers as itself: only libactor-python has the subint
 * backend; and a runtime made by each works and shuts down in it. */
static void each_library_runs_as_itself_beside_the_other(void **state) {
  available_fn core_avail, py_avail;
  rt_new_fn news[2];
  rt_shutdown_fn shutdowns[2];
  const char *why = NULL;
  actor_rt *rt;
  int i;
  (void)state;
  load_both();
  core_avail = (available_fn)sym(lib_core, "actor_backend_available", NODE_CORE);
  py_avail = (available_fn)sym(lib_py, "actor_backend_available", NODE_PY);
  TH_ERR(core_avail("subint", &why), ACTOR_EUNAVAIL);
  assert_non_null(why);
  assert_non_null(strstr(why, "libactor-python"));
  why = NULL;
  TH_OK(py_avail("subint", &why));
  TH_OK(core_avail("subproc", &why));
  TH_OK(py_avail("subproc", &why));

  news[0] = (rt_new_fn)sym(lib_core, "actor_rt_new", NODE_CORE);
  shutdowns[0] = (rt_shutdown_fn)sym(lib_core, "actor_rt_shutdown", NODE_CORE);
  news[1] = (rt_new_fn)sym(lib_py, "actor_rt_new", NODE_PY);
  shutdowns[1] = (rt_shutdown_fn)sym(lib_py, "actor_rt_shutdown", NODE_PY);
  for (i = 0; i < 2; i++) {
    rt = NULL;
    TH_OK(news[i](&rt, NULL));
    assert_non_null(rt);
    TH_OK(shutdowns[i](rt));
  }
}

/* libuv opens a process-wide pipe (its signal lock) at the first
 * uv_loop_init of the process, and keeps it: open it before the leak
 * check's first snapshot, as the other programs' first test does. */
static int group_setup(void **state) {
  uv_loop_t loop;
  (void)state;
  if (uv_loop_init(&loop) != 0)
    return -1;
  return uv_loop_close(&loop) == 0 ? 0 : -1;
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(both_libraries_load_and_each_name_binds_to_its_own_node),
      TH_TEST(each_library_runs_as_itself_beside_the_other),
  };
  return cmocka_run_group_tests_name("abi", tests, group_setup, NULL);
}

int main(int argc, char **argv) {
  static const struct th_helper helpers[] = {{NULL, NULL}};
  return th_main(argc, argv, helpers, run_all);
}
