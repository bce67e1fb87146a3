/* Error names and messages, from the one X-macro in libactor/actor.h. */
#include "libactor/actor.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *actor_strerror(int err) {
  switch (err) {
#define XX(name, val, msg)                                                     \
  case ACTOR_##name:                                                           \
    return msg;
    ACTOR_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "success";
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    /* strerror() of glibc returns static strings for known codes; it is
     * not guaranteed thread-safe for unknown ones, which we never pass. */
    return strerror(-err);
  }
  return "unknown error";
}

const char *actor_err_name(int err) {
  switch (err) {
#define XX(name, val, msg)                                                     \
  case ACTOR_##name:                                                           \
    return "ACTOR_" #name;
    ACTOR_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "OK";
  default:
    break;
  }
  if (err < 0 && err > -4096) {
    const char *n = strerrorname_np(-err);
    if (n != NULL)
      return n;
  }
  return "UNKNOWN";
}

unsigned actor_version(void) { return ACTOR_VERSION_HEX; }

const char *actor_version_string(void) {
#define ACTOR__STR2(x) #x
#define ACTOR__STR(x) ACTOR__STR2(x)
  return ACTOR__STR(ACTOR_VERSION_MAJOR) "." ACTOR__STR(
      ACTOR_VERSION_MINOR) "." ACTOR__STR(ACTOR_VERSION_PATCH);
}
