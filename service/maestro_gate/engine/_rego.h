/* What engine/_rego.c (plans, one evaluation) and engine/_pool.c (the worker threads) share. */
#ifndef MAESTRO_GATE_REGO_H
#define MAESTRO_GATE_REGO_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* rego-cpp's C API, by address from the library regopy loaded (`bind`); no link against it. */
struct rego_api {
    unsigned int (*input_string)(void *, const char *);
    unsigned int (*input_object_item)(void *);
    unsigned int (*input_object)(void *, unsigned int);
    unsigned int (*input_array)(void *, unsigned int);
    unsigned int (*input_boolean)(void *, unsigned char);
    unsigned int (*input_int)(void *, int64_t);
    unsigned int (*input_float)(void *, double);
    unsigned int (*input_null)(void *);
    void *(*new_input)(void);
    void (*free_input)(void *);
    unsigned int (*set_input)(void *, void *);
    void *(*query)(void *, void *, const char *);
    void *(*new_interpreter)(void);
    void (*free_interpreter)(void *);
    unsigned int (*set_log_level)(void *, unsigned int);
    void (*set_strict_built_in_errors)(void *, unsigned char);
    unsigned int (*add_module)(void *, const char *, const char *);
    unsigned int (*add_data_json)(void *, const char *);
    unsigned int (*add_entrypoint)(void *, const char *);
    void *(*build)(void *);
    unsigned char (*bundle_ok)(void *);
    void (*free_bundle)(void *);
    unsigned int (*error_size)(void *);
    unsigned int (*error)(void *, char *, unsigned int);
    void (*free_output)(void *);
    /* engine/_patches.cc's hooks, NULL when it is not loaded */
    void (*mark)(int); /* what this thread is doing for the gate: one of `marks`, or 0 */
    void (*forget_verified)(void);
};

/* For rego.mark: the gate's query (rego-cpp verifies its bundle once), and the gate's input
 * being built (rego-cpp's to_term may take the fresh values it is given instead of copying).
 * engine/_patches.cc reads the same values. */
enum marks { QUERYING = 1, BUILDING_INPUT = 2 };

extern struct rego_api rego;
extern int rego_bound;

/* One rego-cpp input call of a plan. */
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

/* An input document as the rego-cpp calls that build it; plain malloc, so any thread frees it. */
typedef struct {
    step *steps;
    size_t count, steps_room;
    char *text;
    size_t used, text_room;
} plan;

/* Walk a Python value into a plan (GIL held); -1 with a Python exception set. */
int plan_value(plan *p, PyObject *value, int depth);
void plan_free(plan *p);

/* How an evaluation without the GIL ended. */
enum ending { EVALUATED, NO_MEMORY, INPUT_REFUSED, NOT_SET, NO_OUTPUT, NOT_COMPILED, CLOSED };

/* Room for rego-cpp's message about a failed stage. */
#define ERROR_ROOM 600

/* Build the plan's input on `interpreter` and query `entrypoint` of `bundle`; no Python API.
 * When the interpreter refuses the input (NOT_SET), its message is copied into `error`. */
enum ending run_plan(const plan *p, void *interpreter, void *bundle, const char *entrypoint,
                     void **output, char error[ERROR_ROOM]);

/* The ending's name as `evaluate` and `Pool.take` report it, NULL for EVALUATED. */
const char *ending_name(enum ending ending);

/* rego-cpp's last error on `interpreter`, copied into `buffer` (always NUL-terminated). */
void copy_error(void *interpreter, char *buffer, size_t room);

int add_pool_types(PyObject *module);

#endif
