/*
 * One decision's trip into rego-cpp: build the input, set it, evaluate, with the GIL released once.
 *
 * rego-cpp takes an input through a stack machine of C calls (regoInputString, regoInputObject,
 * ...), one or two per JSON node. Made from Python through ctypes each call costs about a
 * microsecond, and a decision's input with its session history has hundreds of nodes; here the
 * same calls cost nanoseconds. The functions are rego-cpp's own, handed over by address from
 * the library regopy loaded (`bind`), so this module does not link against it.
 *
 * `evaluate` works in two passes. The first, holding the GIL, walks the Python value into a
 * plan: one step per rego-cpp call, every string copied into the plan's own buffer, so nothing
 * in the plan refers to a Python object. The second runs with the GIL released: it replays the
 * plan into a new rego-cpp input, sets it on the interpreter and evaluates the bundle. Under load
 * every release costs a wait to take the GIL back from the busy event loop, so a decision
 * releases it exactly once, for all of rego-cpp's work (~1 ms), instead of once per call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef unsigned int (*with_handle)(void *);
typedef unsigned int (*with_string)(void *, const char *);
typedef unsigned int (*with_size)(void *, unsigned int);
typedef unsigned int (*with_bool)(void *, unsigned char);
typedef unsigned int (*with_int)(void *, int64_t);
typedef unsigned int (*with_float)(void *, double);
typedef void *(*make_input)(void);
typedef void (*free_input)(void *);
typedef unsigned int (*set_input)(void *, void *);
typedef void *(*bundle_query)(void *, void *, const char *);
typedef void (*mark_trusted)(int);

static struct {
    with_string string;
    with_handle object_item;
    with_size object;
    with_size array;
    with_bool boolean;
    with_int integer;
    with_float real;
    with_handle null;
    make_input new_input;
    free_input free_input;
    set_input set_input;
    bundle_query query;
    mark_trusted trusted; /* engine/_patches.cc's maestro_gate_trusted, or NULL when not loaded */
} rego;

static int bound = 0;

/* Deeper than any request the API accepts (MAESTRO_GATE_MAX_DEPTH is at most 256), plus state. */
#define MAX_DEPTH 300

/* One rego-cpp call of the plan. */
enum kind { STRING, OBJECT_ITEM, OBJECT, ARRAY, BOOLEAN, INTEGER, REAL, NULL_ };

typedef struct {
    enum kind kind;
    union {
        size_t text; /* STRING: offset of a NUL-terminated copy in plan.text */
        unsigned int size; /* OBJECT, ARRAY */
        unsigned char flag; /* BOOLEAN */
        int64_t integer;
        double real;
    } arg;
} step;

typedef struct {
    step *steps;
    size_t count, steps_room;
    char *text;
    size_t used, text_room;
} plan;

static int grow(void **buffer, size_t *room, size_t needed, size_t unit)
{
    if (needed <= *room) {
        return 0;
    }
    size_t room_now = *room ? *room : 64;
    while (room_now < needed) {
        room_now *= 2;
    }
    void *moved = PyMem_Realloc(*buffer, room_now * unit);
    if (moved == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *buffer = moved;
    *room = room_now;
    return 0;
}

static step *add(plan *p, enum kind kind)
{
    if (grow((void **)&p->steps, &p->steps_room, p->count + 1, sizeof(step))) {
        return NULL;
    }
    step *s = &p->steps[p->count++];
    s->kind = kind;
    return s;
}

static int plan_value(plan *p, PyObject *value, int depth);

static int plan_string(plan *p, PyObject *text)
{
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    if (utf8 == NULL) {
        return -1;
    }
    /* rego-cpp takes C strings: a NUL inside would silently cut the string short. */
    if (memchr(utf8, '\0', (size_t)length) != NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "a string in the input holds a NUL character, which the policy engine "
                        "cannot take");
        return -1;
    }
    size_t offset = p->used;
    if (grow((void **)&p->text, &p->text_room, offset + (size_t)length + 1, 1)) {
        return -1;
    }
    memcpy(p->text + offset, utf8, (size_t)length + 1);
    p->used += (size_t)length + 1;
    step *s = add(p, STRING);
    if (s == NULL) {
        return -1;
    }
    s->arg.text = offset;
    return 0;
}

static int plan_sized(plan *p, enum kind kind, Py_ssize_t size)
{
    if ((size_t)size > UINT_MAX) {
        PyErr_SetString(PyExc_ValueError, "a container in the input is too large");
        return -1;
    }
    step *s = add(p, kind);
    if (s == NULL) {
        return -1;
    }
    s->arg.size = (unsigned int)size;
    return 0;
}

static int plan_dict(plan *p, PyObject *value, int depth)
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
        if (plan_string(p, key) || plan_value(p, child, depth + 1) || !add(p, OBJECT_ITEM)) {
            return -1;
        }
    }
    return plan_sized(p, OBJECT, size);
}

static int plan_sequence(plan *p, PyObject *value, int depth)
{
    PyObject *items = PySequence_Fast(value, "expected a list");
    if (items == NULL) {
        return -1;
    }
    Py_ssize_t size = PySequence_Fast_GET_SIZE(items);
    PyObject **children = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < size; i++) {
        if (plan_value(p, children[i], depth + 1)) {
            Py_DECREF(items);
            return -1;
        }
    }
    Py_DECREF(items);
    return plan_sized(p, ARRAY, size);
}

static int plan_value(plan *p, PyObject *value, int depth)
{
    step *s;
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "the input document is nested too deeply");
        return -1;
    }
    if (PyDict_Check(value)) {
        return plan_dict(p, value, depth);
    }
    if (PyUnicode_Check(value)) {
        return plan_string(p, value);
    }
    if (PyBool_Check(value)) {
        if ((s = add(p, BOOLEAN)) == NULL) {
            return -1;
        }
        s->arg.flag = value == Py_True;
        return 0;
    }
    if (PyLong_Check(value)) {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_ValueError, "an integer in the input is out of range");
            return -1;
        }
        if ((number == -1 && PyErr_Occurred()) || (s = add(p, INTEGER)) == NULL) {
            return -1;
        }
        s->arg.integer = (int64_t)number;
        return 0;
    }
    if (PyFloat_Check(value)) {
        if ((s = add(p, REAL)) == NULL) {
            return -1;
        }
        s->arg.real = PyFloat_AS_DOUBLE(value);
        return 0;
    }
    if (value == Py_None) {
        return add(p, NULL_) ? 0 : -1;
    }
    if (PyList_Check(value) || PyTuple_Check(value)) {
        return plan_sequence(p, value, depth);
    }
    PyErr_Format(PyExc_TypeError, "cannot pass a %s to the policy engine", Py_TYPE(value)->tp_name);
    return -1;
}

static void forget(plan *p)
{
    PyMem_Free(p->steps);
    PyMem_Free(p->text);
}

/* Replay the plan into rego-cpp; no Python API here (the GIL is released). Non-zero if refused. */
static unsigned int replay(const plan *p, void *handle)
{
    unsigned int failed = 0;
    for (size_t i = 0; i < p->count && !failed; i++) {
        const step *s = &p->steps[i];
        switch (s->kind) {
        case STRING:
            failed = rego.string(handle, p->text + s->arg.text);
            break;
        case OBJECT_ITEM:
            failed = rego.object_item(handle);
            break;
        case OBJECT:
            failed = rego.object(handle, s->arg.size);
            break;
        case ARRAY:
            failed = rego.array(handle, s->arg.size);
            break;
        case BOOLEAN:
            failed = rego.boolean(handle, s->arg.flag);
            break;
        case INTEGER:
            failed = rego.integer(handle, s->arg.integer);
            break;
        case REAL:
            failed = rego.real(handle, s->arg.real);
            break;
        case NULL_:
            failed = rego.null(handle);
            break;
        }
    }
    return failed;
}

#define FUNCTIONS 12

static PyObject *bind(PyObject *self, PyObject *args)
{
    PyObject *f[FUNCTIONS], *trusted;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOO", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6],
                          &f[7], &f[8], &f[9], &f[10], &f[11], &trusted)) {
        return NULL;
    }
    void *trusted_address = PyLong_AsVoidPtr(trusted);
    if (trusted_address == NULL && PyErr_Occurred()) {
        return NULL;
    }
    void *p[FUNCTIONS];
    for (int i = 0; i < FUNCTIONS; i++) {
        p[i] = PyLong_AsVoidPtr(f[i]);
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
    rego.new_input = (make_input)p[8];
    rego.free_input = (free_input)p[9];
    rego.set_input = (set_input)p[10];
    rego.query = (bundle_query)p[11];
    rego.trusted = (mark_trusted)trusted_address;
    bound = 1;
    Py_RETURN_NONE;
}

/* How the GIL-free pass ended. */
enum ending { EVALUATED, NO_MEMORY, INPUT_REFUSED, NOT_SET, NO_OUTPUT };

static PyObject *evaluate(PyObject *self, PyObject *args)
{
    PyObject *interpreter_number, *bundle_number, *value;
    const char *entrypoint;
    if (!PyArg_ParseTuple(args, "OOyO", &interpreter_number, &bundle_number, &entrypoint,
                          &value)) {
        return NULL;
    }
    if (!bound) {
        PyErr_SetString(PyExc_RuntimeError, "bind() the rego-cpp functions first");
        return NULL;
    }
    void *interpreter = PyLong_AsVoidPtr(interpreter_number);
    void *bundle = PyLong_AsVoidPtr(bundle_number);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (interpreter == NULL || bundle == NULL) {
        PyErr_SetString(PyExc_ValueError, "a null interpreter or bundle handle");
        return NULL;
    }
    plan p = {0};
    if (plan_value(&p, value, 0)) {
        forget(&p);
        return NULL;
    }
    enum ending ending = EVALUATED;
    void *output = NULL;
    Py_BEGIN_ALLOW_THREADS
    void *input = rego.new_input();
    if (input == NULL) {
        ending = NO_MEMORY;
    } else if (replay(&p, input)) {
        ending = INPUT_REFUSED;
    } else if (rego.set_input(interpreter, input)) {
        ending = NOT_SET;
    }
    if (input != NULL) {
        rego.free_input(input);
    }
    if (ending == EVALUATED) {
        if (rego.trusted) {
            rego.trusted(1);
        }
        output = rego.query(interpreter, bundle, entrypoint);
        if (rego.trusted) {
            rego.trusted(0);
        }
        if (output == NULL) {
            ending = NO_OUTPUT;
        }
    }
    Py_END_ALLOW_THREADS
    forget(&p);
    switch (ending) {
    case EVALUATED:
        return Py_BuildValue("(NO)", PyLong_FromVoidPtr(output), Py_None);
    case NO_MEMORY:
        return PyErr_NoMemory();
    case INPUT_REFUSED:
        PyErr_SetString(PyExc_ValueError, "the policy engine refused the input document");
        return NULL;
    case NOT_SET:
        return Py_BuildValue("(is)", 0, "input");
    case NO_OUTPUT:
    default:
        return Py_BuildValue("(is)", 0, "query");
    }
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_VARARGS,
     "bind(string, object_item, object, array, boolean, int, float, null, new_input, free_input, "
     "set_input, bundle_query_entrypoint, trusted): the addresses of rego-cpp's C API functions, "
     "and of engine/_patches.cc's maestro_gate_trusted (0 when it is not loaded)."},
    {"evaluate", evaluate, METH_VARARGS,
     "evaluate(interpreter, bundle, entrypoint, value): set `value` as the input and evaluate "
     "`entrypoint`. (output, None) with the regoOutput address (the caller frees it), or "
     "(0, stage) when rego-cpp failed at stage 'input' or 'query' (read regoError); ValueError "
     "or TypeError when `value` cannot be passed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rego", "One decision's trip into rego-cpp, GIL released once.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__rego(void)
{
    return PyModule_Create(&module);
}
