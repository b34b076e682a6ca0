/*
 * The engine's worker threads: native threads that evaluate decisions and never take the GIL.
 *
 * A Python thread that runs rego-cpp must take the GIL back after every evaluation, behind a
 * busy event loop; measured, it then waits up to the 5 ms switch interval and resumes with cold
 * caches, and rego-cpp costs about twice its single-thread time. These threads only ever wait for
 * work: the event loop builds a decision's plan (holding the GIL, engine/_rego.c), queues it, and
 * learns of finished jobs from an eventfd it watches (`fileno`), then collects them (`take`).
 *
 * Each thread owns its rego-cpp interpreters and bundles, compiled from a Generation (the
 * bundle's sources), as rego-cpp interpreters cannot be shared between threads. `prepare`
 * compiles a generation for every thread in the calling thread and hands each its copy, so no
 * decision waits on a compile (about 100 ms, longer than a tight deadline); a thread that meets
 * a generation it lacks compiles it then, and `cancel` reports it as compiling. An evaluation
 * cannot be interrupted; `close` stops a pool taking jobs (its queued ones end CLOSED) and its
 * threads end when their current job does.
 *
 * Everything the threads touch is plain malloc'd memory with atomic reference counts, so a pool
 * or generation outlives its Python object for as long as a thread still needs it.
 */
#include "_rego.h"

#include <errno.h>
#include <stddef.h>
#include <structmember.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_THREADS 64

/* ---- Generation: one bundle's sources, shared read-only by every thread. ------------------- */

typedef struct {
    atomic_int references;
    size_t modules;
    char **names, **sources;
    char *data, *entrypoint;
} sources;

static char *copy_text(PyObject *text)
{
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    if (utf8 == NULL) {
        return NULL;
    }
    char *copy = malloc((size_t)length + 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, utf8, (size_t)length + 1);
    return copy;
}

static void release_sources(sources *s)
{
    if (s == NULL || atomic_fetch_sub(&s->references, 1) != 1) {
        return;
    }
    for (size_t i = 0; i < s->modules; i++) {
        free(s->names[i]);
        free(s->sources[i]);
    }
    free(s->names);
    free(s->sources);
    free(s->data);
    free(s->entrypoint);
    free(s);
}

typedef struct {
    PyObject_HEAD
    sources *sources;
} Generation;

static int generation_init(Generation *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"modules", "data", "entrypoint", NULL};
    PyObject *modules, *data, *entrypoint;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!UU", keywords, &PyList_Type, &modules, &data,
                                     &entrypoint)) {
        return -1;
    }
    sources *s = calloc(1, sizeof *s);
    size_t count = (size_t)PyList_GET_SIZE(modules);
    if (s == NULL || (count && ((s->names = calloc(count, sizeof(char *))) == NULL ||
                                (s->sources = calloc(count, sizeof(char *))) == NULL))) {
        free(s ? s->names : NULL);
        free(s);
        PyErr_NoMemory();
        return -1;
    }
    atomic_init(&s->references, 1);
    s->modules = count;
    for (size_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(modules, (Py_ssize_t)i);
        PyObject *name, *source;
        if (!PyArg_ParseTuple(item, "UU", &name, &source) ||
            (s->names[i] = copy_text(name)) == NULL ||
            (s->sources[i] = copy_text(source)) == NULL) {
            release_sources(s);
            return -1;
        }
    }
    if ((s->data = copy_text(data)) == NULL || (s->entrypoint = copy_text(entrypoint)) == NULL) {
        release_sources(s);
        return -1;
    }
    release_sources(self->sources);
    self->sources = s;
    return 0;
}

static void generation_dealloc(Generation *self)
{
    release_sources(self->sources);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject GenerationType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "maestro_gate.engine._rego.Generation",
    .tp_doc = "Generation(modules, data, entrypoint): a bundle's modules as (path, source) pairs, "
              "its data as JSON and the entrypoint, for the worker threads to compile.",
    .tp_basicsize = sizeof(Generation),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)generation_init,
    .tp_dealloc = (destructor)generation_dealloc,
};

/* ---- Jobs and the shared state of a pool. --------------------------------------------------- */

typedef struct job {
    struct job *next;
    unsigned long long id;
    sources *sources;
    plan plan;
    void *output;
    enum ending ending;
    char error[ERROR_ROOM];
} job;

struct worker;

typedef struct {
    atomic_int references; /* the Python object, and each running thread */
    pthread_mutex_t lock;
    pthread_cond_t work;
    job *queued, *queued_last;
    job *done, *done_last;
    int closing;
    int ready; /* eventfd: readable while `done` may hold jobs */
    struct worker *workers[MAX_THREADS];
    int threads;
} shared;

static void free_job(job *j)
{
    plan_free(&j->plan);
    if (j->output != NULL) {
        rego.free_output(j->output);
    }
    release_sources(j->sources);
    free(j);
}

static void free_jobs(job *j)
{
    while (j != NULL) {
        job *next = j->next;
        free_job(j);
        j = next;
    }
}

static void release_shared(shared *s)
{
    if (atomic_fetch_sub(&s->references, 1) != 1) {
        return;
    }
    free_jobs(s->queued);
    free_jobs(s->done); /* outputs nobody collected */
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    close(s->ready);
    free(s);
}

/* Append to `done`, holding the lock; true when the event loop must be woken. */
static int finish(shared *s, job *j)
{
    j->next = NULL;
    int was_empty = s->done == NULL;
    if (was_empty) {
        s->done = j;
    } else {
        s->done_last->next = j;
    }
    s->done_last = j;
    return was_empty;
}

static void wake(shared *s)
{
    uint64_t one = 1;
    ssize_t written;
    do {
        written = write(s->ready, &one, sizeof one);
    } while (written < 0 && errno == EINTR);
}

/* ---- A worker thread. ----------------------------------------------------------------------- */

/* A compiled interpreter. A thread keeps two, so jobs of the bundle being replaced and of its
 * replacement both run without recompiling while a reload is under way. */
typedef struct {
    sources *from;
    void *interpreter, *bundle;
    unsigned long long used;
} compiled;

typedef struct worker {
    shared *pool;
    compiled slots[2]; /* written by the owning thread only, under the lock */
    unsigned long long clock;
    /* Guarded by pool->lock: */
    job *current;
    int compiling;
    compiled incoming; /* compiled for this thread by `prepare`, installed at its next job */
} worker;

static void drop(compiled *c)
{
    if (c->bundle != NULL) {
        rego.free_bundle(c->bundle);
    }
    if (c->interpreter != NULL) {
        rego.free_interpreter(c->interpreter);
    }
    release_sources(c->from);
    memset(c, 0, sizeof *c);
}

/* The slot holding `s` compiled, or NULL. Read under the lock or by the owning thread. */
static compiled *holding(worker *w, const sources *s)
{
    for (int i = 0; i < 2; i++) {
        if (w->slots[i].from == s) {
            return &w->slots[i];
        }
    }
    return NULL;
}

/* Compile `s` as engine/embedded.py's compile_bundle does; 0, or -1 with rego-cpp's reason in
 * `error`. Any thread, no GIL needed. */
static int compile(sources *s, compiled *into, char *error, size_t room)
{
    void *interpreter = rego.new_interpreter();
    if (interpreter == NULL) {
        snprintf(error, room, "no memory for an interpreter");
        return -1;
    }
    rego.set_log_level(interpreter, 0);
    rego.set_strict_built_in_errors(interpreter, 1);
    int failed = 0;
    for (size_t i = 0; i < s->modules && !failed; i++) {
        failed = rego.add_module(interpreter, s->names[i], s->sources[i]) != 0;
    }
    failed = failed || rego.add_data_json(interpreter, s->data) != 0 ||
             rego.add_entrypoint(interpreter, s->entrypoint) != 0;
    void *bundle = failed ? NULL : rego.build(interpreter);
    if (bundle == NULL || !rego.bundle_ok(bundle)) {
        copy_error(interpreter, error, room);
        if (bundle != NULL) {
            rego.free_bundle(bundle);
        }
        rego.free_interpreter(interpreter);
        return -1;
    }
    if (rego.forget_verified) {
        rego.forget_verified(); /* the new bundle may sit where a freed one was */
    }
    atomic_fetch_add(&s->references, 1);
    into->from = s;
    into->interpreter = interpreter;
    into->bundle = bundle;
    into->used = 0;
    return 0;
}

/* Put `fresh` in the least recently used slot (owning thread); the slot. */
static compiled *install(worker *w, compiled *fresh)
{
    compiled *slot = w->slots[0].used <= w->slots[1].used ? &w->slots[0] : &w->slots[1];
    compiled old;
    pthread_mutex_lock(&w->pool->lock); /* `holding` is read under the lock by `warmed` */
    old = *slot;
    *slot = *fresh;
    slot->used = ++w->clock;
    pthread_mutex_unlock(&w->pool->lock);
    drop(&old);
    return slot;
}

static void run(worker *w, job *j)
{
    compiled *slot = holding(w, j->sources);
    if (slot == NULL) { /* not prepared: compile now, and say so to `cancel` */
        compiled fresh;
        pthread_mutex_lock(&w->pool->lock);
        w->compiling = 1;
        pthread_mutex_unlock(&w->pool->lock);
        int failed = compile(j->sources, &fresh, j->error, sizeof j->error);
        pthread_mutex_lock(&w->pool->lock);
        w->compiling = 0;
        pthread_mutex_unlock(&w->pool->lock);
        if (failed) {
            j->ending = NOT_COMPILED;
            return;
        }
        slot = install(w, &fresh);
    }
    slot->used = ++w->clock;
    j->ending = run_plan(&j->plan, slot->interpreter, slot->bundle, j->sources->entrypoint,
                         &j->output, j->error);
}

#define WORKER_NICE 10

static void *work(void *argument)
{
    worker *w = argument;
    shared *s = w->pool;
    /* Evaluations yield the CPU to the event loop: one that runs past its deadline must not
     * delay the answers (the deny at the deadline among them) the loop has to send. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), WORKER_NICE);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->queued == NULL && !s->closing) {
            pthread_cond_wait(&s->work, &s->lock);
        }
        job *j = s->queued;
        if (j == NULL) { /* closing, and nothing left */
            break;
        }
        s->queued = j->next;
        w->current = j;
        compiled incoming = w->incoming;
        memset(&w->incoming, 0, sizeof w->incoming);
        pthread_mutex_unlock(&s->lock);

        if (incoming.from != NULL && holding(w, incoming.from) == NULL) {
            install(w, &incoming);
        } else {
            drop(&incoming);
        }
        run(w, j);

        pthread_mutex_lock(&s->lock);
        w->current = NULL;
        int first = finish(s, j);
        pthread_mutex_unlock(&s->lock);
        if (first) {
            wake(s);
        }
        pthread_mutex_lock(&s->lock);
    }
    for (int i = 0; i < s->threads; i++) {
        if (s->workers[i] == w) {
            s->workers[i] = NULL;
        }
    }
    compiled incoming = w->incoming;
    pthread_mutex_unlock(&s->lock);
    drop(&incoming);
    drop(&w->slots[0]);
    drop(&w->slots[1]);
    free(w);
    release_shared(s);
    return NULL;
}

/* ---- Pool: the Python side. ----------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    shared *shared;
    int threads; /* started; read-only `threads` attribute */
} Pool;

static int pool_init(Pool *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"threads", NULL};
    int threads;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i", keywords, &threads)) {
        return -1;
    }
    if (self->shared != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a pool is initialised once");
        return -1;
    }
    if (!rego_bound) {
        PyErr_SetString(PyExc_RuntimeError, "bind() the rego-cpp functions first");
        return -1;
    }
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads must be 1 to %d", MAX_THREADS);
        return -1;
    }
    shared *s = calloc(1, sizeof *s);
    if (s == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->ready = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->ready < 0) {
        free(s);
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    atomic_init(&s->references, 1);
    self->shared = s;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < threads; i++) {
        worker *w = calloc(1, sizeof *w);
        pthread_t thread;
        if (w == NULL) {
            PyErr_NoMemory();
            break;
        }
        w->pool = s;
        atomic_fetch_add(&s->references, 1);
        pthread_mutex_lock(&s->lock);
        s->workers[s->threads++] = w;
        pthread_mutex_unlock(&s->lock);
        int failed = pthread_create(&thread, &attributes, work, w);
        if (failed) {
            pthread_mutex_lock(&s->lock);
            s->workers[--s->threads] = NULL;
            pthread_mutex_unlock(&s->lock);
            atomic_fetch_sub(&s->references, 1);
            free(w);
            errno = failed;
            PyErr_SetFromErrno(PyExc_OSError);
            break;
        }
        self->threads++;
    }
    pthread_attr_destroy(&attributes);
    return PyErr_Occurred() ? -1 : 0;
}

static void close_shared(shared *s)
{
    pthread_mutex_lock(&s->lock);
    s->closing = 1;
    int first = 0;
    while (s->queued != NULL) {
        job *j = s->queued;
        s->queued = j->next;
        j->ending = CLOSED;
        first |= finish(s, j);
    }
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    if (first) {
        wake(s);
    }
}

static void pool_dealloc(Pool *self)
{
    if (self->shared != NULL) {
        close_shared(self->shared);
        release_shared(self->shared);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static shared *opened(Pool *self)
{
    if (self->shared == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the pool is not initialised");
    }
    return self->shared;
}

static PyObject *pool_submit(Pool *self, PyObject *args)
{
    unsigned long long id;
    PyObject *value;
    Generation *generation;
    shared *s = opened(self);
    if (s == NULL || !PyArg_ParseTuple(args, "KO!O", &id, &GenerationType, &generation, &value)) {
        return NULL;
    }
    if (generation->sources == NULL) {
        PyErr_SetString(PyExc_ValueError, "an uninitialised generation");
        return NULL;
    }
    job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        return PyErr_NoMemory();
    }
    if (plan_value(&j->plan, value, 0)) {
        plan_free(&j->plan);
        free(j);
        return NULL;
    }
    j->id = id;
    j->sources = generation->sources;
    atomic_fetch_add(&j->sources->references, 1);
    pthread_mutex_lock(&s->lock);
    if (s->closing) {
        pthread_mutex_unlock(&s->lock);
        free_job(j);
        PyErr_SetString(PyExc_RuntimeError, "the pool is closed");
        return NULL;
    }
    if (s->queued == NULL) {
        s->queued = j;
    } else {
        s->queued_last->next = j;
    }
    s->queued_last = j;
    pthread_cond_signal(&s->work);
    pthread_mutex_unlock(&s->lock);
    Py_RETURN_NONE;
}

static PyObject *pool_cancel(Pool *self, PyObject *args)
{
    unsigned long long id;
    shared *s = opened(self);
    if (s == NULL || !PyArg_ParseTuple(args, "K", &id)) {
        return NULL;
    }
    job *removed = NULL;
    const char *state = "finished";
    pthread_mutex_lock(&s->lock);
    for (job **at = &s->queued, *previous = NULL; *at != NULL; previous = *at, at = &(*at)->next) {
        if ((*at)->id == id) {
            removed = *at;
            *at = removed->next;
            if (s->queued_last == removed) {
                s->queued_last = previous;
            }
            state = "dropped";
            break;
        }
    }
    for (int i = 0; removed == NULL && i < s->threads; i++) {
        worker *w = s->workers[i];
        if (w != NULL && w->current != NULL && w->current->id == id) {
            state = w->compiling ? "compiling" : "evaluating";
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (removed != NULL) {
        free_job(removed);
    }
    return PyUnicode_FromString(state);
}

static PyObject *pool_prepare(Pool *self, PyObject *args)
{
    Generation *generation;
    shared *s = opened(self);
    if (s == NULL || !PyArg_ParseTuple(args, "O!", &GenerationType, &generation)) {
        return NULL;
    }
    sources *wanted = generation->sources;
    if (wanted == NULL) {
        PyErr_SetString(PyExc_ValueError, "an uninitialised generation");
        return NULL;
    }
    char error[ERROR_ROOM] = "";
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < self->threads && !failed; i++) {
        pthread_mutex_lock(&s->lock);
        int running = s->workers[i] != NULL; /* a thread of a closed pool may have ended */
        pthread_mutex_unlock(&s->lock);
        if (!running) {
            continue;
        }
        compiled fresh, replaced = {0};
        failed = compile(wanted, &fresh, error, sizeof error) != 0;
        if (failed) {
            break;
        }
        pthread_mutex_lock(&s->lock);
        worker *w = s->workers[i];
        if (w != NULL) { /* still running: it installs this at its next job */
            replaced = w->incoming;
            w->incoming = fresh;
        } else {
            replaced = fresh;
        }
        pthread_mutex_unlock(&s->lock);
        drop(&replaced);
    }
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_Format(PyExc_ValueError, "the bundle did not compile: %s", error);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *pool_warmed(Pool *self, PyObject *args)
{
    Generation *generation;
    shared *s = opened(self);
    if (s == NULL || !PyArg_ParseTuple(args, "O!", &GenerationType, &generation)) {
        return NULL;
    }
    int count = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->threads; i++) {
        worker *w = s->workers[i];
        count += w != NULL && (holding(w, generation->sources) != NULL ||
                               w->incoming.from == generation->sources);
    }
    pthread_mutex_unlock(&s->lock);
    return PyLong_FromLong(count);
}

static PyObject *pool_take(Pool *self, PyObject *unused)
{
    shared *s = opened(self);
    if (s == NULL) {
        return NULL;
    }
    uint64_t count;
    while (read(s->ready, &count, sizeof count) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&s->lock);
    job *j = s->done;
    s->done = s->done_last = NULL;
    pthread_mutex_unlock(&s->lock);
    PyObject *finished = PyList_New(0);
    while (j != NULL) {
        job *next = j->next;
        PyObject *entry = finished == NULL ? NULL
                                           : Py_BuildValue("(KNzs)", j->id,
                                                           PyLong_FromVoidPtr(j->output),
                                                           ending_name(j->ending), j->error);
        if (entry != NULL && PyList_Append(finished, entry) == 0) {
            j->output = NULL; /* the caller frees it now */
        } else {
            Py_CLEAR(finished); /* out of memory: free_job frees the output */
        }
        Py_XDECREF(entry);
        free_job(j);
        j = next;
    }
    return finished;
}

static PyObject *pool_close(Pool *self, PyObject *unused)
{
    if (self->shared != NULL) {
        close_shared(self->shared);
    }
    Py_RETURN_NONE;
}

static PyObject *pool_fileno(Pool *self, PyObject *unused)
{
    shared *s = opened(self);
    return s == NULL ? NULL : PyLong_FromLong(s->ready);
}

static PyMethodDef pool_methods[] = {
    {"submit", (PyCFunction)pool_submit, METH_VARARGS,
     "submit(id, generation, value): queue an evaluation of `value` as the input; ValueError or "
     "TypeError when it cannot be passed, RuntimeError when the pool is closed."},
    {"cancel", (PyCFunction)pool_cancel, METH_VARARGS,
     "cancel(id): 'dropped' if the job was still queued (it never runs), 'compiling' or "
     "'evaluating' if a thread is on it, 'finished' otherwise."},
    {"prepare", (PyCFunction)pool_prepare, METH_VARARGS,
     "prepare(generation): compile it for every thread, here (GIL released), and hand each "
     "thread its copy to install at its next job; ValueError if it does not compile."},
    {"warmed", (PyCFunction)pool_warmed, METH_VARARGS,
     "warmed(generation): how many threads hold it compiled (for tests: the gate never asks)."},
    {"take", (PyCFunction)pool_take, METH_NOARGS,
     "take(): the finished jobs as (id, output, stage, error): the regoOutput address (the "
     "caller frees it) and None, or 0 and the stage that failed ('refused', 'input', 'query', "
     "'compile', 'memory' or 'closed') with rego-cpp's message."},
    {"close", (PyCFunction)pool_close, METH_NOARGS,
     "close(): take no more jobs; queued ones finish as 'closed'; threads end after their job."},
    {"fileno", (PyCFunction)pool_fileno, METH_NOARGS,
     "fileno(): the eventfd that is readable when take() has jobs to return."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef pool_members[] = {
    {"threads", T_INT, offsetof(Pool, threads), READONLY, "How many threads the pool started."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject PoolType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "maestro_gate.engine._rego.Pool",
    .tp_doc = "Pool(threads): native threads evaluating queued decisions without the GIL.",
    .tp_basicsize = sizeof(Pool),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)pool_init,
    .tp_dealloc = (destructor)pool_dealloc,
    .tp_methods = pool_methods,
    .tp_members = pool_members,
};

int add_pool_types(PyObject *module)
{
    if (PyType_Ready(&GenerationType) || PyType_Ready(&PoolType)) {
        return -1;
    }
    Py_INCREF(&GenerationType);
    if (PyModule_AddObject(module, "Generation", (PyObject *)&GenerationType)) {
        Py_DECREF(&GenerationType);
        return -1;
    }
    Py_INCREF(&PoolType);
    if (PyModule_AddObject(module, "Pool", (PyObject *)&PoolType)) {
        Py_DECREF(&PoolType);
        return -1;
    }
    return 0;
}
