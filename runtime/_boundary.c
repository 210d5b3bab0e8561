/* The common call of an Executable (runtime/executable.py `_fast_call`) done natively.
 *
 * One `State` per executable. `call(args, out)` runs the compiled entry when every argument
 * passes the checks below, with the shapes a full check (`Executable._call`) accepted
 * before; otherwise it returns None and the caller takes the Python path, which gives the
 * full checks and clear errors. Checks, per data input: exact ndarray type, a C-contiguous
 * buffer (PyObject_GetBuffer with PyBUF_C_CONTIGUOUS: numpy refuses other arrays), the
 * dtype's buffer format and item size, aligned to the dtype, the rank, and the input shapes
 * together exactly one of the accepted shape sets. `out=` arrays (one ndarray, or a dict
 * with exactly the outputs' names) must be exact ndarrays, C-contiguous, writeable, of the
 * output's format and shape, aligned, and must not overlap an input, the param block or
 * another output. The param store must have no unset param.
 *
 * Only the CPython C API and the buffer protocol are used (no numpy headers): the ndarray
 * type, `np.empty` and the dtype objects are handed in by runtime/boundary.py.
 *
 * Concurrency: the native call runs with the GIL released. Each call takes its own call
 * context (the Python `_CallContext`: argument table, symbols, arena, error words) from a
 * free list of slots owned here and shared with the Python path (pop_context/push_context);
 * with no free slot the call goes to the Python path, which makes a new context. A context
 * whose symbol binding differs from the call's is rebound by its Python `bind` method.
 *
 * The calling thread's stack must be at least MIN_STACK_BYTES (runtime/stack_check.py: a
 * matrix product keeps up to 512 KiB on the stack): checked once per thread; a thread with a
 * smaller stack (or one whose size cannot be read) goes to the Python path, which raises the
 * clear error (or, where the size cannot be read, runs).
 *
 * A non-zero status from the entry raises the exception that the Python callable
 * `status_error(status, kind, value, bound, axis)` returns (the error words are read before
 * the context is released): the ExecutionError the Python path raises.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__GLIBC__) || defined(__linux__)
#include <pthread.h>
#define HAVE_GETATTR_NP 1
#endif

#define MIN_STACK_BYTES (1 << 20)      /* as runtime/stack_check.py */

/* 1: this thread's stack was found big enough (then the Python path's check passed too) */
static _Thread_local int thread_stack_ok = 0;

static int
stack_big_enough(void)
{
#ifdef HAVE_GETATTR_NP
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return 0;
    int ok = pthread_attr_getstack(&attr, &addr, &size) == 0 && size >= MIN_STACK_BYTES;
    pthread_attr_destroy(&attr);
    return ok;
#else
    return 0;                          /* unknown: the Python path decides */
#endif
}

typedef int32_t (*entry_fn)(void **args, const int64_t *symbols);

#define INTERFACE_VERSION 1  /* runtime/boundary.py refuses a build of another version */
#define MAX_ACCEPTED 64      /* shape sets remembered, as the Python path */
#define MAX_FREE 32          /* idle contexts kept; more are dropped */
#define ERRINFO_WORDS 4
#define FORMAT_LEN 8
#define MAX_TENSORS 64       /* inputs (and outputs) a State handles; more: the Python path */

typedef struct {             /* one tensor position (data input or returned output) */
    int rank;
    Py_ssize_t dims_at;      /* offset of its dims in a shape set's flat dims */
    Py_ssize_t itemsize;
    Py_ssize_t align;
    char format[FORMAT_LEN];
} Spec;

typedef struct {             /* a shape set a full check accepted */
    int64_t *in_dims;        /* flat dims of every input */
    int64_t *out_dims;       /* flat dims of every returned output */
    int64_t *env;            /* symbol values */
    PyObject *env_tuple;     /* the same, for the context's `bind` */
    PyObject *arena;         /* arena bytes (Python int) */
    PyObject *out_shapes;    /* tuple of shape tuples, for np.empty */
} Accepted;

typedef struct {             /* an idle call context */
    PyObject *ctx;
    void **table;
    int64_t *symbols;
    int64_t *env;            /* the binding its symbols hold (valid when `bound`) */
    int bound;
} Slot;

typedef struct {
    PyObject_HEAD
    entry_fn entry;
    PyObject *keepalive;     /* keeps the native code alive */
    PyObject *ndarray;       /* numpy.ndarray */
    PyObject *empty;         /* numpy.empty */
    PyObject *unset;         /* the param store's set of unset params */
    PyObject *status_error;  /* exception raised for a non-zero status */
    PyObject *out_dtypes;    /* tuple of dtype objects */
    PyObject *out_names;     /* tuple of str */
    PyObject *bind_name;     /* "bind" */
    Py_ssize_t n_in, n_out, n_sym, in_dims_total, out_dims_total;
    Py_ssize_t errinfo_index;
    uintptr_t param_lo, param_hi;
    Spec *in_spec, *out_spec;
    Accepted accepted[MAX_ACCEPTED];
    int n_accepted, last_hit;
    Slot free_slots[MAX_FREE];
    int n_free;
} State;

/* ---- setup helpers ---------------------------------------------------------------------- */
static int
parse_specs(PyObject *seq, Py_ssize_t n, Spec *specs, Py_ssize_t *total, const char *what)
{
    /* seq: n tuples (rank, itemsize, align, format) */
    Py_ssize_t at = 0;
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected a tuple of %zd specs", what, n);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        int rank;
        Py_ssize_t itemsize, align;
        const char *format;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(seq, k), "innz", &rank, &itemsize, &align,
                              &format))
            return -1;
        if (rank < 0 || itemsize <= 0 || align <= 0 || strlen(format) >= FORMAT_LEN) {
            PyErr_Format(PyExc_ValueError, "%s: bad spec %zd", what, k);
            return -1;
        }
        specs[k].rank = rank;
        specs[k].dims_at = at;
        specs[k].itemsize = itemsize;
        specs[k].align = align;
        strcpy(specs[k].format, format);
        at += rank;
    }
    *total = at;
    return 0;
}

static int
read_dims(PyObject *shapes, Py_ssize_t n, const Spec *specs, int64_t *dims)
{
    /* shapes: n tuples of ints with the specs' ranks -> flat dims */
    if (!PyTuple_Check(shapes) || PyTuple_GET_SIZE(shapes) != n) {
        PyErr_SetString(PyExc_ValueError, "accept: wrong number of shapes");
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *shape = PyTuple_GET_ITEM(shapes, k);
        if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) != specs[k].rank) {
            PyErr_SetString(PyExc_ValueError, "accept: a shape of the wrong rank");
            return -1;
        }
        for (int a = 0; a < specs[k].rank; a++) {
            int64_t d = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, a));
            if (d == -1 && PyErr_Occurred())
                return -1;
            dims[specs[k].dims_at + a] = d;
        }
    }
    return 0;
}

static int
read_env(PyObject *tuple, Py_ssize_t n, int64_t *env)
{
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != n) {
        PyErr_SetString(PyExc_ValueError, "expected a tuple of symbol values");
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        env[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, k));
        if (env[k] == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* ---- the free list of call contexts ----------------------------------------------------- */
static void
drop_slot(Slot *s)
{
    Py_CLEAR(s->ctx);
    PyMem_Free(s->env);
    s->env = NULL;
}

static PyObject *
State_push_context(State *self, PyObject *ctx)
{
    /* Return a context to the free list (from the Python path, which may have rebound it):
     * read where its table and symbols live and which binding it holds. */
    if (self->n_free >= MAX_FREE)
        Py_RETURN_NONE;                            /* enough idle contexts: drop this one */
    PyObject *t = PyObject_GetAttrString(ctx, "table_address");
    PyObject *s = t ? PyObject_GetAttrString(ctx, "symbols_address") : NULL;
    PyObject *b = s ? PyObject_GetAttrString(ctx, "binding") : NULL;
    int64_t *env = NULL;
    void **table = NULL;
    int64_t *symbols = NULL;
    int bound = 0;
    if (b == NULL)
        goto fail;
    table = (void **)PyLong_AsVoidPtr(t);
    symbols = (int64_t *)PyLong_AsVoidPtr(s);
    if (PyErr_Occurred())
        goto fail;
    env = PyMem_Malloc(sizeof(int64_t) * (self->n_sym ? self->n_sym : 1));
    if (env == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    if (b != Py_None) {
        if (read_env(b, self->n_sym, env) < 0)
            goto fail;
        bound = 1;
    }
    Py_DECREF(t);
    Py_DECREF(s);
    Py_DECREF(b);
    if (self->n_free >= MAX_FREE) {               /* (no Python code ran, but be exact) */
        PyMem_Free(env);
        Py_RETURN_NONE;
    }
    Slot *slot = &self->free_slots[self->n_free++];
    Py_INCREF(ctx);
    slot->ctx = ctx;
    slot->table = table;
    slot->symbols = symbols;
    slot->env = env;
    slot->bound = bound;
    Py_RETURN_NONE;
fail:
    Py_XDECREF(t);
    Py_XDECREF(s);
    Py_XDECREF(b);
    PyMem_Free(env);
    return NULL;
}

static PyObject *
State_pop_context(State *self, PyObject *Py_UNUSED(ignored))
{
    /* An idle context for the Python path, or None (make a new one). */
    if (self->n_free == 0)
        Py_RETURN_NONE;
    Slot *slot = &self->free_slots[--self->n_free];
    PyObject *ctx = slot->ctx;
    slot->ctx = NULL;
    PyMem_Free(slot->env);
    slot->env = NULL;
    return ctx;
}

/* ---- accepted shape sets ---------------------------------------------------------------- */
static PyObject *
State_accept(State *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* accept(input_shapes, env, output_shapes, arena_bytes): after a full check */
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "accept(input_shapes, env, output_shapes, arena)");
        return NULL;
    }
    if (self->n_accepted >= MAX_ACCEPTED)
        Py_RETURN_FALSE;
    PyObject *in_shapes = args[0], *env = args[1], *out_shapes = args[2], *arena = args[3];
    Accepted a = {0};
    a.in_dims = PyMem_Malloc(sizeof(int64_t) * (self->in_dims_total + 1));
    a.out_dims = PyMem_Malloc(sizeof(int64_t) * (self->out_dims_total + 1));
    a.env = PyMem_Malloc(sizeof(int64_t) * (self->n_sym + 1));
    if (!a.in_dims || !a.out_dims || !a.env) {
        PyErr_NoMemory();
        goto fail;
    }
    if (read_dims(in_shapes, self->n_in, self->in_spec, a.in_dims) < 0 ||
        read_dims(out_shapes, self->n_out, self->out_spec, a.out_dims) < 0 ||
        read_env(env, self->n_sym, a.env) < 0)
        goto fail;
    if (!PyLong_Check(arena)) {
        PyErr_SetString(PyExc_TypeError, "accept: arena bytes must be an int");
        goto fail;
    }
    for (int k = 0; k < self->n_accepted; k++) {    /* already known: keep the first */
        if (memcmp(self->accepted[k].in_dims, a.in_dims,
                   sizeof(int64_t) * self->in_dims_total) == 0) {
            PyMem_Free(a.in_dims);
            PyMem_Free(a.out_dims);
            PyMem_Free(a.env);
            Py_RETURN_FALSE;
        }
    }
    Py_INCREF(env);
    Py_INCREF(arena);
    Py_INCREF(out_shapes);
    a.env_tuple = env;
    a.arena = arena;
    a.out_shapes = out_shapes;
    self->accepted[self->n_accepted] = a;
    self->n_accepted++;                             /* visible only once complete */
    Py_RETURN_TRUE;
fail:
    PyMem_Free(a.in_dims);
    PyMem_Free(a.out_dims);
    PyMem_Free(a.env);
    return NULL;
}

/* ---- the call --------------------------------------------------------------------------- */
static int
buffer_matches(const Py_buffer *view, const Spec *spec)
{
    if (view->itemsize != spec->itemsize || view->ndim != spec->rank)
        return 0;
    if (view->format == NULL || strcmp(view->format, spec->format) != 0)
        return 0;
    /* numpy's ALIGNED flag for a C-contiguous array: an empty array is aligned, otherwise
     * the data pointer must be (strides are multiples of the item size). numpy also exports
     * an unaligned array with a '=' format prefix, so the format check refuses it first:
     * this check keeps the rule independent of that. */
    if (view->len != 0 && ((uintptr_t)view->buf % (uintptr_t)spec->align) != 0)
        return 0;
    return 1;
}

static int
dims_equal(const Py_buffer *view, const int64_t *dims)
{
    for (int a = 0; a < view->ndim; a++)
        if ((int64_t)view->shape[a] != dims[a])
            return 0;
    return 1;
}

static int
find_accepted(State *self, const Py_buffer *views)
{
    int n = self->n_accepted;
    for (int i = 0; i < n; i++) {
        int k = (self->last_hit + i) % n;            /* the last hit first */
        const Accepted *a = &self->accepted[k];
        Py_ssize_t j;
        for (j = 0; j < self->n_in; j++)
            if (!dims_equal(&views[j], a->in_dims + self->in_spec[j].dims_at))
                break;
        if (j == self->n_in) {
            self->last_hit = k;
            return k;
        }
    }
    return -1;
}

static void
release_views(Py_buffer *views, Py_ssize_t n)
{
    for (Py_ssize_t k = 0; k < n; k++)
        PyBuffer_Release(&views[k]);
}

static int
overlaps(uintptr_t lo, uintptr_t hi, uintptr_t olo, uintptr_t ohi)
{
    return lo < ohi && olo < hi;                     /* as Executable._fast_out */
}

/* The call on `n_args` positional arrays `args` and `out` (None, an ndarray or a dict):
 * the outputs (one array, or a tuple), None for the Python path, or NULL with an error. */
static PyObject *
state_call(State *self, PyObject *const *args, Py_ssize_t n_args, PyObject *out)
{
    const Py_ssize_t n_in = self->n_in, n_out = self->n_out;
    if (n_args != n_in || self->n_accepted == 0 || PySet_GET_SIZE(self->unset) != 0)
        Py_RETURN_NONE;

    Py_buffer in_views[MAX_TENSORS];
    Py_buffer out_views[MAX_TENSORS];
    PyObject *outputs[MAX_TENSORS];
    Py_ssize_t n_in_views = 0, n_out_views = 0, n_outputs = 0;
    PyObject *result = Py_None;                      /* None: take the Python path */
    Slot slot = {0};
    int have_slot = 0;

    for (Py_ssize_t k = 0; k < n_in; k++) {
        PyObject *arr = args[k];
        if ((PyObject *)Py_TYPE(arr) != self->ndarray)
            goto done;
        if (PyObject_GetBuffer(arr, &in_views[k], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            PyErr_Clear();                           /* not C-contiguous: the full path */
            goto done;
        }
        n_in_views++;
        if (!buffer_matches(&in_views[k], &self->in_spec[k]))
            goto done;
    }
    int hit = find_accepted(self, in_views);
    if (hit < 0)
        goto done;
    const Accepted *acc = &self->accepted[hit];

    if (out != Py_None) {                            /* out=: exactly right and separate */
        if ((PyObject *)Py_TYPE(out) == self->ndarray) {
            if (n_out != 1)
                goto done;
            outputs[0] = out;
        }
        else if (PyDict_CheckExact(out) && PyDict_GET_SIZE(out) == n_out) {
            for (Py_ssize_t j = 0; j < n_out; j++) {
                outputs[j] = PyDict_GetItemWithError(out, PyTuple_GET_ITEM(self->out_names, j));
                if (outputs[j] == NULL) {
                    PyErr_Clear();
                    goto done;
                }
            }
        }
        else
            goto done;
        for (Py_ssize_t j = 0; j < n_out; j++) {
            PyObject *arr = outputs[j];
            if ((PyObject *)Py_TYPE(arr) != self->ndarray)
                goto done;
            if (PyObject_GetBuffer(arr, &out_views[j],
                                   PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
                PyErr_Clear();                       /* not dense or read-only */
                goto done;
            }
            n_out_views++;
            if (!buffer_matches(&out_views[j], &self->out_spec[j]) ||
                !dims_equal(&out_views[j], acc->out_dims + self->out_spec[j].dims_at))
                goto done;
            uintptr_t lo = (uintptr_t)out_views[j].buf;
            uintptr_t hi = lo + (uintptr_t)out_views[j].len;
            for (Py_ssize_t k = 0; k < n_in; k++) {
                uintptr_t olo = (uintptr_t)in_views[k].buf;
                if (overlaps(lo, hi, olo, olo + (uintptr_t)in_views[k].len))
                    goto done;
            }
            if (overlaps(lo, hi, self->param_lo, self->param_hi))
                goto done;
            for (Py_ssize_t i = 0; i < j; i++) {
                uintptr_t olo = (uintptr_t)out_views[i].buf;
                if (overlaps(lo, hi, olo, olo + (uintptr_t)out_views[i].len))
                    goto done;
            }
        }
    }

    if (!thread_stack_ok) {                          /* first call on this thread */
        if (!stack_big_enough())
            goto done;                               /* the Python path raises */
        thread_stack_ok = 1;
    }
    if (self->n_free == 0)                           /* every context is in use */
        goto done;
    slot = self->free_slots[--self->n_free];         /* ours until pushed back */
    have_slot = 1;
    result = NULL;                                   /* from here on: errors are real */
    if (!slot.bound || memcmp(slot.env, acc->env, sizeof(int64_t) * self->n_sym) != 0) {
        slot.bound = 0;
        PyObject *r = PyObject_CallMethodObjArgs(slot.ctx, self->bind_name, acc->env_tuple,
                                                 acc->arena, NULL);
        if (r == NULL)
            goto done;
        Py_DECREF(r);
        if (self->n_sym)
            memcpy(slot.env, acc->env, sizeof(int64_t) * self->n_sym);
        slot.bound = 1;
    }
    if (out == Py_None) {
        for (Py_ssize_t j = 0; j < n_out; j++) {
            PyObject *call_args[2] = {PyTuple_GET_ITEM(acc->out_shapes, j),
                                      PyTuple_GET_ITEM(self->out_dtypes, j)};
            PyObject *arr = PyObject_Vectorcall(self->empty, call_args, 2, NULL);
            if (arr == NULL)
                goto done;
            outputs[n_outputs++] = arr;
            if (PyObject_GetBuffer(arr, &out_views[j], PyBUF_WRITABLE) < 0)
                goto done;
            n_out_views++;
        }
    }

    void **table = slot.table;
    for (Py_ssize_t k = 0; k < n_in; k++)
        table[k] = in_views[k].buf;
    for (Py_ssize_t j = 0; j < n_out; j++)
        table[n_in + j] = out_views[j].buf;
    entry_fn entry = self->entry;
    int64_t *symbols = slot.symbols;
    int32_t status;
    Py_BEGIN_ALLOW_THREADS
    status = entry(table, symbols);
    Py_END_ALLOW_THREADS
    if (status != 0) {
        const int64_t *info = (const int64_t *)table[self->errinfo_index];
        PyObject *exc = PyObject_CallFunction(self->status_error, "iLLLL", (int)status,
                                              (long long)info[0], (long long)info[1],
                                              (long long)info[2], (long long)info[3]);
        if (exc != NULL) {
            if (PyExceptionInstance_Check(exc))
                PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            else
                PyErr_Format(PyExc_TypeError, "status_error returned %.100s, not an "
                             "exception", Py_TYPE(exc)->tp_name);
            Py_DECREF(exc);
        }
        goto done;
    }
    if (out != Py_None) {                            /* the caller's arrays, as given */
        for (Py_ssize_t j = 0; j < n_out; j++)
            Py_INCREF(outputs[j]);
        n_outputs = n_out;
    }
    if (n_out == 1) {
        result = outputs[0];
        n_outputs = 0;                               /* the reference moves to result */
    }
    else {
        result = PyTuple_New(n_out);
        if (result != NULL) {
            for (Py_ssize_t j = 0; j < n_out; j++)
                PyTuple_SET_ITEM(result, j, outputs[j]);
            n_outputs = 0;
        }
    }

done:
    release_views(in_views, n_in_views);
    release_views(out_views, n_out_views);
    for (Py_ssize_t j = 0; j < n_outputs; j++)
        Py_DECREF(outputs[j]);
    if (have_slot) {
        if (self->n_free < MAX_FREE)
            self->free_slots[self->n_free++] = slot;
        else
            drop_slot(&slot);
    }
    if (result == Py_None)
        Py_INCREF(result);
    return result;
}

static PyObject *
State_call(State *self, PyObject *const *fargs, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(fargs[0])) {
        PyErr_SetString(PyExc_TypeError, "call(args: tuple, out)");
        return NULL;
    }
    return state_call(self, &PyTuple_GET_ITEM(fargs[0], 0), PyTuple_GET_SIZE(fargs[0]),
                      fargs[1]);
}

/* ---- the type --------------------------------------------------------------------------- */
static void
State_dealloc(State *self)
{
    for (int k = 0; k < self->n_accepted; k++) {
        Accepted *a = &self->accepted[k];
        PyMem_Free(a->in_dims);
        PyMem_Free(a->out_dims);
        PyMem_Free(a->env);
        Py_XDECREF(a->env_tuple);
        Py_XDECREF(a->arena);
        Py_XDECREF(a->out_shapes);
    }
    for (int k = 0; k < self->n_free; k++)
        drop_slot(&self->free_slots[k]);
    PyMem_Free(self->in_spec);
    PyMem_Free(self->out_spec);
    Py_XDECREF(self->keepalive);
    Py_XDECREF(self->ndarray);
    Py_XDECREF(self->empty);
    Py_XDECREF(self->unset);
    Py_XDECREF(self->status_error);
    Py_XDECREF(self->out_dtypes);
    Py_XDECREF(self->out_names);
    Py_XDECREF(self->bind_name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
State_init(State *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"entry_address", "keepalive", "ndarray", "empty", "inputs",
                             "outputs", "out_dtypes", "out_names", "n_symbols",
                             "errinfo_index", "param_span", "unset", "status_error", NULL};
    PyObject *entry_address, *keepalive, *ndarray, *empty, *inputs, *outputs, *out_dtypes,
             *out_names, *unset, *status_error;
    Py_ssize_t n_sym, errinfo_index;
    unsigned long long param_lo, param_hi;
    if (self->in_spec != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "State is set up once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOO!O!nn(KK)O!O", kwlist,
                                     &entry_address, &keepalive, &ndarray, &empty, &inputs,
                                     &outputs, &PyTuple_Type, &out_dtypes, &PyTuple_Type,
                                     &out_names, &n_sym, &errinfo_index, &param_lo,
                                     &param_hi, &PySet_Type, &unset, &status_error))
        return -1;
    self->entry = (entry_fn)PyLong_AsVoidPtr(entry_address);
    if (PyErr_Occurred())
        return -1;
    if (self->entry == NULL || !PyType_Check(ndarray) || !PyCallable_Check(empty) ||
        !PyCallable_Check(status_error) || n_sym < 0 || errinfo_index < 0) {
        PyErr_SetString(PyExc_ValueError, "State: bad setup arguments");
        return -1;
    }
    if (!PyTuple_Check(inputs) || !PyTuple_Check(outputs)) {
        PyErr_SetString(PyExc_TypeError, "State: inputs and outputs must be tuples");
        return -1;
    }
    self->n_in = PyTuple_GET_SIZE(inputs);
    self->n_out = PyTuple_GET_SIZE(outputs);
    if (self->n_in > MAX_TENSORS || self->n_out > MAX_TENSORS) {
        PyErr_Format(PyExc_ValueError, "State: at most %d inputs and %d outputs",
                     MAX_TENSORS, MAX_TENSORS);
        return -1;
    }
    if (PyTuple_GET_SIZE(out_dtypes) != self->n_out ||
        PyTuple_GET_SIZE(out_names) != self->n_out) {
        PyErr_SetString(PyExc_ValueError, "State: one dtype and one name per output");
        return -1;
    }
    self->in_spec = PyMem_Calloc(self->n_in + 1, sizeof(Spec));
    self->out_spec = PyMem_Calloc(self->n_out + 1, sizeof(Spec));
    if (!self->in_spec || !self->out_spec) {
        PyErr_NoMemory();
        return -1;
    }
    if (parse_specs(inputs, self->n_in, self->in_spec, &self->in_dims_total, "inputs") < 0 ||
        parse_specs(outputs, self->n_out, self->out_spec, &self->out_dims_total,
                    "outputs") < 0)
        return -1;
    self->bind_name = PyUnicode_InternFromString("bind");
    if (self->bind_name == NULL)
        return -1;
    self->n_sym = n_sym;
    self->errinfo_index = errinfo_index;
    self->param_lo = (uintptr_t)param_lo;
    self->param_hi = (uintptr_t)param_hi;
    Py_INCREF(keepalive);
    self->keepalive = keepalive;
    Py_INCREF(ndarray);
    self->ndarray = ndarray;
    Py_INCREF(empty);
    self->empty = empty;
    Py_INCREF(unset);
    self->unset = unset;
    Py_INCREF(status_error);
    self->status_error = status_error;
    Py_INCREF(out_dtypes);
    self->out_dtypes = out_dtypes;
    Py_INCREF(out_names);
    self->out_names = out_names;
    return 0;
}

static PyObject *
State_counts(State *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{s:i,s:i}", "accepted", self->n_accepted, "idle_contexts",
                         self->n_free);
}

static PyMethodDef State_methods[] = {
    {"call", (PyCFunction)(void (*)(void))State_call, METH_FASTCALL,
     "call(args, out): the outputs (one array or a tuple), or None for the Python path"},
    {"accept", (PyCFunction)(void (*)(void))State_accept, METH_FASTCALL,
     "accept(input_shapes, env, output_shapes, arena_bytes): a shape set a full check "
     "accepted; True when added"},
    {"push_context", (PyCFunction)State_push_context, METH_O,
     "push_context(ctx): an idle call context"},
    {"pop_context", (PyCFunction)State_pop_context, METH_NOARGS,
     "pop_context(): an idle call context, or None"},
    {"counts", (PyCFunction)State_counts, METH_NOARGS,
     "counts(): {'accepted': shape sets, 'idle_contexts': contexts in the free list}"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "runtime._boundary.State",
    .tp_basicsize = sizeof(State),
    .tp_dealloc = (destructor)State_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The native fast call of one Executable (see runtime/boundary.py).",
    .tp_methods = State_methods,
    .tp_init = (initproc)State_init,
    .tp_new = PyType_GenericNew,
};

/* ---- Dispatch: Executable.__call__ -------------------------------------------------------
 * A method descriptor (like a Python function in a class body): `exe(*args, out=None)` runs
 * `exe._native` (a State) directly, without the frame of a Python __call__ (~0.1 us);
 * named inputs, no State, or a call the State refuses go to the Python method named at
 * construction (the Python __call__), with the arguments as given. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback;      /* name of the Python method */
    PyObject *state_name;    /* "_native" */
    PyObject *out_name;      /* "out" */
} Dispatch;

static PyObject *
Dispatch_vectorcall(Dispatch *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "Executable.__call__ needs the executable");
        return NULL;
    }
    PyObject *out = Py_None;
    Py_ssize_t n_kw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    int plain = n_kw == 0;
    if (n_kw == 1) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, 0);
        int eq = name == self->out_name || PyUnicode_Compare(name, self->out_name) == 0;
        if (PyErr_Occurred())
            return NULL;
        if (eq) {
            out = args[nargs];
            plain = 1;
        }
    }
    if (plain) {
        PyObject *state = PyObject_GetAttr(args[0], self->state_name);
        if (state == NULL) {                         /* let the Python method say why */
            PyErr_Clear();
        }
        else if (Py_TYPE(state) == &StateType) {
            PyObject *result = state_call((State *)state, args + 1, nargs - 1, out);
            Py_DECREF(state);
            if (result != Py_None)
                return result;                       /* the outputs, or NULL: an error */
            Py_DECREF(result);
        }
        else
            Py_DECREF(state);
    }
    return PyObject_VectorcallMethod(self->fallback, (PyObject **)args, nargsf, kwnames);
}

static PyObject *
Dispatch_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static int
Dispatch_init(Dispatch *self, PyObject *args, PyObject *kwds)
{
    PyObject *fallback;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Dispatch(fallback_method_name) takes no keywords");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "U:Dispatch", &fallback))
        return -1;
    Py_INCREF(fallback);
    Py_XSETREF(self->fallback, fallback);
    Py_XSETREF(self->state_name, PyUnicode_InternFromString("_native"));
    Py_XSETREF(self->out_name, PyUnicode_InternFromString("out"));
    if (self->state_name == NULL || self->out_name == NULL)
        return -1;
    self->vectorcall = (vectorcallfunc)Dispatch_vectorcall;
    return 0;
}

static void
Dispatch_dealloc(Dispatch *self)
{
    Py_XDECREF(self->fallback);
    Py_XDECREF(self->state_name);
    Py_XDECREF(self->out_name);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Dispatch_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    if (((Dispatch *)self)->vectorcall == NULL) {   /* made by __new__ without __init__ */
        PyErr_SetString(PyExc_TypeError, "Dispatch is not set up");
        return NULL;
    }
    return PyVectorcall_Call(self, args, kwds);
}

static PyObject *
Dispatch_name(PyObject *Py_UNUSED(self), void *closure)
{
    return PyUnicode_FromString((const char *)closure);
}

static PyGetSetDef Dispatch_getset[] = {      /* what inspect/help read of a function */
    {"__name__", Dispatch_name, NULL, NULL, "__call__"},
    {"__qualname__", Dispatch_name, NULL, NULL, "Executable.__call__"},
    {"__text_signature__", Dispatch_name, NULL, NULL, "($self, /, *args, out=None, **named)"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject DispatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "runtime._boundary.Dispatch",
    .tp_basicsize = sizeof(Dispatch),
    .tp_dealloc = (destructor)Dispatch_dealloc,
    .tp_vectorcall_offset = offsetof(Dispatch, vectorcall),
    .tp_call = Dispatch_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_doc = "Dispatch(fallback_method_name): Executable.__call__ (see runtime/boundary.py).",
    .tp_descr_get = Dispatch_get,
    .tp_getset = Dispatch_getset,
    .tp_init = (initproc)Dispatch_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef boundary_module = {
    PyModuleDef_HEAD_INIT, "_boundary",
    "The native call boundary of graphc executables (runtime/boundary.py wraps it).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__boundary(void)
{
    if (PyType_Ready(&StateType) < 0 || PyType_Ready(&DispatchType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&boundary_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddType(m, &StateType) < 0 || PyModule_AddType(m, &DispatchType) < 0 ||
        PyModule_AddIntConstant(m, "INTERFACE_VERSION", INTERFACE_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
