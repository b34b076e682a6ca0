/*
 * Performance fixes for rego-cpp 1.5.2 (regopy's librego_shared.so), by symbol interposition.
 *
 * engine/patches.py loads this module with RTLD_GLOBAL before anything loads rego-cpp, so the
 * dynamic linker binds every call of the symbols below, from rego-cpp and from libstdc++ itself,
 * to these definitions (fix 5 is bound by engine/native_eval.py instead). Measured with
 * bench/engine_bench.py, they take a decision on the MAESTRO bundle from about 0.84 ms to about
 * 0.23 ms, and with the service's 20-entry session history from 1.15 ms to 0.29 ms.
 * MAESTRO_GATE_ENGINE_PATCHES=off leaves them unloaded.
 *
 * 1. std::basic_ios<char>::_M_cache_locale (libstdc++). rego-cpp builds strings in
 *    std::ostringstreams, and every stream construction caches three facets of its locale;
 *    libstdc++ 12 (Debian bookworm's) finds each with has_facet then use_facet, six
 *    dynamic_casts. libstdc++ 13 and later read the three with a static_cast, since every locale
 *    holds the standard facets; this is that code.
 * 2. rego::to_key (rego-cpp): the string rego-cpp compares object keys, set members and values
 *    by. An object lookup builds one per member it scans, each in a fresh std::ostringstream.
 *    For a string, integer, boolean or null it is just the text (a string quoted), built here
 *    with rego-cpp's own add_quotes and strip_quotes; anything else goes to rego-cpp's to_key.
 * 3. rego::VirtualMachine::run_call (rego-cpp). For a built-in (comparisons, arithmetic, count,
 *    object.get, ...) it reads the arguments in a lambda that captures the whole VM state by
 *    value, copying and freeing the locals frame, call stack and function cache on every call.
 *    Here the built-in branch reads the state in place; the bundle's own functions go to
 *    rego-cpp's run_call, whose first question, rego::BuiltInsDef::is_builtin (a lookup among
 *    the built-ins by name), is answered at once for their names (g0.<path>).
 * 4. rego::Resolver::to_term (rego-cpp). Building input through the C API deep-copies every value
 *    at every object level it is nested in; while the gate builds its own input, fresh values are
 *    wrapped as they are.
 * 5. regoSetInput (rego-cpp's C API, replaced for the gate's calls by engine/native_eval.py): copies the
 *    finished input once more before Interpreter::set_input; here the input goes in as it is.
 * 6. rego::BundleDef::verify (rego-cpp). Each query re-verifies the whole compiled bundle before
 *    running it (VirtualMachine::bundle). Here a bundle is verified by rego-cpp's own verify on
 *    the first query made from the gate's evaluate (engine/_rego.c marks those with
 *    `maestro_gate_mark`) and not again until the gate compiles a bundle
 *    (`maestro_gate_forget`, called by engine/embedded.py and engine/_pool.c's compiles). Any
 *    other caller (policy test, raw queries) is verified every time.
 * 7. rego::VirtualMachine::State::read_local, write_local and is_defined (rego-cpp), run for
 *    nearly every statement: with tracing off they still look up the log level and copy the node
 *    twice for the trace line they do not write. Here they do the rest, and write no trace lines.
 * 8. rego::VirtualMachine::dot (rego-cpp): an object lookup builds a key string for the key and
 *    for every member it passes (fix 2 made each cheaper). For a string key on an object with
 *    string keys, the texts are compared in place, with the same outcome.
 * 9. trieste::Location::Location(text): every node rego-cpp builds from a string gets a new
 *    source (allocated, copied, scanned for lines), "true" and "false" above all. Each thread
 *    shares one source for each of those two texts.
 *
 * Fixes 2 to 5, 7 and 8 read rego-cpp's objects at offsets read off its 1.5.2 code (noted where
 * used);
 * engine/patches.py loads the module only with that release, and tests/test_engine_patches.py
 * checks decisions are byte-for-byte those of rego-cpp as shipped.
 *
 * Built with -fno-access-control: the code reads libstdc++'s locale internals as its own
 * headers do. It is linked without libstdc++ and calls none of it directly: loading it
 * RTLD_GLOBAL must not put libstdc++ ahead of rego-cpp, or rego-cpp's own operator new
 * (snmalloc) would lose to glibc malloc, which measured 60% slower at building inputs. The
 * facet ids, and every rego-cpp function the fixes call, come from the libraries rego-cpp
 * loaded, found at first use. Built without exceptions: an exception rego-cpp throws through
 * fix 3 (a malformed bundle) passes through, leaking that call's argument references.
 */
#include "_rego.h" /* Python.h, and the marks engine/_rego.c sets (QUERYING, BUILDING_INPUT) */

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <ios>
#include <locale>
#include <string>
#include <string_view>

namespace {

/* Set once, then only read: a counter here would bounce a cache line between the workers. */
std::atomic<bool> streams_patched{false}, keys_patched{false}, calls_patched{false},
    terms_patched{false}, inputs_patched{false}, locals_patched{false},
    lookups_patched{false}, booleans_patched{false};
std::atomic<unsigned long long> verified{0}, skipped{0};

/* Note that a fix has run: one relaxed load after the first time. */
void in_effect(std::atomic<bool> &flag)
{
    if (!flag.load(std::memory_order_relaxed)) {
        flag.store(true, std::memory_order_relaxed);
    }
}

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

/* A symbol of librego_shared.so (rego-cpp as regopy loaded it); stop if it is missing. */
void *rego_symbol(void *library, const char *name)
{
    void *found = library ? dlsym(library, name) : nullptr;
    if (found == nullptr) {
        fprintf(stderr, "maestro_gate.engine._patches: %s is missing\n", name);
        give_up("a rego-cpp symbol the fixes call was not found in librego_shared.so");
    }
    return found;
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

/* ---- 2. keys of scalars: rego-cpp's own string functions (find_rego, below, finds them) ---- */

/* trieste::NodeDef as rego-cpp 1.5.2 lays it out (read off its code: to_key reads the type at 8,
 * the first child at 64): refcount, Token type_ (a TokenDef pointer), Location location_ at 16
 * (source, pos, len), symtab, parent, flags, then the children vector. */
const size_t TYPE_AT = 8, LOCATION_AT = 16, CHILDREN_AT = 64;

/* A node's type: the address of its TokenDef. */
const void *type_of(const char *def)
{
    return *reinterpret_cast<const void *const *>(def + TYPE_AT);
}

typedef std::string (*to_key_function)(const void *, int, bool, const char *);
typedef std::string (*quotes_function)(const std::string_view &);
typedef std::string_view (*view_function)(const void *);

to_key_function rego_to_key = nullptr;
quotes_function add_quotes = nullptr, strip_quotes = nullptr;
view_function location_view = nullptr;
const void *Int, *JSONString, *Key, *True, *False, *Null, *Scalar, *Term, *DataTerm;
/* ---- 3. built-in calls: rego-cpp's own functions --------------------------------------- */

}  // namespace

/* trieste::Node, an intrusive_ptr<NodeDef>: one pointer to a node whose first word is its atomic
 * reference count. Having a copy constructor and destructor, it is passed and returned by address,
 * exactly as trieste's own. Outside the anonymous namespace: the exported to_term returns one. */
typedef void (*release_function)(void *);
static release_function release_node = nullptr;

/* One more reference to a reference-counted trieste object (a NodeDef or a SourceDef: the count
 * is its first word). */
static void retain(void *counted)
{
    __atomic_fetch_add(static_cast<size_t *>(counted), 1, __ATOMIC_SEQ_CST);
}

struct NodeRef {
    void *p = nullptr;
    NodeRef() = default;
    NodeRef(const NodeRef &other) : p(other.p)
    {
        if (p != nullptr) {
            retain(p);
        }
    }
    NodeRef &operator=(const NodeRef &) = delete;
    ~NodeRef()
    {
        if (p != nullptr) {
            release_node(p);
        }
    }
};

/* trieste::Location: an intrusive_ptr<SourceDef> (its first word the reference count), then pos
 * and len. */
struct LocationRef {
    void *source;
    size_t pos, len;
};

namespace {

/* VirtualMachine::Code values, read off rego-cpp 1.5.2's run_call. */
const int CODE_CONTINUE = 1, CODE_ERROR = 6;
/* VirtualMachine holds its BuiltInsDef pointer at 16 (run_call reads it there). */
const size_t BUILTINS_AT = 16;
/* A bundle::Operand is 16 bytes (run_call steps through them so). */
const size_t OPERAND_SIZE = 16;

typedef int (*run_call_function)(const void *, void *, const void *, const void *, size_t);
typedef bool (*in_call_stack_function)(const void *, const void *);
typedef bool (*is_builtin_function)(void *, const void *);
typedef NodeRef (*unpack_function)(const void *, const void *, const void *);
typedef NodeRef (*call_function)(void *, const void *, const void *, const void *);
typedef void (*write_local_function)(void *, size_t, NodeRef);
typedef void (*add_error_function)(void *, NodeRef);
typedef void (*nodes_destructor)(void *);
typedef void *(*new_function)(size_t);

run_call_function rego_run_call = nullptr;
in_call_stack_function in_call_stack = nullptr;
is_builtin_function is_builtin = nullptr;
unpack_function unpack_operand = nullptr;
call_function call_builtin = nullptr;
write_local_function write_local = nullptr;
add_error_function add_error = nullptr;
nodes_destructor destroy_nodes = nullptr;
new_function rego_new = nullptr;
const void *Error = nullptr;
/* The trieste::Location {"v1"} rego-cpp builds afresh for every built-in call; built once here.
 * Its source's reference count is atomic, so the threads share it. */
LocationRef v1;
/* ---- 4 and 5. input terms: rego-cpp's own node functions --------------------------------- */

/* NodeDef's parent pointer sits at 48 (trieste's push_back writes it there). */
const size_t PARENT_AT = 48;

typedef NodeRef (*to_term_function)(const void *);
typedef NodeRef (*create_function)(const void *);
typedef void (*push_back_function)(void *, NodeRef);

typedef unsigned int (*set_input_function)(void *, void *);
typedef NodeRef (*interpreter_set_input_function)(void *, const void *);

to_term_function rego_to_term = nullptr;
create_function create_node = nullptr;
push_back_function push_back = nullptr;
set_input_function rego_set_input = nullptr;
interpreter_set_input_function interpreter_set_input = nullptr;
const void *Float, *Array, *Set, *Object, *Undefined, *ObjectItem;

typedef void (*make_location_function)(LocationRef *, const std::string *);
make_location_function make_location = nullptr;
typedef NodeRef (*dot_function)(const void *, const void *, const void *);
dot_function rego_dot = nullptr;
/* A new node of type `token` (a TokenDef's address) with `child` as its one child. */
NodeRef wrap(const void *token, const NodeRef &child)
{
    NodeRef node = create_node(&token); /* a trieste::Token is its TokenDef's address */
    push_back(node.p, child);
    return node;
}

/* ---- 6. verify once: the bundles verified since the last compile -------------------------- */

typedef void (*verify_function)(const void *);
verify_function rego_verify = nullptr;
/* One or two bundles live at a time; when full, verify runs. */
pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
const void *seen[16];
size_t seen_count = 0;
thread_local int marked = 0; /* engine/_rego.h's marks */

bool was_seen(const void *bundle)
{
    for (size_t i = 0; i < seen_count; i++) {
        if (seen[i] == bundle) {
            return true;
        }
    }
    return false;
}

/* ---- every rego-cpp symbol the fixes use, found once, at the first call of any of them ---- */

pthread_once_t rego_found = PTHREAD_ONCE_INIT;

void find_rego()
{
    void *library = loaded("librego_shared.so");
    rego_to_key = (to_key_function)rego_symbol(library,
        "_ZN4rego6to_keyB5cxx11ERKN7trieste13intrusive_ptrINS0_7NodeDefEEENS_9SetFormatEbPKc");
    add_quotes = (quotes_function)rego_symbol(library,
        "_ZN4rego10add_quotesB5cxx11ERKSt17basic_string_viewIcSt11char_traitsIcEE");
    strip_quotes = (quotes_function)rego_symbol(library,
        "_ZN4rego12strip_quotesB5cxx11ERKSt17basic_string_viewIcSt11char_traitsIcEE");
    location_view = (view_function)rego_symbol(library, "_ZNK7trieste8Location4viewEv");
    Int = rego_symbol(library, "_ZN4rego3IntE");
    JSONString = rego_symbol(library, "_ZN4rego10JSONStringE");
    Key = rego_symbol(library, "_ZN4rego3KeyE");
    True = rego_symbol(library, "_ZN4rego4TrueE");
    False = rego_symbol(library, "_ZN4rego5FalseE");
    Null = rego_symbol(library, "_ZN4rego4NullE");
    Scalar = rego_symbol(library, "_ZN4rego6ScalarE");
    Term = rego_symbol(library, "_ZN4rego4TermE");
    DataTerm = rego_symbol(library, "_ZN4rego8DataTermE");
    rego_run_call = (run_call_function)rego_symbol(library,
        "_ZNK4rego14VirtualMachine8run_callERNS0_5StateERKN7trieste8LocationERKSt6vectorINS_6bundle"
        "7OperandESaIS9_EEm");
    in_call_stack = (in_call_stack_function)rego_symbol(library,
        "_ZNK4rego14VirtualMachine5State16is_in_call_stackERKN7trieste8LocationE");
    is_builtin = (is_builtin_function)rego_symbol(library,
        "_ZN4rego11BuiltInsDef10is_builtinERKN7trieste8LocationE");
    unpack_operand = (unpack_function)rego_symbol(library,
        "_ZNK4rego14VirtualMachine14unpack_operandERKNS0_5StateERKNS_6bundle7OperandE");
    call_builtin = (call_function)rego_symbol(library,
        "_ZN4rego11BuiltInsDef4callERKN7trieste8LocationES4_RKSt6vectorINS1_13intrusive_ptrINS1_7N"
        "odeDefEEESaIS8_EE");
    write_local = (write_local_function)rego_symbol(library,
        "_ZN4rego14VirtualMachine5State11write_localEmN7trieste13intrusive_ptrINS2_7NodeDefEEE");
    add_error = (add_error_function)rego_symbol(library,
        "_ZN4rego14VirtualMachine5State9add_errorEN7trieste13intrusive_ptrINS2_7NodeDefEEE");
    destroy_nodes = (nodes_destructor)rego_symbol(library,
        "_ZNSt6vectorIN7trieste13intrusive_ptrINS0_7NodeDefEEESaIS3_EED1Ev");
    release_node = (release_function)rego_symbol(library,
        "_ZN7trieste20intrusive_refcountedINS_7NodeDefEE17intrusive_dec_refEv");
    /* The operator new rego-cpp's own calls bind to (the vector below is freed by rego-cpp): the
     * global scope's if it has one, else rego-cpp's (snmalloc), as its PLT resolves it. */
    rego_new = (new_function)dlsym(RTLD_DEFAULT, "_Znwm");
    if (rego_new == nullptr) {
        rego_new = (new_function)rego_symbol(library, "_Znwm");
    }
    Error = rego_symbol(library, "_ZN7trieste5ErrorE");
    make_location = (make_location_function)rego_symbol(library,
        "_ZN7trieste8LocationC1ERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE");
    /* A std::string "v1" as libstdc++'s C++11 ABI lays one out: its short text in place. */
    struct {
        const char *data;
        size_t size;
        char local[16];
    } text = {nullptr, 2, "v1"};
    text.data = text.local;
    make_location(&v1, reinterpret_cast<std::string *>(&text));
    rego_to_term = (to_term_function)rego_symbol(library,
        "_ZN4rego8Resolver7to_termERKN7trieste13intrusive_ptrINS1_7NodeDefEEE");
    create_node = (create_function)rego_symbol(library, "_ZN7trieste7NodeDef6createERKNS_5TokenE");
    push_back = (push_back_function)rego_symbol(library,
        "_ZN7trieste7NodeDef9push_backENS_13intrusive_ptrIS0_EE");
    rego_set_input = (set_input_function)rego_symbol(library, "regoSetInput");
    interpreter_set_input = (interpreter_set_input_function)rego_symbol(library,
        "_ZN4rego11Interpreter9set_inputERKN7trieste13intrusive_ptrINS1_7NodeDefEEE");
    Float = rego_symbol(library, "_ZN4rego5FloatE");
    Array = rego_symbol(library, "_ZN4rego5ArrayE");
    Set = rego_symbol(library, "_ZN4rego3SetE");
    Object = rego_symbol(library, "_ZN4rego6ObjectE");
    Undefined = rego_symbol(library, "_ZN4rego9UndefinedE");
    ObjectItem = rego_symbol(library, "_ZN4rego10ObjectItemE");
    rego_dot = (dot_function)rego_symbol(library,
        "_ZNK4rego14VirtualMachine3dotERKN7trieste13intrusive_ptrINS1_7NodeDefEEES6_");
    rego_verify = (verify_function)rego_symbol(library, "_ZNK4rego9BundleDef6verifyEv");
}

}  // namespace

/* Built with -fvisibility=hidden: these twelve and PyInit__patches are all the module exports. */
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
    in_effect(streams_patched);
}

/* rego::to_key(node, set_format, sort_arrays, list_delim): the string rego-cpp compares keys,
 * set members and values by. For a scalar it is the scalar's text (a string or key quoted), which
 * the original builds in a std::ostringstream; here it is built by the same add_quotes and
 * strip_quotes the original uses, without the stream. Scalar, Term and DataTerm wrap one child,
 * as in the original. Anything else (numbers written as floats, arrays, sets, objects, results)
 * goes to rego-cpp's own to_key, which calls back here for its members. */
EXPORTED std::string to_key(const void *node, int set_format, bool sort_arrays, const char *delim)
    __asm__("_ZN4rego6to_keyB5cxx11ERKN7trieste13intrusive_ptrINS0_7NodeDefEEENS_9SetFormatEbPKc");

std::string to_key(const void *node, int set_format, bool sort_arrays, const char *delim)
{
    pthread_once(&rego_found, find_rego);
    in_effect(keys_patched);
    const void *ref = node; /* a trieste::Node, i.e. a pointer to the NodeDef */
    for (;;) {
        const char *def = *static_cast<const char *const *>(ref);
        const void *type = type_of(def);
        if (type == Scalar || type == Term || type == DataTerm) {
            const char *const *children = reinterpret_cast<const char *const *>(def + CHILDREN_AT);
            if (children[0] == children[1]) {
                break; /* no child: the original's business */
            }
            ref = children[0];
            continue;
        }
        if (type == JSONString || type == Key || type == Int) {
            std::string_view text = location_view(def + LOCATION_AT);
            if (type != Int) {
                return add_quotes(text);
            }
            if (text.empty() || text.front() == '"') {
                break; /* strip_quotes would change it; never so for an integer */
            }
            return strip_quotes(text);
        }
        if (type == True || type == False || type == Null) {
            std::string_view text = type == True ? "true" : type == False ? "false" : "null";
            return strip_quotes(text);
        }
        break;
    }
    return rego_to_key(ref, set_format, sort_arrays, delim);
}

/* rego::BuiltInsDef::is_builtin(name), which rego-cpp's run_call asks first for every call,
 * before it looks up one of the bundle's own functions: a lookup by name among the built-ins (and
 * a shared_ptr copy) for a name no built-in has, since the bundle's functions are named g0.<path>.
 * Here such a name is answered at once; any other goes to rego-cpp's is_builtin. */
EXPORTED bool builtin_named(void *builtins, const void *name)
    __asm__("_ZN4rego11BuiltInsDef10is_builtinERKN7trieste8LocationE");

bool builtin_named(void *builtins, const void *name)
{
    pthread_once(&rego_found, find_rego);
    if (location_view(name).substr(0, 3) == "g0.") {
        return false;
    }
    return is_builtin(builtins, name);
}

/* rego::VirtualMachine::run_call(state, func, args, target). For a built-in, rego-cpp 1.5.2 reads
 * the arguments in a lambda that captures the whole VM state by value: every built-in call
 * (comparisons, arithmetic, count, object.get, ...) copies the locals frame, the call stack and
 * the function cache, and frees the copy, about half of a call's cost; and it builds the
 * Location "v1" afresh. This is the same built-in branch with the state read in place, in the
 * original's order: recursion check, arguments, call, write the target, an Error result recorded
 * as the query's error. Calls of the bundle's own functions go to rego-cpp's run_call. */
EXPORTED int run_call(const void *vm, void *state, const void *func, const void *args,
                      size_t target)
    __asm__("_ZNK4rego14VirtualMachine8run_callERNS0_5StateERKN7trieste8LocationERKSt6vectorINS_6b"
            "undle7OperandESaIS9_EEm");

int run_call(const void *vm, void *state, const void *func, const void *args, size_t target)
{
    pthread_once(&rego_found, find_rego);
    in_effect(calls_patched);
    /* The bundle's own functions (g0.<path>) go straight to rego-cpp. */
    void *builtins = *reinterpret_cast<void *const *>(static_cast<const char *>(vm) + BUILTINS_AT);
    if (!builtin_named(builtins, func) || in_call_stack(state, func)) {
        return rego_run_call(vm, state, func, args, target);
    }
    /* args is a std::vector<bundle::Operand>; values a std::vector<Node> rego-cpp frees. */
    const char *const *operands = static_cast<const char *const *>(args);
    size_t count = static_cast<size_t>(operands[1] - operands[0]) / OPERAND_SIZE;
    struct {
        void **begin, **end, **capacity;
    } values = {nullptr, nullptr, nullptr};
    if (count > 0) {
        values.begin = static_cast<void **>(rego_new(count * sizeof(void *)));
        values.end = values.begin;
        values.capacity = values.begin + count;
        for (size_t i = 0; i < count; i++) {
            NodeRef value = unpack_operand(vm, state, operands[0] + i * OPERAND_SIZE);
            *values.end++ = value.p; /* the vector takes the reference */
            value.p = nullptr;
        }
    }
    NodeRef value = call_builtin(builtins, func, &v1, &values);
    destroy_nodes(&values);
    write_local(state, target, value);
    if (type_of(static_cast<const char *>(value.p)) == Error) {
        add_error(state, value);
        return CODE_ERROR;
    }
    return CODE_CONTINUE;
}

/* rego::Resolver::to_term(value): the value as a Term, for an object item. rego-cpp deep-copies
 * the value first, and its C API builds input bottom-up through object items, so a value nested
 * n objects deep is copied n times before regoSetInput copies the whole input once more (a
 * 20-entry session history, ~400 nodes, was copied five times per decision). While engine/_rego.c
 * builds the gate's input (BUILDING_INPUT), a value only the caller holds (one reference, no
 * parent) is a fresh stack value of that input, and is wrapped as it is, in the original's
 * shapes: a Term as it is; an array, set, object or scalar under a Term; a bare scalar value
 * under a Scalar under a Term. Anything else, and every other caller, gets rego-cpp's to_term. */
EXPORTED NodeRef to_term(const void *value)
    __asm__("_ZN4rego8Resolver7to_termERKN7trieste13intrusive_ptrINS1_7NodeDefEEE");

NodeRef to_term(const void *value)
{
    pthread_once(&rego_found, find_rego);
    in_effect(terms_patched);
    char *def = *static_cast<char *const *>(value);
    if (marked != BUILDING_INPUT || def == nullptr ||
        __atomic_load_n(reinterpret_cast<size_t *>(def), __ATOMIC_SEQ_CST) != 1 ||
        *reinterpret_cast<void **>(def + PARENT_AT) != nullptr) {
        return rego_to_term(value);
    }
    NodeRef node = *static_cast<const NodeRef *>(value); /* a trieste::Node has this layout */
    const void *type = type_of(def);
    if (type == Term) {
        return node;
    }
    if (type == Array || type == Set || type == Object || type == Scalar) {
        return wrap(Term, node);
    }
    if (type == Int || type == Float || type == JSONString || type == True || type == False ||
        type == Null) {
        return wrap(Term, wrap(Scalar, node));
    }
    return rego_to_term(value);
}

/* regoSetInput(interpreter, input) for the gate's own input (engine/native_eval.py binds this in its
 * place): rego-cpp's deep-copies the finished input and hands the copy to Interpreter::set_input,
 * whose to_term copies it again. The input's stack is freed right after (engine/_rego.c's
 * run_plan), so here its top value goes to Interpreter::set_input as it is, marked as input being
 * built so that to_term (fix 4) takes it too. An empty or refused input, or one set_input
 * refuses, goes to rego-cpp's regoSetInput, which reports it as it always does. */
extern "C" unsigned int maestro_gate_set_input(void *interpreter, void *input)
{
    pthread_once(&rego_found, find_rego);
    struct {
        char **begin, **end, **capacity;
        int status; /* rego::regoInput: {Nodes stack; regoEnum status;} */
    } *stack = static_cast<decltype(stack)>(input);
    if (stack->begin == stack->end || stack->status != 0) {
        return rego_set_input(interpreter, input);
    }
    int was = marked;
    marked = BUILDING_INPUT;
    NodeRef refused = interpreter_set_input(interpreter, stack->end - 1);
    marked = was;
    if (refused.p != nullptr) {
        return rego_set_input(interpreter, input);
    }
    in_effect(inputs_patched);
    return 0;
}

EXPORTED void bundle_verify(const void *bundle) __asm__("_ZNK4rego9BundleDef6verifyEv");

/* rego-cpp's verify throws on a malformed bundle; that passes through here to its caller. */
void bundle_verify(const void *bundle)
{
    pthread_once(&rego_found, find_rego);
    if (marked == QUERYING) {
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
    if (marked == QUERYING) {
        pthread_mutex_lock(&lock);
        if (!was_seen(bundle) && seen_count < sizeof seen / sizeof seen[0]) {
            seen[seen_count++] = bundle;
        }
        pthread_mutex_unlock(&lock);
    }
}

/* rego::VirtualMachine::State's locals frame: read_local, write_local and is_defined run for
 * nearly every statement. With tracing off, each still looks up the thread's log level (a TLS
 * call) and copies the node twice more for the trace line it does not write: four more atomic
 * reference-count operations, two of them calls. These do what rego-cpp's do with tracing off,
 * and write no trace lines (the gate runs rego-cpp with logging off). The frame is a
 * std::vector<Node> at the start of the State (read_local reads it there). */
static void **frame_of(const void *state)
{
    return *static_cast<void **const *>(state);
}

/* A node's first child, or nullptr when it has none. */
static void *first_child(const char *def)
{
    void *const *children = reinterpret_cast<void *const *>(def + CHILDREN_AT);
    return children[0] != children[1] ? *static_cast<void **>(children[0]) : nullptr;
}

EXPORTED NodeRef frame_read(const void *state, size_t key)
    __asm__("_ZNK4rego14VirtualMachine5State10read_localEm");

/* The local's node, or a new Undefined node when it is unset. */
NodeRef frame_read(const void *state, size_t key)
{
    in_effect(locals_patched);
    void **slot = frame_of(state) + key;
    if (*slot == nullptr) {
        pthread_once(&rego_found, find_rego);
        return create_node(&Undefined);
    }
    return *reinterpret_cast<const NodeRef *>(slot); /* a copy: one more reference */
}

EXPORTED void frame_write(void *state, size_t key, void *const *value)
    __asm__("_ZN4rego14VirtualMachine5State11write_localEmN7trieste13intrusive_ptrINS2_7NodeDef"
            "EEE");

/* Store a value (passed by address, as any Node by value is; its caller frees it): unwrapped
 * from a Term, then from a Scalar; an Undefined one unsets the local. A null value, or a Term or
 * Scalar without a child, goes to rego-cpp's write_local, which reports it as it always has. */
void frame_write(void *state, size_t key, void *const *value)
{
    pthread_once(&rego_found, find_rego);
    char *node = static_cast<char *>(*value);
    if (node != nullptr && type_of(node) == Term) {
        node = static_cast<char *>(first_child(node));
    }
    if (node != nullptr && type_of(node) == Scalar) {
        node = static_cast<char *>(first_child(node));
    }
    if (node == nullptr) {
        write_local(state, key, *reinterpret_cast<const NodeRef *>(value));
        return;
    }
    in_effect(locals_patched);
    if (type_of(node) == Undefined) {
        node = nullptr;
    }
    void **slot = frame_of(state) + key;
    void *old = *slot;
    if (old == node) {
        return;
    }
    if (node != nullptr) {
        retain(node);
    }
    *slot = node;
    if (old != nullptr) {
        release_node(old);
    }
}

/* rego::VirtualMachine::dot(source, key): `x.y` and `x[k]`. For an object rego-cpp builds the
 * key's string (rego::to_key: the text, quoted) and then one for every member it passes, and
 * compares them; every registry lookup (`agents[id]`, `tools[name]`) scans that way. For a
 * string key and an object whose members all have string keys (ObjectItem: key term, value), two
 * such strings are equal exactly when the texts are once any surrounding quotes are taken off
 * (rego::add_quotes adds them only where they are missing): here the texts are compared so, in
 * place, in the same order. Any other source, key or member goes to rego-cpp's dot. */
EXPORTED NodeRef object_dot(const void *vm, const void *node, const void *key)
    __asm__("_ZNK4rego14VirtualMachine3dotERKN7trieste13intrusive_ptrINS1_7NodeDefEEES6_");

/* The text without the quotes rego::add_quotes would keep (rego::is_quoted's test). */
static std::string_view unquoted(std::string_view text)
{
    return text.size() >= 2 && text.front() == '"' && text.back() == '"'
               ? text.substr(1, text.size() - 2)
               : text;
}

/* A string or an object key: what rego::to_key quotes (fix 2). */
static bool quoted_by_to_key(const char *def)
{
    return def != nullptr && (type_of(def) == JSONString || type_of(def) == Key);
}

/* The node under any Term, DataTerm and Scalar wrappers (as rego::to_key looks through them). */
static const char *unwrapped(const char *def)
{
    while (def != nullptr && (type_of(def) == Term || type_of(def) == DataTerm ||
                              type_of(def) == Scalar)) {
        def = static_cast<const char *>(first_child(def));
    }
    return def;
}

NodeRef object_dot(const void *vm, const void *node, const void *key)
{
    pthread_once(&rego_found, find_rego);
    /* rego::unwrap(node, {Object, Array, Set}) looks through a Term only, for an object. */
    const char *source = *static_cast<const char *const *>(node);
    if (source != nullptr && type_of(source) == Term) {
        source = static_cast<const char *>(first_child(source));
    }
    const char *wanted = unwrapped(*static_cast<const char *const *>(key));
    if (source == nullptr || type_of(source) != Object || !quoted_by_to_key(wanted)) {
        return rego_dot(vm, node, key);
    }
    std::string_view text = unquoted(location_view(wanted + LOCATION_AT));
    char *const *members = reinterpret_cast<char *const *>(source + CHILDREN_AT);
    for (char *const *at = reinterpret_cast<char *const *>(members[0]);
         at != reinterpret_cast<char *const *>(members[1]); ++at) {
        char *const *item = reinterpret_cast<char *const *>(*at + CHILDREN_AT);
        if (type_of(*at) != ObjectItem || item[1] - item[0] != 2 * sizeof(void *)) {
            return rego_dot(vm, node, key);
        }
        char *const *pair = reinterpret_cast<char *const *>(item[0]);
        const char *name = unwrapped(pair[0]);
        if (!quoted_by_to_key(name)) {
            return rego_dot(vm, node, key);
        }
        if (unquoted(location_view(name + LOCATION_AT)) == text) {
            in_effect(lookups_patched);
            return *reinterpret_cast<const NodeRef *>(&pair[1]); /* a copy: one more reference */
        }
    }
    in_effect(lookups_patched);
    return NodeRef();
}

/* trieste::Location::Location(text): a Location on a new source holding `text`, which rego-cpp
 * makes for every node it builds from a string, "true" and "false" above all: every boolean
 * operand (`x != false` tests each rule reference), comparison result and boolean built-in
 * result. Each allocates a SourceDef, copies the text, scans it for line breaks, and frees it all
 * with the node. Here each thread makes one source for each of those two texts and every such
 * Location shares it (its reference count stays in that core's cache; the two are kept for the
 * thread's life). The text, and so everything read from the Location, is the same. */
EXPORTED void location_of(LocationRef *self, const std::string *text)
    __asm__("_ZN7trieste8LocationC1ERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE");
EXPORTED void location_of_base(LocationRef *self, const std::string *text)
    __asm__("_ZN7trieste8LocationC2ERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE");

void location_of(LocationRef *self, const std::string *text)
{
    pthread_once(&rego_found, find_rego);
    size_t size = text->size();
    bool is_true = size == 4 && memcmp(text->data(), "true", 4) == 0;
    if (!is_true && !(size == 5 && memcmp(text->data(), "false", 5) == 0)) {
        make_location(self, text);
        return;
    }
    in_effect(booleans_patched);
    static thread_local LocationRef shared[2]; /* trivially destructible: kept */
    LocationRef *at = &shared[is_true];
    if (at->source == nullptr) {
        make_location(at, text);
    }
    retain(at->source);
    *self = *at;
}

void location_of_base(LocationRef *self, const std::string *text)
{
    location_of(self, text);
}

EXPORTED bool frame_is_defined(const void *state, size_t key)
    __asm__("_ZNK4rego14VirtualMachine5State10is_definedEm");

/* Whether the local is set to something other than Undefined. */
bool frame_is_defined(const void *state, size_t key)
{
    pthread_once(&rego_found, find_rego);
    in_effect(locals_patched);
    const char *node = static_cast<const char *>(frame_of(state)[key]);
    return node != nullptr && type_of(node) != Undefined;
}

/* Called by engine/_rego.c on the evaluating thread: QUERYING (1) around the gate's query,
 * BUILDING_INPUT (2) around building its input (engine/_rego.h), 0 after either. */
extern "C" void maestro_gate_mark(int what)
{
    marked = what;
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
    auto flag = [](const std::atomic<bool> &set) { return set.load() ? Py_True : Py_False; };
    return Py_BuildValue("{sOsOsOsOsOsOsOsOsKsK}", "streams_patched", flag(streams_patched),
                         "keys_patched", flag(keys_patched), "calls_patched", flag(calls_patched),
                         "terms_patched", flag(terms_patched), "inputs_patched",
                         flag(inputs_patched), "locals_patched", flag(locals_patched),
                         "lookups_patched", flag(lookups_patched), "booleans_patched",
                         flag(booleans_patched),
                         "verified", verified.load(), "verify_skipped", skipped.load());
}

static PyObject *addresses(PyObject *, PyObject *)
{
    auto address = [](auto *function) { return PyLong_FromVoidPtr((void *)function); };
    return Py_BuildValue("{sNsNsN}", "maestro_gate_mark", address(&maestro_gate_mark),
                         "maestro_gate_forget", address(&maestro_gate_forget), "regoSetInput",
                         address(&maestro_gate_set_input));
}

static PyMethodDef methods[] = {
    {"forget", forget, METH_NOARGS,
     "Verify every bundle again on its next query (call after compiling a bundle)."},
    {"counts", counts, METH_NOARGS,
     "Whether a stream took the patched locale path; how often verify ran and was skipped."},
    {"addresses", addresses, METH_NOARGS,
     "For engine/_rego.c's bind, by name: the hooks maestro_gate_mark(int) and "
     "maestro_gate_forget(), and regoSetInput's replacement."},
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
