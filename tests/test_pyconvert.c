/* The Python layer's msgpack <-> Python conversion (src/py/convert.c):
 * round trips, the exact bytes produced, every error and its message,
 * the protocol's nesting limit (512), reference leaks, and isolated
 * sub-interpreters (one alone, and one on another thread while the main
 * interpreter converts too).
 *
 * The group setup starts CPython (an isolated config, no signal handlers)
 * and the main thread holds the GIL for the whole run; the group teardown
 * finalizes it. */
#define _GNU_SOURCE
#include "py/py.h" /* Python.h first */
#include "proto/codec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* msgpack-c's MSGPACK_EMBED_STACK_SIZE (unpack_define.h, not included by
 * msgpack.h): the deepest nesting its unpacker accepts.  The tests below
 * check the library really has this limit. */
#define MSGPACK_C_MAX_DEPTH 32

/* ------------------------------------------------------------------------ */
/* Tools.  They report failures through (err, n) instead of failing the     */
/* test, so that they can also run inside a sub-interpreter or on another   */
/* thread, where cmocka's longjmp must not happen.                          */
/* ------------------------------------------------------------------------ */

#define ERRLEN 1024

/* A namespace with `same(a, b)`: equal AND of the same types all the way
 * down (so True != 1, a tuple != a list, dict key order matters), NaN equal
 * to NaN. */
static const char SAME_PY[] =
    "def same(a, b):\n"
    "    if type(a) is not type(b):\n"
    "        return False\n"
    "    if type(a) is list:\n"
    "        return len(a) == len(b) and all(map(same, a, b))\n"
    "    if type(a) is dict:\n"
    "        return (len(a) == len(b) and all(map(same, a, b))\n"
    "                and all(same(a[k], b[k]) for k in a))\n"
    "    if type(a) is float and a != a:\n"
    "        return b != b\n"
    "    return a == b\n";

static PyObject *ns_new(void) {
  PyObject *ns = PyDict_New(), *name, *r;
  int bad;
  if (ns == NULL)
    return NULL;
  name = PyUnicode_FromString("testmod");
  bad = name == NULL || PyDict_SetItemString(ns, "__name__", name) < 0;
  Py_XDECREF(name);
  if (bad) {
    Py_DECREF(ns);
    return NULL;
  }
  r = PyRun_String(SAME_PY, Py_file_input, ns, ns);
  if (r == NULL) {
    Py_DECREF(ns);
    return NULL;
  }
  Py_DECREF(r);
  return ns;
}

/* The message of the pending exception, "Type: message", then clear it. */
static void take_exc(char *out, size_t n) {
  PyObject *e = PyErr_GetRaisedException();
  PyObject *s = e ? PyObject_Str(e) : NULL;
  const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
  snprintf(out, n, "%s: %s", e ? Py_TYPE(e)->tp_name : "(no exception)",
           msg ? msg : "(unprintable)");
  Py_XDECREF(s);
  Py_XDECREF(e);
  PyErr_Clear();
}

static PyObject *ev(PyObject *ns, const char *expr, char *err, size_t n) {
  PyObject *r = PyRun_String(expr, Py_eval_input, ns, ns);
  if (r == NULL) {
    char m[512];
    take_exc(m, sizeof(m));
    snprintf(err, n, "evaluating %s: %s", expr, m);
  }
  return r;
}

static int exec_code(PyObject *ns, const char *code, char *err, size_t n) {
  PyObject *r = PyRun_String(code, Py_file_input, ns, ns);
  if (r == NULL) {
    char m[512];
    take_exc(m, sizeof(m));
    snprintf(err, n, "running %s: %s", code, m);
    return -1;
  }
  Py_DECREF(r);
  return 0;
}

static void pk_init(msgpack_sbuffer *sb, msgpack_packer *pk) {
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
}

/* Pack `o` into sb (initialised here; destroy it after). */
static int pack_obj(PyObject *o, msgpack_sbuffer *sb) {
  msgpack_packer pk;
  pk_init(sb, &pk);
  return actor__py_pack(&pk, o);
}

static int is_same(PyObject *ns, PyObject *a, PyObject *b) {
  PyObject *f = PyDict_GetItemString(ns, "same"); /* borrowed */
  PyObject *r = f ? PyObject_CallFunctionObjArgs(f, a, b, NULL) : NULL;
  int ok = r != NULL && PyObject_IsTrue(r) == 1;
  Py_XDECREF(r);
  PyErr_Clear();
  return ok;
}

static void repr_into(PyObject *o, char *out, size_t n) {
  PyObject *r = PyObject_Repr(o);
  const char *s = r ? PyUnicode_AsUTF8(r) : NULL;
  snprintf(out, n, "%.300s", s ? s : "(no repr)");
  Py_XDECREF(r);
  PyErr_Clear();
}

/* Pack eval(expr), unpack it, and compare with eval(want) (or eval(expr)
 * when want is NULL) by same().  0, or -1 with the reason in err. */
static int rt_check(PyObject *ns, const char *expr, const char *want, char *err,
                    size_t n) {
  PyObject *o, *w = NULL, *back = NULL;
  msgpack_sbuffer sb;
  int r = -1;
  char m[512], a[320], b[320];

  o = ev(ns, expr, err, n);
  if (o == NULL)
    return -1;
  if (pack_obj(o, &sb) != 0) {
    take_exc(m, sizeof(m));
    snprintf(err, n, "packing %s failed: %s", expr, m);
    goto out;
  }
  back = actor__py_unpack(sb.data, sb.size);
  if (back == NULL) {
    take_exc(m, sizeof(m));
    snprintf(err, n, "unpacking %s failed: %s", expr, m);
    goto out;
  }
  w = want ? ev(ns, want, err, n) : Py_NewRef(o);
  if (w == NULL)
    goto out;
  if (!is_same(ns, back, w)) {
    repr_into(back, a, sizeof(a));
    repr_into(w, b, sizeof(b));
    snprintf(err, n, "%s came back as %s, expected %s", expr, a, b);
    goto out;
  }
  r = 0;
out:
  msgpack_sbuffer_destroy(&sb);
  Py_XDECREF(o);
  Py_XDECREF(w);
  Py_XDECREF(back);
  return r;
}

/* The pending exception (which `what` raised) must be an instance of
 * `type` with `needle` in its message; clears it.  0 or -1. */
static int exc_is(const char *what, PyObject *type, const char *needle,
                  char *err, size_t n) {
  char m[512];
  int match;
  if (!PyErr_Occurred()) {
    snprintf(err, n, "%s: no exception set", what);
    return -1;
  }
  match = PyErr_ExceptionMatches(type);
  take_exc(m, sizeof(m));
  if (!match) {
    snprintf(err, n, "%s raised %s, expected %s", what, m,
             ((PyTypeObject *)type)->tp_name);
    return -1;
  }
  if (needle != NULL && strstr(m, needle) == NULL) {
    snprintf(err, n, "%s raised '%s', without '%s'", what, m, needle);
    return -1;
  }
  return 0;
}

/* Packing eval(expr) must fail with `type` and `needle` in the message. */
static int pack_fails(PyObject *ns, const char *expr, PyObject *type,
                      const char *needle, char *err, size_t n) {
  PyObject *o = ev(ns, expr, err, n);
  msgpack_sbuffer sb;
  int r;
  if (o == NULL)
    return -1;
  if (pack_obj(o, &sb) == 0) {
    snprintf(err, n, "packing %s succeeded", expr);
    r = -1;
  } else {
    r = exc_is(expr, type, needle, err, n);
  }
  msgpack_sbuffer_destroy(&sb);
  Py_DECREF(o);
  return r;
}

/* Unpacking [p, p+len) must fail with `type` and `needle`. */
static int unpack_fails(const char *p, size_t len, PyObject *type,
                        const char *needle, char *err, size_t n) {
  PyObject *o = actor__py_unpack(p, len);
  char what[64], a[320];
  snprintf(what, sizeof(what), "unpacking %zu bytes", len);
  if (o != NULL) {
    repr_into(o, a, sizeof(a));
    snprintf(err, n, "%s succeeded: %s", what, a);
    Py_DECREF(o);
    return -1;
  }
  return exc_is(what, type, needle, err, n);
}

/* Fail the test with err when `call` (which fills err) returns nonzero. */
#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != 0)                                                           \
      fail_msg("%s", err);                                                     \
  } while (0)
#define RT(expr, want) CHECK(rt_check(ns, expr, want, err, sizeof(err)))
#define PACK_FAILS(expr, type, needle)                                         \
  CHECK(pack_fails(ns, expr, type, needle, err, sizeof(err)))
#define UNPACK_FAILS(lit, type, needle)                                        \
  CHECK(unpack_fails(lit, sizeof(lit) - 1, type, needle, err, sizeof(err)))

static PyObject *ns_or_fail(void) {
  PyObject *ns = ns_new();
  if (ns == NULL) {
    char m[512];
    take_exc(m, sizeof(m));
    fail_msg("namespace: %s", m);
  }
  return ns;
}

static void assert_bytes(const msgpack_sbuffer *got, const char *want,
                         size_t n, const char *what) {
  size_t i;
  if (got->size == n && memcmp(got->data, want, n) == 0)
    return;
  for (i = 0; i < got->size && i < 40; i++)
    print_message("%02x ", (unsigned char)got->data[i]);
  print_message("(got)\n");
  for (i = 0; i < n && i < 40; i++)
    print_message("%02x ", (unsigned char)want[i]);
  print_message("(want)\n");
  fail_msg("%s: encoding differs (%zu bytes, want %zu)", what, got->size, n);
}

/* Pack eval(expr) and compare with the bytes `want`. */
static void pack_equals(PyObject *ns, const char *expr, const char *want,
                        size_t n) {
  char err[ERRLEN];
  PyObject *o = ev(ns, expr, err, sizeof(err));
  msgpack_sbuffer sb;
  if (o == NULL)
    fail_msg("%s", err);
  if (pack_obj(o, &sb) != 0) {
    take_exc(err, sizeof(err));
    fail_msg("packing %s: %s", expr, err);
  }
  assert_bytes(&sb, want, n, expr);
  msgpack_sbuffer_destroy(&sb);
  Py_DECREF(o);
}
#define PACK_EQUALS(expr, lit) pack_equals(ns, expr, lit, sizeof(lit) - 1)

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */
/* ------------------------------------------------------------------------ */

static void pyconvert_roundtrip_scalars(void **state) {
  static const char *const exprs[] = {
      "None", "True", "False", "0", "1", "-1", "127", "128", "-32", "-33",
      "255", "256", "65535", "65536", "2**31", "-2**31-1", "2**32",
      "2**63-1", "-2**63", "2**63", "2**64-1", "1.5", "-0.0", "1e308",
      "5e-324", "float('inf')", "float('-inf')", "float('nan')", "''",
      "'héllo ✓'", "'\\U0001F600 \\x00 nul'", "'x' * 31", "'x' * 32",
      "'y' * 255", "'y' * 256", "'é' * 40000", "b''", "b'\\x00\\xff'",
      "bytes(range(256)) * 300",
  };
  char err[ERRLEN];
  PyObject *ns = ns_or_fail(), *o;
  msgpack_sbuffer sb;
  size_t i;
  (void)state;

  for (i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++)
    RT(exprs[i], NULL);
  /* bytearray goes as bin and comes back as bytes. */
  RT("bytearray(b'ab\\x00')", "b'ab\\x00'");
  RT("bytearray()", "b''");

  /* The singletons come back as themselves. */
  o = actor__py_unpack("\xc3", 1);
  assert_ptr_equal(o, Py_True);
  Py_DECREF(o);
  o = actor__py_unpack("\xc2", 1);
  assert_ptr_equal(o, Py_False);
  Py_DECREF(o);
  o = actor__py_unpack("\xc0", 1);
  assert_ptr_equal(o, Py_None);
  Py_DECREF(o);

  /* float32 from another encoder reads as a float. */
  o = actor__py_unpack("\xca\x3f\xc0\x00\x00", 5); /* 1.5f */
  assert_non_null(o);
  assert_true(PyFloat_CheckExact(o));
  assert_true(PyFloat_AsDouble(o) == 1.5);
  Py_DECREF(o);
  /* An int sent in a signed encoding but non-negative is still an int. */
  o = actor__py_unpack("\xd0\x05", 2);
  assert_non_null(o);
  assert_true(PyLong_CheckExact(o));
  assert_int_equal(PyLong_AsLong(o), 5);
  Py_DECREF(o);

  /* A str made of a lone surrogate cannot be UTF-8: the codec's error. */
  PACK_FAILS("'a\\ud800b'", PyExc_UnicodeEncodeError, "surrogate");
  o = ev(ns, "'ok'", err, sizeof(err));
  assert_int_equal(pack_obj(o, &sb), 0); /* and nothing left pending */
  assert_null(PyErr_Occurred());
  msgpack_sbuffer_destroy(&sb);
  Py_DECREF(o);
  Py_DECREF(ns);
}

static void pyconvert_roundtrip_containers(void **state) {
  char err[ERRLEN];
  PyObject *ns = ns_or_fail();
  (void)state;

  RT("[]", NULL);
  RT("{}", NULL);
  RT("()", "[]");
  RT("[None, True, 1, -1, 1.5, 's', b'b']", NULL);
  RT("[1, [2, [3, [4, []]]], (5, (6,)), {}]",
     "[1, [2, [3, [4, []]]], [5, [6]], {}]");
  /* Mixed keys, in insertion order (same() compares the order too). */
  RT("{'a': 1, 2: 'b', None: [1, (2,)], b'k': {'x': {}}, 2.5: True,"
     " -7: b'', False: None, 2**64-1: -2**63, 'é✓': 'v'}",
     "{'a': 1, 2: 'b', None: [1, [2]], b'k': {'x': {}}, 2.5: True,"
     " -7: b'', False: None, 2**64-1: -2**63, 'é✓': 'v'}");
  RT("{'z': 1, 'a': 2, 'm': 3}", NULL);
  RT("[{'k': [{'k': [{}]}]}] * 3", NULL);
  /* Lengths that need the 16- and 32-bit headers. */
  RT("list(range(15))", NULL);
  RT("list(range(16))", NULL);
  RT("list(range(70000))", NULL);
  RT("tuple(range(70000))", "list(range(70000))");
  RT("{i: str(i) for i in range(15)}", NULL);
  RT("{i: str(i) for i in range(16)}", NULL);
  RT("{str(i): [i] for i in range(70000)}", NULL);
  /* The same object twice is fine (only cycles are not). */
  RT("(lambda x: [x, x, {'a': x}])([1, 2])", "[[1, 2], [1, 2], {'a': [1, 2]}]");
  Py_DECREF(ns);
}

/* Subclasses are packed as their base type, from their storage. */
static void pyconvert_subclasses_packed_as_base(void **state) {
  char err[ERRLEN];
  PyObject *ns = ns_or_fail();
  (void)state;

  CHECK(exec_code(ns,
                  "import enum, collections\n"
                  "class Color(enum.IntEnum):\n"
                  "    RED = 7\n"
                  "class Name(str):\n"
                  "    def __str__(self): return 'not this'\n"
                  "class L(list):\n"
                  "    def __iter__(self): return iter([])\n"
                  "class D(dict):\n"
                  "    def items(self): return []\n"
                  "class F(float): pass\n"
                  "class B(bytes): pass\n"
                  "class Big(int): pass\n"
                  "P = collections.namedtuple('P', 'x y')\n",
                  err, sizeof(err)));
  RT("Color.RED", "7");
  RT("Name('abc')", "'abc'");
  RT("L([1, 2])", "[1, 2]");
  RT("D(a=1)", "{'a': 1}");
  RT("F(2.5)", "2.5");
  RT("B(b'xy')", "b'xy'");
  RT("Big(2**64-1)", "2**64-1");
  RT("P(1, [2])", "[1, [2]]");
  RT("collections.OrderedDict([('b', 1), ('a', 2)])", "{'b': 1, 'a': 2}");
  RT("collections.defaultdict(list, {'k': [1]})", "{'k': [1]}");
  PACK_FAILS("Big(2**64)", PyExc_OverflowError, "64-bit");
  Py_DECREF(ns);
}

static void pyconvert_int_out_of_range_is_overflow_error(void **state) {
  char err[ERRLEN];
  PyObject *ns = ns_or_fail();
  (void)state;

  PACK_FAILS("2**64", PyExc_OverflowError,
             "int too large to convert to msgpack (64-bit limit): 65 bits");
  PACK_FAILS("-2**63-1", PyExc_OverflowError,
             "int too large to convert to msgpack (64-bit limit): 65 bits");
  PACK_FAILS("10**30", PyExc_OverflowError, "64-bit limit): 100 bits");
  PACK_FAILS("-10**30", PyExc_OverflowError, "64-bit limit): 101 bits");
  PACK_FAILS("[1, {'k': [2**200]}]", PyExc_OverflowError, "201 bits");
  /* The limits themselves are fine. */
  RT("[2**64-1, -2**63, 2**63, 2**63-1]", NULL);
  Py_DECREF(ns);
}

static void pyconvert_unsupported_type_names_it(void **state) {
  char err[ERRLEN];
  PyObject *ns = ns_or_fail();
  (void)state;

  CHECK(exec_code(ns,
                  "class Custom:\n"
                  "    pass\n"
                  "class Outer:\n"
                  "    class Inner:\n"
                  "        pass\n",
                  err, sizeof(err)));
  PACK_FAILS("{1, 2}", PyExc_TypeError, "cannot convert set to msgpack");
  PACK_FAILS("1j", PyExc_TypeError, "cannot convert complex to msgpack");
  PACK_FAILS("object()", PyExc_TypeError, "cannot convert object to msgpack");
  PACK_FAILS("Custom()", PyExc_TypeError,
             "cannot convert testmod.Custom to msgpack");
  PACK_FAILS("Outer.Inner()", PyExc_TypeError,
             "cannot convert testmod.Outer.Inner to msgpack");
  PACK_FAILS("Custom", PyExc_TypeError, "cannot convert type to msgpack");
  PACK_FAILS("len", PyExc_TypeError,
             "cannot convert builtin_function_or_method to msgpack");
  /* Deep inside containers, as a value and as a key. */
  PACK_FAILS("[1, {'a': (2, frozenset())}]", PyExc_TypeError,
             "cannot convert frozenset to msgpack");
  PACK_FAILS("{'a': 1, Custom(): 2}", PyExc_TypeError, "testmod.Custom");
  PACK_FAILS("memoryview(b'x')", PyExc_TypeError, "memoryview");
  Py_DECREF(ns);
}

static void pyconvert_self_reference_raises(void **state) {
  static const char *const cyclic[] = {"l", "d", "t", "[0, {'x': l}]"};
  char err[ERRLEN], m[512];
  PyObject *ns = ns_or_fail(), *l, *o;
  msgpack_sbuffer sb;
  Py_ssize_t before;
  size_t i;
  (void)state;

  CHECK(exec_code(ns,
                  "l = []\n"
                  "l.append(l)\n"
                  "d = {}\n"
                  "d['d'] = d\n"
                  "t = ([],)\n"
                  "t[0].append(t)\n",
                  err, sizeof(err)));
  l = PyDict_GetItemString(ns, "l"); /* borrowed */
  before = Py_REFCNT(l);
  for (i = 0; i < sizeof(cyclic) / sizeof(cyclic[0]); i++) {
    o = ev(ns, cyclic[i], err, sizeof(err));
    if (o == NULL)
      fail_msg("%s", err);
    assert_int_not_equal(pack_obj(o, &sb), 0);
    if (PyErr_ExceptionMatches(PyExc_RecursionError)) {
      take_exc(m, sizeof(m));
    } else {
      CHECK(exc_is(cyclic[i], PyExc_ValueError, "nested too deeply", err,
                   sizeof(err)));
    }
    msgpack_sbuffer_destroy(&sb);
    Py_DECREF(o);
  }
  assert_int_equal(Py_REFCNT(l), before);
  Py_DECREF(ns);
}

/* ------------------------------------------------------------------------ */
/* Rejected input                                                           */
/* ------------------------------------------------------------------------ */

static void pyconvert_malformed_and_trailing_rejected(void **state) {
  char err[ERRLEN];
  (void)state;

  /* Empty, and truncated in every way. */
  CHECK(unpack_fails(NULL, 0, PyExc_ValueError, "malformed msgpack data",
                     err, sizeof(err)));
  CHECK(unpack_fails("", 0, PyExc_ValueError, "empty", err, sizeof(err)));
  UNPACK_FAILS("\x92\x01", PyExc_ValueError, "malformed msgpack data");
  UNPACK_FAILS("\xa5" "ab", PyExc_ValueError, "truncated");
  UNPACK_FAILS("\xcd\x01", PyExc_ValueError, "truncated");
  UNPACK_FAILS("\xcb\x00\x00", PyExc_ValueError, "truncated");
  UNPACK_FAILS("\xdb\xff\xff\xff\xff" "abc", PyExc_ValueError, "truncated");
  UNPACK_FAILS("\x81\xa1" "k", PyExc_ValueError, "truncated");
  /* 0xc1 is never used. */
  UNPACK_FAILS("\xc1", PyExc_ValueError, "malformed msgpack data");
  UNPACK_FAILS("\x93\x01\xc1\x02", PyExc_ValueError, "malformed msgpack data");
  /* Trailing bytes after one whole value. */
  UNPACK_FAILS("\x01\x02", PyExc_ValueError, "1 trailing bytes");
  UNPACK_FAILS("\xc0\xc0\xc0", PyExc_ValueError, "2 trailing bytes");
  UNPACK_FAILS("\x91\x01\xc1", PyExc_ValueError, "trailing");
  /* Invalid UTF-8 in a str: UnicodeDecodeError, itself a ValueError. */
  UNPACK_FAILS("\xa2\xff\xfe", PyExc_UnicodeDecodeError, "utf-8");
  UNPACK_FAILS("\x92\xa1" "a" "\xa1\x80", PyExc_ValueError, "utf-8");
  UNPACK_FAILS("\x81\xa1\xc3\x01", PyExc_UnicodeDecodeError, "utf-8");
  /* A header announcing 2**32-1 elements with nothing behind it.  msgpack-c
   * would reserve their space (~100 GB) before reading them; the count is
   * checked against the bytes first (actor__msgpack_sane_first), so it is
   * refused without allocating -- also under AddressSanitizer. */
  UNPACK_FAILS("\xdd\xff\xff\xff\xff", PyExc_ValueError, "truncated");
  UNPACK_FAILS("\xdf\xff\xff\xff\xff", PyExc_ValueError, "truncated");
}

static void pyconvert_ext_and_unhashable_key_rejected(void **state) {
  char err[ERRLEN];
  PyObject *ns = ns_or_fail(), *o;
  msgpack_sbuffer sb;
  (void)state;

  UNPACK_FAILS("\xd4\x05\x00", PyExc_TypeError,
               "msgpack ext type 5 is not supported");
  /* The timestamp extension (-1) is not special. */
  UNPACK_FAILS("\xd6\xff\x00\x00\x00\x01", PyExc_TypeError,
               "msgpack ext type -1 is not supported");
  UNPACK_FAILS("\xc7\x00\x7f", PyExc_TypeError, "ext type 127");
  /* Deep inside, after other values were built (they are freed). */
  UNPACK_FAILS("\x93\xa1" "a" "\x91\x01\x92\x02\xd4\x07\x00", PyExc_TypeError,
               "ext type 7");
  UNPACK_FAILS("\x82\xa1" "a" "\x01\xa1" "b" "\xd4\x01\x00", PyExc_TypeError,
               "ext type 1");
  UNPACK_FAILS("\x81\xd4\x02\x00\x01", PyExc_TypeError, "ext type 2");

  /* Map keys that are arrays or maps cannot be dict keys. */
  UNPACK_FAILS("\x81\x91\x01\x02", PyExc_TypeError,
               "unhashable msgpack map key: array");
  UNPACK_FAILS("\x81\x80\x01", PyExc_TypeError,
               "unhashable msgpack map key: map");
  UNPACK_FAILS("\x92\x81\xa1" "a" "\x01\x82\xa1" "b" "\x02\x90\x03",
               PyExc_TypeError, "unhashable");
  /* A dict with a tuple key packs (as an array key: valid msgpack, which a
   * C peer can read) but does not come back. */
  o = ev(ns, "{(1, 2): 'x'}", err, sizeof(err));
  assert_non_null(o);
  assert_int_equal(pack_obj(o, &sb), 0);
  CHECK(unpack_fails(sb.data, sb.size, PyExc_TypeError, "unhashable", err,
                     sizeof(err)));
  msgpack_sbuffer_destroy(&sb);
  Py_DECREF(o);
  /* Keys equal in Python collapse: the last value wins. */
  RT("{1: 'a', 1.0: 'b', 'k': 0}", "{1: 'b', 'k': 0}");
  o = actor__py_unpack("\x82\x01\xa1" "a" "\xc3\xa1" "b", 7); /* {1:a, true:b} */
  assert_non_null(o);
  assert_int_equal(PyDict_GET_SIZE(o), 1);
  Py_DECREF(o);
  Py_DECREF(ns);
}

/* k nested arrays: [[...[]...]] (k = 1 is []). */
static char *nested_arrays(size_t k) {
  char *p = malloc(k);
  assert_non_null(p);
  memset(p, 0x91, k - 1);
  p[k - 1] = (char)0x90;
  return p;
}

/* k nested maps: {"a": {"a": ... {} ...}} */
static char *nested_maps(size_t k, size_t *len) {
  char *p = malloc(3 * k);
  size_t i;
  assert_non_null(p);
  for (i = 0; i + 1 < k; i++) {
    p[3 * i] = (char)0x81;
    p[3 * i + 1] = (char)0xa1;
    p[3 * i + 2] = 'a';
  }
  p[3 * (k - 1)] = (char)0x80;
  *len = 3 * (k - 1) + 1;
  return p;
}

static msgpack_unpack_return msgpack_c_verdict(const char *p, size_t len) {
  msgpack_unpacked u;
  size_t off = 0;
  msgpack_unpack_return r;
  msgpack_unpacked_init(&u);
  r = msgpack_unpack_next(&u, p, len, &off);
  msgpack_unpacked_destroy(&u);
  return r;
}

/* The depth of a chain of single-element lists ending in []. */
static int list_depth(PyObject *o) {
  int d = 0;
  while (PyList_CheckExact(o)) {
    d++;
    if (PyList_GET_SIZE(o) == 0)
      break;
    o = PyList_GET_ITEM(o, 0);
  }
  return d;
}

/* The protocol's nesting limit, ACTOR__MAX_DEPTH (512), holds both ways:
 * 512 levels convert, 513 are a ValueError naming the limit.  msgpack-c's
 * own unpacker stops at 32 (checked here, so that the test shows why the
 * converter does not use it). */
static void pyconvert_512_levels_convert_both_ways_513_are_refused(
    void **state) {
  const size_t lim = ACTOR__MAX_DEPTH;
  char err[ERRLEN], *p;
  PyObject *ns = ns_or_fail(), *o, *f;
  msgpack_sbuffer sb;
  size_t len;
  (void)state;

  assert_int_equal(lim, 512);
  /* msgpack-c alone would refuse long before. */
  p = nested_arrays(MSGPACK_C_MAX_DEPTH + 1);
  assert_int_equal(msgpack_c_verdict(p, MSGPACK_C_MAX_DEPTH + 1),
                   MSGPACK_UNPACK_NOMEM_ERROR);
  free(p);

  /* msgpack -> Python: 512 arrays, 512 maps. */
  p = nested_arrays(lim);
  o = actor__py_unpack(p, lim);
  if (o == NULL) {
    take_exc(err, sizeof(err));
    fail_msg("512 nested arrays: %s", err);
  }
  assert_int_equal(list_depth(o), (int)lim);
  Py_DECREF(o);
  free(p);
  p = nested_maps(lim, &len);
  o = actor__py_unpack(p, len);
  assert_non_null(o);
  Py_DECREF(o);
  free(p);

  /* 513: refused, naming the limit. */
  p = nested_arrays(lim + 1);
  CHECK(unpack_fails(p, lim + 1, PyExc_ValueError,
                     "msgpack value nested deeper than 512 levels", err,
                     sizeof(err)));
  free(p);
  p = nested_maps(lim + 1, &len);
  CHECK(unpack_fails(p, len, PyExc_ValueError, "nested deeper than 512", err,
                     sizeof(err)));
  free(p);
  /* Far deeper: the same clean ValueError, long before the C stack. */
  p = nested_arrays(100000);
  CHECK(unpack_fails(p, 100000, PyExc_ValueError, "nested deeper than 512",
                     err, sizeof(err)));
  free(p);

  /* Python -> msgpack: the same depth. */
  CHECK(exec_code(ns,
                  "def nest(k):\n"
                  "    x = []\n"
                  "    for _ in range(k - 1):\n"
                  "        x = [x]\n"
                  "    return x\n"
                  "def nestd(k):\n"
                  "    x = {}\n"
                  "    for _ in range(k - 1):\n"
                  "        x = {'a': x}\n"
                  "    return x\n",
                  err, sizeof(err)));
  f = ev(ns, "nest(512)", err, sizeof(err));
  assert_non_null(f);
  assert_int_equal(pack_obj(f, &sb), 0);
  p = nested_arrays(lim);
  assert_bytes(&sb, p, lim, "nest(512)");
  free(p);
  msgpack_sbuffer_destroy(&sb);
  Py_DECREF(f);
  /* same() takes two Python frames per dict level: more than the default
   * recursion limit of 1000 for 512 levels. */
  CHECK(exec_code(ns, "import sys\nold_limit = sys.getrecursionlimit()\n"
                      "sys.setrecursionlimit(4000)\n",
                  err, sizeof(err)));
  RT("nest(512)", NULL);
  RT("nestd(512)", NULL);
  RT("[nest(511), {'k': nest(510)}, nestd(511)]", NULL);
  CHECK(exec_code(ns, "sys.setrecursionlimit(old_limit)\n", err,
                  sizeof(err)));
  PACK_FAILS("nest(513)", PyExc_ValueError,
             "value nested too deeply for msgpack (more than 512 levels");
  PACK_FAILS("nestd(513)", PyExc_ValueError, "512 levels, libactor's limit");
  PACK_FAILS("[1, {'k': nest(512)}]", PyExc_ValueError, "nested too deeply");
  PACK_FAILS("nest(100000)", PyExc_ValueError, "nested too deeply");
  Py_DECREF(ns);
}

/* ------------------------------------------------------------------------ */
/* The bytes                                                                */
/* ------------------------------------------------------------------------ */

static void pyconvert_matches_reference_encoding(void **state) {
  static const int64_t ints[] = {
      0,          1,           127,         128,         255,
      256,        65535,       65536,       4294967295LL, 4294967296LL,
      INT64_MAX,  -1,          -32,         -33,         -128,
      -129,       -32768,      -32769,      INT32_MIN,   (int64_t)INT32_MIN - 1,
      INT64_MIN,
  };
  static const uint64_t uints[] = {(uint64_t)INT64_MAX + 1, UINT64_MAX};
  char err[ERRLEN];
  PyObject *ns = ns_or_fail(), *o, *l;
  msgpack_sbuffer ref, got;
  msgpack_packer pk;
  size_t i, n;
  (void)state;

  /* [1, "a", nil, true, {"k": 2.5}] built by msgpack-c. */
  pk_init(&ref, &pk);
  msgpack_pack_array(&pk, 5);
  msgpack_pack_int64(&pk, 1);
  msgpack_pack_str_with_body(&pk, "a", 1);
  msgpack_pack_nil(&pk);
  msgpack_pack_true(&pk);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str_with_body(&pk, "k", 1);
  msgpack_pack_double(&pk, 2.5);
  o = ev(ns, "[1, 'a', None, True, {'k': 2.5}]", err, sizeof(err));
  assert_non_null(o);
  assert_int_equal(pack_obj(o, &got), 0);
  assert_bytes(&got, ref.data, ref.size, "[1, 'a', None, True, {'k': 2.5}]");
  /* ... which is this, per the msgpack spec. */
  {
    static const char spec[] = "\x95\x01\xa1" "a" "\xc0\xc3\x81\xa1" "k"
                               "\xcb\x40\x04\x00\x00\x00\x00\x00\x00";
    assert_bytes(&got, spec, sizeof(spec) - 1, "spec bytes");
  }
  msgpack_sbuffer_destroy(&got);
  msgpack_sbuffer_destroy(&ref);
  Py_DECREF(o);

  /* Every int encoding: the one msgpack-c picks. */
  n = sizeof(ints) / sizeof(ints[0]);
  l = PyList_New(0);
  pk_init(&ref, &pk);
  msgpack_pack_array(&pk, n + 2);
  for (i = 0; i < n; i++) {
    o = PyLong_FromLongLong(ints[i]);
    PyList_Append(l, o);
    Py_DECREF(o);
    msgpack_pack_int64(&pk, ints[i]);
  }
  for (i = 0; i < 2; i++) {
    o = PyLong_FromUnsignedLongLong(uints[i]);
    PyList_Append(l, o);
    Py_DECREF(o);
    msgpack_pack_uint64(&pk, uints[i]);
  }
  assert_int_equal(pack_obj(l, &got), 0);
  assert_bytes(&got, ref.data, ref.size, "ints");
  msgpack_sbuffer_destroy(&got);
  msgpack_sbuffer_destroy(&ref);
  Py_DECREF(l);

  /* A few spelled out: the smallest encoding each time. */
  PACK_EQUALS("0", "\x00");
  PACK_EQUALS("-1", "\xff");
  PACK_EQUALS("128", "\xcc\x80");
  PACK_EQUALS("-33", "\xd0\xdf");
  PACK_EQUALS("65536", "\xce\x00\x01\x00\x00");
  PACK_EQUALS("-2**63", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00");
  PACK_EQUALS("2**64-1", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
  PACK_EQUALS("b'\\x00\\xff'", "\xc4\x02\x00\xff");
  PACK_EQUALS("bytearray(b'z')", "\xc4\x01z");
  PACK_EQUALS("'x' * 32", "\xd9\x20xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
  PACK_EQUALS("'é'", "\xa2\xc3\xa9");
  PACK_EQUALS("(None,) * 16", "\xdc\x00\x10\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0"
                              "\xc0\xc0\xc0\xc0\xc0\xc0\xc0\xc0");
  PACK_EQUALS("{False: 1.0}", "\x81\xc2\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00");
  Py_DECREF(ns);
}

/* ------------------------------------------------------------------------ */
/* Leaks                                                                    */
/* ------------------------------------------------------------------------ */

static long call_long(const char *mod, const char *expr_fn) {
  PyObject *m = PyImport_ImportModule(mod), *r = NULL;
  long v = -1;
  if (m != NULL)
    r = PyObject_CallMethod(m, expr_fn, NULL);
  if (r != NULL)
    v = PyLong_Check(r) ? PyLong_AsLong(r) : (long)PyList_Size(r);
  Py_XDECREF(r);
  Py_XDECREF(m);
  if (v < 0) {
    char m2[512];
    take_exc(m2, sizeof(m2));
    fail_msg("%s.%s(): %s", mod, expr_fn, m2);
  }
  return v;
}

static void gc_collect(void) {
  PyObject *m = PyImport_ImportModule("gc"), *r;
  assert_non_null(m);
  r = PyObject_CallMethod(m, "collect", NULL);
  Py_XDECREF(r);
  Py_DECREF(m);
}

/* Bad inputs whose errors strike after some objects were built. */
static const struct {
  const char *p;
  size_t n;
} bad_inputs[] = {
#define BAD(lit) {lit, sizeof(lit) - 1}
    BAD("\x93\xa1" "a" "\x91\x01\x92\x02\xd4\x07\x00"),   /* ext, deep */
    BAD("\x82\xa1" "a" "\x91\x01\xa1" "b" "\xd4\x01\x00"), /* ext as value */
    BAD("\x82\xa1" "a" "\x01\x91\x01\x02"),                /* array key */
    BAD("\x92\x92\xa1" "x" "\xa2\xff\xfe\x01"),            /* bad UTF-8 */
    BAD("\x82\xa1" "a" "\x01\xa1" "b"),                    /* truncated */
    BAD("\x91\x01\x01"),                                   /* trailing */
#undef BAD
};

static void pyconvert_no_refleaks(void **state) {
  char err[ERRLEN];
  PyObject *ns = ns_or_fail(), *obj, *bad1, *bad2, *inner, *s, *big, *back;
  Py_ssize_t rc_obj, rc_inner, rc_s, rc_big;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  long blocks0, blocks1, objs0, objs1;
  int i, round;
  size_t j;
  (void)state;

  /* Shared, ordinary (not immortal) objects inside the structure: a leaked
   * reference to them during packing shows in their refcounts. */
  CHECK(exec_code(ns,
                  "s = 'shared ' + str(12345) + ' é'\n"
                  "big = int('1234567890123')\n"
                  "inner = [s, big, 1.5, b'xx' * 3, None, True]\n"
                  "obj = {'a': inner, 'b': [inner, (inner, {'c': inner})],\n"
                  "       s: big, big: [s, -big], 'l': list(range(40)),\n"
                  "       'bytes': bytearray(b'q' * 100), 'f': 2.5}\n"
                  "bad1 = [1, 's', {'a': [2, {3}]}]\n"
                  "bad2 = {'k': [inner, 2**70]}\n",
                  err, sizeof(err)));
  obj = PyDict_GetItemString(ns, "obj");
  inner = PyDict_GetItemString(ns, "inner");
  s = PyDict_GetItemString(ns, "s");
  big = PyDict_GetItemString(ns, "big");
  bad1 = PyDict_GetItemString(ns, "bad1");
  bad2 = PyDict_GetItemString(ns, "bad2");
  assert_true(obj && inner && s && big && bad1 && bad2);

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  for (round = 0; round < 2; round++) {
    /* Round 0 warms up (free lists, the UTF-8 cache of s); round 1
     * measures. */
    gc_collect();
    rc_obj = Py_REFCNT(obj);
    rc_inner = Py_REFCNT(inner);
    rc_s = Py_REFCNT(s);
    rc_big = Py_REFCNT(big);
    blocks0 = call_long("sys", "getallocatedblocks");
    objs0 = call_long("gc", "get_objects");
    for (i = 0; i < 10000; i++) {
      msgpack_sbuffer_clear(&sb);
      if (actor__py_pack(&pk, obj) != 0) {
        take_exc(err, sizeof(err));
        fail_msg("pack: %s", err);
      }
      back = actor__py_unpack(sb.data, sb.size);
      if (back == NULL) {
        take_exc(err, sizeof(err));
        fail_msg("unpack: %s", err);
      }
      if (i == 0 && !is_same(ns, back, back))
        fail_msg("unpacked value is not equal to itself");
      Py_DECREF(back);
      /* The error paths. */
      msgpack_sbuffer_clear(&sb);
      assert_int_not_equal(actor__py_pack(&pk, bad1), 0);
      PyErr_Clear();
      msgpack_sbuffer_clear(&sb);
      assert_int_not_equal(actor__py_pack(&pk, bad2), 0);
      PyErr_Clear();
      for (j = 0; j < sizeof(bad_inputs) / sizeof(bad_inputs[0]); j++) {
        back = actor__py_unpack(bad_inputs[j].p, bad_inputs[j].n);
        if (back != NULL)
          fail_msg("bad input %zu was accepted", j);
        PyErr_Clear();
      }
    }
    gc_collect();
    blocks1 = call_long("sys", "getallocatedblocks");
    objs1 = call_long("gc", "get_objects");
    assert_int_equal(Py_REFCNT(obj), rc_obj);
    assert_int_equal(Py_REFCNT(inner), rc_inner);
    assert_int_equal(Py_REFCNT(s), rc_s);
    assert_int_equal(Py_REFCNT(big), rc_big);
    assert_true(Py_REFCNT(inner) < 100); /* i.e. not immortal */
    if (round == 1) {
      /* One leaked object per iteration would be >= 10000 of either. */
      if (blocks1 - blocks0 > 200 || objs1 - objs0 > 200)
        fail_msg("leak: allocated blocks %ld -> %ld, gc objects %ld -> %ld",
                 blocks0, blocks1, objs0, objs1);
      print_message("  blocks %ld -> %ld, gc objects %ld -> %ld\n", blocks0,
                    blocks1, objs0, objs1);
    }
  }
  msgpack_sbuffer_destroy(&sb);
  Py_DECREF(ns);
}

/* ------------------------------------------------------------------------ */
/* Isolated sub-interpreters                                                */
/* ------------------------------------------------------------------------ */

/* What runs inside a sub-interpreter (or anywhere): round trips and each
 * kind of error.  0, or -1 with the first failure in err. */
static int convert_suite(char *err, size_t n) {
  static const char *const rts[] = {
      "None", "True", "[0, -1, 2**63-1, -2**63, 2**64-1]", "1.5",
      "'héllo ✓'", "b'\\x00\\xff'",
      "{'a': [1, {'b': None}], 2: b'x', None: {'deep': [[[[]]]]}}",
  };
  PyObject *ns = ns_new();
  size_t i;
  int r = -1;

  if (ns == NULL) {
    take_exc(err, n);
    return -1;
  }
  for (i = 0; i < sizeof(rts) / sizeof(rts[0]); i++)
    if (rt_check(ns, rts[i], NULL, err, n))
      goto out;
  if (rt_check(ns, "(1, (2,), bytearray(b'z'))", "[1, [2], b'z']", err, n) ||
      exec_code(ns, "class Custom: pass\nl = []\nl.append(l)\n", err, n) ||
      pack_fails(ns, "{1}", PyExc_TypeError, "cannot convert set", err, n) ||
      pack_fails(ns, "Custom()", PyExc_TypeError, "testmod.Custom", err, n) ||
      pack_fails(ns, "2**64", PyExc_OverflowError, "64-bit", err, n) ||
      pack_fails(ns, "l", PyExc_ValueError, "nested too deeply", err, n) ||
      unpack_fails("\x01\x02", 2, PyExc_ValueError, "trailing", err, n) ||
      unpack_fails("\xd4\x05\x00", 3, PyExc_TypeError, "ext type 5", err, n) ||
      unpack_fails("\x81\x90\x01", 3, PyExc_TypeError, "unhashable", err, n) ||
      unpack_fails("\xa1\xff", 2, PyExc_UnicodeDecodeError, "utf-8", err, n))
    goto out;
  r = 0;
out:
  Py_DECREF(ns);
  return r;
}

static const PyInterpreterConfig isolated_config = {
    .use_main_obmalloc = 0,
    .allow_fork = 0,
    .allow_exec = 0,
    .allow_threads = 1,
    .allow_daemon_threads = 0,
    .check_multi_interp_extensions = 1,
    .gil = PyInterpreterConfig_OWN_GIL,
};

/* Create an isolated interpreter; on return its thread state is current
 * and the main interpreter's GIL released.  NULL (main state restored) on
 * failure, with the reason in err. */
static PyThreadState *isolated_new(PyThreadState *main_ts, char *err,
                                   size_t n) {
  PyThreadState *ts = NULL;
  PyStatus st = Py_NewInterpreterFromConfig(&ts, &isolated_config);
  if (PyStatus_Exception(st) || ts == NULL) {
    snprintf(err, n, "Py_NewInterpreterFromConfig: %s",
             st.err_msg ? st.err_msg : "failed");
    if (PyThreadState_GetUnchecked() != main_ts) {
      if (PyThreadState_GetUnchecked() != NULL)
        PyThreadState_Swap(NULL);
      PyEval_RestoreThread(main_ts);
    }
    return NULL;
  }
  return ts;
}

static void pyconvert_works_in_isolated_subinterpreter(void **state) {
  PyThreadState *main_ts = PyThreadState_Get(), *ts;
  PyInterpreterState *main_interp = PyInterpreterState_Get();
  char err[ERRLEN] = "";
  int r = -1, other = 0;
  (void)state;

  ts = isolated_new(main_ts, err, sizeof(err));
  if (ts == NULL)
    fail_msg("%s", err);
  other = PyInterpreterState_Get() != main_interp &&
          PyInterpreterState_Get() != PyInterpreterState_Main();
  r = convert_suite(err, sizeof(err));
  Py_EndInterpreter(ts);
  /* Back to the main interpreter (and its GIL) before any assertion. */
  PyEval_RestoreThread(main_ts);
  assert_ptr_equal(PyThreadState_Get(), main_ts);
  assert_true(other);
  if (r != 0)
    fail_msg("in the sub-interpreter: %s", err);
  /* And the main interpreter is still fine. */
  if (convert_suite(err, sizeof(err)) != 0)
    fail_msg("in the main interpreter afterwards: %s", err);
}

struct worker {
  PyInterpreterState *interp;
  int rounds;
  int failed;
  char err[ERRLEN];
};

static void *worker_main(void *arg) {
  struct worker *w = arg;
  PyThreadState *ts = PyThreadState_New(w->interp);
  int i;
  PyEval_RestoreThread(ts);
  for (i = 0; i < w->rounds && !w->failed; i++)
    if (convert_suite(w->err, sizeof(w->err)) != 0)
      w->failed = 1;
  PyThreadState_Clear(ts);
  PyThreadState_DeleteCurrent();
  return NULL;
}

/* An isolated interpreter converting on another thread, under its own GIL,
 * while the main interpreter converts on this one: no shared state. */
static void pyconvert_concurrent_isolated_subinterpreters(void **state) {
  PyThreadState *main_ts = PyThreadState_Get(), *ts;
  struct worker w;
  pthread_t th;
  char err[ERRLEN] = "";
  int i, r = 0, started;
  (void)state;

  memset(&w, 0, sizeof(w));
  w.rounds = 300;
  ts = isolated_new(main_ts, err, sizeof(err));
  if (ts == NULL)
    fail_msg("%s", err);
  w.interp = PyThreadState_GetInterpreter(ts);
  /* Leave the sub-interpreter idle and come back to the main one. */
  PyEval_SaveThread();
  PyEval_RestoreThread(main_ts);
  started = pthread_create(&th, NULL, worker_main, &w) == 0;
  for (i = 0; i < 300 && r == 0; i++)
    r = convert_suite(err, sizeof(err));
  if (started) {
    /* The worker needs only its own interpreter's GIL; release ours anyway
     * while waiting, for good manners. */
    Py_BEGIN_ALLOW_THREADS
    pthread_join(th, NULL);
    Py_END_ALLOW_THREADS
  }
  /* End the sub-interpreter from here. */
  PyEval_SaveThread();
  PyEval_RestoreThread(ts);
  Py_EndInterpreter(ts);
  PyEval_RestoreThread(main_ts);
  assert_true(started);
  if (r != 0)
    fail_msg("main interpreter: %s", err);
  if (w.failed)
    fail_msg("sub-interpreter thread: %s", w.err);
}

/* ------------------------------------------------------------------------ */

static int py_group_setup(void **state) {
  PyConfig config;
  PyStatus st;
  (void)state;
  PyConfig_InitIsolatedConfig(&config);
  config.install_signal_handlers = 0;
  st = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(st)) {
    fprintf(stderr, "Py_InitializeFromConfig: %s\n",
            st.err_msg ? st.err_msg : "failed");
    return -1;
  }
  return 0;
}

static int py_group_teardown(void **state) {
  (void)state;
  return Py_FinalizeEx() < 0 ? -1 : 0;
}

static int run_all(void) {
  const struct CMUnitTest tests[] = {
      TH_TEST(pyconvert_roundtrip_scalars),
      TH_TEST(pyconvert_roundtrip_containers),
      TH_TEST(pyconvert_subclasses_packed_as_base),
      TH_TEST(pyconvert_int_out_of_range_is_overflow_error),
      TH_TEST(pyconvert_unsupported_type_names_it),
      TH_TEST(pyconvert_self_reference_raises),
      TH_TEST(pyconvert_malformed_and_trailing_rejected),
      TH_TEST(pyconvert_ext_and_unhashable_key_rejected),
      TH_TEST(pyconvert_matches_reference_encoding),
      TH_TEST_T(pyconvert_no_refleaks, 300),
      /* After the leak count: its 512-deep values fill CPython's free
       * lists, which the count would take for a leak. */
      TH_TEST(pyconvert_512_levels_convert_both_ways_513_are_refused),
      TH_TEST_T(pyconvert_works_in_isolated_subinterpreter, 120),
      TH_TEST_T(pyconvert_concurrent_isolated_subinterpreters, 300),
  };
  return cmocka_run_group_tests_name("pyconvert", tests, py_group_setup,
                                     py_group_teardown);
}

int main(int argc, char **argv) {
  return th_main(argc, argv, ts_helpers, run_all);
}
