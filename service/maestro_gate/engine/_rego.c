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
 *
 * The service does not call `evaluate`: its decisions go to engine/_pool.c's worker threads,
 * which run the same plans and never take the GIL at all. `evaluate` serves the benchmark, the
 * tests and one-off evaluations.
 */
#include "_rego.h"

#include <string.h>

struct rego_api rego;
int rego_bound = 0;

/* Deeper than any request the API accepts (MAESTRO_GATE_MAX_DEPTH is at most 256), plus state. */
#define MAX_DEPTH 300

static int grow(void **buffer, size_t *room, size_t needed, size_t unit)
{
    if (needed <= *room) {
        return 0;
    }
    size_t room_now = *room ? *room : 64;
    while (room_now < needed) {
        room_now *= 2;
    }
    void *moved = realloc(*buffer, room_now * unit);
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

int plan_value(plan *p, PyObject *value, int depth)
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

void plan_free(plan *p)
{
    free(p->steps);
    free(p->text);
    p->steps = NULL;
    p->text = NULL;
}

/* Replay the plan into rego-cpp; no Python API here (the GIL is released). Non-zero if refused. */
static unsigned int replay(const plan *p, void *handle)
{
    unsigned int failed = 0;
    for (size_t i = 0; i < p->count && !failed; i++) {
        const step *s = &p->steps[i];
        switch (s->kind) {
        case STRING:
            failed = rego.input_string(handle, p->text + s->arg.text);
            break;
        case OBJECT_ITEM:
            failed = rego.input_object_item(handle);
            break;
        case OBJECT:
            failed = rego.input_object(handle, s->arg.size);
            break;
        case ARRAY:
            failed = rego.input_array(handle, s->arg.size);
            break;
        case BOOLEAN:
            failed = rego.input_boolean(handle, s->arg.flag);
            break;
        case INTEGER:
            failed = rego.input_int(handle, s->arg.integer);
            break;
        case REAL:
            failed = rego.input_float(handle, s->arg.real);
            break;
        case NULL_:
            failed = rego.input_null(handle);
            break;
        }
    }
    return failed;
}

/* Tell engine/_patches.cc what this thread does for the gate (nothing when it is not loaded). */
static void mark(int what)
{
    if (rego.mark) {
        rego.mark(what);
    }
}

enum ending run_plan(const plan *p, void *interpreter, void *bundle, const char *entrypoint,
                     void **output, char error[ERROR_ROOM])
{
    enum ending ending = EVALUATED;
    void *input = rego.new_input();
    if (input == NULL) {
        return NO_MEMORY;
    }
    mark(BUILDING_INPUT);
    unsigned int refused = replay(p, input);
    mark(0);
    if (refused) {
        ending = INPUT_REFUSED;
    } else if (rego.set_input(interpreter, input)) {
        ending = NOT_SET;
    }
    rego.free_input(input);
    if (ending == NOT_SET) {
        copy_error(interpreter, error, ERROR_ROOM);
    }
    if (ending != EVALUATED) {
        return ending;
    }
    mark(QUERYING);
    *output = rego.query(interpreter, bundle, entrypoint);
    mark(0);
    return *output == NULL ? NO_OUTPUT : EVALUATED;
}

const char *ending_name(enum ending ending)
{
    switch (ending) {
    case EVALUATED:
        return NULL;
    case NO_MEMORY:
        return "memory";
    case INPUT_REFUSED:
        return "refused";
    case NOT_SET:
        return "input";
    case NO_OUTPUT:
        return "query";
    case NOT_COMPILED:
        return "compile";
    case CLOSED:
    default:
        return "closed";
    }
}

void copy_error(void *interpreter, char *buffer, size_t room)
{
    buffer[0] = '\0';
    unsigned int size = rego.error_size(interpreter);
    if (size == 0 || size > room) {
        size = (unsigned int)room;
    }
    if (rego.error(interpreter, buffer, size)) {
        buffer[0] = '\0';
    }
    buffer[room - 1] = '\0';
}

/* rego-cpp's functions by name, and where bind() puts each. */
static const struct {
    const char *name;
    void **slot;
} functions[] = {
    {"regoInputString", (void **)&rego.input_string},
    {"regoInputObjectItem", (void **)&rego.input_object_item},
    {"regoInputObject", (void **)&rego.input_object},
    {"regoInputArray", (void **)&rego.input_array},
    {"regoInputBoolean", (void **)&rego.input_boolean},
    {"regoInputInt", (void **)&rego.input_int},
    {"regoInputFloat", (void **)&rego.input_float},
    {"regoInputNull", (void **)&rego.input_null},
    {"regoNewInput", (void **)&rego.new_input},
    {"regoFreeInput", (void **)&rego.free_input},
    {"regoSetInput", (void **)&rego.set_input},
    {"regoBundleQueryEntrypoint", (void **)&rego.query},
    {"regoNew", (void **)&rego.new_interpreter},
    {"regoFree", (void **)&rego.free_interpreter},
    {"regoSetLogLevel", (void **)&rego.set_log_level},
    {"regoSetStrictBuiltInErrors", (void **)&rego.set_strict_built_in_errors},
    {"regoAddModule", (void **)&rego.add_module},
    {"regoAddDataJSON", (void **)&rego.add_data_json},
    {"regoAddEntrypoint", (void **)&rego.add_entrypoint},
    {"regoBuild", (void **)&rego.build},
    {"regoBundleOk", (void **)&rego.bundle_ok},
    {"regoFreeBundle", (void **)&rego.free_bundle},
    {"regoErrorSize", (void **)&rego.error_size},
    {"regoError", (void **)&rego.error},
    {"regoFreeOutput", (void **)&rego.free_output},
};

#define FUNCTIONS (sizeof functions / sizeof functions[0])

/* An optional address in `addresses`: NULL when absent (or with a Python error set). */
static void *optional(PyObject *addresses, const char *name)
{
    PyObject *address = PyDict_GetItemString(addresses, name);
    return address ? PyLong_AsVoidPtr(address) : NULL;
}

static PyObject *bind(PyObject *self, PyObject *args)
{
    PyObject *addresses;
    if (!PyArg_ParseTuple(args, "O!", &PyDict_Type, &addresses)) {
        return NULL;
    }
    void *found[FUNCTIONS];
    for (size_t i = 0; i < FUNCTIONS; i++) {
        found[i] = optional(addresses, functions[i].name);
        if (found[i] == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_ValueError, "no address for %s", functions[i].name);
            }
            return NULL;
        }
    }
    void *marking = optional(addresses, "maestro_gate_mark");
    void *forgetting = optional(addresses, "maestro_gate_forget");
    if (PyErr_Occurred()) {
        return NULL;
    }
    for (size_t i = 0; i < FUNCTIONS; i++) {
        *functions[i].slot = found[i];
    }
    rego.mark = (void (*)(int))marking;
    rego.forget_verified = (void (*)(void))forgetting;
    rego_bound = 1;
    Py_RETURN_NONE;
}

static PyObject *evaluate(PyObject *self, PyObject *args)
{
    PyObject *interpreter_number, *bundle_number, *value;
    const char *entrypoint;
    if (!PyArg_ParseTuple(args, "OOyO", &interpreter_number, &bundle_number, &entrypoint,
                          &value)) {
        return NULL;
    }
    if (!rego_bound) {
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
        plan_free(&p);
        return NULL;
    }
    void *output = NULL;
    char error[ERROR_ROOM] = "";
    enum ending ending;
    Py_BEGIN_ALLOW_THREADS
    ending = run_plan(&p, interpreter, bundle, entrypoint, &output, error);
    Py_END_ALLOW_THREADS
    plan_free(&p);
    return Py_BuildValue("(Nzs)", PyLong_FromVoidPtr(output), ending_name(ending), error);
}

static PyObject *function_names(PyObject *self, PyObject *unused)
{
    PyObject *names = PyTuple_New((Py_ssize_t)FUNCTIONS);
    for (size_t i = 0; names && i < FUNCTIONS; i++) {
        PyTuple_SET_ITEM(names, (Py_ssize_t)i, PyUnicode_FromString(functions[i].name));
    }
    return names;
}

static PyMethodDef methods[] = {
    {"function_names", function_names, METH_NOARGS,
     "The rego-cpp C API functions bind() needs, by name."},
    {"bind", bind, METH_VARARGS,
     "bind(addresses): the address of each function_names() function by name, and optionally of "
     "engine/_patches.cc's maestro_gate_mark and maestro_gate_forget (engine/patches.py)."},
    {"evaluate", evaluate, METH_VARARGS,
     "evaluate(interpreter, bundle, entrypoint, value), for tests and the bench only (the "
     "service evaluates on the pool's threads): set `value` as the input and evaluate "
     "`entrypoint`. (output, None, '') with the regoOutput address (the caller frees it), or "
     "(0, stage, message) when rego-cpp failed at stage 'refused', 'input', 'query' or "
     "'memory', as Pool.take reports them; ValueError or TypeError when `value` cannot be "
     "passed."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rego", "One decision's trip into rego-cpp, without the GIL.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__rego(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && add_pool_types(m)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
