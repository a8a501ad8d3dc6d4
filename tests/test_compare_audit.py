"""The rig audit (avatar.compare.audit), its figures, the HTML report and `avatar audit`.

Known answers on synthetic effects and on a tiny rig written here; a quick
audit of the real humanoid rig checks that regions match slider names.
"""
from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from avatar.compare import audit as A
from avatar.compare import figures as F
from avatar.compare.report import Report

PNG = b"\x89PNG\r\n\x1a\n"

TINY_RIG = """\
name: tiny
description: A rig for the audit tests.
template: humanoid
groups:
  face: {label: Face}
  body: {label: Body}
sliders:
  face.nose_a:
    description: Nose width.
    min: 0
    max: 100
    default: 50
    unit: "%"
    effects:
      - {deformer: scale, at: nose_tip, radius: [0.03, 0.025, 0.03], amount: [0.35, 0, 0]}
  face.nose_b:
    description: The same effect under another name (redundant on purpose).
    min: 0
    max: 100
    default: 50
    unit: "%"
    effects:
      - {deformer: scale, at: nose_tip, radius: [0.03, 0.025, 0.03], amount: [0.35, 0, 0]}
  face.eye_left:
    description: Raise the left eye only.
    min: 0
    max: 10
    default: 0
    unit: mm
    effects: [{deformer: move, at: eye_l, radius: 0.03, amount: [0, 0.004, 0], side: left}]
  face.eye_right:
    description: Raise the right eye only.
    min: 0
    max: 10
    default: 0
    unit: mm
    effects: [{deformer: move, at: eye_l, radius: 0.03, amount: [0, 0.004, 0], side: right}]
  body.nothing:
    description: A slider without any effect.
    min: 0
    max: 1
    default: 0.5
  body.calf:
    description: Calf girth.
    min: -50
    max: 50
    default: 0
    unit: "%"
    effects: [{deformer: girth, bone: shin_l, span: [0.1, 0.6], amount: 0.12}]
"""


# --------------------------------------------------------------------------
# pure functions: known answers
# --------------------------------------------------------------------------
def test_cosine_identical_orthogonal_opposite_and_zero_effects():
    rng = np.random.default_rng(0)
    a = rng.standard_normal(500)
    b = rng.standard_normal(500)
    b -= (a @ b) / (a @ a) * a                       # exactly orthogonal to a
    E = np.stack([a, 3.0 * a, b, -a, np.zeros(500)])
    C = A.cosine_matrix(E)
    assert C[0, 1] == pytest.approx(1.0, abs=1e-12)
    assert C[0, 2] == pytest.approx(0.0, abs=1e-12)
    assert C[0, 3] == pytest.approx(-1.0, abs=1e-12)
    assert np.all(C[4] == 0) and np.all(C[:, 4] == 0)   # no effect: no similarity, not even to itself
    assert np.allclose(C, C.T) and np.allclose(np.diag(C)[:4], 1.0)
    names = ["a", "a3", "b", "neg", "zero"]
    pairs = A.flag_pairs(C, names, visible=np.array([1, 1, 1, 1, 0], bool))
    assert {(p["a"], p["b"]) for p in pairs} == {("a", "a3"), ("a", "neg"), ("a3", "neg")}
    assert all(p["verdict"] == "redundant" for p in pairs)
    # 0.5 <= |cos| < 0.9 is entangled, below 0.5 nothing
    c = np.array([[1.0, 0.7, 0.3], [0.7, 1.0, -0.95], [0.3, -0.95, 1.0]])
    got = {(p["a"], p["b"]): p["verdict"] for p in A.flag_pairs(c, ["x", "y", "z"])}
    assert got == {("x", "y"): "entangled", ("y", "z"): "redundant"}


def test_effective_rank_of_orthonormal_effects_is_k():
    rng = np.random.default_rng(1)
    for k in (1, 3, 10):
        Q, _ = np.linalg.qr(rng.standard_normal((400, k)))
        sv = A.singular_values(Q.T)                         # k orthonormal effect vectors
        np.testing.assert_allclose(sv[:k], 1.0, atol=1e-9)
        r = A.effective_rank(sv)
        assert r["entropy"] == pytest.approx(k, abs=1e-6)
        # equal energies: the first j dimensions hold j / k of it
        assert (r["k90"], r["k95"], r["k99"]) == tuple(int(np.ceil(q * k - 1e-9)) for q in (0.9, 0.95, 0.99))
    r = A.effective_rank([3.0, 4.0, 0.0])
    p = np.array([3, 4]) / 7
    assert r["entropy"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert r["k90"] == 2 and r["energy"][0] == pytest.approx(16 / 25)
    assert A.effective_rank(np.zeros(4))["entropy"] == 0.0
    # duplicated effects add no dimension
    Q, _ = np.linalg.qr(rng.standard_normal((400, 2)))
    assert A.effective_rank(A.singular_values(np.stack([Q[:, 0], Q[:, 0], Q[:, 1]])))["k99"] == 2


def test_nonlinearity_part_shares_and_deformation():
    d = np.array([1.0, 2.0, 0.0])
    assert A.nonlinearity(np.stack([d, d, d])) == pytest.approx(0.0)
    assert A.nonlinearity(np.stack([d, -d])) == pytest.approx(1.0)
    assert A.nonlinearity(np.zeros((3, 3))) == 0.0
    shares = A.part_shares(np.array([[1.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), np.array([0, 0, 1, 2]), 3)
    np.testing.assert_allclose(shares, [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    # a rigid translation does not deform; a uniform scaling by 1 + s deforms by s everywhere
    rng = np.random.default_rng(2)
    verts = rng.standard_normal((30, 3))
    faces = np.array([[i, (i + 1) % 30, (i + 7) % 30] for i in range(30)])
    edges = A.edges_of(faces)
    effects = np.stack([np.broadcast_to([0.1, -0.2, 0.3], verts.shape), 0.25 * verts])
    D = A.deformation(effects, verts, edges)
    np.testing.assert_allclose(D[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(D[1], 0.25, rtol=1e-5)


def test_block_effect_continuous_and_levels():
    rng = np.random.default_rng(3)
    R, n = 5, 40
    base = rng.standard_normal((R, 3 * n)).astype(np.float32)
    slope = rng.standard_normal(3 * n).astype(np.float32)
    lo, hi = rng.uniform(0, 4, R), rng.uniform(5, 9, R)
    X = np.stack([base + lo[:, None] * slope, base + hi[:, None] * slope], axis=1)   # exactly linear
    eff, per_point, nl, rows, pair = A.block_effect(X, hi - lo, 10.0, n)
    np.testing.assert_allclose(eff, 10.0 * slope, rtol=1e-4)
    np.testing.assert_allclose(per_point, 10.0 * np.linalg.norm(slope.reshape(n, 3), axis=1), rtol=1e-4)
    assert nl == pytest.approx(0.0, abs=1e-5) and pair is None and rows.shape == (1, 3 * n)
    # levels: the two farthest apart give the effect; contrasts of a bool keep its energy
    levels = np.stack([base, base + 1.0, base + 5.0], axis=1)                        # (R, 3, d)
    eff, per_point, nl, rows, pair = A.block_effect(levels, None, 1.0, n)
    assert pair == (0, 2)
    np.testing.assert_allclose(eff, 5.0, rtol=1e-5)
    two = np.stack([base, base + slope], axis=1)
    _, _, _, rows, _ = A.block_effect(two, None, 1.0, n)
    assert (rows ** 2).sum() == pytest.approx((slope.astype(np.float64) ** 2).sum(), rel=1e-4)


def test_perturbations_stay_inside_each_range(rig):
    S = rig.sample(16, seed=4)
    blocks = A.perturbations(rig.spec, S, step=0.1)
    assert [j for j, _, _ in blocks] == list(range(len(rig.sliders)))
    for j, values, denom in blocks:
        s = rig.sliders[j]
        assert values.min() >= s.min and values.max() <= s.max
        if s.kind in ("bool", "categorical"):
            assert denom is None and values.shape == (16, 2 if s.kind == "bool" else len(s.categories))
        else:
            assert values.shape == (16, 2) and np.all(denom > 0)
            np.testing.assert_allclose(denom, values[:, 1] - values[:, 0])
    rig.values(np.concatenate([A._rows(S, j, v) for j, v, _ in blocks]))   # all valid slider rows


# --------------------------------------------------------------------------
# a tiny rig with known answers
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from avatar.body.rig import load_rig

    path = tmp_path_factory.mktemp("rig") / "tiny.yaml"
    path.write_text(TINY_RIG)
    rig = load_rig(path)
    return path, rig, A.audit_rig(rig, samples=6, seed=0, texture_size=32)


def test_tiny_rig_redundant_pair_mirror_pair_and_invisible_slider(tiny):
    _, rig, a = tiny
    i = {n: k for k, n in enumerate(a.names)}
    C = a.cosine["geometry"]
    assert C[i["face.nose_a"], i["face.nose_b"]] == pytest.approx(1.0, abs=1e-6)
    # left and right eye move different vertices: unrelated, not redundant
    assert abs(C[i["face.eye_left"], i["face.eye_right"]]) < 0.05
    pairs = a.pairs()
    assert pairs[0]["a"] == "face.nose_a" and pairs[0]["b"] == "face.nose_b"
    assert pairs[0]["verdict"] == "redundant" and pairs[0]["modality"] == "geometry"
    assert not any({"face.eye_left", "face.eye_right"} == {p["a"], p["b"]} for p in pairs)
    assert a.invisible.tolist() == [n == "body.nothing" for n in a.names]
    assert a.geometry_max_mm[i["body.nothing"]] == 0.0 and a.texture_max.max() == 0.0
    regions = dict(zip(a.names, a.region))
    assert regions["face.nose_a"] == "nose" and regions["body.calf"] in ("shin_l", "shin_r")
    assert regions["body.nothing"] == ""
    left, right = a.moved_part_share[i["face.eye_left"]], a.moved_part_share[i["face.eye_right"]]
    eye_l, eye_r = a.part_names.index("eye_l"), a.part_names.index("eye_r")
    assert left[eye_l] > 0.3 and left[eye_r] == 0 and right[eye_r] > 0.3 and right[eye_l] == 0
    # a 4 mm move at the eye's centre, over the full 0..10 range
    # 4 mm at the eye_l point (inside the eyeball); the vertex nearest it, d away (an eyelid), gets the
    # falloff's (1 - (d / 0.03)^2)^2 of it
    from avatar.body import anatomy

    d = np.linalg.norm(rig.template.vertices - anatomy.point("eye_l"), axis=1).min()
    assert a.geometry_max_mm[i["face.eye_left"]] == pytest.approx(4.0 * (1 - (d / 0.03) ** 2) ** 2, rel=0.05)
    assert a.geometry_nonlinearity[i["face.eye_left"]] == pytest.approx(0.0, abs=1e-3)
    # 5 visible sliders, 2 identical: 4 directions
    assert a.ranks["geometry_directions"]["k99"] == 4
    data = json.loads(json.dumps(a.to_json(), allow_nan=False))
    assert data["invisible"] == ["body.nothing"] and len(data["sliders"]) == len(rig.sliders)
    # geometry only: the same geometry answers
    g = A.audit_rig(rig, samples=6, seed=0, textures=False)
    np.testing.assert_allclose(g.geometry_max_mm, a.geometry_max_mm, rtol=1e-6)
    assert g.settings["texture_size"] == 0 and g.texture_max.max() == 0.0
    json.dumps(g.to_json(), allow_nan=False)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.refs, self.stack = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs.get("src", ""))
        for key in ("src", "href", "action", "data"):
            if key in attrs:
                self.refs.append(attrs[key])


def test_report_is_one_self_contained_escaped_file(tiny, tmp_path):
    from avatar.compare.audit_page import audit_figures, audit_report

    _, _, a = tiny
    pngs = audit_figures(a)
    assert {"geometry_magnitude", "geometry_cosine", "geometry_maps", "regions", "spectrum"} <= set(pngs)
    r = audit_report(a, pngs)
    r.section("<script>alert(1)</script>", "A & B <b>not bold</b>")
    r.table([("x<y", 1.5)], ["name", "value"])
    path = r.write(tmp_path / "report.html")
    text = path.read_text()
    page = _Page()
    page.feed(text)
    page.close()
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert "<script>" not in text and "&lt;script&gt;" in text and "A &amp; B &lt;b&gt;" in text
    links = [ref for ref in page.refs if not ref.startswith("data:image/png;base64,")]
    assert links and all(ref.startswith("#") for ref in links)     # in-page anchors only
    outside_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert "http" not in outside_images and "//" not in outside_images
    assert "url(" not in text and "@import" not in text
    assert len(page.imgs) >= len(pngs)
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    for words in ("entangled", "disentangled", "redundant", "effective rank"):
        assert words in text
    with pytest.raises(ValueError, match="introduction"):
        Report("t").section("s", "  ")


# --------------------------------------------------------------------------
# the real rig, quickly
# --------------------------------------------------------------------------
# where each MakeHuman group's modifiers act most, as the audit finds it (groups whose sliders all
# land in one part; head, torso, legs and the macros spread over several)
EXPECTED_REGION = {"ears": "ear", "mouth": "mouth", "eyes": "face", "breast": "chest",
                   "stomach": "abdomen", "pelvis": "pelvis", "buttocks": "pelvis", "eyebrows": "face"}


def test_real_rig_regions_match_slider_names(rig):
    # 12 avatars: enough of them carry an asymmetric tattoo for tattoo.flip to show
    a = A.audit_rig(rig, samples=12, seed=0, texture_size=128)
    assert not a.invisible.any()
    # scene sliders change renders only: no region, modality "scene", and not counted invisible
    scene = [n for n, c in zip(a.names, a.scene) if c]
    assert scene == [rig.spec.sliders[j].name for j in rig.spec.scene_sliders] and len(scene) >= 9
    head = {"head", "forehead", "face", "nose", "mouth", "chin", "ear_l", "ear_r", "eye_l", "eye_r"}
    for j, (name, region) in enumerate(zip(a.names, a.region)):
        if a.scene[j]:
            assert region == "" and a.modality[j] == "scene" and a.geometry_max_mm[j] == 0, name
            continue
        assert region in a.part_names, name
        if name.split(".")[0] in ("nose", "ears", "mouth", "eyes", "eyebrows", "cheek", "chin", "face"):
            assert {p for p, _ in a.regions(j)} & head, name
        group = name.split(".")[0]
        if group in EXPECTED_REGION:
            assert region.removesuffix("_l").removesuffix("_r") == EXPECTED_REGION[group], (name, region)
    nose = [r for n, r in zip(a.names, a.region) if n.startswith("nose.")]
    assert nose.count("nose") >= 0.8 * len(nose) == 0.8 * 21, nose  # a few nose sliders reach the cheeks most
    i = {n: k for k, n in enumerate(a.names)}
    # MakeHuman's two-armed circumference overlaps each arm's fat, the waist the belly; unrelated
    # local sliders do not overlap at all
    C = a.cosine["geometry"]
    assert C[i["arms.measure_upperarm_circ"], i["arms.l_upperarm_fat"]] > 0.4
    assert C[i["torso.measure_waist_circ"], i["stomach.pregnant"]] > 0.4
    assert abs(C[i["nose.scale_horiz"], i["legs.measure_calf_circ"]]) < 0.01
    assert a.texture_max[i["skin.tone"]] > 0.5 and a.geometry_max_mm[i["skin.tone"]] == 0.0


# --------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------
def test_figure_functions_return_png_and_save(tmp_path):
    rng = np.random.default_rng(5)
    rows, cols = [f"z{i}" for i in range(6)], [f"s{i}" for i in range(9)]
    M = rng.random((6, 9))
    out = tmp_path / "h.png"
    for data in (F.hinton(M, rows, cols, "DCI", as_png=True, save=out),
                 F.heatmap(M - 0.5, rows, cols, "r", diverging=True, as_png=True),
                 F.explained_variance(np.linspace(0.5, 1.0, 12), as_png=True),
                 F.bar_chart(M[0], cols, groups=["a"] * 4 + ["b"] * 5, as_png=True),
                 F.image_strip(rng.integers(0, 255, (4, 20, 16, 3), dtype=np.uint8), list("abcd"), "t",
                               as_png=True),
                 F.spectrum({"g": [3.0, 2.0, 1.0]}, {"g": A.effective_rank([3.0, 2.0, 1.0])}, as_png=True),
                 F.effect_maps(rng.standard_normal((50, 3)), rng.random((3, 50)), ["a", "b", "c"], as_png=True)):
        assert data.startswith(PNG)
    assert out.read_bytes().startswith(PNG)
    fig = F.heatmap(M, rows, cols)
    assert fig.get_axes() and F.to_png(fig).startswith(PNG)
    with pytest.raises(ValueError, match="labels"):
        F.heatmap(M, rows[:3], cols)
    # explained-variance marks read off the curve: 90 % at 3 components here
    assert F._marks(np.array([0.5, 0.8, 0.92, 0.96, 0.995])) == {0.9: 3, 0.95: 4, 0.99: 5}


class _StandIn:
    """The latent-model contract's few attributes, decoding a code to a stretched template."""

    def __init__(self, rig):
        self.n_components = 2
        self.code_mean_ = np.zeros(2)
        self.code_std_ = np.array([1.0, 0.5])
        self.rig = rig


def test_latent_traversal_decodes_mean_plus_minus_sd(rig, monkeypatch):
    import avatar.latent as L

    seen = []

    def decode_vertices(model, Z):
        seen.append(np.array(Z))
        V = np.repeat(model.rig.template.vertices[None].astype(np.float32), len(Z), axis=0)
        V[..., 1] *= 1.0 + 0.1 * np.asarray(Z)[:, :1]
        return V

    def decode_textures(model, Z):
        raise ValueError("the model does not model textures")

    monkeypatch.setattr(L, "decode_vertices", decode_vertices)
    monkeypatch.setattr(L, "decode_textures", decode_textures)
    rendered = {}

    def fake_render(rig_, S, vertices=None, **kw):
        rendered.update(kw, n=len(vertices), S=S)
        return np.full((len(vertices), len(kw["views"]), 24, 24, 3), 200, np.uint8)

    import avatar

    monkeypatch.setattr(avatar, "render", fake_render)
    m = _StandIn(rig)
    imgs, labels = F.latent_traversal_images(rig, m, 1, steps=5, sd=2.0, size=24)
    np.testing.assert_allclose(seen[0][:, 1], [-1.0, -0.5, 0.0, 0.5, 1.0])   # mean + t * std, t = -2..2
    np.testing.assert_allclose(seen[0][:, 0], 0.0)
    assert labels == ["-2.0 sd", "-1.0 sd", "+0.0 sd", "+1.0 sd", "+2.0 sd"]
    assert imgs.shape == (5, 1, 24, 24, 3) and rendered["S"] is None and rendered["n"] == 5
    assert rendered["textures"] is False and rendered["frame"] == "fixed"
    with pytest.raises(ValueError, match="out of range"):
        F.latent_traversal_images(rig, m, 2)
    seen.clear()
    top = int(np.argmax(np.abs(rig.template.vertices[:, 1])))

    def code_render(rig_, S, vertices=None, **kw):   # each picture tells the code 0 it was decoded from
        rendered.update(kw, n=len(vertices), S=S)
        z0 = (vertices[:, top, 1] / rig.template.vertices[top, 1] - 1.0) / 0.1
        return np.broadcast_to(np.round(100 + 20 * z0).astype(np.uint8)[:, None, None, None, None],
                               (len(vertices), len(kw["views"]), 24, 24, 3)).copy()

    monkeypatch.setattr(avatar, "render", code_render)
    both, _ = F.latent_traversal_images(rig, m, [0, 1], steps=5, sd=2.0, size=24)   # one render call
    # 10 codes, but both components' middle step is the mean: 9 distinct codes decoded and drawn once each
    assert both.shape == (2, 5, 1, 24, 24, 3) and rendered["n"] == 9 and len(seen) == 1
    expected = np.zeros((10, 2))
    expected[:5, 0] = [-2.0, -1.0, 0.0, 1.0, 2.0]
    expected[5:, 1] = [-1.0, -0.5, 0.0, 0.5, 1.0]
    np.testing.assert_allclose(seen[0], np.unique(expected, axis=0))
    np.testing.assert_array_equal(both[:, :, 0, 0, 0, 0], np.round(100 + 20 * expected[:, 0]).reshape(2, 5))


# --------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------
@pytest.fixture
def cli_main():
    from avatar.cli.main import main

    return main


def test_cli_writes_report_json_and_figures(tiny, cli_main, tmp_path, capsys):
    path, _, _ = tiny
    out = tmp_path / "audit"
    assert cli_main(["audit", str(path), "-o", str(out), "--samples", "4", "--texture-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "redundant" in printed and "face.nose_a ~ face.nose_b" in printed and "body.nothing" in printed
    data = json.loads((out / "audit.json").read_text())
    assert data["settings"]["samples"] == 4 and data["invisible"] == ["body.nothing"]
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    figs = sorted(p.name for p in (out / "figures").iterdir())
    assert "geometry_cosine.png" in figs and all((out / "figures" / f).read_bytes().startswith(PNG) for f in figs)


def test_cli_bad_input_exits_2_without_traceback(tiny, cli_main, tmp_path, capsys):
    assert cli_main(["audit", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing.yaml" in err and "Traceback" not in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_RIG.replace("    min: -50\n", "    mn: -50\n"))
    assert cli_main(["audit", str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "did you mean 'min'" in capsys.readouterr().err
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert cli_main(["audit", str(tiny[0]), "-o", str(blocker / "sub")]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err
    assert cli_main(["audit", str(tiny[0]), "-o", str(blocker)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert cli_main(["audit", "-o", str(tmp_path / "o"), "--samples", "1"]) == 2
    assert not (tmp_path / "o").exists()   # nothing written for bad input
