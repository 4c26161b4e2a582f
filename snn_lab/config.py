"""The experiment config: YAML (+ --set overrides) -> a frozen, validated Experiment."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from snn_lab import examples
from snn_lab import overrides as overrides_
from snn_lab.activations import ACTIVATIONS, Activation, make_activation, suggest
from snn_lab.initializers import INITIALIZERS, Initializer
from snn_lab.measures import JacobianSpec, check_jacobian
from snn_lab.train.spec import TrainSpec, check_train
from snn_lab.yamlio import ConfigError, Path, Problem, dotted, parse

DTYPES = ("float32", "float64")
MAX_BYTES = 4 * 2**20  # a config file or standard input: read no further
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class InputSpec:
    """Gaussian input: every entry i.i.d. N(mean, var)."""

    mean: float = 0.0
    var: float = 1.0
    correlation: float = 0.0  # between distinct samples: x_a = sqrt(c) shared + sqrt(1 - c) own


NORMS = ("none", "batch", "layer")  # where a series normalizes: see Series.norm
NORM_EPS = 1e-5  # added to the variance before dividing, as PyTorch's and Keras' norm layers do
BETAS = ("none", "expected")  # a residual branch's input scaling: see Residual


@dataclass(frozen=True)
class Residual:
    """x <- x + alpha * branch(x / beta_l): the layer as a residual block.

    beta "expected" divides the branch input by the expected standard deviation of x, NFNets'
    sqrt(Var x_0 + (l - 1) alpha^2) (Brock et al. 2021), which holds when each branch's output
    has unit variance (scale: nf with normalized weights); "none" divides by 1.
    """

    alpha: float
    beta: str = "none"


@dataclass(frozen=True)
class Series:
    """One network family: activation, init and sizes; simulated for every trial."""

    label: str
    activation: str
    activation_params: tuple[tuple[str, float], ...]
    init: str
    width: int
    depth: int
    batch: int
    dtype: str
    input: InputSpec
    gain: float = 1.0
    bias_var: float = 0.0
    normalize_weights: bool = False
    dropout: float = 0.0
    # Normalization of each layer's pre-activations, between the product and the activation
    # (linear -> norm -> activation), gain 1 and shift 0: "batch" per unit over the batch,
    # "layer" per sample over the units, both with NORM_EPS.
    norm: str = "none"
    residual: Residual | None = None
    activation_scale: float | str = 1.0  # the activation's output multiplier, or "nf"

    def make_activation(self) -> Activation:
        """The series' Activation value (function, derivative, moments), its scale applied."""
        return make_activation(self.activation, self.activation_scale, **dict(self.activation_params))

    def betas(self) -> list[float]:
        """beta_l for l = 1..depth (index 0 unused): what each layer's branch input is divided by."""
        r = self.residual
        if r is None or r.beta == "none":
            return [1.0] * (self.depth + 1)
        var0 = self.input.var
        return [1.0] + [math.sqrt(var0 + (layer - 1) * r.alpha * r.alpha) for layer in range(1, self.depth + 1)]

    @property
    def initializer(self) -> Initializer:
        """The series' weight initializer."""
        return INITIALIZERS[self.init]

    @property
    def weight_var(self) -> float:
        """sigma_w^2: fan_in times one weight's variance, gain included."""
        return self.gain * self.gain * self.width * self.initializer.variance(self.width, self.width)


@dataclass(frozen=True)
class Experiment:
    """A validated experiment: seed, trials and the series to simulate."""

    name: str
    seed: int
    trials: int
    series: tuple[Series, ...]
    measure: tuple[str, ...] = ("dead", "correlation")
    source: str = "<default>"
    lines: dict = field(default_factory=dict, compare=False, repr=False)
    jacobian: JacobianSpec | None = None  # the jacobian measurement's options, when measured
    train: TrainSpec | None = None  # the training probe's options (train: block), when trained

    def where(self, path: Path) -> str:
        """'file:line' of a key path (or of its nearest ancestor that has a line)."""
        return locate(self.source, self.lines, path)

    def to_dict(self) -> dict:
        """The resolved config, every default filled in: loading it reproduces the run."""
        out = {"name": self.name, "seed": self.seed, "trials": self.trials, "measure": list(self.measure),
               "series": [_series_dict(s) for s in self.series]}
        if self.jacobian is not None:
            out["jacobian"] = self.jacobian.to_dict()
        if self.train is not None:
            out["train"] = self.train.to_dict()
        return out


def locate(source: str, lines: dict, path: Path) -> str:
    """'file:line' of a key path, or of its nearest ancestor with a line ('--set ...' if set)."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            line = lines[path[:n]]
            return line if isinstance(line, str) else f"{source}:{line}"
    return source


def _series_dict(s: Series) -> dict:
    d = asdict(s)
    params = dict(d.pop("activation_params"))
    scale = d.pop("activation_scale")
    if scale != 1.0:
        params["scale"] = scale
    if params != dict(ACTIVATIONS[s.activation].defaults):
        d["activation"] = {"name": s.activation, **params}
    return d


# ---- loading -------------------------------------------------------------------------------

def load(path: str | None = None, text: str | None = None, overrides: tuple[str, ...] = ()) -> Experiment:
    """Load, override and validate an experiment; ConfigError lists every problem found."""
    return build(*read(path, text), overrides)


def read(path: str | None = None, text: str | None = None) -> tuple[Any, dict, str]:
    """The raw YAML tree of a config file (or text, or the packaged default), its lines and name."""
    shipped = examples.resolve(str(path)) if text is None and path is not None else None
    if text is None and path is None:
        text, source = examples.text(examples.DEFAULT), f"<default: {examples.DEFAULT}>"
    elif shipped is not None:  # a name, not a file: a shipped example
        source, text = shipped
    elif text is None:
        source = str(path)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)  # /dev/zero, or a data file named by mistake, stops here
        except OSError as exc:
            near = examples.nearest(source) if isinstance(exc, FileNotFoundError) else None
            hint = f"; or the shipped example {near!r} (`snn-lab examples` lists them)" if near else ""
            raise ConfigError([Problem(source, "", f"cannot read config: {exc.strerror}{hint}")]) from None
        if len(raw) > MAX_BYTES:
            raise ConfigError([Problem(source, "", too_large())])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError([Problem(source, "", f"not UTF-8 text (byte {exc.start})")]) from None
    else:
        source = str(path or "<stdin>")
    tree, lines = parse(text, source)
    if tree is None:
        raise ConfigError([Problem(source, "", "the config is empty; expected a mapping with at least "
                                   "a 'series' list, e.g. series: [{activation: selu}]")])
    return tree, dict(lines), source


def too_large() -> str:
    """Why a config past MAX_BYTES is refused."""
    return (f"larger than {MAX_BYTES // 2**20} MiB: not an experiment config (a config is a few lines "
            "of YAML; a long sweep list belongs in {linspace: ...} or range)")


def build(tree: Any, lines: dict, source: str, overrides: tuple[str, ...] = ()) -> Experiment:
    """Apply --set overrides to a raw tree and validate it into an Experiment."""
    problems: list[Problem] = []
    if isinstance(tree, dict):
        tree, lines = overrides_.apply(tree, dict(lines), overrides, problems, source)
        overrides_.relabel(tree, overrides)
    if problems:
        raise ConfigError(problems)
    stem = None if source.startswith("<") else _stem(source)
    return _Checker(source, lines).experiment(tree, stem)


def _stem(source: str) -> str:
    """The file's name without extension, made a safe folder name ('my exp.yaml' -> 'my-exp')."""
    base = source.replace("\\", "/").rsplit("/", 1)[-1]
    base = base.rsplit(".", 1)[0] if "." in base else base
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip(".-")[:100]
    return safe or "experiment"


# ---- validation ----------------------------------------------------------------------------

TOP_KEYS = ("name", "seed", "trials", "measure", "width", "depth", "batch", "dtype", "input", "series",
            "jacobian", "train")
MEASURES = ("gradients", "dead", "correlation", "jacobian")  # optional per-layer measurements beside mean/var
SHARED_KEYS = overrides_.SHARED_KEYS
SERIES_KEYS = ("label", "activation", "init", "gain", "bias_var", "normalize_weights", "dropout",
               "norm", "residual", *SHARED_KEYS)
RESIDUAL_KEYS = ("alpha", "beta")
SCALES = ("nf",)  # named activation scales; a positive number is taken as it is
INPUT_KEYS = ("mean", "var", "correlation")
# Sanity bounds: beyond them a run is a typo, not an experiment (the memory guard covers width
# and batch, which set the size of one layer).
MAX_DEPTH = 100_000
MAX_TRIALS = 10_000
MAX_SEED = 2**128 - 1
DEFAULTS = {"seed": 0, "trials": 4, "width": 512, "depth": 64, "batch": 1024, "dtype": "float32",
            "init": "lecun_normal", "gain": 1.0, "bias_var": 0.0, "normalize_weights": False,
            "dropout": 0.0}


class _Checker:
    """Validates a raw tree, collecting every problem with its file and line."""

    def __init__(self, source: str, lines: dict):
        self.source, self.lines = source, lines
        self.problems: list[Problem] = []

    def fail(self, path: Path, message: str) -> None:
        self.problems.append(Problem(locate(self.source, self.lines, path), dotted(path), message))

    def keys(self, mapping: dict, allowed, path: Path) -> None:
        for key in mapping:
            if key not in allowed:
                hint = suggest(key, allowed)
                self.fail(path + (key,), f"unknown key (expected one of: {', '.join(allowed)})"
                          + (f"; did you mean {hint!r}?" if hint else ""))

    def mapping(self, value, path: Path, what: str) -> dict:
        if isinstance(value, dict):
            return value
        self.fail(path, f"expected {what}, found {_show(value)}")
        return {}

    def integer(self, value, path: Path, low: int, high: int | None = None) -> int:
        if type(value) is not int or value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            self.fail(path, f"expected an integer {bound}, found {_show(value)}")
            return low
        return value

    def number(self, value, path: Path, low: float | None = None, high: float | None = None,
               high_open: bool = False, low_open: bool = False) -> float:
        ok = type(value) in (int, float) and _finite(value)
        ok = ok and (low is None or value > low if low_open else low is None or value >= low)
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            rng = _range_text(low, high, low_open, high_open)
            self.fail(path, f"expected a finite number{rng}, found {_show(value)}")
            return float(low or 0.0)
        return float(value)

    def choice(self, value, path: Path, choices, what: str) -> str:
        if isinstance(value, str) and value in choices:
            return value
        hint = suggest(value, choices) if isinstance(value, str) else None
        self.fail(path, f"expected {what} (one of: {', '.join(choices)}), found {_show(value)}"
                  + (f"; did you mean {hint!r}?" if hint else ""))
        return next(iter(choices))

    def experiment(self, tree: Any, stem: str | None) -> Experiment:
        top = self.mapping(tree, (), "a mapping of experiment keys (name, seed, series, ...)")
        if self.problems:  # nothing else can be checked in a list or a plain value
            raise ConfigError(self.problems)
        if "sweep" in top:
            self.fail(("sweep",), "a sweep runs with `snn-lab run`, which expands it into one "
                      "experiment per point; this command takes one experiment (remove 'sweep', or use --set)")
        self.keys({k: v for k, v in top.items() if k != "sweep"}, TOP_KEYS, ())
        name = top.get("name", stem or "experiment")
        if not isinstance(name, str) or not _NAME.fullmatch(name):  # match() allows a trailing newline
            self.fail(("name",), "expected a folder name of letters, digits, '.', '_' or '-' "
                      f"(at most 100, not starting with '.' or '-'), found {_show(name)}")
            name = "experiment"
        seed = self.integer(top.get("seed", DEFAULTS["seed"]), ("seed",), 0, MAX_SEED)
        trials = self.integer(top.get("trials", DEFAULTS["trials"]), ("trials",), 1, MAX_TRIALS)
        shared = self.shared(top, (), {**{k: DEFAULTS[k] for k in SHARED_KEYS if k != "input"},
                                       "input": InputSpec()})
        measure = top.get("measure", ["dead", "correlation"])
        if not isinstance(measure, list):
            self.fail(("measure",), f"expected a list of measurements (any of: {', '.join(MEASURES)}), "
                      f"found {_show(measure)}")
            measure = []
        measure = tuple(self.choice(m, ("measure", i), MEASURES, "a measurement") for i, m in enumerate(measure))
        measure = tuple(m for m in MEASURES if m in measure)  # canonical order, no repeats
        raw_series = top.get("series")
        if not isinstance(raw_series, list) or not raw_series:
            self.fail(("series",), "expected a non-empty list of series, e.g. "
                      "[{activation: selu, init: lecun_normal}], found " + _show(raw_series))
            raw_series = []
        series, seen = [], {}
        for i, item in enumerate(raw_series):
            before = len(self.problems)
            s = self.series(item, ("series", i), shared)
            series.append(s)
            if len(self.problems) > before:
                continue  # its label may be a stand-in: no duplicate check
            if s.label in seen:
                self.fail(("series", i, "label"), f"duplicate label {s.label!r} (also series {seen[s.label]}); "
                          "labels name the rows of the results and must differ")
            seen.setdefault(s.label, i)
        jacobian = check_jacobian(self, top.get("jacobian"), "jacobian" in measure, series)
        train = check_train(self, top.get("train"), MAX_SEED)
        if self.problems:
            raise ConfigError(sorted(self.problems, key=_line_order))
        return Experiment(name, seed, trials, tuple(series), measure, self.source, self.lines, jacobian, train)

    def shared(self, raw: dict, path: Path, base: dict) -> dict:
        """width, depth, batch, dtype, input: top-level defaults that a series may override."""
        out = dict(base)
        for key in ("width", "depth", "batch"):
            if key in raw:
                out[key] = self.integer(raw[key], path + (key,), 1, MAX_DEPTH if key == "depth" else None)
        if "dtype" in raw:
            out["dtype"] = self.choice(raw["dtype"], path + ("dtype",), DTYPES, "a float type")
        if "input" in raw:
            spec = self.mapping(raw["input"], path + ("input",), "a mapping {mean: ..., var: ...}")
            self.keys(spec, INPUT_KEYS, path + ("input",))
            mean = self.number(spec.get("mean", base["input"].mean), path + ("input", "mean"))
            var = self.number(spec.get("var", base["input"].var), path + ("input", "var"), low=0.0)
            corr = self.number(spec.get("correlation", base["input"].correlation),
                               path + ("input", "correlation"), low=0.0, high=1.0)
            out["input"] = InputSpec(mean, var, corr)
        return out

    def series(self, raw: Any, path: Path, shared: dict) -> Series | None:
        raw = self.mapping(raw, path, "a mapping with at least 'activation'")
        self.keys(raw, SERIES_KEYS, path)
        sizes = self.shared(raw, path, shared)
        if "activation" not in raw:
            self.fail(path, f"missing key 'activation' (one of: {', '.join(ACTIVATIONS)})")
            act, params, scale = "linear", (), 1.0
        else:
            act, params, scale = self.activation(raw["activation"], path + ("activation",))
        init = self.choice(raw.get("init", DEFAULTS["init"]), path + ("init",), INITIALIZERS, "an initializer")
        gain = self.number(raw.get("gain", DEFAULTS["gain"]), path + ("gain",), low=0.0, low_open=True)
        bias_var = self.number(raw.get("bias_var", DEFAULTS["bias_var"]), path + ("bias_var",), low=0.0)
        normalize = raw.get("normalize_weights", DEFAULTS["normalize_weights"])
        if not isinstance(normalize, bool):
            self.fail(path + ("normalize_weights",), f"expected true or false, found {_show(normalize)}")
            normalize = False
        norm = self.choice(raw.get("norm", "none"), path + ("norm",), NORMS, "a normalization")
        residual = self.residual(raw.get("residual"), path + ("residual",))
        if residual is not None and residual.beta == "expected" and sizes["input"].var == 0:
            self.fail(path + ("residual", "beta"), "expected divides the first block's input by "
                      "sqrt(input.var), which is 0 here; set input.var > 0 or beta: none")
        dropout = self.number(raw.get("dropout", DEFAULTS["dropout"]), path + ("dropout",),
                              low=0.0, high=1.0, high_open=True)
        if dropout > 0 and act in ACTIVATIONS and make_activation(act, **dict(params)).saturation is None:
            able = [n for n in ACTIVATIONS if make_activation(n).saturation is not None]
            self.fail(path + ("dropout",), f"alpha dropout needs an activation with a finite limit at "
                      f"-infinity (one of: {', '.join(able)}), found {act!r}")
        label = raw.get("label", f"{act}-{init}")
        if not isinstance(label, str) or not label.strip():
            self.fail(path + ("label",), f"expected a non-empty text, found {_show(label)}")
            label = f"{act}-{init}"
        return Series(label=label, activation=act, activation_params=params, init=init,
                      gain=gain, bias_var=bias_var, normalize_weights=normalize, dropout=dropout,
                      norm=norm, residual=residual, activation_scale=scale, **sizes)

    def residual(self, raw: Any, path: Path) -> Residual | None:
        """None, a number (alpha) or {alpha: ..., beta: none | expected}."""
        if raw is None:
            return None
        if not isinstance(raw, dict):
            if type(raw) in (int, float):
                raw = {"alpha": raw}
            else:
                self.fail(path, f"expected a mapping {{alpha: ..., beta: none | expected}} or a number "
                          f"(alpha), found {_show(raw)}")
                return None
        self.keys(raw, RESIDUAL_KEYS, path)
        if "alpha" not in raw:
            self.fail(path, "missing key 'alpha' (the branch's weight in x + alpha * branch(x))")
        alpha = self.number(raw.get("alpha", 1.0), path + ("alpha",), low=0.0, low_open=True)
        beta = self.choice(raw.get("beta", "none"), path + ("beta",), BETAS, "a branch input scaling")
        return Residual(alpha, beta)

    def activation(self, raw: Any, path: Path) -> tuple[str, tuple, float | str]:
        if isinstance(raw, str):
            return self.choice(raw, path, ACTIVATIONS, "an activation"), (), 1.0
        spec = self.mapping(raw, path, "an activation name or a mapping {name: ..., <parameter>: ...}")
        if "name" not in spec:
            self.fail(path, "missing key 'name' (the activation's name"
                      + (", one of: " + ", ".join(ACTIVATIONS) + ")" if not spec else ")"))
            return "linear", (), 1.0
        name = self.choice(spec["name"], path + ("name",), ACTIVATIONS, "an activation")
        defaults = ACTIVATIONS[name].defaults
        params, scale = [], 1.0
        for key, value in spec.items():
            if key == "name":
                continue
            if key == "scale":
                if isinstance(value, str) and value in SCALES:
                    scale = value
                elif isinstance(value, str):
                    scale = self.choice(value, path + (key,), SCALES, "an activation scale")
                else:
                    scale = self.number(value, path + (key,), low=0.0, low_open=True)
                continue
            if key not in defaults:
                hint = suggest(key, defaults)
                allowed = ", ".join(defaults) or "none"
                self.fail(path + (key,), f"unknown parameter of {name} (its parameters: {allowed}; "
                          "and scale: nf or a number)" + (f"; did you mean {hint!r}?" if hint else ""))
            else:
                params.append((key, self.number(value, path + (key,))))
        return name, tuple(params), scale


def _finite(value: int | float) -> bool:
    """Finite as a double (an integer beyond 1e308 is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _line_order(p: Problem) -> tuple:
    """File problems by line, then --set problems in the order given."""
    line = p.where.rsplit(":", 1)[-1]
    return (0, int(line)) if line.isdigit() else (1, 0)


def _range_text(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    return ""


def _show(value: Any) -> str:
    """A found value for an error message: short, with its YAML type when that is the surprise."""
    if value is None:
        return "nothing (null)"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, bool):
        return f"{text.lower()} (a boolean)"
    if isinstance(value, str):
        return f"{text} (a text)"
    if isinstance(value, (list, dict)):
        return f"a {'list' if isinstance(value, list) else 'mapping'} {text}"
    return text


__all__ = ["ConfigError", "Experiment", "InputSpec", "Problem", "Residual", "Series", "load"]
