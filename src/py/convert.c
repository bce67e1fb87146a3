/* msgpack <-> Python objects.  See py.h for the contract.
 *
 * Encoding goes through msgpack-c's packer (msgpack_pack_*), decoding
 * through msgpack_unpack_next() into a msgpack_object tree that is then
 * walked.  Both run on every call, item and return value, so the common
 * types are tested by exact type first and no temporary Python object is
 * made for a scalar.
 *
 * Sub-interpreters.  Nothing here keeps state between calls: no static
 * PyObject *, no cached types or strings, no PyGILState_*, only the public
 * C API.  It runs the same in the main interpreter and in an isolated one
 * (own GIL, own obmalloc), several at a time on several threads.
 *
 * Python -> msgpack (actor__py_pack)
 *   None -> nil, bool -> true/false (tested before int), int -> the
 *   smallest msgpack int that msgpack_pack_int64/uint64 pick; an int
 *   outside [-2**63, 2**64-1] is an OverflowError
 *   "int too large to convert to msgpack (64-bit limit): N bits", where N is
 *   the width the value needs (bit_length() for a positive value, the two's
 *   complement width for a negative one: -2**63-1 needs 65).
 *   float -> float64.  str -> str in UTF-8; a lone surrogate makes
 *   PyUnicode_AsUTF8AndSize raise UnicodeEncodeError, which propagates.
 *   bytes, bytearray -> bin.  list, tuple -> array.  dict -> map, in dict
 *   order, keys and values converted the same way (a tuple key packs as an
 *   array: fine for a C peer, but actor__py_unpack refuses it, see below).
 *   Subclasses of those types (IntEnum, StrEnum, OrderedDict, defaultdict,
 *   a list subclass...) are accepted and packed as their base type, from
 *   their underlying storage: overridden __iter__, items(), __str__,
 *   __index__ and so on are not called.  Anything else is a TypeError
 *   "cannot convert <type> to msgpack" with the type's fully qualified name
 *   ("set", "complex", "mymod.Outer.Inner").
 *   A str, bytes, array or map longer than 2**32-1 (msgpack's own limit) is
 *   a ValueError (msgpack-c would silently truncate the length).
 *
 * Nesting.  msgpack-c's unpacker refuses a value nested deeper than
 * MSGPACK_EMBED_STACK_SIZE (32) containers: it fails with
 * MSGPACK_UNPACK_NOMEM_ERROR, however much memory there is.  Every libactor
 * peer decodes with msgpack-c (actor__msgpack_check on the parent side, this
 * file on the Python side), so a deeper value could be encoded but never
 * received.  The encoder therefore has the same hard cap: a container at
 * depth 33 (the outermost one is depth 1) is a ValueError "value nested
 * too deeply for msgpack ...", at the sender, where the traceback helps.
 * The cap also stops a self-referencing container (l = []; l.append(l)).
 * NB: the cap counts from the object handed to actor__py_pack; a caller that
 * writes an enclosing array header itself (e.g. for call arguments) and
 * packs each element separately adds one level the cap cannot see.
 * Py_EnterRecursiveCall guards the C stack as well (RecursionError), in
 * both directions, though with this cap it never triggers in practice.
 *
 * msgpack -> Python (actor__py_unpack)
 *   Exactly one value must fill [data, data+len).  Errors:
 *   - empty or truncated input, a byte that starts no value: ValueError
 *     "malformed msgpack data..."; bytes after the value: ValueError
 *     "malformed msgpack data: N trailing bytes after the value".
 *   - nested deeper than 32 containers: msgpack-c reports
 *     MSGPACK_UNPACK_NOMEM_ERROR, which cannot be told apart from a real
 *     allocation failure (e.g. an array header announcing 2**32-1 elements,
 *     whose space msgpack-c tries to reserve up front); both are a
 *     ValueError "malformed msgpack data: nested deeper than 32 levels, or
 *     a length too large to allocate".
 *   - a str that is not valid UTF-8: the UnicodeDecodeError of
 *     PyUnicode_DecodeUTF8 propagates (it is a subclass of ValueError, so
 *     "except ValueError" catches every malformed input).
 *   - an ext value (any type code, timestamps included): TypeError
 *     "msgpack ext type N is not supported".
 *   - a map key that is an array or a map: TypeError "unhashable msgpack map
 *     key: array (a dict key must be hashable)".  Other keys are hashable.
 *   Values: nil -> None, true/false -> True/False, ints -> int,
 *   float32/float64 -> float, str -> str, bin -> bytes, array -> list,
 *   map -> dict.  Duplicate map keys: the last one wins (keys equal in
 *   Python, such as 1, 1.0 and true, are duplicates too).
 *
 * Memory: msgpack_unpacked allocates its zone only when the value holds a
 * container, and str/bin bodies are read in place, so a scalar costs no
 * allocation besides its Python object.  Every error path releases what it
 * had built; on an encoding error the packer has received part of the
 * encoding, which the caller must discard.
 *
 * The packer's write callback must not run Python code (it is a plain
 * buffer append in libactor): lists and dicts are read in place.  The sizes
 * are still re-checked, so a container that changed size while being
 * encoded is a RuntimeError rather than a malformed encoding. */
#include "proto/codec.h"
#include "py/py.h"

#include <stdint.h>

#ifdef MSGPACK_EMBED_STACK_SIZE
#define CONV_MAX_DEPTH MSGPACK_EMBED_STACK_SIZE
#else
#define CONV_MAX_DEPTH 32 /* msgpack-c's MSGPACK_EMBED_STACK_SIZE */
#endif

_Static_assert(sizeof(long long) == 8, "long long must be 64 bits");

/* ------------------------------------------------------------------------ */
/* Python -> msgpack                                                        */
/* ------------------------------------------------------------------------ */

static int conv__pack(msgpack_packer *pk, PyObject *o, int depth);

/* The packer's write callback failed (the only way msgpack_pack_* fail). */
static int conv__write_failed(void) {
  PyErr_SetString(PyExc_MemoryError,
                  "could not write the msgpack encoding (out of memory?)");
  return -1;
}

#define CONV_W(call)                                                           \
  do {                                                                         \
    if ((call) != 0)                                                           \
      return conv__write_failed();                                             \
  } while (0)

static int conv__too_long(const char *what, Py_ssize_t n) {
  PyErr_Format(PyExc_ValueError,
               "%s of length %zd is too long for msgpack (limit 2**32-1)", what,
               n);
  return -1;
}

/* Error path only: the OverflowError, with the width the value needs. */
static int conv__int_overflow(PyObject *o) {
  int neg = PyLong_IsNegative(o);
  PyObject *t = NULL, *bl = NULL;
  long bits = -1;

  if (neg >= 0)
    t = neg ? PyNumber_Invert(o) : Py_NewRef(o);
  if (t != NULL)
    bl = PyObject_CallMethod((PyObject *)&PyLong_Type, "bit_length", "O", t);
  if (bl != NULL)
    bits = PyLong_AsLong(bl);
  Py_XDECREF(bl);
  Py_XDECREF(t);
  if (bits < 0) {
    PyErr_Clear();
    PyErr_SetString(PyExc_OverflowError,
                    "int too large to convert to msgpack (64-bit limit)");
  } else {
    PyErr_Format(PyExc_OverflowError,
                 "int too large to convert to msgpack (64-bit limit): %ld bits",
                 bits + neg);
  }
  return -1;
}

static int conv__pack_int(msgpack_packer *pk, PyObject *o) {
  int overflow;
  long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  unsigned long long u;

  if (overflow == 0) {
    if (v == -1 && PyErr_Occurred())
      return -1;
    CONV_W(msgpack_pack_int64(pk, (int64_t)v));
    return 0;
  }
  if (overflow > 0) {
    u = PyLong_AsUnsignedLongLong(o);
    if (u != (unsigned long long)-1 || !PyErr_Occurred()) {
      CONV_W(msgpack_pack_uint64(pk, (uint64_t)u));
      return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_OverflowError))
      return -1;
    PyErr_Clear();
  }
  return conv__int_overflow(o);
}

static int conv__pack_str(msgpack_packer *pk, PyObject *o) {
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s == NULL)
    return -1;
  if ((uint64_t)n > UINT32_MAX)
    return conv__too_long("str (UTF-8)", n);
  CONV_W(msgpack_pack_str_with_body(pk, s, (size_t)n));
  return 0;
}

static int conv__pack_bin(msgpack_packer *pk, const char *p, Py_ssize_t n) {
  if ((uint64_t)n > UINT32_MAX)
    return conv__too_long("bytes", n);
  CONV_W(msgpack_pack_bin_with_body(pk, p, (size_t)n));
  return 0;
}

/* Entering a container at `depth` (the number of containers around it). */
static int conv__enter(int depth, const char *where) {
  if (depth >= CONV_MAX_DEPTH) {
    PyErr_Format(PyExc_ValueError,
                 "value nested too deeply for msgpack (more than %d levels; "
                 "a container that contains itself?)",
                 CONV_MAX_DEPTH);
    return -1;
  }
  return Py_EnterRecursiveCall(where);
}

#define CONV_TO " while converting to msgpack"

static int conv__changed(const char *what) {
  PyErr_Format(PyExc_RuntimeError, "%s changed size during conversion to msgpack",
               what);
  return -1;
}

static int conv__pack_list(msgpack_packer *pk, PyObject *o, int depth) {
  Py_ssize_t i, n = PyList_GET_SIZE(o);
  int r = -1;

  if ((uint64_t)n > UINT32_MAX)
    return conv__too_long("list", n);
  if (conv__enter(depth, CONV_TO))
    return -1;
  if (msgpack_pack_array(pk, (size_t)n) != 0) {
    conv__write_failed();
    goto out;
  }
  for (i = 0; i < n && i < PyList_GET_SIZE(o); i++)
    if (conv__pack(pk, PyList_GET_ITEM(o, i), depth + 1))
      goto out;
  if (i != n || PyList_GET_SIZE(o) != n) {
    conv__changed("list");
    goto out;
  }
  r = 0;
out:
  Py_LeaveRecursiveCall();
  return r;
}

static int conv__pack_tuple(msgpack_packer *pk, PyObject *o, int depth) {
  Py_ssize_t i, n = PyTuple_GET_SIZE(o);
  int r = -1;

  if ((uint64_t)n > UINT32_MAX)
    return conv__too_long("tuple", n);
  if (conv__enter(depth, CONV_TO))
    return -1;
  if (msgpack_pack_array(pk, (size_t)n) != 0) {
    conv__write_failed();
    goto out;
  }
  for (i = 0; i < n; i++)
    if (conv__pack(pk, PyTuple_GET_ITEM(o, i), depth + 1))
      goto out;
  r = 0;
out:
  Py_LeaveRecursiveCall();
  return r;
}

static int conv__pack_dict(msgpack_packer *pk, PyObject *o, int depth) {
  Py_ssize_t pos = 0, seen = 0, n = PyDict_GET_SIZE(o);
  PyObject *k, *v;
  int r = -1;

  if ((uint64_t)n > UINT32_MAX)
    return conv__too_long("dict", n);
  if (conv__enter(depth, CONV_TO))
    return -1;
  if (msgpack_pack_map(pk, (size_t)n) != 0) {
    conv__write_failed();
    goto out;
  }
  while (seen < n && PyDict_Next(o, &pos, &k, &v)) {
    seen++;
    if (conv__pack(pk, k, depth + 1) || conv__pack(pk, v, depth + 1))
      goto out;
  }
  if (seen != n || PyDict_GET_SIZE(o) != n) {
    conv__changed("dict");
    goto out;
  }
  r = 0;
out:
  Py_LeaveRecursiveCall();
  return r;
}

/* Subclasses of the supported types, and the TypeError. */
static int conv__pack_other(msgpack_packer *pk, PyObject *o, int depth) {
  if (PyLong_Check(o))
    return conv__pack_int(pk, o);
  if (PyUnicode_Check(o))
    return conv__pack_str(pk, o);
  if (PyFloat_Check(o)) {
    CONV_W(msgpack_pack_double(pk, PyFloat_AS_DOUBLE(o)));
    return 0;
  }
  if (PyBytes_Check(o))
    return conv__pack_bin(pk, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
  if (PyByteArray_Check(o))
    return conv__pack_bin(pk, PyByteArray_AS_STRING(o),
                          PyByteArray_GET_SIZE(o));
  if (PyList_Check(o))
    return conv__pack_list(pk, o, depth);
  if (PyTuple_Check(o))
    return conv__pack_tuple(pk, o, depth);
  if (PyDict_Check(o))
    return conv__pack_dict(pk, o, depth);
  /* %T: the fully qualified name of the object's type. */
  PyErr_Format(PyExc_TypeError, "cannot convert %T to msgpack", o);
  return -1;
}

static int conv__pack(msgpack_packer *pk, PyObject *o, int depth) {
  PyTypeObject *t = Py_TYPE(o);

  /* Exact types first, the most frequent first.  bool cannot be
   * subclassed, and is tested before int (of which it is a subclass). */
  if (t == &PyLong_Type)
    return conv__pack_int(pk, o);
  if (t == &PyUnicode_Type)
    return conv__pack_str(pk, o);
  if (o == Py_None) {
    CONV_W(msgpack_pack_nil(pk));
    return 0;
  }
  if (t == &PyBool_Type) {
    CONV_W(o == Py_True ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
    return 0;
  }
  if (t == &PyFloat_Type) {
    CONV_W(msgpack_pack_double(pk, PyFloat_AS_DOUBLE(o)));
    return 0;
  }
  if (t == &PyList_Type)
    return conv__pack_list(pk, o, depth);
  if (t == &PyDict_Type)
    return conv__pack_dict(pk, o, depth);
  if (t == &PyTuple_Type)
    return conv__pack_tuple(pk, o, depth);
  if (t == &PyBytes_Type)
    return conv__pack_bin(pk, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
  return conv__pack_other(pk, o, depth);
}

int actor__py_pack(msgpack_packer *pk, PyObject *obj) {
  return conv__pack(pk, obj, 0);
}

/* ------------------------------------------------------------------------ */
/* msgpack -> Python                                                        */
/* ------------------------------------------------------------------------ */

#define CONV_FROM " while converting from msgpack"

static PyObject *conv__obj(const msgpack_object *o, int depth);

static PyObject *conv__list(const msgpack_object_array *a, int depth) {
  PyObject *l, *item;
  uint32_t i;

  if (conv__enter(depth, CONV_FROM))
    return NULL;
  l = PyList_New((Py_ssize_t)a->size);
  if (l != NULL) {
    for (i = 0; i < a->size; i++) {
      item = conv__obj(&a->ptr[i], depth + 1);
      if (item == NULL) {
        Py_CLEAR(l); /* the NULL slots left are fine for list_dealloc */
        break;
      }
      PyList_SET_ITEM(l, (Py_ssize_t)i, item);
    }
  }
  Py_LeaveRecursiveCall();
  return l;
}

static const char *conv__kind(msgpack_object_type t) {
  return t == MSGPACK_OBJECT_ARRAY ? "array" : "map";
}

static PyObject *conv__dict(const msgpack_object_map *m, int depth) {
  PyObject *d, *k, *v;
  uint32_t i;
  int r;

  if (conv__enter(depth, CONV_FROM))
    return NULL;
  d = PyDict_New();
  if (d != NULL) {
    for (i = 0; i < m->size; i++) {
      const msgpack_object_kv *kv = &m->ptr[i];
      if (kv->key.type == MSGPACK_OBJECT_ARRAY ||
          kv->key.type == MSGPACK_OBJECT_MAP) {
        PyErr_Format(PyExc_TypeError,
                     "unhashable msgpack map key: %s (a dict key must be "
                     "hashable)",
                     conv__kind(kv->key.type));
        Py_CLEAR(d);
        break;
      }
      k = conv__obj(&kv->key, depth + 1);
      if (k == NULL) {
        Py_CLEAR(d);
        break;
      }
      v = conv__obj(&kv->val, depth + 1);
      if (v == NULL) {
        Py_DECREF(k);
        Py_CLEAR(d);
        break;
      }
      r = PyDict_SetItem(d, k, v);
      Py_DECREF(k);
      Py_DECREF(v);
      if (r < 0) {
        Py_CLEAR(d);
        break;
      }
    }
  }
  Py_LeaveRecursiveCall();
  return d;
}

static PyObject *conv__obj(const msgpack_object *o, int depth) {
  switch (o->type) {
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    return PyLong_FromUnsignedLongLong((unsigned long long)o->via.u64);
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    return PyLong_FromLongLong((long long)o->via.i64);
  case MSGPACK_OBJECT_STR:
    return PyUnicode_DecodeUTF8(o->via.str.ptr, (Py_ssize_t)o->via.str.size,
                                NULL);
  case MSGPACK_OBJECT_NIL:
    Py_RETURN_NONE;
  case MSGPACK_OBJECT_BOOLEAN:
    return PyBool_FromLong(o->via.boolean);
  case MSGPACK_OBJECT_FLOAT32: /* msgpack-c widens it into via.f64 */
  case MSGPACK_OBJECT_FLOAT64:
    return PyFloat_FromDouble(o->via.f64);
  case MSGPACK_OBJECT_BIN:
    return PyBytes_FromStringAndSize(o->via.bin.ptr,
                                     (Py_ssize_t)o->via.bin.size);
  case MSGPACK_OBJECT_ARRAY:
    return conv__list(&o->via.array, depth);
  case MSGPACK_OBJECT_MAP:
    return conv__dict(&o->via.map, depth);
  case MSGPACK_OBJECT_EXT:
    PyErr_Format(PyExc_TypeError, "msgpack ext type %d is not supported",
                 (int)o->via.ext.type);
    return NULL;
  }
  PyErr_Format(PyExc_ValueError, "malformed msgpack data: object type %d",
               (int)o->type);
  return NULL;
}

PyObject *actor__py_unpack(const char *data, size_t len) {
  msgpack_unpacked u;
  size_t off = 0;
  PyObject *r = NULL;

  /* Counts checked against the bytes first: msgpack-c allocates for what
   * a header announces before reading it (proto/codec.h). */
  if (len > 0 && actor__msgpack_sane_first(data, len, &off) < 0) {
    PyErr_SetString(PyExc_ValueError,
                    "malformed msgpack data: truncated, or not msgpack (a "
                    "count or length exceeds the data)");
    return NULL;
  }
  off = 0;
  msgpack_unpacked_init(&u);
  switch (msgpack_unpack_next(&u, data, len, &off)) {
  case MSGPACK_UNPACK_SUCCESS:
    if (off == len)
      r = conv__obj(&u.data, 0);
    else
      PyErr_Format(PyExc_ValueError,
                   "malformed msgpack data: %zu trailing bytes after the value",
                   len - off);
    break;
  case MSGPACK_UNPACK_CONTINUE:
    PyErr_SetString(PyExc_ValueError,
                    len == 0 ? "malformed msgpack data: empty"
                             : "malformed msgpack data: truncated");
    break;
  case MSGPACK_UNPACK_NOMEM_ERROR:
    /* msgpack-c's nesting limit, or a failed allocation (it reserves an
     * array's or map's elements as soon as it reads the header, so a
     * 5-byte "array of 2**32-1 elements" asks for ~100 GB): it says the
     * same for both. */
    PyErr_Format(PyExc_ValueError,
                 "malformed msgpack data: nested deeper than %d levels, or a "
                 "length too large to allocate",
                 CONV_MAX_DEPTH);
    break;
  default:
    PyErr_SetString(PyExc_ValueError, "malformed msgpack data");
    break;
  }
  msgpack_unpacked_destroy(&u);
  return r;
}
