/* The channel a parent left for its child, read from the environment.
 * Shared by every child-side runtime: the C one (child.c) and the Python
 * actor host (tools/actor_pyhost.c). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt/internal.h"

int actor__child_env_take(struct actor__child_env *e) {
  const char *s;
  struct stat st;
  char *end;
  long fd, v;

  memset(e, 0, sizeof(*e));
  s = getenv(ACTOR__ENV_FD);
  if (s == NULL)
    return ACTOR_ENOTCHILD;
  fd = strtol(s, &end, 10);
  if (*end != '\0' || fd < 0 || fd > 1 << 20 || fstat((int)fd, &st) ||
      !S_ISSOCK(st.st_mode))
    return ACTOR_ENOTCHILD;
  /* A parent of another protocol version is not refused here: HELLO
   * carries our version, and the parent, which owns the decision, ends us
   * with ACTOR_EVERSION on its side where the user can see it. */

  /* Die with the parent even if our loop is busy; then check it is not
   * already gone (it could have died before prctl). */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  s = getenv(ACTOR__ENV_PPID);
  if (s != NULL && strtol(s, NULL, 10) != (long)getppid())
    return ACTOR_ECLOSED;
  /* Grandchildren must not inherit our end of the channel. */
  fcntl((int)fd, F_SETFD, FD_CLOEXEC);

  e->fd = (int)fd;
  e->max_frame = ACTOR__DEFAULT_MAX_FRAME;
  s = getenv(ACTOR__ENV_MAX_FRAME);
  if (s != NULL) {
    v = strtol(s, &end, 10);
    if (*end == '\0' && v >= (long)ACTOR__MIN_MAX_FRAME)
      e->max_frame = (size_t)v;
  }
  s = getenv(ACTOR__ENV_NAME);
  e->name = strdup(s ? s : "actor");
  s = getenv(ACTOR__ENV_BACKEND);
  e->backend = strdup(s ? s : "subproc");
  if (e->name == NULL || e->backend == NULL) {
    actor__child_env_free(e);
    return -ENOMEM;
  }
  /* Our children get fresh values from our own runtime; stale ones must not
   * leak into programs we exec. */
  unsetenv(ACTOR__ENV_FD);
  unsetenv(ACTOR__ENV_NAME);
  unsetenv(ACTOR__ENV_MAX_FRAME);
  unsetenv(ACTOR__ENV_PPID);
  unsetenv(ACTOR__ENV_PROTO);
  unsetenv(ACTOR__ENV_BACKEND);
  return 0;
}

void actor__child_env_free(struct actor__child_env *e) {
  free(e->name);
  free(e->backend);
  e->name = e->backend = NULL;
}

void actor__msg_hello(struct actor__msg *m, const char *backend,
                      const char *name) {
  memset(m, 0, sizeof(*m));
  m->kind = ACTOR__MSG_HELLO;
  m->version = ACTOR_PROTOCOL_VERSION;
  m->pid = getpid();
  m->backend.p = backend;
  m->backend.n = strlen(backend);
  m->name.p = name;
  m->name.n = strlen(name);
}
