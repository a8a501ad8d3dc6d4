"""Figures for the rig audit and the compare report (matplotlib, Agg backend, no display).

Every function returns a matplotlib ``Figure`` (``as_png=True``: PNG bytes,
and the figure is closed) and takes ``save=PATH`` to also write a PNG.
Figures are sized to their matrices so that 83 sliders by 32 codes stay
legible: label fonts shrink with the cell size, never below 5 pt.

    from avatar.compare import figures as F
    F.heatmap(C, slider_names, slider_names, "Cosine similarity", diverging=True, save="cos.png")
    F.hinton(R, code_names, slider_names, "DCI importance")      # R: (n_codes, n_factors)
    F.explained_variance(np.cumsum(ratio), save="ev.png")        # marks 90 / 95 / 99 %
    F.bar_chart(values, names, groups=groups, xlabel="mm")
    F.image_strip(images, labels, "component 1")                  # images (n, H, W, 3) uint8
    F.traversal_comparison(rig, model, 0, "body.weight")         # latent strip above slider strip (PIL)
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

DPI = 110
GROUP_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
MARK_COLOURS = {0.9: "#55a868", 0.95: "#dd8452", 0.99: "#c44e52"}


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------
MARGIN = 3.0   # inches drawn around a figure, for labels that reach past its edges
PAD = 0.1      # inches of white kept around what is drawn (matplotlib's savefig.pad_inches)


def to_png(fig, dpi: int = DPI, close: bool = True) -> bytes:
    """PNG bytes of a matplotlib figure (closed afterwards unless ``close=False``) or of a PIL image.

    Cropped to what is drawn, as ``bbox_inches="tight"`` crops, but in one draw instead of two
    (tight measures every label in a first draw: a quarter of a figure's time): the figure is
    drawn with ``MARGIN`` inches around it, then cut to its non-white pixels plus ``PAD``.
    """
    from PIL import Image

    buf = io.BytesIO()
    if not hasattr(fig, "savefig"):     # a PIL image (the traversal sheets)
        fig.save(buf, format="PNG")
        return buf.getvalue()
    image = _drawn(fig, dpi)
    if image is None:                   # something reaches past the margin: let matplotlib measure it
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    else:
        Image.fromarray(image).save(buf, format="PNG")
    if close:
        plt.close(fig)
    return buf.getvalue()


def _drawn(fig, dpi: int) -> np.ndarray | None:
    """(H, W, 3) uint8: the figure drawn with ``MARGIN`` inches around it on white, cropped to its
    non-white pixels plus ``PAD``; None when a drawn pixel touches the margin's outer edge."""
    from matplotlib.transforms import Bbox

    w, h = fig.get_size_inches()
    box = Bbox([[-MARGIN, -MARGIN], [w + MARGIN, h + MARGIN]])
    raw = io.BytesIO()
    fig.savefig(raw, format="rgba", dpi=dpi, bbox_inches=box, facecolor="white")
    data = np.frombuffer(raw.getbuffer(), np.uint8)
    width = next(x for x in {int(np.floor(box.width * dpi)), int(np.ceil(box.width * dpi)),
                             int(round(box.width * dpi))} if data.size % (4 * x) == 0)
    rgb = data.reshape(-1, width, 4)[..., :3]
    ink = np.any(rgb != 255, axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if not len(rows):
        return rgb[:1, :1].copy()
    if rows[0] == 0 or cols[0] == 0 or rows[-1] == ink.shape[0] - 1 or cols[-1] == ink.shape[1] - 1:
        return None
    pad = int(round(PAD * dpi))
    top, left = max(rows[0] - pad, 0), max(cols[0] - pad, 0)
    return np.ascontiguousarray(rgb[top:rows[-1] + pad + 1, left:cols[-1] + pad + 1])


def _finish(fig, save=None, as_png: bool = False):
    """Write ``save`` (PNG) if given; return the figure (matplotlib or PIL), or its PNG bytes with ``as_png``."""
    if save is not None or as_png:
        data = to_png(fig, close=as_png)
        if save is not None:
            from avatar.export import atomic_write

            atomic_write(Path(save), lambda f: f.write(data))
        if as_png:
            return data
    return fig


def _font(cell_inches: float, lo: float = 5.0, hi: float = 10.0) -> float:
    """A label font (pt) that fits a cell ``cell_inches`` tall: about 70 % of it."""
    return float(np.clip(cell_inches * 72 * 0.7, lo, hi))


def _matrix_figure(n_rows: int, n_cols: int, cell: float | None = None, extra=(2.6, 1.8), max_inches=(22, 22)):
    """(fig, ax, cell size): a figure whose axes hold an n_rows x n_cols grid of square cells."""
    if cell is None:
        cell = float(np.clip(9.0 / max(n_rows, n_cols, 1), 0.12, 0.45))
    w = min(n_cols * cell + extra[0], max_inches[0])
    h = min(n_rows * cell + extra[1], max_inches[1])
    cell = min((w - extra[0]) / max(n_cols, 1), (h - extra[1]) / max(n_rows, 1))
    fig, ax = plt.subplots(figsize=(w, h))
    return fig, ax, cell


def _label_axes(ax, row_labels, col_labels, cell: float):
    fs = _font(cell)
    ax.set_xticks(np.arange(len(col_labels)))
    ax.set_xticklabels([str(c) for c in col_labels], rotation=90, fontsize=fs)
    ax.set_yticks(np.arange(len(row_labels)))
    ax.set_yticklabels([str(r) for r in row_labels], fontsize=fs)
    ax.tick_params(length=0, pad=2)


# --------------------------------------------------------------------------
# matrices
# --------------------------------------------------------------------------
def heatmap(matrix, row_labels, col_labels, title: str = "", vmin=None, vmax=None, diverging: bool = False,
            cmap=None, colorbar_label: str = "", annotate: bool | None = None, fmt: str = "{:.2f}",
            cell: float | None = None, save=None, as_png: bool = False):
    """A labelled heat map of ``matrix`` (rows, cols).

    diverging : symmetric colour scale around 0 (correlations, cosines); vmin/vmax
        default to -max|m|..max|m| then, else to the data range.
    annotate : print the values in the cells (default: when the matrix is at most 12 x 12).
    """
    M = np.asarray(matrix, np.float64)
    if M.ndim != 2 or M.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"matrix {M.shape} does not match {len(row_labels)} row and {len(col_labels)} "
                         "column labels")
    finite = M[np.isfinite(M)]
    if diverging:
        lim = float(np.abs(finite).max()) if finite.size else 1.0
        vmin = -lim if vmin is None else vmin
        vmax = lim if vmax is None else vmax
        cmap = cmap or "RdBu_r"
    else:
        vmin = float(finite.min()) if vmin is None and finite.size else vmin
        vmax = float(finite.max()) if vmax is None and finite.size else vmax
        cmap = cmap or "viridis"
    fig, ax, cell = _matrix_figure(*M.shape, cell=cell)
    im = ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=vmin, vmax=vmax, aspect="equal",
                   interpolation="nearest")
    _label_axes(ax, row_labels, col_labels, cell)
    if annotate is None:
        annotate = max(M.shape) <= 12
    if annotate:
        for (r, c), v in np.ndenumerate(M):
            if np.isfinite(v):
                red, green, blue, _ = im.cmap(im.norm(v))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.55   # white text on dark cells
                ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=_font(cell) * 0.9,
                        color="white" if dark else "black")
    cb = fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02, shrink=0.8)
    cb.ax.tick_params(labelsize=8)
    if colorbar_label:
        cb.set_label(colorbar_label, fontsize=9)
    if title:
        ax.set_title(title, fontsize=11)
    return _finish(fig, save, as_png)


def hinton(matrix, row_labels, col_labels, title: str = "", max_value: float | None = None,
           cell: float | None = None, save=None, as_png: bool = False):
    """Hinton diagram: one square per cell, its area proportional to |value| / max_value.

    matrix : (rows, cols), e.g. a DCI importance matrix (n_codes, n_factors).
    Positive values are dark squares, negative ones red outlines, on a light grid,
    so a disentangled matrix shows one big square per row.
    """
    M = np.asarray(matrix, np.float64)
    if M.ndim != 2 or M.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"matrix {M.shape} does not match {len(row_labels)} row and {len(col_labels)} "
                         "column labels")
    top = float(np.nanmax(np.abs(M))) if max_value is None and M.size else (max_value or 1.0)
    top = top if top > 0 else 1.0
    fig, ax, cell = _matrix_figure(*M.shape, cell=cell)
    ax.set_facecolor("#f4f4f6")
    # every square at once: (n, 4, 2) corners, one collection per sign
    r, c = np.nonzero(np.isfinite(M) & (M != 0))
    v = M[r, c]
    half = np.sqrt(np.minimum(np.abs(v) / top, 1.0)) * 0.46
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], np.float64)
    squares = np.stack([c, r], axis=1)[:, None, :] + half[:, None, None] * corners[None]
    ax.add_collection(PolyCollection(squares[v > 0], facecolor="#1f2a44", edgecolor="none"))
    ax.add_collection(PolyCollection(squares[v < 0], facecolor="#c44e52", edgecolor="none"))
    ax.set_xlim(-0.5, M.shape[1] - 0.5)
    ax.set_ylim(M.shape[0] - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.set_xticks(np.arange(-0.5, M.shape[1], 1), minor=True)
    ax.set_yticks(np.arange(-0.5, M.shape[0], 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    _label_axes(ax, row_labels, col_labels, cell)
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(f"{title}  (largest square = {top:.3g})", fontsize=11)
    return _finish(fig, save, as_png)


# --------------------------------------------------------------------------
# curves
# --------------------------------------------------------------------------
def _marks(curve: np.ndarray, levels=(0.9, 0.95, 0.99)) -> dict:
    out = {}
    for q in levels:
        hit = np.flatnonzero(curve >= q - 1e-12)
        if hit.size:
            out[q] = int(hit[0]) + 1
    return out


def explained_variance(curve, marks: dict | None = None, title: str = "Explained variance",
                       xlabel: str = "number of components", ylabel: str = "share of the variance explained",
                       labels: dict | None = None, save=None, as_png: bool = False):
    """Cumulative explained variance (k,) in 0..1, with the 90 / 95 / 99 % marks.

    curve : (k,) cumulative share after 1, 2, ..., k components, or a dict
        name -> such a curve to overlay several models.
    marks : {0.9: k90, 0.95: k95, 0.99: k99} (components needed; default: read
        off the first curve).
    """
    curves = curve if isinstance(curve, dict) else {"": curve}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    first = None
    for i, (name, c) in enumerate(curves.items()):
        c = np.asarray(c, np.float64)
        first = c if first is None else first
        x = np.arange(1, len(c) + 1)
        ax.plot(x, c, marker="o" if len(c) <= 40 else None, markersize=3, lw=1.6,
                color=GROUP_COLOURS[i % len(GROUP_COLOURS)], label=name or None)
    marks = _marks(first) if marks is None else marks
    for q, k in sorted(marks.items()):
        if k is None:
            continue
        col = MARK_COLOURS.get(q, "#555555")
        ax.axhline(q, color=col, lw=0.8, ls="--")
        ax.axvline(k, color=col, lw=0.8, ls=":")
        ax.annotate(f"{q:.0%}: {k}", (k, q), xytext=(4, -12), textcoords="offset points", fontsize=8,
                    color=col)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0.5, max(len(np.asarray(c)) for c in curves.values()) + 0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    if len(curves) > 1:
        ax.legend(fontsize=8, loc="lower right")
    return _finish(fig, save, as_png)


def spectrum(spectra: dict, ranks: dict | None = None, title: str = "How many dimensions the sliders span",
             save=None, as_png: bool = False):
    """Singular values (left, relative to the largest, log scale) and cumulative energy (right).

    spectra : name -> singular values (k,); ranks : name -> an
        :func:`avatar.compare.audit.effective_rank` dict (entropy rank and the 90/95/99 % counts,
        drawn as marks).
    """
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.0))
    for i, (name, sv) in enumerate(spectra.items()):
        sv = np.asarray(sv, np.float64)
        sv = sv[sv > 1e-7 * sv.max(initial=0.0)]   # below: numerical zeros, not dimensions
        if not sv.size:
            continue
        col = GROUP_COLOURS[i % len(GROUP_COLOURS)]
        x = np.arange(1, len(sv) + 1)
        r = (ranks or {}).get(name, {})
        label = name + (f" (effective rank {r['entropy']:.1f})" if "entropy" in r else "")
        a1.semilogy(x, sv / sv[0], color=col, lw=1.5, label=label)
        energy = np.cumsum(sv ** 2) / (sv ** 2).sum()
        a2.plot(x, energy, color=col, lw=1.5, label=name)
        for q, key in ((0.9, "k90"), (0.95, "k95"), (0.99, "k99")):
            if key in r:
                a2.plot([r[key]], [energy[min(r[key], len(energy)) - 1]], "o", color=col, ms=4)
    for q, col in MARK_COLOURS.items():
        a2.axhline(q, color=col, lw=0.7, ls="--")
        a2.text(1.0, q, f" {q:.0%}", color=col, fontsize=7, va="bottom", transform=a2.get_yaxis_transform())
    a1.set_xlabel("dimension (largest first)")
    a1.set_ylabel("singular value / largest")
    a1.grid(alpha=0.3, which="both")
    a1.legend(fontsize=8)
    a2.set_xscale("log")
    a2.set_xlabel("number of dimensions (log scale)")
    a2.set_ylabel("share of all movement (energy)")
    a2.set_ylim(0, 1.02)
    a2.grid(alpha=0.3, which="both")
    a2.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _finish(fig, save, as_png)


# --------------------------------------------------------------------------
# bars
# --------------------------------------------------------------------------
def bar_chart(values, labels, groups=None, title: str = "", xlabel: str = "", sort: bool = True,
              log: bool = False, threshold: float | None = None, threshold_label: str = "",
              xlim=None, save=None, as_png: bool = False):
    """Horizontal bars, one per label (largest on top when ``sort``), coloured by ``groups``.

    values : (n,) float; labels : n names; groups : n group names (a legend) or None.
    threshold : a vertical dashed line (e.g. the visibility limit).
    """
    v = np.asarray(values, np.float64)
    labels = [str(x) for x in labels]
    if len(v) != len(labels):
        raise ValueError(f"{len(v)} values but {len(labels)} labels")
    order = np.argsort(-np.nan_to_num(v, nan=-np.inf), kind="stable") if sort else np.arange(len(v))
    names = list(dict.fromkeys(groups)) if groups is not None else []
    colour = {g: GROUP_COLOURS[i % len(GROUP_COLOURS)] for i, g in enumerate(names)}
    row = float(np.clip(9.0 / max(len(v), 1), 0.14, 0.3))
    fig, ax = plt.subplots(figsize=(7.5, len(v) * row + 1.4))
    y = np.arange(len(v))
    cols = [colour[groups[i]] for i in order] if groups is not None else GROUP_COLOURS[0]
    ax.barh(y, v[order], color=cols, height=0.75, log=log)
    ax.set_yticks(y)
    ax.set_yticklabels([labels[i] for i in order], fontsize=_font(row))
    ax.set_ylim(len(v) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", alpha=0.3, which="both")
    if threshold is not None:
        ax.axvline(threshold, color="#c44e52", ls="--", lw=1)
        if threshold_label:
            ax.text(threshold, -0.6, f" {threshold_label}", color="#c44e52", fontsize=8, va="bottom")
    if xlim is not None:
        ax.set_xlim(*xlim)
    if names:
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=colour[g], label=g) for g in names], fontsize=8, loc="lower right")
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=11)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    return _finish(fig, save, as_png)


# --------------------------------------------------------------------------
# pictures
# --------------------------------------------------------------------------
def image_strip(images, labels=None, title: str = "", row_labels=None, cell_inches: float = 1.5,
                save=None, as_png: bool = False):
    """Images side by side: (n, H, W, 3) uint8 as one row, (rows, n, H, W, 3) as several, or a
    list of rows of different lengths (padded with white).

    labels : n captions under the last row, or one list of captions per row;
    row_labels : one per row (left).
    """
    if isinstance(images, (list, tuple)) and images and np.ndim(images[0]) == 4:
        images = _pad_rows([np.asarray(x) for x in images])   # rows of different lengths
    imgs = np.asarray(images)
    if imgs.ndim == 4:
        imgs = imgs[None]
    if imgs.ndim != 5 or imgs.shape[-1] not in (3, 4):
        raise ValueError(f"expected images (n, H, W, 3) or (rows, n, H, W, 3), got {imgs.shape}")
    r, n, h, w = imgs.shape[:4]
    fig, axes = plt.subplots(r, n, figsize=(n * cell_inches * w / h + (0.8 if row_labels else 0.1),
                                            r * (cell_inches + 0.25) + (0.45 if title else 0.1)),
                             squeeze=False)
    for i in range(r):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(imgs[i, j])
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            nested = labels is not None and len(labels) and isinstance(labels[0], (list, tuple))
            if labels is not None and (i == r - 1 or nested):
                row = labels[i] if nested else labels
                ax.set_xlabel(str(row[j]) if j < len(row) else "", fontsize=8)
            if row_labels is not None and j == 0:
                ax.set_ylabel(str(row_labels[i]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.3)
    return _finish(fig, save, as_png)


def _pad_rows(rows: list) -> np.ndarray:
    """Stack rows of (n_i, H, W, 3) images into (r, max n_i, H, W, 3), padding with white."""
    n = max(len(x) for x in rows)
    out = np.full((len(rows), n, *rows[0].shape[1:]), 255, np.uint8)
    for i, x in enumerate(rows):
        out[i, :len(x)] = x
    return out


def latent_traversal_images(rig, model, component, steps: int = 7, sd: float = 2.0, views=("front",),
                            size: int = 160, base=None, textures: bool | None = None, **render_kw):
    """Render one latent component (or several) from ``-sd`` to ``+sd`` standard deviations.

    Every other component stays at ``base`` (default: ``model.code_mean_``); the codes
    ``base + t * code_std_[component]`` are decoded with
    :func:`avatar.latent.decode_vertices` (and painted with
    :func:`avatar.latent.decode_textures` when the model models textures and
    ``textures`` is not False) and rendered with :func:`avatar.render`, all in one call, each
    distinct code once (the components share their middle step). Returns ``(images (steps,
    n_views, H, W, 3) uint8, labels)``; for a sequence of components, images are
    ``(len(components), steps, n_views, H, W, 3)``.
    """
    import avatar
    import avatar.latent as L

    k = int(model.n_components)
    several = np.ndim(component) == 1
    comps = np.atleast_1d(np.asarray(component, np.int64))
    if comps.size == 0 or comps.min() < 0 or comps.max() >= k:
        raise ValueError(f"component {component} out of range: the model has {k} components")
    mean = np.asarray(model.code_mean_ if base is None else base, np.float64)
    std = np.asarray(model.code_std_, np.float64)
    t = np.linspace(-sd, sd, steps)
    Z = np.repeat(mean[None], len(comps) * steps, axis=0)            # (components x steps, k)
    rows = np.arange(len(Z))
    cols = np.repeat(comps, steps)
    Z[rows, cols] = mean[cols] + np.tile(t, len(comps)) * std[cols]
    labels = [f"{x:+.1f} sd" for x in t]
    # every component's middle step is the same code (the base): decode and draw each code once
    Z, again = np.unique(Z, axis=0, return_inverse=True)
    ft = getattr(model, "features_", None)
    if ft is not None and "vertices" not in ft.names and "renders" in ft.names:
        # a latent of pictures (a conv VAE on renders): its decoded images are the traversal
        imgs = upscale(ft.inverse(model.inverse_transform(Z))["renders"], size)   # (n, views, s, s, 3)
    else:
        V = L.decode_vertices(model, Z)
        tex = None
        if textures is not False:
            try:
                tex = L.decode_textures(model, Z)
            except ValueError:
                if textures:
                    raise
        render_kw.setdefault("frame", "fixed")  # one scale for every step, so sizes compare
        imgs = avatar.render(rig, None, vertices=V, texture_maps=tex, views=views, size=size,
                             textures=tex is not None, **render_kw)
    imgs = imgs[again.ravel()].reshape(len(comps), steps, *imgs.shape[1:])
    return (imgs if several else imgs[0]), labels


def upscale(images: np.ndarray, size: int) -> np.ndarray:
    """(..., s, s, 3) uint8 -> (..., S, S, 3) by repeating pixels, S the largest multiple of s <= size
    (at least s): small decoded images stay sharp beside rendered strips."""
    s = images.shape[-2]
    f = max(1, int(size) // s)
    return np.repeat(np.repeat(images, f, axis=-3), f, axis=-2)


def slider_traversal_images(rig, slider: str, steps: int = 7, views=("front",), size: int = 160, base=None,
                            values=None, **render_kw):
    """One slider from min to max (all levels for bool / categorical; or through ``values``), the others
    at ``base`` (default: their defaults). Returns ``(images (steps, n_views, H, W, 3), labels)``."""
    from avatar.rendering.pictures import traverse

    if rig.sliders[rig.spec.index(slider)].scene:
        views = ("camera",)          # a camera, light or background slider shows in the camera it sets
    render_kw.setdefault("frame", "fixed")
    imgs, _, labels = traverse(rig, slider, steps, base=base, views=views, size=size, values=values, **render_kw)
    return imgs, labels


def latent_traversal(rig, model, component: int, steps: int = 7, sd: float = 2.0, views=("front",),
                     size: int = 160, title: str | None = None, save=None, as_png: bool = False, **kw):
    """A strip of one latent component from -sd to +sd (see :func:`latent_traversal_images`)."""
    imgs, labels = latent_traversal_images(rig, model, component, steps, sd, views, size, **kw)
    title = f"component {component + 1}: -{sd:g} to +{sd:g} sd" if title is None else title
    return image_strip(imgs.transpose(1, 0, 2, 3, 4), labels, title,
                       row_labels=[str(v) for v in views] if len(views) > 1 else None, save=save, as_png=as_png)


def traversal_comparison(rig, model, component: int, slider: str | None, steps: int = 7, sd: float = 2.0,
                         views=("front",), size: int = 160, title: str | None = None, match: str = "",
                         save=None, as_png: bool = False, strip=None, **kw):
    """A latent component's strip with its best-matching slider's own strip below it: a PIL image
    (drawn with PIL, not matplotlib: a tenth of the time), or its PNG bytes with ``as_png``.

    slider : the matched slider's name, or None for the latent strip alone.
    match : text for the title, e.g. "|r| = 0.93".
    strip : callable slider -> {"base": ..., "values": ...} for the slider's strip (default: its whole
        range at the defaults), e.g. :meth:`avatar.compare.pictures.StripScene.of`.
    """
    from avatar.rendering.pictures import contact_sheet

    lat, lat_labels = latent_traversal_images(rig, model, component, steps, sd, views, size, **kw)
    rows, labels, names = [lat[:, 0]], [lat_labels], [f"component {component + 1}"]
    if slider is not None:  # a bool / categorical slider shows all its levels; rows are padded to match
        sl, sl_labels = slider_traversal_images(rig, slider, steps, views, lat.shape[-2],
                                                **(strip(slider, steps) if strip else {}))
        rows.append(sl[:, 0])
        labels.append(list(sl_labels))
        names.append(slider)
    if title is None:
        title = f"component {component + 1} (-{sd:g} to +{sd:g} sd)"
        if slider is not None:
            title += f" and its best match {slider}" + (f" ({match})" if match else "")
    grid = _pad_rows(rows)
    cells = [str(row[j]) if j < len(row) else "" for row in labels for j in range(grid.shape[1])]
    sheet = contact_sheet(grid.reshape(-1, *grid.shape[2:]), cells, cols=grid.shape[1], title=title,
                          row_labels=names)
    return _finish(sheet, save, as_png)


EFFECT_CMAP = matplotlib.colors.LinearSegmentedColormap.from_list(
    "effect", ["#dcdde2", "#fdd49e", "#fc8d59", "#d7301f", "#7f0000"])


def front_view(points, keep=None, height_px: int = 200, fill_px: float = 2.5) -> np.ndarray:
    """(H, W) int: for each pixel of a front view (x right, y up), the frontmost point drawn there.

    points : (n, 3) (+z towards the viewer); keep : (n,) bool, the points to draw.
    -1 marks the background. Pixels that no point hits but that lie within
    ``fill_px`` of one take their nearest pixel's point, closing the gaps between
    sparse points. Compute it once, then colour any per-point field through it.
    """
    from scipy.ndimage import distance_transform_edt

    pts = np.asarray(points, np.float64)
    idx = np.flatnonzero(np.ones(len(pts), bool) if keep is None else keep)
    x, y, z = pts[idx].T
    pad = 0.03 * (y.max() - y.min())
    scale = (height_px - 1) / (y.max() - y.min() + 2 * pad)
    W = int(np.ceil((x.max() - x.min() + 2 * pad) * scale)) + 1
    col = ((x - x.min() + pad) * scale).astype(np.int64)
    row = ((y.max() + pad - y) * scale).astype(np.int64)
    pix = row * W + col
    order = np.lexsort((z, pix))                        # by pixel, nearest (largest z) last
    last = np.r_[pix[order][1:] != pix[order][:-1], True]
    view = np.full(height_px * W, -1, np.int64)
    view[pix[order][last]] = idx[order][last]
    view = view.reshape(height_px, W)
    dist, (ri, ci) = distance_transform_edt(view < 0, return_indices=True)
    return np.where(dist <= fill_px, view[ri, ci], -1)


def effect_maps(points, magnitudes, labels, zoom=None, units: str = "mm", cols: int = 10,
                title: str = "", panel_inches: float = 1.3, save=None, as_png: bool = False):
    """Small multiples: where each effect acts, as the template seen from the front.

    points : (n, 3) template points (vertices, +y up, facing +z)
    magnitudes : (P, n) effect size per point (each panel scaled to its own maximum,
        printed under it); labels : P panel names; zoom : P of "body" or "head"
        (the head and neck, closer).
    Each panel shows the frontmost point at every pixel (:func:`front_view`):
    grey is no effect, dark red the panel's maximum.
    """
    pts = np.asarray(points, np.float64)
    M = np.asarray(magnitudes, np.float64)
    P = len(M)
    zoom = ["body"] * P if zoom is None else list(zoom)
    head = (pts[:, 1] > 1.45) & (np.abs(pts[:, 0]) < 0.14)
    views = {"body": front_view(pts, None, 260)}
    if "head" in zoom and head.any():
        views["head"] = front_view(pts, head, 200)
    cols = max(1, min(cols, P))
    rows = int(np.ceil(P / cols))
    top_pad = 0.45 if title else 0.1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * panel_inches, rows * panel_inches * 1.5 + top_pad),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for p in range(P):
        ax = axes.ravel()[p]
        view = views.get(zoom[p], views["body"])
        m = M[p]
        top = m.max() if m.size else 0.0
        rgba = EFFECT_CMAP(np.where(view >= 0, m[view] / top if top > 0 else 0.0, 0.0))
        rgba[view < 0] = 1.0                                     # white background
        ax.imshow(rgba, interpolation="antialiased")
        ax.set_title(str(labels[p]), fontsize=6.5, pad=1)
        ax.text(0.5, -0.01, f"max {top:.3g} {units}", transform=ax.transAxes, ha="center", va="top",
                fontsize=6, color="#444")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.2, h_pad=0.8, rect=(0, 0, 1, 1 - top_pad / fig.get_figheight()))
    return _finish(fig, save, as_png)
