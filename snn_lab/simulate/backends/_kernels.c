/* The engine's inner loops in C: Box-Muller normals straight from SFC64 state words, and an
 * activation fused with its float64 statistics. A call holds the GIL only to read its
 * arguments, so the engine's threads run them side by side.
 *
 * The kernels (_kernels_impl.h) are compiled three times on x86-64 under GCC or clang: for
 * AVX-512 (F, DQ, VL, BW), AVX2 and the baseline, and the widest the CPU runs is picked at
 * import by feature (__builtin_cpu_supports). They call no libm function and fuse no
 * multiply-add (-ffp-contract=off; none is written by hand), and their sums add the same lanes
 * in the same order, so every copy gives the same bits. Needs GCC vector extensions (no MSVC).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

enum { ACT_LINEAR = 1, ACT_RELU, ACT_LEAKY, ACT_ELU, ACT_TANH };

#define LANES 16   /* float64 accumulators per sum: few dependent additions keep vectors busy */
#define CHUNK 1024 /* entries activated, then summed, while they are in L1 */

#define LN2_HI 6.93147180369123816490e-01 /* ln 2's top 32 bits: n LN2_HI is exact */
#define LN2_LO 1.90821492927058770002e-10
#define LN2_HI_F 0.693145751953125f /* 16 bits */
#define LN2_LO_F 1.428606765330187045e-06f
#define HALF_PI_HI 1.57079632673412561417e+00 /* pi/2's top 33 bits */
#define HALF_PI_LO 6.07710050650619224932e-11
#define HALF_PI_HI_F 1.5703125f /* 8 bits */
#define HALF_PI_LO_F 4.8382673412561417e-4f

static inline double bits_double(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }
static inline uint64_t double_bits(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }
static inline float bits_float(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static inline uint32_t float_bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

/* A sum is LANES float64 accumulators, four vectors of 4: one register each from AVX2 on (a
 * 64-byte vector type made GCC's AVX2 code go through memory, at 6x the time). */
typedef double lanes_t __attribute__((vector_size(32)));  /* 4 float64 accumulators */
typedef float floats_t __attribute__((vector_size(16))); /* 4 float32 entries */
typedef struct { lanes_t s1[4], s2[4]; } acc_t;          /* sum and sum of squares */

/* Each copy's functions get a target by feature name, as GCC >= 9 and clang >= 10 document
 * (GCC: #pragma GCC target; clang: #pragma clang attribute). */
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#define MULTI_TARGET 1
#define PRAGMA(x) _Pragma(#x)
#ifdef __clang__
#define TARGET_PUSH(t) PRAGMA(clang attribute push(__attribute__((target(t))), apply_to = function))
#define TARGET_POP PRAGMA(clang attribute pop)
#else
#define TARGET_PUSH(t) PRAGMA(GCC push_options) PRAGMA(GCC target(t))
#define TARGET_POP PRAGMA(GCC pop_options)
#endif
TARGET_PUSH("avx512f,avx512dq,avx512vl,avx512bw,avx2")
#define NAME(f) f##_avx512
#include "_kernels_impl.h"
#undef NAME
TARGET_POP
TARGET_PUSH("avx2")
#define NAME(f) f##_avx2
#include "_kernels_impl.h"
#undef NAME
TARGET_POP
#endif
#define NAME(f) f##_base
#include "_kernels_impl.h"
#undef NAME

typedef struct {
    const char *name;
    void (*step32)(const uint32_t *, const uint32_t *, Py_ssize_t, float *, float *, float);
    void (*step64)(const uint64_t *, const uint32_t *, Py_ssize_t, double *, double *, double);
    void (*sums32)(const float *, Py_ssize_t, double *);
    void (*sums64)(const double *, Py_ssize_t, double *);
    void (*activate32)(int, double, double, const float *, float *, Py_ssize_t, double *);
    void (*activate64)(int, double, double, const double *, double *, Py_ssize_t, double *);
    void (*elu_grad32)(double, double, const float *, const float *, const float *, float *, Py_ssize_t);
    void (*elu_grad64)(double, double, const double *, const double *, const double *, double *, Py_ssize_t);
} kernel_set;

#define KERNEL_SET(label, S) {label, step32##S, step64##S, sums32##S, sums64##S, activate32##S, activate64##S, \
                              elu_grad32##S, elu_grad64##S}
static const kernel_set SETS[] = {
    KERNEL_SET("baseline", _base),
#ifdef MULTI_TARGET
    KERNEL_SET("avx2", _avx2),
    KERNEL_SET("avx512", _avx512),
#endif
};
static const int NSETS = (int)(sizeof SETS / sizeof SETS[0]);
static const kernel_set *K = &SETS[0];

/* The widest set this CPU (and its OS) runs. */
static int best_set(void)
{
#ifdef MULTI_TARGET
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2"))
        return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
        return 2;
    return 1;
#else
    return 0;
#endif
}

/* ---- SFC64 (numpy's small fast chaotic generator): state words a, b, c, counter ---------- */

typedef struct { uint64_t a, b, c, w; } sfc64;

static void take_sfc64(sfc64 *state, uint64_t *buf, Py_ssize_t count)
{
    sfc64 s = *state; /* a local copy stays in registers */
    for (Py_ssize_t i = 0; i < count; i++) {
        uint64_t tmp = s.a + s.b + s.w++;
        s.a = s.b ^ (s.b >> 11);
        s.b = s.c + (s.c << 3);
        s.c = ((s.c << 24) | (s.c >> 40)) + tmp;
        buf[i] = tmp;
    }
    *state = s;
}

/* ---- Box-Muller ------------------------------------------------------------------------------
 * A step of 2k entries takes k pairs (u1, u2): its first k entries get r cos t and the next
 * ones r sin t (the last sine is dropped for an odd count), r = sqrt(-2 scale^2 ln u1),
 * t = 2 pi u2. float32: the step's k words, read as 2k 32-bit integers, give u1 (the first k)
 * and u2 (the next k); float64: k words give u1 (53 bits) and the next (k + 1) / 2 words, read
 * as 32-bit integers, give u2. Steps hold `pairs` pairs, the last one what is left. */

static Py_ssize_t step_words(int is64, Py_ssize_t k) { return is64 ? k + (k + 1) / 2 : k; }

static void fill_normals(int is64, void *out, Py_ssize_t n, double scale, Py_ssize_t pairs, uint64_t *buf,
                         sfc64 *state)
{
    for (Py_ssize_t start = 0; start < n; start += 2 * pairs) {
        Py_ssize_t size = n - start < 2 * pairs ? n - start : 2 * pairs;
        Py_ssize_t k = (size + 1) / 2, m = size - k;
        take_sfc64(state, buf, step_words(is64, k));
        if (is64) {
            const uint32_t *u2 = (const uint32_t *)(buf + k);
            double *o = (double *)out + start, factor = -2.0 * scale * scale, spare;
            K->step64(buf, u2, m, o, o + k, factor);
            if (m < k) /* an odd count: the last pair's sine is dropped */
                K->step64(buf + m, u2 + m, 1, o + m, &spare, factor);
        } else {
            const uint32_t *u1 = (const uint32_t *)buf, *u2 = u1 + k;
            float *o = (float *)out + start, factor = (float)(-2.0 * scale * scale), spare;
            K->step32(u1, u2, m, o, o + k, factor);
            if (m < k)
                K->step32(u1 + m, u2 + m, 1, o + m, &spare, factor);
        }
    }
}

/* ---- Python bindings ---------------------------------------------------------------------- */

/* A C-contiguous buffer of float32 ('f') or float64 ('d'). */
static int float_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (!((f[0] == 'f' || f[0] == 'd') && f[1] == '\0')) {
        PyErr_Format(PyExc_TypeError, "%s: a float32 or float64 array, not format '%s'", what, view->format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* normals(states, out, scale, pairs): out, cut into as many equal slices as states has rows
 * of 4 words, slice i from SFC64 state row i (advanced in place): one stream or a group of
 * small trials' streams in one call. */
static PyObject *py_normals(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *src_obj, *out_obj;
    double scale;
    Py_ssize_t pairs;
    if (!PyArg_ParseTuple(args, "OOdn", &src_obj, &out_obj, &scale, &pairs))
        return NULL;
    if (pairs < 1)
        return PyErr_Format(PyExc_ValueError, "pairs must be positive, not %zd", pairs);
    Py_buffer src, out;
    if (PyObject_GetBuffer(src_obj, &src, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        return NULL;
    if (float_buffer(out_obj, &out, 1, "normals") < 0) {
        PyBuffer_Release(&src);
        return NULL;
    }
    int is64 = out.itemsize == 8;
    Py_ssize_t n = out.len / out.itemsize, streams = src.len / 32;
    if (streams < 1 || src.len != 32 * streams || n % streams != 0) {
        PyErr_Format(PyExc_ValueError, "normals: %zd bytes of state, expected rows of 4 words that divide the %zd "
                     "entries", src.len, n);
        PyBuffer_Release(&src);
        PyBuffer_Release(&out);
        return NULL;
    }
    Py_ssize_t per = n / streams;
    Py_ssize_t k_max = pairs < (per + 1) / 2 ? pairs : (per + 1) / 2;
    uint64_t *buf = (uint64_t *)PyMem_RawMalloc((size_t)(step_words(is64, k_max) + 1) * 8);
    if (!buf) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&out);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t t = 0; t < streams; t++) {
        sfc64 state;
        memcpy(&state, (char *)src.buf + 32 * t, 32);
        fill_normals(is64, (char *)out.buf + t * per * out.itemsize, per, scale, pairs, buf, &state);
        memcpy((char *)src.buf + 32 * t, &state, 32);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(buf);
    PyBuffer_Release(&src);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyObject *py_sums(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *x_obj;
    if (!PyArg_ParseTuple(args, "O", &x_obj))
        return NULL;
    Py_buffer x;
    if (float_buffer(x_obj, &x, 0, "sums") < 0)
        return NULL;
    double out[2];
    Py_ssize_t n = x.len / x.itemsize;
    Py_BEGIN_ALLOW_THREADS
    if (x.itemsize == 8)
        K->sums64((const double *)x.buf, n, out);
    else
        K->sums32((const float *)x.buf, n, out);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    return Py_BuildValue("(dd)", out[0], out[1]);
}

/* activate_many(kind, p1, p2, h, x, trials, block, out): x = phi(h) over `trials` equal slices
 * of h and x, each cut into blocks of `block` entries (the last one shorter); out (float64,
 * trials x blocks x 4) receives each block's float64 sums of h, h^2, x, x^2, or is None: no
 * sums (the training's forward: they cost twice the activation). One call, the GIL released
 * throughout: a group of small trials costs one Python call, not one per trial and block. */
static PyObject *py_activate_many(PyObject *self, PyObject *args)
{
    (void)self;
    int kind;
    double p1, p2;
    Py_ssize_t trials, block;
    PyObject *h_obj, *x_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "iddOOnnO", &kind, &p1, &p2, &h_obj, &x_obj, &trials, &block, &out_obj))
        return NULL;
    if (kind < ACT_LINEAR || kind > ACT_TANH)
        return PyErr_Format(PyExc_ValueError, "activate_many: unknown kind %d", kind);
    Py_buffer h, x, out = {0};
    if (float_buffer(h_obj, &h, 0, "activate_many") < 0)
        return NULL;
    if (float_buffer(x_obj, &x, 1, "activate_many") < 0) {
        PyBuffer_Release(&h);
        return NULL;
    }
    if (out_obj != Py_None && float_buffer(out_obj, &out, 1, "activate_many") < 0) {
        PyBuffer_Release(&h);
        PyBuffer_Release(&x);
        return NULL;
    }
    Py_ssize_t n = h.len / h.itemsize;
    Py_ssize_t per = trials > 0 ? n / trials : 0;
    Py_ssize_t blocks = block > 0 && per > block ? (per + block - 1) / block : 1;
    double *o = (double *)out.buf;
    if (trials < 1 || block < 1 || per * trials != n || h.len != x.len || h.itemsize != x.itemsize
        || (o && (out.itemsize != 8 || out.len != 8 * 4 * trials * blocks))) {
        PyBuffer_Release(&h);
        PyBuffer_Release(&x);
        PyBuffer_Release(&out);
        return PyErr_Format(PyExc_ValueError, "activate_many: h and x differ in size or dtype or are not `trials` "
                            "equal slices, or out is not None nor float64 of trials x blocks x 4");
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t t = 0; t < trials; t++)
        for (Py_ssize_t b = 0; b < blocks; b++) {
            Py_ssize_t start = t * per + b * block;
            Py_ssize_t len = per - b * block < block ? per - b * block : block;
            double *sums = o ? o + 4 * (t * blocks + b) : NULL;
            if (h.itemsize == 8)
                K->activate64(kind, p1, p2, (const double *)h.buf + start, (double *)x.buf + start, len, sums);
            else
                K->activate32(kind, p1, p2, (const float *)h.buf + start, (float *)x.buf + start, len, sums);
        }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&h);
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* elu_grad(p1, p2, p, y, g, out): out = g phi'(p) for the ELU family from y = phi(p) (p1 where
 * p > 0, else y + p2); four arrays of one size and dtype. */
static PyObject *py_elu_grad(PyObject *self, PyObject *args)
{
    (void)self;
    double p1, p2;
    PyObject *o[4];
    if (!PyArg_ParseTuple(args, "ddOOOO", &p1, &p2, &o[0], &o[1], &o[2], &o[3]))
        return NULL;
    Py_buffer v[4];
    int got = 0, ok = 1;
    while (got < 4 && float_buffer(o[got], &v[got], got == 3, "elu_grad") == 0)
        got++;
    for (int i = 1; i < got; i++)
        ok = ok && v[i].len == v[0].len && v[i].itemsize == v[0].itemsize;
    if (got == 4 && ok) {
        Py_ssize_t n = v[0].len / v[0].itemsize;
        Py_BEGIN_ALLOW_THREADS
        if (v[0].itemsize == 8)
            K->elu_grad64(p1, p2, v[0].buf, v[1].buf, v[2].buf, v[3].buf, n);
        else
            K->elu_grad32(p1, p2, v[0].buf, v[1].buf, v[2].buf, v[3].buf, n);
        Py_END_ALLOW_THREADS
    }
    for (int i = 0; i < got; i++)
        PyBuffer_Release(&v[i]);
    if (got < 4)
        return NULL;
    if (!ok)
        return PyErr_Format(PyExc_ValueError, "elu_grad: p, y, g and out differ in size or dtype");
    Py_RETURN_NONE;
}

/* use(name) -> the previous name: run a narrower set (tests compare their bits). */
static PyObject *py_use(PyObject *self, PyObject *args)
{
    (void)self;
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    int best = best_set();
    for (int i = 0; i < NSETS; i++)
        if (strcmp(SETS[i].name, name) == 0) {
            if (i > best)
                return PyErr_Format(PyExc_ValueError, "this CPU cannot run the %s kernels", name);
            const char *previous = K->name;
            K = &SETS[i];
            return PyUnicode_FromString(previous);
        }
    return PyErr_Format(PyExc_ValueError, "unknown kernel set '%s'", name);
}

static PyObject *py_available(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    int best = best_set();
    PyObject *names = PyList_New(best + 1);
    for (int i = 0; names && i <= best; i++)
        PyList_SET_ITEM(names, i, PyUnicode_FromString(SETS[i].name));
    return names;
}

static PyObject *py_current(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    return PyUnicode_FromString(K->name);
}

static PyMethodDef methods[] = {
    {"normals", py_normals, METH_VARARGS,
     "normals(states, out, scale, pairs): Box-Muller N(0, scale^2); out's i-th equal slice from SFC64 state row i "
     "(4 uint64 a row, advanced in place)."},
    {"sums", py_sums, METH_VARARGS, "sums(x) -> (sum, sum of squares), accumulated in float64."},
    {"activate_many", py_activate_many, METH_VARARGS,
     "activate_many(kind, p1, p2, h, x, trials, block, out): x = phi(h) over trials' blocks; out[t, b] = the "
     "float64 sums of h, h^2, x, x^2 (out None: no sums)."},
    {"elu_grad", py_elu_grad, METH_VARARGS,
     "elu_grad(p1, p2, p, y, g, out): out = g phi'(p) for the ELU family from y = phi(p) (p1 where p > 0, else y + p2)."},
    {"use", py_use, METH_VARARGS, "use(name) -> previous: switch kernel sets (all give the same bits)."},
    {"available", py_available, METH_NOARGS, "available() -> the kernel sets this CPU runs, narrowest first."},
    {"current", py_current, METH_NOARGS, "current() -> the kernel set in use."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", "The engine's inner loops in C.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void)
{
    K = &SETS[best_set()];
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "LINEAR", ACT_LINEAR) < 0 || PyModule_AddIntConstant(m, "RELU", ACT_RELU) < 0
        || PyModule_AddIntConstant(m, "LEAKY", ACT_LEAKY) < 0 || PyModule_AddIntConstant(m, "ELU", ACT_ELU) < 0
        || PyModule_AddIntConstant(m, "TANH", ACT_TANH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
