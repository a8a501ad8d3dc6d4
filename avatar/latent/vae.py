"""A (beta-)variational autoencoder, trained with PyTorch (optional: ``pip install avatar[torch]``).

Only ``fit`` needs PyTorch: the trained weights are plain arrays and encoding
(the posterior mean) and decoding are numpy, so a saved VAE loads and runs
without PyTorch installed.
"""
from __future__ import annotations

import numpy as np

from .models import KINDS, LatentModel, MLPWeights, _project, _rng_int

__all__ = ["VAE", "torch_available"]


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class VAE(MLPWeights, LatentModel):
    """A beta-VAE on the first ``input_components`` principal components (scaled like :class:`Autoencoder`).

    Encoder ``hidden`` (tanh) -> mean and log-variance of a k-dimensional
    Gaussian; decoder ``reversed(hidden)`` (tanh) -> linear output. The loss per
    avatar is the squared reconstruction error (in units of the first
    component's standard deviation) plus ``beta`` times the KL divergence to
    N(0, I): ``beta`` is the KL weight relative to a Gaussian likelihood whose
    noise variance is the first component's variance, so the default 0.01
    keeps detail down to a tenth of that component's spread; raise it for a
    smoother, more disentangled latent (beta-VAE), lower it for sharper
    reconstructions. Codes are the posterior means. Learned: ``mean_``, ``basis_``,
    ``scale_``, ``weights_`` / ``biases_`` (encoder layers, then the mean head,
    the log-variance head, then decoder layers), ``loss_curve_``.
    """

    kind = "vae"
    _arrays = ("mean", "basis", "scale")

    def __init__(self, n_components: int = 16, random_state=None, hidden=(256, 64), epochs: int = 50,
                 batch_size: int = 64, learning_rate: float = 1e-3, beta: float = 0.01, input_components: int = 256):
        self.n_components = n_components
        self.random_state = random_state
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.beta = beta
        self.input_components = input_components

    def _fit(self, X, basis):
        try:
            import torch
        except ImportError:
            raise ImportError("the VAE needs PyTorch: pip install avatar[torch] (a CPU build is enough)") from None
        n, d = X.shape
        r = max(self.n_components, min(self.input_components, n - 1, d))
        self.mean_, self.basis_, var = self._basis(X, r, basis)
        self.scale_ = np.asarray(np.sqrt(var[0]) if var[0] > 0 else 1.0, np.float64)
        U = torch.as_tensor(_project(X, self.mean_, self.basis_) / self.scale_, dtype=torch.float32)
        seed = _rng_int(self.random_state)
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        torch.manual_seed(0 if seed is None else int(seed))
        hidden = [int(h) for h in self.hidden]
        k = self.n_components

        def mlp(sizes, last_linear):
            layers = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(torch.nn.Linear(a, b))
                if not (last_linear and i == len(sizes) - 2):
                    layers.append(torch.nn.Tanh())
            return torch.nn.Sequential(*layers)

        enc = mlp([r] + hidden, last_linear=False)
        width = hidden[-1] if hidden else r
        mu_head, logvar_head = torch.nn.Linear(width, k), torch.nn.Linear(width, k)
        dec = mlp([k] + hidden[::-1] + [r], last_linear=True)
        params = [p for m in (enc, mu_head, logvar_head, dec) for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=self.learning_rate)
        bs = min(self.batch_size, n)
        curve = []
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=gen)
            total = 0.0
            for i in range(0, n, bs):
                x = U[perm[i:i + bs]]
                h = enc(x)
                mu, logvar = mu_head(h), logvar_head(h)
                z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * logvar)
                recon = ((dec(z) - x) ** 2).sum(dim=1)
                kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(dim=1)
                loss = (recon + self.beta * kl).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(x)
            curve.append(total / n)
        self.loss_curve_ = np.asarray(curve)
        linears = [m for part in (enc, mu_head, logvar_head, dec) for m in part.modules()
                   if isinstance(m, torch.nn.Linear)]
        # numpy layout like scikit-learn's: W (in, out), b (out,)
        self.weights_ = [m.weight.detach().numpy().T.astype(np.float64) for m in linears]
        self.biases_ = [m.bias.detach().numpy().astype(np.float64) for m in linears]

    @property
    def _n_enc(self) -> int:
        return len(self.hidden)

    def _encode(self, X):
        H = _project(X, self.mean_, self.basis_) / self.scale_
        for W, b in zip(self.weights_[:self._n_enc], self.biases_[:self._n_enc]):
            H = np.tanh(H @ W + b)
        return H @ self.weights_[self._n_enc] + self.biases_[self._n_enc]   # the posterior mean

    def _decode(self, Z):
        return self._decode_from(Z, self._n_enc + 2)  # after the encoder and its mean / log-variance heads

    def _check_state(self):
        r, k = self.basis_.shape[0], self.n_components
        h = [int(x) for x in self.hidden]
        width = h[-1] if h else r
        enc = list(zip([r] + h[:-1], h))
        dec_sizes = [k] + h[::-1] + [r]
        shapes = enc + [(width, k), (width, k)] + list(zip(dec_sizes[:-1], dec_sizes[1:]))
        if len(self.weights_) != len(shapes) or len(self.biases_) != len(shapes):
            raise ValueError("VAE: wrong number of layers")
        for W, b, (a, c) in zip(self.weights_, self.biases_, shapes):
            if W.shape != (a, c) or b.shape != (c,):
                raise ValueError("VAE: layer shapes do not match `hidden`")
        if self.basis_.shape[1] != self.n_features_in_ or self.mean_.shape != (self.n_features_in_,):
            raise ValueError("VAE: basis has the wrong shape")


KINDS["vae"] = VAE
