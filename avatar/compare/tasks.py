"""Independent pieces of work on every core: worker processes for the compare step.

A compare is a few large pieces that share nothing but their inputs: one scorecard per model and
per baseline, then each model's plots and traversal pictures. Each piece is serial at heart
(numpy on 2,000-row matrices, small numba kernels, matplotlib, llvmpipe): threads inside one
scorecard kept the second of two cores busy less than a tenth of the time, while two pieces
side by side keep both busy. Each worker runs one thread of BLAS, OpenMP and numba, so the
results are the same bytes as in one process.

    with worker_pool(2) as pool:
        results = run_tasks({"a": (fn, args), ...}, pool, then=lambda key, result: {...})
"""
from __future__ import annotations

import heapq
import itertools
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
Tasks = dict  # {key: (function, args tuple)}; functions are module-level, arguments picklable
_SHARED: list = [None]   # the folder this process's tasks share results through, or None


def share_in(folder) -> None:
    """Let this process's tasks share what several of them make (a decomposition, a slider's
    strip) through ``folder``, a folder that lives as long as the compare (None: stop sharing).
    A compare's worker processes call it as they start."""
    _SHARED[0] = None if folder is None else Path(folder)


def shared_folder() -> Path | None:
    """The folder of :func:`share_in`, or None (one process: tasks share through memory)."""
    return _SHARED[0]


def write_shared(path: Path, write: Callable[[Path], None]) -> None:
    """Make ``path`` (a file or a folder) by ``write(temporary path)``, then rename it into place, so
    that a reader sees all of it or nothing; when another process got there first, keep theirs
    (processes that make the same thing make the same bytes)."""
    import shutil

    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write(tmp)
    try:
        os.rename(tmp, path)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


@contextmanager
def worker_pool(workers: int, initializer: Callable[[], None] | None = None):
    """``workers`` spawned worker processes (spawned, so OpenGL and thread pools start clean), one
    thread of BLAS, OpenMP and numba each; None for one worker (every task then runs here).

    initializer : called in each worker as it starts (picklable).
    """
    if workers <= 1:
        yield None
        return
    with _one_thread_env(), ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                  initializer=initializer) as pool:
        pool.n_workers = workers   # run_tasks keeps this many tasks in flight
        yield pool


def run_tasks(tasks: Tasks, pool: ProcessPoolExecutor | None = None,
              then: Callable[[object, object], Tasks] | None = None, seconds: dict | None = None,
              priority: Callable[[object], float] | None = None) -> dict:
    """Run ``tasks`` on ``pool`` (:func:`worker_pool`; None: here) and return {key: result}. A task's
    exception is raised here, the other tasks cancelled.

    then : called in this process with (key, result) as each task ends; the tasks it returns
        join the queue (pictures of a model once its scorecard is in).
    priority : a task's rank (lower first; default 0); equal ranks go in the order they were
        queued. A task goes to a worker only when one is free, so a task queued later with a lower
        rank still overtakes: long tasks first and short ones last pack the workers best.
    seconds : filled with {key: (wall, CPU, start, end)} of each task where it ran: its wall and
        CPU seconds, and when it started and ended, in seconds from this call's start (the
        timeline shows the workers' idle time).
    """
    then = then or (lambda key, result: {})
    rank = priority or (lambda key: 0)
    seconds = {} if seconds is None else seconds
    results: dict = {}
    t0 = time.time()   # wall clock: comparable across processes
    queue: list = []
    order = itertools.count()

    def add(more: Tasks):
        for key, (fn, args) in more.items():
            heapq.heappush(queue, (rank(key), next(order), key, fn, args))

    def finish(key, timed):
        results[key], (wall, cpu, start, end) = timed
        seconds[key] = (wall, cpu, round(start - t0, 3), round(end - t0, 3))
        add(then(key, results[key]))

    add(tasks)
    if pool is None:
        while queue:
            _, _, key, fn, args = heapq.heappop(queue)
            finish(key, _timed(fn, *args))
        return results
    running: dict = {}
    try:
        while queue or running:
            while queue and len(running) < pool.n_workers:
                _, _, key, fn, args = heapq.heappop(queue)
                running[pool.submit(_timed, fn, *args)] = key
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                finish(running.pop(future), future.result())
    except BaseException:
        for future in running:
            future.cancel()
        raise
    return results


def _timed(fn, *args):
    """(fn(*args), (wall, CPU seconds it took, wall-clock start, end))."""
    start, wall, cpu = time.time(), time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, (round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3), start, time.time())


@contextmanager
def _one_thread_env():
    """One thread per library in the workers started inside (they read these at import)."""
    saved = {k: os.environ.get(k) for k in ONE_THREAD}
    os.environ.update({k: "1" for k in ONE_THREAD})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
