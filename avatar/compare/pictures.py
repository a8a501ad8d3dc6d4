"""The compare report's pictures of one model: its plots and its latent traversals.

Each function reads a model's metrics card (the JSON of :func:`avatar.compare.compare_codes`)
and returns PNG bytes with their captions, also written into the figures folder. They share
nothing but files, so :mod:`avatar.compare.tasks` can draw each model in its own process while
the report's text is put together from the results.

    plots = model_plots("pca", card, groups, Path("report/figures"), threshold=0.5)
    plots["spearman"]                     # (png bytes, caption)
    strips = model_traversals("models/x.npz", "pca", card, Path("report/figures"))
    strips["pictures"]                    # [(png bytes, caption), ...]; strips["error"] if no OpenGL
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from avatar.export import atomic_write

from . import figures as fig

FOCUS = 60   # sliders a codes-by-sliders figure labels at most: beyond that the labels overlap


def model_plots(name: str, res: dict, groups: list, fig_dir: Path, threshold: float) -> dict:
    """{key: (png, caption)} for one model's card: "dci_importance", "spearman",
    "mutual_information", "visibility" and "purity" (each also written as ``<name>_<key>.png``).

    groups : the group of each of the card's factors; threshold : the visibility under which a
    slider counts as not seen (a line on the visibility bars).
    """
    codes, sliders = res["code_names"], res["factor_names"]
    imp = np.asarray(res["dci"]["importance"], np.float64)
    spearman = np.asarray(res["spearman"], np.float64)
    nmi = np.asarray(res["normalized_mutual_information"], np.float64)
    cols = focus_columns(np.abs(spearman), imp, nmi)
    shown = [sliders[j] for j in cols]
    note = "" if len(cols) == len(sliders) else (
        f" Shown: the {len(cols)} of {len(sliders)} sliders with the strongest link to some code (largest |Spearman|, "
        "importance or mutual information), in rig order; metrics.json has every slider.")
    save = {key: fig_dir / f"{name}_{key}.png" for key in
            ("dci_importance", "spearman", "mutual_information", "visibility", "purity")}
    vis = np.asarray(res["visibility"]["per_slider"], np.float64)
    rows = extremes(vis)
    return {
        "dci_importance": (
            fig.hinton(imp[:, cols], codes, shown, title=f"{name}: DCI importance (codes x sliders)", as_png=True,
                       save=save["dci_importance"]),
            "Square area: how much a gradient-boosted (or forest) classifier relies on the code to predict the "
            "slider." + note),
        "spearman": (
            fig.heatmap(spearman[:, cols], codes, shown, diverging=True, title=f"{name}: Spearman correlation",
                        colorbar_label="rank correlation", as_png=True, save=save["spearman"]),
            "Rank correlation of each code with each slider." + note),
        "mutual_information": (
            fig.heatmap(nmi[:, cols], codes, shown, vmin=0, title=f"{name}: normalised mutual information",
                        colorbar_label="MI / H(slider)", as_png=True, save=save["mutual_information"]),
            "Mutual information between each binned code and each slider, as a share of the slider's entropy." + note),
        "visibility": (
            fig.bar_chart(vis[rows], [sliders[j] for j in rows], groups=[groups[j] for j in rows],
                          title=f"{name}: visibility per slider", xlabel="test R^2 (codes -> slider)",
                          threshold=threshold, threshold_label="seen", xlim=(0, 1), as_png=True,
                          save=save["visibility"]),
            f"Sliders under {threshold} are listed below." + ("" if len(rows) == len(vis) else
            f" Shown: the {len(rows) // 2} most and the {len(rows) - len(rows) // 2} least visible of "
            f"{len(vis)} sliders.")),
        "purity": (
            fig.bar_chart(np.asarray(res["purity"]["per_code"], np.float64), codes, title=f"{name}: purity per code",
                          xlabel="purity (1 = one slider)", sort=False, xlim=(0, 1), as_png=True, save=save["purity"]),
            "Codes with low purity mix several sliders."),
    }


_RANGES: dict = {}   # {dataset path: (low (P,), high (P,))} of the slider values it drew (StripScene)


class StripScene:
    """How slider strips show a model's dataset: the sliders it keeps fixed at its values (framing, lights,
    a base preset), the ones it varies at their defaults moved inside its range, and a traversed slider
    over the range the dataset drew (a face dataset's age of 1 to 25 years, not the rig's 1 to 90).

    ``view``: the stored render view of a picture latent (its strips show that camera), else None.
    """

    ROWS = 65536   # slider rows read at a time for the ranges: a million avatars' sliders are 3 GB

    def __init__(self, rig, low: np.ndarray, high: np.ndarray, view: str | None = None):
        self.rig, self.low, self.high, self.view = rig, low, high, view
        self.base = np.clip(rig.defaults(), low, high)
        self.key = hashlib.sha256(np.concatenate([low, high]).tobytes() + str(view).encode()).hexdigest()[:12]

    @classmethod
    def of_experiment(cls, exp, rig, model) -> "StripScene":
        key = str(exp.dataset_path)
        if key not in _RANGES:   # once per dataset and process: every model of the experiment shares it
            arr = exp.dataset.group["sliders"]
            low, high = np.full(arr.shape[1], np.inf), np.full(arr.shape[1], -np.inf)
            for i in range(0, arr.shape[0], cls.ROWS):
                block = np.asarray(arr[i:i + cls.ROWS], np.float64)
                low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
            _RANGES.clear()
            _RANGES[key] = (low, high)
        low, high = _RANGES[key]
        ft = getattr(model, "features_", None)
        views = exp.dataset.config["outputs"].get("renders", {}).get("views") or [None]
        return cls(rig, low, high, views[0] if ft is not None and "renders" in ft.names else None)

    def of(self, slider: str, steps: int) -> dict:
        """The ``base`` and ``values`` of ``slider``'s strip: its drawn range in ``steps`` (every level of a
        bool or category, and the whole range of a slider the dataset keeps fixed)."""
        j = self.rig.spec.index(slider)
        s = self.rig.sliders[j]
        if s.kind in ("bool", "categorical") or not self.high[j] > self.low[j]:
            return {"base": self.base, "values": None}
        values = np.linspace(self.low[j], self.high[j], steps)
        return {"base": self.base, "values": np.round(values) if s.kind == "integer" else values}


def model_traversals(model_file: str, name: str, res: dict, fig_dir: Path, n: int = 2, steps: int = 7,
                     size: int = 128) -> dict:
    """One model's traversal pictures: {"pictures": [(png, caption), ...]}, or {"pictures": [],
    "error": text} when nothing can render (no OpenGL).

    The ``n`` components with the most variance are drawn large (``steps`` steps, ``size`` px),
    each above the slider it correlates with most; then every component in one overview picture.
    The model and its rig are read from ``model_file`` (once per process).
    """
    from avatar.rendering.core import RenderBackendError

    exp, lazy_rig = loaded(str(model_file))
    model, rig = exp.model(name), lazy_rig()
    scene = StripScene.of_experiment(exp, rig, model)
    views = (scene.view,) if scene.view else picture_views(model)
    out = []
    try:
        for i in _traversal_order(model, res, n):
            slider, rho = best_slider(res, i)
            match = f"|Spearman| {rho:.2f}" if slider is not None else ""
            png = fig.traversal_comparison(rig, model, i, slider, steps=steps, size=size, match=match, views=views,
                                           as_png=True, save=fig_dir / f"{name}_traversal_{i + 1}.png", strip=scene.of)
            out.append((png, f"{res['code_names'][i]} and its best-matching slider {slider} ({match})."))
    except RenderBackendError as err:
        return {"pictures": [], "error": str(err)}
    grid = fig.to_png(traversal_grid(rig, model, res, view=views[0], scene=scene))
    atomic_write(fig_dir / f"{name}_traversals_all.png", lambda f: f.write(grid))
    out.append((grid, f"Every {name} component, each beside the slider it follows most. A disentangled "
                                "latent shows each row's two halves changing the avatar the same way."))
    return {"pictures": out}


class Lazy:
    """A value made on first call, then kept (a rig: about 3 s to build, not always needed)."""

    def __init__(self, make):
        self.make, self.value = make, None

    def __call__(self):
        if self.value is None:
            self.value = self.make()
        return self.value


_LOADED: dict = {}   # this process's last experiment: {(path, mtime, size): (experiment, Lazy rig)}


def loaded(model_file, exp=None, rig: Lazy | None = None):
    """(experiment, rig as a Lazy) of ``model_file``, loaded once per process and kept for its
    next tasks; a caller that has them already hands them in (``exp``, ``rig``)."""
    path = Path(model_file)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOADED:
        if exp is None:
            from avatar.latent.experiment import load_experiment

            exp = load_experiment(path)
        _LOADED.clear()
        _LOADED[key] = (exp, rig or Lazy(exp.dataset.load_rig))
    return _LOADED[key]


def forget() -> None:
    """Drop this process's kept experiment, rig and slider strips (a compare does at its end: a rig is large)."""
    _LOADED.clear()
    _STRIPS.clear()
    _RANGES.clear()


class Strips:
    """Slider strips by (slider, steps, size, view): (images (steps, H, W, 3) uint8, labels), kept in
    this process and, while a compare shares a folder (:func:`avatar.compare.tasks.shared_folder`),
    written there for its other workers: the models of an experiment often follow the same sliders."""

    def __init__(self):
        self.memory: dict = {}
        self.rig = None

    def _file(self, key) -> Path | None:
        from .tasks import shared_folder

        folder = shared_folder()
        return None if folder is None else folder / ("strip-" + "-".join(str(k) for k in key) + ".npz")

    def __contains__(self, key) -> bool:
        if key not in self.memory and (f := self._file(key)) is not None and f.exists():
            with np.load(f, allow_pickle=False) as z:
                self.memory[key] = (z["images"], [str(x) for x in z["labels"]])
        return key in self.memory

    def __getitem__(self, key):
        return self.memory[key]

    def __setitem__(self, key, value) -> None:
        self.memory[key] = value
        if (f := self._file(key)) is not None:
            from .tasks import write_shared

            images, labels = value

            def write(tmp: Path):
                with open(tmp, "wb") as fh:
                    np.savez(fh, images=np.asarray(images), labels=np.asarray(labels, dtype=str))

            write_shared(f, write)

    def clear(self) -> None:
        self.memory.clear()
        self.rig = None


_STRIPS = Strips()


def strips(rig) -> Strips:
    """This process's slider strips of ``rig`` (see :class:`Strips`; another rig starts them afresh)."""
    if _STRIPS.rig is not rig:
        _STRIPS.clear()
        _STRIPS.rig = rig
    return _STRIPS


def focus_columns(*matrices: np.ndarray, limit: int = FOCUS) -> np.ndarray:
    """Columns (sorted) worth drawing of (k, F) matrices: all F when F <= limit, else the ``limit``
    whose largest entry, as a share of its matrix's largest, is greatest in any of them."""
    F = matrices[0].shape[1]
    if F <= limit:
        return np.arange(F)
    score = np.zeros(F)
    for m in matrices:
        col = np.nanmax(np.where(np.isfinite(m), m, -np.inf), axis=0)
        top = np.max(col[np.isfinite(col)], initial=0.0)
        score = np.maximum(score, np.where(np.isfinite(col), col, 0.0) / (top if top > 0 else 1.0))
    return np.sort(np.argsort(-score, kind="stable")[:limit])


def extremes(values: np.ndarray, limit: int = FOCUS) -> np.ndarray:
    """Indices of all values when there are at most ``limit``, else of the limit/2 largest and the
    limit/2 smallest (NaN counts as smallest)."""
    if len(values) <= limit:
        return np.arange(len(values))
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")
    return np.concatenate([order[:limit // 2], order[len(order) - (limit - limit // 2):]])


def best_slider(res: dict, i: int) -> tuple[str | None, float]:
    """(the slider code i correlates with most, its |Spearman|), or (None, nan) if none is defined."""
    row = np.abs(np.asarray(res["spearman"][i], np.float64))
    # measurement factors (measure.*) have no slider to traverse: pictures pair codes with sliders
    row[[j for j, n in enumerate(res["factor_names"]) if n.startswith("measure.")]] = np.nan
    if not np.isfinite(row).any():
        return None, float("nan")
    j = int(np.nanargmax(row))
    return res["factor_names"][j], float(row[j])


def picture_views(model) -> tuple[str]:
    """The view a model's traversals are drawn in: the face close-up for a latent of the head's
    vertices only (a face region), else the full-body front."""
    from avatar.latent.regions import GROUPS

    ft = getattr(model, "features_", None)
    if ft is not None and "vertices" in ft.regional and set(ft.block("vertices")["parts"]) <= \
            set(GROUPS["whole_head"]) | {"whole_head", "ears", "eyes"}:
        return ("face",)
    return ("front",)


def traversal_grid(rig, model, res: dict, steps: int = 5, size: int = 96, sd: float = 2.0,
                   slider_cache: dict | None = None, view: str = "front", scene: StripScene | None = None):
    """Every component in one picture (a PIL image): one row per component.

    Each row shows the component from -sd to +sd (the others at their mean), then, after a
    cell naming it, the slider it correlates with most swept over its range (with ``scene``: over the
    range its dataset drew, the dataset's other sliders as :class:`StripScene` sets them). Slider strips
    do not depend on the model: they are kept in ``slider_cache`` (default: :func:`strips`, this
    process's, shared with the compare's other workers).
    """
    from avatar.rendering.pictures import contact_sheet

    cache = strips(rig) if slider_cache is None else slider_cache
    t = np.linspace(-sd, sd, steps)
    cells, labels = [], []
    latent, _ = fig.latent_traversal_images(rig, model, np.arange(len(res["code_names"])), steps, sd, (view,), size)
    for i, code in enumerate(res["code_names"]):
        lat = latent[i]                        # (steps, 1, H, W, 3): every component rendered in one call
        cells += list(lat[:, 0])
        labels += [f"{code} {x:+.1f}sd" if k == 0 else f"{x:+.1f} sd" for k, x in enumerate(t)]
        slider, rho = best_slider(res, i)
        blank = np.full_like(lat[0, 0], 255)
        if slider is None:
            cells += [blank] * (steps + 1)
            labels += [""] * (steps + 1)
            continue
        px = lat.shape[-2]                     # a picture latent decodes at its own size
        key = (slider, steps, px, view) + ((scene.key,) if scene else ())
        if key not in cache:
            imgs, vals = fig.slider_traversal_images(rig, slider, steps, (view,), px,
                                                     **(scene.of(slider, steps) if scene else {}))
            cache[key] = (imgs[:steps, 0], [str(v) for v in vals[:steps]])
        imgs, vals = cache[key]
        imgs = list(imgs)
        pad = steps - len(imgs)  # a bool or small categorical slider has fewer levels
        cells += [blank] + imgs + [blank] * pad
        labels += [f"~ {slider.split('.', 1)[-1]} {rho:.2f}"] + vals + [""] * pad
    return contact_sheet(np.stack(cells), labels, cols=2 * steps + 1,
                         title="each component (left, -2 to +2 sd) and the slider it follows most (right, |Spearman|)")


def _traversal_order(model, res, n: int) -> list[int]:
    """The components to draw: by explained variance when the model has it, else by code spread."""
    k = res["n_codes"]
    ev = getattr(model, "explained_variance_", None)
    if ev is not None and len(ev) == k:
        return [int(i) for i in np.argsort(-np.asarray(ev))[:n]]
    return list(range(min(n, k)))
