/* Fuzz harness: the Python value converter, msgpack -> Python -> msgpack
 * (src/py/convert.c: actor__py_unpack, actor__py_pack), in-process with an
 * embedded interpreter (links libpython; built in the dev root only).
 *
 * Per input:
 *   o1 = unpack(input)         either a value, or a ValueError/TypeError
 *                              (RecursionError, MemoryError tolerated);
 *                              any other exception is a finding;
 *   b1 = pack(o1)              must succeed: whatever the decoder makes,
 *                              the encoder takes;
 *   o2 = unpack(b1)            must succeed, and be the same value as o1
 *                              (same types all the way down, NaN == NaN);
 *   b2 = pack(o2)              must equal b1 byte for byte.
 *
 * CPython runs with the malloc allocator (PYMEM_ALLOCATOR_MALLOC, what
 * PYTHONMALLOC=malloc selects) so that ASan sees every object and LSan
 * can tell a leaked reference from pymalloc's arenas.  The GIL is held by
 * this thread for the whole run. */
#include "py/py.h" /* Python.h first */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
              __LINE__);                                                       \
      if (PyErr_Occurred())                                                    \
        PyErr_Print();                                                         \
      abort();                                                                 \
    }                                                                          \
  } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  PyPreConfig pre;
  PyConfig config;
  PyStatus st;
  (void)argc;
  (void)argv;
  PyPreConfig_InitIsolatedConfig(&pre);
  pre.allocator = PYMEM_ALLOCATOR_MALLOC;
  st = Py_PreInitialize(&pre);
  if (!PyStatus_Exception(st)) {
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.site_import = 0;
    st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
  }
  if (PyStatus_Exception(st)) {
    fprintf(stderr, "fuzz_pyconvert: CPython failed to start: %s\n",
            st.err_msg ? st.err_msg : "?");
    exit(1);
  }
  return 0;
}

/* Equal, and of the same types all the way down; NaN equals NaN. */
static int fz_same(PyObject *a, PyObject *b) {
  Py_ssize_t i, n, pos, pos2;
  PyObject *k, *v, *k2, *v2;
  int r;

  if (Py_TYPE(a) != Py_TYPE(b))
    return 0;
  if (PyList_CheckExact(a)) {
    n = PyList_GET_SIZE(a);
    if (n != PyList_GET_SIZE(b))
      return 0;
    for (i = 0; i < n; i++)
      if (!fz_same(PyList_GET_ITEM(a, i), PyList_GET_ITEM(b, i)))
        return 0;
    return 1;
  }
  if (PyDict_CheckExact(a)) {
    /* Item by item, in order: packing keeps the dict's order and
     * unpacking inserts in the encoding's, and a NaN key could not be
     * looked up anyway. */
    if (PyDict_GET_SIZE(a) != PyDict_GET_SIZE(b))
      return 0;
    pos = pos2 = 0;
    while (PyDict_Next(a, &pos, &k, &v)) {
      FZ_CHECK(PyDict_Next(b, &pos2, &k2, &v2));
      if (!fz_same(k, k2) || !fz_same(v, v2))
        return 0;
    }
    return 1;
  }
  if (PyFloat_CheckExact(a) && isnan(PyFloat_AS_DOUBLE(a)))
    return isnan(PyFloat_AS_DOUBLE(b));
  r = PyObject_RichCompareBool(a, b, Py_EQ);
  FZ_CHECK(r >= 0);
  return r;
}

/* pack(o) into a fresh buffer; the packing must succeed. */
static void fz_pack(PyObject *o, msgpack_sbuffer *sb) {
  msgpack_packer pk;
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  FZ_CHECK(actor__py_pack(&pk, o) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msgpack_sbuffer b1, b2;
  PyObject *o1, *o2, *e;

  o1 = actor__py_unpack((const char *)data, size);
  if (o1 == NULL) {
    /* Bad input: a clear Python error, nothing else. */
    e = PyErr_GetRaisedException();
    FZ_CHECK(e != NULL);
    FZ_CHECK(PyErr_GivenExceptionMatches(e, PyExc_ValueError) ||
             PyErr_GivenExceptionMatches(e, PyExc_TypeError) ||
             PyErr_GivenExceptionMatches(e, PyExc_RecursionError) ||
             PyErr_GivenExceptionMatches(e, PyExc_MemoryError));
    Py_DECREF(e);
    return 0;
  }
  FZ_CHECK(!PyErr_Occurred());
  fz_pack(o1, &b1);
  o2 = actor__py_unpack(b1.data, b1.size);
  FZ_CHECK(o2 != NULL);
  FZ_CHECK(fz_same(o1, o2));
  fz_pack(o2, &b2);
  FZ_CHECK(b1.size == b2.size && memcmp(b1.data, b2.data, b1.size) == 0);
  msgpack_sbuffer_destroy(&b1);
  msgpack_sbuffer_destroy(&b2);
  Py_DECREF(o1);
  Py_DECREF(o2);
  return 0;
}
