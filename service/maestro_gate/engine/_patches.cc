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
 *    those with `maestro_gate_trusted`) and not again until the gate compiles a bundle (`forget`,
 *    engine/embedded.py). Any other caller (policy test, raw queries) is verified every time.
 *
 * Built with -fno-access-control: the code reads libstdc++'s locale internals as its own
 * headers do.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <cstring>
#include <ios>
#include <locale>
#include <mutex>
#include <stdexcept>

namespace {

/* Set once, then only read: a counter here would bounce a cache line between the workers. */
std::atomic<bool> streams_patched{false};
std::atomic<unsigned long long> verified{0}, skipped{0};

typedef void (*verify_function)(const void *);
verify_function rego_verify = nullptr;

/* The bundles verified since the last compile: one or two live at a time. No std container, so
 * no template instantiation joins the symbols this module exports. When full, verify runs. */
std::mutex lock;
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

int find_rego(struct dl_phdr_info *info, size_t, void *found)
{
    if (info->dlpi_name != nullptr && std::strstr(info->dlpi_name, "librego_shared.so")) {
        *static_cast<const char **>(found) = info->dlpi_name;
        return 1;
    }
    return 0;
}

/* rego-cpp's own BundleDef::verify: the library is loaded RTLD_LOCAL, so look in it directly.
 * Called holding `lock`. */
void find_rego_verify()
{
    if (rego_verify != nullptr) {
        return;
    }
    const char *path = nullptr;
    dl_iterate_phdr(find_rego, &path);
    void *library = path ? dlopen(path, RTLD_NOLOAD | RTLD_LAZY) : nullptr;
    if (library != nullptr) {
        rego_verify = reinterpret_cast<verify_function>(dlsym(library, "_ZNK4rego9BundleDef6verifyEv"));
    }
}

}  // namespace

/* Built with -fvisibility=hidden: these two and PyInit__patches are all the module exports. */
#define EXPORTED __attribute__((visibility("default")))

EXPORTED void cache_locale(std::basic_ios<char> *self, const std::locale &locale)
    __asm__("_ZNSt9basic_iosIcSt11char_traitsIcEE15_M_cache_localeERKSt6locale");

void cache_locale(std::basic_ios<char> *self, const std::locale &locale)
{
    const std::locale::facet **facets = locale._M_impl->_M_facets;
    self->_M_ctype = static_cast<const std::ctype<char> *>(facets[std::ctype<char>::id._M_id()]);
    self->_M_num_put =
        static_cast<const std::num_put<char> *>(facets[std::num_put<char>::id._M_id()]);
    self->_M_num_get =
        static_cast<const std::num_get<char> *>(facets[std::num_get<char>::id._M_id()]);
    if (!streams_patched.load(std::memory_order_relaxed)) {
        streams_patched.store(true, std::memory_order_relaxed);
    }
}

EXPORTED void bundle_verify(const void *bundle) __asm__("_ZNK4rego9BundleDef6verifyEv");

/* Throws like the original: rego-cpp turns the exception into an error result, so a deny. */
void bundle_verify(const void *bundle)
{
    verify_function verify;
    {
        std::lock_guard<std::mutex> held(lock);
        find_rego_verify();
        if (trusted && was_seen(bundle)) {
            skipped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        verify = rego_verify;
    }
    if (verify == nullptr) {
        throw std::runtime_error("rego::BundleDef::verify not found in librego_shared.so");
    }
    verify(bundle);
    verified.fetch_add(1, std::memory_order_relaxed);
    if (trusted) {
        std::lock_guard<std::mutex> held(lock);
        if (!was_seen(bundle) && seen_count < sizeof seen / sizeof seen[0]) {
            seen[seen_count++] = bundle;
        }
    }
}

/* Called by engine/_rego.c around its query, on the evaluating thread. */
extern "C" void maestro_gate_trusted(int on)
{
    trusted = on != 0;
}

static PyObject *forget(PyObject *, PyObject *)
{
    std::lock_guard<std::mutex> held(lock);
    seen_count = 0;
    Py_RETURN_NONE;
}

static PyObject *counts(PyObject *, PyObject *)
{
    return Py_BuildValue("{sOsKsK}", "streams_patched", streams_patched.load() ? Py_True : Py_False,
                         "verified", verified.load(), "verify_skipped", skipped.load());
}

static PyObject *trusted_address(PyObject *, PyObject *)
{
    return PyLong_FromVoidPtr(reinterpret_cast<void *>(&maestro_gate_trusted));
}

static PyMethodDef methods[] = {
    {"forget", forget, METH_NOARGS,
     "Verify every bundle again on its next query (call after compiling a bundle)."},
    {"counts", counts, METH_NOARGS,
     "Whether a stream took the patched locale path; how often verify ran and was skipped."},
    {"trusted_address", trusted_address, METH_NOARGS,
     "The address of maestro_gate_trusted(int), for engine/_rego.c."},
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
