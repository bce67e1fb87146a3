/* actor-pyhost — runs a Python actor in a child process.
 *
 *   actor-pyhost [-p DIR]... package.module:function
 *
 * Started by a libactor parent (the subproc backend does this when spawn
 * options name an entry): it embeds CPython, binds the libactor_child
 * module to the channel the parent made (LIBACTOR_FD), says HELLO and calls
 * the entry.  The same Python API as on the subint backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "py/py.h"
#include "rt/internal.h"

static int usage(void) {
  fprintf(stderr, "usage: actor-pyhost [-p DIR]... package.module:function\n"
                  "(started by a libactor parent, not by hand)\n");
  return 2;
}

int main(int argc, char **argv) {
  struct actor__child_env env;
  struct actor__py_run run;
  struct actor__py_ep *ep;
  struct actor__py_inbox *ib = NULL;
  char **paths;
  size_t npaths = 0;
  PyConfig cfg;
  PyStatus ps;
  int i, status;

  paths = calloc((size_t)argc + 1, sizeof(*paths));
  if (paths == NULL)
    return 2;
  for (i = 1; i < argc && argv[i][0] == '-'; i++) {
    if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
      paths[npaths++] = argv[++i];
    else
      return usage();
  }
  if (i != argc - 1 || strchr(argv[i], ':') == NULL)
    return usage();

  status = actor__child_env_take(&env);
  if (status) {
    fprintf(stderr, "actor-pyhost: %s\n", actor_strerror(status));
    return status == ACTOR_ECLOSED ? 3 : usage();
  }

  PyConfig_InitPythonConfig(&cfg);
  cfg.install_signal_handlers = 0; /* SIGTERM keeps its default: it ends us */
  cfg.parse_argv = 0;
  ps = Py_InitializeFromConfig(&cfg);
  PyConfig_Clear(&cfg);
  if (PyStatus_Exception(ps)) {
    fprintf(stderr, "actor-pyhost: CPython failed to start: %s\n",
            ps.err_msg ? ps.err_msg : "?");
    return 2;
  }
  ep = malloc(sizeof(*ep));
  if (ep == NULL || actor__py_ep_socket(ep, env.fd) ||
      (ib = actor__py_inbox_new(ep, env.max_frame)) == NULL) {
    fprintf(stderr, "actor-pyhost: cannot set up the channel\n");
    return 2;
  }
  memset(&run, 0, sizeof(run));
  run.ep = ep;
  run.ib = ib;
  run.entry = argv[argc - 1];
  run.paths = paths;
  run.name = env.name;
  run.backend = env.backend;
  run.max_frame = env.max_frame;
  status = actor__py_run_actor(&run);
  if (status != 0)
    fprintf(stderr, "actor-pyhost: %s: %s\n", env.name, run.how);
  ep->close(ep);
  if (Py_FinalizeEx() < 0 && status == 0)
    status = 120;
  /* After CPython: threads of the actor may send until it has ended. */
  (void)actor__py_inbox_free(ib);
  free(paths);
  actor__child_env_free(&env);
  return status;
}
