"""Scene sliders: the camera, lights and background of a render, declared in the rig YAML.

They leave the body alone (vertices and textures byte for byte), change the renders, keep today's
renders at their defaults, vary in datasets only when named, and are checked like every slider.
"""
from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

import avatar
import avatar.dataset as dataset
from avatar.cli.main import main
from avatar.dataset.config import config_from_text
from avatar.spec.config import ConfigError
from avatar.spec.sliders import load_rig_spec

ROOT = Path(__file__).resolve().parent.parent
KNIGHT = ROOT / "configs" / "avatars" / "knight.yaml"
HEROINE = ROOT / "configs" / "avatars" / "heroine.yaml"
ROLES = ("camera_yaw", "camera_pitch", "camera_distance", "framing", "camera_scale", "light_azimuth", "light_elevation",
         "light_intensity", "light_fill", "background_hue", "background_saturation", "background_value")


def with_scene(rig, x, **values):
    """Copy of slider values x (P,) or (n, P) with scene roles set (array units)."""
    out = np.array(x, np.float64, copy=True)
    for role, v in values.items():
        out[..., rig.spec.scene_roles[role]] = v
    return out


# -- the spec -----------------------------------------------------------------------------
def test_the_humanoid_declares_every_scene_role_once(rig):
    spec = rig.spec
    assert sorted(spec.scene_roles) == sorted(ROLES)
    assert spec.scene_sliders == sorted(spec.scene_roles.values())
    assert [spec.sliders[j].name for j in spec.scene_sliders] == [f"scene.{r}" for r in ROLES]
    assert not set(spec.scene_sliders) & set(spec.pose_sliders)
    assert not any(spec.sliders[j].moves_mesh for j in spec.scene_sliders)
    s = spec.sliders[spec.scene_roles["framing"]]
    assert s.categories == ("full_body", "bust", "face") and s.readable(s.default) == "full_body"


def test_scene_sliders_leave_vertices_and_textures_untouched(rig):
    S = rig.sample(3, seed=4)
    moved = with_scene(rig, S, camera_yaw=55, camera_pitch=-20, camera_distance=1.7, framing=2, camera_scale=1,
                       light_azimuth=-80, light_elevation=30, light_intensity=60, light_fill=0, background_hue=10,
                       background_saturation=70, background_value=30)
    assert np.array_equal(rig.vertices(S), rig.vertices(moved))
    assert np.array_equal(rig.textures(S, 64), rig.textures(moved, 64))


def test_sampling_leaves_scene_sliders_at_default_unless_asked(rig):
    spec, cols = rig.spec, rig.spec.scene_sliders
    S = rig.sample(200, seed=3, pose=True)
    assert np.array_equal(S[:, cols], np.tile(rig.defaults()[cols], (200, 1)))
    drawn = spec.sample(200, seed=3, scene=True)
    other = np.setdiff1d(np.arange(len(spec.sliders)), cols)
    assert np.array_equal(drawn[:, other], spec.sample(200, seed=3)[:, other])   # nothing else moves
    yaw = drawn[:, spec.scene_roles["camera_yaw"]]
    assert yaw.min() >= -60 and yaw.max() <= 60 and yaw.std() > 25                # uniform(-60, 60)
    assert set(np.unique(drawn[:, spec.scene_roles["framing"]])) == {0.0, 1.0, 2.0}


HEADER = "name: t\ndescription: test rig\ntemplate: humanoid\nsliders:\n"


def problems_of(tmp_path, sliders: str):
    path = tmp_path / "rig.yaml"
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(sliders), "  "))
    with pytest.raises(ConfigError) as info:
        load_rig_spec(path)
    lines = path.read_text().splitlines()
    return {p.key: p for p in info.value.problems}, path, lines


def test_scene_keys_are_checked_with_lines_and_suggestions(tmp_path):
    found, path, lines = problems_of(tmp_path, """\
        scene.yaw:
          description: Yaw.
          min: -90
          max: 90
          default: 0
          unit: deg
          scene: camera_yew
        scene.pitch:
          description: Pitch in the wrong unit and beyond 80 degrees.
          min: -100
          max: 90
          default: 0
          unit: "%"
          scene: camera_pitch
        scene.near:
          description: Closer than the fit would crop the avatar.
          min: 0.5
          max: 2
          default: 1
          scene: camera_distance
        scene.framing:
          description: Framing.
          kind: categorical
          categories: [full_body, bustt]
          scene: framing
        scene.hue:
          description: Hue.
          min: 0
          max: 360
          default: 0
          unit: deg
          scene: background_hue
        scene.hue2:
          description: The same role again.
          min: 0
          max: 360
          default: 0
          unit: deg
          scene: background_hue
        scene.moving:
          description: A scene slider that also moves the mesh.
          min: 0
          max: 100
          default: 0
          unit: "%"
          makehuman: head/head-square
          scene: light_intensity
        """)
    p = found["sliders.scene.yaw.scene"]
    assert "unknown scene role 'camera_yew'; did you mean 'camera_yaw'?" in p.message
    assert p.file == str(path) and lines[p.line - 1].strip() == "scene: camera_yew"
    p = found["sliders.scene.pitch.scene"]
    assert "needs unit: deg" in p.message or "must stay within -80 to 80" in p.message
    assert "must stay within 1 to 10" in found["sliders.scene.near.scene"].message
    assert "'bustt'" in found["sliders.scene.framing.scene"].message
    assert "did you mean 'bust'?" in found["sliders.scene.framing.scene"].message
    p = found["sliders.scene.hue2.scene"]
    assert p.message == f"scene role 'background_hue' is already set by scene.hue (line {found_line(lines, 'scene.hue:')}); each role belongs to one slider"
    assert lines[p.line - 1].strip() == "scene: background_hue"
    assert "no effects, makehuman, macro or pose" in found["sliders.scene.moving.scene"].message


def found_line(lines, text) -> int:
    return next(i for i, line in enumerate(lines, 1) if line.strip() == text)


# -- renders ----------------------------------------------------------------------------------

# sha256 of these renders by the code before scene sliders existed (commit 62aa1fa), on Mesa 22.3.6's llvmpipe.
# "views64" was renewed when the rig began blending each of MakeHuman's repeated macro files once (vertices
# moved by at most 1.2 µm): 3 of its 73,728 pixels changed, at silhouette edges; "ortho_fixed_white" did not.
BEFORE = {"views64": "91bdc5c3dcdbeb74561fcf706ac7e023a16061202774c59f2f04081e29770ecd",
          "ortho_fixed_white": "de87aa5424fb78b90d16b917841cb2b28b4ddf96f51444be54e453327ac1e5bb"}
BEFORE_GL = "4.5 (Core Profile) Mesa 22.3.6"


def test_default_scene_gives_the_renders_made_before_scene_sliders(rig, rendering):
    knight, heroine = rig.preset(KNIGHT), rig.preset(HEROINE)
    S = np.stack([rig.defaults(), knight, heroine])
    views = ("front", "three_quarter", "side", "face", "profile", 45.0)
    a = rendering.render(rig, S, views=views, size=64)
    b = rendering.render(rig, heroine, views=("front", "face"), size=96, projection="orthographic",
                         frame="fixed", background="white")
    # the same pictures through the path that reads no sliders at all (given meshes and textures)
    plain = rendering.render(rig, None, views=views, size=64, vertices=rig.vertices(S),
                             texture_maps=rig.textures(S, 256))
    assert np.array_equal(a, plain)
    assert np.array_equal(rendering.render(rig, S[1:2], views=("camera",), size=64)[:, 0], a[1:2, 0])  # = front
    from OpenGL import GL

    version = GL.glGetString(GL.GL_VERSION)
    if version is None or version.decode() != BEFORE_GL:
        pytest.skip(f"reference bytes were made with {BEFORE_GL}, this is {version!r}")
    assert hashlib.sha256(a.tobytes()).hexdigest() == BEFORE["views64"]
    assert hashlib.sha256(b.tobytes()).hexdigest() == BEFORE["ortho_fixed_white"]


def silhouette(img: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels unlike the corner (the background)."""
    return np.abs(img.astype(int) - img[0, 0].astype(int)).sum(axis=-1) > 12


def test_scene_sliders_change_the_renders_as_named(rig, rendering):
    x = rig.preset(KNIGHT)
    S = np.stack([x, with_scene(rig, x, camera_yaw=60), with_scene(rig, x, background_value=40),
                  with_scene(rig, x, light_azimuth=-70), with_scene(rig, x, light_intensity=50),
                  with_scene(rig, x, light_fill=0), with_scene(rig, x, light_fill=0, light_azimuth=-70)])
    img = rendering.render(rig, S, views=("camera", "front"), size=64)
    base, yaw, dark, lit, dim, key, key_turned = img[:, 0]
    # multisampling blends the outline with the background: "inside" are the pixels that come out the
    # same on black and on white (no background in them), "outside" those away from the silhouette
    from scipy.ndimage import binary_dilation

    black, white = (rendering.render(rig, x, views=("camera",), size=64, background=c)[0, 0] for c in ("black", "white"))
    inside, outside = (black == white).all(axis=-1), ~binary_dilation(silhouette(base))
    assert inside.sum() > 300 and outside.sum() > 2000
    assert np.any(yaw != base) and np.array_equal(img[1, 1], img[0, 1])   # yaw turns the camera view only
    # the background is the HSV colour of (216, 2%, 40%) exactly; the avatar's pixels stay as they were
    from avatar.rendering.scene import hsv_to_rgb

    want = hsv_to_rgb(np.array([216.0]), np.array([0.02]), np.array([0.40]))[0]
    assert np.array_equal(want, [100, 101, 102])
    assert np.all(dark[outside] == want) and np.array_equal(dark[inside], base[inside])
    assert np.all(img[2, 1][outside] == want)   # the named views take the scene's background too
    # light azimuth moves the shading on the body and nothing of the background
    assert np.abs(lit[inside].astype(int) - base[inside]).mean() > 3
    assert np.array_equal(lit[outside], base[outside])
    assert dim[inside].astype(int).sum() < 0.8 * base[inside].astype(int).sum()   # half the light: darker
    # the key light alone (no fill, no rim): darker, and its azimuth moves more of the shading than the rig's
    assert key[inside].astype(int).sum() < 0.9 * base[inside].astype(int).sum()
    assert np.array_equal(key[outside], base[outside])
    turned = np.abs(key_turned[inside].astype(int) - key[inside]).mean()
    assert turned > 1.5 * np.abs(lit[inside].astype(int) - base[inside]).mean(), turned


def test_camera_framing_and_distance_keep_the_avatar_in_frame(rig, rendering):
    x = rig.preset(KNIGHT)
    rows = [with_scene(rig, x, framing=f, camera_yaw=yaw, camera_pitch=pitch)
            for f in (0, 1, 2) for yaw in (-90, 90) for pitch in (-30, 45)]
    imgs = rendering.render(rig, np.stack(rows), views=("camera",), size=64)[:, 0]
    masks = [silhouette(im) for im in imgs]
    for k, m in enumerate(masks):
        assert m.mean() > 0.05, k
        assert not m[0].any(), f"framing {k // 4}: the top of the avatar is cut off"   # nothing cut at the top
    for m in masks[:4]:   # full body: nothing touches any border
        assert not (m[-1].any() or m[:, 0].any() or m[:, -1].any())
    # in an orthographic camera, twice the distance is exactly half the size
    near, far = rendering.render(rig, np.stack([x, with_scene(rig, x, camera_distance=2.0)]), views=("camera",),
                                 size=128, projection="orthographic")[:, 0]
    h = [np.ptp(np.flatnonzero(silhouette(im).any(axis=1))) + 1 for im in (near, far)]
    assert abs(h[1] - h[0] / 2) <= 1.5, h
    face = rendering.render(rig, with_scene(rig, x, framing=2), views=("camera", "face"), size=64)[0]
    assert np.array_equal(face[0], face[1])   # the face framing is the face view


def test_a_fixed_camera_scale_shows_stature_and_the_fitted_one_hides_it(rig, rendering):
    """camera_scale: fixed frames the camera view as frame="fixed" does (a fixed world size), so a tall and a
    short avatar differ in size; at fit (the default) each fills the frame alike."""
    x = rig.defaults()
    height = rig.slider_names.index("body.height")
    short, tall = x.copy(), x.copy()
    short[height], tall[height] = 0.0, 100.0
    S = np.stack([short, tall])
    fixed = with_scene(rig, S, camera_scale=1)
    for framing in (0, 2):   # full body, face
        a = rendering.render(rig, with_scene(rig, fixed, framing=framing), views=("camera",), size=64)[:, 0]
        b = rendering.render(rig, with_scene(rig, S, framing=framing), views=("camera",), size=64, frame="fixed")[:, 0]
        assert np.array_equal(a, b), framing
    h = lambda imgs: [np.ptp(np.flatnonzero(silhouette(im).any(axis=1))) + 1 for im in imgs]  # noqa: E731
    fit = h(rendering.render(rig, S, views=("camera",), size=64)[:, 0])
    at_scale = h(rendering.render(rig, fixed, views=("camera",), size=64)[:, 0])
    assert abs(fit[1] - fit[0]) <= 1, fit
    assert at_scale[1] - at_scale[0] >= 6, at_scale


def test_a_scene_traversal_shows_the_camera_view(rig, rendering):
    from avatar.rendering import pictures

    imgs, values, labels = pictures.traverse(rig, "scene.camera_yaw", 3, size=32)
    assert imgs.shape == (3, 1, 32, 32, 3) and labels == ["-90°", "0°", "90°"]
    assert np.array_equal(imgs[1, 0], rendering.render(rig, rig.defaults(), views=("front",), size=32)[0, 0])
    assert np.any(imgs[0, 0] != imgs[1, 0]) and np.any(imgs[2, 0] != imgs[0, 0])   # the camera turns


# -- datasets ------------------------------------------------------------------------------------
def cfg(**over):
    data = {"n": 8, "seed": 2, "sampler": "uniform", "vary": ["*"], "store": "unused.zarr", **over}
    return config_from_text(yaml.safe_dump(data), "<test>")


def test_star_leaves_scene_sliders_alone_and_scene_glob_varies_them(rig):
    scene = {rig.slider_names[j] for j in rig.spec.scene_sliders}
    assert not scene & set(cfg().varied) and len(cfg().varied) == len(rig.sliders) - len(scene)
    assert not scene & set(cfg(vary=["*.*"]).varied)
    assert set(cfg(vary=["scene.*"]).varied) == scene
    assert cfg(vary=["scene.camera_yaw", "body.weight"]).varied == ["body.weight", "scene.camera_yaw"]
    S = dataset.sample(cfg(vary=["scene.*"], n=50))
    assert np.all(S[:, rig.spec.scene_sliders].std(axis=0) > 0)
    with pytest.raises(ConfigError) as info:
        cfg(vary=["*.camera_yaw"])
    assert "'*.camera_yaw' matches only scene sliders" in str(info.value) and "'scene.camera_yaw'" in str(info.value)


def test_camera_view_in_a_dataset_is_the_render_of_its_sliders(rig, rendering):
    """What a dataset task computes (in this process; tests/test_export.py writes a whole store)."""
    from avatar.dataset.generate import compute_outputs

    config = cfg(vary=["scene.*", "body.weight"], n=6, outputs={"renders": {"views": ["camera", "front"], "size": 32}})
    S = dataset.sample(config)
    R = compute_outputs(rig, config.outputs, S)["renders"]
    assert np.array_equal(R, rendering.render(rig, S, views=("camera", "front"), size=32))
    assert len({r.tobytes() for r in R[:, 0]}) == 6
    with pytest.raises(ConfigError, match="unknown view 'camra'; did you mean 'camera'"):
        cfg(outputs={"renders": {"views": ["camra"]}})


def test_cli_scene_option(tmp_path, rendering, capsys):
    out = tmp_path / "k.png"
    assert main(["render", str(KNIGHT), "-o", str(out), "--views", "camera", "--size", "32",
                 "--scene", "camera_yaw=30,framing=bust,scene.background_value=50"]) == 0
    assert main(["render", str(KNIGHT), "-o", str(out), "--scene", "camera_yew=30,framing=portrait"]) == 2
    err = capsys.readouterr().err
    assert "--scene: camera_yew: not a scene slider of rig 'humanoid'; did you mean 'camera_yaw'?" in err
    assert "--scene: scene.framing: unknown category 'portrait'" in err


def test_the_scene_table_in_docs_is_current():
    from avatar.spec import docs

    text = docs.IMAGES_PAGE.read_text()
    assert docs.render(text, docs.IMAGES_PAGE) == text, "docs/images.md is stale: run `python -m avatar.spec.docs`"
