"""Convolutional autoencoders on images: ``ConvVAE`` (kind "conv_vae") and ``ConvAE`` (kind "conv_ae").

    m = ConvVAE(n_components=10, beta=1.0, random_state=0).fit(X)   # X (n, S*S*3): one RGB image a row
    Z = m.transform(X)                                              # (n, k) posterior means
    X_hat = m.inverse_transform(Z)                                  # (n, S*S*3), the feature space of X

The network is the standard 64x64 one of the beta-VAE literature (Higgins et
al. 2017; Burgess et al. 2018; disentanglement_lib's ``conv_encoder`` /
``deconv_decoder``): four 4x4 convolutions of stride 2 with 32, 32, 64, 64
channels (ReLU), a dense layer of 256 (ReLU), then linear heads for the code
(the mean and, for the VAE, the log-variance); the decoder mirrors it with a
dense 256, a dense to 64 x 4 x 4 and four 4x4 transposed convolutions of
stride 2 (ReLU between, linear at the end). ``channels`` and ``hidden`` change
the widths (and the number of layers); a 32x32 image gives a 2x2 grid after
the four convolutions, so the same network serves 32 and 64 px (any size
divisible by ``2 ** len(channels)``).

Input. Each row of X is one RGB image, flattened row-major from (S, S, 3) as
:class:`avatar.latent.features.FeatureTransform` makes it from a ``renders``
block with one view (or a ``textures`` block): box-filtered to ``size``,
scaled to [0, 1] and centred on the training mean. The image side is read from
the row length, S = sqrt(d / 3); a row that is not a square 3-channel image
raises ValueError. Several views cannot be told from one bigger image by the
length alone (4 views of 32 px have the length of one 64 px image), so a
model whose feature transform has any other block, or a renders block of
several views, is refused when it encodes or decodes.

Loss. X is centred pixels, so the reconstruction term is Gaussian: the summed
squared error over the image's pixels (a Gaussian likelihood with variance
1/2, up to a constant) and, for the VAE, plus ``beta`` times the KL divergence
of the posterior from N(0, I). The decoder's output is linear and lives in the
same centred feature space as X, so ``FeatureTransform.inverse`` turns it into
images.

Rotation. The prior N(0, I) does not change when the latent turns, so a VAE
may learn every factor yet mix them over its axes: on ``scene-known`` 12 of 20
nets did, although a nonlinear regression recovered each factor from the three
codes with R^2 0.99 (docs/images.md). ``rotate="ica"`` unmixes the training
codes (the posterior means) by ICA after training (:func:`independent_axes`):
codes are ``(mu - ica_mean_) @ unmixing_.T``, unit variance, and decoding maps
them back first. Independent non-Gaussian factors (uniform ones are) survive in
the codes' marginals, which is what ICA needs; the rotation uses no labels.
There 19 of 20 nets then gave every factor its own code.

Restarts. ``n_init`` trains that many nets, from seeds ``random_state``,
``random_state + 1``, ..., and keeps one without looking at labels: with
``rotate="ica"`` the one whose unmixed codes are the most non-Gaussian
(:func:`negentropy`, the ICA contrast: a mixture of independent factors is
closer to Gaussian than they are), otherwise the one whose codes are the most
independent (the smallest :func:`code_dependence`, a Gaussian total
correlation, which an uncorrelated mixture escapes).

Training is :func:`avatar.latent.nets.train` (minibatch Adam, early stopping,
seeded, deterministic on CPU; ``device`` cpu | cuda | auto, the default auto
using a GPU when torch sees one). The weights are float64 arrays ``p0, p1,
...`` in torch's layouts (conv (out, in, 4, 4), transposed conv (in, out, 4,
4), dense (out, in)); encoding and decoding are numpy (:func:`conv2d`,
:func:`conv_transpose2d`, channels last: im2col by ``sliding_window_view``
and tensor products, one per layer or per output phase), so a saved model runs without PyTorch.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .models import KINDS, LatentModel
from .rotation import Unmixed, independent_axes, negentropy

__all__ = ["ConvAE", "ConvVAE", "code_dependence", "conv2d", "conv_transpose2d", "image_side"]

KERNEL, STRIDE, PAD = 4, 2, 1
ROWS = 64   # images per block in the numpy passes: the im2col copy of a 64 px layer stays under ~70 MB


# -- numpy layers (channels last: (n, H, W, C), as the images are stored) ---------------------
def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """4x4 convolution, stride 2, padding 1: torch's Conv2d(C, O, 4, 2, 1) on channels-last arrays.

    x (n, H, W, C), w (O, C, 4, 4) (torch's layout), b (O,) -> (n, H // 2, W // 2, O). im2col is a
    strided view of the padded input; the one copy is the tensor product's.
    """
    xp = np.pad(x, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)))
    win = sliding_window_view(xp, (KERNEL, KERNEL), axis=(1, 2))[:, ::STRIDE, ::STRIDE]   # (n, Ho, Wo, C, 4, 4)
    n, ho, wo = win.shape[:3]
    cols = win.reshape(n * ho * wo, -1)                  # the im2col copy, (C, 4, 4) per row like w's rows
    return (cols @ w.reshape(len(w), -1).T).reshape(n, ho, wo, len(w)) + b


# Transposed convolution, stride 2, kernel 4, padding 1: input pixel h adds w[tap] * x[h] to output 2h + tap - 1.
# So output 2m + phase takes, per axis, two (input shift, kernel tap) pairs: phase 0 from x[m] (tap 1) and
# x[m - 1] (tap 3); phase 1 from x[m + 1] (tap 0) and x[m] (tap 2).
_TAPS = {0: ((0, 1), (-1, 3)), 1: ((1, 0), (0, 2))}


def conv_transpose2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """4x4 transposed convolution, stride 2, padding 1: torch's ConvTranspose2d(C, O, 4, 2, 1), channels last.

    x (n, H, W, C), w (C, O, 4, 4) (torch's layout), b (O,) -> (n, 2 H, 2 W, O). Computed by output
    phase (the four pixels of each 2x2 output block), each the sum of 4 taps of the input shifted by
    at most one pixel: no zeros are multiplied. The products come first (one (C, 16 O) product, then
    shifted adds) when O < C, as for the last layer's 3 channels; otherwise the shifted inputs are
    stacked and each phase is one product (fewer copies when O >= C).
    """
    n, H, W, C = x.shape
    O = w.shape[1]
    out = np.empty((n, 2 * H, 2 * W, O), dtype=np.result_type(x, w))
    if O < C:
        T = (x.reshape(-1, C) @ w.transpose(0, 2, 3, 1).reshape(C, -1)).reshape(n, H, W, KERNEL, KERNEL, O)
        Tp = np.pad(T, ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
        for a, c, pairs in _phases():
            acc = np.zeros((n, H, W, O), dtype=out.dtype)
            for dy, i, dx, j in pairs:
                acc += Tp[:, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W, i, j]
            out[:, a::2, c::2] = acc
    else:
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        for a, c, pairs in _phases():
            patch = np.stack([xp[:, 1 + dy:1 + dy + H, 1 + dx:1 + dx + W] for dy, _, dx, _ in pairs], axis=3)
            taps = np.stack([w[:, :, i, j] for _, i, _, j in pairs])                   # (4, C, O)
            out[:, a::2, c::2] = (patch.reshape(-1, 4 * C) @ taps.reshape(4 * C, O)).reshape(n, H, W, O)
    return out + b


def _phases():
    """(row phase, column phase, [(row shift, row tap, column shift, column tap)] * 4) for the 4 phases."""
    return [(a, c, [(dy, i, dx, j) for dy, i in rows for dx, j in cols])
            for a, rows in _TAPS.items() for c, cols in _TAPS.items()]


def _relu(x):
    return np.maximum(x, 0.0)


def image_side(d: int, n_layers: int) -> int:
    """S for rows of d = S * S * 3 features; ValueError unless square, RGB and divisible by 2**n_layers."""
    side = math.isqrt(d // 3) if d >= 3 else 0
    if side * side * 3 != d:
        raise ValueError(f"conv models take one square RGB image per row (d = S * S * 3, e.g. 12,288 for "
                         f"64 x 64 or 3,072 for 32 x 32); got d = {d:,}. Use a single renders block of one view "
                         "(or a textures block) as the features")
    if side % (2 ** n_layers):
        raise ValueError(f"a {side} x {side} image cannot pass {n_layers} stride-2 convolutions: the side must be "
                         f"divisible by {2 ** n_layers} (use size 32 or 64, or fewer channels)")
    return side


# -- the torch network ---------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _net_class():
    from .nets import import_torch

    torch = import_torch("the conv models")
    nn = torch.nn

    class ConvNet(nn.Module):
        """Encoder convs, encoder dense, mean head, [log-variance head], decoder dense, decoder transposed convs."""

        def __init__(self, side, channels, hidden, k, variational):
            super().__init__()
            self.side, self.c_last = side, channels[-1]
            self.grid = side // 2 ** len(channels)
            self.enc_convs = nn.ModuleList(nn.Conv2d(a, c, KERNEL, STRIDE, PAD)
                                           for a, c in zip([3] + channels[:-1], channels))
            flat = channels[-1] * self.grid ** 2
            self.enc_dense = nn.ModuleList(nn.Linear(a, c) for a, c in zip([flat] + hidden[:-1], hidden))
            width = hidden[-1] if hidden else flat
            self.mu = nn.Linear(width, k)
            self.logvar = nn.Linear(width, k) if variational else None
            dec = [k] + hidden[::-1] + [flat]
            self.dec_dense = nn.ModuleList(nn.Linear(a, c) for a, c in zip(dec[:-1], dec[1:]))
            rev = channels[::-1]
            self.dec_convs = nn.ModuleList(nn.ConvTranspose2d(a, c, KERNEL, STRIDE, PAD)
                                           for a, c in zip(rev, rev[1:] + [3]))

        def encode(self, x):
            """x (b, S*S*3) -> (mean (b, k), log-variance (b, k) or None)."""
            h = x.reshape(len(x), self.side, self.side, 3).permute(0, 3, 1, 2)
            for conv in self.enc_convs:
                h = torch.relu(conv(h))
            h = h.flatten(1)
            for lin in self.enc_dense:
                h = torch.relu(lin(h))
            return self.mu(h), (self.logvar(h) if self.logvar is not None else None)

        def decode(self, z):
            """z (b, k) -> x_hat (b, S*S*3)."""
            h = z
            for lin in self.dec_dense:
                h = torch.relu(lin(h))
            h = h.reshape(len(z), self.c_last, self.grid, self.grid)
            for i, conv in enumerate(self.dec_convs):
                h = conv(h)
                if i < len(self.dec_convs) - 1:
                    h = torch.relu(h)
            return h.permute(0, 2, 3, 1).reshape(len(z), -1)

    return ConvNet


def _ae_loss(net, x, noise, training):  # noqa: ARG001 - the nets.train loss signature
    return ((net.decode(net.encode(x)[0]) - x) ** 2).sum(dim=1)


def _vae_loss(beta: float):
    from .vae import gaussian_kl

    def loss(net, x, noise, training):
        import torch

        mu, logvar = net.encode(x)
        # training: one reparameterised sample; validation: the posterior mean (a noise-free stopping rule)
        z = mu + torch.randn(mu.shape, generator=noise, device=mu.device) * torch.exp(0.5 * logvar) if training \
            else mu
        return ((net.decode(z) - x) ** 2).sum(dim=1) + beta * gaussian_kl(mu, logvar)

    return loss


def code_dependence(Z: np.ndarray) -> float:
    """The total correlation of a Gaussian fitted to codes Z (n, k): -1/2 log det of their
    correlation matrix, 0 when no two codes correlate (nan-free: a constant code counts as
    uncorrelated). It is how :class:`ConvVAE` picks among its restarts (``n_init``): the prior asks
    for independent codes, and a latent that mixes independent factors has codes that correlate."""
    std = Z.std(axis=0)
    live = std > 0
    if live.sum() < 2:
        return 0.0
    C = np.corrcoef(Z[:, live].T)
    sign, logdet = np.linalg.slogdet(C)
    return float(-0.5 * logdet) if sign > 0 else float("inf")


# -- the models ----------------------------------------------------------------------------
class _ConvModel(Unmixed, LatentModel):
    """The shared body of :class:`ConvAE` and :class:`ConvVAE` (see the module docstring).

    Learned: ``params_`` (list of float64 arrays in torch's layouts, stored as
    ``p0``, ``p1``, ...; their shapes follow from ``channels``, ``hidden``, k and
    the image side), ``image_side_`` (S), ``restart_dependence_`` and ``restart_negentropy_`` (n_init,)
    (each restart's :func:`code_dependence` of the net's codes and :func:`negentropy` of the codes it
    gives), ``best_restart_`` (the one kept), with ``rotate: ica`` ``unmixing_``, ``mixing_`` (k, k) and
    ``ica_mean_`` (k,) (:func:`independent_axes`; None without), and from its training ``loss_curve_``,
    ``validation_curve_``, ``n_epochs_``, ``best_epoch_``, ``device_``, ``epoch_seconds_``.
    """

    variational = False
    _arrays = _optional = Unmixed.ARRAYS   # rotate: ica only

    def __init__(self, n_components: int = 10, random_state=None, channels=(32, 32, 64, 64), hidden=(256,),
                 epochs: int = 100, batch_size: int = 64, learning_rate: float = 1e-3, patience: int = 10,
                 validation_fraction: float = 0.1, weight_decay: float = 0.0, device: str = "auto",
                 n_init: int = 1, rotate: str = "none"):
        self.n_init = n_init
        self.rotate = rotate
        self.n_components = n_components
        self.random_state = random_state
        self.channels = channels
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.weight_decay = weight_decay
        self.device = device

    # -- architecture ------------------------------------------------------------
    def _widths(self) -> tuple[list[int], list[int]]:
        channels, hidden = [int(c) for c in self.channels], [int(h) for h in self.hidden]
        if not channels or min(channels) < 1 or (hidden and min(hidden) < 1):
            raise ValueError(f"channels must be a non-empty list of whole numbers >= 1 and hidden a list of them, "
                             f"got channels={self.channels!r}, hidden={self.hidden!r}")
        return channels, hidden

    def _shapes(self, side: int) -> list[tuple]:
        """Shapes of ``params_``, in torch's registration order."""
        channels, hidden = self._widths()
        k, flat = self.n_components, channels[-1] * (side // 2 ** len(channels)) ** 2
        out = []
        for a, c in zip([3] + channels[:-1], channels):
            out += [(c, a, KERNEL, KERNEL), (c,)]
        for a, c in zip([flat] + hidden[:-1], hidden):
            out += [(c, a), (c,)]
        width = hidden[-1] if hidden else flat
        out += [(k, width), (k,)] * (2 if self.variational else 1)
        dec = [k] + hidden[::-1] + [flat]
        for a, c in zip(dec[:-1], dec[1:]):
            out += [(c, a), (c,)]
        rev = channels[::-1]
        for a, c in zip(rev, rev[1:] + [3]):
            out += [(a, c, KERNEL, KERNEL), (c,)]
        return out

    def _loss(self):
        return _vae_loss(float(self.beta)) if self.variational else _ae_loss

    # -- fitting -----------------------------------------------------------------
    def _fit(self, X, basis):  # noqa: ARG002 - pixels are modelled directly: no PCA basis
        from . import nets

        torch = nets.import_torch(f"the {self.kind} model")
        channels, hidden = self._widths()
        side = image_side(X.shape[1], len(channels))
        k = self.n_components
        if int(self.n_init) < 1:
            raise ValueError(f"n_init must be at least 1, got {self.n_init!r}")
        self._check_rotate()
        dependence, nongauss, best = [], [], None
        for i in range(int(self.n_init)):     # restart i from seed random_state + i (None: unseeded)
            seed = None if self.random_state is None else int(self.random_state) + i
            net, hist = nets.train(lambda: _net_class()(side, channels, hidden, k, self.variational), self._loss(),
                                   X, epochs=self.epochs, batch_size=self.batch_size,
                                   learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                                   patience=self.patience, validation_fraction=self.validation_fraction,
                                   random_state=seed, device=self.device)
            # the training codes from the trained net (numpy would repeat the whole forward pass)
            with torch.no_grad():
                Z = torch.cat([net.encode(torch.as_tensor(np.asarray(X[j:j + 512], np.float32),
                                                          device=hist.device))[0].cpu()
                               for j in range(0, len(X), 512)]).double().numpy()
            dependence.append(code_dependence(Z))
            unmixed = independent_axes(Z, seed) if self.rotate == "ica" else None
            nongauss.append(negentropy(Z if unmixed is None else unmixed[3]))
            # kept: the most non-Gaussian unmixed codes, or without a rotation the least dependent codes
            score = -nongauss[-1] if unmixed is not None else dependence[-1]
            if best is None or score < best[0]:   # ties keep the earlier restart
                best = (score, i, net, hist, Z, unmixed)
        self.restart_dependence_ = np.array(dependence)
        self.restart_negentropy_ = np.array(nongauss)
        _, self.best_restart_, net, hist, Z, unmixed = best
        self.params_ = nets.torch_params([net])
        self.image_side_ = side
        self._set_unmixing(unmixed)
        if unmixed is not None:
            Z = unmixed[3]
        nets.record(self, hist)
        self._code_stats(Z)
        return False

    # -- numpy passes ------------------------------------------------------------------
    def _check_images(self) -> None:
        """A model used through a feature transform must see exactly one image block of one view."""
        ft = self.features_
        if ft is None:
            return
        shape = ft.shapes_.get(ft.names[0]) if len(ft.names) == 1 else None
        one_view = shape is not None and (ft.names[0] == "textures" or (len(shape) == 4 and shape[0] == 1))
        if not one_view:
            raise ValueError(f"a {self.kind} model needs features of one image per avatar (a renders block of one "
                             f"view, or textures), alone; these features are {ft.names} with stored shapes "
                             f"{[ft.shapes_.get(n) for n in ft.names]}")

    def _encode(self, X):
        self._check_images()
        if not len(X):
            return np.zeros((0, self.n_components))
        Z = np.concatenate([self._encode_rows(np.asarray(X[i:i + ROWS], np.float64)) for i in range(0, len(X), ROWS)])
        return self._unmixed(Z)

    def _decode(self, Z):
        self._check_images()
        Z = self._net_codes(Z)
        return np.concatenate([self._decode_rows(Z[i:i + ROWS]) for i in range(0, len(Z), ROWS)]) if len(Z) \
            else np.zeros((0, self.n_features_in_))

    def _encode_rows(self, X: np.ndarray) -> np.ndarray:
        """X (b, S*S*3) -> the code means (b, k) float64."""
        channels, hidden = self._widths()
        s, p = self.image_side_, iter(self.params_)
        h = X.reshape(len(X), s, s, 3)
        for _ in channels:
            h = _relu(conv2d(h, next(p), next(p)))
        h = h.transpose(0, 3, 1, 2).reshape(len(X), -1)   # flattened in (C, H, W) order, as torch's flatten
        for _ in hidden:
            h = _relu(h @ next(p).T + next(p))
        return h @ next(p).T + next(p)

    def _decode_rows(self, Z: np.ndarray) -> np.ndarray:
        """Z (b, k) -> X_hat (b, S*S*3) float64."""
        channels, hidden = self._widths()
        s = self.image_side_
        p = iter(self.params_[self._n_encoder_params:])
        h = Z
        for _ in range(len(hidden) + 1):
            h = _relu(h @ next(p).T + next(p))
        g = s // 2 ** len(channels)
        h = h.reshape(len(Z), channels[-1], g, g).transpose(0, 2, 3, 1)   # torch's (C, H, W) -> channels last
        for i in range(len(channels)):
            h = conv_transpose2d(h, next(p), next(p))
            if i < len(channels) - 1:
                h = _relu(h)
        return h.reshape(len(Z), -1)

    @property
    def _n_encoder_params(self) -> int:
        channels, hidden = self._widths()
        return 2 * (len(channels) + len(hidden)) + (4 if self.variational else 2)

    # -- state -------------------------------------------------------------------------
    def learned(self):
        out = super().learned()
        out["image_side"] = np.asarray(self.image_side_, np.int64)
        for i, a in enumerate(self.params_):
            out[f"p{i}"] = a
        return out

    def set_learned(self, arrays):
        arrays = dict(arrays)
        try:
            self.image_side_ = int(arrays.pop("image_side"))
        except KeyError:
            raise ValueError("missing array image_side") from None
        n = len([k for k in arrays if k.startswith("p") and k[1:].isdigit()])
        try:
            self.params_ = [arrays.pop(f"p{i}") for i in range(n)]
        except KeyError as err:
            raise ValueError(f"missing array {err.args[0]}") from None
        return super().set_learned(arrays)

    def _check_state(self):
        self._check_unmixing()
        s = self.image_side_
        if image_side(self.n_features_in_, len(self._widths()[0])) != s:
            raise ValueError(f"{self.kind}: image side {s} does not match {self.n_features_in_} features")
        want = self._shapes(s)
        got = [tuple(a.shape) for a in self.params_]
        if got != want:
            raise ValueError(f"{self.kind}: parameter shapes {got} do not match the architecture {want} "
                             "(channels, hidden, n_components)")


class ConvAE(_ConvModel):
    """A deterministic convolutional autoencoder: the conv VAE's network with one linear code head and
    the summed squared pixel error as its loss. Parameters as :class:`ConvVAE` without ``beta``."""

    kind = "conv_ae"


class ConvVAE(_ConvModel):
    """A convolutional beta-VAE on images (see the module docstring).

    Parameters
    ----------
    n_components : int
        k, the latent dimension (default 10, as disentanglement_lib).
    beta : float
        The weight of the KL term (1: the plain VAE; > 1: a beta-VAE, smoother and more
        disentangled, blurrier).
    channels : sequence of int
        Output channels of the encoder's stride-2 convolutions (default (32, 32, 64, 64)).
    hidden : sequence of int
        The dense layers between the convolutions and the code (default (256,)).
    n_init : int
        Nets trained (seeds random_state, random_state + 1, ...); one is kept (see Restarts in the
        module docstring). Default 1.
    rotate : {"none", "ica"}
        "ica": the codes are the independent components of the net's posterior means (see Rotation in
        the module docstring). Default "none".
    epochs, batch_size, learning_rate, patience, validation_fraction, weight_decay, device
        Training (:func:`avatar.latent.nets.train`); ``epochs`` is the maximum, ``device`` auto
        by default (a GPU when torch sees one; bit-exact repeats are promised on CPU only).

    Codes are the posterior means.
    """

    kind = "conv_vae"
    variational = True

    def __init__(self, n_components: int = 10, random_state=None, channels=(32, 32, 64, 64), hidden=(256,),
                 epochs: int = 100, batch_size: int = 64, learning_rate: float = 1e-3, beta: float = 1.0,
                 patience: int = 10, validation_fraction: float = 0.1, weight_decay: float = 0.0,
                 device: str = "auto", n_init: int = 1, rotate: str = "none"):
        super().__init__(n_components=n_components, random_state=random_state, channels=channels, hidden=hidden,
                         epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, patience=patience,
                         validation_fraction=validation_fraction, weight_decay=weight_decay, device=device,
                         n_init=n_init, rotate=rotate)
        self.beta = beta


KINDS["conv_ae"] = ConvAE
KINDS["conv_vae"] = ConvVAE
