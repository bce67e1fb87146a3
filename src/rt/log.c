/* The library's own log messages: to the host's hook, or to stderr when
 * LIBACTOR_LOG asks for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rt/internal.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void actor__log_init(struct actor__log *lg) {
  const char *env = getenv("LIBACTOR_LOG");
  int i;
  lg->cb = NULL;
  lg->arg = NULL;
  lg->level = -1; /* nothing */
  if (env == NULL)
    return;
  for (i = 0; i < 4; i++)
    if (strcasecmp(env, level_names[i]) == 0)
      lg->level = i;
}

void actor__logf(const struct actor__log *lg, int level, const char *fmt,
                 ...) {
  char msg[1024];
  va_list ap;

  if (level > lg->level)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (lg->cb != NULL)
    lg->cb(level, msg, lg->arg);
  else
    fprintf(stderr, "libactor[%d] %s: %s\n", (int)getpid(),
            level_names[level < 0 ? 0 : level > 3 ? 3 : level], msg);
}
