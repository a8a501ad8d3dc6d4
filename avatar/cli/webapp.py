"""``avatar webapp``: write the static web character creator for a preset (docs/morphs.md).

    avatar webapp configs/avatars/heroine.yaml --morphs all --model models/faces-pca.npz -o site/

Bad input (a preset, a ``--morphs`` item, a model that is not linear, a missing bundle) exits 2
with one line; nothing is written.
"""
from __future__ import annotations

from pathlib import Path

from avatar.cli.errors import UsageError


def register(sub, add) -> None:
    sp = add("webapp", cmd_webapp, "Write a static web character creator (index.html, the GLB with its morph "
                                   "targets, one bundled JS file) into a folder; it runs from file:// or any "
                                   "static host, offline.")
    sp.add_argument("preset", help="the avatar: a preset YAML or MakeHuman .mhm")
    sp.add_argument("-o", "--output", required=True, help="folder to write (created if needed)")
    sp.add_argument("--morphs", default="all", help="sliders on the page, as morph targets: groups or sliders "
                                                    "(face,nose,ears) or all (default)")
    sp.add_argument("--model", help="a latent model file (.npz) whose components get a panel (linear models only)")
    sp.add_argument("--model-name", help="which model of the file (default: the first)")
    sp.add_argument("--texture-size", type=int, default=1024, help="texture size in pixels (0: none; default 1024)")
    sp.add_argument("--pose", help="a pose preset (a-pose, t-pose, relaxed, walk, seated, or a YAML file)")


def cmd_webapp(args) -> int:
    from avatar.morphs import MorphError, latent_morphs, morphs_for, parse
    from avatar.webapp import WebappError, build_site, bundle_path

    try:
        bundle_path()
    except WebappError as err:
        raise UsageError(str(err)) from None
    if args.texture_size < 0 or args.texture_size > 4096:
        raise UsageError("--texture-size must be 0 to 4096")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: not a folder")
    from avatar.body.rig import load_rig
    from avatar.spec.pose import with_pose

    rig = load_rig(args.rig)
    values = with_pose(rig.spec, rig.preset(args.preset), args.pose)  # measurements: targets solved
    latent = None
    try:
        parse(rig, args.morphs)  # a bad --morphs fails before the work
        if args.model:
            from avatar.cli.latent import load_model

            f, (name, model) = load_model(args.model, args.model_name)
            made_on = (f.metadata.get("dataset") or {}).get("template_sha256")
            if made_on and made_on != rig.template.faces_sha256:
                raise UsageError(f"{args.model}: fitted on avatars of another template; refit it (`avatar fit`)")
            latent = latent_morphs(model, name, rig.n_vertices)
        morphs = morphs_for(rig, values, args.morphs)
    except MorphError as err:
        raise UsageError(str(err)) from None
    if latent is not None:
        morphs = morphs + latent
    from avatar.export import probe_writable

    probe_writable(out, "webapp")
    text = Path(args.preset).read_text(errors="replace") if Path(args.preset).suffix.lower() != ".mhm" else ""
    name, description = _preset_name(text, Path(args.preset).stem)
    try:
        files = build_site(rig, values, morphs, out, name, description, args.texture_size)
    except WebappError as err:
        raise UsageError(str(err)) from None
    from avatar.morphs import describe

    print(describe(morphs))
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in files)
    print(f"wrote {out}/: {sizes}; open {out / 'index.html'}")
    return 0


def _preset_name(text: str, fallback: str) -> tuple[str, str]:
    import yaml

    try:
        data = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        return fallback, ""
    name, desc = data.get("name"), data.get("description")
    return (str(name) if name else fallback), (str(desc) if desc else "")


def demo_site(out: Path, rig_path=None) -> None:
    """The demo's web creator: the heroine with her face sliders and the demo PCA, in ``out/site/``."""
    from avatar.body.rig import ROOT
    from avatar.cli.main import build_parser
    from avatar.webapp import WebappError, bundle_path

    try:
        bundle_path()
    except WebappError as err:  # no node/npm on this machine: the rest of the demo stands
        print(f"skipped {out / 'site'}: {err}")
        return
    argv = ["webapp", str(ROOT / "configs" / "avatars" / "heroine.yaml"), "--morphs", "face,nose,ears",
            "--model", str(out / "models" / "demo.npz"), "--model-name", "pca", "-o", str(out / "site")]
    cmd_webapp(build_parser().parse_args(argv + (["--rig", str(rig_path)] if rig_path else [])))
