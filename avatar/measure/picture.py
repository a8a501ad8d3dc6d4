"""A picture of an avatar's measurements: its curves and lines drawn on front and side renders.

    measurement_picture(rig, values).save("m.png")

Orthographic renders at a fixed scale (``frame="fixed"``), so a world point maps to a
pixel by the camera's axes alone; the curves are drawn over the render without depth,
as MakeHuman's measure tab shows them, the half nearer the camera solid.
"""
from __future__ import annotations

import numpy as np

from avatar.rendering.core import WORLD_HEIGHT, view_rotation, render
from avatar.rendering.pictures import label_font

COLOURS = {"circumference": (214, 64, 52), "distance": (36, 110, 200), "height": (28, 150, 90)}


def _pixels(points: np.ndarray, yaw: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(m, 2) pixel positions and (m,) depth towards the camera of world points (m, 3)."""
    R = view_rotation(yaw, 0.0)
    local = points @ R                                   # right, up, back
    half = WORLD_HEIGHT / 2
    u = size / 2 * (1 + local[:, 0] / half)
    v = size / 2 * (1 - (local[:, 1] - half) / half)
    return np.stack([u, v], axis=1), local[:, 2]


def measurement_picture(rig, values, size: int = 768, names=None):
    """A PIL image: front and side views of one avatar (slider values (P,)) with its measurements."""
    from PIL import Image, ImageDraw

    x = rig.values(values)
    V = rig.vertices(x, posed=False).astype(np.float64)
    shots = _render_rest(rig, x, V, size)
    ruler = rig.ruler
    wanted = [ruler.spec[k] for k in (names or ruler.names)]
    M = ruler(V[None], [m.name for m in wanted])
    legend = max(250, size // 3)
    crops = []  # each view cut to the body's width and height, plus a margin
    for yaw in (0.0, 90.0):
        px, _ = _pixels(V[: ruler.n_body], yaw, size)
        pad = size // 24
        crops.append((max(0, int(px[:, 0].min()) - pad), min(size, int(px[:, 0].max()) + pad),
                      max(0, int(px[:, 1].min()) - pad)))
    top = min(c[2] for c in crops)
    width = legend + sum(c[1] - c[0] for c in crops)
    img = Image.new("RGB", (width, size - top), (255, 255, 255))
    left = [legend, legend + crops[0][1] - crops[0][0]]
    for k, (u0, u1, _) in enumerate(crops):
        img.paste(Image.fromarray(shots[k][top:, u0:u1]), (left[k], 0))
    draw = ImageDraw.Draw(img)
    font = label_font(max(11, size // 52))
    y_text = 10
    for m in wanted:
        colour = COLOURS.get(m.kind)
        text = f"{m.label}: {M[m.name][0]:.1f} {m.unit}"
        draw.text((8, y_text), text, font=font, fill=colour or (40, 40, 44))
        y_text += max(14, int(size / 52 * 1.4))
        for k, yaw in enumerate((0.0, 90.0)):
            for line, closed in _lines(ruler, V, m):
                px, depth = _pixels(line, yaw, size)
                px += [left[k] - crops[k][0], -top]
                ends = np.roll(np.arange(len(px)), -1)
                for i in range(len(px) - (0 if closed else 1)):
                    j = ends[i]
                    near = depth[i] + depth[j] >= 2 * np.median(depth) if closed else True
                    draw.line([tuple(px[i]), tuple(px[j])], fill=colour, width=3 if near else 1)
    return img


def _lines(ruler, V: np.ndarray, m) -> list[tuple[np.ndarray, bool]]:
    """The world polylines that show measurement ``m`` on vertices (V, 3): (points, closed)."""
    if m.kind == "circumference":
        return [(ruler.points(V, m.name), True)]
    if m.kind == "distance":
        a, b = (ruler.landmark(V, k)[0] for k in m.between)
        return [(np.stack([a, b]), False)]
    if m.kind == "height":
        p = ruler.landmark(V, m.at)[0]
        floor = V[: ruler.n_body, 1].min()
        return [(np.stack([p, [p[0], floor, p[2]]]), False)]
    return []


def _render_rest(rig, x, V, size) -> np.ndarray:
    """(2, size, size, 3) front and side orthographic renders of the rest shape at the fixed scale."""
    # a 512^2 texture: the first use of each texture size builds its texel map (12 s at 1,024^2)
    return render(rig, x[None], views=[0.0, 90.0], size=size, projection="orthographic", frame="fixed",
                  vertices=V[None].astype(np.float32), texture_size=512, lod=False)[0]
