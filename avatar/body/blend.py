"""Block-sparse local fields, in blocks of vertices that the same fields touch.

The rig's local fields (modifier targets, our deformers) each move a few hundred of the
blended vertices (the body's 13,380, the helper eyeballs, the skeleton's joint cubes).
The blend computes them as column blocks of the field matrix, one BLAS product per
block over just the features active there. In 512-vertex runs of
base.obj's order a block touches many unrelated fields: the padded products did 4.1x
the work of the fields' true rows. So a block here is a set of 64-vertex segments:

* segments sorted by the set of fields that touch them, the widest fields deciding
  first (a decision tree: regions, then sub-regions), so that neighbours in that order
  share their fields;
* block boundaries chosen by dynamic programming on that order, minimising
  sum(active x rows) plus a per-block cost (the call, gathering its features' strengths).

The padded work drops to about 2.3x the non-zero pairs (the breast macro targets,
which the rig blends as local fields, included). A block's product lands in the
output in a few pieces (runs of consecutive segments), so the output keeps base.obj's
vertex order: reordering 12-byte vertices per avatar costs more than this saves (a
gather by vertex ran 4x slower than the row copies the rig does anyway). Template-only
work, done once at build (a few tenths of a second).
"""
from __future__ import annotations

import functools

import numpy as np

BLOCK_COST = 2000   # a block's fixed cost, in (feature x vertex) pairs of the product
FEATURE_COST = 32   # gathering one feature's strengths for a block, in pairs
MAX_ROWS = 512      # vertices per block at most (a block's product stays in cache)
SEGMENT = 64        # vertices per segment: blocks are made of whole segments of base.obj's order


def local_blocks(fields, n: int) -> list[tuple[list[tuple[slice, slice]], np.ndarray, np.ndarray]]:
    """The block-sparse field matrix over blended vertices 0..n-1.

    Returns a list of (pieces, active, D): the block's product ``G[:, active] @ D``
    (D is (len(active), 3 * rows) float32, features in field order, so an avatar's sums
    run in the same order whatever the layout) is added to the output in pieces:
    ``X[:, x] += part[:, p]`` for each (x, p) in pieces, x and p column slices.

    Parameters
    ----------
    fields : list of (rows (k,) int, deltas (k, 3))
        The local fields; rows >= n (the eyeballs' own vertices) are ignored.
    n : int
        The number of blended vertices.
    """
    touch = _incidence(fields, n)
    starts = np.arange(0, n, SEGMENT)
    seg = np.logical_or.reduceat(touch, starts, axis=0)  # (segments, fields): who touches a segment
    sizes = np.diff(np.append(starts, n))
    width = seg.sum(axis=0)
    by_width = np.argsort(-width, kind="stable")
    by_width = by_width[width[by_width] < len(starts)]  # a field on every segment (the rest pose) orders nothing
    # np.lexsort's last key is the primary one: the widest field first
    order = np.lexsort(seg[:, by_width[::-1]].T) if len(by_width) else np.arange(len(starts))
    cuts = _cuts(seg[order], sizes[order])
    out = []
    block_of = np.empty(n, np.int64)   # each vertex's block and column (vertex) in its block's product
    column = np.empty(n, np.int64)
    layout = []
    for b, (i, j) in enumerate(zip(cuts[:-1], cuts[1:])):
        segs = np.sort(order[i:j])  # in base.obj's order: neighbouring segments make one piece
        verts = np.concatenate([np.arange(starts[s], starts[s] + sizes[s]) for s in segs])
        block_of[verts], column[verts] = b, np.arange(len(verts))
        pieces, first = [], 0
        for k in range(1, len(verts) + 1):
            if k == len(verts) or verts[k] != verts[k - 1] + 1:
                pieces.append((slice(3 * verts[first], 3 * verts[k - 1] + 3), slice(3 * first, 3 * k)))
                first = k
        layout.append((pieces, len(verts)))
    found: list[list] = [[] for _ in layout]
    for k, (rows, d) in enumerate(fields):  # each field's rows split by block (sorted, stable)
        keep = rows < n
        r, d = rows[keep], np.asarray(d, np.float32)[keep]
        by = np.argsort(block_of[r], kind="stable")
        r, d = r[by], d[by]
        blocks, first = np.unique(block_of[r], return_index=True)
        for b, i, j in zip(blocks, first, np.append(first[1:], len(r))):
            found[b].append((k, column[r[i:j]], d[i:j]))
    for (pieces, rows), fs in zip(layout, found):
        if not fs:  # no field touches it (the rest pose touches every vertex, so not for the rig)
            continue
        D = np.zeros((len(fs), _padded(3 * rows)), np.float32)
        view = D[:, : 3 * rows].reshape(len(fs), rows, 3)
        which = np.concatenate([np.full(len(c), i) for i, (_, c, _) in enumerate(fs)])
        view[which, np.concatenate([c for _, c, _ in fs])] = np.concatenate([d for _, _, d in fs])
        out.append((pieces, np.array([k for k, _, _ in fs], np.int64), D))
    return out


def _padded(columns: int) -> int:
    # OpenBLAS's small-matrix sgemm kernel (used for few rows) and its main kernel round the
    # same sums differently in a last partial 8 columns: products whose width is a multiple of
    # 16 give each avatar the same bytes whatever the number of rows
    return -(-columns // 16) * 16


def _cuts(seg: np.ndarray, sizes: np.ndarray) -> list[int]:
    """Block boundaries (indices into the ordered segments, 0 first, len last), by dynamic programming."""
    bits = [int.from_bytes(b, "big") for b in map(bytes, np.packbits(seg, axis=1))]
    m = len(bits)
    total = np.concatenate([[0], np.cumsum(sizes)])
    best, prev = [0.0] + [np.inf] * m, [0] * (m + 1)
    for j in range(1, m + 1):  # best[j]: the cheapest cut of the first j segments into blocks
        union = 0
        for i in range(j - 1, -1, -1):
            rows = int(total[j] - total[i])
            if rows > MAX_ROWS and i < j - 1:
                break
            union |= bits[i]
            cost = best[i] + union.bit_count() * (rows + FEATURE_COST) + BLOCK_COST
            if cost < best[j]:
                best[j], prev[j] = cost, i
    cuts, j = [m], m
    while j > 0:
        j = prev[j]
        cuts.append(j)
    return cuts[::-1]


def _incidence(fields, n: int) -> np.ndarray:
    touch = np.zeros((n, len(fields)), bool)
    for k, (rows, _) in enumerate(fields):
        touch[rows[rows < n], k] = True
    return touch



@functools.lru_cache(maxsize=1)
def rows_round_alike() -> bool:
    """Whether this process's BLAS gives equal rows of a float32 product equal bytes wherever they sit in the
    batch (checked once: 24 equal rows, 340 terms, 512 columns). The rig's batch-free bytes rest on it;
    OpenBLAS's Haswell kernel on AMD Zen 4 fails it (see ``avatar._blas_with_batch_free_rows``)."""
    rng = np.random.default_rng(0)
    w = rng.random((1, 340), dtype=np.float32)
    D = rng.standard_normal((340, 512), dtype=np.float32)
    return bool((np.repeat(w, 24, axis=0) @ D == (np.repeat(w, 2, axis=0) @ D)[0]).all())
