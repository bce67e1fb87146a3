/* A single-phase-init extension module, built only for the tests: an
 * isolated sub-interpreter must refuse to import it (ImportError), not
 * crash. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_single_phase",
                                 "single-phase init, for tests", -1, NULL,
                                 NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__single_phase(void) { return PyModule_Create(&def); }
