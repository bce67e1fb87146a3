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

typedef struct {
  struct actor__py_ep *ep;
  struct abuf in, out, payload;
  struct actor__framer framer;
  msgpack_zone zone;
  int zone_ok;
  PyObject *got; /* the message the framer callback decoded */
  int bad;       /* the parent sent something we cannot accept */
} modstate;

static modstate *mod_state(PyObject *m) { return PyModule_GetState(m); }

static int mod_exec(PyObject *m) {
  modstate *st = mod_state(m);
  memset(st, 0, sizeof(*st));
  actor__buf_init(&st->in);
  actor__buf_init(&st->out);
  actor__buf_init(&st->payload);
  st->framer.max_frame = ACTOR__DEFAULT_MAX_FRAME;
  if (!msgpack_zone_init(&st->zone, 2048)) {
    PyErr_NoMemory();
    return -1;
  }
  st->zone_ok = 1;
  return 0;
}

static void mod_free(void *p) {
  modstate *st = mod_state(p);
  if (st == NULL)
    return;
  actor__buf_fini(&st->in);
  actor__buf_fini(&st->out);
  actor__buf_fini(&st->payload);
  if (st->zone_ok)
    msgpack_zone_destroy(&st->zone);
  Py_CLEAR(st->got);
}

/* ======================================================================== */
/* Sending                                                                  */
/* ======================================================================== */

static int buf_write(void *data, const char *p, size_t n) {
  return actor__buf_append(data, p, n) ? -1 : 0;
}

/* Write out st->out with the GIL released. */
static int mod_flush(modstate *st) {
  int r;
  if (st->ep == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "_libactor is not bound to a parent");
    return -1;
  }
  Py_BEGIN_ALLOW_THREADS r = st->ep->write(st->ep, actor__buf_data(&st->out),
                                           st->out.len);
  Py_END_ALLOW_THREADS st->out.len = 0;
  st->out.off = 0;
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

static int mod_send(modstate *st, int kind, uint32_t id, PyObject *value) {
  struct actor__msg m;
  msgpack_packer pk;
  int r;

  memset(&m, 0, sizeof(m));
  m.kind = kind;
  m.id = id;
  if (value != NULL) {
    st->payload.len = 0;
    st->payload.off = 0;
    msgpack_packer_init(&pk, &st->payload, buf_write);
    if (actor__py_pack(&pk, value))
      return -1;
    m.payload = actor__buf_data(&st->payload);
    m.payload_len = st->payload.len;
  }
  r = actor__msg_encode(&st->out, &m, st->framer.max_frame);
  if (r == ACTOR_E2BIG) {
    PyErr_Format(PyExc_ValueError,
                 "value of %zu bytes exceeds the maximum frame of %zu bytes",
                 m.payload_len, st->framer.max_frame);
    return -1;
  }
  if (r) {
    PyErr_NoMemory();
    return -1;
  }
  return mod_flush(st);
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

static PyObject *mod_send_error(PyObject *m, PyObject *const *args,
                                Py_ssize_t n) {
  modstate *st = mod_state(m);
  struct actor__msg msg;
  const char *s[3];
  Py_ssize_t len[3];
  uint32_t id;
  int i, r;

  if (n != 4) {
    PyErr_SetString(PyExc_TypeError,
                    "send_error(id, type, message, traceback)");
    return NULL;
  }
  if (get_id(args[0], &id))
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
  r = actor__msg_encode(&st->out, &msg, st->framer.max_frame);
  if (r == ACTOR_E2BIG) {
    /* An error must get through: cut the traceback, then the message. */
    msg.traceback.n = 0;
    if (msg.type.n > 256)
      msg.type.n = 256;
    if (msg.message.n > st->framer.max_frame / 2)
      msg.message.n = st->framer.max_frame / 2;
    r = actor__msg_encode(&st->out, &msg, st->framer.max_frame);
  }
  if (r)
    return PyErr_NoMemory();
  if (mod_flush(st))
    return NULL;
  Py_RETURN_NONE;
}

/* ======================================================================== */
/* Receiving                                                                */
/* ======================================================================== */

/* Decode one frame into st->got: a tuple (kind, id, ...). */
static int mod_on_frame(void *arg, const char *body, size_t len) {
  modstate *st = arg;
  struct actor__msg m;
  PyObject *v = NULL;
  int r;

  r = actor__msg_decode(&m, body, len);
  if (r || m.kind == ACTOR__MSG_HELLO || m.kind == ACTOR__MSG_RETURN ||
      m.kind == ACTOR__MSG_ERROR) {
    PyErr_Format(PyExc_ValueError,
                 "protocol error: the parent sent %s (kind %d)",
                 r ? actor_strerror(r) : "a child's message", m.kind);
    st->bad = 1;
    return 1;
  }
  switch (m.kind) {
  case ACTOR__MSG_CALL:
    v = actor__py_unpack(m.payload, m.payload_len);
    if (v == NULL) {
      /* Arguments we cannot take are that call's error, not the actor's:
       * hand the exception to libactor_child, which answers the call. */
      PyObject *exc = PyErr_GetRaisedException();
      st->got = Py_BuildValue("(iIs#N)", m.kind, m.id, m.fn.p,
                              (Py_ssize_t)m.fn.n, exc);
    } else {
      st->got = Py_BuildValue("(iIs#N)", m.kind, m.id, m.fn.p,
                              (Py_ssize_t)m.fn.n, v);
    }
    break;
  case ACTOR__MSG_ITEM:
    v = actor__py_unpack(m.payload, m.payload_len);
    if (v == NULL)
      v = PyErr_GetRaisedException();
    st->got = Py_BuildValue("(iIN)", m.kind, m.id, v);
    break;
  default: /* END, CANCEL, STOP */
    st->got = Py_BuildValue("(iI)", m.kind, m.id);
    break;
  }
  if (st->got == NULL)
    st->bad = 1;
  return 1; /* one message per recv() */
}

static int mod_on_oversize(void *arg, int kind, uint32_t id, uint64_t len) {
  modstate *st = arg;
  (void)len;
  if (kind == ACTOR__MSG_CALL && id != 0)
    st->got = Py_BuildValue(
        "(iIsN)", ACTOR__MSG_CALL, id, "",
        PyObject_CallFunction(PyExc_ValueError, "s",
                              "the call exceeds the maximum frame size"));
  else if (kind == ACTOR__MSG_ITEM && id != 0)
    st->got = Py_BuildValue(
        "(iIN)", ACTOR__MSG_ITEM, id,
        PyObject_CallFunction(PyExc_ValueError, "s",
                              "a stream item exceeds the maximum frame size"));
  else
    return 0; /* skipped */
  if (st->got == NULL)
    st->bad = 1;
  return 1;
}

static const struct actor__framer_cbs mod_framer_cbs = {mod_on_frame,
                                                        mod_on_oversize};

/* recv(timeout=None) -> message tuple, or None when the wait ended without
 * one (timeout, or woken so that pending Python work — an injected
 * exception — can run).  EOFError when the parent is gone. */
static PyObject *mod_recv(PyObject *m, PyObject *const *args, Py_ssize_t n) {
  modstate *st = mod_state(m);
  int tms = -1, r;
  PyObject *got;

  if (n > 1) {
    PyErr_SetString(PyExc_TypeError, "recv(timeout=None)");
    return NULL;
  }
  if (n == 1 && args[0] != Py_None) {
    double t = PyFloat_AsDouble(args[0]);
    if (t == -1.0 && PyErr_Occurred())
      return NULL;
    tms = t <= 0 ? 0 : t > 86400 ? 86400000 : (int)(t * 1000);
  }
  if (st->ep == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "_libactor is not bound to a parent");
    return NULL;
  }
  for (;;) {
    r = actor__framer_feed(&st->framer, &st->in, &mod_framer_cbs, st);
    if (st->bad) {
      st->bad = 0;
      Py_CLEAR(st->got);
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "protocol error");
      return NULL;
    }
    if (st->got != NULL) {
      got = st->got;
      st->got = NULL;
      return got;
    }
    if (r < 0)
      return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS r = st->ep->read(st->ep, &st->in, tms);
    Py_END_ALLOW_THREADS if (r == -ETIMEDOUT) Py_RETURN_NONE;
    if (r == ACTOR_ECLOSED) {
      PyErr_SetString(PyExc_EOFError, "the parent is gone");
      return NULL;
    }
    if (r) {
      errno = r < 0 && r > -4096 ? -r : EIO;
      return PyErr_SetFromErrno(PyExc_OSError);
    }
  }
}

/* pending() -> True when a message may be waiting (no blocking). */
static PyObject *mod_pending(PyObject *m, PyObject *unused) {
  modstate *st = mod_state(m);
  (void)unused;
  if (st->in.len > 0 || (st->ep != NULL && st->ep->pending(st->ep)))
    Py_RETURN_TRUE;
  Py_RETURN_FALSE;
}

static PyMethodDef mod_methods[] = {
    {"recv", (PyCFunction)(void (*)(void))mod_recv, METH_FASTCALL,
     "recv(timeout=None) -> (kind, id, ...) or None"},
    {"pending", mod_pending, METH_NOARGS, "pending() -> bool"},
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
    NULL,
    NULL,
    mod_free,
};

/* ======================================================================== */
/* The runner                                                               */
/* ======================================================================== */

static int set_module(const char *name, PyObject *mod) {
  PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
  return PyDict_SetItemString(modules, name, mod);
}

static PyObject *make_raw_module(struct actor__py_run *run) {
  PyObject *spec, *m;
  modstate *st;

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
  st = mod_state(m);
  st->ep = run->ep;
  st->framer.max_frame = run->max_frame;
  if (PyModule_AddStringConstant(m, "name", run->name) ||
      PyModule_AddStringConstant(m, "backend", run->backend) ||
      PyModule_AddIntConstant(m, "max_frame", (long)run->max_frame) ||
      set_module("_libactor", m)) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}

static int install_modules(struct actor__py_run *run) {
  PyObject *raw, *code, *mod;

  raw = make_raw_module(run);
  if (raw == NULL)
    return -1;
  Py_DECREF(raw); /* sys.modules keeps it */
  code = Py_CompileString(actor__child_py, "<libactor_child>", Py_file_input);
  if (code == NULL)
    return -1;
  mod = PyImport_ExecCodeModule("libactor_child", code);
  Py_DECREF(code);
  if (mod == NULL)
    return -1;
  Py_DECREF(mod);
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
  PyObject *mod = NULL, *fn = NULL, *res = NULL, *exc;
  char modname[512];
  const char *colon = strchr(run->entry, ':');
  int status = 1;

  run->how[0] = '\0';
  run->interrupted = 0;
  if (colon == NULL || (size_t)(colon - run->entry) >= sizeof(modname)) {
    snprintf(run->how, sizeof(run->how), "bad entry '%.200s'", run->entry);
    return 1;
  }
  memcpy(modname, run->entry, (size_t)(colon - run->entry));
  modname[colon - run->entry] = '\0';

  if (install_modules(run) || prepend_paths(run->paths))
    goto failed;
  if (send_hello(run)) {
    snprintf(run->how, sizeof(run->how), "could not say hello: parent gone");
    return 1;
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
  Py_XDECREF(res);
  Py_XDECREF(fn);
  Py_XDECREF(mod);
  return status;
}
