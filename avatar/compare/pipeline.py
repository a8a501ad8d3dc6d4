"""``avatar compare``: an experiment's learned latents against the designer sliders, as a report.

The steps, each a function of arrays from the one before:

1. the experiment's model file (fitted first when missing) and its train/test split;
2. factors: the dataset's slider values, only the sliders the dataset varies;
3. codes: each model's encoding of the same rows;
4. metrics: :func:`avatar.compare.compare_codes` per model, and the baselines once
   (the sliders themselves, a random projection, permuted codes);
5. pictures: explained variance, DCI importance, correlation and MI maps, visibility
   and purity bars, latent traversals beside their best-matching sliders;
6. ``report.html`` (one self-contained file), ``metrics.json``, ``figures/*.png`` and a
   terminal summary.

Steps 4 and 5 are independent pieces (a scorecard per model and per baseline, the pose and
measurement checks, each model's plots and traversals: :mod:`avatar.compare.pictures`), run as
tasks on worker processes (:mod:`avatar.compare.tasks`); the report is put together from them.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from . import figures as fig
from .pictures import forget, loaded, model_plots, model_traversals
from .report import Report
from .scorecard import BASELINES, baselines, compare_codes, to_json
from .tasks import run_tasks, share_in, worker_pool

HEADLINE = (  # (key in summary, label, what it says)
    ("mig", "MIG", "gap in information between the best and second-best code for each slider"),
    ("dci_disentanglement", "DCI disentanglement", "does each code depend on one slider?"),
    ("dci_completeness", "DCI completeness", "is each slider captured by one code?"),
    ("dci_informativeness_test", "DCI informativeness", "test accuracy predicting sliders from codes"),
    ("sap", "SAP", "gap in how well the best and second-best single code predict a slider"),
    ("modularity", "modularity", "does each code carry information about one slider only?"),
    ("explicitness_test", "explicitness", "how well a linear classifier recovers each slider"),
    ("matching_score", "matching", "mean |Spearman| of a one-to-one code-slider pairing"),
    ("visibility_mean", "visibility", "mean share of each slider the latent recovers (R^2)"),
)
VISIBLE = 0.5  # a slider whose best R^2 from the codes is under this is "not seen" by the latent
NONLINEAR_ROWS = 4000  # training rows of the additive (spline) R^2: its cost grows with rows x (8 F)^2


def compare_experiment(config, out_dir, *, fit: bool = True, dci_model: str = "forest",
                       max_train: int | None = 2000, max_test: int | None = 2000, n_traversals: int = 2,
                       steps: int = 7, size: int = 128, seed: int = 0, renders: bool = True,
                       n_jobs: int | None = None, log=print) -> dict:
    """Compare every model of an experiment with the sliders; write the report into ``out_dir``.

    Parameters
    ----------
    config : experiment YAML path (or an ``ExperimentConfig``); its model file is fitted
        first when it does not exist and ``fit`` is true.
    out_dir : folder for report.html, metrics.json and figures/.
    dci_model : "forest" (seconds) or "gbt" (disentanglement_lib's GradientBoostingClassifier).
    max_train, max_test : rows for the fitted-classifier metrics (DCI, SAP, explicitness).
    n_traversals : components drawn large per model (7 steps), each beside its best-matching
        slider; every component also appears in one overview picture per model (0: none).
    renders : False skips the traversal pictures (no OpenGL needed).
    n_jobs : worker processes for the scorecards and pictures (:mod:`avatar.compare.tasks`;
        default: one per core, at most 4, once training rows x factors reach ``PARALLEL_WORK``;
        1: everything in this process, the scorecards' classifier fits on threads). The
        numbers do not depend on it.

    Returns the metrics dict written to metrics.json.
    """
    from ..latent.experiment import ExperimentConfig, load_config, run

    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    clock = [time.perf_counter()]

    def lap(name):
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock[0], 3)
        clock[0] = now

    model_file = Path(cfg.output)
    if not model_file.exists():
        if not fit:
            raise FileNotFoundError(f"{model_file}: no model file; run `avatar fit {cfg.source}` first")
        log(f"{model_file} does not exist yet: fitting the experiment first")
        run(cfg, log=log)
    exp, rig = loaded(model_file)   # kept for this process's tasks (with one process: all of them)
    lap("fit_or_load")

    # 2. factors: the sliders this dataset varies
    ds = exp.dataset
    S = np.asarray(ds.sliders, np.float64)
    names_all = list(ds.slider_names)
    varied = np.flatnonzero(np.ptp(S[exp.train], axis=0) > 0)  # exact: a constant column has std ~1e-15
    names = [names_all[j] for j in varied]
    F_train, F_test = S[exp.train][:, varied], S[exp.test][:, varied]
    log(f"{ds.path}: {len(ds):,} avatars, {len(names)} of {len(names_all)} sliders varied; "
        f"{len(exp.train):,} train / {len(exp.test):,} test rows")
    slider_names = list(names)
    if "measurements" in (exp.metadata.get("factors") or ()):
        extra, M_train, M_test = _measurement_columns(exp, ds, rig())
        names += extra
        F_train, F_test = np.hstack([F_train, M_train]), np.hstack([F_test, M_test])
        log(f"  factors: {len(slider_names)} sliders and {len(extra)} body measurements")
        lap("measurement_factors")
    groups = [n.split(".", 1)[0] for n in names]

    # 3-5. codes; then every scorecard, and each model's pictures once its card is in, on workers
    rows = min(len(exp.train), max_train or len(exp.train))
    workers = n_jobs or (min(os.cpu_count() or 1, 4) if rows * len(names) >= PARALLEL_WORK else 1)
    threads = 1 if workers > 1 else min(os.cpu_count() or 1, 4)
    kw = dict(seed=seed, max_train=max_train, max_test=max_test, dci_model=dci_model, n_jobs=threads,
              max_train_nonlinear=NONLINEAR_ROWS)
    codes = encode_split(exp, ds)
    lap("encode")
    first = next(iter(exp.models))
    tasks = {("metrics", name): (partial(compare_codes, **kw),
                                 (Z_train, F_train, Z_test, F_test, names, [f"{name}.{i + 1}" for i in range(Z_train.shape[1])]))
             for name, (Z_train, Z_test) in codes.items()}
    tasks |= {("baseline", b): (partial(baselines, which=(b,), **kw), (codes[first][0], F_train, codes[first][1],
                                                                      F_test, names)) for b in BASELINES}
    fig_dir = out / "figures"
    n_strips = n_traversals if renders else 0

    def pictures(key, card):
        if key[0] != "metrics":
            return {}
        log(f"  {key[1]}: " + ", ".join(f"{label} {card['summary'][k]:.3f}" for k, label, _ in HEADLINE[:3]))
        more = {("plots", key[1]): (model_plots, (key[1], card, groups, fig_dir, VISIBLE))}
        if n_strips > 0:
            more["traversals", key[1]] = (partial(model_traversals, n=n_strips, steps=steps, size=size),
                                          (str(model_file), key[1], card, fig_dir))
        return more

    nuisance, pose_cols, shape_cols = _nuisance(ds, varied, names_all)
    if pose_cols and shape_cols:
        tasks["pose_invariance",] = (_pose_task, (str(model_file), pose_cols, shape_cols, seed))
    tasks["measurements",] = (_measurement_task, (str(model_file), codes, max_train, max_test, seed))
    task_seconds: dict = {}
    with tempfile.TemporaryDirectory(prefix="avatar-compare-") as shared, \
            worker_pool(workers, initializer=partial(share_in, shared)) as pool:   # what workers share: tasks.share_in
        done = run_tasks(tasks, pool, then=pictures, seconds=task_seconds, priority=_rank)
    lap(f"scorecards_and_pictures ({workers} workers)" if workers > 1 else "scorecards_and_pictures")
    invariance = done.get(("pose_invariance",))
    if invariance:
        log(f"  pose as a nuisance: " + ", ".join(f"{n} {v['invariant_codes']} pose-blind / {v['pose_codes']} "
                                                  "pose codes" for n, v in invariance["models"].items()))
    results = {name: done["metrics", name] for name in exp.models}
    base = {b: done["baseline", b][b] for b in BASELINES}
    regions = _region_scores(exp, ds, results, slider_names, rig, log)
    lap("regions")

    metrics = {
        "experiment": {"name": cfg.name, "config": str(cfg.source), "model_file": str(model_file),
                       "dataset": str(ds.path), "n_avatars": len(ds), "n_train": len(exp.train),
                       "n_test": len(exp.test)},
        "sliders": {"compared": names, "fixed": [n for j, n in enumerate(names_all) if j not in set(varied)],
                    "nuisance": nuisance, "measurements": names[len(slider_names):]},
        "regions": regions,
        "pose_invariance": invariance,
        "measurements": done["measurements",],
        "intrinsic_dimensionality": exp.metadata.get("intrinsic_dimensionality", {}),
        "reconstruction": _reconstruction(exp.metadata.get("models") or []),
        "models": results,
        "baselines": base,
        "baseline_codes": f"random projection and permuted codes have the dimension of '{first}'",
        "settings": {"dci_model": dci_model, "max_train": max_train, "max_test": max_test, "seed": seed,
                     "max_train_nonlinear": NONLINEAR_ROWS,
                     "visible_threshold": VISIBLE, "n_jobs": threads, "workers": workers},
    }
    metrics = to_json(metrics)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))

    # 6. the report
    report = _report(cfg, exp, metrics, done, fig_dir, log)
    forget()
    lap("report")
    metrics["timings"] = timings
    metrics["task_seconds"] = {"_".join(key): {"wall": w, "cpu": c, "start": a, "end": b}
                               for key, (w, c, a, b) in task_seconds.items()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    report.write(out / "report.html")
    log(summary_text(metrics))
    log(f"wrote {out / 'report.html'}, {out / 'metrics.json'} and {out / 'figures'}/")
    return metrics


PARALLEL_WORK = 50_000   # training rows x factors from which a compare runs on worker processes by default
                         # (below, the workers' start, about 5 s each, outweighs what they share)


ANCHORS = 128  # test avatars the pose-invariance figure regenerates (three times each)


def _nuisance(ds, varied, names_all) -> tuple[list, list, list]:
    """(nuisance slider names, varied pose columns, varied shape columns): pose and scene (camera,
    light, background) sliders are nuisance factors of a study of the person."""
    is_pose = {s.name: bool(s.pose) for s in ds.rig.sliders}
    is_scene = {s.name: bool(getattr(s, "scene", None)) for s in ds.rig.sliders}
    pose_cols = [int(j) for j in varied if is_pose.get(names_all[j])]
    shape_cols = [int(j) for j in varied if not is_pose.get(names_all[j]) and not is_scene.get(names_all[j])]
    nuisance = [names_all[j] for j in varied if is_pose.get(names_all[j]) or is_scene.get(names_all[j])]
    return nuisance, pose_cols, shape_cols


# the order tasks go to the workers (lower first): the long ones (scorecards, renders) before the
# shorter checks, and the baselines and plots last, where small tasks fill the workers' last gaps
RANKS = {"metrics": 0, "traversals": 0, "pose_invariance": 1, "measurements": 1, "baseline": 2, "plots": 2}


def _rank(key: tuple) -> int:
    return RANKS[key[0]]


def _pose_task(model_file: str, pose_cols: list, shape_cols: list, seed: int) -> dict:
    """The pose-invariance figures (:mod:`avatar.compare.invariance`) of ``ANCHORS`` test avatars."""
    from .invariance import pose_invariance

    exp, rig = loaded(model_file)
    ds = exp.dataset
    rows = np.sort(exp.test[np.random.default_rng(seed).permutation(len(exp.test))[:ANCHORS]])
    S = np.asarray(ds.sliders[rows], np.float64)
    return pose_invariance(exp.models, rig(), ds.config["outputs"], S, pose_cols, shape_cols, seed)


def _measurement_task(model_file: str, codes: dict, max_train, max_test, seed: int) -> dict:
    exp, rig = loaded(model_file)
    return _measurements(exp, exp.dataset, codes, max_train, max_test, seed, rig())


def _measurement_columns(exp, ds, rig):
    """(names "measure.<m>", (n_train, M), (n_test, M)): the body measurements that vary, as factors."""
    from .measurements import CONSTANT, measurement_factors

    m_names, M_train = measurement_factors(ds, exp.train, rig)
    _, M_test = measurement_factors(ds, exp.test, rig)
    keep = M_train.std(axis=0) > CONSTANT
    return [f"measure.{n}" for n, k in zip(m_names, keep) if k], M_train[:, keep], M_test[:, keep]


def _model_entries(exp) -> dict:
    entries = exp.metadata.get("models") or {}
    return entries if isinstance(entries, dict) else {e.get("name"): e for e in entries if isinstance(e, dict)}


def _region_scores(exp, ds, results: dict, slider_names: list, rig, log) -> dict:
    """{region: {"sliders", "models": {model: restricted summary}, "best", "worst"}} for an experiment
    with regions (adds ``region`` to each regional model's card); {} without regions."""
    from .regions import motion_energy, region_sliders, restrict

    info = exp.metadata.get("regions") or {}
    if not info:
        return {}
    entries = _model_entries(exp)
    out, energy = {}, None
    for region, spec in info.items():
        members = [n for n in exp.models if (entries.get(n) or {}).get("region") == region]
        if not members:
            continue
        ft = exp.models[members[0]].features_
        index = (getattr(ft, "index_", None) or {}).get("vertices")
        globs = spec.get("sliders")
        if index is None and not globs:
            mine = list(slider_names)      # a texture-only region: its sliders cannot be told by motion
        else:
            if energy is None and not globs:      # the sliders' motion, once for every region
                energy = motion_energy(rig(), slider_names)
            mine = region_sliders(slider_names, energy, index, globs)
        cols = [slider_names.index(n) for n in mine]
        entry = {"sliders": mine, "models": {},
                 "components_for_variance": (spec.get("intrinsic_dimensionality") or {}).get("components_for_variance")}
        for name in members:
            card = results[name]
            sub = restrict(card, cols)
            card["region"] = {"name": region, "sliders": mine, "summary": sub}
            vis = np.asarray(card["visibility"]["per_slider"], np.float64)[cols] if cols else np.zeros(0)
            order = [mine[j] for j in np.argsort(-np.nan_to_num(vis, nan=-1.0))]
            entry["models"][name] = {"summary": sub, "best_seen": order[:3], "worst_seen": order[::-1][:3]}
        out[region] = entry
        log(f"  region {region}: {len(mine)} sliders of its own; " + ", ".join(
            f"{n} sees {v['summary'].get('n_visible', 0)}" for n, v in entry["models"].items()))
    return out


MEASURED_ROWS = 1000  # train and test rows each whose body measurements are compared with the codes


def _measurements(exp, ds, codes, max_train, max_test, seed: int, rig) -> dict:
    """Body measurements as extra factors (:mod:`avatar.compare.measurements`), for a sample of rows
    (``rig``: the dataset's rig)."""
    from .measurements import carried_by, measurement_factors

    rng = np.random.default_rng(seed)
    pick = {}
    for part, rows, cap in (("train", exp.train, max_train), ("test", exp.test, max_test)):
        k = min(len(rows), MEASURED_ROWS, cap or len(rows))
        pick[part] = np.sort(rng.permutation(len(rows))[:k])
    names, M_train = measurement_factors(ds, exp.train[pick["train"]], rig)
    _, M_test = measurement_factors(ds, exp.test[pick["test"]], rig)
    sub = {m: (z[pick["train"]], t[pick["test"]]) for m, (z, t) in codes.items()}
    return {"names": names, "units": [rig.ruler.spec[k].unit for k in names], "sd": M_test.std(axis=0),
            "n_train": len(M_train), "n_test": len(M_test), "models": carried_by(sub, M_train, M_test)}


def encode_split(exp, ds, batch: int = 256) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{model: (train codes, test codes)}: the codes the fit stored in the model file, while the
    dataset is still the one it fitted on (same fingerprint); otherwise (an older model file, or a
    regenerated dataset) encoded from the store, read once for all the models."""
    from ..latent.experiment import encode_rows_by_model

    n = len(exp.train)
    fitted_on = (exp.metadata.get("dataset") or {}).get("fingerprint")
    if fitted_on and fitted_on == ds.attrs.get("fingerprint") and set(exp.models) <= set(exp.split_codes):
        return {name: (exp.split_codes[name][:n], exp.split_codes[name][n:]) for name in exp.models}
    # whole shards at a time (each is one zarr chunk of one-avatar pieces), up to 256 MB of raw rows
    names = {k for m in exp.models.values() for k in m.features_.names}
    row_bytes = sum(int(np.prod(ds.group[k].shape[1:])) * ds.group[k].dtype.itemsize for k in names)
    batch = max(batch, min(int(ds.attrs["shard"]), (256 << 20) // max(row_bytes, 1)))
    Z = encode_rows_by_model(exp.models, ds, np.concatenate([exp.train, exp.test]), batch)
    return {name: (z[:n], z[n:]) for name, z in Z.items()}


def _reconstruction(entries) -> dict:
    """{model: {"vertex_error_mm mean": ..., "texture_psnr_db": ...}} from the model file's metadata."""
    items = entries.items() if isinstance(entries, dict) else ((e.get("name"), e) for e in entries)
    out = {}
    for name, entry in items:
        flat = {}
        for key, value in (entry.get("test") or {}).items():
            if isinstance(value, dict):
                flat.update({f"{key} {k}": v for k, v in value.items()})
            else:
                flat[key] = value
        out[name] = flat
    return out


def summary_text(metrics: dict) -> str:
    """The terminal summary: one line per model and baseline, then what the latent misses."""
    rows = {**metrics["models"], **{f"[{k}]": v for k, v in metrics["baselines"].items()}}
    short = {"mig": "MIG", "dci_disentanglement": "DCI-D", "dci_completeness": "DCI-C",
             "dci_informativeness_test": "DCI-I", "sap": "SAP", "matching_score": "matching",
             "visibility_mean": "visibility"}
    width = max(len(k) for k in rows) + 2
    lines = [f"{'':<{width}}" + "".join(f"{label:>11}" for label in short.values())]
    for name, res in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{_fmt(res['summary'][k]):>11}" for k in short))
    for name, res in metrics["models"].items():
        blind = _unseen(res)
        mixed = [c for c, n in zip(res["code_names"], res["purity"]["n_sliders_mixed"]) if n >= 3]
        lines.append(f"{name}: {len(blind)} of {res['n_factors']} sliders unseen (R^2 < {VISIBLE})"
                     + (f": {', '.join(blind[:6])}{' ...' if len(blind) > 6 else ''}" if blind else "")
                     + f"; {len(mixed)} of {res['n_codes']} codes mix 3 or more sliders")
    return "\n".join(lines)


def _unseen(res: dict) -> list[str]:
    vis = np.asarray(res["visibility"]["per_slider"], np.float64)
    return [res["factor_names"][j] for j in np.argsort(vis) if vis[j] < VISIBLE]


# -- the report ---------------------------------------------------------------------------
INTRO = ("A character creator's sliders are designed to be disentangled: each one changes one readable "
         "thing (nose width, tattoo angle). A latent learned from avatars alone (PCA, ICA, an autoencoder) "
         "usually is not: one learned axis may move several sliders at once (entangled), and some sliders "
         "may not show up in it at all. This report measures both, with numbers comparable to published "
         "work and with pictures.")

GLOSSARY = (
    ("slider (factor)", "one of the designer's controls; here the ground truth that made each avatar"),
    ("code (latent axis)", "one coordinate of the learned representation of an avatar"),
    ("disentangled", "each code follows one slider, and each slider is carried by one code"),
    ("entangled", "a code mixes several sliders, or a slider is spread over several codes"),
    ("MIG", "Mutual Information Gap: for each slider, how much more the best code knows about it than the "
            "second best, as a share of the slider's information; 0 to 1, higher is more disentangled"),
    ("DCI", "Disentanglement, Completeness, Informativeness: from a classifier's feature importances, does "
            "each code matter for one slider (D), is each slider explained by one code (C), and how well "
            "can sliders be predicted at all (I)"),
    ("SAP", "Separated Attribute Predictability: for each slider, how much better the best single code "
            "predicts it than the second best; 0 to 1"),
    ("modularity", "does each code carry information about only one slider? 0 to 1"),
    ("explicitness", "how well a simple linear classifier reads each slider off the codes (ROC-AUC)"),
    ("visibility", "per slider: the share of its variation the codes recover (test R^2, linear or "
                   "nonlinear); near 0 means the latent does not see that slider"),
    ("purity", "per code: 1 when one slider explains it, 0 when it mixes all sliders evenly"),
    ("baselines", "the sliders themselves (the best possible), a random projection of them (information "
                  "without alignment) and codes shuffled against the avatars (the noise floor)"),
)


def _report(cfg, exp, metrics, pictures: dict, fig_dir: Path, log) -> Report:
    """The report; ``pictures`` holds each model's plots and traversals, {("plots", model): ...}."""
    r = Report(f"How the learned latent lines up with the sliders: {cfg.name}",
               subtitle=f"{metrics['experiment']['n_avatars']:,} avatars from {metrics['experiment']['dataset']}; "
                        f"models {', '.join(exp.models)}", intro=INTRO)
    r.section("Reading this report", "The words used below, each in one sentence.")
    r.definitions(GLOSSARY)
    _summary_section(r, metrics)
    _region_section(r, metrics)
    _dimension_section(r, exp, metrics, fig_dir)
    for name, res in metrics["models"].items():
        _model_section(r, name, res, pictures["plots", name], pictures.get(("traversals", name)), log)
    _nuisance_section(r, metrics)
    from .measurements import measurement_section

    measurement_section(r, metrics)
    r.section("Settings", "Every estimator setting behind the numbers, so they can be reproduced.")
    r.table([[k, json.dumps(v) if not isinstance(v, str) else v]
             for k, v in next(iter(metrics["models"].values()))["estimators"].items()],
            ["estimator", "setting"], collapsed="show the estimator settings")
    return r


def scene_codes(card: dict, nuisance) -> list[tuple[str, str, float]]:
    """(code, nuisance slider, |Spearman|) for each code whose strongest correlate is a scene or pose slider."""
    names = card["factor_names"]
    cols = [j for j, n in enumerate(names) if n in set(nuisance)]
    out = []
    for i, row in enumerate(np.abs(np.nan_to_num(np.asarray(card["spearman"], np.float64)))):
        j = int(row.argmax())
        if j in cols:
            out.append((card["code_names"][i], names[j], float(row[j])))
    return out


def _nuisance_section(r: Report, metrics: dict) -> None:
    scene = [n for n in metrics["sliders"]["nuisance"] if n.startswith("scene.")]
    if scene:
        r.section("Scene as a nuisance factor",
                  f"The {len(scene)} scene sliders (camera, light, background) change the pictures but not the "
                  "person: a latent of the person should not spend codes on them. Each row is a code whose "
                  "strongest rank correlation is with a scene slider.")
        rows = [[name, c, n, _num(rho)] for name, card in metrics["models"].items()
                for c, n, rho in scene_codes(card, scene)]
        r.table(rows or [["-", "no code follows a scene slider most", "", ""]],
                ["model", "code", "scene slider", "|Spearman|"], numeric=(3,))
    inv = metrics.get("pose_invariance")
    if not inv:
        return
    from .invariance import INVARIANT, POSE_CODE

    nuisance = metrics["sliders"]["nuisance"]
    r.section("Pose as a nuisance factor",
              f"The {len(nuisance)} pose sliders are nuisance factors for a shape study. For {inv['n_anchors']} test "
              "avatars, each code's change was measured when only the pose changes (another avatar's pose) and "
              "when only the shape changes (another avatar's other sliders), in units of the code's spread. "
              "Pose share = pose change / (pose change + shape change): 0 ignores the pose, 1 follows only the pose.")
    rows = [[n, v["invariant_codes"], v["pose_codes"], len(v["pose_share"]), _num(v["mean_pose_share"])]
            for n, v in inv["models"].items()]
    r.table(rows, ["model", f"pose-blind codes (share < {INVARIANT})", f"pose codes (share > {POSE_CODE})",
                   "codes", "mean pose share"], numeric=range(1, 5))
    for n, v in inv["models"].items():
        share = np.asarray(v["pose_share"], np.float64)
        r.table([[f"{n}.{i + 1}", _num(v["pose_motion"][i]), _num(v["shape_motion"][i]), _num(share[i])]
                 for i in np.argsort(-share)],
                ["code", "change under pose only", "change under shape only", "pose share"],
                numeric=range(1, 4), collapsed=f"show every code of {n}")


def _region_section(r: Report, metrics: dict) -> None:
    regions = metrics.get("regions") or {}
    if not regions:
        return
    r.section("Regions", "Each region has its own latent, fitted on that region's features only. Its codes are "
                         "scored twice: against the sliders of the region (those moving mostly its vertices, or "
                         "the ones the experiment names) and, in the summary above, against every slider.")
    keys = ("mig", "dci_disentanglement", "dci_completeness", "matching_score", "visibility_mean")
    rows = []
    for region, entry in regions.items():
        for name, v in entry["models"].items():
            s = v["summary"]
            full = metrics["models"][name]["summary"]
            rows.append([region, name, f"{s.get('n_visible', 0)} / {s.get('n_sliders', 0)}"]
                        + [_num(s.get(k)) for k in keys] + [_num(full["mig"]), ", ".join(v["best_seen"]),
                                                            ", ".join(v["worst_seen"])])
    r.table(rows, ["region", "model", "region sliders seen", "MIG", "DCI-D", "DCI-C", "matching", "visibility",
                   "MIG (all sliders)", "best seen", "least seen"], numeric=range(3, 9))


def _summary_section(r: Report, metrics: dict) -> None:
    r.section("Summary", "One row per learned model, with the baselines below them for scale: the sliders "
                         "themselves score near the top, shuffled codes near zero.")
    keys = [k for k, _, _ in HEADLINE]
    rows = [[name] + [_num(res["summary"][k]) for k in keys] for name, res in metrics["models"].items()]
    labels = {"sliders": "sliders themselves (upper bound)", "random_projection": "random projection",
              "permuted_codes": "permuted codes (noise floor)"}
    rows += [[f"baseline: {labels[k]}"] + [_num(v["summary"][key]) for key in keys]
             for k, v in metrics["baselines"].items()]
    r.table(rows, ["representation"] + [label for _, label, _ in HEADLINE])
    r.bullets([f"{label}: {what}" for _, label, what in HEADLINE])
    r.subsection("Findings", "What the numbers say, in words.")
    r.bullets(findings(metrics))
    rec = {n: v for n, v in (metrics.get("reconstruction") or {}).items() if v}
    if rec:
        cols = sorted({k for v in rec.values() for k in v})
        r.table([[n] + [_num(v.get(c)) for c in cols] for n, v in rec.items()], ["model"] + cols,
                caption="Reconstruction on the test avatars (vertex error in millimetres; PSNR in dB).",
                numeric=range(1, len(cols) + 1))


def findings(metrics: dict) -> list[str]:
    """Plain sentences: per model, its clean codes, its mixed codes and the sliders it misses."""
    out = []
    rp = metrics["baselines"]["random_projection"]["summary"]["visibility_mean"]
    for name, res in metrics["models"].items():
        purity = np.asarray(res["purity"]["per_code"], np.float64)
        tops, mixed = res["purity"]["top_slider"], np.asarray(res["purity"]["n_sliders_mixed"], np.float64)
        clean = [f"{res['code_names'][i]} ~ {tops[i]}" for i in np.argsort(-purity) if purity[i] > 0.85]
        blind = _unseen(res)
        vis = res["summary"]["visibility_mean"]
        text = (f"{name}: {len(clean)} of {res['n_codes']} codes follow one slider cleanly"
                + (f" ({', '.join(clean[:5])}{', ...' if len(clean) > 5 else ''})" if clean else "")
                + f"; {int((mixed >= 3).sum())} codes move with 3 or more sliders; the latent misses "
                  f"{len(blind)} of {res['n_factors']} sliders (R^2 < {VISIBLE}). Mean visibility {vis:.2f}, "
                  f"against {rp:.2f} for a random projection of the sliders to as many dimensions.")
        out.append(text)
    return out


def _dimension_section(r: Report, exp, metrics: dict, fig_dir: Path) -> None:
    intr = metrics.get("intrinsic_dimensionality") or {}
    ratio = np.asarray(intr.get("explained_variance_ratio") or [], np.float64)
    n_sliders = len(metrics["sliders"]["compared"])
    r.section("How many dimensions the avatars need",
              f"The avatars were made by {n_sliders} varied sliders; principal components show how many "
              "directions their shapes (and skins) really spread along.")
    if len(ratio):
        curve = np.cumsum(ratio)
        counts = intr.get("components_for_variance") or {}
        marks = {float(k): v for k, v in counts.items() if v is not None}
        png = fig.explained_variance(curve, marks or None, as_png=True, save=fig_dir / "explained_variance.png")
        r.figure(png, "Cumulative share of the variance explained by the first k principal components, with "
                      "the 90/95/99 % marks.")
        r.paragraph("Components needed: " + ", ".join(
            f"{float(k):.0%} of the variance: {v if v is not None else f'more than {len(ratio)}'}"
            for k, v in counts.items()) + f" (for {n_sliders} sliders).")


def _model_section(r: Report, name: str, res: dict, plots: dict, strips: dict | None, log) -> None:
    s = res["summary"]
    r.section(f"Model: {name}",
              f"{name} has {res['n_codes']} codes; here is which sliders each of them follows.")
    r.metric_cards([(label, _fmt(s[key]), what) for key, label, what in HEADLINE[:4]]
                   + [("matching", _fmt(s["matching_score"]), "mean |Spearman| of the best one-to-one pairing"),
                      ("visibility", _fmt(s["visibility_mean"]), "mean share of a slider the codes recover")])
    codes = res["code_names"]
    r.subsection("Which slider each code follows",
                 "Each code paired one-to-one with the slider it tracks most closely (Hungarian matching on "
                 "|Spearman|); then the slider that dominates a linear fit of the code on all sliders, its "
                 "purity, and the effective number of sliders it moves with.")
    purity, mixed = res["purity"]["per_code"], res["purity"]["n_sliders_mixed"]
    pairs = {p["code"]: p for p in res["matching"]["pairs"]}
    rows = []
    for i, c in enumerate(codes):
        p = pairs.get(c)
        rows.append([c, p["slider"] if p else "-", _num(p["abs_spearman"]) if p else "-",
                     res["purity"]["top_slider"][i], _num(purity[i]), _num(mixed[i])])
    r.table(rows, ["code", "matched slider", "|Spearman|", "strongest slider (linear fit)", "purity",
                   "sliders mixed"], numeric=(2, 4, 5))
    r.subsection("Importance: which codes predict which sliders",
                 "A disentangled latent shows one big square per row and per column; squares spread along a "
                 "row mean that code is entangled.")
    r.figure(*plots["dci_importance"])
    r.subsection("Correlation and mutual information",
                 "Strong colour in one cell per row means a code follows one slider; several cells mean it mixes "
                 "them.")
    r.figure(*plots["spearman"])
    r.figure(*plots["mutual_information"])
    r.subsection("Which sliders the latent sees",
                 "For each slider, the share of its variation that can be read back from the codes; short bars "
                 "are sliders this latent does not see.")
    r.figure(*plots["visibility"])
    blind = _unseen(res)
    r.paragraph(("Not seen: " + ", ".join(blind)) if blind else "Every varied slider is seen.",
                tone="note" if blind else None)
    r.figure(*plots["purity"])
    if strips is None:
        return
    r.subsection("Latent traversals",
                 "Each learned axis swept from -2 to +2 standard deviations (top row), above the slider it "
                 "matches best swept over its range (bottom row).")
    if strips.get("error"):
        r.paragraph(f"No traversal pictures: {strips['error']}", tone="note")
        log(f"  traversals skipped: {strips['error']}")
    for png, caption in strips["pictures"]:
        r.figure(png, caption)


def _num(x):
    """A table cell: the number itself (the report formats it), or "-" for a missing one."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return float(x) if not isinstance(x, (int, np.integer)) else int(x)


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "nan" if not np.isfinite(x) else f"{x:.3f}"
