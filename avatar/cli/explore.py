"""The ``avatar explore`` command: serve the explorer page.

    avatar explore --model models/faces-pca.npz     # serves on http://127.0.0.1:8080
    avatar explore --port 9000                      # no model: a quick PCA, fitted once and cached
    avatar explore --preset-dir presets             # the page may save presets there (only there)

:func:`register` adds it to the main parser (``avatar/cli.py``).
"""
from __future__ import annotations

from avatar.cli.errors import UsageError, usage

import ipaddress
from pathlib import Path

LOOPBACK = "127.0.0.1"


def register(sub, add) -> None:
    """Add the ``explore`` subcommand; ``add(name, func, help_)`` makes a subparser with ``--rig``."""
    sp = add("explore", cmd_explore, "Serve a web page where designer sliders and a learned latent's "
                                     "sliders move the same avatar.")
    sp.add_argument("--model", help="latent model file (.npz from `avatar fit` or avatar.latent.save); "
                                    "default: a quick PCA of random avatars, fitted at start-up and cached")
    sp.add_argument("--model-name", help="which model of a file holding several (default: the first)")
    sp.add_argument("--n-components", type=int, default=16, help="components of the quick PCA (default 16)")
    sp.add_argument("--n-avatars", type=int, default=1000, help="random avatars the quick PCA is fitted on")
    sp.add_argument("--port", type=int, default=8080, help="port (default 8080; the next free one if taken)")
    sp.add_argument("--host", default=LOOPBACK, help="address to bind (default 127.0.0.1, this machine only; "
                                                     "0.0.0.0 exposes the page to the network)")
    sp.add_argument("--preset-dir", help="the one directory the page may save presets to (default: none, "
                                         "saving on the server is off; 'Download preset YAML' still works)")
    sp.add_argument("--cache-dir", help="where the quick model is cached (default: ~/.cache/avatar/explorer)")
    sp.add_argument("--texture-size", type=int, default=512, help="pixels of the texture shown (default 512)")


def check_args(args) -> None:
    """UsageError for values no page should start with."""

    if not 1 <= args.port <= 65535:
        raise UsageError(f"--port must be 1 to 65535, got {args.port}")
    if args.n_components < 1 or args.n_avatars <= args.n_components:
        raise UsageError("--n-components must be >= 1 and --n-avatars larger than it")
    if not 64 <= args.texture_size <= 2048:
        raise UsageError(f"--texture-size must be 64 to 2048, got {args.texture_size}")
    try:
        ipaddress.ip_address(args.host)
    except ValueError:
        if args.host != "localhost":
            raise UsageError(f"--host must be an IP address (127.0.0.1, 0.0.0.0, ...), got {args.host!r}") from None
    if args.model is not None and not Path(args.model).is_file():
        raise UsageError(f"{args.model}: no such model file")
    if args.preset_dir is not None and Path(args.preset_dir).exists() and not Path(args.preset_dir).is_dir():
        raise UsageError(f"--preset-dir {args.preset_dir} is not a directory")


def make_explorer(args, log=print):
    """Build the state and start serving; returns the running :class:`avatar.explorer.Explorer`."""
    from avatar.explorer import Explorer, build_state
    from avatar.body.rig import load_rig

    check_args(args)
    if args.preset_dir is not None:
        Path(args.preset_dir).mkdir(parents=True, exist_ok=True)
    rig = load_rig(args.rig)
    if args.model is None:  # the quick PCA holds its avatars' vertices (float64) and the fit's copies
        from avatar.checks import available_memory, gib

        need, have = 3 * args.n_avatars * rig.n_vertices * 3 * 8, available_memory()
        if need > have:
            raise UsageError(f"--n-avatars {args.n_avatars:,}: the quick PCA needs about {gib(need)} of memory, "
                             f"{gib(have)} are available; ask for fewer avatars")
    try:
        state = build_state(rig, model_path=args.model, model_name=args.model_name,
                            n_components=args.n_components, n_avatars=args.n_avatars, cache_dir=args.cache_dir,
                            preset_dir=args.preset_dir, texture_size=args.texture_size, log=log)
    except (ValueError, KeyError) as err:  # a model file that cannot be used (LatentFileError is a ValueError)
        msg = str(err).strip("'\"")
        raise UsageError(msg if args.model is None or str(args.model) in msg else f"{args.model}: {msg}") from None
    host = LOOPBACK if args.host == "localhost" else args.host
    if host not in (LOOPBACK, "::1"):
        log(f"avatar explore: warning: bound to {host}; anyone who can reach this machine can use the page")
    return Explorer(state, host=host, port=args.port, title=f"({rig.spec.name})")


def cmd_explore(args) -> int:
    from avatar.explorer import serve

    explorer = make_explorer(args)
    print(f"avatar explore: serving on {explorer.url}  (Ctrl-C to stop)", flush=True)
    serve(explorer)
    return 0
