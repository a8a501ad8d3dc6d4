"""`avatar compare`: an experiment's latents against the sliders, end to end (dataset -> fit -> report)."""
from __future__ import annotations

import json
import re

import pytest
import yaml

import avatar.dataset as dataset
from avatar.cli.main import main
from avatar.compare.pipeline import compare_experiment
from avatar.dataset.config import config_from_text
from avatar.latent.experiment import config_from_text as experiment_from_text

# MakeHuman modifiers whose decr target is exactly the incr target negated (so they are linear over
# their whole range), each on its own region, with effect sizes at least 1.5x apart (equal variances
# would leave PCA free to rotate between them)
LINEAR = ["nose.trans_out", "arms.r_upperarm_scale_depth", "legs.measure_calf_circ", "ears.l_trans_up",
          "hip.trans_out"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A 400-avatar dataset where only the LINEAR sliders vary, and its PCA + ICA experiment YAML."""
    root = tmp_path_factory.mktemp("compare")
    store = root / "linear.zarr"
    text = yaml.safe_dump({"rig": "humanoid", "n": 1200, "seed": 3, "sampler": "uniform", "vary": LINEAR,
                           "outputs": {"vertices": {"dtype": "float32"}}, "shard": 400})
    dataset.generate(config_from_text(text, "<test>", store=str(store)), workers=1, progress=False)
    exp = {"dataset": str(store), "features": ["vertices"], "output": str(root / "models" / "linear.npz"),
           "models": [{"name": "pca", "kind": "pca", "n_components": 5},
                      {"name": "ica", "kind": "ica", "n_components": 5}],
           "split": {"test_fraction": 0.25, "seed": 0}}
    path = root / "linear.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def report(experiment, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    logs = []
    metrics = compare_experiment(experiment_from_text(experiment.read_text(), str(experiment)), out,
                                 n_traversals=1, steps=3, size=48, log=logs.append)
    return out, metrics, "\n".join(logs)


def test_only_the_varied_sliders_are_compared(report):
    _, metrics, _ = report
    assert metrics["sliders"]["compared"] == sorted(LINEAR, key=_rig_order())
    assert len(metrics["sliders"]["fixed"]) > 70


def _rig_order():
    import avatar

    names = avatar.load_rig().slider_names
    return names.index


def test_linear_sliders_are_recovered_one_code_each(report):
    """Five linear sliders on separate regions: ICA (and here PCA too) find one code per slider,
    far above the random projection of the same sliders. (That ICA beats PCA where effects overlap
    is tested on synthetic mixtures in test_compare_metrics.py.)"""
    _, m, _ = report
    rp = m["baselines"]["random_projection"]["summary"]
    for name in ("ica", "pca"):
        s = m["models"][name]["summary"]
        assert s["matching_score"] > 0.98 and s["mig"] > 0.5 and s["mig"] > rp["mig"] + 0.3, (name, s)
        assert min(m["models"][name]["visibility"]["per_slider"]) > 0.95
        assert min(m["models"][name]["purity"]["per_code"]) > 0.7
        pairs = {p["code"]: p["slider"] for p in m["models"][name]["matching"]["pairs"]}
        assert sorted(pairs.values()) == sorted(LINEAR)


def test_baselines_bracket_the_models(report):
    _, m, _ = report
    b = {k: v["summary"] for k, v in m["baselines"].items()}
    assert b["sliders"]["mig"] > 0.9 and b["sliders"]["matching_score"] > 0.999
    assert b["permuted_codes"]["mig"] < 0.05 and b["permuted_codes"]["visibility_mean"] < 0.1
    for model in m["models"].values():
        assert b["permuted_codes"]["visibility_mean"] < model["summary"]["visibility_mean"]


def test_files_and_self_contained_report(report):
    out, metrics, log = report
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["models"]["ica"]["summary"] == pytest.approx(metrics["models"]["ica"]["summary"])
    est = on_disk["models"]["pca"]["estimators"]
    assert est["versions"]["scikit-learn"] and est["factor_discretization"]["n_bins"] == 20
    html = (out / "report.html").read_text()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)      # nothing fetched from anywhere
    imgs = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert imgs and all(s.startswith("data:image/png;base64,") for s in imgs)
    for words in ("Reading this report", "disentangled", "Model: ica", "Latent traversals", "baseline"):
        assert words in html
    figs = {p.name for p in (out / "figures").glob("*.png")}
    assert {"pca_dci_importance.png", "ica_spearman.png", "ica_traversal_1.png", "ica_traversals_all.png",
            "explained_variance.png"} <= figs
    assert "ica" in log and "sliders unseen" in log


def test_cli_bad_experiment_exits_2_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: nowhere.zarr\nmodles: []\n")
    out = tmp_path / "out"
    assert main(["compare", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:2" in err and "models" in err
    assert not out.exists()
    assert main(["compare", str(bad), "-o", str(out), "--max-train", "1"]) == 2


def test_cli_writes_the_report(experiment, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["compare", str(experiment), "-o", str(out), "--traversals", "0"]) == 0
    assert (out / "report.html").stat().st_size > 10_000 and (out / "metrics.json").exists()
    assert "MIG" in capsys.readouterr().out


def test_pose_is_a_nuisance_with_an_invariance_figure(tmp_path):
    """One linear shape slider (the nose) and one pose slider (the left elbow): PCA gives the elbow
    codes (pose share near 1) and a nose code that mostly ignores the pose (PCA mixes a little of the
    elbow's much larger variance into it)."""
    store = tmp_path / "posed.zarr"
    text = yaml.safe_dump({"rig": "humanoid", "n": 500, "seed": 1, "sampler": "uniform",
                           "vary": ["nose.trans_out", "pose.elbow_l"],
                           "outputs": {"vertices": {"dtype": "float32"}}, "shard": 250})
    dataset.generate(config_from_text(text, "<test>", store=str(store)), workers=1, progress=False)
    exp = {"dataset": str(store), "features": ["vertices"], "output": str(tmp_path / "m.npz"),
           "models": [{"name": "pca", "kind": "pca", "n_components": 4}],
           "split": {"test_fraction": 0.3, "seed": 0}}
    path = tmp_path / "posed.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    m = compare_experiment(experiment_from_text(path.read_text(), str(path)), tmp_path / "report",
                           renders=False, max_train=300, max_test=150, log=lambda *_: None)
    assert m["sliders"]["nuisance"] == ["pose.elbow_l"]
    inv = m["pose_invariance"]["models"]["pca"]
    share = inv["pose_share"]
    assert len(share) == 4 and max(share) > 0.99 and min(share) < 0.25, share
    assert inv["pose_codes"] >= 2
    nose = int(min(range(4), key=lambda i: share[i]))  # the most pose-blind code carries the nose
    assert m["models"]["pca"]["purity"]["top_slider"][nose] == "nose.trans_out"
    assert inv["shape_motion"][nose] > 3 * inv["pose_motion"][nose]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Pose as a nuisance factor" in html and "pose-blind codes" in html


def test_measurements_are_compared_as_extra_factors(report):
    """The calf girth follows legs.measure_calf_circ: the latent carries it, in the code matched to that
    slider; the right arm's slider leaves the (left) upper-arm girth constant; the report shows them."""
    out, m, _ = report
    info = m["measurements"]
    assert info["names"][:4] == ["stature", "mass", "volume", "bmi"] and info["n_test"] > 100
    calf, arm = info["names"].index("calf"), info["names"].index("upper_arm")
    for name in ("pca", "ica"):
        res = m["models"][name]
        pairs = {p["slider"]: p["code"] for p in res["matching"]["pairs"]}
        carried = info["models"][name]
        assert carried["r2"][calf] > 0.95
        assert carried["best_code"][calf] == pairs["legs.measure_calf_circ"] and carried["best_rho"][calf] > 0.95
        assert carried["r2"][arm] is None and carried["best_code"][arm] is None
    html = (out / "report.html").read_text()
    assert "Body measurements" in html and "constant" in html


def test_a_picture_latent_is_compared_with_scene_sliders_as_nuisance(tmp_path):
    """A conv autoencoder on 32 px camera renders: scene sliders are nuisance factors with their own
    report section, and the traversals show the model's decoded pictures beside the slider strips."""
    store = tmp_path / "scene.zarr"
    text = yaml.safe_dump({"rig": "humanoid", "n": 64, "seed": 2, "sampler": "uniform",
                           "vary": ["scene.camera_yaw", "body.weight"],
                           "outputs": {"renders": {"views": ["camera"], "size": 32}}, "shard": 32})
    dataset.generate(config_from_text(text, "<test>", store=str(store)), workers=1, progress=False)
    exp = {"dataset": str(store), "features": [{"renders": {"size": 32}}], "output": str(tmp_path / "m.npz"),
           "models": [{"name": "cae", "kind": "conv_ae", "n_components": 2, "epochs": 2, "channels": [8, 8, 8, 8],
                       "hidden": [16], "random_state": 0}],
           "split": {"test_fraction": 0.25, "seed": 0}}
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    m = compare_experiment(experiment_from_text(path.read_text(), str(path)), tmp_path / "report",
                           n_traversals=1, steps=3, size=64, max_train=48, max_test=16, log=lambda *_: None)
    assert m["sliders"]["nuisance"] == ["scene.camera_yaw"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Scene as a nuisance factor" in html
    from PIL import Image

    figures = sorted((tmp_path / "report" / "figures").glob("cae_*traversal*.png"))
    assert figures, sorted(p.name for p in (tmp_path / "report" / "figures").iterdir())
    assert Image.open(figures[0]).size[0] > 64 * 3        # three decoded 64 px pictures at least
    # the slider strips show the dataset: its camera view, its fixed sliders, the range it drew
    import numpy as np

    from avatar.compare.pictures import StripScene, loaded

    fitted, rig = loaded(str(tmp_path / "m.npz"))
    scene = StripScene.of_experiment(fitted, rig(), fitted.model("cae"))
    S = fitted.dataset.sliders
    assert scene.view == "camera"
    fixed = np.ptp(S, axis=0) == 0
    np.testing.assert_array_equal(scene.base[fixed], S[0, fixed])
    j = rig().spec.index("body.weight")
    strip = scene.of("body.weight", 3)
    np.testing.assert_allclose(strip["values"], np.linspace(S[:, j].min(), S[:, j].max(), 3))
    assert S[:, j].min() <= strip["base"][j] <= S[:, j].max()
    assert scene.of("scene.framing", 3)["values"] is None                # a category the dataset fixes: all levels


def test_compare_reads_the_codes_the_fit_stored(report, experiment):
    """The model file keeps each model's codes of its split; they are the codes a fresh read of the
    store gives, and compare uses them only while the dataset is the one fitted on."""
    import numpy as np

    from avatar.compare.pipeline import encode_split
    from avatar.latent.experiment import encode_rows_by_model, load_experiment

    exp = load_experiment(metrics_model(report))
    assert set(exp.split_codes) == set(exp.models)
    rows = np.concatenate([exp.train, exp.test])
    fresh = encode_rows_by_model(exp.models, exp.dataset, rows)
    for name in exp.models:
        np.testing.assert_allclose(exp.split_codes[name], fresh[name], rtol=1e-6, atol=1e-9)
    stored = encode_split(exp, exp.dataset)
    assert all(stored[n][0].base is exp.split_codes[n] or np.shares_memory(stored[n][0], exp.split_codes[n])
               for n in exp.models)
    exp.metadata["dataset"]["fingerprint"] = "another dataset"
    reread = encode_split(exp, exp.dataset)
    assert not np.shares_memory(reread["pca"][0], exp.split_codes["pca"])
    np.testing.assert_allclose(reread["pca"][1], fresh["pca"][len(exp.train):], rtol=1e-12, atol=0)


def metrics_model(report):
    _, metrics, _ = report
    return metrics["experiment"]["model_file"]


def test_figures_of_many_sliders_focus_on_the_strongest():
    import numpy as np

    from avatar.compare.pictures import extremes, focus_columns

    rng = np.random.default_rng(0)
    spearman = rng.uniform(0, 0.1, size=(8, 300))
    strong = rng.choice(300, 40, replace=False)
    spearman[rng.integers(0, 8, 40), strong] = 0.9                      # 40 sliders a code follows
    importance = rng.uniform(0, 1e-3, size=(8, 300))
    important = np.setdiff1d(rng.choice(300, 30, replace=False), strong)[:20]
    importance[0, important] = 0.5                                      # 20 more the forests use
    cols = focus_columns(spearman, importance, limit=60)
    assert len(cols) == 60 and np.all(np.diff(cols) > 0)               # rig order kept
    assert set(strong) | set(important) == set(cols)
    assert np.array_equal(focus_columns(spearman[:, :50]), np.arange(50))
    vis = rng.uniform(size=200)
    vis[7] = np.nan
    rows = extremes(vis, limit=60)
    order = np.argsort(-np.nan_to_num(vis, nan=-np.inf))
    assert list(rows[:30]) == list(order[:30]) and set(rows[30:]) == set(order[-30:]) and 7 in rows[30:]


def test_worker_processes_give_the_same_report(experiment, report, tmp_path):
    """Scorecards and pictures on two worker processes: the same numbers, figures and report as in
    one process (each worker runs one thread of every library)."""
    out, metrics, _ = report
    cfg = experiment_from_text(experiment.read_text(), str(experiment))
    two = compare_experiment(cfg, tmp_path, n_traversals=1, steps=3, size=48, n_jobs=2, log=lambda *_: None)
    assert metrics["settings"]["workers"] == 1 and two["settings"]["workers"] == 2

    def numbers(m):
        m = json.loads(json.dumps(m))
        for key in ("timings", "task_seconds", "settings"):
            m.pop(key)
        for card in list(m["models"].values()) + list(m["baselines"].values()):
            card.pop("timings")
            card["estimators"].pop("n_jobs", None)
        m["experiment"].pop("config", None)
        return m

    assert numbers(two) == numbers(metrics)
    assert set(two["task_seconds"]) >= {"metrics_pca", "metrics_ica", "plots_pca", "traversals_ica",
                                        "baseline_sliders", "measurements"}
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == sorted(p.name for p in (tmp_path / "figures").iterdir())
    for name in figures:   # the same pictures, byte for byte
        assert (tmp_path / "figures" / name).read_bytes() == (out / "figures" / name).read_bytes(), name
