"""The ``avatar`` command line: a thin layer over the package's functions.

Bad input (config problems, unknown files or formats) prints one line per
problem and exits with status 2, never a traceback; nothing is written.
Each command group lives in its own module (rig, render, dataset, latent,
compare, explore) and registers its subcommands here.
"""
from __future__ import annotations

import argparse
import sys

from avatar.cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError, os_error_line


def _note(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (an .mhm file's ignored lines, ...) as one line each, without a source path."""
    print(f"avatar: note: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _note
        return _run(args)


def _run(args) -> int:
    from avatar.spec.config import ConfigError
    from avatar.rendering.core import RenderBackendError

    from avatar.checks import NonFiniteError
    from avatar.dataset.store import DatasetError
    from avatar.measure.solve import Unreachable

    try:
        return args.run(args) or 0
    except ConfigError as err:
        print(str(err), file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, RenderBackendError, NonFiniteError, DatasetError, Unreachable) as err:  # DatasetError: e.g. a
        # store with damaged metadata, met by any command that opens it (compare, encode, ...)
        print(f"avatar: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # unwritable output, full disk, a parent that is a file: one line naming the path
        print(f"avatar: error: {os_error_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\navatar: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="avatar", description="Procedural 3D character creator.")
    sub = p.add_subparsers(dest="command", required=True)
    from avatar.cli import rig

    def add(name, func, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(run=func)
        sp.add_argument("--rig", default=None, help="rig YAML (default: configs/rigs/humanoid.yaml)")
        return sp

    sp = add("sliders", rig.cmd_sliders, "List every slider: group, name, range, default, unit, description.")
    sp.add_argument("--group", help="only this group (body, nose, ears, ...)")
    sp.add_argument("--preset", help="show a preset's values (a YAML or .mhm file) and its stature and mass")
    sp.add_argument("--markdown", action="store_true", help="print a Markdown table")

    sp = add("make", rig.cmd_make, "Build an avatar from a preset (YAML or MakeHuman .mhm) and write it "
                                   "(.glb, .obj, .ply, or .mhm for MakeHuman).")
    sp.add_argument("preset")
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--pose", help="a pose preset (a-pose, t-pose, relaxed, walk, seated, or a YAML file): "
                                   "sets every pose slider")
    sp.add_argument("--morphs", help="GLB only: these sliders as named morph targets: groups or sliders "
                                     "(face,nose,ears) or all (docs/morphs.md)")

    sp = add("random", rig.cmd_random, "Build a random avatar (sliders drawn from their distributions).")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--index", type=int, default=0, help="which avatar of the seed's sequence")
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--save-preset", help="also write its slider values as a preset YAML")
    sp.add_argument("--posed", action="store_true", help="draw the pose sliders from their priors too "
                                                         "(default: the rest pose)")
    sp.add_argument("--pose", help="a pose preset (a-pose, t-pose, relaxed, walk, seated, or a YAML file): "
                                   "sets every pose slider")

    sp = add("validate", rig.cmd_validate, "Check preset (or rig) YAML files; exit 0 if all valid, 2 if not.")
    sp.add_argument("files", nargs="+")

    sp = add("demo", rig.cmd_demo, "The main job on defaults: every preset and a few random avatars into out/.")
    sp.add_argument("--out", default="out")
    sp.add_argument("--n-random", type=int, default=4)
    sp.add_argument("--seed", type=int, default=0)

    from avatar.cli.render import register

    register(sub, add)  # render, sheet, traverse, turntable

    from avatar.cli.dataset import register as register_dataset

    register_dataset(sub, add)  # generate, verify, export
    from avatar.cli.latent import register as register_latent

    register_latent(sub, add)  # fit, encode, decode
    from avatar.cli.compare import register as register_audit, register_compare

    register_audit(sub, add)  # audit
    register_compare(sub, add)  # compare
    from avatar.cli.explore import register as register_explorer

    register_explorer(sub, add)  # explore
    from avatar.cli.fit import register as register_fit

    register_fit(sub, add)  # fit-body
    from avatar.cli.measure import register as register_measure

    register_measure(sub, add)  # measure
    from avatar.cli.webapp import register as register_webapp

    register_webapp(sub, add)  # webapp
    from avatar.cli.atlas import register as register_atlas

    register_atlas(sub, add)  # atlas
    return p
