/* actor-pyhost — runs a Python actor in a child process.
 *
 *   actor-pyhost [-p DIR]... package.module:function
 *
 * Started by a libactor parent (the subproc backend does this when spawn
 * options name an entry): it embeds CPython, binds the libactor_child
 * module to the channel the parent made (LIBACTOR_FD), says HELLO and calls
 * the entry.  The same Python API as on the subint backend. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "py/py.h"
#include "rt/internal.h"

static int usage(void) {
  fprintf(stderr, "usage: actor-pyhost [-p DIR]... package.module:function\n"
                  "(started by a libactor parent, not by hand)\n");
  return 2;
}

int main(int argc, char **argv) {
  struct actor__py_run run;
  struct actor__py_ep ep;
  const char *s, *name;
  char **paths;
  char *namecopy;
  struct stat st;
  size_t max_frame = ACTOR__DEFAULT_MAX_FRAME, npaths = 0;
  PyConfig cfg;
  PyStatus ps;
  int i, fd, status;

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

  s = getenv(ACTOR__ENV_FD);
  fd = s ? atoi(s) : -1;
  if (fd < 0 || fstat(fd, &st) || !S_ISSOCK(st.st_mode)) {
    fprintf(stderr, "actor-pyhost: %s\n", actor_strerror(ACTOR_ENOTCHILD));
    return usage();
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  s = getenv(ACTOR__ENV_PPID);
  if (s != NULL && strtol(s, NULL, 10) != (long)getppid())
    return 3; /* the parent is already gone */
  s = getenv(ACTOR__ENV_MAX_FRAME);
  if (s != NULL && strtoul(s, NULL, 10) >= ACTOR__MIN_MAX_FRAME)
    max_frame = strtoul(s, NULL, 10);
  name = getenv(ACTOR__ENV_NAME);
  namecopy = strdup(name ? name : "pyactor");
  unsetenv(ACTOR__ENV_FD);
  unsetenv(ACTOR__ENV_NAME);
  unsetenv(ACTOR__ENV_MAX_FRAME);
  unsetenv(ACTOR__ENV_PPID);
  unsetenv(ACTOR__ENV_PROTO);
  unsetenv(ACTOR__ENV_BACKEND);

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
  actor__py_ep_socket(&ep, fd);
  memset(&run, 0, sizeof(run));
  run.ep = &ep;
  run.entry = argv[argc - 1];
  run.paths = paths;
  run.name = namecopy;
  run.backend = "subproc";
  run.max_frame = max_frame;
  status = actor__py_run_actor(&run);
  if (status != 0)
    fprintf(stderr, "actor-pyhost: %s: %s\n", namecopy, run.how);
  ep.close(&ep);
  if (Py_FinalizeEx() < 0 && status == 0)
    status = 120;
  free(paths);
  free(namecopy);
  return status;
}
