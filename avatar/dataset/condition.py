"""Datasets conditioned on measurements: each avatar drawn, then solved to measurement targets of its own.

    condition:
      targets:
        stature: {normal: [171, 7.5], clip: [150, 195]}   # cm: a real population's spread
        waist: {uniform: [70, 95]}
      free: [body.height, body.weight, torso.*]           # optional (default: avatar.measure.solve's)

Row i's targets come from its own uniforms, block i // 4096 of
``default_rng([seed, STREAM, block])``, one column per target: a pure function of
(seed, row), like every sampler. The shard's rows are then solved together by
:func:`avatar.measure.solve.solve`; a shard is always the same rows, so the bytes do not
depend on the worker count, and a resumed run solves the same batches.
"""
from __future__ import annotations

import numpy as np

from avatar.spec.config import Problems, check_keys, check_number, describe, did_you_mean

STREAM = 0xC0D17  # the targets' own random stream, apart from the sliders'
_BLOCK = 4096
DISTRIBUTIONS = ("normal", "uniform")


def parse_condition(problems: Problems, raw: object, spec) -> dict:
    """A dataset config's ``condition:`` -> {"targets": {name: {kind: [a, b], clip: [lo, hi]}}, "free": [...]}."""
    if raw is None:
        return {}
    path = ("condition",)
    if not isinstance(raw, dict):
        problems.add(path, f"expected a mapping with 'targets' (and 'free'), got {describe(raw)}")
        return {}
    check_keys(problems, path, raw, ("targets", "free"), required=("targets",))
    from avatar.spec.measurements import load_measurements

    names = load_measurements().names
    targets = {}
    raw_targets = raw.get("targets") or {}
    if not isinstance(raw_targets, dict) or not raw_targets:
        problems.add(path + ("targets",), f"expected a mapping measurement -> distribution, got {describe(raw_targets)}")
        raw_targets = {}
    for name, dist in raw_targets.items():
        p = path + ("targets", name)
        if name not in names:
            problems.add(p, f"unknown measurement '{name}'{did_you_mean(name, names)}")
            continue
        if not isinstance(dist, dict):
            problems.add(p, f"expected {{normal: [mean, sd]}} or {{uniform: [low, high]}}, got {describe(dist)}")
            continue
        check_keys(problems, p, dist, DISTRIBUTIONS + ("clip",))
        kinds = [k for k in DISTRIBUTIONS if k in dist]
        if len(kinds) != 1:
            problems.add(p, "give exactly one of normal: [mean, sd] or uniform: [low, high]")
            continue
        pair = _pair(problems, p + (kinds[0],), dist[kinds[0]])
        clip = _pair(problems, p + ("clip",), dist["clip"]) if "clip" in dist else None
        if pair and kinds[0] == "normal" and pair[1] <= 0:
            problems.add(p + ("normal",), f"the sd must be positive, got {pair[1]:g}")
        if pair and kinds[0] == "uniform" and pair[1] <= pair[0]:
            problems.add(p + ("uniform",), f"expected low < high, got [{pair[0]:g}, {pair[1]:g}]")
        if pair:
            targets[str(name)] = {kinds[0]: pair, **({"clip": clip} if clip else {})}
    free = None
    if raw.get("free") is not None:
        from avatar.spec.measurements import check_free

        free = check_free(problems, path + ("free",), raw["free"], None if spec is None else spec.slider_names)
    return {"targets": targets, **({"free": list(free)} if free else {})}


def _pair(problems: Problems, path: tuple, raw: object):
    if not isinstance(raw, list) or len(raw) != 2:
        problems.add(path, f"expected two numbers [a, b], got {describe(raw)}")
        return None
    a, b = (check_number(problems, path + (i,), v) for i, v in enumerate(raw))
    return None if a is None or b is None else [a, b]


def draw_targets(condition: dict, seed: int, start: int, stop: int) -> dict[str, np.ndarray]:
    """{name: (stop-start,) float64} the targets of rows ``start .. stop-1``."""
    from avatar.spec.sliders import truncnorm_ppf

    names = list(condition["targets"])
    u = np.empty((stop - start, len(names)))
    for k in range(start // _BLOCK, (stop - 1) // _BLOCK + 1):
        block = np.random.default_rng([seed, STREAM, k]).random((_BLOCK, len(names)))
        lo, hi = max(start, k * _BLOCK), min(stop, (k + 1) * _BLOCK)
        u[lo - start:hi - start] = block[lo - k * _BLOCK:hi - k * _BLOCK]
    out = {}
    for c, name in enumerate(names):
        d = condition["targets"][name]
        if "normal" in d:
            mean, sd = d["normal"]
            lo, hi = d.get("clip", [mean - 8 * sd, mean + 8 * sd])
            out[name] = truncnorm_ppf(u[:, c], mean, sd, lo, hi)
        else:
            a, b = d["uniform"]
            out[name] = np.clip(a + u[:, c] * (b - a), *d.get("clip", [a, b]))
    return out


def apply_condition(rig, condition: dict, S: np.ndarray, seed: int, start: int) -> np.ndarray:
    """Rows ``S`` (n, P) of a dataset (from row ``start``) solved to their drawn targets."""
    if not condition:
        return S
    from avatar.measure.solve import solve

    targets = draw_targets(condition, seed, start, start + len(S))
    return solve(rig, S, targets, condition.get("free"))
