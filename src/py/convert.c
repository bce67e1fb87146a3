/* msgpack <-> Python objects.  See py.h for the contract.
 *
 * Encoding goes through msgpack-c's packer (msgpack_pack_*); decoding
 * walks the bytes directly, building Python objects in one pass (no
 * msgpack_object tree in between, and no nesting limit but ours).  Both run
 * on every call, item and return value, so the common types are tested by
 * exact type first and no temporary Python object is made for a scalar.
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
 * Nesting.  Both directions accept values nested up to ACTOR__MAX_DEPTH
 * (512) arrays/maps deep, the protocol's limit (proto/codec.h): the
 * outermost container is depth 1.  A deeper value is a ValueError —
 * libactor_child.TooDeep where that module is loaded — naming
 * the limit — "value nested too deeply for msgpack (more than 512 levels,
 * libactor's limit ...)" when encoding (it also stops a self-referencing
 * container: l = []; l.append(l)), "msgpack value nested deeper than 512
 * levels (libactor's limit)" when decoding.  msgpack-c's own unpacker stops
 * at 32 (MSGPACK_EMBED_STACK_SIZE), which is why decoding does not use it.
 * NB: the cap counts from the object handed to actor__py_pack; a caller that
 * writes an enclosing array header itself (e.g. for call arguments) and
 * packs each element separately adds one level the cap cannot see.
 * Py_EnterRecursiveCall guards the C stack as well (RecursionError), in
 * both directions.
 *
 * msgpack -> Python (actor__py_unpack)
 *   Exactly one value must fill [data, data+len).  Errors:
 *   - empty or truncated input (a length or count announcing more than the
 *     bytes left — checked before anything is allocated for it), a byte
 *     that starts no value (0xc1): ValueError "malformed msgpack data...";
 *     bytes after the value: ValueError "malformed msgpack data: N trailing
 *     bytes after the value".
 *   - nested deeper than 512 containers: the ValueError above.
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
 * Memory: decoding allocates nothing but the Python objects (str/bin
 * bodies are read in place).  Every error path releases what it had built;
 * on an encoding error the packer has received part of the encoding, which
 * the caller must discard.
 *
 * The packer's write callback must not run Python code (it is a plain
 * buffer append in libactor): lists and dicts are read in place.  The sizes
 * are still re-checked, so a container that changed size while being
 * encoded is a RuntimeError rather than a malformed encoding. */
#include "proto/codec.h"
#include "py/py.h"

#include <stdint.h>

/* The protocol's nesting limit (proto/codec.h), the same both ways. */
#define CONV_MAX_DEPTH ACTOR__MAX_DEPTH

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

#define CONV_TO " while converting to msgpack"
#define CONV_FROM " while converting from msgpack"

/* Entering a container at `depth` (the number of containers around it),
 * encoding (`to`) or decoding. */
/* The exception for a value nested too deeply: libactor_child.TooDeep (a
 * ValueError) when this interpreter's _libactor is loaded, so that the
 * parent gets ACTOR_EDEPTH as from a C actor; ValueError otherwise.  A new
 * reference.  Looked up only on that error, never on the hot path. */
static PyObject *conv__too_deep_type(void) {
  PyObject *name, *mod = NULL, *t = NULL;
  name = PyUnicode_FromString("_libactor");
  if (name != NULL) {
    mod = PyImport_GetModule(name);
    Py_DECREF(name);
  }
  if (mod != NULL) {
    t = PyObject_GetAttrString(mod, "TooDeep");
    Py_DECREF(mod);
  }
  if (t == NULL || !PyExceptionClass_Check(t)) {
    PyErr_Clear();
    Py_XDECREF(t);
    t = Py_NewRef(PyExc_ValueError);
  }
  return t;
}

static int conv__enter(int depth, int to) {
  if (depth >= CONV_MAX_DEPTH) {
    PyObject *t = conv__too_deep_type();
    if (to)
      PyErr_Format(t,
                   "value nested too deeply for msgpack (more than %d "
                   "levels, libactor's limit; a container that contains "
                   "itself?)",
                   CONV_MAX_DEPTH);
    else
      PyErr_Format(t,
                   "msgpack value nested deeper than %d levels (libactor's "
                   "limit)",
                   CONV_MAX_DEPTH);
    Py_DECREF(t);
    return -1;
  }
  return Py_EnterRecursiveCall(to ? CONV_TO : CONV_FROM);
}

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
  if (conv__enter(depth, 1))
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
  if (conv__enter(depth, 1))
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
  if (conv__enter(depth, 1))
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

/* A cursor over the input.  Every length and count is checked against the
 * bytes left before anything is allocated for it (each element takes at
 * least one byte), so a 5-byte header announcing 2**32 elements is refused
 * at once. */
struct conv__in {
  const unsigned char *p, *end;
};

static int conv__truncated(void) {
  PyErr_SetString(PyExc_ValueError,
                  "malformed msgpack data: truncated (a count or length "
                  "exceeds the data)");
  return -1;
}

static int conv__need(struct conv__in *in, size_t n) {
  return (size_t)(in->end - in->p) >= n ? 0 : conv__truncated();
}

static uint64_t conv__be(const unsigned char *p, int n) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Read an n-byte big-endian field. */
static int conv__field(struct conv__in *in, int n, uint64_t *v) {
  if (conv__need(in, (size_t)n))
    return -1;
  *v = conv__be(in->p, n);
  in->p += n;
  return 0;
}

static PyObject *conv__value(struct conv__in *in, int depth);

static PyObject *conv__list(struct conv__in *in, uint64_t n, int depth) {
  PyObject *l, *item;
  uint64_t i;

  if (n > (uint64_t)(in->end - in->p)) {
    conv__truncated();
    return NULL;
  }
  if (conv__enter(depth, 0))
    return NULL;
  l = PyList_New((Py_ssize_t)n);
  if (l != NULL) {
    for (i = 0; i < n; i++) {
      item = conv__value(in, depth + 1);
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

/* A map key must be hashable: an array or a map is refused before it is
 * built. */
static int conv__key_ok(const struct conv__in *in) {
  unsigned char b;
  if (in->p >= in->end)
    return 0; /* truncated: conv__value says so */
  b = *in->p;
  if ((b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd || (b & 0xf0) == 0x80 ||
      b == 0xde || b == 0xdf) {
    PyErr_Format(PyExc_TypeError,
                 "unhashable msgpack map key: %s (a dict key must be "
                 "hashable)",
                 (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd ? "array"
                                                               : "map");
    return -1;
  }
  return 0;
}

static PyObject *conv__dict(struct conv__in *in, uint64_t n, int depth) {
  PyObject *d, *k, *v;
  uint64_t i;
  int r;

  if (n > (uint64_t)(in->end - in->p) / 2) {
    conv__truncated();
    return NULL;
  }
  if (conv__enter(depth, 0))
    return NULL;
  d = PyDict_New();
  for (i = 0; d != NULL && i < n; i++) {
    if (conv__key_ok(in)) {
      Py_CLEAR(d);
      break;
    }
    k = conv__value(in, depth + 1);
    if (k == NULL) {
      Py_CLEAR(d);
      break;
    }
    v = conv__value(in, depth + 1);
    if (v == NULL) {
      Py_DECREF(k);
      Py_CLEAR(d);
      break;
    }
    r = PyDict_SetItem(d, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
    if (r < 0)
      Py_CLEAR(d);
  }
  Py_LeaveRecursiveCall();
  return d;
}

/* The body of a str, bin or ext of `n` bytes. */
static const char *conv__body(struct conv__in *in, uint64_t n) {
  const char *p;
  if (n > (uint64_t)(in->end - in->p)) {
    conv__truncated();
    return NULL;
  }
  p = (const char *)in->p;
  in->p += n;
  return p;
}

static PyObject *conv__str(struct conv__in *in, uint64_t n) {
  const char *p = conv__body(in, n);
  return p ? PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, NULL) : NULL;
}

static PyObject *conv__bin(struct conv__in *in, uint64_t n) {
  const char *p = conv__body(in, n);
  return p ? PyBytes_FromStringAndSize(p, (Py_ssize_t)n) : NULL;
}

/* ext: the type byte follows the length (fixext: the length is implied). */
static PyObject *conv__ext(struct conv__in *in, uint64_t n) {
  int8_t type;
  if (conv__need(in, 1))
    return NULL;
  type = (int8_t)*in->p++;
  if (conv__body(in, n) == NULL)
    return NULL;
  PyErr_Format(PyExc_TypeError, "msgpack ext type %d is not supported",
               (int)type);
  return NULL;
}

static PyObject *conv__value(struct conv__in *in, int depth) {
  unsigned char b;
  uint64_t v;
  union {
    uint32_t u;
    float f;
  } f32;
  union {
    uint64_t u;
    double d;
  } f64;

  if (conv__need(in, 1))
    return NULL;
  b = *in->p++;
  if (b <= 0x7f)
    return PyLong_FromLong(b);
  if (b >= 0xe0)
    return PyLong_FromLong((long)(int8_t)b);
  if ((b & 0xe0) == 0xa0)
    return conv__str(in, b & 0x1f);
  if ((b & 0xf0) == 0x90)
    return conv__list(in, b & 0x0f, depth);
  if ((b & 0xf0) == 0x80)
    return conv__dict(in, b & 0x0f, depth);
  switch (b) {
  case 0xc0:
    Py_RETURN_NONE;
  case 0xc2:
    Py_RETURN_FALSE;
  case 0xc3:
    Py_RETURN_TRUE;
  case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint 8..64 */
    if (conv__field(in, 1 << (b - 0xcc), &v))
      return NULL;
    return PyLong_FromUnsignedLongLong((unsigned long long)v);
  case 0xd0: /* int 8..64 */
    if (conv__field(in, 1, &v))
      return NULL;
    return PyLong_FromLong((long)(int8_t)v);
  case 0xd1:
    if (conv__field(in, 2, &v))
      return NULL;
    return PyLong_FromLong((long)(int16_t)v);
  case 0xd2:
    if (conv__field(in, 4, &v))
      return NULL;
    return PyLong_FromLong((long)(int32_t)v);
  case 0xd3:
    if (conv__field(in, 8, &v))
      return NULL;
    return PyLong_FromLongLong((long long)(int64_t)v);
  case 0xca:
    if (conv__field(in, 4, &v))
      return NULL;
    f32.u = (uint32_t)v;
    return PyFloat_FromDouble((double)f32.f);
  case 0xcb:
    if (conv__field(in, 8, &v))
      return NULL;
    f64.u = v;
    return PyFloat_FromDouble(f64.d);
  case 0xd9: case 0xda: case 0xdb: /* str 8..32 */
    if (conv__field(in, 1 << (b - 0xd9), &v))
      return NULL;
    return conv__str(in, v);
  case 0xc4: case 0xc5: case 0xc6: /* bin 8..32 */
    if (conv__field(in, 1 << (b - 0xc4), &v))
      return NULL;
    return conv__bin(in, v);
  case 0xdc: case 0xdd: /* array 16, 32 */
    if (conv__field(in, b == 0xdc ? 2 : 4, &v))
      return NULL;
    return conv__list(in, v, depth);
  case 0xde: case 0xdf: /* map 16, 32 */
    if (conv__field(in, b == 0xde ? 2 : 4, &v))
      return NULL;
    return conv__dict(in, v, depth);
  case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext 1..16 */
    return conv__ext(in, (uint64_t)1 << (b - 0xd4));
  case 0xc7: case 0xc8: case 0xc9: /* ext 8..32 */
    if (conv__field(in, 1 << (b - 0xc7), &v))
      return NULL;
    return conv__ext(in, v);
  default: /* 0xc1: never used */
    PyErr_Format(PyExc_ValueError,
                 "malformed msgpack data: byte 0x%02x starts no value", b);
    return NULL;
  }
}

PyObject *actor__py_unpack(const char *data, size_t len) {
  struct conv__in in;
  PyObject *r;

  if (len == 0) {
    PyErr_SetString(PyExc_ValueError, "malformed msgpack data: empty");
    return NULL;
  }
  in.p = (const unsigned char *)data;
  in.end = in.p + len;
  r = conv__value(&in, 0);
  if (r != NULL && in.p != in.end) {
    PyErr_Format(PyExc_ValueError,
                 "malformed msgpack data: %zu trailing bytes after the value",
                 (size_t)(in.end - in.p));
    Py_CLEAR(r);
  }
  return r;
}
