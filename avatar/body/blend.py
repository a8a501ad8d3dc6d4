"""The blend's layout: macro targets and local fields by panel of blended coordinates.

The rig blends ``X = W @ Dm + G @ D`` (:mod:`avatar.body.rig`, step 3) with a compiled kernel
(:mod:`avatar.body._blend_kernel`) that walks panels of ``PANEL`` consecutive coordinates. This
module lays the template's matrices out for it, once at build (template-only work):

* **coordinates** ``[body | helpers and joint cubes | eyeball fields]``: the body's 3 x 13,380
  coordinates in base.obj's order, then the rest of the blend set (which only feeds the eyes and
  the skeleton), then our deformers' fields on the eyeball spheres. Each part is padded to whole
  panels, so a panel lands in one output: the body's in the caller's array, the others in a side
  buffer.
* **macros** ``Dm (macro panels, Tm, PANEL)``: every dense macro target's row of each panel,
  contiguous, so that a tile of avatars reads just its own targets' rows of a panel.
  ``pbits`` marks, per panel, the targets that move it: a tile sums only those of its own.
* **fields** per panel, the fields that move it (sorted), with their ``PANEL`` deltas: the
  fields' non-zero (field, 32-coordinate) pairs, 2.4x their non-zero coordinates (2.1x with
  16-coordinate panels, for 1.8x the steps), where the block-sparse BLAS products this replaced
  computed 4.0x.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from avatar.body import _weights_kernel
from avatar.body._blend_kernel import PANEL


@dataclass(frozen=True, eq=False)
class Panels:
    """The blend's matrices by panel (see the module docstring); shapes in panels of ``PANEL``."""

    Dm: np.ndarray        # (n_macro, Tm, PANEL) float32: macro targets, panel by panel
    pbits: np.ndarray     # (n_macro, words) uint64: bit k of panel p: target k moves it (a zero block adds nothing)
    fptr: np.ndarray      # (panels + 1,) int64: panel p's fields are feats[fptr[p]:fptr[p + 1]]
    feats: np.ndarray     # (pairs,) int64: feature columns
    Dl: np.ndarray        # (pairs, PANEL) float32: their deltas on the panel
    n_out: int            # panels of body coordinates (into the caller's array)
    n_macro: int          # panels the macro targets move (the body and the rest of the blend set)
    extra: int            # side-buffer coordinate where the eyeball fields start
    coo: tuple            # (feature, blended coordinate, delta) of the fields on the blend set

    @property
    def side_width(self) -> int:
        return (len(self.fptr) - 1 - self.n_out) * PANEL


def _aligned(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` on a 64-byte boundary: a panel's row is then one cache line, read whole."""
    buf = np.empty(a.nbytes + 64, np.uint8)
    start = -buf.ctypes.data % 64
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _pad(n: int) -> int:
    return -(-n // PANEL) * PANEL


def panels(fields, Dm: np.ndarray, n_body: int, n_blend: int, n_all: int) -> Panels:
    """Lay out the blend for the kernel.

    Parameters
    ----------
    fields : list of (rows (k,) int, deltas (k, 3))
        The local fields, one per feature column; rows index the blend set (0..n_blend-1) and,
        for our deformers, the eyeball spheres' vertices (n_blend..n_all-1).
    Dm : (Tm, 3 n_blend) float32
        The dense macro targets.
    n_body, n_blend, n_all : int
        Rows of the body, of the blend set, and with the eyeballs' vertices.
    """
    body, rest, eye = 3 * n_body, 3 * (n_blend - n_body), 3 * (n_all - n_blend)
    starts = np.array([0, _pad(body), _pad(body) + _pad(rest)])  # where each part's coordinates go
    width = starts[2] + _pad(eye)

    def place(coord):
        part = (coord >= body).astype(np.int64) + (coord >= body + rest)
        return starts[part] + coord - np.array([0, body, body + rest])[part]

    n_macro = starts[2] // PANEL
    padded = np.zeros((len(Dm), starts[2]), np.float32)
    padded[:, place(np.arange(Dm.shape[1]))] = Dm
    macro = np.ascontiguousarray(padded.reshape(len(Dm), n_macro, PANEL).transpose(1, 0, 2))
    feature, coord, value = _nonzero(fields)
    pos = place(coord)
    panel, lane = pos // PANEL, pos % PANEL
    pair_key = panel * len(fields) + feature
    keys, pair = np.unique(pair_key, return_inverse=True)   # sorted by panel, then feature
    Dl = np.zeros((len(keys), PANEL), np.float32)
    Dl[pair, lane] = value
    fptr = np.searchsorted(keys // len(fields), np.arange(width // PANEL + 1)).astype(np.int64)
    on_blend = coord < 3 * n_blend
    return Panels(_aligned(macro), bitsets((macro != 0).any(axis=2)), fptr, (keys % len(fields)).astype(np.int64), _aligned(Dl), int(starts[1] // PANEL), int(n_macro),
                  int(starts[2] - starts[1]), (feature[on_blend], coord[on_blend], value[on_blend]))


def only_fields(pan: Panels, used: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The panels' field lists with only the fields ``used`` (K,) bool: (fptr, feats, Dl) as in ``pan``.

    A chunk whose avatars all leave a field at 0 adds nothing with it, exactly, so the blend may skip
    its pairs: a dataset that varies a few sliders then blends just their fields."""
    keep = used[pan.feats]
    before = np.concatenate([[0], np.cumsum(keep)])
    return before[pan.fptr].astype(np.int64), pan.feats[keep], _aligned(pan.Dl[keep])


def _nonzero(fields) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(feature, coordinate, delta) of every non-zero delta of the fields, coordinate = 3 row + axis."""
    out = []
    for k, (rows, d) in enumerate(fields):
        d = np.asarray(d, np.float32)
        r, axis = np.nonzero(d)
        out.append((np.full(len(r), k, np.int64), 3 * np.asarray(rows, np.int64)[r] + axis, d[r, axis]))
    return tuple(np.concatenate(parts) for parts in zip(*out))


def floor_first(pan: Panels, soles: np.ndarray, read: np.ndarray, n_body: int):
    """The order of the blend's two passes: (first panels, later panels, first panels' y coordinates).

    The first pass holds the body panels with a sole vertex (the floor is their lowest y) or a
    vertex ``read`` unfloored (by the bone ends), the last body panel, and the side buffer's panels
    (never floored);
    the second, every other body panel, takes the floor off y as it stores; then the first
    panels' body y coordinates lose it too.
    """
    rows = np.union1d(soles, read)
    body = np.unique((3 * rows[:, None] + np.arange(3)).ravel() // PANEL)
    body = np.union1d(body, [pan.n_out - 1])  # the last body panel's padding runs into the eyeballs' rows,
                                              # which are placed after the first pass
    first = np.concatenate([body, np.arange(pan.n_out, len(pan.fptr) - 1)])
    later = np.setdiff1d(np.arange(pan.n_out), body)
    cols = (first[:, None] * PANEL + np.arange(PANEL)).ravel()
    return first.astype(np.int64), later.astype(np.int64), cols[(cols % 3 == 1) & (cols < 3 * n_body)]


def bitsets(mask: np.ndarray) -> np.ndarray:
    """(m, words) uint64 bit sets of the rows of ``mask`` (m, T) bool: bit j of word w is column 64 w + j."""
    words = -(-mask.shape[1] // 64)
    padded = np.zeros((len(mask), 64 * words), bool)
    padded[:, : mask.shape[1]] = mask
    packed = np.packbits(padded, axis=1, bitorder="little")
    return np.ascontiguousarray(packed.view("<u8").astype(np.uint64))


def panel_masks(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The panels holding columns ``cols`` of a row: (first columns (P,) int64, (P, PANEL) bool: which
    of each panel's columns are in ``cols``)."""
    panel = np.unique(cols // PANEL)
    mask = np.zeros((len(panel), PANEL), bool)
    mask[np.searchsorted(panel, cols // PANEL), cols % PANEL] = True
    return (panel * PANEL).astype(np.int64), mask


def tiles(key: np.ndarray, tile: int) -> np.ndarray:
    """(nt, tile) int64 tiles of ``tile`` avatars, neighbours in the order of ``key``
    (:func:`~avatar.body.macros.pattern_key`: they weight nearly the same targets), -1 in the last
    tile's empty slots."""
    slots = np.full(-(-len(key) // tile) * tile, -1, np.int64)
    slots[: len(key)] = np.argsort(key, kind="stable")
    return slots.reshape(-1, tile)


def by_tile(X: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """(nt, m, tile), X's dtype: the rows of ``X`` (n, m) of each tile's avatars ``slots`` (:func:`tiles`)
    side by side, 0 in empty slots, so that the kernel's eight weights of a step share one cache line
    (``_weights_kernel.by_tile``)."""
    return _weights_kernel.by_tile(np.ascontiguousarray(X), np.ascontiguousarray(slots, np.int64))


def tile_bits(Xt: np.ndarray) -> np.ndarray:
    """(nt, words) uint64: the columns some avatar of each tile weights non-zero (Xt (nt, m, tile)), as
    :func:`bitsets`."""
    return bitsets((Xt != 0).any(axis=2))


@functools.lru_cache(maxsize=1)
def rows_round_alike() -> bool:
    """Whether this process's BLAS gives equal rows of a float32 product equal bytes wherever they sit in the
    batch (checked once: 24 equal rows, 340 terms, 512 columns). Batch-free texture bytes rest on it;
    OpenBLAS's Haswell kernel on AMD Zen 4 fails it (see ``avatar._blas_with_batch_free_rows``)."""
    rng = np.random.default_rng(0)
    w = rng.random((1, 340), dtype=np.float32)
    D = rng.standard_normal((340, 512), dtype=np.float32)
    return bool((np.repeat(w, 24, axis=0) @ D == (np.repeat(w, 2, axis=0) @ D)[0]).all())
