"""`avatar export --format shapes3d|npz`: a store's renders and factors as 3dshapes HDF5 and dSprites npz.

The files are read back with plain h5py and numpy in a fresh interpreter that never imports avatar,
and must hold exactly the store's renders (box-filtered when smaller) and slider values.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import avatar.dataset as dataset
from avatar.cli.main import main
from avatar.dataset.config import config_from_text

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parent.parent
N = 10
VARY = ["body.weight", "scene.camera_yaw", "scene.framing", "scene.light_azimuth"]   # rig order


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A small store: 10 avatars, 128x128 renders of the camera and front views, the scene varied."""
    from avatar.rendering.core import RenderBackendError, choose_backend

    try:
        choose_backend()
    except RenderBackendError as err:
        pytest.skip(f"no OpenGL backend: {err}")
    path = tmp_path_factory.mktemp("export") / "s.zarr"
    text = yaml.safe_dump({"n": N, "seed": 5, "sampler": "prior", "vary": VARY, "store": str(path), "shard": 8,
                           "outputs": {"renders": {"views": ["camera", "front"], "size": 128}}})
    dataset.generate(config_from_text(text, "<test>"), workers=1, progress=False)
    return path


def run_without_avatar(code: str) -> str:
    """Run ``code`` in a fresh interpreter outside the project; it must not import avatar. Its stdout."""
    code += "assert not any(m == 'avatar' or m.startswith('avatar.') for m in sys.modules)\nprint('ok')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
    return out.stdout


READ_STORE = (
    "import sys, json, zarr, numpy as np\n"
    "g = zarr.open_group(STORE, mode='r')\n"
    "names = list(g.attrs['slider_names'])\n"
    "cols = [names.index(v) for v in g.attrs['config']['varied']]\n"
    "S = g['sliders'][:][:, cols]\n"
    "R = g['renders'][:]\n")


def test_the_store_holds_the_camera_the_sliders_set(store, rig):
    from avatar.rendering.core import render

    ds = dataset.open(store)
    assert ds.config["varied"] == VARY
    assert np.array_equal(ds.renders.compute(), render(rig, ds.sliders, views=("camera", "front"), size=128))


def test_shapes3d_holds_the_store_exactly(store, tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["export", str(store), "--format", "shapes3d", "-o", str(out), "--size", "128"]) == 0
    assert "wrote" in capsys.readouterr().out and out.is_file()
    assert not list(tmp_path.glob(".*tmp*"))
    run_without_avatar(f"STORE = {str(store)!r}\n" + READ_STORE + (
        f"import h5py\nf = h5py.File({str(out)!r}, 'r')\n"
        "assert sorted(f.keys()) == ['images', 'labels']\n"
        "im, lab = f['images'], f['labels']\n"
        f"assert im.shape == ({N}, 128, 128, 3) and im.dtype == np.uint8\n"
        f"assert lab.shape == ({N}, 4) and lab.dtype == np.float64\n"
        "assert np.array_equal(im[:], R[:, 0]) and np.array_equal(lab[:], S)\n"   # the first view: camera
        "assert list(f.attrs['factor_names']) == g.attrs['config']['varied']\n"
        "assert list(f.attrs['factor_kinds']) == ['continuous', 'continuous', 'categorical', 'continuous']\n"
        "assert list(f.attrs['factor_min']) == [0, -90, 0, -90] and list(f.attrs['factor_max']) == [100, 90, 2, 90]\n"
        "assert list(f.attrs['factor_low']) == [0, -60, 0, -90] and list(f.attrs['factor_high']) == [100, 60, 2, 90]\n"
        "meta = json.loads(f.attrs['metadata'])\n"
        "assert meta['view'] == f.attrs['view'] == 'camera' and meta['n'] == len(im)\n"
        "assert meta['factors'][2]['categories'] == ['full_body', 'bust', 'face']\n"))


def box(images: np.ndarray, f: int) -> np.ndarray:
    """The mean of every f x f block, rounded half up (floats: an independent way to the same bytes)."""
    n, r = images.shape[:2]
    means = images.reshape(n, r // f, f, r // f, f, 3).astype(np.float64).mean(axis=(2, 4))
    return np.floor(means + 0.5).astype(np.uint8)


def test_npz_reads_without_pickles_and_box_filters_to_64(store, tmp_path):
    out = tmp_path / "s.npz"
    assert main(["export", str(store), "--format", "npz", "-o", str(out), "--view", "front", "--bins", "4"]) == 0
    stdout = run_without_avatar(f"STORE = {str(store)!r}\n" + READ_STORE + (
        f"z = np.load({str(out)!r}, allow_pickle=False)\n"
        "assert sorted(z.files) == ['imgs', 'latents_classes', 'latents_names', 'latents_values', 'metadata']\n"
        f"assert z['imgs'].shape == ({N}, 64, 64, 3) and z['imgs'].dtype == np.uint8\n"
        "assert z['latents_values'].dtype == np.float64 and z['latents_classes'].dtype == np.int64\n"
        "assert np.array_equal(z['latents_values'], S)\n"
        "assert list(z['latents_names']) == g.attrs['config']['varied']\n"
        "meta = json.loads(str(z['metadata'][0]))\n"
        "assert meta['view'] == 'front' and [f['classes'] for f in meta['factors']] == [4, 4, 3, 4]\n"
        "print(json.dumps(z['latents_classes'].tolist()))\n"))
    z = np.load(out, allow_pickle=False)
    R = dataset.open(store).renders.compute()
    assert np.array_equal(z["imgs"], box(R[:, 1], 2))   # the front view, 128 -> 64
    S = z["latents_values"]
    classes = np.array(json.loads(stdout.splitlines()[0]))
    # weight: 4 bins over 0..100; yaw: over the prior's -60..60; framing: its index; light: over -90..90
    want = np.stack([np.minimum(S[:, 0] // 25, 3), np.minimum((S[:, 1] + 60) // 30, 3), S[:, 2],
                     np.minimum((S[:, 3] + 90) // 45, 3)], axis=1)
    assert np.array_equal(classes, want)
    assert len(np.unique(classes[:, 1])) > 1


def test_bad_requests_exit_2_without_traceback(store, tmp_path, capsys):
    h5 = str(tmp_path / "x.h5")
    cases = [
        (["--format", "hdf5", "-o", h5], "unknown --format 'hdf5'"),
        (["--format", "shapes3d", "-o", h5, "--view", "fornt"], "no view 'fornt' in the store; did you mean 'front'?"),
        (["--format", "shapes3d", "-o", h5, "--size", "48"], "renders are 128x128 pixels, which a box filter cannot"),
        (["--format", "shapes3d", "-o", str(tmp_path / "x.npz")], "writes a .h5 or .hdf5 file"),
        (["--format", "npz", "-o", str(tmp_path / "x.npz"), "--factors", "some"], "--factors must be varied or all"),
        (["--format", "glb", "-o", str(tmp_path / "m")], "give --index"),
        (["--format", "npz", "-o", str(tmp_path / "x.npz"), "--index", "0:2"], "--index is for the mesh formats"),
    ]
    for args, message in cases:
        assert main(["export", str(store), *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
    assert not list(tmp_path.iterdir())
    p = subprocess.run([sys.executable, "-m", "avatar.cli", "export", str(store), "--format", "tfrecord", "-o", h5],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "use glb, obj, ply" in p.stderr


def test_all_factors_and_the_docs_torch_snippet(store, tmp_path):
    out = tmp_path / "portraits.h5"
    assert main(["export", str(store), "--format", "shapes3d", "-o", str(out), "--factors", "all"]) == 0
    with h5py.File(out, "r") as f:
        S = dataset.open(store).sliders
        assert f["labels"].shape == S.shape and np.array_equal(f["labels"][:], S)
        assert f["images"].shape == (N, 64, 64, 3)
    pytest.importorskip("torch")
    text = (ROOT / "docs" / "images.md").read_text()
    snippet = re.search(r"<!-- torch:start -->\n```python\n(.*?)```\n<!-- torch:end -->", text, re.S).group(1)
    assert '"portraits.h5"' in snippet
    code = "import sys\n" + snippet.replace('"portraits.h5"', repr(str(out))) + (
        f"assert images.shape == ({N}, 3, 64, 64) and images.dtype == torch.float32\n"
        f"assert labels.shape == ({N}, {S.shape[1]}) and 0 <= float(images.min()) and float(images.max()) <= 1\n"
        "assert dataset.factor_names[0] == 'body.gender'\n")
    run_without_avatar(code)


def test_a_factor_drawn_from_the_datasets_own_prior_is_binned_over_that_range():
    """`priors:` in the dataset config set where a factor was drawn from: the export's low, high and
    bins follow it, not the rig's distribution (body.age: normal over 1-90 in the rig, 1-25 here)."""
    from avatar.dataset.export import factor_records

    record = {"name": "body.age", "kind": "continuous", "unit": "years", "label": "Age", "min": 1.0, "max": 90.0,
              "distribution": {"kind": "normal", "mean": 38.0, "std": 22.0}}
    attrs = {"slider_names": ["body.age"], "sliders": [record],
             "config": {"sampler": "prior", "varied": ["body.age"]}}
    assert (factor_records(attrs)[0]["low"], factor_records(attrs)[0]["high"]) == (1.0, 90.0)
    attrs["config"]["priors"] = {"body.age": {"kind": "uniform", "low": 1.0, "high": 25.0}}
    (rec,) = factor_records(attrs, bins=4)
    assert (rec["low"], rec["high"]) == (1.0, 25.0) and rec["edges"] == [1.0, 7.0, 13.0, 19.0, 25.0]
