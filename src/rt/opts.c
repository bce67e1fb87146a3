/* Spawn options: a builder that copies everything it is given. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rt/internal.h"

int actor__env_reserved(const char *name_value) {
  static const char *const reserved[] = {
      ACTOR__ENV_FD,   ACTOR__ENV_NAME,  ACTOR__ENV_MAX_FRAME,
      ACTOR__ENV_PPID, ACTOR__ENV_PROTO, ACTOR__ENV_BACKEND,
  };
  size_t i, n;
  for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
    n = strlen(reserved[i]);
    if (strncmp(name_value, reserved[i], n) == 0 && name_value[n] == '=')
      return 1;
  }
  return 0;
}

int actor_opts_new(actor_opts **op) {
  actor_opts *o = calloc(1, sizeof(*o));
  *op = o;
  if (o == NULL)
    return -ENOMEM;
  o->stdio[1] = o->stdio[2] = ACTOR_STDIO_INHERIT;
  return 0;
}

void actor__vec_free(char **v) {
  size_t i;
  if (v == NULL)
    return;
  for (i = 0; v[i] != NULL; i++)
    free(v[i]);
  free(v);
}

void actor_opts_free(actor_opts *o) {
  if (o == NULL)
    return;
  free(o->backend);
  free(o->program);
  free(o->cwd);
  free(o->name);
  free(o->entry);
  free(o->c_entry);
  actor__vec_free(o->paths);
  actor__vec_free(o->args);
  actor__vec_free(o->env);
  free(o);
}

static int opts__set(char **dst, const char *s) {
  char *c;
  if (s == NULL)
    return -EINVAL;
  c = strdup(s);
  if (c == NULL)
    return -ENOMEM;
  free(*dst);
  *dst = c;
  return 0;
}

int actor__vec_push(char ***vec, size_t *n, const char *s) {
  char **v;
  char *c;
  if (s == NULL)
    return -EINVAL;
  v = realloc(*vec, (*n + 2) * sizeof(*v));
  if (v == NULL)
    return -ENOMEM;
  *vec = v;
  c = strdup(s);
  if (c == NULL) {
    v[*n] = NULL;
    return -ENOMEM;
  }
  v[(*n)++] = c;
  v[*n] = NULL;
  return 0;
}

int actor_opts_set_backend(actor_opts *o, const char *backend) {
  if (backend == NULL || *backend == '\0')
    return -EINVAL;
  return opts__set(&o->backend, backend);
}

int actor_opts_set_program(actor_opts *o, const char *path) {
  if (path == NULL || *path == '\0')
    return -EINVAL;
  return opts__set(&o->program, path);
}

int actor_opts_add_arg(actor_opts *o, const char *arg) {
  return actor__vec_push(&o->args, &o->nargs, arg);
}

int actor_opts_add_env(actor_opts *o, const char *name_value) {
  if (name_value == NULL || strchr(name_value, '=') == NULL ||
      name_value[0] == '=')
    return -EINVAL;
  /* The channel's own variables are the runtime's to set. */
  if (actor__env_reserved(name_value))
    return -EINVAL;
  return actor__vec_push(&o->env, &o->nenv, name_value);
}

int actor_opts_set_entry(actor_opts *o, const char *entry) {
  const char *colon;
  /* "package.module:function": a module path, one colon, a name. */
  if (entry == NULL || (colon = strchr(entry, ':')) == NULL ||
      colon == entry || colon[1] == '\0' || strchr(colon + 1, ':') != NULL)
    return -EINVAL;
  return opts__set(&o->entry, entry);
}

int actor_opts_add_path(actor_opts *o, const char *dir) {
  if (dir == NULL || *dir == '\0')
    return -EINVAL;
  return actor__vec_push(&o->paths, &o->npaths, dir);
}

int actor_opts_set_subint_mode(actor_opts *o, int mode) {
  if (mode != ACTOR_SUBINT_ISOLATED && mode != ACTOR_SUBINT_LEGACY)
    return -EINVAL;
  o->subint_mode = mode;
  return 0;
}

int actor_opts_set_c_entry(actor_opts *o, const char *lib_entry) {
  const char *colon;
  /* "lib.so:function": a library, one colon, a symbol. */
  if (lib_entry == NULL || (colon = strrchr(lib_entry, ':')) == NULL ||
      colon == lib_entry || colon[1] == '\0')
    return -EINVAL;
  return opts__set(&o->c_entry, lib_entry);
}

int actor_opts_set_fork_subint(actor_opts *o, int on) {
  o->fork_subint = on != 0;
  return 0;
}

int actor_opts_clear_env(actor_opts *o) {
  o->clear_env = 1;
  return 0;
}

int actor_opts_set_cwd(actor_opts *o, const char *dir) {
  return opts__set(&o->cwd, dir);
}

int actor_opts_set_name(actor_opts *o, const char *name) {
  if (name == NULL || *name == '\0')
    return -EINVAL;
  return opts__set(&o->name, name);
}

int actor_opts_set_stdio(actor_opts *o, int fd, int mode) {
  if ((fd != 1 && fd != 2) ||
      (mode != ACTOR_STDIO_INHERIT && mode != ACTOR_STDIO_DISCARD &&
       mode != ACTOR_STDIO_CAPTURE))
    return -EINVAL;
  o->stdio[fd] = mode;
  return 0;
}

int actor_opts_set_deadlines(actor_opts *o, uint64_t hello_ms,
                             uint64_t graceful_ms, uint64_t term_ms,
                             uint64_t kill_ms) {
  if (hello_ms)
    o->hello_ms = hello_ms;
  if (graceful_ms)
    o->graceful_ms = graceful_ms;
  if (term_ms)
    o->term_ms = term_ms;
  if (kill_ms)
    o->kill_ms = kill_ms;
  return 0;
}

int actor_opts_on_exit(actor_opts *o, actor_exit_cb cb, void *arg) {
  o->exit_cb = cb;
  o->exit_arg = arg;
  return 0;
}

int actor_opts_on_hello(actor_opts *o, actor_hello_cb cb, void *arg) {
  o->hello_cb = cb;
  o->hello_arg = arg;
  return 0;
}

int actor_opts_on_output(actor_opts *o, actor_output_cb cb, void *arg) {
  o->output_cb = cb;
  o->output_arg = arg;
  return 0;
}
