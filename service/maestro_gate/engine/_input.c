/*
 * Build a rego-cpp input document from a JSON-typed Python value in one call.
 *
 * rego-cpp takes an input through a stack machine of C calls (regoInputString, regoInputObject,
 * ...), one or two per JSON node. Made from Python through ctypes each call costs about a
 * microsecond, and a decision's input with its session history has hundreds of nodes; here the
 * same calls cost nanoseconds. The functions are rego-cpp's own, handed over by address from
 * the library regopy loaded (`bind`), so this module does not link against it.
 *
 * The caller holds the GIL throughout: the calls are short and the value must not change under
 * the walk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

typedef unsigned int (*with_handle)(void *);
typedef unsigned int (*with_string)(void *, const char *);
typedef unsigned int (*with_size)(void *, unsigned int);
typedef unsigned int (*with_bool)(void *, unsigned char);
typedef unsigned int (*with_int)(void *, int64_t);
typedef unsigned int (*with_float)(void *, double);

static struct {
    with_string string;
    with_handle object_item;
    with_size object;
    with_size array;
    with_bool boolean;
    with_int integer;
    with_float real;
    with_handle null;
} rego;

static int bound = 0;

/* Deeper than any request the API accepts (MAESTRO_GATE_MAX_DEPTH is at most 256), plus state. */
#define MAX_DEPTH 300

static int push(void *handle, PyObject *value, int depth);

static int refused(void)
{
    PyErr_SetString(PyExc_ValueError, "the policy engine refused the input document");
    return -1;
}

static int push_string(void *handle, PyObject *text)
{
    const char *utf8 = PyUnicode_AsUTF8(text);
    if (utf8 == NULL) {
        return -1;
    }
    return rego.string(handle, utf8) ? refused() : 0;
}

static int push_dict(void *handle, PyObject *value, int depth)
{
    PyObject *key, *child;
    Py_ssize_t position = 0;
    Py_ssize_t size = PyDict_GET_SIZE(value);
    while (PyDict_Next(value, &position, &key, &child)) {
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "object keys must be strings, not %s",
                         Py_TYPE(key)->tp_name);
            return -1;
        }
        if (push_string(handle, key) || push(handle, child, depth + 1)) {
            return -1;
        }
        if (rego.object_item(handle)) {
            return refused();
        }
    }
    return rego.object(handle, (unsigned int)size) ? refused() : 0;
}

static int push_sequence(void *handle, PyObject *value, int depth)
{
    PyObject *items = PySequence_Fast(value, "expected a list");
    if (items == NULL) {
        return -1;
    }
    Py_ssize_t size = PySequence_Fast_GET_SIZE(items);
    PyObject **children = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (push(handle, children[i], depth + 1)) {
            Py_DECREF(items);
            return -1;
        }
    }
    Py_DECREF(items);
    return rego.array(handle, (unsigned int)size) ? refused() : 0;
}

static int push(void *handle, PyObject *value, int depth)
{
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "the input document is nested too deeply");
        return -1;
    }
    if (PyDict_Check(value)) {
        return push_dict(handle, value, depth);
    }
    if (PyUnicode_Check(value)) {
        return push_string(handle, value);
    }
    if (PyBool_Check(value)) {
        return rego.boolean(handle, value == Py_True) ? refused() : 0;
    }
    if (PyLong_Check(value)) {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_ValueError, "an integer in the input is out of range");
            return -1;
        }
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        return rego.integer(handle, (int64_t)number) ? refused() : 0;
    }
    if (PyFloat_Check(value)) {
        return rego.real(handle, PyFloat_AS_DOUBLE(value)) ? refused() : 0;
    }
    if (value == Py_None) {
        return rego.null(handle) ? refused() : 0;
    }
    if (PyList_Check(value) || PyTuple_Check(value)) {
        return push_sequence(handle, value, depth);
    }
    PyErr_Format(PyExc_TypeError, "cannot pass a %s to the policy engine", Py_TYPE(value)->tp_name);
    return -1;
}

static void *address(PyObject *number)
{
    return PyLong_AsVoidPtr(number);
}

static PyObject *bind(PyObject *self, PyObject *args)
{
    PyObject *f[8];
    if (!PyArg_ParseTuple(args, "OOOOOOOO", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6],
                          &f[7])) {
        return NULL;
    }
    void *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = address(f[i]);
        if (p[i] == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "a null function address");
            }
            return NULL;
        }
    }
    rego.string = (with_string)p[0];
    rego.object_item = (with_handle)p[1];
    rego.object = (with_size)p[2];
    rego.array = (with_size)p[3];
    rego.boolean = (with_bool)p[4];
    rego.integer = (with_int)p[5];
    rego.real = (with_float)p[6];
    rego.null = (with_handle)p[7];
    bound = 1;
    Py_RETURN_NONE;
}

static PyObject *build(PyObject *self, PyObject *args)
{
    PyObject *handle_number, *value;
    if (!PyArg_ParseTuple(args, "OO", &handle_number, &value)) {
        return NULL;
    }
    if (!bound) {
        PyErr_SetString(PyExc_RuntimeError, "bind() the rego-cpp functions first");
        return NULL;
    }
    void *handle = address(handle_number);
    if (handle == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "a null input handle");
        }
        return NULL;
    }
    if (push(handle, value, 0)) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS,
     "bind(string, object_item, object, array, boolean, int, float, null): the addresses of "
     "rego-cpp's regoInput* functions."},
    {"build", build, METH_VARARGS,
     "build(handle, value): push `value` onto the regoInput at `handle`; ValueError or "
     "TypeError when it cannot be passed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_input", "Build rego-cpp input documents in one call.", -1, methods,
};

PyMODINIT_FUNC PyInit__input(void)
{
    return PyModule_Create(&module);
}
