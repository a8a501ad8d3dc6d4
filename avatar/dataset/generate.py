"""Generating a dataset: one task per shard, run locally in worker processes or on a Dask cluster.

A task computes rows ``k*shard .. (k+1)*shard - 1`` from the config alone
(sliders, then vertices, textures, renders), writes each output's whole
shard, hashes the files it wrote and writes the shard's checksum row last.
The parent only schedules tasks and counts: nothing per-avatar accumulates
in it, so memory stays bounded as N grows.

Determinism: the slider values of row i depend only on (config, i). The
arrays are computed in micro-batches of 32 rows aligned on absolute row
numbers, with BLAS on one thread, so a row's bytes do not depend on the
worker count, the task order, or (for shards that are multiples of 32) the
shard size. Renders come from OpenGL (Mesa llvmpipe) with one rasterizer thread
and a fresh context per shard: llvmpipe's output depends on its thread count, so
every worker uses one, and workers scale across cores as processes.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import NonFiniteError, check_finite
from ..threads import one_blas_thread
from . import store as st
from .config import DatasetConfig
from .store import DatasetError

MICRO = 32  # rows per aligned micro-batch
_CACHE: dict = {}  # per process: fingerprint -> (config, rig, sampler)


@dataclass
class Summary:
    avatars: int
    shards: int
    skipped: int
    seconds: float
    bytes_written: int
    bytes_total: int
    path: Path

    @property
    def rate(self) -> float:
        return self.avatars / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        mb = self.bytes_total / 1e6
        return (f"{self.path}: {self.avatars:,} avatars in {self.shards} shards ({self.skipped} already done) "
                f"in {self.seconds:.1f} s, {self.rate:,.1f} avatars/s; "
                f"{self.bytes_written / 1e6:,.1f} MB written, {mb:,.1f} MB in the store")


def _version() -> str:
    from .. import __version__

    return __version__


# -- the task (runs in a worker) -------------------------------------------------------
def _state(payload: dict):
    """(config, rig, sampler) for a payload, built once per process."""
    key = payload["fingerprint"]
    if key not in _CACHE:
        from avatar.body.rig import Rig
        from avatar.body.template import load as load_template
        from .samplers import Sampler, spec_from_text

        config = DatasetConfig.from_resolved(payload["config"], payload["rig_text"])
        spec = spec_from_text(payload["rig_text"], config.rig)
        rig = Rig(spec, load_template(spec.template))
        _CACHE.clear()
        _CACHE[key] = (config, rig, Sampler(config, spec))
    return _CACHE[key]


def compute_shard(payload: dict, k: int) -> dict[str, np.ndarray]:
    """Every output array of shard k (no I/O): name -> (rows, ...) array."""
    from .condition import apply_condition

    config, rig, sampler = _state(payload)
    a, b = config.shard_range(k)
    where = f"{payload['path']}: "
    try:  # measurement targets: the shard's rows solved together (one shard, one batch: deterministic)
        S = apply_condition(rig, config.condition, sampler.rows(a, b), config.seed, a)
    except ValueError as err:  # an unreachable target: say which rows and why, write nothing
        raise DatasetError(f"{where}shard {k} (avatars {a}-{b - 1}): {err}") from None
    return compute_outputs(rig, config.outputs, S, a, where)


def compute_outputs(rig, outputs: dict, S: np.ndarray, first: int = 0, where: str = "") -> dict[str, np.ndarray]:
    """The output arrays (a dataset config's ``outputs``) of avatars ``S`` (n, P), rows first.. of a store."""
    a, b = first, first + len(S)
    out = {"sliders": S, "sliders_normalized": rig.spec.normalize(S)}  # every slider has min < max
    o = outputs
    cuts = sorted({a, b, *range(-(-a // MICRO) * MICRO, b, MICRO)})
    pieces = list(zip(cuts[:-1], cuts[1:]))
    with one_blas_thread():
        if "vertices" in o:
            dt = np.dtype(o["vertices"]["dtype"])
            out["vertices"] = np.concatenate([rig.vertices(S[i - a:j - a]).astype(dt) for i, j in pieces])
            # never store a NaN or infinite mesh (an effect amount of 1e300; float16 overflow): refuse the shard
            check_finite(out["vertices"], f"{where}vertices of avatars {a}-{b - 1}")
        if "textures" in o:
            size = o["textures"]["size"]
            out["textures"] = np.concatenate([rig.textures(S[i - a:j - a], size) for i, j in pieces])
        if "renders" in o:
            out["renders"] = _renders(rig, S, a, pieces, o["renders"], out.get("vertices"), out.get("textures"))
        if "measurements" in o:  # of the rest shape, whatever the pose
            names = o["measurements"]["names"]
            M = [rig.measure(S[i - a:j - a], names=names) for i, j in pieces]
            out["measurements"] = np.concatenate([np.stack([m[k] for k in names], axis=1) for m in M])
            check_finite(out["measurements"], f"{where}measurements of avatars {a}-{b - 1}")
    return out


def _renders(rig, S, a: int, pieces, r: dict, V, T) -> np.ndarray:
    """The shard's renders, drawing the vertices and textures already computed where they fit."""
    from avatar.rendering.core import default_texture_size, render, reset

    # one llvmpipe thread per worker (local or Dask), set before the shard's fresh GL context:
    # workers scale over cores as processes instead of fighting over them with rasteriser threads
    os.environ["LP_NUM_THREADS"] = "1"
    reset()  # a fresh GL context per shard keeps a long-lived worker's memory flat
    reuse_t = T is not None and T.shape[1] == default_texture_size(r["size"], r["size"])
    reuse_v = V is not None and V.dtype == np.float32
    return np.concatenate([
        render(rig, S[i - a:j - a], views=r["views"], size=r["size"],
               vertices=V[i - a:j - a] if reuse_v else None, texture_maps=T[i - a:j - a] if reuse_t else None)
        for i, j in pieces])


def write_shard(payload: dict, k: int, _fail_after: str | None = None) -> dict:
    """Compute and write shard k whole, then record its checksums. Returns {shard, rows, bytes}.

    ``_fail_after`` (tests): raise right after writing that output, as a crash mid-shard would.
    """
    import zarr

    path = Path(payload["path"])
    config, _, _ = _state(payload)
    a, b = config.shard_range(k)
    names = payload["outputs"]
    data = compute_shard(payload, k)
    g = zarr.open_group(str(path), mode="r+")
    digests = np.zeros((len(names), 32), np.uint8)
    nbytes = 0
    for j, name in enumerate(names):
        arr = g[name]
        f = st.shard_file(path, name, k, arr.ndim)
        f.unlink(missing_ok=True)  # a whole-shard write: never read (or trust) what a crash left
        arr[a:b] = data[name]
        raw = f.read_bytes()
        digests[j] = np.frombuffer(hashlib.sha256(raw).digest(), np.uint8)
        nbytes += len(raw)
        if _fail_after == name:
            raise RuntimeError(f"injected failure after writing {name} of shard {k}")
    g[st.CHECKSUM][k:k + 1] = digests[None]
    return {"shard": k, "rows": b - a, "bytes": nbytes}


def _init_worker() -> None:
    import signal

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Ctrl-C reaches the whole process group: the parent alone handles it (stops the workers, prints
    # one line). A worker that took it too would print its own traceback and could hang the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def resolve_store(store) -> Path:
    """The store path with symlinks followed; DatasetError for a loop or a link that leads nowhere usable.

    Every later step (the lock, --overwrite's removal, the rename into place) then works on the real
    folder, never on the link itself."""
    path = Path(store).expanduser().absolute()
    try:
        real = Path(os.path.realpath(path, strict=True))  # it exists: follow every link
    except FileNotFoundError:
        real = Path(os.path.realpath(path))  # not there yet (or a dangling link): where it will be made
    except OSError as err:
        if err.errno != errno.ELOOP:  # e.g. a parent that is a file: the writability check says so
            return Path(os.path.realpath(path))
        raise DatasetError(f"{path}: the store path is a symlink loop ({err.strerror or err}); "
                           "choose another store path") from None
    return real


# -- orchestration (the parent) ----------------------------------------------------------
def prepare(config: DatasetConfig, overwrite: bool = False, rig=None, workers: int = 1) -> tuple[Path, object, dict]:
    """Check the target, create or reopen the store; (path, rig, attrs). Raises DatasetError."""
    from avatar.body.rig import Rig
    from avatar.body.template import load as load_template
    from .samplers import spec_from_text

    version = _version()
    path = resolve_store(config.store)
    if rig is None:
        spec = spec_from_text(config.rig_text, config.rig)
        rig = Rig(spec, load_template(spec.template))
    attrs = st.read_attrs(path) if path.exists() else None
    fingerprint = config.fingerprint(version)
    if path.exists() and not path.is_dir():
        raise DatasetError(f"{path}: exists and is not a directory; choose another store path")
    if attrs is None and path.exists() and any(path.iterdir()):
        raise DatasetError(f"{path}: exists and is not an avatar dataset; refusing to write into it "
                           "(choose another store path, or remove it yourself)")
    damaged = st.check_metadata(path, attrs) if attrs is not None else []
    if attrs is not None and (damaged or attrs.get("fingerprint") != fingerprint):
        if not overwrite:
            if damaged:  # a resume would trust n_shards, outputs and dtypes that no longer hold
                raise DatasetError(f"{path}: damaged store metadata: {damaged[0]}; use --overwrite to "
                                   "regenerate it, or choose another store path")
            raise DatasetError(f"{path}: holds a dataset made from a different config "
                               f"({_differences(attrs, config, version)}); use --overwrite to replace it, "
                               "or choose another store path")
        try:
            shutil.rmtree(path)
        except OSError as err:
            raise DatasetError(f"{path}: --overwrite cannot remove the old store "
                               f"({err.strerror or err}: {err.filename or path})") from None
        attrs = None
    if "renders" in config.outputs:
        from avatar.rendering.core import choose_backend

        choose_backend()  # RenderBackendError (exit 2) now, before anything is written; probes in a subprocess
    _check_writable(path)
    for stale in path.parent.glob(f".{path.name}.creating-*"):  # a creation killed before its rename
        shutil.rmtree(stale, ignore_errors=True)
    todo = config.n if attrs is None else int((~st.completed(path, config.n_shards, len(attrs["outputs"]))).sum()) * config.shard
    _check_space(path, st.estimate_bytes(config.resolved(), rig.n_vertices, len(rig.sliders), min(todo, config.n)))
    _check_memory(path, config, rig, workers)
    if attrs is None:
        st.create(path, config, rig, version)
        attrs = st.read_attrs(path)
    else:
        st.clean_partials(path)
    return path, rig, attrs


def _os_message(path: Path, err: OSError) -> str:
    where = err.filename or path
    return f"{path}: cannot write {where} ({err.strerror or err})"


def _differences(attrs: dict, config: DatasetConfig, version: str) -> str:
    old, new = attrs.get("config", {}), config.resolved()
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if attrs.get("version") != version:
        keys.append(f"avatar version {attrs.get('version')} -> {version}")
    return "differs in " + ", ".join(keys) if keys else "different fingerprint"


def _check_writable(path: Path) -> None:
    from ..export import probe_writable

    try:
        probe_writable(path.parent, f"{path.name}.probe")
    except OSError as err:
        raise DatasetError(f"{path}: cannot write there ({err.strerror or err})") from None


def _check_memory(path: Path, config: DatasetConfig, rig, workers: int) -> None:
    """Refuse, with the numbers, shards too big for the workers' memory (each holds one shard's arrays,
    and zarr's encoded copy of them, while it writes)."""
    from ..checks import available_memory, gib

    rows = min(config.shard, config.n)
    per_row = sum(int(np.prod(shape)) * np.dtype(dtype).itemsize
                  for shape, dtype, _ in st.shapes(config.resolved(), rig.n_vertices, len(rig.sliders)).values())
    per_row += rig.n_vertices * 3 * 8 if "vertices" in config.outputs else 0  # the float64 vertices before the cast
    need = 2 * rows * per_row * max(1, workers)
    have = available_memory()
    if need > have:
        raise DatasetError(f"{path}: {max(1, workers)} worker(s) writing shards of {rows:,} avatars need about "
                           f"{gib(need)} of memory, {gib(have)} are available; lower `shard:` or --workers")


def _check_space(path: Path, needed: int) -> None:
    free = shutil.disk_usage(path.parent).free
    if needed > free:
        raise DatasetError(f"{path}: not enough free disk space: the dataset needs about {needed / 1e9:,.2f} GB, "
                           f"{free / 1e9:,.2f} GB are free (reduce n or the outputs, or write elsewhere)")


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def generate(config: DatasetConfig, workers: int | None = None, scheduler: str | None = None,
             overwrite: bool = False, progress: bool = True, rig=None) -> Summary:
    """Generate (or resume) the dataset ``config`` describes; see the module docstring.

    workers : local worker processes (default: one per core); 1 runs in this
        process unless renders are asked for. scheduler : a Dask scheduler
        address (``tcp://host:8786``); workers must see the store path.
    """
    from .lock import store_lock

    with store_lock(resolve_store(config.store)):  # one writer per store: a second run is refused (exit 2)
        return _generate(config, workers, scheduler, overwrite, progress, rig)


def _generate(config, workers, scheduler, overwrite, progress, rig) -> Summary:
    t0 = time.perf_counter()
    try:
        local = 1 if scheduler else (workers or os.cpu_count() or 1)  # Dask workers hold their own memory
        path, rig, attrs = prepare(config, overwrite, rig, workers=local)
    except OSError as err:
        raise DatasetError(_os_message(Path(config.store), err)) from None
    payload = {"path": str(path.resolve()), "config": config.resolved(), "rig_text": config.rig_text,
               "fingerprint": attrs["fingerprint"], "outputs": attrs["outputs"]}
    done = st.completed(path, config.n_shards, len(attrs["outputs"]))
    todo = [int(k) for k in np.flatnonzero(~done)]
    rows_done = sum(b - a for a, b in map(config.shard_range, np.flatnonzero(done)))
    bar = _bar(config.n, rows_done, path.name, progress)
    written = 0
    results = ()
    try:
        if scheduler:
            results = _run_dask(payload, todo, scheduler)
        elif (workers or os.cpu_count() or 1) == 1 and "renders" not in config.outputs:
            from .samplers import Sampler

            _CACHE.clear()  # one rig per process, as _state keeps it
            _CACHE[payload["fingerprint"]] = (config, rig, Sampler(config, rig.spec))
            results = (write_shard(payload, k) for k in todo)
        else:
            results = _run_pool(payload, todo, workers or os.cpu_count() or 1)
        for r in results:
            written += r["bytes"]
            bar.update(r["rows"])
    except OSError as err:  # disk full (ENOSPC), a folder gone read-only: completed shards stay valid
        raise DatasetError(_os_message(path, err) + "; completed shards are kept: fix it and rerun the same "
                           "command to resume") from None
    except NonFiniteError as err:
        raise DatasetError(f"{err}") from None
    finally:
        if hasattr(results, "close"):  # Ctrl-C or an error between results: stop the workers now
            results.close()
        bar.close()
    return Summary(config.n - rows_done, len(todo), config.n_shards - len(todo), time.perf_counter() - t0,
                   written, _du(path), path)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _bar(total: int, initial: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="avatar", dynamic_ncols=True,
                file=sys.stderr, smoothing=0.1)


def _run_pool(payload: dict, todo: list[int], workers: int):
    """Local worker processes (spawned: no inherited threads or OpenGL state); a bounded window of tasks."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({k: "1" for k in env})  # spawned children read these before importing numpy
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    clean = False
    try:
        pending, queue = set(), list(reversed(todo))
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                with _sigint_ignored():  # a child spawned now starts with Ctrl-C ignored (no import traceback)
                    pending.add(pool.submit(write_shard, payload, queue.pop()))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    raise DatasetError("a worker process died (killed or out of memory); rerun the same "
                                       "command to resume from the completed shards") from None
        clean = True
    finally:
        # an error or Ctrl-C: stop the workers now instead of waiting for their shards (a killed shard
        # is rewritten whole on resume; its checksum row, written last, was never written)
        if clean:
            pool.shutdown(wait=True)
        else:
            _stop_pool(pool)
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _sigint_ignored:
    """Ignore SIGINT for the block (main thread only): children spawned in it inherit SIG_IGN through
    exec, and Python then installs no KeyboardInterrupt handler in them."""

    def __enter__(self):
        import signal
        import threading

        self.active = threading.current_thread() is threading.main_thread()
        if self.active:
            self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc):
        import signal

        if self.active:  # a handler installed outside Python reads as None: the default is the nearest
            signal.signal(signal.SIGINT, signal.SIG_DFL if self.old is None else self.old)


def _stop_pool(pool) -> None:
    """Terminate a process pool's workers and return promptly (never wait on a busy worker).

    The pool's manager thread is joined too, once its workers are gone: left running, it races
    concurrent.futures' exit hook, which writes to the wakeup pipe the thread may be closing, with no
    lock until CPython 3.12: a traceback after the interrupted run's one line.
    """
    procs = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown() drops the reference
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        try:
            proc.terminate()
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 5.0
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
    if manager is not None:  # it sees the dead workers, marks the pool broken and closes its pipes
        manager.join(max(1.0, deadline - time.monotonic()))


def _run_dask(payload: dict, todo: list[int], address: str):
    """An existing Dask cluster: one task per shard, a bounded window in flight."""
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError) as err:
        raise DatasetError(f"cannot reach the Dask scheduler at {address}: {err}") from None
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
        window = 4 * n_workers
        queue = list(reversed(todo))
        fp = payload["fingerprint"][:12]

        def submit(k):
            return client.submit(write_shard, payload, k, key=f"avatar-shard-{fp}-{k}", pure=False, retries=2)

        futures = as_completed([submit(queue.pop()) for _ in range(min(window, len(queue)))])
        for fut in futures:
            yield fut.result()
            fut.release()
            if queue:
                futures.add(submit(queue.pop()))
    finally:
        client.close()
