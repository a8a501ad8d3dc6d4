"""The latent atlas: what learned latents see of MakeHuman's sliders, dataset by dataset.

    avatar atlas -o reports/atlas/                     # configs/atlas/default.yaml
    avatar atlas configs/atlas/default.yaml -o reports/atlas/ --n 500 --only macros,face-linear

An atlas config lists entries, each a dataset config and an experiment config
(``configs/datasets/atlas-*.yaml``, ``configs/experiments/atlas-*.yaml``). For
every entry, in order:

1. the dataset is generated at the atlas's ``n`` into ``<out>/data/<name>-<n>.zarr``
   (resumed when it is there: generation is crash-safe and deterministic);
2. its experiment is fitted into ``<out>/models/<name>-<n>.npz`` (skipped when that file
   exists and was fitted on this very dataset);
3. :func:`avatar.compare.compare_experiment` writes ``<out>/<name>/report.html``.

Then ``index.html`` links the reports under one table, ``atlas.md`` is that table in
Markdown (for the README), and ``atlas.json`` holds its rows, the timings and the machine.
The pipeline is the package's own functions; this module only chains them and reads
their metrics into rows (:func:`rows_of`).
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from avatar.spec.config import Problems, check_keys, check_number, check_str, describe

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "atlas" / "default.yaml"
_KEYS = ("name", "description", "n", "workers", "compare", "entries")
_ENTRY_KEYS = ("name", "dataset", "experiment")
_COMPARE_KEYS = ("max_train", "max_test", "traversals", "size", "dci")

__all__ = ["AtlasConfig", "load_atlas", "run_atlas", "rows_of", "markdown_table"]


@dataclass
class AtlasConfig:
    entries: list[dict]                      # {"name", "dataset", "experiment"} (paths as written)
    n: int = 2000
    workers: int = 2
    compare: dict = field(default_factory=dict)
    name: str = "atlas"
    description: str = ""
    source: str = "<atlas>"


def load_atlas(path=None) -> AtlasConfig:
    """Read and check an atlas config (every problem at once: file:line: key: message)."""
    from avatar.spec.config import read_text, parse_yaml_lenient

    path = Path(path) if path else DEFAULT_CONFIG
    file = str(path)
    data, lines, dup = parse_yaml_lenient(read_text(path), file)
    problems = Problems(file, lines, dup)
    check_keys(problems, (), data, _KEYS, required=("entries",))
    n = _whole(problems, ("n",), data.get("n", 2000), 10)
    workers = _whole(problems, ("workers",), data.get("workers", 2), 1)
    compare = data.get("compare", {}) or {}
    if not isinstance(compare, dict):
        problems.add(("compare",), f"expected a mapping such as {{max_train: 1000}}, got {describe(compare)}")
        compare = {}
    check_keys(problems, ("compare",), compare, _COMPARE_KEYS)
    entries, seen = [], set()
    raw = data.get("entries", [])
    if not isinstance(raw, list) or not raw:
        problems.add(("entries",), f"expected a list of {{name, dataset, experiment}}, got {describe(raw)}")
        raw = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict):
            problems.add(("entries", i), f"expected {{name, dataset, experiment}}, got {describe(e)}")
            continue
        check_keys(problems, ("entries", i), e, _ENTRY_KEYS, required=_ENTRY_KEYS)
        got = {k: check_str(problems, ("entries", i, k), e[k], one_line=True) for k in _ENTRY_KEYS if k in e}
        for k in ("dataset", "experiment"):
            if got.get(k) and not Path(got[k]).is_file():
                problems.add(("entries", i, k), f"no such file: {got[k]}")
        if got.get("name") in seen:
            problems.add(("entries", i, "name"), f"entry name '{got['name']}' is used twice")
        seen.add(got.get("name"))
        if all(got.get(k) for k in _ENTRY_KEYS):
            entries.append(got)
    problems.raise_if_any()
    return AtlasConfig(entries=entries, n=n, workers=workers, compare=dict(compare),
                       name=str(data.get("name", "atlas")), description=str(data.get("description", "")),
                       source=file)


def _whole(problems, path, value, lo):
    x = check_number(problems, path, value, integral=True)
    if x is not None and x < lo:
        problems.add(path, f"must be at least {lo}, got {int(x)}")
        return lo
    return int(x) if x is not None else lo


# -- running ----------------------------------------------------------------------------
def run_atlas(cfg: AtlasConfig, out, *, n: int | None = None, only=None, workers: int | None = None,
              renders: bool = True, log=print) -> dict:
    """Generate, fit and compare every entry (or ``only`` these names); write index.html,
    atlas.md and atlas.json into ``out``. Returns the atlas.json data."""
    from avatar.spec.config import did_you_mean

    out = Path(out)
    n = int(n or cfg.n)
    workers = int(workers or cfg.workers)
    names = [e["name"] for e in cfg.entries]
    if only:
        bad = [x for x in only if x not in names]
        if bad:
            raise ValueError(f"no atlas entry {bad[0]!r}{did_you_mean(bad[0], names)}; entries: {', '.join(names)}")
    todo = [e for e in cfg.entries if not only or e["name"] in only]
    t_all = time.perf_counter()
    done = []
    for e in todo:
        log(f"atlas: {e['name']} ({n:,} avatars)")
        done.append(_run_entry(e, out, n, workers, cfg.compare, renders, log))
    result = {"name": cfg.name, "description": cfg.description, "config": cfg.source, "n": n,
              "workers": workers, "seconds": round(time.perf_counter() - t_all, 1), "machine": machine(),
              "entries": done, "rows": [r for d in done for r in d["rows"]]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "atlas.json").write_text(json.dumps(result, indent=1))
    (out / "atlas.md").write_text(markdown_table(result))
    _index(result, out)
    log(f"atlas: {len(done)} experiments in {result['seconds'] / 60:.1f} min; wrote {out / 'index.html'}, "
        f"{out / 'atlas.md'} and {out / 'atlas.json'}")
    return result


def _run_entry(e: dict, out: Path, n: int, workers: int, settings: dict, renders: bool, log) -> dict:
    from avatar import dataset as dsmod
    from avatar.compare.pipeline import compare_experiment
    from avatar.dataset.config import config_from_text, load_config
    from avatar.latent import experiment as ex

    times = {}
    t = time.perf_counter()
    load_config(e["dataset"])                          # its own problems first, with its own line numbers
    data = yaml.safe_load(Path(e["dataset"]).read_text())
    data["n"] = n
    store = out / "data" / f"{e['name']}-{n}.zarr"
    dcfg = config_from_text(yaml.safe_dump(data, sort_keys=False), e["dataset"], store=str(store))
    dsmod.generate(dcfg, workers=workers, progress=False)
    times["generate"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    raw = yaml.safe_load(Path(e["experiment"]).read_text())
    raw["dataset"] = str(store)
    raw["output"] = str(out / "models" / f"{e['name']}-{n}.npz")
    ecfg = ex.config_from_text(yaml.safe_dump(raw, sort_keys=False), e["experiment"])
    if not _fitted_on(Path(ecfg.output), store, ecfg.text):
        ex.run(ecfg, log=lambda *a: None)
    times["fit"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    c = dict(settings)
    metrics = compare_experiment(ecfg, out / e["name"], dci_model=c.get("dci", "forest"),
                                 max_train=c.get("max_train", 1000), max_test=c.get("max_test", 400),
                                 n_traversals=c.get("traversals", 1) if renders else 0, size=c.get("size", 96),
                                 renders=renders, log=lambda *a: None)
    times["compare"] = round(time.perf_counter() - t, 1)
    rows = rows_of(e["name"], metrics)
    log(f"  {e['name']}: generate {times['generate']} s, fit {times['fit']} s, compare {times['compare']} s")
    return {"name": e["name"], "dataset": e["dataset"], "experiment": e["experiment"], "store": str(store),
            "report": f"{e['name']}/report.html", "seconds": times, "rows": rows}


def _fitted_on(model_file: Path, store: Path, text: str) -> bool:
    """True when the model file exists and was fitted by this very experiment text on this store."""
    from avatar.dataset.store import read_attrs

    meta_path = model_file.with_suffix(".yaml")
    if not model_file.is_file() or not meta_path.is_file():
        return False
    try:
        meta = yaml.safe_load(meta_path.read_text()) or {}
    except yaml.YAMLError:
        return False
    attrs = read_attrs(store) or {}
    return bool(attrs.get("fingerprint")) and meta.get("config_text") == text \
        and (meta.get("dataset") or {}).get("fingerprint") == attrs["fingerprint"]


# -- rows, table, index -------------------------------------------------------------------
def rows_of(entry: str, metrics: dict) -> list[dict]:
    """One row per model of a compare's metrics: components for 90/95/99 %, the headline scores,
    the visible sliders and the best and least seen sliders (of its region, for a regional model)."""
    regions = metrics.get("regions") or {}
    region_of = {m: r for r, v in regions.items() for m in v["models"]}
    counts = (metrics.get("intrinsic_dimensionality") or {}).get("components_for_variance") or {}
    n_sliders = len(metrics["sliders"]["compared"]) - len(metrics["sliders"].get("measurements") or [])
    out = []
    for name, card in metrics["models"].items():
        s = card["summary"]
        region = region_of.get(name)
        comps = (regions[region].get("components_for_variance") or {}) if region else counts
        vis = [(f, v) for f, v in zip(card["factor_names"], card["visibility"]["per_slider"])
               if v is not None and not f.startswith("measure.")]
        if region:
            sub = regions[region]["models"][name]
            best, worst = sub["best_seen"], sub["worst_seen"]
            seen, of = sub["summary"].get("n_visible", 0), sub["summary"].get("n_sliders", 0)
        else:
            order = sorted(vis, key=lambda fv: -fv[1])
            best, worst = [f for f, _ in order[:3]], [f for f, _ in order[::-1][:3]]
            seen, of = sum(v >= 0.5 for _, v in vis), n_sliders
        out.append({"experiment": entry, "model": name, "region": region, "codes": card["n_codes"],
                    "components": [comps.get(k) for k in ("0.9", "0.95", "0.99")],
                    "sliders": n_sliders, "mig": s["mig"], "dci_d": s["dci_disentanglement"],
                    "dci_c": s["dci_completeness"], "sap": s["sap"], "visible": seen, "of": of,
                    "visible_all": sum(v >= 0.5 for _, v in vis), "best": best, "worst": worst})
    return out


def _f(x) -> str:
    return "–" if x is None else f"{x:.2f}"


def markdown_table(result: dict) -> str:
    """The atlas as one Markdown table, with the run's size, time and machine under it."""
    head = ("| dataset | model | codes | PCs 90/95/99 % | MIG | DCI-D | DCI-C | SAP | sliders seen | best seen | "
            "least seen |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in result["rows"]:
        comps = "/".join("–" if c is None else str(c) for c in r["components"])
        where = f"{r['experiment']} ({r['region']})" if r["region"] else r["experiment"]
        seen = f"{r['visible']} of {r['of']}" + (f" ({r['visible_all']} of {r['sliders']} all)" if r["region"] else "")
        lines.append(f"| {where} | {r['model']} | {r['codes']} | {comps} | {_f(r['mig'])} | {_f(r['dci_d'])} | "
                     f"{_f(r['dci_c'])} | {_f(r['sap'])} | {seen} | {', '.join(r['best'])} | "
                     f"{', '.join(r['worst'])} |")
    m = result["machine"]
    foot = (f"\n{result['n']:,} avatars per dataset, {len(result['entries'])} experiments in "
            f"{result['seconds'] / 60:.1f} min on {m['cpus']} cores ({m['processor']}, Python {m['python']}). "
            "A slider is seen when the codes recover at least half its variance (test R², linear or nonlinear); "
            "for a regional model, of the sliders that move mostly its region.\n")
    return head + "\n".join(lines) + "\n" + foot


def machine() -> dict:
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "platform": platform.platform(), "python": platform.python_version()}


def _index(result: dict, out: Path) -> None:
    from avatar.compare.report import Report

    r = Report(f"The latent atlas: {result['name']}", subtitle=f"{result['n']:,} avatars per dataset; "
               f"{len(result['entries'])} experiments in {result['seconds'] / 60:.1f} min",
               intro=result.get("description") or "")
    r.section("Experiments", "One report per experiment; each row below is one learned latent.")
    r.links([(e["name"], e["report"], f"{e['experiment']} on {e['dataset']} (generate {e['seconds']['generate']} s, "
              f"fit {e['seconds']['fit']} s, compare {e['seconds']['compare']} s)") for e in result["entries"]])
    r.table([[f"{x['experiment']}" + (f" ({x['region']})" if x["region"] else ""), x["model"], x["codes"],
              "/".join("–" if c is None else str(c) for c in x["components"]), _f(x["mig"]), _f(x["dci_d"]),
              _f(x["dci_c"]), _f(x["sap"]), f"{x['visible']} of {x['of']}", ", ".join(x["best"]),
              ", ".join(x["worst"])] for x in result["rows"]],
            ["dataset", "model", "codes", "PCs 90/95/99 %", "MIG", "DCI-D", "DCI-C", "SAP", "sliders seen",
             "best seen", "least seen"])
    r.write(out / "index.html")
