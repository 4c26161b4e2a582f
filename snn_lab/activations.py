"""Activations: each one value holding its function, derivative and Gaussian moments."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import special

from snn_lab import gaussian

# The SELU constants of Klambauer et al. (2017), eq. (14): the (lambda, alpha) that make
# mean 0, variance 1 the fixed point. Defined here and nowhere else.
LAMBDA01 = 1.0507009873554804934193349852946
ALPHA01 = 1.6732632423543772848170429916717

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)


class Moments(NamedTuple):
    """E[phi(z)], E[phi(z)^2] and E[phi'(z)^2] for z ~ N(mean, std^2)."""

    m1: float
    m2: float
    d2: float


ClosedForm = Callable[[float, float], Moments]
PairForm = Callable[[float, float], float]
# y -> (x, |dx/dy|) on the values a monotone phi takes off its flat part; NaN elsewhere.
Inverse = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise nonlinearity: function, derivative and Gaussian moments in one place."""

    name: str
    params: Mapping[str, float]
    fn: Callable[..., np.ndarray]  # fn(x, out=None): out may be x itself (in place)
    deriv: Callable[[np.ndarray], np.ndarray]
    kinks: tuple[float, ...] = ()  # where fn or deriv is not smooth: quadrature splits there
    closed_form: ClosedForm | None = None  # (mean, std > 0) -> Moments
    saturation: float | None = None  # lim phi(x) as x -> -inf (alpha dropout's alpha')
    pair_form: PairForm | None = None  # (q, c) -> E[phi(u1) phi(u2)], closed form
    # The engine's compiled loop for fn, as (name, p1, p2): ("elu", lambda, lambda alpha),
    # ("leaky", slope, 0), ("relu" | "tanh" | "linear", 0, 0); None runs fn itself.
    kernel: tuple[str, float, float] | None = None
    gamma: float = 1.0  # output scale applied on top of the registry's function (scaled())
    # For the density of phi(z): the unscaled phi's inverse where phi is strictly monotone, and
    # the value phi keeps for every x <= 0 where it is flat there (ReLU: 0, a point mass).
    inverse: Inverse | None = None
    flat: float | None = None

    def deriv_given(self, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None,
                    tmp: np.ndarray | None = None) -> np.ndarray:
        """phi'(x) given y = phi(x) too, in x's dtype: where the engine's kernel names the family,
        from y without exp (ELU family: phi' = y + lambda alpha below 0; tanh: 1 - y^2), else deriv.
        out and tmp (x's shape and dtype): where to write it and scratch, no allocation then."""
        name, p1, p2 = self.kernel or ("", 0.0, 0.0)
        one = x.dtype.type
        # Arithmetic on the 0/1 mask rather than np.where: numpy's masked paths are 5x slower here.
        if name == "elu":  # y <= 0 where x <= 0: p2 + min(y, 0), less p2 - p1 where x > 0
            d = np.minimum(y, one(0.0), out=out)
            d += one(p2)
            d -= np.multiply(x > 0, one(p2 - p1), out=tmp)
            return d
        if name == "relu":
            return (x > 0).astype(x.dtype) if out is None else np.greater(x, 0, out=out)
        if name == "leaky":
            d = np.multiply(x > 0, one(1.0 - p1), out=out)
            d += one(p1)
            return d
        if name == "tanh":
            d = np.multiply(y, y, out=out)
            return np.subtract(one(1.0), d, out=d)
        d = np.asarray(self.deriv(x), x.dtype)
        if out is not None:
            np.copyto(out, d)
            d = out
        return d

    def pair_moment(self, q: float, c: float) -> float:
        """E[phi(u1) phi(u2)] for centred Gaussians of variance q and correlation c."""
        if self.pair_form is not None and q > 0:
            return self.pair_form(float(q), float(c))
        if all(k == 0.0 for k in self.kinks) and 1e-6 <= q <= 1e3 and -0.6 <= c <= 0.9999:
            # The polar rule, where it was checked against the nested one (within 3e-15 of
            # E[phi^2], gaussian.py) and the closed forms: 7 to 11 times fewer nodes.
            u1, u2, w = gaussian.polar_pair_nodes(float(q), float(c))
            return float(np.sum(w * self.fn(u1) * self.fn(u2)))
        return gaussian.pair_expect(self.fn, self.kinks, q, c)

    @property
    def label(self) -> str:
        """Name with its non-default parameters, e.g. 'selu(lambda=1.1)'."""
        changed = {k: v for k, v in self.params.items() if v != ACTIVATIONS[self.name].defaults[k]}
        base = self.name if not changed else (
            f"{self.name}(" + ", ".join(f"{k}={v:g}" for k, v in changed.items()) + ")")
        return base if self.gamma == 1.0 else f"{self.gamma:.6g}*{base}"

    def moments(self, mean: float, std: float) -> Moments:
        """Gaussian moments: closed form when there is one, quadrature split at kinks otherwise."""
        if std == 0.0 or self.closed_form is None:
            return self.quadrature_moments(mean, std)
        return self.closed_form(float(mean), float(std))

    def scaled(self, gamma: float) -> Activation:
        """gamma * phi: function, derivative, moments and limits all scaled (gamma 1: self)."""
        if gamma == 1.0:
            return self
        g = float(gamma)

        def fn(x, out=None):
            y = self.fn(x, out=out)
            y *= g
            return y

        closed = self.closed_form
        kernel = None
        if self.kernel is not None and self.kernel[0] == "elu":  # lambda and lambda alpha scale
            kernel = ("elu", self.kernel[1] * g, self.kernel[2] * g)
        return dataclasses.replace(
            self, params=self.params, fn=fn, deriv=lambda x: self.deriv(x) * g,
            closed_form=None if closed is None else lambda m, s: Moments(*(v * f for v, f in zip(
                closed(m, s), (g, g * g, g * g)))),
            saturation=None if self.saturation is None else self.saturation * g,
            pair_form=None if self.pair_form is None else lambda q, c: g * g * self.pair_form(q, c),
            kernel=kernel, gamma=self.gamma * g)

    def density(self, y, mean: float, std: float) -> np.ndarray:
        """The density of phi(z), z ~ N(mean, std^2), at y by change of variables (its point
        mass, if any, is atoms()'s); NaN when phi is not monotone (no inverse) or std is 0."""
        y = np.asarray(y, dtype=np.float64)
        if self.inverse is None or not std > 0:
            return np.full(y.shape, math.nan)
        with np.errstate(all="ignore"):
            x, jac = self.inverse(y / self.gamma)
            t = (x - mean) / std
            # The normal pdf written out, as _pdf is: importing scipy.stats would add about
            # half a second to every command that loads an activation.
            pdf = _INV_SQRT_2PI * np.exp(-0.5 * t * t) / std * jac / abs(self.gamma)
        return np.where(np.isfinite(pdf), pdf, 0.0)

    def atoms(self, mean: float, std: float) -> tuple[tuple[float, float], ...]:
        """The point masses of phi(z), z ~ N(mean, std^2): ((value, probability), ...)."""
        if not std > 0:
            return ((float(self.fn(np.array([float(mean)]))[0]), 1.0),)
        if self.flat is None:
            return ()
        return ((self.gamma * self.flat, float(special.ndtr(-mean / std))),)

    def quadrature_moments(self, mean: float, std: float) -> Moments:
        """Gaussian moments by numerical integration (the reference for closed forms)."""
        if not (math.isfinite(mean) and math.isfinite(std)):  # an overflowed layer: no moments
            return Moments(math.nan, math.nan, math.nan)
        x, w = (np.array([float(mean)]), np.ones(1)) if std == 0.0 else gaussian.nodes(mean, std, self.kinks)
        y, dy = self.fn(x), self.deriv(x)
        return Moments(float(w @ y), float(w @ (y * y)), float(w @ (dy * dy)))


# ---- closed forms -------------------------------------------------------------------------

def _pdf(t: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * t * t)


def _ndtr(t: float) -> float:
    return float(special.ndtr(t))


def _exp_ndtr(a: float, b: float, rest: float) -> float:
    """exp(a) * Phi(b), given rest = a - b^2/2 exactly; finite where exp(a) alone would overflow."""
    if b > -5.0:
        return math.exp(a) * _ndtr(b)
    # Phi(b) = erfcx(-b/sqrt2) exp(-b^2/2) / 2. The caller passes a - b^2/2 in closed form:
    # formed here from a ~ s^2/2 it would lose s^2 * 1e-16 to cancellation (OverflowError
    # in math.exp once s ~ 1e12).
    return 0.5 * float(special.erfcx(-b * _SQRT_HALF)) * math.exp(rest)


def _relu_parts(m: float, s: float) -> tuple[float, float, float]:
    """E[z+], E[z+^2] and P(z > 0) for z ~ N(m, s^2)."""
    t = m / s
    p, d = _ndtr(t), _pdf(t)
    return m * p + s * d, (m * m + s * s) * p + m * s * d, p


def _linear_moments(m: float, s: float) -> Moments:
    return Moments(m, m * m + s * s, 1.0)


def _relu_moments(m: float, s: float) -> Moments:
    e1, e2, p = _relu_parts(m, s)
    return Moments(e1, e2, p)


def _leaky_moments(slope: float) -> ClosedForm:
    def moments(m: float, s: float) -> Moments:
        e1, e2, p = _relu_parts(m, s)
        # z = z+ + z-, and z+ z- = 0, so the negative part follows from the positive one.
        neg1, neg2 = m - e1, m * m + s * s - e2
        return Moments(e1 + slope * neg1, e2 + slope * slope * neg2, p + slope * slope * (1.0 - p))
    return moments


def _neg_expm1(x: np.ndarray) -> np.ndarray:
    """e^x - 1 where x < 0, else 0."""
    return np.expm1(np.minimum(x, 0.0))


def _elu_moments(alpha: float, scale: float = 1.0) -> ClosedForm:
    def moments(m: float, s: float) -> Moments:
        e1, e2, p = _relu_parts(m, s)
        q = 1.0 - p if m <= 0 else _ndtr(-m / s)  # P(z < 0) without cancellation
        t = m / s
        rest = -0.5 * t * t  # a - b^2/2 of both calls below, exactly
        ex1 = _exp_ndtr(m + 0.5 * s * s, -(m + s * s) / s, rest)  # E[e^z ; z < 0]
        ex2 = _exp_ndtr(2.0 * m + 2.0 * s * s, -(m + 2.0 * s * s) / s, rest)  # E[e^2z ; z < 0]
        neg1, neg2 = ex1 - q, ex2 - 2.0 * ex1 + q  # E[e^z - 1 ; z < 0], E[(e^z - 1)^2 ; z < 0]
        if neg2 < 1e-4 * q:
            # z < 0 stays near 0 (s << 1, or m > 0): the differences cancel O(q) terms down to
            # O(s^2), losing 1e-16 / s^2 relatively (1e-4 at s = 1e-6). Integrate expm1 instead.
            neg1 = gaussian.expect(_neg_expm1, m, s, (0.0,))
            neg2 = gaussian.expect(lambda x: _neg_expm1(x) ** 2, m, s, (0.0,))
        mean = e1 + alpha * neg1
        second = e2 + alpha * alpha * neg2
        dsq = p + alpha * alpha * ex2
        return Moments(scale * mean, scale * scale * second, scale * scale * dsq)
    return moments


def _arccos_kernel(q: float, c: float) -> float:
    """E[relu(u1) relu(u2)]: the degree-1 arc-cosine kernel (Cho and Saul 2009)."""
    c = min(1.0, max(-1.0, c))
    return q / (2.0 * math.pi) * (math.sqrt((1.0 - c) * (1.0 + c)) + (math.pi - math.acos(c)) * c)


def _leaky_pair(slope: float) -> PairForm:
    def pair(q: float, c: float) -> float:
        # phi(u) = relu(u) - slope relu(-u); relu(-u1), relu(-u2) have correlation c too, and
        # relu(u1) relu(-u2) is the arc-cosine kernel at -c.
        return (1.0 + slope * slope) * _arccos_kernel(q, c) - 2.0 * slope * _arccos_kernel(q, -c)
    return pair


# ---- the functions (in place when out is given: the engine's hot loop reuses buffers) ----

def _linear(x, out=None):
    if out is None:
        return x.copy()
    if out is not x:
        np.copyto(out, x)
    return out


def _relu(x, out=None):
    return np.maximum(x, 0, out=out)


def _leaky(slope):
    def fn(x, out=None):
        neg = np.minimum(x, 0)
        neg *= slope
        out = np.maximum(x, 0, out=out)
        out += neg
        return out
    return fn


def _elu(alpha, scale=1.0):
    def fn(x, out=None):
        neg = np.minimum(x, 0)
        np.expm1(neg, out=neg)
        neg *= scale * alpha
        out = np.maximum(x, 0, out=out)
        if scale != 1.0:
            out *= scale
        out += neg
        return out
    return fn


def _elu_deriv(alpha, scale=1.0):
    def deriv(x):
        return np.where(x > 0, scale, scale * alpha * np.exp(np.minimum(x, 0)))
    return deriv


def _tanh(x, out=None):
    return np.tanh(x, out=out)


def _gelu(x, out=None):
    # GELU, erf form: x * Phi(x).
    phi = special.ndtr(x)
    return np.multiply(x, phi, out=out)


def _gelu_deriv(x):
    return special.ndtr(x) + x * _INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _sigmoid(x):
    # tanh form: no overflow in exp for large |x|.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _silu(x, out=None):
    return np.multiply(x, _sigmoid(x), out=out)


def _silu_deriv(x):
    s = _sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


# ---- inverses, for densities (y -> x, |dx/dy|; NaN where phi does not reach y) ----------

def _identity_inverse(y):
    return y, np.ones_like(y)


def _relu_inverse(y):
    return np.where(y > 0, y, np.nan), np.ones_like(y)


def _leaky_inverse(slope):
    def inverse(y):
        return np.where(y > 0, y, y / slope), np.where(y > 0, 1.0, 1.0 / slope)
    return inverse


def _elu_inverse(alpha, scale=1.0):
    # y = scale x above 0; y = scale alpha (e^x - 1) in (-scale alpha, 0) below.
    def inverse(y):
        low = scale * alpha
        below = np.where((y > -low) & (y <= 0), y, np.nan)
        return (np.where(y > 0, y / scale, np.log1p(below / low)),
                np.where(y > 0, 1.0 / scale, 1.0 / (low + below)))
    return inverse


def _tanh_inverse(y):
    inside = np.where(np.abs(y) < 1.0, y, np.nan)
    return np.arctanh(inside), 1.0 / (1.0 - inside * inside)


# ---- the registry ------------------------------------------------------------------------

@dataclass(frozen=True)
class ActivationKind:
    """A registry entry: parameter defaults and a builder taking those parameters."""

    defaults: Mapping[str, float]
    build: Callable[..., Activation]
    summary: str


def _selu(name, params):
    lam, alpha = params["lambda"], params["alpha"]
    return Activation(name, params, _elu(alpha, lam), _elu_deriv(alpha, lam), (0.0,),
                      _elu_moments(alpha, lam), -lam * alpha, kernel=("elu", lam, lam * alpha),
                      **_elu_shape(alpha, lam))


def _elu_build(name, params):
    alpha = params["alpha"]
    return Activation(name, params, _elu(alpha), _elu_deriv(alpha), (0.0,),
                      _elu_moments(alpha), -alpha, kernel=("elu", 1.0, alpha), **_elu_shape(alpha))


def _elu_shape(alpha, scale=1.0) -> dict:
    """inverse and flat of the ELU family: monotone for alpha > 0, ReLU-like for alpha = 0."""
    if alpha < 0 or scale <= 0:
        return {}
    return {"inverse": _elu_inverse(alpha, scale), "flat": 0.0 if alpha == 0 else None}


def _leaky_build(name, params):
    slope = params["slope"]
    return Activation(name, params, _leaky(slope), lambda x: np.where(x > 0, 1.0, slope),
                      (0.0,), _leaky_moments(slope), 0.0 if slope == 0 else None, _leaky_pair(slope),
                      ("leaky", slope, 0.0), inverse=_leaky_inverse(slope) if slope > 0 else
                      _relu_inverse if slope == 0 else None, flat=0.0 if slope == 0 else None)


ACTIVATIONS: dict[str, ActivationKind] = {
    "selu": ActivationKind({"lambda": LAMBDA01, "alpha": ALPHA01}, _selu,
                           "lambda * (x if x > 0 else alpha * (exp(x) - 1))"),
    "relu": ActivationKind({}, lambda n, p: Activation(
        n, p, _relu, lambda x: (x > 0).astype(np.float64), (0.0,), _relu_moments, 0.0, _arccos_kernel,
        ("relu", 0.0, 0.0), inverse=_relu_inverse, flat=0.0),
        "max(x, 0)"),
    "leaky_relu": ActivationKind({"slope": 0.01}, _leaky_build, "x if x > 0 else slope * x"),
    "elu": ActivationKind({"alpha": 1.0}, _elu_build, "x if x > 0 else alpha * (exp(x) - 1)"),
    "tanh": ActivationKind({}, lambda n, p: Activation(
        n, p, _tanh, lambda x: 1.0 - np.tanh(x) ** 2, (), None, -1.0, kernel=("tanh", 0.0, 0.0),
        inverse=_tanh_inverse), "tanh(x)"),
    "gelu": ActivationKind({}, lambda n, p: Activation(
        n, p, _gelu, _gelu_deriv, (), None, 0.0), "x * Phi(x) (erf form)"),
    "silu": ActivationKind({}, lambda n, p: Activation(
        n, p, _silu, _silu_deriv, (), None, 0.0), "x * sigmoid(x)"),
    "linear": ActivationKind({}, lambda n, p: Activation(
        n, p, _linear, np.ones_like, (), _linear_moments, None, lambda q, c: q * c, ("linear", 0.0, 0.0),
        inverse=_identity_inverse), "x"),
}


def suggest(name: str, choices) -> str | None:
    """The nearest valid name, for 'did you mean' messages (typos, swaps, prefixes)."""
    name = str(name).strip().lower()
    scored = [(_edits(name, c), -difflib.SequenceMatcher(None, name, c).ratio(), c) for c in choices]
    if not scored:
        return None
    edits, ratio, best = min(scored)
    return best if edits <= max(2, len(best) // 3) or -ratio >= 0.6 or best.startswith(name) else None


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, swaps."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[-1][-1]


def make_activation(name: str, scale: float | str = 1.0, **params: float) -> Activation:
    """Build a registered activation, times `scale` ("nf": nf_gain); unknown names or
    parameters raise KeyError."""
    kind = ACTIVATIONS[name]
    unknown = set(params) - set(kind.defaults)
    if unknown:
        raise KeyError(f"{name} has no parameter {sorted(unknown)[0]!r}")
    full = {**kind.defaults, **{k: float(v) for k, v in params.items()}}
    act = kind.build(name, full)
    return act.scaled(nf_gain(act) if scale == "nf" else float(scale))


def nf_gain(act: Activation) -> float:
    """NFNets' gamma = 1 / sqrt(Var phi(z)), z ~ N(0, 1): gamma * phi has unit output variance."""
    mo = act.moments(0.0, 1.0)
    return 1.0 / math.sqrt(mo.m2 - mo.m1 * mo.m1)


def alpha_dropout_affine(rate: float, saturation: float, mean: float = 0.0,
                         var: float = 1.0) -> tuple[float, float]:
    """(a, b) of alpha dropout: dropped units set to alpha', then a*x + b keeps (mean, var).

    Klambauer et al. (2017), section "New Dropout Technique"; with mean 0, var 1 this is
    a = (q + alpha'^2 q (1 - q))^(-1/2), b = -a (1 - q) alpha', q the keep probability.
    """
    q = 1.0 - rate
    gap = mean - saturation  # products, not **: a huge saturation gives inf, not OverflowError
    spread = q * var + q * (1.0 - q) * gap * gap
    a = math.sqrt(var / spread)
    return a, mean - a * (q * mean + (1.0 - q) * saturation)
