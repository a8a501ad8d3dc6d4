"""Independent pieces of work on every core: worker processes for the compare step.

A compare is a few large pieces that share nothing but their inputs: one scorecard per model and
per baseline, then each model's plots and traversal pictures. Each piece is serial at heart
(numpy on 2,000-row matrices, small numba kernels, matplotlib, llvmpipe): threads inside one
scorecard kept the second of two cores busy less than a tenth of the time, while two pieces
side by side keep both busy. Each worker runs one thread of BLAS, OpenMP and numba, so the
results are the same bytes as in one process.

    results = run_tasks({"a": (fn, args), ...}, workers=2, then=lambda key, result: {...})
"""
from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Callable

ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
Tasks = dict  # {key: (function, args tuple)}; functions are module-level, arguments picklable


def run_tasks(tasks: Tasks, workers: int = 1, then: Callable[[object, object], Tasks] | None = None,
              meanwhile: Callable[[], None] | None = None, seconds: dict | None = None) -> dict:
    """Run ``tasks`` and return {key: result}.

    then : called in this process with (key, result) as each task ends; the tasks it returns
        join the queue (pictures of a model once its scorecard is in).
    meanwhile : work for this process while the workers run (called once, after the first tasks
        are queued).
    workers : processes (spawned, so OpenGL and thread pools start clean); 1 runs every task
        here, in queue order. A task's exception is raised here, the other tasks cancelled.
    seconds : filled with {key: (wall, CPU) seconds} of each task where it ran.
    """
    then = then or (lambda key, result: {})
    seconds = {} if seconds is None else seconds
    results: dict = {}

    def finish(key, timed):
        results[key], seconds[key] = timed
        return then(key, results[key])

    if workers <= 1:
        queue = list(tasks.items())
        if meanwhile:
            meanwhile()
        while queue:
            key, (fn, args) = queue.pop(0)
            queue += list(finish(key, _timed(fn, *args)).items())
        return results
    with _one_thread_env(), ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(_timed, fn, *args): key for key, (fn, args) in tasks.items()}
        try:
            if meanwhile:
                meanwhile()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    more = finish(pending.pop(future), future.result())
                    pending |= {pool.submit(_timed, fn, *args): k for k, (fn, args) in more.items()}
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return results


def _timed(fn, *args):
    """(fn(*args), (wall, CPU) seconds it took)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, (round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3))


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
