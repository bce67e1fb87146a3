/* The table of backends, looked up by name at run time. */
#include <string.h>

#include "spawn/backend.h"

#define REF(n, ops) &ops,
#define NAME(n, ops) #n,
static const struct actor__backend *const backends[] = {ACTOR__BACKENDS(REF)};
static const char *const backend_names[] = {ACTOR__BACKENDS(NAME) NULL};
#undef REF
#undef NAME

const struct actor__backend *actor__backend_find(const char *name) {
  size_t i;
  if (name == NULL)
    return NULL;
  for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
    if (strcmp(backends[i]->name, name) == 0)
      return backends[i];
  return NULL;
}

const char *const *actor_backend_names(void) { return backend_names; }

int actor_backend_available(const char *name, const char **why) {
  const struct actor__backend *b = actor__backend_find(name);
  const char *dummy;
  if (why == NULL)
    why = &dummy;
  *why = NULL;
  if (b == NULL) {
    *why = "no backend of that name is compiled in";
    return ACTOR_ENOBACKEND;
  }
  return b->available(why);
}
