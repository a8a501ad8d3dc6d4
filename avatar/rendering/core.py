"""Headless rendering of avatars: batched images, contact sheets, slider strips, turntables.

    import avatar
    rig = avatar.load_rig()
    imgs = avatar.render(rig, rig.sample(8, seed=0), views=("front", "side"), size=256)
    imgs.shape                     # (8, 2, 256, 256, 3) uint8

One pyrender ``OffscreenRenderer`` serves the whole process and is reused by
every call; each avatar's mesh is uploaded once and only the camera and the
lights (which follow the camera) move between its views. A batch is streamed
through in chunks, so the rig and the texture generator work in batches too.

The OpenGL platform is chosen before pyrender (PyOpenGL binds its platform at
import, once per process): ``backend=`` or the environment variable
``AVATAR_GL`` (``egl`` or ``osmesa``) name it; otherwise EGL is tried first and
OSMesa second. Each candidate is probed once per process in a short
subprocess with ctypes (a broken driver can crash it; it cannot crash us).
When none can start, :class:`RenderBackendError` says which packages to
install; the CLI maps it to exit status 2.

The figure faces +z with +y up, so the ``front`` camera sits on +z. Cameras
are framed from the avatar's actual bounding box in each view (``frame="auto"``),
so avatars of any height are centred and fill the frame alike;
``frame="fixed"`` uses a fixed world height instead, so sizes compare across
images; ``frame="orbit"`` fits a yaw-independent cylinder (turntables).

Scene sliders (:mod:`avatar.spec.scene`) set, per avatar, the ``camera`` view
(yaw, pitch, distance, framing, scale: ``fixed`` frames it as ``frame="fixed"``)
and the lights and background of every view
(:mod:`avatar.rendering.scene`); at their defaults the images are the same bytes
as before they existed.
"""
from __future__ import annotations

import atexit
import functools
import math
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from avatar.threads import one_blas_thread

BACKENDS = ("egl", "osmesa")
PACKAGES = "libegl1 libgl1-mesa-dri libosmesa6"
SKIN = (0.80, 0.64, 0.54)          # display (sRGB) skin colour of untextured renders
BACKGROUND = (236, 238, 241)       # display colour behind the avatar
HEAD_PARTS = ("head", "forehead", "face", "nose", "mouth", "chin", "ear_l", "ear_r", "eye_l", "eye_r")
HEAD_HEIGHT = 0.36                 # metres shown by head views with frame="fixed"
BUST_HEIGHT = 0.75                 # metres shown by bust views with frame="fixed"
BUST_PARTS = HEAD_PARTS + ("neck",)  # and the upper half of the chest (_bust_points)
WORLD_HEIGHT = 2.2                 # metres shown by body views with frame="fixed"
LOD_PIXEL_ERROR = 0.25             # simplification error allowed, in pixels (see _Geometry.lod)


class RenderBackendError(RuntimeError):
    """No OpenGL backend for headless rendering could start (the CLI exits 2)."""


# --------------------------------------------------------------------------
# views
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """A camera direction. ``yaw``: degrees around +y from the front (+z) towards
    the figure's left (+x); ``pitch``: degrees above the horizon; ``target``:
    ``"body"`` frames the whole avatar, ``"head"`` the head parts, ``"bust"`` the head, neck
    and upper chest; ``"scene"`` (the ``camera`` view) takes all of these from each avatar's scene
    sliders. ``distance``: the camera's distance as a multiple (>= 1) of the fitted one. ``frame``:
    this view's framing mode ("auto", "fixed", "orbit" as :func:`render`'s ``frame``); None (default)
    takes the render's."""

    name: str
    yaw: float = 0.0
    pitch: float = 0.0
    target: str = "body"
    margin: float = 0.08           # fraction of the half-frame left free on each side
    distance: float = 1.0
    frame: str | None = None


VIEWS = {
    "front": View("front"),
    "three_quarter": View("three_quarter", yaw=35.0, pitch=8.0),
    "side": View("side", yaw=90.0),
    "back": View("back", yaw=180.0),
    "face": View("face", yaw=0.0, target="head", margin=0.14),
    "profile": View("profile", yaw=90.0, target="head", margin=0.14),
    "camera": View("camera", target="scene"),   # the camera each avatar's scene sliders set
}


def as_view(v) -> View:
    """A :class:`View` from a view name, a yaw angle in degrees, or a View."""
    if isinstance(v, View):
        return v
    if isinstance(v, str):
        if v in VIEWS:
            return VIEWS[v]
        try:
            return View(v, yaw=float(v))
        except ValueError:
            from avatar.spec.config import did_you_mean

            raise ValueError(f"unknown view {v!r}{did_you_mean(v, VIEWS)}; "
                             f"use one of {', '.join(VIEWS)} or a yaw angle in degrees") from None
    if isinstance(v, (int, float)) and math.isfinite(v):
        return View(f"{v:g}", yaw=float(v))
    raise ValueError(f"a view is a name ({', '.join(VIEWS)}), a yaw angle or a View, not {v!r}")


# --------------------------------------------------------------------------
# backend choice (before pyrender is imported)
# --------------------------------------------------------------------------
_PROBE = r'''
import ctypes, ctypes.util, sys
from ctypes import CFUNCTYPE, POINTER, byref, c_char_p, c_int, c_uint, c_void_p


def load(names):
    errors = []
    for n in names:
        if n is None:
            continue
        try:
            return ctypes.CDLL(n)
        except OSError as e:
            errors.append(str(e))
    raise OSError("; ".join(errors) or "library not found")


def egl():
    lib = load(["libEGL.so.1", ctypes.util.find_library("EGL")])
    load(["libOpenGL.so.0", "libGL.so.1", ctypes.util.find_library("OpenGL"), ctypes.util.find_library("GL")])
    lib.eglGetProcAddress.restype = c_void_p
    lib.eglGetProcAddress.argtypes = [c_char_p]
    lib.eglGetDisplay.restype = c_void_p
    lib.eglGetDisplay.argtypes = [c_void_p]
    lib.eglInitialize.argtypes = [c_void_p, POINTER(c_int), POINTER(c_int)]
    lib.eglChooseConfig.argtypes = [c_void_p, POINTER(c_int), POINTER(c_void_p), c_int, POINTER(c_int)]
    lib.eglBindAPI.argtypes = [c_uint]
    lib.eglCreateContext.restype = c_void_p
    lib.eglCreateContext.argtypes = [c_void_p, c_void_p, c_void_p, POINTER(c_int)]
    lib.eglMakeCurrent.argtypes = [c_void_p, c_void_p, c_void_p, c_void_p]
    lib.eglDestroyContext.argtypes = [c_void_p, c_void_p]
    lib.eglTerminate.argtypes = [c_void_p]
    query = lib.eglGetProcAddress(b"eglQueryDevicesEXT")
    platform_display = lib.eglGetProcAddress(b"eglGetPlatformDisplayEXT")
    if query and platform_display:
        n, devices = c_int(0), (c_void_p * 32)()
        CFUNCTYPE(c_uint, c_int, POINTER(c_void_p), POINTER(c_int))(query)(32, devices, byref(n))
        if n.value < 1:
            return "EGL lists no rendering device (is libgl1-mesa-dri installed?)"
        dpy = CFUNCTYPE(c_void_p, c_uint, c_void_p, c_void_p)(platform_display)(0x313F, devices[0], None)
    else:
        dpy = lib.eglGetDisplay(None)
    if not dpy:
        return "no EGL display"
    major, minor = c_int(), c_int()
    if not lib.eglInitialize(dpy, byref(major), byref(minor)):
        return "eglInitialize failed (is libgl1-mesa-dri installed?)"
    try:
        attrs = (c_int * 15)(0x3033, 0x1, 0x3024, 8, 0x3023, 8, 0x3022, 8, 0x3025, 24, 0x3040, 0x8, 0x3038, 0, 0)
        config, count = c_void_p(), c_int(0)
        if not lib.eglChooseConfig(dpy, attrs, byref(config), 1, byref(count)) or count.value < 1:
            return "no EGL config with desktop OpenGL and a depth buffer"
        if not lib.eglBindAPI(0x30A2):
            return "eglBindAPI(OpenGL) failed"
        ctx_attrs = (c_int * 7)(0x3098, 4, 0x30FB, 1, 0x30FD, 0x1, 0x3038)
        ctx = lib.eglCreateContext(dpy, config, None, ctx_attrs)
        if not ctx:
            return "no OpenGL 4.1 core context"
        ok = lib.eglMakeCurrent(dpy, None, None, ctx)
        lib.eglMakeCurrent(dpy, None, None, None)
        lib.eglDestroyContext(dpy, ctx)
        return None if ok else "eglMakeCurrent without a surface failed"
    finally:
        lib.eglTerminate(dpy)


def osmesa():
    lib = load(["libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so", ctypes.util.find_library("OSMesa")])
    lib.OSMesaCreateContextAttribs.restype = c_void_p
    lib.OSMesaCreateContextAttribs.argtypes = [POINTER(c_int), c_void_p]
    lib.OSMesaMakeCurrent.argtypes = [c_void_p, c_void_p, c_uint, c_int, c_int]
    lib.OSMesaDestroyContext.argtypes = [c_void_p]
    attrs = (c_int * 11)(0x22, 0x1908, 0x30, 24, 0x33, 0x34, 0x36, 3, 0x37, 3, 0)
    ctx = lib.OSMesaCreateContextAttribs(attrs, None)
    if not ctx:
        return "no OSMesa OpenGL 3.3 core context"
    buf = ctypes.create_string_buffer(4 * 8 * 8)
    ok = lib.OSMesaMakeCurrent(ctx, buf, 0x1401, 8, 8)
    lib.OSMesaDestroyContext(ctx)
    return None if ok else "OSMesaMakeCurrent failed"

try:
    reason = {"egl": egl, "osmesa": osmesa}[sys.argv[1]]()
except OSError as e:
    reason = "library not found (" + str(e) + ")"
except Exception as e:
    reason = type(e).__name__ + ": " + str(e)
print(reason or "ok")
sys.exit(0 if reason is None else 1)
'''

_probes: dict[str, str | None] = {}   # backend -> None when it works, else why not
_lock = threading.Lock()
_state: dict = {"backend": None, "renderer": None, "thread": None}


def _probe(name: str) -> str | None:
    """None when backend ``name`` can create an OpenGL context, else the reason (a subprocess)."""
    env = dict(os.environ)
    env.pop("DISPLAY", None)  # as pyrender does: never an X server
    try:
        p = subprocess.run([sys.executable, "-S", "-c", _PROBE, name], capture_output=True,
                           text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"probe failed ({err})"
    if p.returncode == 0:
        return None
    if p.returncode < 0:
        return f"the probe crashed (signal {-p.returncode})"
    return (p.stdout.strip().splitlines() or [p.stderr.strip() or f"exit {p.returncode}"])[-1]


def _probed(name: str) -> str | None:
    if name not in _probes:
        _probes[name] = _probe(name)
    return _probes[name]


def _bound_platform() -> str | None:
    """The platform PyOpenGL is already bound to in this process, if it was imported."""
    if "OpenGL.platform" not in sys.modules:
        return None
    return os.environ.get("PYOPENGL_PLATFORM", "").lower() or "default"


def _no_backend(tried: dict[str, str | None]) -> RenderBackendError:
    detail = "; ".join(f"{k}: {v}" for k, v in tried.items())
    return RenderBackendError(
        f"no OpenGL backend for headless rendering could start ({detail}). "
        f"Install the system packages with: sudo apt-get install {PACKAGES} "
        f"(Debian/Ubuntu), then retry; AVATAR_GL=egl or AVATAR_GL=osmesa picks one.")


def choose_backend(backend: str | None = None) -> str:
    """The OpenGL platform renders use in this process: 'egl' or 'osmesa'.

    ``backend`` (or else ``AVATAR_GL``) forces one; otherwise EGL, then OSMesa.
    Raises :class:`RenderBackendError` when none can start.
    """
    forced = backend or os.environ.get("AVATAR_GL") or None
    if forced is not None:
        forced = forced.strip().lower()
        if forced not in BACKENDS:
            source = "backend=" if backend else "AVATAR_GL="
            raise RenderBackendError(
                f"{source}{forced!r} is not a rendering backend; use one of {', '.join(BACKENDS)}")
    with _lock:
        chosen = _state["backend"]
        if chosen is not None:
            if forced and forced != chosen:
                raise RenderBackendError(
                    f"this process already renders with {chosen}; PyOpenGL binds its platform once per "
                    f"process, so render with {forced} in a new process (AVATAR_GL={forced})")
            return chosen
        bound = _bound_platform()
        if bound is not None and bound not in BACKENDS:
            raise RenderBackendError(
                f"PyOpenGL was imported before avatar chose a headless platform (PYOPENGL_PLATFORM="
                f"{os.environ.get('PYOPENGL_PLATFORM', 'unset')}); import avatar.rendering.core first or set "
                f"PYOPENGL_PLATFORM=egl (or osmesa) before importing OpenGL or pyrender")
        if bound is not None:
            candidates = [bound]
            if forced and forced != bound:
                raise RenderBackendError(
                    f"PyOpenGL is already bound to {bound} in this process; use a new process for {forced}")
        elif forced:
            candidates = [forced]
        else:
            preferred = os.environ.get("PYOPENGL_PLATFORM", "").lower()
            candidates = sorted(BACKENDS, key=lambda b: b != preferred)
        tried = {}
        for name in candidates:
            tried[name] = _probed(name)
            if tried[name] is None:
                os.environ["PYOPENGL_PLATFORM"] = name
                _state["backend"] = name
                return name
        raise _no_backend(tried)


def _renderer(width: int, height: int, backend: str | None):
    """The process's one OffscreenRenderer, sized (width, height)."""
    name = choose_backend(backend)
    r = _state["renderer"]
    if r is None:
        try:
            import pyrender

            r = pyrender.OffscreenRenderer(width, height)
        except Exception as err:  # the probe passed, but pyrender could not start
            raise _no_backend({name: f"{type(err).__name__}: {err}".strip(": ")}) from err
        _state["renderer"], _state["thread"] = r, threading.get_ident()
        atexit.register(_close)
    elif _state["thread"] != threading.get_ident():
        raise RuntimeError("an OpenGL context belongs to the thread that made it: render from one "
                           "thread per process (use processes, not threads, for parallel rendering)")
    r.viewport_width, r.viewport_height = width, height
    return r


def reset() -> None:
    """Close the process's renderer; the next render starts a fresh OpenGL context.

    Images do not depend on it (lights are summed in a fixed order, and llvmpipe's
    output does not depend on its thread count), but a long-lived process can call
    it to free the context's memory; dataset workers do at the start of every shard.
    """
    _close()


def _close() -> None:
    r, _state["renderer"] = _state["renderer"], None
    if r is not None:
        try:
            r.delete()
        except Exception:
            pass


# --------------------------------------------------------------------------
# per-template geometry (cached)
# --------------------------------------------------------------------------
class _Draw(NamedTuple):
    """One drawable version of the template; everything but the avatar's positions is fixed."""

    used: np.ndarray | None    # (m,) the export (textured) or template (solid) vertices it keeps; None: all
    faces: np.ndarray          # (f, 3) uint32 over those m vertices
    index: np.ndarray | None   # (m,) template vertex of each: positions = v[index]; None: v itself
    attr: np.ndarray           # (m, 2) UVs (textured) or (m, 4) part colours (solid)


class _Geometry:
    """What rendering needs from a template, computed once per template."""

    def __init__(self, template):
        from avatar.body.template import VertexNormals

        self.faces = np.asarray(template.faces, np.uint32)
        self.normals = VertexNormals(template.faces, len(template.vertices))   # normals(v) -> (V, 3) float32
        self.head = np.flatnonzero(template.part_mask(*[p for p in HEAD_PARTS if p in template.part_names]))
        self.bust = np.flatnonzero(template.part_mask(*[p for p in BUST_PARTS if p in template.part_names]))
        self.chest = np.flatnonzero(template.part_mask("chest")) if "chest" in template.part_names else self.bust[:0]
        self.export_index = np.asarray(template.export_index)
        self.export_uv = np.asarray(template.export_uv, np.float32)
        self.export_faces = np.asarray(template.export_faces, np.uint32)
        self.colors = _flat_colors(template)
        # the full mesh, textured (seam-split, UV-mapped) and solid (part colours)
        self.full = (_Draw(None, self.export_faces, self.export_index, self.export_uv),
                     _Draw(None, self.faces, None, self.colors))
        self.template_vertices = np.asarray(template.vertices, np.float32)
        self.extent = float(np.ptp(np.asarray(template.vertices), axis=0).max())
        self._lods: dict[int, tuple[_Draw, _Draw] | None] = {}

    def lod(self, pixel: float) -> tuple[_Draw, _Draw] | None:
        """Fewer triangles for small images, or None for the full mesh.

        Returns the textured (seam-split) and solid versions as :class:`_Draw` records, each
        over only the vertices it uses (``used``: export or template vertex numbers).

        ``pixel`` is the size of one pixel on the avatar, in metres. llvmpipe's cost grows
        with triangle count (about 0.5 us each), and at 128 pixels most of the 50k faces
        are smaller than a pixel; an edge-collapse simplification (meshoptimizer) whose
        error stays under a quarter pixel looks the same and draws several times faster.
        Its vertices are a subset of the template's, so every avatar's deformed vertices
        (and full-resolution normals) carry over unchanged; UV seams are locked.
        """
        level = int(math.floor(math.log2(max(LOD_PIXEL_ERROR * pixel / self.extent, 1e-9) / 1e-4)))
        if level < 0:
            return None
        if level not in self._lods:
            self._lods[level] = self._simplify(1e-4 * 2.0 ** level)
        return self._lods[level]

    def _simplify(self, error: float):
        import meshoptimizer as mo

        positions = np.ascontiguousarray(self.template_vertices[self.export_index], np.float32)
        indices = np.ascontiguousarray(self.export_faces.ravel())
        out = np.zeros_like(indices)
        n = mo.simplify(out, indices, positions, target_index_count=len(indices) // 50,
                        target_error=error, options=mo.SIMPLIFY_LOCK_BORDER)
        if n > 0.6 * len(indices):  # not worth a second mesh
            return None
        textured = out[:n].reshape(-1, 3)
        used_e, faces_e = _compact(textured)
        used_s, faces_s = _compact(self.export_index[textured])
        return (_Draw(used_e, faces_e, self.export_index[used_e], self.export_uv[used_e]),
                _Draw(used_s, faces_s, used_s, self.colors[used_s]))


_geometry_cache: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _geometry(template) -> _Geometry:
    g = _geometry_cache.get(template)
    if g is None:
        g = _geometry_cache[template] = _Geometry(template)
    return g


def _linear(rgb) -> np.ndarray:
    c = np.asarray(rgb, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _flat_colors(template) -> np.ndarray:
    """(V, 4) linear vertex colours for untextured renders: skin, and eyes with an iris."""
    colors = np.tile(np.append(_linear(SKIN), 1.0), (len(template.vertices), 1)).astype(np.float32)
    for eye in ("eye_l", "eye_r"):
        if eye not in template.part_names:
            continue
        idx = np.flatnonzero(template.part_mask(eye))
        p = template.vertices[idx]
        centre = (p.max(axis=0) + p.min(axis=0)) / 2
        d = p - centre
        cos = d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-12)   # towards +z, where the eye looks
        rgb = np.where((cos > 0.93)[:, None], (0.05, 0.04, 0.04),
                       np.where((cos > 0.80)[:, None], (0.30, 0.20, 0.12), (0.92, 0.90, 0.88)))
        colors[idx, :3] = _linear(rgb)
    return colors


# --------------------------------------------------------------------------
# cameras and lights
# --------------------------------------------------------------------------
def view_rotation(yaw: float, pitch: float) -> np.ndarray:
    """Columns: the camera's right, up and back (it looks along -back) in world axes."""
    y, p = math.radians(yaw), math.radians(pitch)
    back = np.array([math.sin(y) * math.cos(p), math.sin(p), math.cos(y) * math.cos(p)])
    right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    return np.stack([right, up, back], axis=1)


# directions towards each light in the camera's axes (right, up, back), colour, intensity
LIGHTS = (
    ("key", (-0.80, 0.60, 0.60), (1.00, 0.96, 0.90), 3.4),
    ("fill", (0.90, 0.00, 0.50), (0.85, 0.90, 1.00), 0.9),
    ("rim", (0.45, 0.50, -1.00), (1.00, 1.00, 1.00), 3.0),
)
AMBIENT = 0.16


def _light_basis(u) -> np.ndarray:
    """Rotation whose +z is ``u`` (a directional light shines along its -z)."""
    z = np.asarray(u, np.float64) / np.linalg.norm(u)
    x = np.cross([0.0, 1.0, 0.0], z)
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.array([1.0, 0.0, 0.0])
    return np.stack([x, np.cross(z, x), z], axis=1)


_LIGHT_BASES = [_light_basis(u) for _, u, _, _ in LIGHTS]


@dataclass
class _Shot:
    pose: np.ndarray       # (4, 4) camera to world
    mag: float             # orthographic half-height of the frame
    znear: float
    zfar: float


def _frame(view: View, body: np.ndarray, head: np.ndarray, *, perspective: bool, frame: str,
           aspect: float, tan_half: float, world_height: float, bust: np.ndarray | None = None) -> _Shot:
    """Place the camera for one view of one avatar.

    body, head, bust : (3, m) float64 points (transposed, so reductions run along rows); bust
    is needed only by a view whose target is "bust".
    """
    R = view_rotation(view.yaw, view.pitch)
    pts = {"head": head, "bust": bust}.get(view.target, body)
    local = R.T @ pts                                   # (3, m): right, up, back
    lo, hi = local.min(axis=1), local.max(axis=1)
    fill = 1.0 - view.margin
    if frame == "auto":
        cx, cy = (lo[:2] + hi[:2]) / 2
        half = max((hi[1] - lo[1]) / 2, (hi[0] - lo[0]) / 2 / aspect) / fill
        if perspective:
            ty = tan_half * fill
            reach = np.maximum(np.abs(local[1] - cy) * (1 / ty), np.abs(local[0] - cx) * (1 / (ty * aspect)))
            dist = float(np.max(local[2] + reach))
    elif frame == "fixed":
        if view.target in ("head", "bust"):
            centre_w = (pts.max(axis=1) + pts.min(axis=1)) / 2   # follows the head, fixed scale
            half = (HEAD_HEIGHT if view.target == "head" else BUST_HEIGHT) / 2
        else:
            centre_w = np.array([0.0, world_height / 2, 0.0])   # the world's vertical axis
            half = world_height / 2
        cx, cy, cz = R.T @ centre_w
        if perspective:
            dist = cz + half / tan_half
    elif frame == "orbit":
        wlo, whi = pts.min(axis=1), pts.max(axis=1)
        axis = (wlo + whi) / 2
        r = float(np.sqrt(np.max((pts[0] - axis[0]) ** 2 + (pts[2] - axis[2]) ** 2)))
        p = math.radians(view.pitch)
        half_h = (whi[1] - wlo[1]) / 2 * math.cos(p) + r * abs(math.sin(p))
        half = max(half_h, r / aspect) / fill
        cx, cy, cz = R.T @ axis
        if perspective:
            dist = cz + r + max(half_h, r / aspect) / (tan_half * fill)
    else:
        raise ValueError(f"frame must be 'auto', 'fixed' or 'orbit', not {frame!r}")
    if view.distance != 1.0:   # farther back (or wider): the framed part stays whole and centred
        if perspective:
            centre = (float(lo[2]) + float(hi[2])) / 2
            dist = centre + view.distance * (dist - centre)
        half = half * view.distance
    if not perspective:
        dist = float(hi[2]) + 1.0
    dist = max(float(dist), float(hi[2]) + 0.05)
    pose = np.eye(4)
    pose[:3, :3] = R
    pose[:3, 3] = R @ np.array([cx, cy, dist])
    znear = max(0.01, 0.5 * (dist - float(hi[2]))) if perspective else 0.01
    zfar = dist - float(lo[2]) + 1.0
    return _Shot(pose, float(half), znear, zfar)


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------
def _size(size) -> tuple[int, int]:
    w, h = (size, size) if np.isscalar(size) else size
    w, h = int(w), int(h)
    if w < 8 or h < 8 or w > 8192 or h > 8192:
        raise ValueError(f"image size must be 8 to 8192 pixels, got {size!r}")
    return w, h


def to_rgb(color) -> tuple[int, int, int]:
    """(r, g, b) 0-255 from '#rrggbb', a colour name, 0-1 floats or 0-255 ints."""
    if isinstance(color, str):
        from PIL import ImageColor

        try:
            return ImageColor.getrgb(color)[:3]
        except ValueError:
            raise ValueError(f"unknown colour {color!r}; use a name or #rrggbb") from None
    c = np.asarray(color, np.float64).ravel()[:3]
    if len(c) != 3 or not np.all(np.isfinite(c)) or c.min() < 0 or c.max() > 255:
        raise ValueError(f"a colour is '#rrggbb', a name, or three numbers, not {color!r}")
    if c.max() <= 1.0 and np.issubdtype(np.asarray(color).dtype, np.floating):
        c = c * 255
    return tuple(int(round(x)) for x in c)


def default_texture_size(width: int, height: int) -> int:
    """Texture atlas pixels for an image size: enough for the face close-up, cheap for thumbnails."""
    return 256 if max(width, height) <= 160 else 512 if max(width, height) <= 320 else 1024


def _slider_matrix(rig, S) -> np.ndarray:
    if isinstance(S, Mapping):
        return np.atleast_2d(rig.values(S))
    if isinstance(S, (list, tuple)) and S and isinstance(S[0], Mapping):
        return np.stack([rig.values(s) for s in S])
    return np.atleast_2d(rig.values(S))


def render_iter(rig, S, views: Sequence = ("front",), size=256, *, projection: str = "perspective",
                background=None, frame: str = "auto", world_height: float = WORLD_HEIGHT,
                fov: float = 30.0, textures: bool | None = None, texture_size: int | None = None,
                backend: str | None = None, chunk: int = 32, vertices=None,
                texture_maps=None, lod: bool = True) -> Iterator[np.ndarray]:
    """Like :func:`render`, one avatar at a time: yields (n_views, H, W, 3) uint8 arrays.

    With ``vertices`` (n, V, 3) given (a decoded latent point, say), those meshes are drawn
    instead of ``rig.vertices(S)``; ``texture_maps`` (n, s, s, 3) uint8 then paints them,
    else ``S`` (when not None) supplies the textures.
    """
    S = None if S is None else _slider_matrix(rig, S)
    if vertices is not None:
        vertices = np.asarray(vertices, np.float32).reshape(-1, rig.n_vertices, 3)
        for name, other in (("S", S), ("texture_maps", texture_maps)):
            if other is not None and len(other) != len(vertices):
                raise ValueError(f"{name} has {len(other)} rows but vertices has {len(vertices)}")
    elif S is None:
        raise ValueError("give slider values S or vertices")
    views = [as_view(v) for v in ([views] if isinstance(views, (str, View)) else views)]
    if not views:
        raise ValueError("views is empty")
    width, height = _size(size)
    proj = {"perspective": "perspective", "persp": "perspective",
            "orthographic": "orthographic", "ortho": "orthographic"}.get(str(projection).lower())
    if proj is None:
        raise ValueError(f"projection must be 'perspective' or 'orthographic', not {projection!r}")
    if frame not in ("auto", "fixed", "orbit"):
        raise ValueError(f"frame must be 'auto', 'fixed' or 'orbit', not {frame!r}")
    bg = None if background is None else to_rgb(background)
    if texture_size is None:
        texture_size = default_texture_size(width, height)
    use_tex = (texture_maps is not None or S is not None) if textures is None else bool(textures)
    if use_tex and texture_maps is None and S is None:
        raise ValueError("textures=True needs texture_maps or slider values S")
    blocks = _blocks(rig, S, vertices, texture_maps, use_tex, int(texture_size), max(1, int(chunk)), bg)
    return _stream(rig, blocks, views, width, height, proj == "perspective", frame,
                   float(world_height), float(fov), use_tex, backend, bool(lod))


def _blocks(rig, S, vertices, texture_maps, use_tex, texture_size, chunk, background):
    """Yield (vertices (b, V, 3), textures (b, s, s, 3) or None, the scene of the b avatars
    (:class:`avatar.rendering.scene.SceneBlock`)) in chunks of avatars."""
    from avatar.rendering.scene import scene_block

    n = len(vertices) if vertices is not None else len(S)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        with one_blas_thread():
            V = vertices[rows] if vertices is not None else rig.vertices(S[rows])
            T = None
            if use_tex:
                T = texture_maps[rows] if texture_maps is not None else rig.textures(S[rows], size=texture_size)
        yield V, T, scene_block(rig.spec, None if S is None else S[rows], len(V), background)


def _stream(rig, blocks, views, width, height, perspective, frame, world_height, fov, use_tex, backend,
            use_lod):
    renderer = _renderer(width, height, backend)
    import pyrender

    from avatar.rendering.scene import camera_view

    geo = _geometry(rig.template)
    aspect, tan_half = width / height, math.tan(math.radians(fov) / 2)
    scene = pyrender.Scene(bg_color=np.array([*BACKGROUND, 255]) / 255.0, ambient_light=np.full(3, AMBIENT))
    camera = (pyrender.PerspectiveCamera(yfov=math.radians(fov), aspectRatio=aspect)
              if perspective else pyrender.OrthographicCamera(xmag=1.0, ymag=1.0))
    cam_node = scene.add(camera, pose=np.eye(4))
    light_nodes = [_ordered_node(k + 1, light=pyrender.DirectionalLight(color=np.array(c), intensity=i))
                   for k, (_, _, c, i) in enumerate(LIGHTS)]
    for node in light_nodes:
        scene.add_node(node)
    flat = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0), metallicFactor=0.0,
                                              roughnessFactor=0.75)
    per_scene = any(v.target == "scene" for v in views)
    for V, T, sc in blocks:
        bases = np.einsum("nij,kjl->nkil", sc.light, np.stack(_LIGHT_BASES))   # (b, lights, 3, 3)
        for i in range(len(V)):
            _set_scene(scene, light_nodes, sc, i)
            shown = [camera_view(sc, i) if v.target == "scene" else v for v in views] if per_scene else views
            v = np.ascontiguousarray(V[i], dtype=np.float32)
            normals = geo.normals(v)
            material = flat
            if use_tex:
                tex = pyrender.Texture(source=np.ascontiguousarray(T[i][..., :3]), source_channels="RGB")
                material = pyrender.MetallicRoughnessMaterial(
                    baseColorTexture=tex, baseColorFactor=(1.0, 1.0, 1.0, 1.0),
                    metallicFactor=0.0, roughnessFactor=0.75)
            body = v.T.astype(np.float64)
            head = np.ascontiguousarray(body[:, geo.head])
            bust = _bust_points(body, geo) if any(x.target == "bust" for x in shown) else None
            shots = [_frame(view, body, head, perspective=perspective, frame=view.frame or frame, aspect=aspect,
                            tan_half=tan_half, world_height=world_height, bust=bust) for view in shown]
            lods = [geo.lod(2 * shot.mag / height) if use_lod else None for shot in shots]
            out = np.empty((len(views), height, width, 3), np.uint8)
            for lod in {id(x): x for x in lods}.values():   # usually one mesh for every view
                node = scene.add(pyrender.Mesh([_primitive(geo, v, normals, lod, material, use_tex)]))
                try:
                    for k, shot in enumerate(shots):
                        if lods[k] is lod:
                            out[k] = _shoot(renderer, scene, camera, cam_node, light_nodes, shot, perspective,
                                            aspect, bases[i])
                finally:
                    scene.remove_node(node)
            yield out


def _bust_points(body: np.ndarray, geo: _Geometry) -> np.ndarray:
    """(3, m) points a bust frames: the head, the neck and the upper half of the chest (by height).

    body : (3, V) float64 vertices of one avatar, transposed.
    """
    chest = body[:, geo.chest]
    if chest.shape[1]:
        chest = chest[:, chest[1] >= (chest[1].min() + chest[1].max()) / 2]
    return np.ascontiguousarray(np.concatenate([body[:, geo.bust], chest], axis=1))


def _compact(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(used vertex indices (m,), faces renumbered over them (f, 3) uint32)."""
    used, inverse = np.unique(faces, return_inverse=True)
    return used, inverse.reshape(faces.shape).astype(np.uint32)


def _ordered_node(order: int, **kw):
    """A pyrender node whose hash is ``order``.

    pyrender keeps lights in a set and sums their contributions in the set's
    iteration order, which for plain nodes follows their memory addresses: the same
    scene then differs by a level in the odd pixel from one process to the next.
    Small fixed hashes fix that order, and the images become reproducible byte for byte.
    """
    node = _ordered_node_class()(**kw)
    node.order = order
    return node


@functools.lru_cache(maxsize=1)
def _ordered_node_class():
    import pyrender

    class OrderedNode(pyrender.Node):
        def __hash__(self):
            return self.order

    return OrderedNode


def _primitive(geo: _Geometry, v, normals, lod, material, textured: bool):
    """The avatar as one pyrender primitive: seam-split and UV-mapped, or solid with part colours."""
    import pyrender

    d = (geo.full if lod is None else lod)[0 if textured else 1]
    pos, nrm = (v, normals) if d.index is None else (v[d.index], normals[d.index])
    if textured:
        return pyrender.Primitive(positions=pos, normals=nrm, texcoord_0=d.attr, indices=d.faces,
                                  material=material)
    return pyrender.Primitive(positions=pos, normals=nrm, color_0=d.attr, indices=d.faces, material=material)


def _set_scene(scene, light_nodes, sc, i: int) -> None:
    """Avatar i's background and light intensities (its scene sliders: intensity, fill) on the shared scene."""
    scene.bg_color = np.array([*(int(c) for c in sc.background[i]), 255]) / 255.0
    factor, fill = float(sc.intensity[i]), float(sc.fill[i])
    scene.ambient_light = np.full(3, AMBIENT * factor)
    for node, (name, _, _, intensity) in zip(light_nodes, LIGHTS):
        # the fill share dims every light but the key (x * 1.0 is x: the default keeps its bytes)
        node.light.intensity = intensity * factor if name == "key" else intensity * factor * fill


def _shoot(renderer, scene, camera, cam_node, light_nodes, shot: _Shot, perspective: bool, aspect: float,
           bases=_LIGHT_BASES):
    """Render the scene from one shot: (H, W, 3) uint8. ``bases``: each light's rotation in camera
    axes (:data:`_LIGHT_BASES` turned by the avatar's light sliders)."""
    camera.znear, camera.zfar = shot.znear, shot.zfar
    if not perspective:
        camera.ymag, camera.xmag = shot.mag, shot.mag * aspect
    scene.set_pose(cam_node, shot.pose)
    for ln, basis in zip(light_nodes, bases):
        pose = np.eye(4)
        pose[:3, :3] = shot.pose[:3, :3] @ basis
        scene.set_pose(ln, pose)
    color, _ = renderer.render(scene)
    return color[..., :3]


def render(rig, S, views: Sequence = ("front",), size=256, **kw) -> np.ndarray:
    """Render avatars: (n, n_views, H, W, 3) uint8.

    Parameters
    ----------
    rig : Rig
    S : (P,) or (n, P) slider values, a mapping of readable values (a preset), or a list of mappings;
        None when ``vertices`` is given.
    vertices : optional (n, V, 3) meshes to draw instead of the rig's (decoded latent points, say).
    texture_maps : optional (n, s, s, 3) uint8 atlases painting ``vertices``.
    views : names from :data:`VIEWS` (front, three_quarter, side, back, face, profile, and
        camera: the camera each avatar's scene sliders set), yaw angles in degrees, or
        :class:`View` objects.
    size : int or (width, height) in pixels.
    projection : "perspective" (default, 30 degree vertical field of view, ``fov=``) or "orthographic".
    background : the colour behind every avatar: "#rrggbb", a name, 0-1 floats or 0-255 ints;
        None (default): each avatar's background sliders (#eceef1 at their defaults).
    frame : "auto" (fit each view to the avatar's bounding box), "fixed" (a fixed scale:
        ``world_height`` metres for body views, 0.36 m around the head for head views) or
        "orbit" (a yaw-independent fit, for turntables).
    textures : None (use ``rig.textures`` when the rig has it), True or False.
    texture_size : pixels of the texture atlas asked of the rig (default: 256 up to
        160-pixel images, 512 up to 320, else 1024).
    backend : "egl" or "osmesa" (default: ``AVATAR_GL``, else EGL then OSMesa).
    chunk : avatars computed per batch while streaming.
    lod : draw a simplified mesh where its error stays under a quarter pixel (default True;
        same picture, several times faster for thumbnails).
    """
    S = None if S is None else _slider_matrix(rig, S)
    frames = render_iter(rig, S, views, size, **kw)   # checks the arguments
    n = (np.asarray(kw["vertices"]).size // (3 * rig.n_vertices) if kw.get("vertices") is not None
         else len(S))
    if n == 0:
        n_views = 1 if isinstance(views, (str, View)) else len(views)
        width, height = _size(size)
        return np.empty((0, n_views, height, width, 3), np.uint8)
    first = next(frames)
    out = np.empty((n, *first.shape), np.uint8)
    out[0] = first
    for i, imgs in enumerate(frames, start=1):
        out[i] = imgs
    return out
