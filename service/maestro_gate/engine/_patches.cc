/*
 * Two performance fixes for rego-cpp 1.5.2 (regopy's librego_shared.so), by symbol interposition.
 *
 * engine/patches.py loads this module with RTLD_GLOBAL before anything loads rego-cpp, so the
 * dynamic linker binds every call of the two symbols below, from rego-cpp and from libstdc++
 * itself, to these definitions. Measured with bench/engine_bench.py, they take a decision on the
 * MAESTRO bundle from about 1.0 ms to about 0.68 ms. MAESTRO_GATE_ENGINE_PATCHES=off leaves them
 * unloaded.
 *
 * 1. std::basic_ios<char>::_M_cache_locale (libstdc++). rego-cpp compares keys as strings built
 *    in a std::ostringstream (rego::to_key), and an object lookup builds one per member it scans.
 *    Every stream construction caches three facets of its locale; libstdc++ 12 (Debian bookworm's)
 *    finds each with has_facet then use_facet, six dynamic_casts, a quarter of rego-cpp's time.
 *    libstdc++ 13 and later read the three with a static_cast, since every locale holds the
 *    standard facets; this is that code.
 * 2. rego::BundleDef::verify (rego-cpp). Each query re-verifies the whole compiled bundle before
 *    running it (VirtualMachine::bundle), another fifth of the time. Here a bundle is verified by
 *    rego-cpp's own verify on the first query made from the gate's evaluate (engine/_rego.c marks
 *    those with `maestro_gate_trusted`) and not again until the gate compiles a bundle
 *    (`maestro_gate_forget`, called by engine/embedded.py and engine/_pool.c's compiles). Any
 *    other caller (policy test, raw queries) is verified every time.
 *
 * Built with -fno-access-control: the code reads libstdc++'s locale internals as its own
 * headers do. It is linked without libstdc++ and calls none of it directly: loading it
 * RTLD_GLOBAL must not put libstdc++ ahead of rego-cpp, or rego-cpp's own operator new
 * (snmalloc) would lose to glibc malloc, which measured 60% slower at building inputs. The
 * facet ids come from the libstdc++ rego-cpp loaded, found at first use.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <ios>
#include <locale>

namespace {

/* Set once, then only read: a counter here would bounce a cache line between the workers. */
std::atomic<bool> streams_patched{false};
std::atomic<unsigned long long> verified{0}, skipped{0};

/* A library already loaded in the process, by part of its file name. */
void *loaded(const char *name_part)
{
    struct wanted {
        const char *part, *path;
    } want = {name_part, nullptr};
    dl_iterate_phdr(
        [](struct dl_phdr_info *info, size_t, void *data) {
            auto *w = static_cast<wanted *>(data);
            if (info->dlpi_name != nullptr && strstr(info->dlpi_name, w->part) != nullptr) {
                w->path = info->dlpi_name;
                return 1;
            }
            return 0;
        },
        &want);
    return want.path ? dlopen(want.path, RTLD_NOLOAD | RTLD_LAZY) : nullptr;
}

/* Nothing here can fail once rego-cpp is loaded; if it does, stop rather than decide. */
[[noreturn]] void give_up(const char *what)
{
    fprintf(stderr, "maestro_gate.engine._patches: %s; stopping\n", what);
    abort();
}

/* ---- 1. the facets: their index in every locale, from the libstdc++ rego-cpp loaded ------- */

size_t ctype_index, num_put_index, num_get_index;
pthread_once_t indexes_found = PTHREAD_ONCE_INIT;

void find_indexes()
{
    void *libstdcxx = loaded("libstdc++.so");
    auto find = [libstdcxx](const char *name) {
        return libstdcxx ? dlsym(libstdcxx, name) : nullptr;
    };
    typedef size_t (*id_function)(const void *);
    auto id_of = (id_function)find("_ZNKSt6locale2id5_M_idEv"); /* std::locale::id::_M_id */
    const void *ctype = find("_ZNSt5ctypeIcE2idE");
    const void *num_put = find("_ZNSt7num_putIcSt19ostreambuf_iteratorIcSt11char_traitsIcEEE2idE");
    const void *num_get = find("_ZNSt7num_getIcSt19istreambuf_iteratorIcSt11char_traitsIcEEE2idE");
    if (!id_of || !ctype || !num_put || !num_get) {
        give_up("libstdc++'s facet ids were not found");
    }
    ctype_index = id_of(ctype);
    num_put_index = id_of(num_put);
    num_get_index = id_of(num_get);
}

/* ---- 2. verify once: the bundles verified since the last compile -------------------------- */

typedef void (*verify_function)(const void *);
verify_function rego_verify = nullptr;
pthread_once_t rego_verify_found = PTHREAD_ONCE_INIT;

void find_rego_verify()
{
    void *library = loaded("librego_shared.so");
    void *found = library ? dlsym(library, "_ZNK4rego9BundleDef6verifyEv") : nullptr;
    rego_verify = (verify_function)found;
    if (rego_verify == nullptr) {
        give_up("rego::BundleDef::verify was not found in librego_shared.so");
    }
}

/* One or two bundles live at a time; when full, verify runs. */
pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
const void *seen[16];
size_t seen_count = 0;
thread_local bool trusted = false;

bool was_seen(const void *bundle)
{
    for (size_t i = 0; i < seen_count; i++) {
        if (seen[i] == bundle) {
            return true;
        }
    }
    return false;
}

}  // namespace

/* Built with -fvisibility=hidden: these two and PyInit__patches are all the module exports. */
#define EXPORTED __attribute__((visibility("default")))

EXPORTED void cache_locale(std::basic_ios<char> *self, const std::locale &locale)
    __asm__("_ZNSt9basic_iosIcSt11char_traitsIcEE15_M_cache_localeERKSt6locale");

void cache_locale(std::basic_ios<char> *self, const std::locale &locale)
{
    pthread_once(&indexes_found, find_indexes);
    const std::locale::facet **facets = locale._M_impl->_M_facets;
    self->_M_ctype = static_cast<const std::ctype<char> *>(facets[ctype_index]);
    self->_M_num_put = static_cast<const std::num_put<char> *>(facets[num_put_index]);
    self->_M_num_get = static_cast<const std::num_get<char> *>(facets[num_get_index]);
    if (!streams_patched.load(std::memory_order_relaxed)) {
        streams_patched.store(true, std::memory_order_relaxed);
    }
}

EXPORTED void bundle_verify(const void *bundle) __asm__("_ZNK4rego9BundleDef6verifyEv");

/* rego-cpp's verify throws on a malformed bundle; that passes through here to its caller. */
void bundle_verify(const void *bundle)
{
    pthread_once(&rego_verify_found, find_rego_verify);
    if (trusted) {
        pthread_mutex_lock(&lock);
        bool known = was_seen(bundle);
        pthread_mutex_unlock(&lock);
        if (known) {
            skipped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
    }
    rego_verify(bundle);
    verified.fetch_add(1, std::memory_order_relaxed);
    if (trusted) {
        pthread_mutex_lock(&lock);
        if (!was_seen(bundle) && seen_count < sizeof seen / sizeof seen[0]) {
            seen[seen_count++] = bundle;
        }
        pthread_mutex_unlock(&lock);
    }
}

/* Called by engine/_rego.c around a query, on the evaluating thread. */
extern "C" void maestro_gate_trusted(int on)
{
    trusted = on != 0;
}

/* Called after compiling a bundle, by engine/embedded.py and by engine/_pool.c's threads. */
extern "C" void maestro_gate_forget()
{
    pthread_mutex_lock(&lock);
    seen_count = 0;
    pthread_mutex_unlock(&lock);
}

static PyObject *forget(PyObject *, PyObject *)
{
    maestro_gate_forget();
    Py_RETURN_NONE;
}

static PyObject *counts(PyObject *, PyObject *)
{
    return Py_BuildValue("{sOsKsK}", "streams_patched", streams_patched.load() ? Py_True : Py_False,
                         "verified", verified.load(), "verify_skipped", skipped.load());
}

static PyObject *addresses(PyObject *, PyObject *)
{
    void *trusted = reinterpret_cast<void *>(&maestro_gate_trusted);
    void *forgetting = reinterpret_cast<void *>(&maestro_gate_forget);
    return Py_BuildValue("(NN)", PyLong_FromVoidPtr(trusted), PyLong_FromVoidPtr(forgetting));
}

static PyMethodDef methods[] = {
    {"forget", forget, METH_NOARGS,
     "Verify every bundle again on its next query (call after compiling a bundle)."},
    {"counts", counts, METH_NOARGS,
     "Whether a stream took the patched locale path; how often verify ran and was skipped."},
    {"addresses", addresses, METH_NOARGS,
     "The addresses of maestro_gate_trusted(int) and maestro_gate_forget(), for engine/_rego.c."},
    {nullptr, nullptr, 0, nullptr},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_patches", "Performance fixes for rego-cpp, by symbol interposition.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__patches(void)
{
    return PyModule_Create(&module);
}
