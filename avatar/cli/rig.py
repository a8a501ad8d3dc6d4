"""Rig commands: sliders, make, random, validate and the demo."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from avatar.cli.errors import EXIT_USAGE, UsageError


def rig_from_args(args):
    from avatar.body.rig import load_rig

    return load_rig(args.rig)


def _check_output(path: str) -> Path:
    from avatar.export import FORMATS

    out = Path(path)
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"{out}: unknown mesh format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    from avatar.cli.errors import check_output

    return check_output(out, "mesh file")


def _write(rig, values: np.ndarray, out: Path, texture_size: int = 1024, morphs=None) -> None:
    from avatar.measure.body import summary
    from avatar.export import readable_values, rig_skin, write_mesh

    suffix = out.suffix.lower()
    texture = rig.textures(values, texture_size) if suffix not in (".ply", ".mhm") else None
    if suffix == ".glb":  # rigged: the rest shape is the bind pose and the pose lives in the joints
        rest, skin = rig_skin(rig, values)
        vertices = rest if morphs is None else morphs.base  # morphed: the avatar is base + default weights
    else:
        rest, skin, vertices = rig.vertices(values, posed=False), None, rig.vertices(values)
    for path in write_mesh(out, vertices, rig.template, readable_values(rig, values), texture, spec=rig.spec,
                           skin=skin, morphs=morphs):
        print(f"wrote {path} ({summary(rest[None], rig.template)[0]})")  # stature and mass stand at rest


# -- commands ----------------------------------------------------------------
def cmd_sliders(args) -> int:
    from avatar.spec.sliders import load_rig_spec
    from avatar.body.rig import DEFAULT_RIG

    spec = load_rig_spec(args.rig or DEFAULT_RIG)
    rows = [s for s in spec.sliders if not args.group or s.group == args.group]
    if args.preset:
        rows = _preset_rows(spec, args.preset, rows)
    if args.group and not rows:
        from avatar.spec.config import did_you_mean

        raise UsageError(f"no group {args.group!r}{did_you_mean(args.group, spec.groups)}")
    from avatar.spec.docs import slider_table

    print(slider_table(rows, markdown=args.markdown))
    if args.preset:
        from avatar.measure.body import summary
        from avatar.body.rig import Rig
        from avatar.body.template import load as load_template
        rig = Rig(spec, load_template(spec.template))
        print(f"{args.preset}: {summary(rig.vertices(rig.preset(args.preset))[None], rig.template)[0]}")
    return 0


def _preset_rows(spec, preset, rows):
    """Slider specs with each default replaced by the preset's value (the table then shows the preset)."""
    from dataclasses import replace

    from avatar.spec.sliders import preset_vector

    x = preset_vector(spec, preset)
    return [replace(s, default=float(x[spec.index(s.name)])) for s in rows]


def cmd_make(args) -> int:
    out = _check_output(args.output)
    rig = rig_from_args(args)
    from avatar.spec.pose import with_pose

    values = with_pose(rig.spec, rig.preset(args.preset), args.pose)  # measurements: solved (docs/measure.md)
    morphs = None
    if args.morphs is not None:  # docs/morphs.md
        from avatar.morphs import cli_morphs

        morphs = cli_morphs(rig, values, args.morphs, out)
    _write(rig, values, out, morphs=morphs)
    return 0


def cmd_random(args) -> int:
    out = _check_output(args.output)
    if args.save_preset:
        from avatar.cli.errors import check_output

        check_output(args.save_preset, "preset file")
    if args.seed < 0 or args.index < 0:
        raise UsageError("--seed and --index must be >= 0")
    rig = rig_from_args(args)
    from avatar.spec.pose import with_pose

    values = with_pose(rig.spec, rig.sample(1, seed=args.seed, start=args.index, pose=args.posed)[0], args.pose)
    _write(rig, values, out)
    if args.save_preset:
        write_preset(args.save_preset, rig, values, name=f"random seed {args.seed} #{args.index}")
        print(f"wrote {args.save_preset}")
    return 0


def write_preset(path, rig, values: np.ndarray, name: str) -> None:
    """Write the sliders that differ from their defaults as a preset YAML."""
    from avatar.spec.sliders import preset_text

    text = preset_text(rig.spec, values, name)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text)


def cmd_validate(args) -> int:
    from avatar.spec.config import ConfigError, load_yaml_lenient
    from avatar.spec.sliders import load_preset, load_rig_spec

    spec = None
    failed = False
    for f in args.files:
        try:
            data = None if str(f).lower().endswith(".mhm") else load_yaml_lenient(f)[0]  # .mhm: a preset
            kind = _config_kind(data)
            if kind == "rig":
                from avatar.body.rig import load_rig

                load_rig(f)  # the whole rig: its targets are read and its fields built
            elif kind == "dataset":
                from avatar.dataset.config import load_config

                load_config(f, store="")
            elif kind == "experiment":
                from avatar.latent.experiment import load_config as load_experiment

                load_experiment(f)
            elif kind == "measurements":
                from avatar.spec.measurements import load_measurements

                load_measurements(f)
            else:
                spec = spec or load_rig_spec(args.rig or _default_rig())
                load_preset(f, spec)
            print(f"{f}: ok")
        except ConfigError as err:
            failed = True
            print(str(err), file=sys.stderr)
    return EXIT_USAGE if failed else 0


def _config_kind(data) -> str:
    """Which of our YAML files ``data`` is, by its top-level keys: rig, dataset, experiment,
    measurements or (the default) preset."""
    if not isinstance(data, dict):
        return "preset"
    if "template" in data:
        return "rig"
    if "sampler" in data or "outputs" in data or "vary" in data:
        return "dataset"
    if "models" in data and "features" in data:
        return "experiment"
    if "landmarks" in data or ("measurements" in data and "name" not in data and "sliders" not in data):
        return "measurements"
    return "preset"


def _default_rig():
    from avatar.body.rig import DEFAULT_RIG

    return DEFAULT_RIG


def cmd_demo(args) -> int:
    """Every preset under configs/avatars and a few random avatars, as GLB + PLY."""
    from avatar.body.rig import ROOT

    rig = rig_from_args(args)
    out = Path(args.out)
    presets = [(p.stem, rig.preset(p)) for p in sorted((ROOT / "configs" / "avatars").glob("*.yaml"))]
    for name, values in presets:
        _write(rig, values, out / "presets" / f"{name}.glb")
    S = rig.sample(args.n_random, seed=args.seed)
    for i, values in enumerate(S):
        _write(rig, values, out / "random" / f"seed{args.seed}_{i:03d}.glb")
        write_preset(out / "random" / f"seed{args.seed}_{i:03d}.yaml", rig, values, f"random {i}")
    from avatar.cli.render import demo_pictures

    demo_pictures(rig, presets, S, args.seed, out)  # gallery.png, traverse_<slider>.png
    from avatar.cli.measure import demo_measurements

    demo_measurements(rig, presets, out)  # measurements.csv (every preset), measurements.png
    from avatar.cli.dataset import demo_dataset

    demo_dataset(out, args.rig)  # out/dataset.zarr: 2,000 avatars, vertices, 64^2 textures, 128^2 renders
    demo_report(out)  # out/models/demo.npz and out/report/report.html
    from avatar.cli.webapp import demo_site

    demo_site(out, args.rig)  # out/site/index.html: the web creator, face sliders and the demo PCA
    print(f"done: {len(presets)} presets and {len(S)} random avatars, their measurements, a 2,000-avatar dataset, "
          f"its latent models, the comparison report and the web creator in {out}/ (open {out}/report/report.html "
          f"and {out}/site/index.html)")
    return 0


def demo_report(out: Path) -> None:
    """Fit the demo experiment on out/dataset.zarr and compare it with the sliders into out/report/."""
    from dataclasses import replace

    from avatar.compare.pipeline import compare_experiment
    from avatar.latent.experiment import load_config
    from avatar.body.rig import ROOT

    cfg = load_config(ROOT / "configs" / "experiments" / "demo.yaml")
    cfg = replace(cfg, dataset=str(out / "dataset.zarr"), output=str(out / "models" / "demo.npz"))
    Path(cfg.output).unlink(missing_ok=True)  # the dataset was just regenerated: refit
    compare_experiment(cfg, out / "report", n_traversals=2)
