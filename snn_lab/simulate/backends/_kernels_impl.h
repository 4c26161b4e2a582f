/* The vectorizable kernels, compiled once per instruction set by _kernels.c: NAME(f) gives
 * this copy's function names. Nothing here calls libm or fuses a multiply-add, so every copy
 * computes the same bits; only the width of the vectors differs.
 *
 * float32 entries are computed in float32 arithmetic (polynomials accurate to a few float32
 * ulps) and float64 entries in float64 (a few float64 ulps); sums are always float64.
 */

/* ---- float64 elementary functions ------------------------------------------------------ */

/* ln x for a positive normal x; hand-written: vectorizes, no libm call, same bits in every copy.
 * x = 2^e m, m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172:
 * odd terms to s^23 leave < 1e-17. */
static inline double NAME(log64)(double x)
{
    uint64_t b = double_bits(x);
    double e = bits_double((b >> 52) | 0x4330000000000000ULL) - 0x1.0p52 - 1023.0; /* exact */
    double m = bits_double((b & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);
    int big = m > 1.41421356237309514547;
    m = big ? 0.5 * m : m;
    e = big ? e + 1.0 : e;
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double p = 2.0 / 3 + z * (2.0 / 5 + z * (2.0 / 7 + z * (2.0 / 9 + z * (2.0 / 11 + z * (2.0 / 13
        + z * (2.0 / 15 + z * (2.0 / 17 + z * (2.0 / 19 + z * (2.0 / 21 + z * (2.0 / 23))))))))));
    return e * LN2_HI + (e * LN2_LO + (2.0 * s + s * z * p));
}

/* cos and sin of |t| <= 4; hand-written: vectorizes, no libm call, same bits in every copy.
 * t = q pi/2 + d (Cody-Waite), |d| <= pi/4, Taylor to d^16 and d^17 (next terms < 1e-17), then
 * q quarter turns. */
static inline void NAME(cos_sin64)(double t, double *c, double *s)
{
    double qs = t * 6.36619772367581382433e-01 + 0x1.8p52; /* rounds t 2/pi to an integer */
    double q = qs - 0x1.8p52;
    double d = (t - q * HALF_PI_HI) - q * HALF_PI_LO;
    uint64_t quarter = double_bits(qs) & 3; /* q mod 4 */
    double z = d * d;
    double sd = d + d * z * (-1.0 / 6 + z * (1.0 / 120 + z * (-1.0 / 5040 + z * (1.0 / 362880
        + z * (-1.0 / 39916800 + z * (1.0 / 6227020800.0 + z * (-1.0 / 1307674368000.0
        + z * (1.0 / 355687428096000.0))))))));
    double cd = 1.0 + z * (-1.0 / 2 + z * (1.0 / 24 + z * (-1.0 / 720 + z * (1.0 / 40320
        + z * (-1.0 / 3628800 + z * (1.0 / 479001600 + z * (-1.0 / 87178291200.0
        + z * (1.0 / 20922789888000.0))))))));
    double c1 = (quarter & 1) ? -sd : cd, s1 = (quarter & 1) ? cd : sd;
    *c = (quarter & 2) ? -c1 : c1;
    *s = (quarter & 2) ? -s1 : s1;
}

/* exp(v) - 1, v <= 0 (NaN kept); hand-written: vectorizes, no libm call, same bits in every copy.
 * v = n ln2 + r, |r| <= ln2/2, expm1 = 2^n expm1(r) + (2^n - 1) with 2^n - 1 exact and expm1(r)
 * Taylor to r^13 (relative error < 2e-17). exp(-40) - 1 rounds to -1, so v is clamped there
 * (2^n stays a normal number). */
static inline double NAME(expm1_64)(double v)
{
    v = v < -40.0 ? -40.0 : v;
    double t = v * 1.44269504088896338700 + 0x1.8p52;
    double n = t - 0x1.8p52;
    double r = (v - n * LN2_HI) - n * LN2_LO;
    double p = r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720
        + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800
        + r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800.0)))))))))))));
    int64_t k = (int64_t)(double_bits(t) - 0x4338000000000000ULL); /* n, in [-58, 0] */
    double scale = bits_double((uint64_t)(k + 1023) << 52);
    return scale * p + (scale - 1.0);
}

/* ---- float32 elementary functions (the same schemes, shorter) ---------------------------- */

/* ln, hand-written as log64: vectorizes, no libm call, same bits in every copy. */
static inline float NAME(log32)(float x) /* s^9 last: error < 2e-9 */
{
    uint32_t b = float_bits(x);
    float e = bits_float((b >> 23) | 0x4b000000u) - 0x1.0p23f - 127.0f;
    float m = bits_float((b & 0x007fffffu) | 0x3f800000u);
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e = big ? e + 1.0f : e;
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float p = 2.0f / 3 + z * (2.0f / 5 + z * (2.0f / 7 + z * (2.0f / 9)));
    return e * LN2_HI_F + (e * LN2_LO_F + (2.0f * s + s * z * p));
}

/* cos and sin, hand-written as cos_sin64: vectorizes, no libm call, same bits in every copy. */
static inline void NAME(cos_sin32)(float t, float *c, float *s) /* |t| <= 4; d^10, d^9 last */
{
    float qs = t * 0.636619772f + 0x1.8p23f;
    float q = qs - 0x1.8p23f;
    float d = (t - q * HALF_PI_HI_F) - q * HALF_PI_LO_F;
    uint32_t quarter = float_bits(qs) & 3;
    float z = d * d;
    float sd = d + d * z * (-1.0f / 6 + z * (1.0f / 120 + z * (-1.0f / 5040 + z * (1.0f / 362880))));
    float cd = 1.0f + z * (-1.0f / 2 + z * (1.0f / 24 + z * (-1.0f / 720 + z * (1.0f / 40320
        + z * (-1.0f / 3628800)))));
    float c1 = (quarter & 1) ? -sd : cd, s1 = (quarter & 1) ? cd : sd;
    *c = (quarter & 2) ? -c1 : c1;
    *s = (quarter & 2) ? -s1 : s1;
}

/* expm1, hand-written as expm1_64: vectorizes, no libm call, same bits in every copy. */
static inline float NAME(expm1_32)(float v) /* v <= 0; r^8 last: relative error < 1e-9 */
{
    v = v < -40.0f ? -40.0f : v;
    float t = v * 1.44269504f + 0x1.8p23f;
    float n = t - 0x1.8p23f;
    float r = (v - n * LN2_HI_F) - n * LN2_LO_F;
    float p = r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
        + r * (1.0f / 720 + r * (1.0f / 5040 + r * (1.0f / 40320))))))));
    int32_t k = (int32_t)(float_bits(t) - 0x4b400000u); /* n, in [-58, 0] */
    float scale = bits_float((uint32_t)(k + 127) << 23);
    return scale * p + (scale - 1.0f);
}

/* ---- Box-Muller: `count` pairs (u1[i], u2[i]) -> cosines c[i] and sines s[i] (_kernels.c) --- */

static void NAME(step32)(const uint32_t *u1, const uint32_t *u2, Py_ssize_t count, float *c, float *s,
                         float factor)
{
    const float angle_step = (float)(2.0 * M_PI * 0x1.0p-32);
    for (Py_ssize_t i = 0; i < count; i++) { /* as numpy's float32 steps: u1 in (0, 1] */
        float r = ((float)u1[i] + 0.5f) * 0x1.0p-32f;
        r = sqrtf(NAME(log32)(r) * factor);
        float ci, si;
        NAME(cos_sin32)((float)(int32_t)u2[i] * angle_step, &ci, &si); /* signed: [-pi, pi) */
        c[i] = ci * r;
        s[i] = si * r;
    }
}

static void NAME(step64)(const uint64_t *w, const uint32_t *u2, Py_ssize_t count, double *c, double *s,
                         double factor)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        /* Generator.random()'s (w >> 11) 2^-53 from two exact halves, plus 2^-54 */
        double top = bits_double(0x4330000000000000ULL | (w[i] >> 32)) - 0x1.0p52;
        double low = bits_double(0x4330000000000000ULL | ((w[i] >> 11) & 0x1fffff)) - 0x1.0p52;
        double r = (top * 0x1.0p21 + low) * 0x1.0p-53 + 0x1.0p-54;
        r = sqrt(NAME(log64)(r) * factor);
        double ci, si; /* 2 pi u2 / 2^32, less a turn past pi: the same cosine and sine */
        NAME(cos_sin64)((double)(int32_t)u2[i] * (2.0 * M_PI * 0x1.0p-32), &ci, &si);
        c[i] = r * ci;
        s[i] = r * si;
    }
}

/* ---- activations with their sums ---------------------------------------------------------- */

/* Entry j of every 16 goes to lane j (vector j / 4); a chunk's tail is padded with zeros,
 * which add nothing. At the end lanes j and 8 + j are added in order of j, the same on every copy. */
#define ADD16(VT, p, acc)                                                                       \
    for (int q_ = 0; q_ < 4; q_++) {                                                            \
        VT raw_;                                                                                \
        memcpy(&raw_, (p) + 4 * q_, sizeof raw_);                                               \
        lanes_t v_ = __builtin_convertvector(raw_, lanes_t);                                    \
        (acc).s1[q_] += v_;                                                                     \
        (acc).s2[q_] += v_ * v_;                                                                \
    }

#define ACCUMULATE(T, VT, x, n, acc)                                                            \
    do {                                                                                        \
        Py_ssize_t i_ = 0;                                                                      \
        for (; i_ + LANES <= (n); i_ += LANES)                                                  \
            ADD16(VT, (x) + i_, acc);                                                           \
        if (i_ < (n)) {                                                                         \
            T pad_[LANES] = {0};                                                                \
            memcpy(pad_, (x) + i_, (size_t)((n) - i_) * sizeof(T));                             \
            ADD16(VT, pad_, acc);                                                               \
        }                                                                                       \
    } while (0)

static inline void NAME(reduce)(const acc_t *acc, double *out)
{
    out[0] = out[1] = 0.0;
    for (int j = 0; j < 8; j++) {
        out[0] += acc->s1[j / 4][j % 4] + acc->s1[2 + j / 4][j % 4];
        out[1] += acc->s2[j / 4][j % 4] + acc->s2[2 + j / 4][j % 4];
    }
}

#define DEFINE_SUMS(T, VT, BITS)                                                                \
static void NAME(sums##BITS)(const T *x, Py_ssize_t n, double *out)                             \
{                                                                                               \
    acc_t acc = {0};                                                                            \
    ACCUMULATE(T, VT, x, n, acc);                                                               \
    NAME(reduce)(&acc, out);                                                                    \
}
DEFINE_SUMS(float, floats_t, 32)
DEFINE_SUMS(double, lanes_t, 64)

/* phi(v) for one kind (a constant where inlined); p1, p2: the leaky slope, or elu's scale
 * (lambda) and scale * alpha. relu(-inf) = 0 and NaN stays NaN, as numpy's maximum. */
#define PHI(T, EXPM1, kind, v, p1, p2)                                                          \
    ((kind) == ACT_RELU ? ((v) > 0 ? (v) : ((v) != (v) ? (v) : (T)0))                           \
     : (kind) == ACT_LEAKY ? ((v) > 0 ? (v) : (p1) * (v))                                       \
     : (kind) == ACT_ELU ? ((v) > 0 ? (p1) * (v) : (p2) * EXPM1((v) > 0 ? (T)0 : (v)))           \
     : (kind) == ACT_TANH ? NAME(tanh_from_expm1_##T)(EXPM1(-2 * ((v) < 0 ? -(v) : (v))), (v))  \
     : (v))

/* tanh v = sign(v) (-e / (e + 2)) for e = expm1(-2|v|): accurate near 0; tanh(-0) = -0, NaN
 * stays NaN (e is NaN). Hand-written from expm1 (copysign is a bit operation, not a libm call). */
static inline float NAME(tanh_from_expm1_float)(float e, float v) { return __builtin_copysignf(-e / (e + 2.0f), v); }
static inline double NAME(tanh_from_expm1_double)(double e, double v) { return __builtin_copysign(-e / (e + 2.0), v); }

/* x = phi(h) a chunk at a time (in L1), then the chunk's sums of h and of x. */
#define DEFINE_ACTIVATE(T, VT, BITS, KIND, KNAME)                                                   \
static void NAME(activate##BITS##_##KNAME)(T p1, T p2, const T *h, T *x, Py_ssize_t n,          \
                                           double *out)                                         \
{                                                                                               \
    acc_t hs = {0}, xs = {0};                                                                   \
    for (Py_ssize_t start = 0; start < n; start += CHUNK) {                                     \
        Py_ssize_t len = n - start < CHUNK ? n - start : CHUNK;                                 \
        const T *hc = h + start;                                                                \
        T *xc = x + start;                                                                      \
        for (Py_ssize_t i = 0; i < len; i++) {                                                  \
            T v = hc[i];                                                                        \
            xc[i] = PHI(T, NAME(expm1_##BITS), KIND, v, p1, p2);                                \
        }                                                                                       \
        if (!out) /* no sums asked for (the training's forward) */                             \
            continue;                                                                           \
        ACCUMULATE(T, VT, hc, len, hs);                                                         \
        ACCUMULATE(T, VT, xc, len, xs);                                                         \
    }                                                                                           \
    if (!out)                                                                                   \
        return;                                                                                 \
    NAME(reduce)(&hs, out);                                                                     \
    NAME(reduce)(&xs, out + 2);                                                                 \
}

DEFINE_ACTIVATE(float, floats_t, 32, ACT_LINEAR, linear)
DEFINE_ACTIVATE(float, floats_t, 32, ACT_RELU, relu)
DEFINE_ACTIVATE(float, floats_t, 32, ACT_LEAKY, leaky)
DEFINE_ACTIVATE(float, floats_t, 32, ACT_ELU, elu)
DEFINE_ACTIVATE(float, floats_t, 32, ACT_TANH, tanh)
DEFINE_ACTIVATE(double, lanes_t, 64, ACT_LINEAR, linear)
DEFINE_ACTIVATE(double, lanes_t, 64, ACT_RELU, relu)
DEFINE_ACTIVATE(double, lanes_t, 64, ACT_LEAKY, leaky)
DEFINE_ACTIVATE(double, lanes_t, 64, ACT_ELU, elu)
DEFINE_ACTIVATE(double, lanes_t, 64, ACT_TANH, tanh)

#define DEFINE_DISPATCH(T, BITS)                                                                \
static void NAME(activate##BITS)(int kind, double p1, double p2, const T *h, T *x, Py_ssize_t n, \
                                 double *out)                                                   \
{                                                                                               \
    T a = (T)p1, b = (T)p2;                                                                     \
    switch (kind) {                                                                             \
    case ACT_LINEAR: NAME(activate##BITS##_linear)(a, b, h, x, n, out); break;                  \
    case ACT_RELU: NAME(activate##BITS##_relu)(a, b, h, x, n, out); break;                      \
    case ACT_LEAKY: NAME(activate##BITS##_leaky)(a, b, h, x, n, out); break;                    \
    case ACT_ELU: NAME(activate##BITS##_elu)(a, b, h, x, n, out); break;                        \
    default: NAME(activate##BITS##_tanh)(a, b, h, x, n, out); break;                            \
    }                                                                                           \
}

DEFINE_DISPATCH(float, 32)
DEFINE_DISPATCH(double, 64)

/* out = g phi'(p) for the ELU family, from y = phi(p): p1 (lambda) where p > 0, else y + p2
 * (lambda alpha). One pass for the training's backward (numpy: six passes). NaN stays NaN. */
#define DEFINE_ELU_GRAD(T, BITS)                                                                \
static void NAME(elu_grad##BITS)(double p1, double p2, const T *p, const T *y, const T *g, T *out, \
                                 Py_ssize_t n)                                                  \
{                                                                                               \
    T a = (T)p1, b = (T)p2;                                                                     \
    for (Py_ssize_t i = 0; i < n; i++)                                                          \
        out[i] = g[i] * (p[i] > 0 ? a : y[i] + b);                                              \
}
DEFINE_ELU_GRAD(float, 32)
DEFINE_ELU_GRAD(double, 64)
