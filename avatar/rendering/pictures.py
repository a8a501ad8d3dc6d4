"""Pictures made of renders: contact sheets, traversal strips, turntables, image files.

    from avatar import pictures
    pictures.traversal_strip(rig, "nose.scale_horiz", steps=7).save("nose.png")
    pictures.contact_sheet(images, labels, cols=4)           # (k, H, W, 3) -> a PIL image
    pictures.save_gif("turn.gif", pictures.turntable(rig, values))

Each function renders through :func:`avatar.rendering.core.render` and composes with PIL.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from avatar.export import atomic_write
from avatar.rendering.core import View, to_rgb, render


def label_font(px: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=max(8, px))
    except TypeError:  # Pillow < 10.1 or without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _label_height(cell_h: int) -> int:
    return max(14, int(round(cell_h * 0.09)))


def _draw_centred(draw, box, text, font, fill=(40, 40, 44)):
    x0, y0, x1, y1 = box
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    draw.text((x0 + (x1 - x0 - (r - l)) / 2 - l, y0 + (y1 - y0 - (b - t)) / 2 - t), text, font=font, fill=fill)


def contact_sheet(images: np.ndarray, labels: Sequence[str], cols: int | None = None,
                  background=(255, 255, 255), title: str | None = None, row_labels: Sequence[str] | None = None):
    """A grid of images (k, H, W, 3), each with its label below: a PIL image.

    ``cols`` defaults to a near-square grid. With ``title``, a title row on top; with
    ``row_labels`` (one per row), a left margin naming each row.
    """
    from PIL import Image, ImageDraw

    images = np.asarray(images)
    k, h, w = images.shape[:3]
    if len(labels) != k:
        raise ValueError(f"{k} images but {len(labels)} labels")
    cols = max(1, min(k, cols or math.ceil(math.sqrt(k * h / w))))
    rows = math.ceil(k / cols)
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{rows} rows but {len(row_labels)} row labels")
    lab = _label_height(h)
    top = lab + 4 if title else 0
    font = label_font(int(lab * 0.72))
    left = 0
    if row_labels is not None:
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        left = 8 + max(measure.textbbox((0, 0), str(t), font=font)[2] for t in row_labels)
    sheet = Image.new("RGB", (left + cols * w, top + rows * (h + lab)), to_rgb(background))
    draw = ImageDraw.Draw(sheet)
    if title:
        _draw_centred(draw, (0, 0, left + cols * w, top), title, label_font(int(lab * 0.8)), fill=(20, 20, 24))
    for r, text in enumerate(row_labels or ()):
        _draw_centred(draw, (0, top + r * (h + lab), left, top + r * (h + lab) + h), str(text), font)
    for i in range(k):
        r, c = divmod(i, cols)
        x, y = left + c * w, top + r * (h + lab)
        sheet.paste(Image.fromarray(images[i]), (x, y))
        _draw_centred(draw, (x, y + h, x + w, y + h + lab), str(labels[i]), font)
    return sheet


def format_value(slider, value) -> str:
    """A slider value with its unit, for labels: '150 cm', '25%', '10°', 'true', 'round'."""
    if slider.kind == "categorical":
        return str(slider.categories[int(round(value))])
    if slider.kind == "bool":
        return "true" if value >= 0.5 else "false"
    text = f"{int(round(value))}" if slider.kind == "integer" else f"{value:.1f}".removesuffix(".0")
    from avatar.spec.sliders import unit_suffix

    unit = unit_suffix(slider.unit)
    return text + unit


def traversal_values(slider, steps: int) -> np.ndarray:
    """The values a traversal shows: ``steps`` from min to max (every category or bool value)."""
    if steps < 2 and slider.kind not in ("bool", "categorical"):
        raise ValueError("a traversal needs at least 2 steps")
    return slider.sweep(steps)


def _slider(rig, name: str):
    """The spec of slider ``name`` (KeyError with a did-you-mean)."""
    return rig.sliders[rig.spec.index(name)]


# slider groups a traversal shows in a face close-up and in profile (the rest: full body, front)
FACE_GROUPS = ("head", "forehead", "eyebrows", "eyes", "nose", "ears", "cheek", "mouth", "chin", "expression",
               "face", "hair")


def traverse(rig, slider: str, steps: int = 7, base=None, views: Sequence | None = None, size=256, values=None,
             **kw):
    """One slider from min to max (or through ``values``), the others at ``base`` (default: defaults).

    Returns ``(images (steps, n_views, H, W, 3), values (steps,), labels)``. ``views``
    defaults to the face close-up and the head in profile for face sliders, the
    front and the side for pose sliders (a joint bends in depth too), the camera
    the scene sliders set for scene sliders, and the front view otherwise.
    """
    s = _slider(rig, slider)
    j = rig.slider_names.index(slider)
    x = rig.defaults() if base is None else np.asarray(rig.values(base), np.float64)
    values = traversal_values(s, steps) if values is None else np.asarray(values, np.float64)
    S = np.repeat(x[None], len(values), axis=0)
    S[:, j] = values
    if views is None:
        views = (("camera",) if s.scene else ("face", "profile") if s.group in FACE_GROUPS
                 else ("front", "side") if s.pose else ("front",))
    kw.setdefault("frame", "fixed" if s.pose else "auto")  # a fixed scale shows the limb move, not the zoom
    imgs = render(rig, S, views=views, size=size, **kw)
    return imgs, values, [format_value(s, v) for v in values]


def traversal_strip(rig, slider: str, steps: int = 7, base=None, views: Sequence | None = None, size=256,
                    base_name: str | None = None, **kw):
    """A PIL image: one row per view of ``steps`` renders, labelled with the slider value."""
    imgs, values, labels = traverse(rig, slider, steps, base, views, size, **kw)
    n, nv = imgs.shape[:2]
    s = _slider(rig, slider)
    grid = imgs.transpose(1, 0, 2, 3, 4).reshape(n * nv, *imgs.shape[2:])
    title = f"{s.name} ({s.label})"
    if s.kind not in ("bool", "categorical"):
        title += f": {format_value(s, s.min)} to {format_value(s, s.max)}"
    if base_name:
        title += f", others as {base_name}"
    return contact_sheet(grid, labels * nv, cols=n, title=title)


def turntable(rig, values, frames: int = 36, size=384, pitch: float = 8.0, **kw) -> np.ndarray:
    """(frames, H, W, 3) uint8: the camera circles the avatar once, framing fixed across frames."""
    if frames < 1:
        raise ValueError("frames must be >= 1")
    views = [View(f"yaw{a:g}", yaw=float(a), pitch=pitch) for a in np.arange(frames) * 360.0 / frames]
    kw.setdefault("frame", "orbit")
    return render(rig, values, views=views, size=size, **kw)[0]


def save_gif(path, frames: np.ndarray, fps: float = 12.0) -> None:
    """Write frames (k, H, W, 3) uint8 as a looping GIF (atomically)."""
    from PIL import Image

    imgs = [Image.fromarray(f) for f in frames]
    atomic_write(path, lambda f: imgs[0].save(f, format="GIF", save_all=True, append_images=imgs[1:],
                                               duration=max(20, int(round(1000 / fps))), loop=0,
                                               optimize=False))


def save_image(path, image) -> None:
    """Write a PIL image or (H, W, 3) uint8 array; the format follows the suffix (atomically)."""
    from pathlib import Path

    from PIL import Image

    img = image if hasattr(image, "save") else Image.fromarray(np.asarray(image))
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".webp": "WEBP"}.get(
        Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image format; use .png, .jpg, .webp or .gif")
    atomic_write(path, lambda f: img.save(f, format=fmt))


