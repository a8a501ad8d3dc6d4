"""The ``avatar audit`` and ``avatar compare`` commands: thin layers over avatar.compare.

    avatar audit configs/rigs/humanoid.yaml -o reports/rig-audit/ [--samples 32 --seed 0 --texture-size 128]
    avatar compare configs/experiments/faces-pca.yaml -o reports/faces-pca/ [--dci gbt --traversals 2]

Each writes ``report.html`` (one self-contained page), its numbers as JSON and
``figures/*.png``, and prints a short summary. The pages are built by
:mod:`avatar.compare.audit_page` and :mod:`avatar.compare.pipeline`.
"""
from __future__ import annotations

from avatar.cli.errors import UsageError, usage

from pathlib import Path


def register(sub, add) -> None:
    """Add ``audit``; ``add(name, func, help_)`` makes a subparser with ``--rig``."""
    sp = add("audit", cmd_audit, "Audit a rig's sliders (no learning): what each one moves and where, which "
                                 "pairs overlap, how many dimensions they really span. Writes report.html, "
                                 "audit.json and figures/ into the output folder.")
    sp.add_argument("rig_file", nargs="?", metavar="RIG.yaml",
                    help="rig YAML (default: --rig, else configs/rigs/humanoid.yaml)")
    sp.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    sp.add_argument("--samples", type=int, default=32, help="random avatars the effects are averaged over")
    sp.add_argument("--seed", type=int, default=0, help="seed of the random avatars")
    sp.add_argument("--texture-size", type=int, default=128,
                    help="texture atlas size for the texture half (lips and irises need >= 128)")
    sp.add_argument("--step", type=float, default=0.1,
                    help="finite-difference step as a share of each slider's range")
    sp.add_argument("--no-textures", action="store_true", help="geometry only (skip the texture half)")


def register_compare(sub, add) -> None:
    sp = add("compare", cmd_compare, "Compare an experiment's learned latents with the designer sliders: "
                                     "metrics (MIG, DCI, SAP, ...), baselines, traversals. Writes report.html, "
                                     "metrics.json and figures/ into the output folder (fits the models first "
                                     "if their file does not exist).")
    sp.add_argument("config", metavar="EXPERIMENT.yaml", help="experiment YAML (configs/experiments/*.yaml)")
    sp.add_argument("-o", "--output", required=True, help="output folder (created if needed)")
    sp.add_argument("--dci", choices=("forest", "gbt"), default="forest",
                    help="DCI's classifier: forest (default, seconds) or gbt (disentanglement_lib's "
                         "GradientBoostingClassifier, minutes)")
    sp.add_argument("--max-train", type=int, default=2000, help="training rows for DCI, SAP and explicitness")
    sp.add_argument("--max-test", type=int, default=2000, help="test rows for DCI, SAP and explicitness")
    sp.add_argument("--traversals", type=int, default=2,
                    help="components drawn large per model, beside their slider (every component also "
                         "appears in one overview picture per model; 0: no traversal pictures)")
    sp.add_argument("--size", type=int, default=128, help="pixels of each traversal picture")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--workers", type=int, default=None,
                    help="processes for the scorecards and pictures (default: one per core, at most 4, when "
                         "training rows x sliders reach 50,000; 1: all in this process); the numbers do "
                         "not depend on it")
    sp.add_argument("--no-fit", action="store_true", help="fail instead of fitting a missing model file")


def cmd_compare(args) -> int:
    from avatar.compare.pipeline import compare_experiment
    from avatar.latent.experiment import load_config

    for flag, value, lo in (("--max-train", args.max_train, 10), ("--max-test", args.max_test, 10),
                            ("--traversals", args.traversals, 0), ("--size", args.size, 32), ("--seed", args.seed, 0),
                            ("--workers", 1 if args.workers is None else args.workers, 1)):
        if value < lo:
            raise usage(f"{flag} must be >= {lo}, got {value}")
    cfg = load_config(args.config)  # ConfigError -> exit 2, nothing written
    out = check_output_dir(args.output)
    try:
        compare_experiment(cfg, out, fit=not args.no_fit, dci_model=args.dci, max_train=args.max_train,
                           max_test=args.max_test, n_traversals=args.traversals, size=args.size, seed=args.seed,
                           n_jobs=args.workers)
    except ValueError as err:  # e.g. mismatched codes and sliders, a dataset with too few samples
        raise usage(str(err)) from None
    return 0



def cmd_audit(args) -> int:
    from avatar.compare.audit import audit_rig
    from avatar.compare.audit_page import write_audit
    from avatar.body.rig import DEFAULT_RIG, load_rig

    if args.rig_file and args.rig and Path(args.rig_file) != Path(args.rig):
        raise usage("give the rig once: as RIG.yaml or as --rig, not both")
    if not 2 <= args.samples <= 2000:
        raise usage(f"--samples must be 2 to 2000, got {args.samples}")
    if args.seed < 0:
        raise usage("--seed must be >= 0")
    if not args.no_textures and not 8 <= args.texture_size <= 1024:
        raise usage(f"--texture-size must be 8 to 1024, got {args.texture_size}")
    if not 0 < args.step <= 0.5:
        raise usage(f"--step must be in (0, 0.5], got {args.step}")
    rig = load_rig(args.rig_file or args.rig or DEFAULT_RIG)   # ConfigError -> exit 2, nothing written
    out = check_output_dir(args.output)
    audit = audit_rig(rig, samples=args.samples, seed=args.seed, texture_size=args.texture_size,
                      step=args.step, textures=not args.no_textures)
    paths = write_audit(audit, out)  # avatar.compare.audit_page
    print(audit.summary())
    print(f"wrote {out / 'report.html'}, {out / 'audit.json'} and {len(paths) - 2} figures in {out / 'figures'}")
    return 0


def check_output_dir(path) -> Path:
    """Create ``path`` if needed and make sure files can be written there; UsageError if not."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise usage(f"{out}: exists and is not a folder")
    from avatar.export import probe_writable

    try:
        probe_writable(out, "write-test")
    except OSError as err:
        raise usage(f"cannot write to the output folder {out}: {err.strerror or err}") from None
    return out
