"""A (beta-)variational autoencoder, trained with PyTorch (optional: ``pip install avatar[torch]``).

Only ``fit`` needs PyTorch (:func:`avatar.latent.nets.train`, the loop every
neural model shares): the trained weights are plain arrays and encoding (the
posterior mean) and decoding are numpy, so a saved VAE loads and runs without
PyTorch installed.
"""
from __future__ import annotations

from .models import KINDS, LatentModel, MLPWeights
from .rotation import Unmixed

__all__ = ["VAE", "torch_available", "gaussian_kl"]


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def gaussian_kl(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample: (b, k) tensors -> (b,)."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(dim=1)


def _vae_loss(beta: float):
    """The nets.train loss of a VAE net (ModuleList [encoder, mean head, log-variance head, decoder])."""

    def loss(net, x, noise, training):
        import torch

        enc, mu_head, logvar_head, dec = net
        h = enc(x)
        mu, logvar = mu_head(h), logvar_head(h)
        # training: one reparameterised sample; validation: the posterior mean, so that early stopping
        # compares epochs by the same noise-free number
        z = mu + torch.randn(mu.shape, generator=noise, device=mu.device) * torch.exp(0.5 * logvar) if training \
            else mu
        return ((dec(z) - x) ** 2).sum(dim=1) + beta * gaussian_kl(mu, logvar)

    return loss


class VAE(Unmixed, MLPWeights, LatentModel):
    """A beta-VAE on the first ``input_components`` principal components (scaled like :class:`Autoencoder`).

    Encoder ``hidden`` (tanh) -> mean and log-variance of a k-dimensional
    Gaussian; decoder ``reversed(hidden)`` (tanh) -> linear output. The loss per
    avatar is the squared reconstruction error (in units of the first
    component's standard deviation) plus ``beta`` times the KL divergence to
    N(0, I): ``beta`` is the KL weight relative to a Gaussian likelihood whose
    noise variance is the first component's variance, so the default 0.01
    keeps detail down to a tenth of that component's spread; raise it for a
    smoother, more disentangled latent (beta-VAE), lower it for sharper
    reconstructions. Codes are the posterior means; with ``rotate="ica"`` their
    independent components (:class:`avatar.latent.rotation.Unmixed`).

    Training: :func:`avatar.latent.nets.train` (minibatch Adam, ``epochs`` at
    most, early stopping after ``patience`` epochs without a better loss on the
    held-out ``validation_fraction``, measured from the posterior means; the
    best epoch's weights are kept), seeded by ``random_state``, on ``device``.

    Learned: ``mean_`` (d,), ``basis_`` (r, d), ``scale_`` (), ``weights_`` /
    ``biases_`` (encoder layers, then the mean head, the log-variance head,
    then decoder layers; W (in, out), b (out,)), and from training
    ``loss_curve_``, ``validation_curve_``, ``n_epochs_``, ``best_epoch_``, ``device_``,
    ``epoch_seconds_``.
    """

    kind = "vae"
    _arrays = ("mean", "basis", "scale") + Unmixed.ARRAYS
    _optional = Unmixed.ARRAYS

    def __init__(self, n_components: int = 16, random_state=None, hidden=(256, 64), epochs: int = 200,
                 batch_size: int = 64, learning_rate: float = 1e-3, beta: float = 0.01, input_components: int = 256,
                 patience: int = 20, validation_fraction: float = 0.1, weight_decay: float = 0.0,
                 device: str = "cpu", rotate: str = "none"):
        self.rotate = rotate
        self.n_components = n_components
        self.random_state = random_state
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.beta = beta
        self.input_components = input_components
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.weight_decay = weight_decay
        self.device = device

    def _fit(self, X, basis):
        from . import nets

        torch = nets.import_torch("the VAE")
        self._check_rotate()
        U = self._inputs(X, basis)
        h, k, r = self._hidden(), self.n_components, U.shape[1]
        width = h[-1] if h else r

        def build():
            encoder = nets.mlp([r] + h, [True] * len(h))
            decoder = nets.mlp([k] + h[::-1] + [r], [True] * len(h) + [False])
            return torch.nn.ModuleList([encoder, torch.nn.Linear(width, k), torch.nn.Linear(width, k), decoder])

        net, hist = nets.train(build, _vae_loss(float(self.beta)), U, epochs=self.epochs, batch_size=self.batch_size,
                               learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                               patience=self.patience, validation_fraction=self.validation_fraction,
                               random_state=self.random_state, device=self.device, threads=1)
        self.weights_, self.biases_ = nets.dense_arrays([net])
        nets.record(self, hist)
        self._fit_unmixing(X)

    @property
    def _n_enc(self) -> int:
        return len(self.hidden)

    def _encode(self, X):
        n = self._n_enc
        H = self._layers(self._scaled(X), self.weights_[:n], self.biases_[:n], tanh_last=True)
        return self._unmixed(H @ self.weights_[n] + self.biases_[n])   # the posterior mean (unmixed)

    def _decode(self, Z):
        return self._decode_from(self._net_codes(Z), self._n_enc + 2)  # after the encoder and its mean / log-variance heads

    def _check_state(self):
        self._check_inputs()
        self._check_unmixing()
        r, k = self.basis_.shape[0], self.n_components
        h = self._hidden()
        width = h[-1] if h else r
        enc = list(zip([r] + h[:-1], h))
        dec_sizes = [k] + h[::-1] + [r]
        shapes = enc + [(width, k), (width, k)] + list(zip(dec_sizes[:-1], dec_sizes[1:]))
        if len(self.weights_) != len(shapes) or len(self.biases_) != len(shapes):
            raise ValueError("VAE: wrong number of layers")
        for W, b, (a, c) in zip(self.weights_, self.biases_, shapes):
            if W.shape != (a, c) or b.shape != (c,):
                raise ValueError("VAE: layer shapes do not match `hidden`")


KINDS["vae"] = VAE
