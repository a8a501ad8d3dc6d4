"""The one PyTorch training loop behind every neural latent model (autoencoder, VAE, conv models).

    history = train(build, loss, X, epochs=200, batch_size=64, learning_rate=1e-3,
                    weight_decay=0.0, patience=10, validation_fraction=0.1,
                    random_state=0, device="cpu")
    history.loss_curve, history.validation_curve, history.n_epochs, history.best_epoch

``build()`` makes the ``torch.nn.Module`` (called after seeding, so its
initial weights depend on ``random_state`` only); ``loss(net, x, noise,
training)`` gives the per-sample loss ``(b,)`` of a batch ``x`` (``noise``: a
seeded ``torch.Generator`` on the device for sampling, as a VAE does). The
loop is minibatch Adam (coupled L2 ``weight_decay``, torch's) with early
stopping: ``validation_fraction`` of the rows (drawn by the seed) are held
out, the validation loss is measured after every epoch, training stops after
``patience`` epochs without a new best, and the best epoch's weights are put
back. ``epochs`` is the maximum. On the way the learning rate is halved after
every ``patience // 2`` epochs without a new best (``lr_decay``,
``lr_patience``): Adam at a fixed rate keeps bouncing around the minimum, and
the autoencoder's known answer (docs/latent.md) needs the last digits. With
no rows held out (``validation_fraction`` 0, or too few rows) every epoch
runs and the last weights are kept.

Determinism: one ``torch.Generator`` seeded from ``random_state`` draws the
validation rows, every epoch's shuffle and the sampling noise; the global torch
RNG (for the initial weights) is forked and seeded, so a fit neither depends
on nor disturbs the caller's torch RNG state; on CPU
``torch.use_deterministic_algorithms(True)`` is on during the fit. The same
seed then gives bit-identical weights on the same machine, torch build and
thread count (``torch.set_num_threads``: a different count may reorder
floating-point sums). On CUDA the fit is seeded the same way and cuDNN is
told to be deterministic, but results are not promised bit-for-bit.

PyTorch is imported only inside :func:`train`: the models using it keep their
weights as float64 numpy arrays and encode/decode with numpy.
"""
from __future__ import annotations

import contextlib
import functools
import numbers
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["History", "train", "resolve_device", "seed_of", "import_torch", "torch_params", "record", "mlp",
           "dense_arrays", "check_training", "embed", "skip_mlp"]

DEVICES = ("cpu", "cuda", "auto")


@dataclass
class History:
    """What :func:`train` learned about the run.

    ``loss_curve`` (n_epochs,): the mean training loss per sample of each epoch
    (averaged over its minibatches as they were taken); ``validation_curve``
    (n_epochs,): the mean validation loss after each epoch (empty when no rows
    were held out); ``n_epochs``: epochs run; ``best_epoch``: the epoch (1-based)
    whose weights were kept (``n_epochs`` without validation); ``device``: where
    it ran; ``validation_rows``: the rows of X held out (sorted); ``epoch_seconds``
    (n_epochs,): wall seconds of each epoch, its validation pass included.
    """

    loss_curve: np.ndarray
    validation_curve: np.ndarray
    n_epochs: int
    best_epoch: int
    device: str
    validation_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    epoch_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))


def import_torch(what: str = "this model"):
    """torch, or an ImportError saying how to install it."""
    try:
        import torch
    except ImportError:
        raise ImportError(f"{what} needs PyTorch: pip install avatar[torch] (a CPU build is enough)") from None
    return torch


def resolve_device(device: str) -> str:
    """'cpu' | 'cuda' | 'auto' -> 'cpu' or 'cuda' (auto: cuda when torch.cuda.is_available())."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    torch = import_torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but PyTorch sees no CUDA device (torch.cuda.is_available() is False); "
                         "use device='cpu' or 'auto'")
    return device


def seed_of(random_state) -> int:
    """A 63-bit seed from None (0), an int or a numpy Generator."""
    if random_state is None:
        return 0
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63 - 1))
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise ValueError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")
    return int(random_state)


def check_training(epochs, batch_size, learning_rate, weight_decay, patience, validation_fraction) -> None:
    """ValueError naming the first bad training parameter."""
    for name, v, lo in (("epochs", epochs, 1), ("batch_size", batch_size, 1), ("patience", patience, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be a whole number >= {lo}, got {v!r}")
    for name, v, ok, want in (("learning_rate", learning_rate, lambda x: x > 0, "> 0"),
                              ("weight_decay", weight_decay, lambda x: x >= 0, ">= 0"),
                              ("validation_fraction", validation_fraction, lambda x: 0 <= x < 1, "in [0, 1)")):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or not ok(v):
            raise ValueError(f"{name} must be a number {want}, got {v!r}")


@contextlib.contextmanager
def _seeded(torch, seed: int, device: str):
    """Fork and seed torch's global RNG; deterministic algorithms on CPU; restore everything after."""
    det, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            if device == "cpu":
                torch.use_deterministic_algorithms(True)
            else:  # cuBLAS would need CUBLAS_WORKSPACE_CONFIG before its first use: seeded, not bit-exact
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            yield
        finally:
            torch.use_deterministic_algorithms(det, warn_only=warn)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


@contextlib.contextmanager
def _threads(torch, n: int | None):
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _split(torch, n: int, fraction: float, gen) -> tuple:
    """(train rows, validation rows) as CPU index tensors; no validation when either side would be empty."""
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(fraction * n))
    if n_val < 1 or n - n_val < 1:
        return perm, perm[:0]
    return perm[n_val:], perm[:n_val]


def _mean_loss(torch, net, loss, X, rows, noise, batch: int) -> float:
    """Mean per-sample loss over ``rows`` of X, without gradients, in eval mode."""
    net.eval()
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            idx = rows[i:i + batch].to(X.device)
            total += loss(net, X[idx], noise, False).sum().double()
    return float(total) / max(len(rows), 1)


def train(build, loss, X, *, epochs: int, batch_size: int, learning_rate: float, weight_decay: float = 0.0,
          patience: int = 10, validation_fraction: float = 0.1, random_state=None, device: str = "cpu",
          lr_decay: float = 0.5, lr_patience: int | None = None, threads: int | None = None,
          eval_batch: int = 1024):
    """Fit ``build()`` on the rows of X by minibatch Adam with early stopping; see the module docstring.

    Parameters
    ----------
    build : callable () -> torch.nn.Module
    loss : callable (net, x (b, ...) float32 tensor, noise Generator, training bool) -> (b,) tensor
    X : (n, ...) float array (numpy); sent to the device as float32 once.
    lr_decay, lr_patience : float, int
        Multiply the learning rate by ``lr_decay`` after every ``lr_patience`` (default
        ``max(1, patience // 2)``) epochs without a better validation loss; 1 turns it off.
    threads : int, optional
        torch's CPU threads during the fit (restored after; default: leave them).
        The dense models pass 1: their products are small, so one thread is
        faster (on a busy 2-core machine 2 threads ran an epoch up to 35x slower) and
        their weights then do not depend on the machine's core count.

    Returns
    -------
    (net, History): the module on its device with the best epoch's weights loaded.
    """
    torch = import_torch()
    check_training(epochs, batch_size, learning_rate, weight_decay, patience, validation_fraction)
    dev = resolve_device(device)
    seed = seed_of(random_state)
    with _seeded(torch, seed, dev), _threads(torch, threads):
        gen = torch.Generator().manual_seed(seed)                  # split and shuffles (on the CPU)
        noise = torch.Generator(device=dev).manual_seed(seed + 1)  # sampling inside the loss, on the device
        net = build().to(dev)
        Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=dev)
        tr, va = _split(torch, len(Xt), validation_fraction, gen)
        opt = torch.optim.Adam(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
        bs = min(int(batch_size), len(tr))
        lr_wait = max(1, patience // 2) if lr_patience is None else int(lr_patience)
        curve, vcurve, seconds = [], [], []
        best, best_epoch, best_state, stale = np.inf, 0, None, 0
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            curve.append(_epoch(torch, net, loss, opt, Xt, tr, bs, gen, noise))
            seconds.append(time.perf_counter() - t0)
            if not np.isfinite(curve[-1]):
                raise ValueError(f"training diverged (loss {curve[-1]} in epoch {epoch}); lower learning_rate "
                                 f"(now {learning_rate:g})")
            if not len(va):
                continue
            vcurve.append(_mean_loss(torch, net, loss, Xt, va, noise, eval_batch))
            seconds[-1] = time.perf_counter() - t0
            if vcurve[-1] < best:   # strictly better: a plateau counts against patience
                best, best_epoch, stale = vcurve[-1], epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
                if stale >= patience:
                    break
                if lr_decay < 1 and stale % lr_wait == 0:
                    for g in opt.param_groups:
                        g["lr"] *= lr_decay
        if best_state is not None:
            net.load_state_dict(best_state)   # the weights of the best validation epoch
        net.eval()
    n_epochs = len(curve)
    return net, History(np.asarray(curve), np.asarray(vcurve), n_epochs, best_epoch if len(va) else n_epochs, dev,
                        np.sort(va.numpy()).astype(np.int64), np.asarray(seconds))


def _epoch(torch, net, loss, opt, X, rows, bs: int, gen, noise) -> float:
    """One pass over the training rows in a seeded random order; the mean loss per sample."""
    net.train()
    perm = rows[torch.randperm(len(rows), generator=gen)].to(X.device)
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for i in range(0, len(perm), bs):
        x = X[perm[i:i + bs]]
        batch_loss = loss(net, x, noise, True).mean()
        opt.zero_grad(set_to_none=True)
        batch_loss.backward()
        opt.step()
        total += batch_loss.detach().double() * len(x)   # summed on the device: no sync per batch
    return float(total) / len(perm)


def torch_params(modules) -> list[np.ndarray]:
    """Every parameter of the modules, in order, as float64 numpy arrays (on the CPU)."""
    return [p.detach().cpu().numpy().astype(np.float64) for m in modules for p in m.parameters()]


def record(model, history: History) -> None:
    """Copy a History onto an estimator: ``loss_curve_``, ``validation_curve_``, ``n_epochs_``,
    ``best_epoch_``, ``device_``, ``epoch_seconds_``."""
    model.loss_curve_ = history.loss_curve
    model.validation_curve_ = history.validation_curve
    model.n_epochs_ = history.n_epochs
    model.best_epoch_ = history.best_epoch
    model.device_ = history.device
    model.epoch_seconds_ = history.epoch_seconds


def mlp(sizes, tanh) -> "torch.nn.Sequential":  # noqa: F821 - torch is imported inside
    """Dense layers ``sizes[0] -> sizes[1] -> ...``; ``tanh[i]``: a tanh after layer i (else linear)."""
    torch = import_torch()
    layers = []
    for (a, b), t in zip(zip(sizes[:-1], sizes[1:]), tanh):
        layers.append(torch.nn.Linear(int(a), int(b)))
        if t:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def dense_arrays(modules) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(weights, biases) of every ``torch.nn.Linear`` inside ``modules``, in order, as float64 numpy:
    W (in, out) so that ``H @ W + b`` is the layer (scikit-learn's layout), b (out,)."""
    torch = import_torch()
    lin = [m for part in modules for m in part.modules() if isinstance(m, torch.nn.Linear)]
    return ([m.weight.detach().cpu().numpy().T.astype(np.float64) for m in lin],
            [m.bias.detach().cpu().numpy().astype(np.float64) for m in lin])


def embed(x, n_out: int):
    """The first ``n_out`` columns of x (b, n_in), zero-padded when n_in < n_out: the skip path of
    :func:`skip_mlp` (numpy or torch)."""
    n_in = x.shape[1]
    if n_in >= n_out:
        return x[:, :n_out]
    if isinstance(x, np.ndarray):
        return np.pad(x, ((0, 0), (0, n_out - n_in)))
    import torch

    return torch.nn.functional.pad(x, (0, n_out - n_in))


@functools.lru_cache(maxsize=None)
def _skip_class():
    torch = import_torch()

    class SkipMLP(torch.nn.Module):
        """x -> embed(x, sizes[-1]) + mlp(x), the mlp's last layer starting at zero (so at first: embed)."""

        def __init__(self, sizes, tanh):
            super().__init__()
            self.n_out = int(sizes[-1])
            self.mlp = mlp(sizes, tanh)
            last = [m for m in self.mlp if isinstance(m, torch.nn.Linear)][-1]
            torch.nn.init.zeros_(last.weight)
            torch.nn.init.zeros_(last.bias)

        def forward(self, x):
            return embed(x, self.n_out) + self.mlp(x)

    return SkipMLP


def skip_mlp(sizes, tanh):
    """A dense stack with a skip path: ``x -> embed(x, sizes[-1]) + mlp(sizes, tanh)(x)``.

    On PCA coordinates the skip path is PCA's own map (keep the first k
    coordinates; put a code back in the first k), so a model made of two of
    these starts as PCA-k and trains only the nonlinear correction.
    """
    return _skip_class()(sizes, tanh)
