"""Dataset generation: samplers, determinism, crash safety, verification, plain-zarr reading, config errors."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import pearsonr, qmc, spearmanr

import avatar
import avatar.dataset as dataset
from avatar.cli.main import main
from avatar.dataset import store as st
from avatar.dataset.config import config_from_text
from avatar.dataset.samplers import permute

ROOT = Path(__file__).resolve().parent.parent
N, SHARD = 80, 32  # three shards, the last one partial

BASE = {
    "rig": "humanoid", "n": N, "seed": 7, "sampler": "prior", "vary": ["*"],
    "correlate": {"body.weight": {"body.muscle": 0.5}},
    "outputs": {"vertices": {"dtype": "float32"}, "textures": {"size": 32}}, "shard": SHARD,
}


def cfg_text(store, **over) -> str:
    data = {**BASE, **over, "store": str(store)}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None}, sort_keys=False)


def write_cfg(path: Path, store, **over) -> Path:
    path.write_text(cfg_text(store, **over))
    return path


def config(store="unused.zarr", **over):
    return config_from_text(cfg_text(store, **over), "<test>")


def same_bytes(a: Path, b: Path) -> None:
    """Every file of store a equals store b's (the root zarr.json holds paths and the config text: skipped)."""
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert fa == fb
    for rel in fa:
        if rel != Path("zarr.json"):
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert st.read_attrs(a)["fingerprint"] == st.read_attrs(b)["fingerprint"]


@pytest.fixture(scope="module")
def rig():
    return avatar.load_rig()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, rig):
    """An uninterrupted single-process run of the BASE config."""
    store = tmp_path_factory.mktemp("ref") / "ref.zarr"
    dataset.generate(config(store), workers=1, progress=False, rig=rig)
    return store


# -- samplers (pure functions, no meshes) -------------------------------------------
@pytest.mark.parametrize("sampler", ["uniform", "prior", "sobol", "latin_hypercube"])
def test_rows_do_not_depend_on_how_they_are_split(sampler):
    cfg = config(n=300, sampler=sampler)
    whole = dataset.sample(cfg)
    parts = np.concatenate([dataset.sample(cfg, a, b) for a, b in ((0, 77), (77, 78), (78, 300))])
    assert np.array_equal(whole, parts)
    assert np.array_equal(whole, dataset.sample(config(n=300, sampler=sampler, shard=7)))
    assert not np.array_equal(whole, dataset.sample(config(n=300, sampler=sampler, seed=8)))


def test_prior_over_every_slider_is_the_rigs_own_sampling(rig):
    cfg = config(n=50, correlate=None)
    assert np.array_equal(dataset.sample(cfg), rig.sample(50, seed=7, pose=True))  # "*" varies the pose too


def test_vary_keeps_the_rest_at_base(rig):
    cfg = config(n=40, sampler="uniform", vary=["nose.*"], correlate=None, base={"body.age": 60})
    S = dataset.sample(cfg)
    varied = [j for j, s in enumerate(rig.slider_names) if s.startswith("nose.")]
    fixed = np.setdiff1d(np.arange(S.shape[1]), varied)
    expect = rig.spec.to_vector({"body.age": 60})
    assert np.all(S[:, fixed] == expect[fixed])
    assert np.all(S[:, varied].std(axis=0) > 5)


def test_sobol_is_lower_discrepancy_than_uniform(rig):
    vary = ["head.scale_horiz", "head.scale_vert", "chin.width", "nose.scale_horiz"]
    cols = [rig.slider_names.index(v) for v in vary]
    d = {}
    for sampler in ("sobol", "uniform"):
        S = dataset.sample(config(n=256, sampler=sampler, vary=vary, correlate=None))
        d[sampler] = qmc.discrepancy(rig.spec.normalize(S)[:, cols])
    assert d["sobol"] < 0.2 * d["uniform"]


def test_latin_hypercube_fills_every_stratum_once(rig):
    n = 500
    S = dataset.sample(config(n=n, sampler="latin_hypercube", vary=["nose.*"], correlate=None))
    U = rig.spec.normalize(S)
    for j, name in enumerate(rig.slider_names):
        if name.startswith("nose."):
            assert np.array_equal(np.sort(np.floor(U[:, j] * n).astype(int)), np.arange(n)), name
    p = permute(np.arange(1000), 1000, (1, 2, 3))
    assert np.array_equal(np.sort(p), np.arange(1000)) and not np.array_equal(p, np.arange(1000))


def test_grid_is_every_combination_once(rig):
    vary = ["eyes.l_scale", "nose.scale_horiz", "tattoo.flip", "skin.lip_colour"]
    cfg = config(n=None, sampler="grid", levels={"eyes.l_scale": 3, "nose.scale_horiz": 4}, vary=vary,
                 correlate=None)
    assert cfg.n == 3 * 4 * 2 * 6
    S = dataset.sample(cfg)
    cols = [rig.slider_names.index(v) for v in vary]
    combos = {tuple(r) for r in S[:, cols]}
    assert len(combos) == cfg.n  # all distinct ...
    axes = [np.unique(S[:, c]) for c in cols]
    assert [len(a) for a in axes] == [3, 4, 2, 6]  # ... on the full factorial
    assert axes[0][0] == -100 and axes[0][-1] == 100
    with pytest.raises(avatar.ConfigError, match=r"n must be 144 for sampler grid"):
        config(n=100, sampler="grid", levels={"eyes.l_scale": 3, "nose.scale_horiz": 4}, vary=vary,
               correlate=None)


def test_traversal_moves_one_slider_at_a_time_monotonically(rig):
    vary = ["eyes.l_scale", "nose.scale_horiz", "body.height"]
    cfg = config(n=None, sampler="traversal", steps=5, vary=vary, correlate=None)
    S = dataset.sample(cfg)
    assert S.shape[0] == 15
    base = rig.defaults()
    for k, name in enumerate([v for v in rig.slider_names if v in vary]):  # rig order
        j = rig.slider_names.index(name)
        block = S[5 * k:5 * k + 5]
        changed = np.flatnonzero(np.any(block != base, axis=0))
        assert set(changed) <= {j}
        assert np.all(np.diff(block[:, j]) > 0)
        s = rig.sliders[j]
        assert block[0, j] == s.min and block[-1, j] == s.max


@pytest.mark.parametrize("sampler", ["prior", "uniform", "sobol"])
def test_correlated_sampling_reproduces_the_requested_correlation(rig, sampler):
    corr = {"body.weight": {"body.muscle": 0.5}, "head.scale_horiz": {"chin.width": -0.3}}
    cfg = config(n=8000, sampler=sampler, vary=["body.*", "head.*", "chin.*"], correlate=corr)  # rank noise ~0.011
    S = dataset.sample(cfg)
    col = rig.slider_names.index
    for a, row in corr.items():
        for b, r in row.items():
            rho = spearmanr(S[:, col(a)], S[:, col(b)]).statistic
            assert abs(rho - r) < 0.04, (a, b, rho)
    # uniform marginals (the uniform and Sobol samplers; the prior's are MakeHuman's normals around
    # neutral): the Pearson correlation is the requested one too
    if sampler != "prior":
        assert abs(pearsonr(S[:, col("head.scale_horiz")], S[:, col("chin.width")]).statistic + 0.3) < 0.04
    # uncorrelated sliders stay uncorrelated
    assert abs(spearmanr(S[:, col("body.weight")], S[:, col("head.scale_horiz")]).statistic) < 0.05


def test_a_datasets_priors_replace_the_rigs_distributions(rig):
    """`priors:` draws a varied slider from the dataset's own distribution (the rest keep the rig's),
    and every mistake in it is reported with its line and key."""
    vary = ["body.age", "body.gender", "nose.width1"]
    S = dataset.sample(config(n=4000, vary=vary, correlate=None, priors={"body.age": {"kind": "uniform", "low": 1,
                                                                               "high": 25}}))
    plain = dataset.sample(config(n=4000, vary=vary, correlate=None))
    age, gender = rig.slider_names.index("body.age"), rig.slider_names.index("body.gender")
    assert 1 <= S[:, age].min() < 1.1 and 24.9 < S[:, age].max() <= 25       # uniform over 1 to 25 years
    assert abs(np.mean(S[:, age] < 13) - 0.5) < 0.03
    assert plain[:, age].max() > 60                                          # the rig's own prior reaches elders
    np.testing.assert_array_equal(S[:, gender], plain[:, gender])          # the same stream for the others
    bad = cfg_text("x.zarr", vary=vary, correlate=None, priors={
        "body.aeg": {"kind": "uniform"}, "body.weight": {"kind": "uniform"},
        "body.age": {"kind": "normal", "mean": 30}, "nose.width1": {"kind": "uniform", "low": -150, "high": 0}})
    with pytest.raises(avatar.ConfigError) as err:
        config_from_text(bad, "d.yaml")
    text = str(err.value)
    assert "priors.body.aeg: unknown slider 'body.aeg'; did you mean 'body.age'?" in text
    assert "priors.body.weight: 'body.weight' is not varied: priors are for the sliders `vary` names" in text
    assert "priors.body.age: missing required key 'std'" in text
    assert "priors.nose.width1: need min <= low < high <= max" in text
    with pytest.raises(avatar.ConfigError, match=r"priors: priors replace distributions the 'prior' sampler"):
        config(sampler="sobol", vary=vary, correlate=None, priors={"body.age": {"kind": "uniform"}})
    # the fingerprint changes with the priors, and a config without them keeps the one it had
    assert "priors" not in config(vary=vary, correlate=None).resolved()
    with_priors = config(vary=vary, correlate=None, priors={"body.age": {"kind": "uniform", "low": 1, "high": 25}})
    assert with_priors.fingerprint("v") != config(vary=vary, correlate=None).fingerprint("v")
    again = dataset.DatasetConfig.from_resolved(with_priors.resolved(), with_priors.rig_text)
    assert again.priors == with_priors.priors and again.fingerprint("v") == with_priors.fingerprint("v")


# -- generation -----------------------------------------------------------------------
def test_two_workers_write_the_same_bytes_as_one(tmp_path, reference):
    store = tmp_path / "two.zarr"
    summary = dataset.generate(config(store), workers=2, progress=False)
    assert summary.avatars == N and summary.shards == 3
    same_bytes(reference, store)
    ds = dataset.open(store)  # "*" varies the pose too: these are posed avatars, byte for byte
    pose = [j for j, s in enumerate(ds.rig.sliders) if s.pose]
    assert len(pose) >= 16 and (ds.sliders[:, pose] != 0).mean() > 0.9


def test_renders_are_byte_identical_across_worker_counts(tmp_path, rig):
    """Renders too: lights are summed in a fixed order, so llvmpipe's images don't depend on the process."""
    from avatar.rendering.core import RenderBackendError, choose_backend  # before pyrender: it picks the platform

    try:
        choose_backend()
    except RenderBackendError as err:
        pytest.skip(f"no OpenGL backend: {err}")
    outputs = {"vertices": {"dtype": "float32"}, "textures": {"size": 32},
               "renders": {"views": ["front", "face"], "size": 48}}
    stores = [tmp_path / f"r{w}.zarr" for w in (1, 2)]
    for w, store in zip((1, 2), stores):
        dataset.generate(config(store, n=64, outputs=outputs), workers=w, progress=False)
    same_bytes(*stores)
    R = dataset.open(stores[0]).renders.compute()
    assert R.shape == (64, 2, 48, 48, 3) and R.std(axis=0).mean() > 1  # real, differing pictures


def test_shard_size_does_not_change_the_arrays(tmp_path, reference, rig):
    import zarr

    store = tmp_path / "s64.zarr"
    dataset.generate(config(store, shard=64), workers=1, progress=False, rig=rig)
    a, b = zarr.open_group(str(reference), mode="r"), zarr.open_group(str(store), mode="r")
    for name in ("sliders", "vertices", "textures"):
        assert np.array_equal(a[name][...], b[name][...]), name


def test_store_contents_and_reader(reference, rig):
    ds = dataset.open(reference)
    assert ds.complete and len(ds) == N
    assert ds.sliders.shape == (N, len(rig.sliders)) and ds.slider_names == rig.slider_names
    assert ds.sliders_normalized.min() >= 0 and ds.sliders_normalized.max() <= 1
    V = ds.vertices
    assert type(V).__module__.startswith("dask") and V.shape == (N, rig.n_vertices, 3)
    assert V.chunks[0][0] == 1  # the read unit is one avatar
    np.testing.assert_allclose(V[41].compute(), rig.vertices(ds.sliders[41]), atol=1e-6)
    assert ds.textures.shape == (N, 32, 32, 3) and ds.textures.dtype == np.uint8
    assert ds.renders is None
    assert np.array_equal(ds.faces, rig.faces) and np.array_equal(ds.parts, rig.template.parts)
    assert np.allclose(ds.uv, rig.template.uv)
    assert ds.rig.slider_names == rig.slider_names
    a = ds.attrs
    assert a["seed"] == 7 and a["version"] == avatar.__version__ and "sliders:" in a["rig_yaml"]
    assert yaml.safe_load(a["config_text"])["sampler"] == "prior"
    card = ds.card
    assert card["sampler"] == "prior" and card["avatars"] == N and "body.height" in card["varied"]
    assert card["correlations"] == {"body.weight": {"body.muscle": 0.5}}


def run_without_avatar(code: str) -> None:
    """Run ``code`` in a fresh interpreter outside the project; it must pass without importing avatar."""
    code += ("assert not any(m == 'avatar' or m.startswith('avatar.') for m in sys.modules)\n"
             "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_plain_zarr_and_dask_read_it_without_avatar(reference):
    code = (
        "import sys, zarr, numpy as np, dask.array as da\n"
        f"g = zarr.open_group({str(reference)!r}, mode='r')\n"
        "S, V, F = g['sliders'][:], g['vertices'], g['faces'][:]\n"
        f"assert S.shape[0] == {N} and V.shape[0] == {N} and F.shape[1] == 3\n"
        "assert np.isfinite(V[5]).all() and g['textures'][3].dtype == np.uint8\n"
        "assert g.attrs['slider_names'][0] == 'body.gender' and 'card' in g.attrs\n"
        "assert V.metadata.dimension_names == ('sample', 'vertex', 'xyz')\n"
        "assert float(da.from_zarr(V)[:10].mean().compute()) != 0\n")
    run_without_avatar(code)


def test_xarray_reads_it_without_avatar(reference):
    pytest.importorskip("xarray")
    code = (
        "import sys, xarray as xr, numpy as np\n"
        f"ds = xr.open_zarr({str(reference)!r}, consolidated=False)\n"
        "V, S = ds['vertices'], ds['sliders']\n"
        f"assert V.dims == ('sample', 'vertex', 'xyz') and V.sizes['sample'] == {N}\n"
        "assert S.dims[0] == 'sample' and ds['textures'].dtype == np.uint8\n"
        "assert np.isfinite(V.isel(sample=5).values).all()\n"
        "assert float(V.isel(sample=slice(0, 10)).mean()) != 0\n"
        "assert ds.attrs['slider_names'][0] == 'body.gender'\n")
    run_without_avatar(code)


def test_resume_after_a_crash_mid_shard(tmp_path, reference, rig):
    store = tmp_path / "crash.zarr"
    cfg = config(store)
    dataset.generate(cfg, workers=1, progress=False, rig=rig)
    # shard 1 is rewritten and dies after its vertices: the checksum row is never written
    (store / st.CHECKSUM / "c" / "1" / "0" / "0").unlink()
    payload = {"path": str(store), "config": cfg.resolved(), "rig_text": cfg.rig_text,
               "fingerprint": st.read_attrs(store)["fingerprint"], "outputs": st.read_attrs(store)["outputs"]}
    with pytest.raises(RuntimeError, match="injected"):
        dataset.write_shard(payload, 1, _fail_after="vertices")
    (store / "textures" / "c" / "1" / "0" / "0" / "0").write_bytes(b"half a file")  # and a torn write
    assert main(["verify", str(store)]) == 1
    summary = dataset.generate(cfg, workers=1, progress=False, rig=rig)
    assert summary.shards == 1 and summary.skipped == 2 and summary.avatars == 32
    same_bytes(reference, store)


def test_resume_after_the_process_is_killed(tmp_path, rig):
    n = 640  # 20 shards: the kill lands long before the end
    store = tmp_path / "killed.zarr"
    cfg_file = write_cfg(tmp_path / "k.yaml", store, n=n)
    cmd = [sys.executable, "-m", "avatar.cli", "generate", str(cfg_file), "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = store / st.CHECKSUM / "c" / "0" / "0" / "0"
    deadline = time.time() + 60
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists()
    done = st.completed(store, 20)
    assert 1 <= done.sum() < 20
    assert main(["verify", str(store)]) == 1
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "already done" in out.stdout
    ref = tmp_path / "uninterrupted.zarr"
    dataset.generate(config(ref, n=n), workers=1, progress=False, rig=rig)
    same_bytes(ref, store)
    assert not list(store.rglob("*.partial"))


def test_verify_finds_damaged_and_missing_shards(tmp_path, reference, capsys, rig):
    store = tmp_path / "bad.zarr"
    shutil.copytree(reference, store)
    assert main(["verify", str(store)]) == 0
    f = store / "vertices" / "c" / "1" / "0" / "0"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    (store / "textures" / "c" / "2" / "0" / "0" / "0").unlink()
    (store / st.CHECKSUM / "c" / "0" / "0" / "0").unlink()
    capsys.readouterr()
    assert main(["verify", str(store)]) == 1
    out = capsys.readouterr().out
    assert "missing shard 0" in out
    assert "damaged shard 1" in out and "vertices (checksum mismatch)" in out
    assert "damaged shard 2" in out and "textures (file missing)" in out
    assert "bad shards: 0 1 2" in out
    assert main(["verify", str(store), "--repair"]) == 1
    dataset.generate(config(store), workers=1, progress=False, rig=rig)
    assert main(["verify", str(store)]) == 0
    same_bytes(reference, store)


def test_dask_scheduler_address(tmp_path, reference):
    from distributed import LocalCluster

    store = tmp_path / "dask.zarr"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        dataset.generate(config(store), scheduler=cluster.scheduler_address, progress=False)
    same_bytes(reference, store)


def test_cli_generate_refuses_another_config_and_exports(tmp_path, reference, capsys):
    store = tmp_path / "cli.zarr"
    cfg_file = write_cfg(tmp_path / "c.yaml", store, n=40, outputs={"vertices": {"dtype": "float16"}})
    assert main(["generate", str(cfg_file), "--workers", "1", "--no-progress"]) == 0
    assert "40 avatars" in capsys.readouterr().out
    assert main(["generate", str(cfg_file), "--workers", "1", "--no-progress"]) == 0  # nothing to do
    assert "0 avatars in 0 shards (2 already done)" in capsys.readouterr().out
    other = write_cfg(tmp_path / "o.yaml", store, n=40, seed=8, outputs={"vertices": {"dtype": "float16"}})
    assert main(["generate", str(other), "--workers", "1", "--no-progress"]) == 2
    assert "different config (differs in seed)" in capsys.readouterr().err
    assert main(["generate", str(other), "--workers", "1", "--no-progress", "--overwrite"]) == 0
    assert dataset.open(store).attrs["seed"] == 8
    # export: GLB files of chosen samples, textured from the stored textures
    out = tmp_path / "samples"
    assert main(["export", str(reference), "--index", "0:2,-1", "-o", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["000000.glb", "000001.glb", f"{N - 1:06d}.glb"]
    import trimesh

    mesh = trimesh.load(out / "000001.glb", force="mesh", process=False)
    assert len(mesh.faces) == len(dataset.open(reference).faces)
    assert main(["export", str(reference), "--index", "500", "-o", str(out)]) == 2
    assert "outside the dataset" in capsys.readouterr().err


# -- bad input ---------------------------------------------------------------------------
def test_config_errors_have_lines_and_suggestions(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rig: humanoid\n"          # 1
                   "n: 0\n"                    # 2
                   "sampler: sobel\n"          # 3
                   "vary: [nsoe.*, nose.scale_horiz]\n"  # 4
                   "corelate: {}\n"            # 5
                   "outputs:\n"                # 6
                   "  vertice: {}\n"           # 7
                   "store: x.zarr\n")          # 8
    assert main(["generate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: n: n (the number of avatars) must be at least 1, got 0" in err
    assert f"{bad}:3: sampler: unknown sampler 'sobel'; did you mean 'sobol'?" in err
    assert f"{bad}:4: vary[0]: 'nsoe.*' matches no slider of rig 'humanoid'; did you mean 'nose.*'?" in err
    assert f"{bad}:5: corelate: unknown key 'corelate'; did you mean 'correlate'?" in err
    assert f"{bad}:7: outputs.vertice: unknown output 'vertice'; did you mean 'vertices'?" in err
    assert not (tmp_path / "x.zarr").exists()
    bad.write_text("n: 10\nvary: [body.*]\ncorrelate:\n  body.weight: {body.muscle: 0.9, body.height: 0.9}\n"
                   "  body.muscle: {body.height: -0.9, body.wieght: 0.1}\nstore: y.zarr\n")
    out = subprocess.run([sys.executable, "-m", "avatar.cli", "generate", str(bad)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{bad}:5: correlate.body.muscle.body.wieght: unknown slider 'body.wieght'; did you mean " \
           "'body.weight'?" in out.stderr
    bad.write_text("n: 10\nvary: [body.*]\ncorrelate:\n  body.weight: {body.muscle: 0.9, body.height: 0.9}\n"
                   "  body.muscle: {body.height: -0.9}\nstore: y.zarr\n")
    assert main(["generate", str(bad)]) == 2
    assert "cannot all hold at once (their correlation matrix is not positive definite" in capsys.readouterr().err


def test_unwritable_store_and_full_disk(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cfg_file = write_cfg(tmp_path / "c.yaml", blocker / "sub" / "d.zarr", n=10)
    assert main(["generate", str(cfg_file), "--workers", "1"]) == 2
    assert "cannot write there" in capsys.readouterr().err

    import importlib

    gen = importlib.import_module("avatar.dataset.generate")  # the module (the package exports the function)

    class Usage:
        free = 10_000
    monkeypatch.setattr(gen.shutil, "disk_usage", lambda p: Usage)
    store = tmp_path / "full.zarr"
    cfg_file = write_cfg(tmp_path / "c.yaml", store, n=10)
    assert main(["generate", str(cfg_file), "--workers", "1"]) == 2
    assert "not enough free disk space" in capsys.readouterr().err
    assert not store.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".full.zarr")]


def test_refuses_to_write_into_a_folder_that_is_not_a_dataset(tmp_path, capsys):
    store = tmp_path / "mine"
    store.mkdir()
    (store / "notes.txt").write_text("precious")
    cfg_file = write_cfg(tmp_path / "c.yaml", store, n=10)
    assert main(["generate", str(cfg_file), "--workers", "1", "--overwrite"]) == 2
    assert "is not an avatar dataset" in capsys.readouterr().err
    assert (store / "notes.txt").read_text() == "precious"
    assert main(["verify", str(store)]) == 2


def test_demo_dataset_paths_with_yaml_characters(tmp_path, capsys):
    """`avatar demo --out "res #2: [x]"` writes into exactly that folder, never a store YAML cut the path to."""
    from avatar.cli.dataset import demo_config, demo_dataset

    out = tmp_path / "res #2: [x]"
    rig_file = tmp_path / "rigs #1: [a]" / "my rig.yaml"
    rig_file.parent.mkdir()
    shutil.copy(ROOT / "configs" / "rigs" / "humanoid.yaml", rig_file)
    cfg = demo_config(out, rig_file, n=2)
    assert Path(cfg.store) == out / "dataset.zarr" and cfg.rig == str(rig_file)
    assert demo_config(out).rig == "humanoid"
    demo_dataset(out, rig_file, n=2, workers=1)
    ds = dataset.open(out / "dataset.zarr")
    assert len(ds) == 2 and ds.complete and ds.config["rig"] == str(rig_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res #2: [x]", "rigs #1: [a]"]
    assert [p.name for p in out.iterdir()] == ["dataset.zarr"]
    # export, rows out of order and repeated: stored vertices, textures recomputed at another size
    samples = tmp_path / "res #2: [x]" / "samples"
    assert main(["export", str(out / "dataset.zarr"), "--index", "1,0,1", "--texture-size", "16",
                 "-o", str(samples)]) == 0
    assert capsys.readouterr().out.count("wrote") >= 3
    assert sorted(p.name for p in samples.glob("*.glb")) == ["000000.glb", "000001.glb"]
