/*
 * A tiny C extension for test/perf/native.test.ts: spin(seconds) burns the CPU in
 * pylens_spin_for, a function of this library, for that long (holding the GIL). Built by
 * the test with gcc against the interpreter's headers and loaded from a temporary folder.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

__attribute__((noinline)) unsigned long pylens_spin_for(double seconds) {
    volatile unsigned long x = 0;
    double end = now_s() + seconds;
    do {
        for (unsigned long i = 0; i < 20000; i++) x += i ^ (x >> 3);
    } while (now_s() < end);
    return x;
}

static PyObject *spin(PyObject *self, PyObject *args) {
    double seconds;
    if (!PyArg_ParseTuple(args, "d", &seconds)) return NULL;
    return PyLong_FromUnsignedLong(pylens_spin_for(seconds));
}

static PyMethodDef methods[] = {
    {"spin", spin, METH_VARARGS, "spin(seconds): busy for that long in C"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pylens_native_spin", NULL, -1, methods};

PyMODINIT_FUNC PyInit_pylens_native_spin(void) { return PyModule_Create(&module); }
