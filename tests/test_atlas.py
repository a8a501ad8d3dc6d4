"""The latent atlas (issue 17): region features, similarity alignment, per-region experiments,
measurements as factors, n_components: auto, the atlas command, and its known answers."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import avatar.dataset as dataset
from avatar.cli.main import main
from avatar.compare.pipeline import compare_experiment
from avatar.compare.regions import restrict
from avatar.dataset.config import config_from_text
from avatar.latent import persist
from avatar.latent.experiment import config_from_text as experiment_from_text
from avatar.latent.experiment import load_experiment, run
from avatar.latent.features import FeatureTransform, procrustes_align
from avatar.latent.regions import GROUPS, expand, texel_index, vertex_index
from avatar.spec.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
# linear modifiers, each on its own region (see test_compare.py): two on the head, three below it
FACE_SLIDERS = ["nose.trans_out", "ears.l_trans_up"]
BODY_SLIDERS = ["arms.r_upperarm_scale_depth", "legs.measure_calf_circ", "hip.trans_out"]


# -- regions ------------------------------------------------------------------------------
def test_regions_are_the_template_parts(template):
    nose = vertex_index(template, ["nose"])
    assert np.array_equal(nose, np.flatnonzero(template.parts == template.part_names.index("nose")))
    head = vertex_index(template, ["whole_head"])
    body = vertex_index(template, ["body"])
    assert len(np.intersect1d(head, body)) == 0 and len(head) + len(body) == len(template.parts)
    assert set(expand(["ears", "nose"], template.part_names)) == {"ear_l", "ear_r", "nose"}
    assert set(GROUPS["body"]) | set(GROUPS["whole_head"]) == set(template.part_names)
    with pytest.raises(ValueError, match="did you mean 'nose'"):
        vertex_index(template, ["nsoe"])


def test_texel_regions_cover_their_parts_only(template):
    from avatar.skin.texels import texel_map

    size = 64
    face = texel_index(template, ["face", "nose", "mouth"], size)
    hand = texel_index(template, ["hand_l"], size)
    tm = texel_map(template, size)
    covered = tm.rows * size + tm.cols
    assert len(face) > 50 and len(hand) > 20 and len(np.intersect1d(face, hand)) == 0
    assert np.isin(face, covered).all()
    # the texture's own part map agrees on (almost) every texel: only edge texels may differ
    part_of = dict(zip(covered, tm.parts))
    ids = {template.part_names.index(p) for p in ("face", "nose", "mouth")}
    assert np.mean([part_of[t] in ids for t in face]) > 0.97


def test_similarity_alignment_recovers_the_reference():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R = q * np.sign(np.linalg.det(q))                   # a rotation
    s, t = 2.7, np.array([0.3, -1.0, 4.0])
    moved = s * (ref - ref.mean(0)) @ R + ref.mean(0) + t
    np.testing.assert_allclose(procrustes_align(moved[None], ref, scale=True)[0], ref, atol=1e-9)
    rigid = procrustes_align(moved[None], ref, scale=False)[0]
    # rigid alignment keeps the size: the centred shape's norm is s times the reference's
    norm = lambda a: np.linalg.norm(a - a.mean(0))
    assert norm(rigid) == pytest.approx(s * norm(ref), rel=1e-9)


def test_region_features_decode_to_whole_avatars(rig, tmp_path):
    from avatar.latent.models import PCA

    V = rig.vertices(rig.sample(24, seed=2), posed=False)
    ft = FeatureTransform([{"name": "vertices", "parts": ["nose", "ears"], "align": "similarity"}])
    X = ft.fit_arrays({"vertices": V}).forward({"vertices": V})
    idx = vertex_index(rig.template, ["nose", "ears"])
    assert X.shape == (24, 3 * len(idx)) and np.array_equal(ft.index_["vertices"], idx)
    back = ft.inverse(X)["vertices"]
    assert back.shape == V.shape
    aligned = procrustes_align(V[:, idx], V.mean(0)[idx], scale=True)
    np.testing.assert_allclose(back[:, idx], aligned, atol=2e-6)
    outside = np.setdiff1d(np.arange(V.shape[1]), idx)
    np.testing.assert_array_equal(back[:, outside], np.broadcast_to(V.astype(np.float64).mean(0)[outside],
                                                                   (24, len(outside), 3)).astype(np.float32))
    m = PCA(n_components=4, random_state=0).fit(X)
    m.features_ = ft
    persist.save(m, tmp_path / "nose.npz")
    again = persist.load(tmp_path / "nose.npz")
    np.testing.assert_array_equal(again.features_.forward({"vertices": V}), X)
    np.testing.assert_array_equal(again.transform(X), m.transform(X))


def test_texture_region_features(template):
    rng = np.random.default_rng(1)
    T = rng.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    ft = FeatureTransform([{"name": "textures", "parts": ["face", "nose", "mouth"], "size": 32}])
    X = ft.fit_arrays({"textures": T}).forward({"textures": T})
    idx = texel_index(template, ["face", "nose", "mouth"], 32)
    assert X.shape == (10, 3 * len(idx))
    back = ft.inverse(X)["textures"]
    assert back.shape == (10, 32, 32, 3)
    small = T.reshape(10, 32, 2, 32, 2, 3).astype(np.float64).mean(axis=(2, 4)) / 255
    flat_back, flat = back.reshape(10, -1, 3).astype(np.float64), small.reshape(10, -1, 3)
    # 2 x 2 means of bytes end in .5 steps: float32 noise may round either way, so +-1 level
    np.testing.assert_allclose(flat_back[:, idx], flat[:, idx] * 255, atol=1.0)
    outside = np.setdiff1d(np.arange(32 * 32), idx)
    mean = flat.mean(0)[outside] * 255
    np.testing.assert_allclose(flat_back[:, outside], np.broadcast_to(mean, (10, len(outside), 3)), atol=0.51)
    assert (flat_back[:, outside] == flat_back[:1, outside]).all()   # the same mean texture for every avatar


# -- per-region experiments ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def regional(tmp_path_factory):
    root = tmp_path_factory.mktemp("regional")
    store = root / "linear.zarr"
    text = yaml.safe_dump({"rig": "humanoid", "n": 600, "seed": 5, "sampler": "uniform",
                           "vary": FACE_SLIDERS + BODY_SLIDERS, "outputs": {"vertices": {"dtype": "float32"}},
                           "shard": 300})
    dataset.generate(config_from_text(text, "<test>", store=str(store)), workers=1, progress=False)
    exp = {"dataset": str(store), "output": str(root / "m.npz"),
           "regions": {"face": {"features": {"vertices": {"parts": ["whole_head"], "align": "similarity"}}},
                       "body": {"features": {"vertices": {"parts": ["body"], "align": "rigid"}}}},
           "factors": ["sliders", "measurements"],
           "models": [{"name": "pca", "kind": "pca", "n_components": "auto"},
                      {"name": "ica", "kind": "ica", "n_components": 3}],
           "split": {"test_fraction": 0.25, "seed": 0}}
    cfg = experiment_from_text(yaml.safe_dump(exp, sort_keys=False), str(root / "regional.yaml"))
    # traversal pictures on: a code whose strongest correlate is a measurement still gets a slider strip
    metrics = compare_experiment(cfg, root / "report", n_traversals=1, steps=3, size=48, max_train=300,
                                 max_test=150, log=lambda *_: None)
    return cfg, metrics, root


def test_each_region_gets_its_own_latent(regional, template):
    cfg, _, root = regional
    exp = load_experiment(cfg.output)
    assert list(exp.models) == ["face-pca", "face-ica", "body-pca", "body-ica"]
    head, body = vertex_index(template, ["whole_head"]), vertex_index(template, ["body"])
    assert np.array_equal(exp.models["face-pca"].features_.index_["vertices"], head)
    assert np.array_equal(exp.models["body-ica"].features_.index_["vertices"], body)
    assert exp.models["face-pca"].features_ is exp.models["face-ica"].features_
    assert exp.models["face-pca"].features_.block("vertices")["align"] == "similarity"
    # auto: the fewest components reaching 95 % of each region's variance (at least 2)
    for region in ("face", "body"):
        curve = np.cumsum(exp.metadata["regions"][region]["intrinsic_dimensionality"]["explained_variance_ratio"])
        k = max(int(np.argmax(curve >= 0.95)) + 1, 2)
        assert exp.models[f"{region}-pca"].n_components == k
    from avatar.compare.pictures import picture_views

    assert picture_views(exp.models["face-pca"]) == ("face",) and picture_views(exp.models["body-pca"]) == ("front",)
    # the face latent decodes to a whole avatar: the body stays at the mean
    Z = np.zeros((1, exp.models["face-pca"].n_components))
    V = exp.decode("face-pca", Z)["vertices"]
    assert V.shape == (1, template.parts.shape[0], 3)


def test_region_sliders_and_scores(regional):
    _, m, _ = regional
    regions = m["regions"]
    assert sorted(regions["face"]["sliders"]) == sorted(FACE_SLIDERS)
    assert sorted(regions["body"]["sliders"]) == sorted(BODY_SLIDERS)
    face = m["models"]["face-pca"]
    assert face["region"]["summary"]["n_visible"] == 2 and face["region"]["summary"]["n_sliders"] == 2
    vis = dict(zip(face["factor_names"], face["visibility"]["per_slider"]))
    assert vis["nose.trans_out"] > 0.9 and vis["ears.l_trans_up"] > 0.9
    assert max(vis[s] for s in BODY_SLIDERS) < 0.5          # the face latent does not see the body
    body = m["models"]["body-ica"]                           # 3 codes (body-pca keeps what 95 % needs)
    assert body["region"]["summary"]["n_visible"] == 3
    # measurements joined the sliders as factors: the calf girth follows the calf slider
    assert "measure.calf" in face["factor_names"] and "measure.stature" not in face["factor_names"][:5]
    bvis = dict(zip(body["factor_names"], body["visibility"]["per_slider"]))
    assert bvis["measure.calf"] > 0.9
    # restricting to every column gives the card's own scores back
    whole = restrict(face, range(face["n_factors"]))
    for key in ("mig", "dci_disentanglement", "dci_completeness", "matching_score", "visibility_mean"):
        assert whole[key] == pytest.approx(face["summary"][key], abs=1e-9), key


def test_region_report_and_table(regional):
    from avatar.atlas import markdown_table, rows_of

    _, m, root = regional
    html = (root / "report" / "report.html").read_text()
    assert "Regions" in html and "region sliders seen" in html
    rows = rows_of("linear", m)
    assert [r["model"] for r in rows] == ["face-pca", "face-ica", "body-pca", "body-ica"]
    assert rows[0]["region"] == "face" and rows[0]["visible"] == 2 and rows[0]["of"] == 2
    table = markdown_table({"rows": rows, "n": 600, "entries": [{}], "seconds": 60.0,
                            "machine": {"cpus": 2, "processor": "x86_64", "python": "3.11"}})
    assert table.count("\n| linear (face) |") == 2 and "2 of 2" in table


# -- config errors -------------------------------------------------------------------------------
def _problems(regional, **over):
    cfg, _, root = regional
    exp = yaml.safe_load(cfg.text)
    exp.update(over)
    with pytest.raises(ConfigError) as err:
        experiment_from_text(yaml.safe_dump(exp, sort_keys=False), "bad.yaml")
    return str(err.value)


def test_region_config_errors(regional):
    msg = _problems(regional, regions={"face": {"features": {"vertices": {"parts": ["nsoe"]}}}})
    assert "bad.yaml" in msg and "did you mean 'nose'" in msg
    msg = _problems(regional, features=[{"vertices": {"align": "similar"}}], regions=None)
    assert "did you mean 'similarity'" in msg
    msg = _problems(regional, regions={"face": {"featurs": {}}})
    assert "did you mean 'features'" in msg
    msg = _problems(regional, models=[{"name": "i", "kind": "incremental_pca", "n_components": "auto"}])
    assert "incremental_pca" in msg and "give a number" in msg
    msg = _problems(regional, factors=["sliders", "measurments"])
    assert "did you mean 'measurements'" in msg


# -- known answers on the atlas's linear face dataset -------------------------------------------------
@pytest.fixture(scope="module")
def face_linear(tmp_path_factory, rig):
    root = tmp_path_factory.mktemp("face_linear")
    data = yaml.safe_load((ROOT / "configs" / "datasets" / "atlas-face-linear.yaml").read_text())
    data["n"] = 1500
    store = root / "face.zarr"
    dataset.generate(config_from_text(yaml.safe_dump(data), "atlas-face-linear.yaml", store=str(store)),
                     workers=1, progress=False)
    names = data["vary"]
    exp = {"dataset": str(store), "output": str(root / "m.npz"), "features": [{"vertices": {"parts": ["whole_head"]}}],
           "models": [{"name": "ica", "kind": "ica", "n_components": len(names), "max_iter": 2000},
                      {"name": "pca", "kind": "pca", "n_components": "auto"}],
           "split": {"test_fraction": 0.2, "seed": 0}, "spectrum_components": 64}
    cfg = experiment_from_text(yaml.safe_dump(exp, sort_keys=False), "<face-linear>")
    metrics = compare_experiment(cfg, root / "report", renders=False, max_train=600, max_test=300,
                                 log=lambda *_: None)
    return names, cfg, metrics


def _slider_variances(rig, names, index):
    """(F,) each slider's own variance on the region's vertices when drawn uniformly over its range
    (the motion from min to max is linear for these sliders: |d|^2 / 12)."""
    base = rig.defaults()
    out = []
    for n in names:
        j = rig.spec.index(n)
        S = np.repeat(base[None], 2, axis=0)
        S[0, j], S[1, j] = rig.spec.sliders[j].min, rig.spec.sliders[j].max
        V = rig.vertices(S, posed=False)[:, index].astype(np.float64)
        out.append(((V[1] - V[0]) ** 2).sum() / 12)
    return np.asarray(out)


def test_ica_recovers_independent_face_sliders(face_linear, rig, template):
    names, _, m = face_linear
    index = vertex_index(template, ["whole_head"])
    var = _slider_variances(rig, names, index)
    strong = [n for n, v in zip(names, var) if np.sqrt(12 * v / len(index)) * 1000 > 0.5]  # rms motion > 0.5 mm
    assert len(strong) >= 15
    pairs = {p["slider"]: p["abs_spearman"] for p in m["models"]["ica"]["matching"]["pairs"]}
    hit = [n for n in strong if pairs.get(n, 0) > 0.9]
    assert len(hit) >= 0.8 * len(strong), (len(hit), len(strong), pairs)
    # the baselines bracket the models' matching score
    b = m["baselines"]
    for model in ("ica", "pca"):
        score = m["models"][model]["summary"]["matching_score"]
        assert b["permuted_codes"]["summary"]["matching_score"] < score <= b["sliders"]["summary"]["matching_score"]


def test_intrinsic_dimension_is_the_slider_count(face_linear, rig, template):
    """PCA's 99 % count against the fewest sliders whose own variances reach 99 % of their sum (the
    sliders barely overlap, so the two must agree to 10 %); likewise at 90 and 95 %."""
    names, cfg, m = face_linear
    var = np.sort(_slider_variances(rig, names, vertex_index(template, ["whole_head"])))[::-1]
    share = np.cumsum(var) / var.sum()
    counts = m["intrinsic_dimensionality"]["components_for_variance"]
    for level in ("0.9", "0.95", "0.99"):
        want = int(np.argmax(share >= float(level))) + 1
        assert abs(counts[level] - want) <= 0.1 * want + 1e-9, (level, counts[level], want)


# -- the command -----------------------------------------------------------------------------------
def test_atlas_config_errors(tmp_path, capsys):
    bad = tmp_path / "atlas.yaml"
    bad.write_text("n: 100\nentries:\n  - {name: a, dataset: nowhere.yaml, experimnt: x.yaml}\n")
    assert main(["atlas", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "atlas.yaml:3" in err and "did you mean 'experiment'" in err and "no such file: nowhere.yaml" in err
    assert not (tmp_path / "out").exists()
    assert main(["atlas", "-o", str(tmp_path / "out"), "--only", "macro"]) == 2
    assert "did you mean 'macros'" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_atlas_runs_end_to_end(tmp_path, capsys):
    cfg = tmp_path / "atlas.yaml"
    cfg.write_text(yaml.safe_dump({"n": 200, "workers": 1, "compare": {"max_train": 120, "max_test": 40},
                                   "entries": [{"name": "face-linear",
                                                "dataset": str(ROOT / "configs/datasets/atlas-face-linear.yaml"),
                                                "experiment": str(ROOT / "configs/experiments/atlas-face-linear.yaml")}]}))
    exp = yaml.safe_load((ROOT / "configs/experiments/atlas-face-linear.yaml").read_text())
    assert [x["kind"] for x in exp["models"]] == ["pca", "ica", "factor_analysis", "autoencoder", "vae"]
    assert main(["atlas", str(cfg), "-o", str(tmp_path / "out"), "--no-renders"]) == 0
    out = tmp_path / "out"
    result = json.loads((out / "atlas.json").read_text())
    assert [r["model"] for r in result["rows"]] == ["pca", "ica", "fa", "ae", "vae"]
    assert (out / "face-linear" / "report.html").is_file() and (out / "models" / "face-linear-200.npz").is_file()
    md = (out / "atlas.md").read_text()
    assert md.count("| face-linear |") == 5 and "200 avatars per dataset" in md
    index = (out / "index.html").read_text()
    assert 'href="face-linear/report.html"' in index
    # a second run reuses the dataset and the fitted models
    before = (out / "models" / "face-linear-200.npz").stat().st_mtime_ns
    assert main(["atlas", str(cfg), "-o", str(out), "--no-renders"]) == 0
    assert (out / "models" / "face-linear-200.npz").stat().st_mtime_ns == before
