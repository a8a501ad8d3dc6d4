"""The ``avatar atlas`` command: a thin layer over :mod:`avatar.atlas`.

    avatar atlas -o reports/atlas/                                   # configs/atlas/default.yaml
    avatar atlas configs/atlas/default.yaml -o reports/atlas/ --n 500 --only macros,face-linear
"""
from __future__ import annotations

from avatar.cli.errors import usage


def register(sub, add) -> None:
    sp = add("atlas", cmd_atlas, "The latent atlas: generate every atlas dataset, fit its experiment (PCA, ICA, "
                                 "factor analysis, an autoencoder, a VAE) and compare it with the sliders; "
                                 "writes one report per experiment, index.html, atlas.md and atlas.json.")
    sp.add_argument("config", nargs="?", metavar="ATLAS.yaml", help="atlas config (default: configs/atlas/default.yaml)")
    sp.add_argument("-o", "--output", required=True, help="output folder (datasets, models and reports go inside)")
    sp.add_argument("--n", type=int, help="avatars per dataset (default: the config's n)")
    sp.add_argument("--only", help="comma-separated entry names (default: all)")
    sp.add_argument("--workers", type=int, help="dataset worker processes (default: the config's)")
    sp.add_argument("--no-renders", action="store_true", help="skip the traversal pictures (no OpenGL needed)")


def cmd_atlas(args) -> int:
    from avatar.atlas import load_atlas, run_atlas
    from avatar.cli.compare import check_output_dir

    if args.n is not None and args.n < 10:
        raise usage(f"--n must be at least 10, got {args.n}")
    if args.workers is not None and args.workers < 1:
        raise usage(f"--workers must be at least 1, got {args.workers}")
    cfg = load_atlas(args.config)             # ConfigError -> exit 2, nothing written
    only = [x.strip() for x in args.only.split(",") if x.strip()] if args.only else None
    names = [e["name"] for e in cfg.entries]
    for x in only or ():
        if x not in names:
            from avatar.spec.config import did_you_mean

            raise usage(f"--only: no atlas entry {x!r}{did_you_mean(x, names)}; entries: {', '.join(names)}")
    out = check_output_dir(args.output)
    try:
        run_atlas(cfg, out, n=args.n, only=only, workers=args.workers, renders=not args.no_renders)
    except ValueError as err:
        raise usage(str(err)) from None
    return 0
