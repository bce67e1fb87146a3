/* The Python layer — private.  Only files under src/py include Python.h.
 *
 * This layer is compiled into libactor-python (the core + this layer) and
 * never links libpython: the Py* symbols come from the process that loads
 * it (docs/python.md).  Everything here must therefore work whether the
 * process's CPython was started by us (a C host: initialised on demand) or
 * by someone else (a Python host through the cffi shim). */
#ifndef ACTOR_PY_PY_H
#define ACTOR_PY_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <msgpack.h>

#include "libactor/actor.h"

/* ---- msgpack <-> Python (convert.c) ---------------------------------------
 * None<->nil, bool<->bool, int<->int (the int64/uint64 range; beyond it an
 * OverflowError), float<->float64, str<->str, bytes/bytearray->bin (bin ->
 * bytes), list/tuple->array (array -> list), dict->map (map -> dict).
 * Anything else is a TypeError naming the type.  Both directions guard
 * their recursion. */

/* Append the encoding of `obj`.  0, or -1 with a Python exception set. */
int actor__py_pack(msgpack_packer *pk, PyObject *obj);
/* Decode exactly one value from [data, data+len): a new reference, or NULL
 * with an exception set (ValueError for malformed or trailing bytes). */
PyObject *actor__py_unpack(const char *data, size_t len);

/* ---- the child's end of a channel, blocking (endpoint.c) ------------------
 * Python actors are written as blocking code on their own thread (or
 * process), so their end of the channel is a blocking one: the same frames
 * as everywhere, through memory (subint) or a socket (actor-pyhost).
 * Callers release their GIL around read/write. */
struct abuf;
struct actor__inproc;
struct actor__py_ep {
  /* Append one or more whole frames.  0 or an error (peer gone). */
  int (*write)(struct actor__py_ep *ep, const char *p, size_t n);
  /* Wait up to timeout_ms (-1 forever) for bytes, appended to `in`.
   * 0, -ETIMEDOUT (also when woken with nothing to read), ACTOR_ECLOSED. */
  int (*read)(struct actor__py_ep *ep, struct abuf *in, int timeout_ms);
  /* Is there input waiting?  Cheap, no blocking. */
  int (*pending)(struct actor__py_ep *ep);
  /* Tell the parent we are done (EOF). */
  void (*close)(struct actor__py_ep *ep);
  struct actor__inproc *ip; /* inproc */
  int fd;                   /* socket */
};
void actor__py_ep_inproc(struct actor__py_ep *ep, struct actor__inproc *ip);
void actor__py_ep_socket(struct actor__py_ep *ep, int fd);

/* ---- running a Python actor (module.c) --------------------------------------
 * With a thread state of the actor's interpreter attached: install the
 * modules _libactor (bound to `ep`) and libactor_child, prepend `paths` to
 * sys.path, say HELLO, import and call `entry`.  Returns the exit status
 * (0: the entry returned; SystemExit's code; 1: it raised) and describes
 * the end in `how` (e.g. "entry raised ValueError: bad").  *interrupted is
 * set when the entry ended in the KeyboardInterrupt the runtime injects. */
struct actor__py_run {
  struct actor__py_ep *ep;
  const char *entry;
  char *const *paths;
  const char *name;
  const char *backend;
  size_t max_frame;
  char how[256];
  int interrupted;
};
int actor__py_run_actor(struct actor__py_run *run);

/* ---- CPython in this process (runtime.c) ------------------------------------ */

/* 0 when this process's CPython can host sub-interpreters (3.14+),
 * initialising it on demand for a C host (install_signal_handlers = 0, the
 * GIL released afterwards).  Otherwise an error with a static reason.
 * Loop thread. */
int actor__py_ensure(const char **why);
/* Version gate only, without initialising: any thread. */
int actor__py_version_ok(const char **why);

#endif
