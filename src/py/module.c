/* The child-side Python modules and the actor runner.
 *
 *   _libactor       (this file, C): the raw protocol — recv() decoded
 *                   messages, send_return/send_error/send_item/send_end.
 *   libactor_child  (libactor_child.py, embedded): serve(), Cancelled,
 *                   duplex streams — what actor code imports.
 *
 * _libactor is made to live in isolated sub-interpreters: multi-phase init,
 * Py_MOD_PER_INTERPRETER_GIL_SUPPORTED, all state in the module object (no
 * static PyObject), only the public C API.  It is not importable from a
 * path: the runner creates it from its definition in each interpreter and
 * binds it to that actor's endpoint. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/inproc.h"
#include "proto/codec.h"
#include "py/py.h"
#include "rt/internal.h"
#include "util/buf.h"

/* The Python half, generated from libactor_child.py by CMake. */
#include "libactor_child_py.h"

/* ======================================================================== */
/* Module state                                                             */
/* ======================================================================== */

/* Encoding buffers, one pair per send in progress: a send encodes with its
 * GIL, then writes with the GIL released, while other Python threads of
 * the actor may be sending too.  A few are kept for reuse. */
struct sendbuf {
  struct sendbuf *next;
  struct abuf payload, out;
};
#define SENDBUF_KEEP_N 4
#define SENDBUF_KEEP_BYTES (64 * 1024)

typedef struct {
  struct actor__py_ep *ep;     /* NULL until the runner binds the module */
  struct actor__py_inbox *ib;
  size_t max_frame;
  PyObject *cancelled; /* libactor_child.Cancelled */
  PyObject *too_big;   /* libactor_child.FrameTooBig */
  PyObject *too_deep;  /* libactor_child.TooDeep */
  pthread_mutex_t bmu;
  int bmu_ok;
  struct sendbuf *spare;
  int nspare;
  /* serve_calls: the last function name, decoded (a call to the same
   * function as the one before needs no new str, and its hash is known) */
  PyObject *fname;
  char fname_bytes[64];
  size_t fname_len;
} modstate;

static modstate *mod_state(PyObject *m) { return PyModule_GetState(m); }

static int mod_exec(PyObject *m) {
  modstate *st = mod_state(m);
  memset(st, 0, sizeof(*st));
  st->max_frame = ACTOR__DEFAULT_MAX_FRAME;
  pthread_mutex_init(&st->bmu, NULL);
  st->bmu_ok = 1;
  /* Heap types, one set per interpreter (an isolated one must not share
   * objects).  Cancelled derives from BaseException so that "except
   * Exception" does not swallow it; FrameTooBig is a ValueError. */
  st->cancelled = PyErr_NewExceptionWithDoc(
      "libactor_child.Cancelled",
      "The call was cancelled (by the parent, or because the actor stops).",
      PyExc_BaseException, NULL);
  st->too_big = PyErr_NewExceptionWithDoc(
      "libactor_child.FrameTooBig",
      "A value does not fit in the maximum frame (the parent gets "
      "ACTOR_E2BIG).",
      PyExc_ValueError, NULL);
  st->too_deep = PyErr_NewExceptionWithDoc(
      "libactor_child.TooDeep",
      "A value nests deeper than 512 arrays/maps (the parent gets "
      "ACTOR_EDEPTH).",
      PyExc_ValueError, NULL);
  if (st->cancelled == NULL || st->too_big == NULL || st->too_deep == NULL ||
      PyModule_AddObjectRef(m, "Cancelled", st->cancelled) ||
      PyModule_AddObjectRef(m, "FrameTooBig", st->too_big) ||
      PyModule_AddObjectRef(m, "TooDeep", st->too_deep))
    return -1;
  return 0;
}

static int mod_traverse(PyObject *m, visitproc visit, void *arg) {
  modstate *st = mod_state(m);
  if (st == NULL)
    return 0;
  Py_VISIT(st->cancelled);
  Py_VISIT(st->too_big);
  Py_VISIT(st->too_deep);
  Py_VISIT(st->fname);
  return 0;
}

static int mod_clear(PyObject *m) {
  modstate *st = mod_state(m);
  if (st == NULL)
    return 0;
  Py_CLEAR(st->cancelled);
  Py_CLEAR(st->too_big);
  Py_CLEAR(st->too_deep);
  Py_CLEAR(st->fname);
  return 0;
}

static void mod_free(void *p) {
  modstate *st = mod_state(p);
  struct sendbuf *b;
  if (st == NULL)
    return;
  mod_clear(p);
  while ((b = st->spare) != NULL) {
    st->spare = b->next;
    actor__buf_fini(&b->payload);
    actor__buf_fini(&b->out);
    free(b);
  }
  if (st->bmu_ok)
    pthread_mutex_destroy(&st->bmu);
  st->bmu_ok = 0;
}

static int mod_bound(modstate *st) {
  if (st->ep != NULL)
    return 1;
  PyErr_SetString(PyExc_RuntimeError, "_libactor is not bound to a parent");
  return 0;
}

/* ======================================================================== */
/* Sending                                                                  */
/* ======================================================================== */

static struct sendbuf *sendbuf_take(modstate *st) {
  struct sendbuf *b;
  pthread_mutex_lock(&st->bmu);
  b = st->spare;
  if (b != NULL) {
    st->spare = b->next;
    st->nspare--;
  }
  pthread_mutex_unlock(&st->bmu);
  if (b == NULL) {
    b = malloc(sizeof(*b));
    if (b == NULL)
      return NULL;
    actor__buf_init(&b->payload);
    actor__buf_init(&b->out);
  }
  b->payload.len = b->payload.off = 0;
  b->out.len = b->out.off = 0;
  return b;
}

static void sendbuf_give(modstate *st, struct sendbuf *b) {
  b->payload.len = b->payload.off = 0;
  b->out.len = b->out.off = 0;
  actor__buf_trim(&b->payload, SENDBUF_KEEP_BYTES);
  actor__buf_trim(&b->out, SENDBUF_KEEP_BYTES);
  pthread_mutex_lock(&st->bmu);
  if (st->nspare < SENDBUF_KEEP_N) {
    b->next = st->spare;
    st->spare = b;
    st->nspare++;
    b = NULL;
  }
  pthread_mutex_unlock(&st->bmu);
  if (b != NULL) {
    actor__buf_fini(&b->payload);
    actor__buf_fini(&b->out);
    free(b);
  }
}

static int buf_write(void *data, const char *p, size_t n) {
  return actor__buf_append(data, p, n) ? -1 : 0;
}

/* Write whole frames, no GIL held (the endpoint serialises writers). */
static int mod_write_nogil(modstate *st, const struct abuf *out) {
  int r;
  actor__py_inbox_enter(st->ib);
  r = st->ep->write(st->ep, actor__buf_data(out), out->len);
  actor__py_inbox_leave(st->ib);
  return r;
}

/* A write's result as Python sees it: 0, or -1 with an exception. */
static int write_result(int r) {
  if (r == ACTOR_ECLOSED) {
    PyErr_SetString(PyExc_EOFError, "the parent is gone");
    return -1;
  }
  if (r) {
    errno = r < 0 && r > -4096 ? -r : EIO;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  return 0;
}

/* Write whole frames with the GIL released.  0, or -1 with an
 * exception. */
static int mod_write(modstate *st, const struct abuf *out) {
  int r;
  Py_BEGIN_ALLOW_THREADS;
  r = mod_write_nogil(st, out);
  Py_END_ALLOW_THREADS;
  return write_result(r);
}

/* Encode and send (or hold) one frame.  With `defer`, a frame that is
 * neither held nor refused is left in *defer for the caller to write (and
 * sendbuf_give) with the GIL released anyway: serve_calls writes an answer
 * and waits for the next call in one release of the GIL. */
static int mod_send_ex(modstate *st, int kind, uint32_t id, PyObject *value,
                       struct sendbuf **defer) {
  struct actor__msg m;
  struct sendbuf *b;
  msgpack_packer pk;
  int r, rc = -1;

  if (!mod_bound(st))
    return -1;
  b = sendbuf_take(st);
  if (b == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  memset(&m, 0, sizeof(m));
  m.kind = kind;
  m.id = id;
  if (value != NULL) {
    msgpack_packer_init(&pk, &b->payload, buf_write);
    if (actor__py_pack(&pk, value))
      goto out;
    m.payload = actor__buf_data(&b->payload);
    m.payload_len = b->payload.len;
  }
  r = actor__msg_encode(&b->out, &m, st->max_frame);
  if (r == ACTOR_E2BIG) {
    /* One situation, one code: the parent gets ACTOR_E2BIG for the call
     * (libactor_child answers with libactor.FrameTooBig), as from a C
     * actor. */
    PyErr_Format(st->too_big,
                 "%s of %zu bytes exceeds the maximum frame of %zu bytes",
                 kind == ACTOR__MSG_ITEM ? "stream item" : "return value",
                 m.payload_len, st->max_frame);
    goto out;
  }
  if (r) {
    PyErr_NoMemory();
    goto out;
  }
  if (kind == ACTOR__MSG_ITEM ||
      (kind == ACTOR__MSG_RETURN && actor__py_inbox_pending(st->ib))) {
    atomic_fetch_add(&st->ep->nitems, 1);
    /* A fast stream's items wait for the next flush (endpoint.c): no
     * send(), and no GIL release, per item.  So does the answer of a call
     * with more calls already waiting behind it (calls in flight): the
     * serving thread sends it with theirs, or the watcher within
     * ACTOR__PY_HOLD_MS; an answer with nothing behind it goes at once. */
    if (actor__py_ep_hold(st->ep, actor__buf_data(&b->out), b->out.len)) {
      rc = 0;
      goto out;
    }
  }
  if (defer != NULL) {
    *defer = b;
    return 0;
  }
  rc = mod_write(st, &b->out);
out:
  sendbuf_give(st, b);
  return rc;
}

static int mod_send(modstate *st, int kind, uint32_t id, PyObject *value) {
  return mod_send_ex(st, kind, id, value, NULL);
}

static int get_id(PyObject *o, uint32_t *id) {
  unsigned long v = PyLong_AsUnsignedLong(o);
  if (v == (unsigned long)-1 && PyErr_Occurred())
    return -1;
  if (v == 0 || v > UINT32_MAX) {
    PyErr_SetString(PyExc_ValueError, "call ids are 1..2**32-1");
    return -1;
  }
  *id = (uint32_t)v;
  return 0;
}

static PyObject *mod_send_return(PyObject *m, PyObject *const *args,
                                 Py_ssize_t n) {
  uint32_t id;
  if (n != 2) {
    PyErr_SetString(PyExc_TypeError, "send_return(id, value)");
    return NULL;
  }
  if (get_id(args[0], &id) || mod_send(mod_state(m), ACTOR__MSG_RETURN, id,
                                       args[1]))
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *mod_send_item(PyObject *m, PyObject *const *args,
                               Py_ssize_t n) {
  uint32_t id;
  if (n != 2) {
    PyErr_SetString(PyExc_TypeError, "send_item(id, value)");
    return NULL;
  }
  if (get_id(args[0], &id) ||
      mod_send(mod_state(m), ACTOR__MSG_ITEM, id, args[1]))
    return NULL;
  Py_RETURN_NONE;
}

static PyObject *mod_send_end(PyObject *m, PyObject *idobj) {
  uint32_t id;
  if (get_id(idobj, &id) || mod_send(mod_state(m), ACTOR__MSG_END, id, NULL))
    return NULL;
  Py_RETURN_NONE;
}

/* The length of the longest prefix of UTF-8 [p, p+n) that is at most
 * `max` bytes and does not end inside a character. */
static size_t utf8_cut(const char *p, size_t n, size_t max) {
  if (n <= max)
    return n;
  n = max;
  while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
    n--; /* p[n] continues a character: cut before its start */
  return n;
}

static PyObject *mod_send_error(PyObject *m, PyObject *const *args,
                                Py_ssize_t n) {
  modstate *st = mod_state(m);
  struct actor__msg msg;
  struct sendbuf *b;
  const char *s[3];
  Py_ssize_t len[3];
  uint32_t id;
  int i, r;

  if (n != 4) {
    PyErr_SetString(PyExc_TypeError,
                    "send_error(id, type, message, traceback)");
    return NULL;
  }
  if (get_id(args[0], &id) || !mod_bound(st))
    return NULL;
  for (i = 0; i < 3; i++) {
    s[i] = PyUnicode_AsUTF8AndSize(args[i + 1], &len[i]);
    if (s[i] == NULL)
      return NULL;
  }
  memset(&msg, 0, sizeof(msg));
  msg.kind = ACTOR__MSG_ERROR;
  msg.id = id;
  msg.type.p = s[0];
  msg.type.n = (size_t)len[0];
  msg.message.p = s[1];
  msg.message.n = (size_t)len[1];
  msg.traceback.p = s[2];
  msg.traceback.n = (size_t)len[2];
  b = sendbuf_take(st);
  if (b == NULL)
    return PyErr_NoMemory();
  r = actor__msg_encode(&b->out, &msg, st->max_frame);
  if (r == ACTOR_E2BIG) {
    /* An error must get through: cut the traceback, then the message —
     * at a character boundary, so that what arrives is still UTF-8. */
    msg.traceback.n = 0;
    msg.type.n = utf8_cut(msg.type.p, msg.type.n, 256);
    msg.message.n = utf8_cut(msg.message.p, msg.message.n, st->max_frame / 2);
    r = actor__msg_encode(&b->out, &msg, st->max_frame);
  }
  if (r) {
    sendbuf_give(st, b);
    return PyErr_NoMemory();
  }
  r = mod_write(st, &b->out);
  sendbuf_give(st, b);
  if (r)
    return NULL;
  Py_RETURN_NONE;
}

/* ======================================================================== */
/* Receiving                                                                */
/* ======================================================================== */

/* The value of a CALL or ITEM, or the exception that stands for it: a
 * payload that did not convert (too deep, an ext type...) or an oversized
 * frame is that call's error, never the actor's. */
static PyObject *msg_value(modstate *st, const struct actor__py_msg *msg) {
  PyObject *v;
  if (msg->flags & ACTOR__PY_MSG_OVERSIZE)
    return PyObject_CallFunction(
        st->too_big, "s",
        msg->kind == ACTOR__MSG_CALL
            ? "the call exceeds the maximum frame size"
            : "a stream item exceeds the maximum frame size");
  if (msg->flags & ACTOR__PY_MSG_DEEP)
    return PyObject_CallFunction(
        st->too_deep, "s",
        msg->kind == ACTOR__MSG_CALL
            ? "the call's arguments nest deeper than 512 levels"
            : "a stream item nests deeper than 512 levels");
  if (msg->payload == NULL)
    Py_RETURN_NONE;
  v = actor__py_unpack(msg->payload, msg->payload_len);
  return v != NULL ? v : PyErr_GetRaisedException();
}

/* A message as a tuple (kind, id, ...). */
static PyObject *msg_to_py(modstate *st, const struct actor__py_msg *msg) {
  PyObject *v, *fn;

  if (msg->flags & ACTOR__PY_MSG_BAD) {
    PyErr_Format(PyExc_ValueError,
                 "protocol error: the parent sent %s (kind %d)",
                 msg->err == ACTOR_EBADKIND ? "a child's message"
                                            : actor_strerror(msg->err),
                 msg->kind);
    return NULL;
  }
  switch (msg->kind) {
  case ACTOR__MSG_CALL:
    v = msg_value(st, msg);
    if (v == NULL)
      return NULL;
    /* A name that is not UTF-8 matches no function: NoSuchFunction. */
    fn = PyUnicode_DecodeUTF8(msg->fn ? msg->fn : "",
                              (Py_ssize_t)msg->fn_len, "replace");
    if (fn == NULL) {
      Py_DECREF(v);
      return NULL;
    }
    return Py_BuildValue("(iINN)", msg->kind, msg->id, fn, v);
  case ACTOR__MSG_ITEM:
    v = msg_value(st, msg);
    if (v == NULL)
      return NULL;
    return Py_BuildValue("(iIN)", msg->kind, msg->id, v);
  default: /* END, STOP */
    return Py_BuildValue("(iI)", msg->kind, msg->id);
  }
}

/* recv(timeout=None, call=0) -> message tuple, or None when the wait ended
 * without one (timeout, or woken so that pending Python work — an injected
 * exception — can run).  call=0: the next CALL or STOP, in order; call=N:
 * the next stream ITEM/END of pending call N.  EOFError when the parent is
 * gone and nothing is left. */
static PyObject *mod_recv(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  modstate *st = mod_state(m);
  struct actor__py_msg *msg = NULL;
  uint32_t cid = 0;
  int tms = -1, r;
  PyObject *o;

  if (n > 2) {
    PyErr_SetString(PyExc_TypeError, "recv(timeout=None, call=0)");
    return NULL;
  }
  if (n >= 1 && args[0] != Py_None) {
    double t = PyFloat_AsDouble(args[0]);
    if (t == -1.0 && PyErr_Occurred())
      return NULL;
    if (t != t) {
      PyErr_SetString(PyExc_ValueError, "recv: the timeout is NaN");
      return NULL;
    }
    tms = t <= 0 ? 0 : t > 86400 ? 86400000 : (int)(t * 1000);
  }
  if (n == 2) {
    unsigned long v = PyLong_AsUnsignedLong(args[1]);
    if (v == (unsigned long)-1 && PyErr_Occurred())
      return NULL;
    if (v > UINT32_MAX) {
      PyErr_SetString(PyExc_ValueError, "call ids are 1..2**32-1");
      return NULL;
    }
    cid = (uint32_t)v;
  }
  if (!mod_bound(st))
    return NULL;
  Py_BEGIN_ALLOW_THREADS;
  r = actor__py_inbox_next(st->ib, cid, tms, &msg);
  Py_END_ALLOW_THREADS;
  switch (r) {
  case 0:
    o = msg_to_py(st, msg);
    actor__py_msg_free(msg);
    return o;
  case ACTOR__PY_INJECT:
    /* This thread read a CANCEL/STOP for the running call: it is attached
     * to the actor's interpreter now, so it can deliver it. */
    actor__py_inbox_inject(st->ib);
    Py_RETURN_NONE;
  case -ETIMEDOUT:
    /* Woken without a message — a signal's wake-up among the reasons:
     * run the handlers here, as a blocking call that a signal interrupts
     * does (SIGINT -> KeyboardInterrupt in a forked actor, whose eval
     * breaker CPython may not set: docs/backends.md, forkserver). */
    if (PyErr_CheckSignals() < 0)
      return NULL;
    Py_RETURN_NONE;
  case ACTOR_ECLOSED:
    PyErr_SetString(PyExc_EOFError, "the parent is gone");
    return NULL;
  case -ENOENT:
    PyErr_Format(PyExc_ValueError, "call %u is not pending", (unsigned)cid);
    return NULL;
  default:
    errno = r < 0 && r > -4096 ? -r : EIO;
    return PyErr_SetFromErrno(PyExc_OSError);
  }
}

/* pending() -> True when a CALL or STOP is waiting (no blocking). */
static PyObject *mod_pending(PyObject *m, PyObject *unused) {
  modstate *st = mod_state(m);
  (void)unused;
  if (st->ib != NULL && actor__py_inbox_pending(st->ib))
    Py_RETURN_TRUE;
  Py_RETURN_FALSE;
}

/* ======================================================================== */
/* Running a call                                                           */
/* ======================================================================== */

/* call(id, f, *args) -> f(*args) as call `id`.  While it runs, a CANCEL
 * of the call or a STOP raises Cancelled in this thread at the next
 * bytecode boundary (inbox.c).  A call cancelled before it starts, or when
 * the actor is stopping, raises Cancelled without running.  Either way the
 * call's input queue is gone afterwards. */
static PyObject *mod_call(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  modstate *st = mod_state(m);
  PyObject *res;
  uint32_t id;
  int r, stopping;

  if (n < 2) {
    PyErr_SetString(PyExc_TypeError, "call(id, f, *args)");
    return NULL;
  }
  if (get_id(args[0], &id) || !mod_bound(st))
    return NULL;
  r = actor__py_inbox_begin(st->ib, id, &stopping);
  if (r == ACTOR_ECANCELED) {
    PyErr_SetString(st->cancelled,
                    stopping ? "the actor is stopping" : "call cancelled");
    return NULL;
  }
  if (r) {
    PyErr_SetString(PyExc_RuntimeError,
                    "_libactor.call: another call is running");
    return NULL;
  }
  res = PyObject_Vectorcall(args[1], args + 2, (size_t)(n - 2), NULL);
  /* No bytecode between the return and this: see inbox.c. */
  actor__py_inbox_end(st->ib);
  return res;
}

/* ---- serving, in C --------------------------------------------------------
 *
 * serve()'s loop, for the common case, without a Python frame per call
 * (the loop, the message tuple, _run and _invoke were ~5,000 of a
 * round trip's 12,800 instructions): read the next CALL, look its function
 * up, run it as the call (begin/end, as call() does), drive a generator
 * through libactor_child._drive, send the RETURN.  Anything unusual is
 * libactor_child's: a duplex function, an unknown one or arguments that
 * did not convert go to `run` (_run); an exception to `failed` (its
 * ERROR), except an interrupt, an exit or EOFError, which end serve(). */

/* The call's function and arguments as a call; a new reference or NULL. */
static PyObject *call_with(PyObject *fn, PyObject *args) {
  if (args == Py_None)
    return PyObject_CallNoArgs(fn);
  if (PyList_CheckExact(args))
    return PyObject_Vectorcall(fn, PySequence_Fast_ITEMS(args),
                               (size_t)PyList_GET_SIZE(args), NULL);
  if (PyDict_CheckExact(args)) {
    PyObject *none = PyTuple_New(0), *r;
    if (none == NULL)
      return NULL;
    r = PyObject_Call(fn, none, args);
    Py_DECREF(none);
    return r;
  }
  return PyObject_CallOneArg(fn, args);
}

/* Run CALL `msg`.  0, or -1 with an exception that ends serve().  Its
 * RETURN may be left in *answer, for the caller to write. */
static int serve_one(modstate *st, const struct actor__py_msg *msg,
                     PyObject *functions, PyObject *run, PyObject *failed,
                     PyObject *drive, struct sendbuf **answer) {
  PyObject *fname = NULL, *args = NULL, *fn, *d = NULL, *res = NULL, *exc;
  int r, stopping, rc = -1, dup;

  args = msg_value(st, msg);
  if (args == NULL)
    return -1;
  if (st->fname != NULL && msg->fn != NULL && msg->fn_len == st->fname_len &&
      memcmp(msg->fn, st->fname_bytes, msg->fn_len) == 0) {
    fname = Py_NewRef(st->fname); /* the same function as last time */
  } else {
    fname = PyUnicode_DecodeUTF8(msg->fn ? msg->fn : "",
                                 (Py_ssize_t)msg->fn_len, "replace");
    if (fname == NULL)
      goto out;
    if (msg->fn != NULL && msg->fn_len <= sizeof(st->fname_bytes)) {
      Py_XSETREF(st->fname, Py_NewRef(fname));
      memcpy(st->fname_bytes, msg->fn, msg->fn_len);
      st->fname_len = msg->fn_len;
    }
  }
  fn = PyDict_GetItemWithError(functions, fname); /* borrowed */
  if (fn == NULL && PyErr_Occurred())
    goto out;
  dup = 0;
  if (fn != NULL) {
    if (PyObject_GetOptionalAttrString(fn, "_libactor_duplex", &d) < 0)
      goto out;
    dup = d != NULL ? PyObject_IsTrue(d) : 0;
    if (dup < 0)
      goto out;
  }
  if (fn == NULL || dup || PyExceptionInstance_Check(args)) {
    /* libactor_child._run(functions, cid, fname, args) */
    PyObject *cid = PyLong_FromUnsignedLong(msg->id), *v;
    if (cid == NULL)
      goto out;
    v = PyObject_CallFunctionObjArgs(run, functions, cid, fname, args, NULL);
    Py_DECREF(cid);
    if (v == NULL)
      goto out;
    Py_DECREF(v);
    rc = 0;
    goto out;
  }
  Py_INCREF(fn); /* the dict is the actor's: it may change under the call */
  r = actor__py_inbox_begin(st->ib, msg->id, &stopping);
  if (r == ACTOR_ECANCELED) {
    PyErr_SetString(st->cancelled,
                    stopping ? "the actor is stopping" : "call cancelled");
  } else if (r) {
    PyErr_SetString(PyExc_RuntimeError,
                    "_libactor.serve_calls: another call is running");
  } else {
    res = call_with(fn, args);
    if (res != NULL && PyIter_Check(res)) {
      /* A generator: its items stream, its return value answers. */
      int g = PyObject_HasAttrStringWithError(res, "throw");
      PyObject *v = NULL, *cid;
      if (g > 0 && (cid = PyLong_FromUnsignedLong(msg->id)) != NULL) {
        v = PyObject_CallFunctionObjArgs(drive, cid, res, NULL);
        Py_DECREF(cid);
      }
      if (g != 0) {
        Py_SETREF(res, v);
      }
    }
    /* No bytecode between the return and this: see inbox.c. */
    actor__py_inbox_end(st->ib);
  }
  Py_DECREF(fn);
  if (res != NULL &&
      mod_send_ex(st, ACTOR__MSG_RETURN, msg->id, res, answer) == 0) {
    rc = 0;
    goto out;
  }
  /* The call failed, or its value did not go (FrameTooBig, TooDeep, a
   * type that does not convert): that call's ERROR, as _run does. */
  exc = PyErr_GetRaisedException();
  if (exc == NULL || PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt) ||
      PyErr_GivenExceptionMatches(exc, PyExc_SystemExit) ||
      PyErr_GivenExceptionMatches(exc, PyExc_EOFError)) {
    PyErr_SetRaisedException(exc); /* the runtime's interrupt, an exit, or
                                      the parent is gone */
    goto out;
  } else {
    PyObject *cid = PyLong_FromUnsignedLong(msg->id), *v = NULL;
    if (cid != NULL)
      v = PyObject_CallFunctionObjArgs(failed, cid, exc, NULL);
    Py_XDECREF(cid);
    Py_DECREF(exc);
    if (v == NULL)
      goto out;
    Py_DECREF(v);
    rc = 0;
  }
out:
  Py_XDECREF(res);
  Py_XDECREF(d);
  Py_XDECREF(fname);
  Py_XDECREF(args);
  return rc;
}

/* serve_calls(functions, run, failed, drive) -> False after STOP, True when
 * woken without a message (the caller's loop is then a bytecode boundary,
 * where an injected exception lands).  EOFError when the parent is gone;
 * whatever serve() must not swallow propagates. */
static PyObject *mod_serve_calls(PyObject *m, PyObject *const *args,
                                 Py_ssize_t n) {
  modstate *st = mod_state(m);
  struct actor__py_msg *msg;
  struct sendbuf *answer = NULL;
  int r, wr, kind;

  if (n != 4 || !PyDict_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError,
                    "serve_calls(functions: dict, run, failed, drive)");
    return NULL;
  }
  if (!mod_bound(st))
    return NULL;
  for (;;) {
    msg = NULL;
    wr = 0;
    Py_BEGIN_ALLOW_THREADS;
    if (answer != NULL)
      wr = mod_write_nogil(st, &answer->out);
    r = wr == 0 ? actor__py_inbox_next(st->ib, 0, -1, &msg) : 0;
    Py_END_ALLOW_THREADS;
    if (answer != NULL) {
      sendbuf_give(st, answer);
      answer = NULL;
      if (write_result(wr))
        return NULL; /* EOFError: the parent is gone */
    }
    switch (r) {
    case 0:
      break;
    case ACTOR__PY_INJECT:
      actor__py_inbox_inject(st->ib);
      Py_RETURN_TRUE;
    case -ETIMEDOUT:
      if (PyErr_CheckSignals() < 0)
        return NULL;
      Py_RETURN_TRUE;
    case ACTOR_ECLOSED:
      PyErr_SetString(PyExc_EOFError, "the parent is gone");
      return NULL;
    default:
      errno = r < 0 && r > -4096 ? -r : EIO;
      return PyErr_SetFromErrno(PyExc_OSError);
    }
    kind = msg->kind;
    if (msg->flags & ACTOR__PY_MSG_BAD) {
      PyObject *o = msg_to_py(st, msg); /* raises the protocol error */
      actor__py_msg_free(msg);
      Py_XDECREF(o);
      return NULL;
    }
    if (kind == ACTOR__MSG_STOP) {
      actor__py_msg_free(msg);
      Py_RETURN_FALSE;
    }
    r = kind == ACTOR__MSG_CALL ? serve_one(st, msg, args[0], args[1],
                                            args[2], args[3], &answer)
                                : 0;
    actor__py_msg_free(msg);
    /* Between calls, as serve()'s loop would: a signal's handler runs. */
    if (r == 0 && PyErr_CheckSignals() < 0)
      r = -1;
    if (r) {
      if (answer != NULL) {
        /* The call was answered: its answer goes, whatever ends serve(). */
        PyObject *exc = PyErr_GetRaisedException();
        (void)mod_write(st, &answer->out);
        PyErr_Clear();
        sendbuf_give(st, answer);
        PyErr_SetRaisedException(exc);
      }
      return NULL;
    }
  }
}

/* forget(id): call `id` is answered without running; its queue goes
 * (call() drops it itself). */
static PyObject *mod_forget(PyObject *m, PyObject *idobj) {
  modstate *st = mod_state(m);
  uint32_t id;
  if (get_id(idobj, &id) || !mod_bound(st))
    return NULL;
  actor__py_inbox_forget(st->ib, id);
  Py_RETURN_NONE;
}

/* stopping() -> True once STOP (or the parent's end) has been seen. */
static PyObject *mod_stopping(PyObject *m, PyObject *unused) {
  modstate *st = mod_state(m);
  (void)unused;
  if (st->ib != NULL && actor__py_inbox_stopping(st->ib))
    Py_RETURN_TRUE;
  Py_RETURN_FALSE;
}

static PyMethodDef mod_methods[] = {
    {"recv", (PyCFunction)(void (*)(void))mod_recv, METH_FASTCALL,
     "recv(timeout=None, call=0) -> (kind, id, ...) or None"},
    {"pending", mod_pending, METH_NOARGS, "pending() -> bool"},
    {"call", (PyCFunction)(void (*)(void))mod_call, METH_FASTCALL,
     "call(id, f, *args) -> f(*args), cancellable"},
    {"serve_calls", (PyCFunction)(void (*)(void))mod_serve_calls,
     METH_FASTCALL,
     "serve_calls(functions, run, failed, drive) -> False after STOP"},
    {"forget", mod_forget, METH_O, "forget(id)"},
    {"stopping", mod_stopping, METH_NOARGS, "stopping() -> bool"},
    {"send_return", (PyCFunction)(void (*)(void))mod_send_return,
     METH_FASTCALL, "send_return(id, value)"},
    {"send_item", (PyCFunction)(void (*)(void))mod_send_item, METH_FASTCALL,
     "send_item(id, value)"},
    {"send_end", mod_send_end, METH_O, "send_end(id)"},
    {"send_error", (PyCFunction)(void (*)(void))mod_send_error, METH_FASTCALL,
     "send_error(id, type, message, traceback)"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot mod_slots[] = {
    {Py_mod_exec, (void *)mod_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
    {0, NULL},
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT,
    "_libactor",
    "The raw libactor protocol for a Python actor (see libactor_child).",
    sizeof(modstate),
    mod_methods,
    mod_slots,
    mod_traverse,
    mod_clear,
    mod_free,
};

/* ======================================================================== */
/* The runner                                                               */
/* ======================================================================== */

static int set_module(const char *name, PyObject *mod) {
  PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
  return PyDict_SetItemString(modules, name, mod);
}

/* _libactor, unbound (no endpoint yet), registered in sys.modules. */
static PyObject *make_raw_module(const char *name, const char *backend,
                                 size_t max_frame, int guard_exits) {
  PyObject *spec, *m;

  /* PyModule_FromDefAndSpec() only reads spec.name; a bare module object
   * with that attribute does, without importing anything. */
  spec = PyModule_New("_libactor_spec");
  if (spec == NULL)
    return NULL;
  if (PyModule_AddStringConstant(spec, "name", "_libactor")) {
    Py_DECREF(spec);
    return NULL;
  }
  m = PyModule_FromDefAndSpec(&mod_def, spec);
  Py_DECREF(spec);
  if (m == NULL)
    return NULL;
  if (PyModule_ExecDef(m, &mod_def)) {
    Py_DECREF(m);
    return NULL;
  }
  mod_state(m)->max_frame = max_frame;
  if (PyModule_AddStringConstant(m, "name", name) ||
      PyModule_AddStringConstant(m, "backend", backend) ||
      PyModule_AddIntConstant(m, "max_frame", (long)max_frame) ||
      PyModule_AddIntConstant(m, "guard_exits", guard_exits) ||
      set_module("_libactor", m)) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}

/* _libactor, then libactor_child (which guards os._exit if asked).  The
 * raw module is returned (a new reference): the runner keeps it, so its
 * state outlives anything actor code does to sys.modules. */
static PyObject *install_modules(const char *name, const char *backend,
                                 size_t max_frame, int guard_exits) {
  PyObject *raw, *code = NULL, *mod, *prev = NULL;

  raw = make_raw_module(name, backend, max_frame, guard_exits);
  if (raw == NULL)
    return NULL;
  /* libactor_child's code, compiled once per interpreter and kept on the
   * module: a fork server installs it before it forks, and each forked
   * child then runs it again without compiling (~3 ms of a forked actor's
   * start).  Kept there, not in a static, it goes with the interpreter. */
  if (PyDict_GetItemStringRef(PyImport_GetModuleDict(), "libactor_child",
                              &prev) > 0)
    code = PyObject_GetAttrString(prev, "__libactor_code__");
  Py_XDECREF(prev);
  if (code == NULL || !PyCode_Check(code)) {
    PyErr_Clear();
    Py_XDECREF(code);
    code = Py_CompileString(actor__child_py, "<libactor_child>",
                            Py_file_input);
  }
  if (code == NULL) {
    Py_DECREF(raw);
    return NULL;
  }
  mod = PyImport_ExecCodeModule("libactor_child", code);
  if (mod != NULL && PyObject_SetAttrString(mod, "__libactor_code__", code))
    PyErr_Clear(); /* only the cache is lost */
  Py_DECREF(code);
  if (mod == NULL) {
    Py_DECREF(raw);
    return NULL;
  }
  Py_DECREF(mod);
  return raw;
}

PyObject *actor__py_prepare(const char *backend, int guard_exits) {
  return install_modules("", backend, ACTOR__DEFAULT_MAX_FRAME, guard_exits);
}

/* A prepared pair gets this actor's name and frame limit: libactor_child
 * copied them into its globals when it was imported. */
static int rebind_modules(PyObject *raw, struct actor__py_run *run) {
  PyObject *child, *name, *mf;
  int r = -1;

  mod_state(raw)->max_frame = run->max_frame;
  name = PyUnicode_FromString(run->name);
  mf = PyLong_FromSize_t(run->max_frame);
  child = PyDict_GetItemString(PyImport_GetModuleDict(),
                               "libactor_child"); /* borrowed */
  if (name != NULL && mf != NULL && child != NULL &&
      PyObject_SetAttrString(raw, "name", name) == 0 &&
      PyObject_SetAttrString(raw, "max_frame", mf) == 0 &&
      PyObject_SetAttrString(child, "name", name) == 0 &&
      PyObject_SetAttrString(child, "max_frame", mf) == 0)
    r = 0;
  else if (!PyErr_Occurred())
    PyErr_SetString(PyExc_RuntimeError, "libactor_child is not loaded");
  Py_XDECREF(name);
  Py_XDECREF(mf);
  return r;
}

int actor__py_preinstall(void) {
  PyObject *raw = actor__py_prepare("forkserver", 0); /* unbound */
  if (raw == NULL)
    return -1;
  Py_DECREF(raw); /* sys.modules keeps it */
  return 0;
}

static int prepend_paths(char *const *paths) {
  PyObject *sys_path, *s;
  Py_ssize_t i, n = 0;
  if (paths == NULL)
    return 0;
  sys_path = PySys_GetObject("path"); /* borrowed */
  if (sys_path == NULL || !PyList_Check(sys_path)) {
    PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
    return -1;
  }
  while (paths[n] != NULL)
    n++;
  for (i = n - 1; i >= 0; i--) {
    s = PyUnicode_DecodeFSDefault(paths[i]);
    if (s == NULL || PyList_Insert(sys_path, 0, s)) {
      Py_XDECREF(s);
      return -1;
    }
    Py_DECREF(s);
  }
  return 0;
}

int actor__py_preload(char *const *paths, char *const *modules) {
  PyObject *m;
  size_t i;
  if (prepend_paths(paths))
    return -1;
  for (i = 0; modules != NULL && modules[i] != NULL; i++) {
    m = PyImport_ImportModule(modules[i]);
    if (m == NULL)
      return -1;
    Py_DECREF(m);
  }
  return 0;
}

static int send_hello(struct actor__py_run *run) {
  struct actor__msg m;
  struct abuf b;
  int r;
  actor__msg_hello(&m, run->backend, run->name);
  actor__buf_init(&b);
  r = actor__msg_encode(&b, &m, run->max_frame);
  if (r == 0) {
    Py_BEGIN_ALLOW_THREADS r = run->ep->write(run->ep, actor__buf_data(&b),
                                              b.len);
    Py_END_ALLOW_THREADS
  }
  actor__buf_fini(&b);
  return r;
}

/* Print the pending exception's traceback to sys.stderr without the
 * special handling of PyErr_Print (which exits on SystemExit), and describe
 * it in `how`. */
static void report_exception(PyObject *exc, char *how, size_t n) {
  PyObject *tname = NULL, *msg = NULL, *tb = NULL, *r;
  const char *t = "?", *s = "";

  tname = PyType_GetQualName(Py_TYPE(exc));
  msg = PyObject_Str(exc);
  if (tname != NULL)
    t = PyUnicode_AsUTF8(tname);
  if (msg != NULL)
    s = PyUnicode_AsUTF8(msg);
  PyErr_Clear();
  snprintf(how, n, "entry raised %s%s%.200s", t ? t : "?",
           s && *s ? ": " : "", s ? s : "");
  tb = PyImport_ImportModule("traceback");
  if (tb != NULL) {
    r = PyObject_CallMethod(tb, "print_exception", "O", exc);
    Py_XDECREF(r);
    Py_DECREF(tb);
  }
  PyErr_Clear();
  Py_XDECREF(tname);
  Py_XDECREF(msg);
}

int actor__py_run_actor(struct actor__py_run *run) {
  PyObject *raw = NULL, *mod = NULL, *fn = NULL, *res = NULL, *exc;
  char modname[512];
  const char *colon = strchr(run->entry, ':');
  int status = 1, watching = 0, r;

  run->how[0] = '\0';
  run->interrupted = 0;
  if (colon == NULL || (size_t)(colon - run->entry) >= sizeof(modname)) {
    snprintf(run->how, sizeof(run->how), "bad entry '%.200s'", run->entry);
    Py_CLEAR(run->prepared);
    return 1;
  }
  memcpy(modname, run->entry, (size_t)(colon - run->entry));
  modname[colon - run->entry] = '\0';

  if (run->prepared != NULL) {
    raw = run->prepared; /* ours now */
    run->prepared = NULL;
    if (rebind_modules(raw, run))
      goto failed;
  } else {
    raw = install_modules(run->name, run->backend, run->max_frame,
                          run->guard_exits);
  }
  if (raw == NULL || prepend_paths(run->paths))
    goto failed;
  mod_state(raw)->ep = run->ep;
  mod_state(raw)->ib = run->ib;
  r = actor__py_inbox_start(run->ib, mod_state(raw)->cancelled);
  if (r) {
    errno = -r;
    PyErr_SetFromErrno(PyExc_OSError);
    goto failed;
  }
  watching = 1;
  if (send_hello(run)) {
    snprintf(run->how, sizeof(run->how), "could not say hello: parent gone");
    goto done;
  }
  mod = PyImport_ImportModule(modname);
  if (mod == NULL)
    goto failed;
  fn = PyObject_GetAttrString(mod, colon + 1);
  if (fn == NULL)
    goto failed;
  res = PyObject_CallNoArgs(fn);
  if (res == NULL)
    goto failed;
  status = 0;
  snprintf(run->how, sizeof(run->how), "entry returned");
  goto done;

failed:
  exc = PyErr_GetRaisedException();
  if (exc == NULL) {
    snprintf(run->how, sizeof(run->how), "entry failed");
  } else if (PyErr_GivenExceptionMatches(exc, PyExc_SystemExit)) {
    PyObject *code = PyObject_GetAttrString(exc, "code");
    status = 0;
    if (code != NULL && PyLong_Check(code))
      status = (int)PyLong_AsLong(code);
    else if (code != NULL && code != Py_None)
      status = 1;
    Py_XDECREF(code);
    PyErr_Clear();
    snprintf(run->how, sizeof(run->how), "entry called sys.exit(%d)", status);
  } else if (PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt)) {
    run->interrupted = 1;
    status = 1;
    snprintf(run->how, sizeof(run->how), "interrupted");
  } else {
    report_exception(exc, run->how, sizeof(run->how));
  }
  Py_XDECREF(exc);

done:
  /* The watcher goes before the interpreter does; what actor threads send
   * from now on still reaches the parent (the endpoint stays). */
  if (watching)
    actor__py_inbox_stop(run->ib);
  Py_XDECREF(res);
  Py_XDECREF(fn);
  Py_XDECREF(mod);
  Py_XDECREF(raw);
  return status;
}
