/* libFuzzer harness for albstats/_albparse.c, built with AddressSanitizer and UndefinedBehaviorSanitizer.
 *
 * Why this shape: parse_block takes Python objects and returns Python objects, and the interesting
 * check (are the rows it takes exactly the rows the reference parser gives?) needs the reference,
 * albstats.parsing.lines.parse_line. So this binary includes the extension's source (compiled here with the
 * sanitizers and coverage, unlike the copy pip builds), embeds CPython, and hands each input to
 * fuzz/albparse_oracle.py, which decodes it, calls this binary's parse_block and compares. Any Python
 * exception there (a mismatch is an AssertionError) aborts, so libFuzzer keeps the input as a crash.
 *
 * CPython runs with its malloc allocator (not pymalloc), so every bytes object the extension writes
 * into is its own malloc block with ASan red zones around it; and the oracle passes the log text in
 * buffers of exactly its length (exact() below), so reading one byte past a line's block is caught.
 * Build and run: fuzz/fuzz.py (see fuzz/README.md).
 */
#ifndef ALBPARSE_SOURCE /* the tests build the harness around an altered copy to see it report a bug */
#define ALBPARSE_SOURCE "../albstats/_albparse.c"
#endif
#include ALBPARSE_SOURCE

#include <stdio.h>

/* exact(data) -> a buffer object holding a copy of data in a malloc block of exactly len(data) bytes
 * (a bytes object has a NUL after its end, which would hide a one-byte over-read from ASan). */
static PyObject *exact(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer v;
    if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0) return NULL;
    char *p = malloc(v.len ? (size_t)v.len : 1);
    if (!p) {
        PyBuffer_Release(&v);
        return PyErr_NoMemory();
    }
    memcpy(p, v.buf, (size_t)v.len);
    size_t n = (size_t)v.len;
    PyBuffer_Release(&v);
    return rawbuf_new(p, n);
}

static PyMethodDef fuzz_methods[] = {
    {"parse_block", parse_block, METH_VARARGS, "the sanitized albstats._albparse.parse_block"},
    {"exact", exact, METH_O, "a copy of a bytes-like in a malloc block of exactly its size"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fuzz_module = {PyModuleDef_HEAD_INIT, "_albparse_fuzz",
                                         "albstats._albparse built with sanitizers, for the fuzz harness", -1,
                                         fuzz_methods};

static PyObject *PyInit__albparse_fuzz(void) {
    PyObject *m = PyInit__albparse(); /* sets up the C locale and the buffer type, as the real import does */
    if (!m) return NULL;
    Py_DECREF(m);
    return PyModule_Create(&fuzz_module);
}

static PyObject *one_input;

static void die(const char *what) {
    fprintf(stderr, "albparse_fuzzer: %s\n", what);
    if (PyErr_Occurred()) PyErr_Print();
    fflush(stderr);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    PyStatus s;
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    pre.allocator = PYMEM_ALLOCATOR_MALLOC; /* every object its own malloc block: ASan sees overflows */
    s = Py_PreInitialize(&pre);
    if (PyStatus_Exception(s)) Py_ExitStatusException(s);
    if (PyImport_AppendInittab("_albparse_fuzz", PyInit__albparse_fuzz) < 0) die("cannot register the module");
    PyConfig cfg;
    PyConfig_InitPythonConfig(&cfg);
    cfg.install_signal_handlers = 0; /* libFuzzer's handlers (timeouts, -max_total_time) stay in charge */
    cfg.parse_argv = 0;
    s = Py_InitializeFromConfig(&cfg);
    PyConfig_Clear(&cfg);
    if (PyStatus_Exception(s)) Py_ExitStatusException(s);
    PyObject *oracle = PyImport_ImportModule("albparse_oracle");
    if (!oracle) die("cannot import albparse_oracle (PYTHONPATH must hold fuzz/ and the project)");
    one_input = PyObject_GetAttrString(oracle, "one_input");
    Py_DECREF(oracle);
    if (!one_input) die("albparse_oracle has no one_input");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    PyObject *arg = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    if (!arg) die("out of memory");
    PyObject *r = PyObject_CallOneArg(one_input, arg);
    Py_DECREF(arg);
    if (!r) die("finding: the oracle failed on this input");
    Py_DECREF(r);
    return 0;
}
