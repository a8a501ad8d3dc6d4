"""The ``avatar`` latent-lab commands: fit, encode, decode.

    avatar fit configs/experiments/faces-pca.yaml            # writes models/faces-pca.npz (+ .yaml metadata)
    avatar encode models/faces-pca.npz data/faces-10k.zarr -o codes.npy [--model ica] [--index 0:100]
    avatar decode models/faces-pca.npz --code "0:+2,3:-1.5" -o decoded.glb [--model pca]

:func:`register` adds them to the main parser (``avatar/cli.py``). Bad input
(config problems, a missing dataset, a pickle or damaged model file, a code
index out of range) exits 2 with a one-line message; nothing is written.
"""
from __future__ import annotations

from avatar.cli.errors import UsageError, check_output, usage

import sys
from pathlib import Path

import numpy as np


def register(sub, add) -> None:
    """Add the latent subcommands; ``add(name, func, help_)`` makes a subparser (with ``--rig``)."""
    sp = add("fit", cmd_fit, "Fit the latent models of an experiment YAML (configs/experiments/*.yaml) and write "
                             "one model file (.npz + .yaml metadata).")
    sp.add_argument("config", help="experiment YAML")
    sp.add_argument("-o", "--output", help="model file to write (default: the config's output:)")
    sp.add_argument("--quiet", action="store_true", help="print only the file written")

    sp = add("encode", cmd_encode, "Encode dataset samples with a fitted model: codes (n, k) as .npy.")
    sp.add_argument("model", help="model file (.npz) written by avatar fit")
    sp.add_argument("dataset", help="dataset store (.zarr) with the features the model uses")
    sp.add_argument("-o", "--output", required=True, help="codes file (.npy)")
    sp.add_argument("--model-name", "--name", dest="name", help="which model of the file (default: the first)")
    sp.add_argument("--index", help="samples: 0:100, 7, 3,9,12, -1 (default: all)")
    sp.add_argument("--batch", type=int, default=256, help="samples read at a time (default 256)")

    sp = add("decode", cmd_decode, "Decode a latent point back to an avatar mesh (.glb, .obj, .ply).")
    sp.add_argument("model", help="model file (.npz) written by avatar fit or avatar.latent.save")
    sp.add_argument("--code", default="", help="components in standard deviations of the training codes, "
                                               "e.g. '0:+2,3:-1.5' (others at their mean)")
    sp.add_argument("--model-name", "--name", dest="name", help="which model of the file (default: the first)")
    sp.add_argument("-o", "--output", required=True, help="mesh file: .glb, .obj or .ply")
    sp.add_argument("--codes-file", help="instead of --code: a .npy of raw codes (k,) or (n, k); "
                                         "with several rows, -o gets _000, _001, ... suffixes")
    sp.add_argument("--morphs", action="store_true", help="GLB of the mean avatar with one morph target per "
                    "component at +1 sd (linear models only; --code sets the weights; docs/morphs.md)")



def load_model(path: str, name: str | None):
    from avatar.latent import LatentFileError, load_file

    try:
        f = load_file(path)
    except LatentFileError as err:
        raise usage(str(err)) from None
    if name is None:
        return f, next(iter(f.models.items()))
    if name not in f.models:
        from avatar.spec.config import did_you_mean

        raise usage(f"{path}: no model named {name!r}{did_you_mean(name, f.models)}; it holds: "
                     f"{', '.join(f.models)}")
    return f, (name, f.models[name])


def cmd_fit(args) -> int:
    from avatar.latent.experiment import load_config, run

    cfg = load_config(args.config)  # ConfigError: exit 2 with file:line messages
    if args.output and not args.output.endswith(".npz"):
        raise usage(f"{args.output}: a model file must end in .npz")
    log = (lambda *a, **k: None) if args.quiet else (lambda msg: print(msg, flush=True))
    target = check_output(args.output or cfg.output, "model file")  # before the fit, not after it
    check_output(target.with_suffix(".yaml"), "model metadata file")
    try:
        out = run(cfg, output=args.output, log=log)
    except (ValueError, FileNotFoundError) as err:
        raise usage(str(err)) from None
    if args.quiet:
        print(out)
    return 0


def cmd_encode(args) -> int:
    from avatar.dataset import store as st
    from avatar.cli.dataset import parse_index
    from avatar.export import atomic_write
    from avatar.latent.experiment import encode_rows

    out = Path(args.output)
    if out.suffix != ".npy":
        raise usage(f"{out}: codes are written as .npy")
    if args.batch < 1:
        raise usage("--batch must be at least 1")
    check_output(out, "codes file")
    _, (name, model) = load_model(args.model, args.name)
    path = Path(args.dataset)
    if st.read_attrs(path) is None:
        raise usage(f"{path}: not an avatar dataset store" + ("" if path.exists() else " (no such path)"))
    try:
        ds = st.open(path, check=False)
    except st.DatasetError as err:
        raise usage(str(err)) from None
    rows = None
    if args.index:
        try:
            rows = parse_index(args.index, len(ds))
        except ValueError as err:
            raise usage(str(err)) from None
    want = np.arange(len(ds)) if rows is None else np.asarray(rows)
    bad = set((want // int(ds.attrs["shard"])).tolist()) & set(ds.missing_shards)
    if bad:
        raise usage(f"{path}: samples in shards {sorted(bad)[:5]} are not generated yet; finish the dataset first")
    try:
        Z = encode_rows(model, ds, rows, args.batch)
    except ValueError as err:
        raise usage(str(err)) from None
    atomic_write(out, lambda f: np.save(f, Z, allow_pickle=False))
    print(f"wrote {out}: codes {Z.shape[0]:,} x {Z.shape[1]} ({name}, {model.kind})")
    return 0


def parse_code(text: str, k: int) -> dict[int, float]:
    """``"0:+2,3:-1.5"`` -> {0: 2.0, 3: -1.5}; ValueError for bad items or indices outside 0..k-1."""
    out: dict[int, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            i, v = int(parts[0]), float(parts[1])
        except ValueError:
            raise ValueError(f"bad --code item {item!r}: use COMPONENT:SD, e.g. 0:+2,3:-1.5") from None
        if not 0 <= i < k:
            raise ValueError(f"--code component {i} is out of range: the model has {k} components (0 to {k - 1})")
        if not np.isfinite(v):
            raise ValueError(f"--code {item!r}: the value must be a finite number")
        if i in out:
            raise ValueError(f"--code gives component {i} twice")
        out[i] = v
    return out


def cmd_decode(args) -> int:
    from avatar.export import FORMATS, write_mesh

    out = Path(args.output)
    if out.suffix.lower() not in FORMATS:
        raise usage(f"{out}: unknown mesh format {out.suffix!r}; use one of {', '.join(FORMATS)}")
    check_output(out, "mesh file")
    f, (name, model) = load_model(args.model, args.name)
    k = model.n_components
    if getattr(args, "morphs", False):
        return _decode_morphs(args, f, name, model, out)
    if args.codes_file:
        if args.code:
            raise usage("give --code or --codes-file, not both")
        try:
            Z = np.load(args.codes_file, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise usage(f"{args.codes_file}: not a .npy array of codes ({err})") from None
        if Z.dtype.kind not in "biuf":  # strings, dates, structured records: not codes
            raise usage(f"{args.codes_file}: expected numeric codes, got an array of {Z.dtype} values")
        Z = np.atleast_2d(np.asarray(Z, np.float64))
        if Z.ndim != 2 or Z.shape[1] != k or not np.isfinite(Z).all():
            raise usage(f"{args.codes_file}: expected finite codes of shape (n, {k}), got {Z.shape}")
        what = [f"row {i} of {args.codes_file}" for i in range(len(Z))]
    else:
        try:
            sd = parse_code(args.code, k)
        except ValueError as err:
            raise usage(str(err)) from None
        Z = model.code_mean_.copy()[None]
        for i, v in sd.items():
            Z[0, i] += v * model.code_std_[i]
        what = [args.code or "the mean"]
    if model.features_ is None or "vertices" not in model.features_.names:
        raise usage(f"{args.model}: model {name!r} does not model vertices, so it cannot make a mesh")
    template = _template(args, f, model)
    from avatar.checks import check_finite

    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused just below, by name
        parts = model.features_.inverse(model.inverse_transform(Z))
    V, T = parts["vertices"], parts.get("textures")
    # a code of 1e300 decodes to infinity: refuse it, never write it (NonFiniteError: exit 2)
    check_finite(V, f"decoding {', '.join(what[:3])}{' ...' if len(what) > 3 else ''} with {name}")
    if V.shape[1] != len(template.vertices):
        raise usage(f"{args.model}: the model makes {V.shape[1]} vertices but the template has "
                     f"{len(template.vertices)}; pass the rig it was fitted with (--rig)")
    made_on = (f.metadata.get("dataset") or {}).get("template_sha256")
    if made_on and made_on != template.faces_sha256:
        raise usage(f"{args.model}: fitted on avatars of another template than this version's body "
                    "(MakeHuman's hm08 mesh); refit it on a dataset made now (`avatar fit`)")
    paths = [out] if len(Z) == 1 else [out.with_name(f"{out.stem}_{i:03d}{out.suffix}") for i in range(len(Z))]
    for i, p in enumerate(paths):
        info = {"latent_model": name, "latent_kind": model.kind, "latent_code": [float(x) for x in Z[i]],
                "latent_request": what[i], "model_file": str(args.model)}
        tex = T[i] if T is not None and out.suffix.lower() != ".ply" else None
        for written in write_mesh(p, V[i], template, info, tex):
            print(f"wrote {written}")
    return 0


def _decode_morphs(args, f, name, model, out: Path) -> int:
    """``decode --morphs``: the mean avatar with each component at +1 sd as a morph target."""
    from avatar.export import write_mesh
    from avatar.morphs import MorphError, latent_morphs

    if out.suffix.lower() != ".glb":
        raise usage(f"{out}: only GLB holds morph targets; write a .glb with --morphs")
    if args.codes_file:
        raise usage("--morphs writes the components as targets; give --code for their weights, not --codes-file")
    try:
        sd = parse_code(args.code, model.n_components)
        template = _template(args, f, model)
        m = latent_morphs(model, name, len(template.vertices))
    except (ValueError, MorphError) as err:
        raise usage(str(err)) from None
    for i, v in sd.items():
        m.weights[i] = v
    made_on = (f.metadata.get("dataset") or {}).get("template_sha256")
    if made_on and made_on != template.faces_sha256:
        raise usage(f"{args.model}: fitted on avatars of another template than this version's body "
                    "(MakeHuman's hm08 mesh); refit it on a dataset made now (`avatar fit`)")
    info = {"latent_model": name, "latent_kind": model.kind, "latent_request": args.code or "the mean",
            "model_file": str(args.model)}
    parts = model.features_.inverse(model.inverse_transform(model.code_mean_[None]))
    texture = parts["textures"][0] if "textures" in parts else None  # the mean avatar's (textures are not morphs)
    for written in write_mesh(out, m.base, template, info, texture, morphs=m):
        print(f"wrote {written}: the mean avatar and {len(m.names)} morph targets ({', '.join(m.names[:3])}"
              f"{', ...' if len(m.names) > 3 else ''}), weights in sd of the training codes")
    return 0


def _template(args, f, model):
    """The mesh template: --rig's, else the one the dataset was made with, else the default rig's."""
    from avatar.body.rig import load_rig
    from avatar.body.template import load as load_template

    if args.rig:
        return load_rig(args.rig).template
    name = (f.metadata.get("dataset") or {}).get("template")
    if name:
        try:
            return load_template(name)
        except (OSError, ValueError, KeyError) as err:
            print(f"avatar: warning: template {name!r} not found ({err}); using the default rig's", file=sys.stderr)
    return load_rig().template
