"""Skin and tattoo textures: placement, seams, determinism, export validity."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import avatar
from avatar.skin import texture
from avatar.skin.texels import texel_map

ROOT = Path(__file__).resolve().parent.parent
SIZE = 256


@pytest.fixture(scope="module")
def tm(rig):
    return texel_map(rig.template, 512)


def tattoo_alpha(tm, region, design="crescent", vertical=50, horizontal=50, angle=0, scale=25, flip=0):
    chart = texture.charts(tm)[region]
    one = lambda x: np.array([x], np.float32)  # noqa: E731
    a = texture.tattoo_coverage(chart, design, one(vertical), one(horizontal), one(angle), one(scale),
                                one(flip), np.sqrt(tm.texel_area))[0]
    return chart, a


def centroid(chart, a):
    """Coverage-weighted centroid in chart coordinates (circular mean around limbs)."""
    w = a / a.sum()
    if chart.period:
        ang = chart.u / chart.period * 2 * np.pi
        u = np.angle((w * np.exp(1j * ang)).sum()) / (2 * np.pi) * chart.period
    else:
        u = (w * chart.u).sum()
    return np.array([u, (w * chart.v).sum()])


@pytest.mark.parametrize("region", texture.REGIONS)
def test_vertical_and_horizontal_move_the_tattoo_monotonically(tm, region):
    steps = [10, 30, 50, 70, 90]
    chart = texture.charts(tm)[region]
    v = [centroid(chart, tattoo_alpha(tm, region, "dots", vertical=s, scale=12)[1])[1] for s in steps]
    assert np.all(np.diff(v) > 0), (region, v)
    # up the region in 3D too (limbs hang down in the A-pose, so "up" is towards the body)
    pts = [(tm.points[chart.idx] * (a / a.sum())[:, None]).sum(0)
           for a in (tattoo_alpha(tm, region, "dots", vertical=s, scale=12)[1] for s in (10, 90))]
    assert pts[1][1] > pts[0][1]
    h = [centroid(chart, tattoo_alpha(tm, region, "dots", horizontal=s, scale=12)[1])[0] for s in steps]
    assert np.all(np.diff(h) > 0), (region, h)


def test_scale_grows_painted_area_with_its_square(tm):
    areas = {}
    for s in (10, 20, 40):
        chart, a = tattoo_alpha(tm, "back", "rings", scale=s)
        areas[s] = (a * tm.areas[chart.idx]).sum()  # MakeHuman's UVs are denser on some parts
    assert areas[20] / areas[10] == pytest.approx(4.0, rel=0.15)
    assert areas[40] / areas[20] == pytest.approx(4.0, rel=0.15)


def test_flip_mirrors_and_angle_rotates(tm):
    chart, a = tattoo_alpha(tm, "back", "crescent", scale=20)
    centre = centroid(chart, tattoo_alpha(tm, "back", "rings", scale=20)[1])
    base = centroid(chart, a) - centre
    flipped = centroid(chart, tattoo_alpha(tm, "back", "crescent", scale=20, flip=1)[1]) - centre
    assert base[0] < -0.005  # the crescent's body lies left of its centre
    np.testing.assert_allclose(flipped, base * (-1, 1), atol=0.003)
    turned = centroid(chart, tattoo_alpha(tm, "back", "crescent", scale=20, angle=90)[1]) - centre
    np.testing.assert_allclose(turned, (-base[1], base[0]), atol=0.003)  # +90 deg, counter-clockwise


def test_opacity_zero_is_no_tattoo(rig):
    a = rig.values({"tattoo.pattern": "star", "tattoo.opacity": 0})
    b = rig.values({"tattoo.pattern": "none"})
    assert np.array_equal(rig.textures(a, SIZE), rig.textures(b, SIZE))
    c = rig.values({"tattoo.pattern": "star", "tattoo.opacity": 100})
    assert not np.array_equal(rig.textures(c, SIZE), rig.textures(b, SIZE))


def bilinear(img, uv):
    h, w, _ = img.shape
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1.001)
    y = np.clip((1 - uv[:, 1]) * h - 0.5, 0, h - 1.001)
    x0, y0 = x.astype(int), y.astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    im = img.astype(np.float64)
    return ((im[y0, x0] * (1 - fx) + im[y0, x0 + 1] * fx) * (1 - fy)
            + (im[y0 + 1, x0] * (1 - fx) + im[y0 + 1, x0 + 1] * fx) * fy)


def test_no_visible_seams(rig):
    t = rig.template
    counts = np.bincount(t.export_index)
    seam = np.flatnonzero(counts[t.export_index] > 1)          # export vertices on a seam
    order = np.argsort(t.export_index[seam], kind="stable")
    seam = seam[order]
    first = np.unique(t.export_index[seam], return_index=True)[1]
    a = seam[first]                                             # one copy per solid vertex
    b = seam[np.r_[first[1:], len(seam)] - 1]                   # another copy
    assert (t.export_index[a] == t.export_index[b]).all() and (a != b).any()
    S = rig.sample(8, seed=5)
    S[:, rig.slider_names.index("tattoo.pattern")] = 0
    for img in rig.textures(S, 512):
        diff = np.abs(bilinear(img, t.export_uv[a]) - bilinear(img, t.export_uv[b])).max(axis=1)
        # mask edges (lips, brows) fall within a texel of the seam: allow a few
        # 1-texel steps, but the skin itself must match on both sides
        assert np.median(diff) <= 2.0 and np.percentile(diff, 95) <= 20, np.percentile(diff, [50, 95, 100])


def test_mission_example_paints_a_visible_tattoo(rig, tm):
    values = avatar.load_preset(ROOT / "configs" / "avatars" / "marked.yaml", rig)
    marked = rig.textures(values, 512).astype(int)
    bare = rig.textures(rig.values({**values, "tattoo.pattern": "none"}), 512).astype(int)
    changed = np.abs(marked - bare).sum(-1) > 60
    chart = texture.charts(tm)["chest"]
    painted = np.isin(tm.fill, chart.idx)  # chart texels and the gutter texels copying them
    assert changed.sum() > 300                   # hundreds of texels of dark ink
    assert (changed & ~painted).sum() < 0.02 * changed.sum()  # all on the chest chart
    ink = marked[changed].mean(0)
    assert ink.max() < 90                         # dark ink on light skin


def test_skin_sliders_change_the_right_places(rig, tm):
    names = np.array(rig.template.part_names)[tm.parts]
    base = rig.textures(rig.defaults(), 512)[tm.rows, tm.cols].astype(int)

    def changed(**kw):
        v = rig.values({k.replace("__", "."): val for k, val in kw.items()})
        img = rig.textures(v, 512)[tm.rows, tm.cols].astype(int)
        return np.abs(img - base).sum(1) > 12

    dark = rig.textures(rig.values({"skin.tone": 90}), 512)[tm.rows, tm.cols].astype(int)
    assert dark[np.isin(names, ["chest"])].mean() < base[np.isin(names, ["chest"])].mean() - 60
    iris = changed(skin__iris_colour="blue")
    assert iris.any() and np.isin(names[iris], ["eye_l", "eye_r"]).all()
    lips = changed(skin__lipstick=100, skin__lip_colour="red")
    assert lips.sum() > 50 and np.isin(names[lips], ["mouth", "face", "chin"]).all()
    for slider in ("skin__freckles", "skin__blush", "skin__eyeliner", "skin__eyeshadow", "skin__stubble"):
        region = changed(**{slider: 100})
        assert region.sum() > 20, slider
        head_parts = ["head", "forehead", "face", "nose", "mouth", "chin", "ear_l", "ear_r", "neck", "chest",
                      "upper_arm_l", "upper_arm_r"]  # freckles reach the shoulders
        assert np.isin(names[region], head_parts).mean() > 0.95, slider


def test_textures_are_deterministic_and_batch_independent(rig):
    S = rig.sample(6, seed=11)
    a = rig.textures(S, SIZE)
    assert np.array_equal(a, rig.textures(S, SIZE))
    assert np.array_equal(a[3], rig.textures(S[3], SIZE))
    assert a.shape == (6, SIZE, SIZE, 3) and a.dtype == np.uint8


def test_bad_appearance_values_get_config_errors(rig):
    with pytest.raises(avatar.ConfigError) as err:
        rig.values({"tattoo.pattern": "cresent", "tattoo.hue": 400})
    text = str(err.value)
    assert "did you mean 'crescent'" in text and "0 to 360" in text


def test_textured_mesh_carries_uvs_and_texture(rig):
    mesh = rig.mesh(rig.defaults(), texture_size=SIZE)
    t = rig.template
    assert len(mesh.vertices) == len(t.export_index)
    np.testing.assert_allclose(mesh.visual.uv, t.export_uv)
    assert mesh.visual.material.baseColorTexture.size == (SIZE, SIZE)
    solid = rig.mesh(rig.defaults(), textured=False)
    assert solid.is_watertight
    np.testing.assert_allclose(mesh.vertices, solid.vertices[mesh.metadata["solid_index"]])


def validator_dir():
    d = ROOT / ".tools" / "node_modules"
    return d if (d / "gltf-validator").is_dir() and shutil.which("node") else None


@pytest.mark.skipif(validator_dir() is None, reason="node or gltf-validator missing (install.sh installs them)")
def test_exported_glb_passes_the_khronos_validator(rig, tmp_path):
    from avatar.cli.main import main

    for preset in ("marked", "knight"):
        out = tmp_path / f"{preset}.glb"
        assert main(["make", str(ROOT / "configs" / "avatars" / f"{preset}.yaml"), "-o", str(out)]) == 0
        r = subprocess.run(["node", str(ROOT / "tests" / "gltf_validate.cjs"), str(validator_dir()), str(out)],
                           capture_output=True, text=True, check=True)
        report = json.loads(r.stdout)
        assert report["errors"] == 0, report["messages"]


def test_obj_export_writes_material_and_texture(rig, tmp_path):
    from PIL import Image

    from avatar.cli.main import main

    out = tmp_path / "marked.obj"
    assert main(["make", str(ROOT / "configs" / "avatars" / "marked.yaml"), "-o", str(out)]) == 0
    assert "map_Kd marked.png" in (tmp_path / "marked.mtl").read_text()
    assert out.read_text().count("mtllib marked.mtl") == 1
    assert Image.open(tmp_path / "marked.png").size == (1024, 1024)


def test_fallback_defaults_match_the_humanoid_rig(rig):
    """texture.DEFAULTS (used where a rig leaves an appearance slider out) mirror the YAML."""
    for name, default in texture.DEFAULTS.items():
        s = rig.sliders[rig.slider_names.index(name)]
        assert s.readable(s.default) == default or s.default == default, name


def test_array_inputs_are_range_checked(rig):
    x = rig.defaults()
    x[rig.slider_names.index("tattoo.pattern")] = 1.5
    with pytest.raises(ValueError, match="tattoo.pattern"):
        rig.textures(x, SIZE)
    x = rig.defaults()
    x[rig.slider_names.index("skin.lip_colour")] = 99
    with pytest.raises(ValueError, match="skin.lip_colour"):
        rig.textures(x, SIZE)


def test_hair_styles_paint_the_scalp_only(rig, tm):
    names = np.array(rig.template.part_names)[tm.parts]
    bald = rig.textures(rig.values({"hair.style": "bald"}), 512)[tm.rows, tm.cols].astype(int)
    scalp = np.isin(names, ["head", "forehead", "face", "neck"])
    covered = {}
    for style in ("buzz", "crew", "receding", "balding"):
        img = rig.textures(rig.values({"hair.style": style, "hair.colour": "black"}), 512)[tm.rows, tm.cols]
        hair = np.abs(img.astype(int) - bald).sum(1) > 30
        assert hair.sum() > 500, style
        assert scalp[hair].mean() > 0.99, style            # on the head, never the body
        top = tm.points[hair, 1].mean()
        assert top > rig.template.vertices[:, 1].max() - 0.15, style  # the upper head
        covered[style] = hair.sum()
    assert covered["receding"] < covered["crew"] and covered["balding"] < covered["crew"]
    # a higher hairline uncovers forehead
    low = rig.textures(rig.values({"hair.style": "crew", "hair.hairline": 0}), 512)[tm.rows, tm.cols]
    high = rig.textures(rig.values({"hair.style": "crew", "hair.hairline": 100}), 512)[tm.rows, tm.cols]
    assert (np.abs(low.astype(int) - bald).sum(1) > 30).sum() > (np.abs(high.astype(int) - bald).sum(1) > 30).sum()
    # default sampling gives a mix, mostly not bald
    styles = rig.sample(400, seed=1)[:, rig.slider_names.index("hair.style")]
    cats = rig.sliders[rig.slider_names.index("hair.style")].categories
    assert len(np.unique(styles)) >= 5 and (styles == cats.index("bald")).mean() < 0.3


def test_base_tone_blends_makehuman_ethnic_colours(rig, tm):
    names = np.array(rig.template.part_names)[tm.parts]
    chest = np.isin(names, ["chest"])

    def tone(**races):
        v = {f"body.{k}": races.get(k, 0) for k in ("african", "asian", "caucasian")}
        return rig.textures(rig.values(v), 512)[tm.rows, tm.cols][chest].astype(float).mean(0)

    african, asian, caucasian = tone(african=100), tone(asian=100), tone(caucasian=100)
    assert african.mean() < asian.mean() - 60 and african.mean() < caucasian.mean() - 60
    assert caucasian.mean() > asian.mean()
    # normalised like the macros: 50/50 equals 100/100, and lies between the two
    np.testing.assert_allclose(tone(african=50, caucasian=50), tone(african=100, caucasian=100), atol=0.5)
    mid = tone(african=50, caucasian=50)
    assert african.mean() < mid.mean() < caucasian.mean()
    # skin.tone lightens and darkens the blend
    light = rig.textures(rig.values({"skin.tone": 10}), 512)[tm.rows, tm.cols][chest].astype(float).mean()
    dark = rig.textures(rig.values({"skin.tone": 90}), 512)[tm.rows, tm.cols][chest].astype(float).mean()
    base = rig.textures(rig.defaults(), 512)[tm.rows, tm.cols][chest].astype(float).mean()
    assert light > base + 20 and dark < base - 20
