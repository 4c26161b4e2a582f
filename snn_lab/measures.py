"""Options of the measurements that take some: `jacobian:` (the input-output Jacobian's spectrum)."""

from __future__ import annotations

from dataclasses import dataclass

JACOBIAN_KEYS = ("layers", "inputs")
JACOBIAN_INPUTS = 2  # samples of each trial's batch whose Jacobian is measured, by default
JACOBIAN_DEFAULT_LAYERS = 8  # by default: layer 1 and depth * i / 8, i = 1..8


@dataclass(frozen=True)
class JacobianSpec:
    """Where and for how many inputs `measure: [jacobian]` computes the Jacobian's spectrum."""

    layers: tuple[int, ...] | None = None  # None: layers_for's default
    inputs: int = JACOBIAN_INPUTS

    def layers_for(self, depth: int) -> tuple[int, ...]:
        """The layers measured in a network of this depth, ascending."""
        if self.layers is not None:
            return tuple(sorted(set(self.layers)))
        n = JACOBIAN_DEFAULT_LAYERS
        return tuple(sorted({1, *(max(1, round(depth * i / n)) for i in range(1, n + 1))}))

    def to_dict(self) -> dict:
        """The resolved options, as config.yaml writes them."""
        return {"layers": None if self.layers is None else list(self.layers), "inputs": self.inputs}


def check_jacobian(checker, raw, measured: bool, series) -> JacobianSpec | None:
    """The top-level `jacobian:` options, checked against every series (checker: config._Checker).

    The measurement follows one sample through the layers, so a series whose layer mixes the
    samples (batch norm) or draws a mask per sample (dropout) is refused, naming its key; layer
    norm is refused too (not implemented).
    """
    path = ("jacobian",)
    if raw is not None and not measured:
        checker.fail(path, "options for the jacobian measurement, which 'measure' does not list; "
                     "add jacobian to measure, e.g. measure: [jacobian]")
        return None
    if not measured:
        return None
    raw = {} if raw is None else checker.mapping(raw, path, "a mapping {layers: [...], inputs: N}")
    checker.keys(raw, JACOBIAN_KEYS, path)
    inputs = checker.integer(raw.get("inputs", JACOBIAN_INPUTS), path + ("inputs",), 1)
    layers = raw.get("layers")
    if layers is not None:
        if not isinstance(layers, list) or not layers:
            checker.fail(path + ("layers",), "expected a non-empty list of layer numbers (1 = the first "
                         f"layer), found {layers!r}")
            layers = None
        else:
            layers = tuple(checker.integer(v, path + ("layers", i), 1) for i, v in enumerate(layers))
    spec = JacobianSpec(layers, inputs)
    for i, s in enumerate(series):
        if s is None:
            continue
        if s.norm != "none":
            checker.fail(("series", i, "norm"), f"the jacobian measurement does not support norm: {s.norm} "
                         "(batch norm mixes the samples; layer norm is not implemented); use norm: none "
                         "or drop jacobian from measure")
        if s.dropout:
            checker.fail(("series", i, "dropout"), "the jacobian measurement does not support dropout "
                         "(a mask per sample); use dropout: 0 or drop jacobian from measure")
        if inputs > s.batch:
            checker.fail(path + ("inputs",), f"{inputs} inputs but series {s.label!r} has batch {s.batch}: "
                         "the inputs are the first samples of each trial's batch")
        deep = [layer for layer in spec.layers_for(s.depth) if layer > s.depth]
        if deep:
            checker.fail(path + ("layers",), f"layer {deep[0]} is beyond series {s.label!r}'s depth {s.depth}")
    return spec
