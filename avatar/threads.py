"""Thread limits shared by the rig's callers (dataset generation, rendering)."""
from __future__ import annotations

from contextlib import nullcontext

_controller: list = []  # [ThreadpoolController or None], built on first use (inspecting the libraries is slow)


def one_blas_thread():
    """A context manager running BLAS on one thread (``with one_blas_thread(): ...``).

    The rig's block products are small: waking idle BLAS threads for each one
    costs more (on a loaded machine 100 ms per chunk) than the whole product on
    one thread, and one thread also keeps a row's bytes independent of the
    machine's core count. Without threadpoolctl (or if it cannot inspect the
    loaded libraries) BLAS is left alone.
    """
    if not _controller:
        try:
            from threadpoolctl import ThreadpoolController

            _controller.append(ThreadpoolController())
        except Exception:  # noqa: BLE001 - threadpoolctl missing or unable to inspect: leave BLAS alone
            _controller.append(None)
    ctl = _controller[0]
    return nullcontext() if ctl is None else ctl.limit(limits=1, user_api="blas")


__all__ = ["one_blas_thread"]
