"""Benchmark: PCA with 64 components over 10,000 avatars' vertices, in memory and streamed; the torch models.

1. In memory: rig.vertices of n sampled avatars (n x 74,976 float32), then
   avatar.latent.PCA(64) (randomized solver). Aim: under 30 s.
2. Streamed: avatar.latent.IncrementalPCA(64, batch_size) fed from a dataset
   store (vertices only) through the feature transform, never holding more than
   one batch. Aim: peak RSS below 2 GB.

Each part runs in its own process, so each peak RSS (ru_maxrss) is its own.
The store is generated first (vertices only, in a temporary folder unless
--store names an existing one or --keep a folder to keep it in). Prints
seconds (wall and CPU: these machines are shared, and CPU seconds show the
work when the wall clock is stretched by other jobs), peak RSS, and how far the
streamed basis is from the in-memory one (explained variance of both).

    python benchmarks/bench_latent.py [--n 10000] [--components 64] [--batch 512] [--store DIR.zarr] [--keep DIR]
                                      [--blas-threads 1]

``--nets`` runs the PyTorch figures instead (each part in its own process too):

3. The autoencoder: the torch Autoencoder against the scikit-learn
   MLPRegressor it replaced (the old code's settings: tanh, Adam, the same
   widths, batch and learning rate, a fixed number of epochs, no early
   stopping), both on the same PCA inputs of ``--ae-n`` avatars' vertices;
   seconds per epoch and the held-out reconstruction error of each.
4. The conv VAE: seconds per epoch of ConvVAE (the 64x64 network, 10 codes,
   batch 64) on ``--conv-n`` synthetic 64x64 images (a disc of varying
   position and size), with ``--torch-threads`` CPU threads (each count in its
   own process); then the numpy encode and decode speed of the fitted model.

``--quick`` shrinks both (500 avatars, 1,000 images, 1 epoch) to check that it runs.

    python benchmarks/bench_latent.py --nets [--quick] [--conv-n 10000] [--conv-epochs 2] [--torch-threads 1,2]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


_THREADS: list[str] = []


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_memory(n: int, k: int) -> dict:
    import numpy as np

    import avatar
    import avatar.latent as L

    rig = avatar.load_rig()
    t = time.perf_counter()
    V = rig.vertices(rig.sample(n, seed=0))
    make = time.perf_counter() - t
    X = V.reshape(n, -1)
    del V
    rss_data = _peak_mb()
    t, c = time.perf_counter(), time.process_time()
    m = L.PCA(n_components=k, random_state=0).fit(X)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"make_s": make, "fit_s": wall, "fit_cpu_s": cpu, "peak_mb": _peak_mb(),
            "data_mb": X.nbytes / 2**20, "rss_after_data_mb": rss_data,
            "explained": float(np.sum(m.explained_variance_ratio_)),
            "ev": [float(x) for x in m.explained_variance_[:5]]}


def part_stream(store: str, k: int, batch: int) -> dict:
    import numpy as np

    import avatar.dataset as dataset
    import avatar.latent as L
    from avatar.latent.features import FeatureTransform, iter_features

    ds = dataset.open(store)
    rows = np.arange(len(ds))
    t, c = time.perf_counter(), time.process_time()
    ft = FeatureTransform(["vertices"]).fit_store(ds, rows, batch)     # pass 1: the mean shape
    t_ft = time.perf_counter() - t
    m = L.IncrementalPCA(n_components=k, batch_size=batch)
    m.fit_batches(B for _, B in iter_features(ds, ft, rows, batch))      # pass 2: the basis
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"features_s": t_ft, "fit_s": wall, "fit_cpu_s": cpu, "peak_mb": _peak_mb(),
            "explained": float(np.sum(m.explained_variance_ratio_)),
            "ev": [float(x) for x in m.explained_variance_[:5]]}


def part_ae(n: int, k: int, epochs: int) -> dict:
    """Seconds per epoch and held-out errors of the torch autoencoder and of scikit-learn's MLPRegressor."""
    import warnings

    import numpy as np
    import torch  # imported before the clock starts, like the torch._dynamo modules its first
    torch.use_deterministic_algorithms(False)   # use_deterministic_algorithms loads (seconds, once)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    from threadpoolctl import threadpool_limits

    import avatar
    import avatar.latent as L

    rig = avatar.load_rig()
    X = rig.vertices(rig.sample(n + n // 4, seed=0), posed=False).reshape(n + n // 4, -1)
    train, test = X[:n], X[n:]
    hidden, r = [512, 128], 256
    t = time.perf_counter()
    basis = L.PCA(r, random_state=0).fit(train)
    pca_s = time.perf_counter() - t
    ae = L.Autoencoder(k, hidden=tuple(hidden), epochs=epochs, batch_size=64, learning_rate=1e-3, alpha=1e-4,
                       input_components=r, patience=epochs, validation_fraction=0.0, random_state=0)
    t = time.perf_counter()
    ae.fit(train, basis=basis)
    torch_s = time.perf_counter() - t
    scale = np.sqrt(basis.explained_variance_[0])
    U = basis.transform(train) / scale
    sk_s = {}
    for label, limit in (("default", None), ("1", 1)):   # as the old code ran (BLAS's threads), and on one
        net = MLPRegressor(hidden_layer_sizes=hidden + [k] + hidden[::-1], activation="tanh", solver="adam",
                           max_iter=epochs, batch_size=64, learning_rate_init=1e-3, alpha=1e-4, tol=0.0,
                           n_iter_no_change=epochs + 1, shuffle=True, random_state=0)
        t = time.perf_counter()
        with warnings.catch_warnings(), threadpool_limits(limit, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            net.fit(U, U)
        sk_s[label] = time.perf_counter() - t
    sk_err = float(np.mean((basis.inverse_transform(net.predict(basis.transform(test) / scale) * scale) - test) ** 2))
    return {"n": n, "k": k, "epochs": epochs, "pca_s": pca_s, "torch_s": torch_s, "sklearn_s": sk_s,
            "torch_epoch_s": float(np.median(ae.epoch_seconds_)), "torch_err": ae.score_error(test),
            "sklearn_err": sk_err, "pca_k_err": L.PCA(k, random_state=0).fit(train).score_error(test)}


def _discs(n: int, side: int):
    """(n, side * side * 3) float32 centred pixels of a soft disc at a random x position and radius."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = np.empty((n, side, side, 3), np.float32)
    yy, xx = np.mgrid[:side, :side] + 0.5
    for i in range(0, n, 1000):   # in blocks: a (1000, 64, 64) distance array at a time
        m = min(1000, n - i)
        cx, rad = rng.uniform(0.3, 0.7, m) * side, rng.uniform(0.12, 0.28, m) * side
        d = np.hypot(xx[None] - cx[:, None, None], yy[None] - side / 2)
        out[i:i + m] = np.clip((rad[:, None, None] - d) / 1.5 + 0.5, 0, 1)[..., None]
    X = out.reshape(n, -1)
    return X - X.mean(axis=0)


def part_conv(n: int, epochs: int, threads: int) -> dict:
    import numpy as np
    import torch

    import avatar.latent as L

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(False)   # its first call imports seconds of modules: not the epochs' time
    X = _discs(n, 64)
    m = L.ConvVAE(10, epochs=epochs, patience=epochs, validation_fraction=0.0, device="cpu", random_state=0)
    t = time.perf_counter()
    m.fit(X)
    fit_s = time.perf_counter() - t
    rows = X[:min(n, 1000)]
    t = time.perf_counter()
    Z = m.transform(rows)
    enc_s = time.perf_counter() - t
    t = time.perf_counter()
    m.inverse_transform(Z)
    dec_s = time.perf_counter() - t
    return {"n": n, "threads": threads, "epochs": m.n_epochs_, "epoch_s": [float(x) for x in m.epoch_seconds_],
            "fit_s": fit_s, "encode_per_s": len(rows) / enc_s, "decode_per_s": len(rows) / dec_s}


def main_nets(args) -> None:
    import avatar

    quick = args.quick
    ae_n, conv_n = (500, 1000) if quick else (args.ae_n, args.conv_n)
    ae_epochs, conv_epochs = (1, 1) if quick else (args.ae_epochs, args.conv_epochs)
    print(f"avatar {avatar.__version__}: the PyTorch latent models{' (--quick)' if quick else ''}")
    ae = _child("--part", "ae", "--ae-n", str(ae_n), "--ae-epochs", str(ae_epochs))
    print(f"  autoencoder, {ae['n']:,} avatars' vertices, k = {ae['k']}, hidden [512, 128], {ae['epochs']} epochs "
          f"(PCA-256 inputs: {ae['pca_s']:.1f} s, shared):")
    print(f"    torch (1 thread)        : {ae['torch_s']:6.1f} s fit ({ae['torch_epoch_s']:.2f} s/epoch), held-out MSE "
          f"{ae['torch_err']:.3e} m^2")
    sk = ae["sklearn_s"]
    print(f"    sklearn (BLAS's threads): {sk['default']:6.1f} s fit ({sk['default'] / ae['epochs']:.2f} s/epoch); "
          f"on 1 BLAS thread {sk['1']:.1f} s ({sk['1'] / ae['epochs']:.2f} s/epoch); held-out MSE "
          f"{ae['sklearn_err']:.3e} m^2   (PCA-{ae['k']}: {ae['pca_k_err']:.3e})")
    for threads in [int(t) for t in args.torch_threads.split(",")]:
        cv = _child("--part", "conv", "--conv-n", str(conv_n), "--conv-epochs", str(conv_epochs),
                    "--torch-threads", str(threads))
        per = cv["epoch_s"]
        print(f"  conv VAE, {cv['n']:,} 64x64 images, 10 codes, batch 64, {threads} torch thread(s): "
              f"{', '.join(f'{x:.1f}' for x in per)} s per epoch ({cv['n'] / min(per):.0f} images/s); numpy "
              f"encode {cv['encode_per_s']:.0f} images/s, decode {cv['decode_per_s']:.0f} images/s")


def _child(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, *args, *_THREADS], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"benchmark part {args[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--batch", type=int, default=512, help="IncrementalPCA batch size (rows)")
    ap.add_argument("--store", help="an existing dataset store with vertices (default: generate one)")
    ap.add_argument("--keep", help="generate the store under this folder and keep it")
    ap.add_argument("--workers", type=int, default=2, help="processes generating the store")
    ap.add_argument("--blas-threads", type=int, help="limit BLAS threads (threadpoolctl; default: the library's)")
    ap.add_argument("--nets", action="store_true", help="the PyTorch models instead of PCA (see the docstring)")
    ap.add_argument("--quick", action="store_true", help="with --nets: small sizes, 1 epoch")
    ap.add_argument("--ae-n", type=int, default=2000, help="avatars for the autoencoder figures")
    ap.add_argument("--ae-epochs", type=int, default=10)
    ap.add_argument("--conv-n", type=int, default=10_000, help="64x64 images for the conv VAE figures")
    ap.add_argument("--conv-epochs", type=int, default=2)
    ap.add_argument("--torch-threads", default="1,2", help="torch CPU threads for the conv VAE, comma-separated")
    ap.add_argument("--part", choices=("memory", "stream", "ae", "conv"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    if args.part == "memory":
        print(json.dumps(part_memory(args.n, args.components)))
        return
    if args.part == "stream":
        print(json.dumps(part_stream(args.store, args.components, args.batch)))
        return
    if args.part == "ae":
        print(json.dumps(part_ae(args.ae_n, 16, args.ae_epochs)))
        return
    if args.part == "conv":
        print(json.dumps(part_conv(args.conv_n, args.conv_epochs, int(args.torch_threads))))
        return
    if args.nets:
        if args.blas_threads:
            _THREADS.extend(["--blas-threads", str(args.blas_threads)])
        main_nets(args)
        return

    import avatar

    if args.blas_threads:
        _THREADS.extend(["--blas-threads", str(args.blas_threads)])
    n, k = args.n, args.components
    print(f"avatar {avatar.__version__}: PCA with {k} components over {n:,} avatars' vertices (74,976 floats each)")
    mem = _child("--part", "memory", "--n", str(n), "--components", str(k))
    print(f"  in memory   : fit {mem['fit_s']:6.1f} s wall, {mem['fit_cpu_s']:6.1f} s CPU (aim < 30 s); "
          f"peak RSS {mem['peak_mb'] / 1024:.2f} GiB with the {mem['data_mb'] / 1024:.2f} GiB matrix "
          f"(+{(mem['peak_mb'] - mem['rss_after_data_mb']) / 1024:.2f} GiB for the fit); making the vertices took "
          f"{mem['make_s']:.1f} s")

    root = None
    store = args.store
    try:
        if store is None:
            root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_latent_"))
            root.mkdir(parents=True, exist_ok=True)
            store = str(root / f"vertices-{n}.zarr")
            from avatar.dataset import config_from_text, generate

            text = (f"n: {n}\nseed: 0\nsampler: prior\nvary: ['*']\noutputs: {{vertices: {{dtype: float32}}}}\n"
                    f"store: {store}\nshard: 512\n")
            t = time.perf_counter()
            generate(config_from_text(text, "<bench>"), workers=args.workers, progress=sys.stderr.isatty())
            print(f"  (generated the store {store} in {time.perf_counter() - t:.1f} s)")
        st = _child("--part", "stream", "--store", store, "--components", str(k), "--batch", str(args.batch))
        print(f"  streamed    : fit {st['fit_s']:6.1f} s wall, {st['fit_cpu_s']:6.1f} s CPU (two passes over the "
              f"store; the mean shape took {st['features_s']:.1f} s); peak RSS {st['peak_mb'] / 1024:.2f} GiB "
              f"(aim < 2 GB), batch {args.batch}")
        print(f"  explained variance of {k} components: in memory {mem['explained']:.6f}, "
              f"streamed {st['explained']:.6f}")
        print(f"  leading variances (m^2): memory {', '.join(f'{x:.3g}' for x in mem['ev'][:3])}; "
              f"streamed {', '.join(f'{x:.3g}' for x in st['ev'][:3])}")
    finally:
        if root is not None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
