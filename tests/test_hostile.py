"""What a hostile or careless user tried (issue 13), one test per class, collected in one place.

Every CLI case checks the promises: bad input is one clear line and exit 2 (Ctrl-C: 130), never
a traceback; nothing is lost; ``verify`` finds damage. The tests avoid the default rig's slider
names (the rig is replaced under them): datasets vary every slider, and a slider is named by
``rig.slider_names[0]`` where one is needed.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import avatar
import avatar.dataset as dataset
from avatar.checks import NonFiniteError, check_finite
from avatar.cli.main import main
from avatar.dataset import store as st
from avatar.dataset.config import config_from_text

ROOT = Path(__file__).resolve().parent.parent
N, SHARD = 10, 4  # three shards, the last one partial
AVATAR = [sys.executable, "-m", "avatar"]


@pytest.fixture(scope="module")
def rig():
    return avatar.load_rig()


RIG_COPY: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def frozen_rig(tmp_path_factory):
    """A copy of the default rig's YAML, read once: every store of this module has one fingerprint,
    even while the rig under configs/ is being edited."""
    copy = tmp_path_factory.mktemp("rig") / "humanoid.yaml"
    copy.write_text((ROOT / "configs" / "rigs" / "humanoid.yaml").read_text())
    RIG_COPY[:] = [copy]
    yield copy
    RIG_COPY.clear()


def cfg_text(store, **over) -> str:
    data = {"rig": str(RIG_COPY[0]) if RIG_COPY else "humanoid", "n": N, "seed": 3, "sampler": "uniform", "vary": ["*"],
            "outputs": {"vertices": {"dtype": "float32"}}, "shard": SHARD, **over, "store": str(store)}
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None}, sort_keys=False)


def write_cfg(path: Path, store, **over) -> Path:
    path.write_text(cfg_text(store, **over))
    return path


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``avatar argv`` in this process: (exit status, stdout, stderr); never a traceback."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def files_of(store: Path) -> dict[str, bytes]:
    """Every data file of a store (the root zarr.json holds its path: left out)."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file() and p.relative_to(store) != Path("zarr.json")}


@pytest.fixture(scope="module")
def made(tmp_path_factory, frozen_rig):
    """(config file, store): a complete store, copied by the tests that damage it."""
    d = tmp_path_factory.mktemp("made")
    cfg = write_cfg(d / "c.yaml", d / "s.zarr")
    dataset.generate(dataset.load_config(cfg), workers=1, progress=False)
    return cfg, d / "s.zarr"


@pytest.fixture()
def store(made, tmp_path):
    """A fresh copy of the complete store and its config: (config file, store)."""
    cfg, src = made
    dst = tmp_path / "s.zarr"
    shutil.copytree(src, dst)
    return write_cfg(tmp_path / "c.yaml", dst), dst


# == 1. a stuck store ====================================================================
@pytest.mark.parametrize("damage", ["truncate", "zero", "zero one output", "delete"])
def test_a_bad_checksum_row_is_not_complete_anywhere_and_generate_rewrites_it(store, made, capsys, damage):
    cfg, path = store
    row = st.checksum_file(path, 1)
    raw = row.read_bytes()
    if damage == "truncate":
        row.write_bytes(raw[:7])
    elif damage == "zero":
        row.write_bytes(bytes(len(raw)))
    elif damage == "zero one output":
        row.write_bytes(raw[:32] + bytes(len(raw) - 32))
    else:
        row.unlink()
    # one rule: the Python API, verify and generate all see shard 1 as not complete
    assert st.completed(path, 3).tolist() == [True, False, True]
    with pytest.warns(UserWarning, match="1 of 3 shards"):
        assert not dataset.open(path).complete
    rc, out, _ = cli(capsys, "verify", path)
    assert rc == 1 and "missing shard 1 " in out and "bad shards: 1" in out
    rc, out, _ = cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")
    assert rc == 0 and "4 avatars in 1 shards (2 already done)" in out
    assert cli(capsys, "verify", path)[0] == 0
    assert dataset.open(path).complete
    assert files_of(path) == files_of(made[1])


def test_repair_forgets_every_shard_that_is_not_complete_and_intact(store, made, capsys):
    cfg, path = store
    st.checksum_file(path, 0).write_bytes(bytes(len(st.checksum_file(path, 0).read_bytes())))  # stuck
    f = st.shard_file(path, "vertices", 2, 3)
    f.write_bytes(f.read_bytes()[:-1] + b"\0")  # damaged data
    rc, out, _ = cli(capsys, "verify", path, "--repair")
    assert rc == 1 and "forgot 2 shard(s)" in out
    assert not st.checksum_file(path, 0).exists() and not st.checksum_file(path, 2).exists()
    assert cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")[0] == 0
    assert cli(capsys, "verify", path)[0] == 0
    assert files_of(path) == files_of(made[1])


# == 2. verify passes damaged metadata ===================================================
def _edit_attrs(path: Path, edit) -> None:
    meta = path / "zarr.json"
    doc = json.loads(meta.read_text())
    edit(doc["attributes"])
    meta.write_text(json.dumps(doc))


def _edit_array(path: Path, name: str, edit) -> None:
    meta = path / name / "zarr.json"
    doc = json.loads(meta.read_text())
    edit(doc)
    meta.write_text(json.dumps(doc))


METADATA_EDITS = {
    "n_shards lowered": lambda p: _edit_attrs(p, lambda a: a.update(n_shards=1)),
    "n_shards huge": lambda p: _edit_attrs(p, lambda a: a.update(n_shards=10**12)),
    "config.seed": lambda p: _edit_attrs(p, lambda a: a["config"].update(seed=99)),
    "rig_yaml": lambda p: _edit_attrs(p, lambda a: a.update(rig_yaml=a["rig_yaml"] + "\n# edited\n")),
    "outputs deleted": lambda p: _edit_attrs(p, lambda a: a.pop("outputs")),
    "digest deleted": lambda p: _edit_attrs(p, lambda a: a.pop(st.META_DIGEST)),
    "vertices data_type": lambda p: _edit_array(p, "vertices", lambda d: d.update(data_type="float64")),
    "vertices shape": lambda p: _edit_array(p, "vertices", lambda d: d.update(shape=[N + 4, *d["shape"][1:]])),
    "sliders fill_value": lambda p: _edit_array(p, "sliders", lambda d: d.update(fill_value=0.0)),
    "array metadata deleted": lambda p: (p / "sliders_normalized" / "zarr.json").unlink(),
    "zarr.json nested 100000 deep": lambda p: (p / "zarr.json").write_text("[" * 100000 + "]" * 100000),
    "zarr.json truncated": lambda p: (p / "zarr.json").write_text((p / "zarr.json").read_text()[:100]),
}


@pytest.mark.parametrize("edit", list(METADATA_EDITS))
def test_verify_finds_damaged_metadata_and_nothing_trusts_it(store, capsys, edit, model_file):
    cfg, path = store
    METADATA_EDITS[edit](path)
    t0 = time.perf_counter()
    rc, out, err = cli(capsys, "verify", path)
    assert time.perf_counter() - t0 < 10  # a huge n_shards is not walked
    assert rc == 1 and "damaged metadata" in out and "ok" not in out.split()
    if edit.startswith("zarr.json"):  # no longer readable as a dataset: the rest refuse it too
        assert cli(capsys, "export", path, "--index", "0", "-o", path.parent / "ex")[0] == 2
        assert cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")[0] == 2
        return
    # nothing else reads it either: export, encode's open, generate's resume, the Python API
    rc, _, err = cli(capsys, "export", path, "--index", "0", "-o", path.parent / "ex")
    assert rc == 2 and "damaged store metadata" in one_error_line(err)
    assert not (path.parent / "ex").exists()
    rc, _, err = cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")
    assert rc == 2 and "damaged store metadata" in one_error_line(err) and "--overwrite" in err
    rc, _, err = cli(capsys, "encode", model_file, path, "-o", path.parent / "z.npy")
    assert rc == 2 and "damaged store metadata" in one_error_line(err) and not (path.parent / "z.npy").exists()
    with pytest.raises(dataset.DatasetError, match="damaged store metadata"):
        dataset.open(path)


def test_overwrite_replaces_a_store_with_damaged_metadata(store, made, capsys):
    cfg, path = store
    METADATA_EDITS["config.seed"](path)
    assert cli(capsys, "generate", cfg, "--workers", "1", "--no-progress", "--overwrite")[0] == 0
    assert cli(capsys, "verify", path)[0] == 0
    assert files_of(path) == files_of(made[1])


# == 3. two generate runs at once ========================================================
def test_a_second_writer_is_refused_while_the_first_holds_the_store(store, capsys):
    from avatar.dataset.lock import store_lock

    cfg, path = store
    st.checksum_file(path, 1).unlink()
    with store_lock(path):  # as a running `avatar generate` holds it
        rc, _, err = cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")
        assert rc == 2 and "another writer" in one_error_line(err) and f"pid {os.getpid()}" in err
        rc, _, err = cli(capsys, "verify", path, "--repair")
        assert rc == 2 and "another writer" in err
    assert not st.checksum_file(path, 1).exists()  # the refused runs changed nothing
    assert cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")[0] == 0  # released


def test_two_real_generate_processes_at_once(tmp_path):
    cfg = write_cfg(tmp_path / "c.yaml", tmp_path / "s.zarr", n=64, shard=8)
    procs = [subprocess.Popen([*AVATAR, "generate", str(cfg), "--workers", "1", "--no-progress"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for rc, out, err in results:
        assert "Traceback" not in out + err
        assert rc == 0 or (rc == 2 and "another writer" in err)  # one runs, or both in turn
    assert subprocess.run([*AVATAR, "verify", str(tmp_path / "s.zarr")], cwd=ROOT).returncode == 0


# == 4. other store failures =============================================================
def test_a_store_path_that_is_a_symlink_loop_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for store in (tmp_path / "a", tmp_path / "a" / "s.zarr"):
        rc, _, err = cli(capsys, "generate", write_cfg(tmp_path / "c.yaml", store), "--no-progress")
        line = one_error_line(err)
        assert rc == 2 and "symlink loop" in line and "File exists" not in line
        rc, _, err = cli(capsys, "verify", store)
        assert rc == 2 and "symlink loop" in err


def test_overwrite_onto_a_symlinked_store_replaces_its_target(store, tmp_path, capsys):
    _, real = store
    link = tmp_path / "link.zarr"
    link.symlink_to(real)
    cfg = write_cfg(tmp_path / "other.yaml", link, seed=4)  # another config: needs --overwrite
    assert cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")[0] == 2
    assert cli(capsys, "generate", cfg, "--workers", "1", "--no-progress", "--overwrite")[0] == 0
    assert link.is_symlink() and st.read_attrs(real)["seed"] == 4
    assert cli(capsys, "verify", link)[0] == 0


def test_disk_full_mid_run_is_one_line_and_the_run_resumes(store, made, capsys, monkeypatch):
    import zarr

    cfg, path = store
    for k in (1, 2):
        st.checksum_file(path, k).unlink()
    real_setitem, calls = zarr.Array.__setitem__, []

    def full(self, key, value):
        calls.append(key)
        if len(calls) > 4:  # shard 1 written whole (3 outputs + its checksum row), then the disk fills
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path / "vertices" / "c" / "2"))
        return real_setitem(self, key, value)

    monkeypatch.setattr(zarr.Array, "__setitem__", full)
    rc, _, err = cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")
    line = one_error_line(err)
    assert rc == 2 and "No space left on device" in line and str(path) in line and "rerun" in line
    monkeypatch.setattr(zarr.Array, "__setitem__", real_setitem)
    assert st.completed(path, 3).tolist() == [True, True, False]
    assert cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")[0] == 0
    assert files_of(path) == files_of(made[1])


def test_repair_on_a_read_only_store_is_one_line(store, capsys, monkeypatch):
    _, path = store
    st.checksum_file(path, 1).write_bytes(b"\0")

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "unlink", read_only)
    rc, out, err = cli(capsys, "verify", path, "--repair")
    assert rc == 2 and "cannot repair" in one_error_line(err) and "Read-only file system" in err


def test_store_null_is_an_error_not_a_folder_named_None(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(cfg_text("x").replace("store: x", "store: ~"))
    rc, _, err = cli(capsys, "generate", cfg, "--no-progress")
    assert rc == 2 and "c.yaml:" in err and "store: expected text, got nothing (null)" in err
    assert not (tmp_path / "None").exists()


# == 5. Ctrl-C during generate ==========================================================
def test_ctrl_c_stops_workers_at_once_prints_one_line_exits_130_and_resumes_to_the_same_bytes(tmp_path):
    # 48 shards: about 4 s of work after the first shard lands, so the interrupt always comes mid-run
    # (with 12, an idle machine finished the lot between the first checksum and the signal)
    shards = 48
    over = {"n": 16 * shards, "shard": 16, "outputs": {"vertices": {"dtype": "float32"}, "textures": {"size": 32}}}
    cfg = write_cfg(tmp_path / "c.yaml", tmp_path / "s.zarr", **over)
    # the child starts with Ctrl-C at its default, as from a terminal: a test runner's worker (or a
    # shell's background job) may ignore SIGINT, and an ignored signal stays ignored through exec
    proc = subprocess.Popen([*AVATAR, "generate", str(cfg), "--workers", "2", "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.monotonic()
    while not any(st.checksum_file(tmp_path / "s.zarr", k).exists() for k in range(shards)):
        assert proc.poll() is None and time.monotonic() - t0 < 240, "no shard was completed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: the parent and every worker
    t1 = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t1 < 15  # promptly, never waiting for busy workers
    assert proc.returncode == 130
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err
    assert "interrupted" in one_error_line(err) and "rerun" in err
    done = st.completed(tmp_path / "s.zarr", shards)
    assert 0 < done.sum() < shards
    # resumes to the bytes of an uninterrupted run
    assert subprocess.run([*AVATAR, "generate", str(cfg), "--workers", "2", "--no-progress"], cwd=ROOT,
                          capture_output=True).returncode == 0
    dataset.generate(config_from_text(cfg_text(tmp_path / "ref.zarr", **over)), workers=1, progress=False)
    assert files_of(tmp_path / "s.zarr") == files_of(tmp_path / "ref.zarr")


# == 6. NaN and inf meshes are never written ==============================================
@pytest.fixture(scope="module")
def model_file(tmp_path_factory, rig):
    """A 2-component PCA of the default rig's vertex count (synthetic avatars), saved as avatar fit does."""
    import avatar.latent as L

    rng = np.random.default_rng(0)
    V = rig.template.vertices[None] + 0.01 * rng.normal(size=(12, rig.n_vertices, 3))
    path = tmp_path_factory.mktemp("model") / "m.npz"
    L.save(L.fit_vertices(V, kind="pca", n_components=2, random_state=0), path, name="pca")
    return path


def _with_nan_array(src: Path, dst: Path) -> Path:
    """A copy of model file ``src`` with a NaN in one learned array, its checksum made to match
    (as a model saved from NaN data would be): only the finiteness check can catch it."""
    from avatar.latent import persist

    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays["header"].tobytes().decode())
    key = next(k for k in header["arrays"] if k.endswith(".components"))
    arrays[key] = arrays[key].copy()
    arrays[key][0, 0] = np.nan
    header["arrays"][key]["sha256"] = persist._digest(arrays[key])
    arrays["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), np.uint8)
    np.savez(dst, **arrays)
    return dst


def test_check_finite_refuses_nan_inf_and_values_beyond_float32(capsys):
    check_finite(np.zeros((2, 5, 3)), "fine")
    check_finite(np.array([1, 2]), "ints are always finite")
    for bad, word in ((np.nan, "NaN"), (np.inf, "infinite"), (-1e39, "infinite")):
        V = np.zeros((4, 5, 3))
        V[2, 1, 0] = bad
        with pytest.raises(NonFiniteError, match=rf"the batch: 1 of 60 values are {word}.* in 1 of 4 avatars \(first: #2\)"):
            check_finite(V, "the batch")
    check_finite(np.full(3, 1e39), "unbounded", limit=None)


def test_decode_refuses_a_code_that_decodes_to_infinity(model_file, tmp_path, capsys):
    out = tmp_path / "d.glb"
    rc, _, err = cli(capsys, "decode", model_file, "--code", "0:1e300", "-o", out)
    assert rc == 2 and "infinite" in one_error_line(err) and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.iterdir())
    assert cli(capsys, "decode", model_file, "--code", "0:2", "-o", out)[0] == 0 and out.exists()


def test_a_model_file_holding_nan_is_refused_everywhere(model_file, tmp_path, capsys):
    import avatar.latent as L

    bad = _with_nan_array(model_file, tmp_path / "nan.npz")
    with pytest.raises(L.LatentFileError, match="holds NaN or infinity"):
        L.load_file(bad)
    rc, _, err = cli(capsys, "decode", bad, "-o", tmp_path / "d.glb")
    assert rc == 2 and "holds NaN or infinity" in one_error_line(err) and not (tmp_path / "d.glb").exists()
    from avatar.cli.errors import UsageError
    from avatar.cli.explore import make_explorer
    from avatar.cli.main import build_parser

    with pytest.raises(UsageError, match="holds NaN or infinity"):  # `avatar explore`: refused before serving
        make_explorer(build_parser().parse_args(["explore", "--model", str(bad), "--port", "65000"]), log=lambda *a: None)
    model = L.load_file(model_file).models["pca"]
    model.components_ = model.components_.copy()
    model.components_[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        L.save(model, tmp_path / "never.npz")
    assert not (tmp_path / "never.npz").exists()


class _NaNRig:
    """The default rig, but one avatar in every batch gets a NaN vertex (as `amount: 1e300` does)."""

    def __init__(self, rig):
        self._rig = rig

    def __getattr__(self, name):
        return getattr(self._rig, name)

    def vertices(self, S):
        V = self._rig.vertices(S)
        V[0, 0, 0] = np.nan
        return V


def test_generate_never_stores_a_nan_mesh(tmp_path, capsys):
    from avatar.body.rig import Rig
    from avatar.body.template import load as load_template
    from avatar.dataset.samplers import spec_from_text

    config = config_from_text(cfg_text(tmp_path / "s.zarr"))
    spec = spec_from_text(config.rig_text, config.rig)
    with pytest.raises(dataset.DatasetError, match=r"vertices of avatars 0-3: .* NaN"):
        dataset.generate(config, workers=1, progress=False, rig=_NaNRig(Rig(spec, load_template(spec.template))))
    assert not st.completed(tmp_path / "s.zarr", 3).any()  # nothing recorded as done


def test_the_explorer_refuses_a_decoding_that_is_not_finite(explorer_state):
    state = explorer_state
    before = state.vertices.copy(), state.codes.copy(), state.mode
    big = np.full(state.latent.n_components, 1e300)
    with pytest.raises(NonFiniteError, match="the latent decoding"):
        state.set_codes(big)
    np.testing.assert_array_equal(state.vertices, before[0])
    np.testing.assert_array_equal(state.codes, before[1])
    assert state.mode == before[2]


# == 7. validate and a rig whose template is missing (checked where the rig loads its template) ======
@pytest.mark.parametrize("template", ["no-such-template", "not-json"])
def test_validate_refuses_a_rig_whose_template_is_missing(tmp_path, capsys, template):
    text = (ROOT / "configs" / "rigs" / "humanoid.yaml").read_text()
    if template == "not-json":
        (tmp_path / "bad.json").write_text("this is not json")
        template = str(tmp_path / "bad.json")
    rig = tmp_path / "r.yaml"
    rig.write_text(text.replace("\ntemplate: humanoid", f"\ntemplate: {template}"))
    rc, _, err = cli(capsys, "validate", rig)
    assert rc == 2 and "template" in err


# == 8. deep YAML nesting ===============================================================
DEEP = "sliders: " + "[" * 600 + "]" * 600 + "\n"
DEEP_BLOCK = "sliders:\n" + "".join("  " * i + "- \n" for i in range(1, 700))


@pytest.mark.parametrize("text", [DEEP, DEEP_BLOCK], ids=["flow", "block"])
def test_every_yaml_we_read_refuses_deep_nesting_in_one_line(tmp_path, capsys, text, model_file, explorer_state):
    from avatar.spec.config import ConfigError, MAX_DEPTH

    f = tmp_path / "deep.yaml"
    f.write_text(text)
    want = f"nested deeper than {MAX_DEPTH} levels"
    for argv in (("validate", f), ("generate", f, "--no-progress"), ("fit", f)):  # preset/rig, dataset, experiment
        rc, out, err = cli(capsys, *argv)
        assert rc == 2 and want in err and f"{f}:" in err, argv
    with pytest.raises(ConfigError, match=want):
        avatar.load_rig(f)
    with pytest.raises(ConfigError, match=want):  # an uploaded preset says why on the page
        explorer_state.load_preset_text(text, "upload.yaml")
    # a model sidecar that deep is ignored (it is informative only), never a RecursionError
    import avatar.latent as L

    m = tmp_path / "m.npz"
    shutil.copy(model_file, m)
    m.with_suffix(".yaml").write_text(text)
    assert L.load_file(m).metadata == {}


# == 9. unwritable outputs ================================================================
def test_unwritable_outputs_are_one_line_naming_the_path_before_the_work(tmp_path, capsys, made, model_file, rig):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    exp = tmp_path / "e.yaml"
    exp.write_text(f"dataset: {made[1]}\nfeatures: [vertices]\nmodels: [{{kind: pca, n_components: 2}}]\n")
    preset = tmp_path / "p.yaml"
    preset.write_text("name: p\nsliders: {}\n")  # the defaults: no dependence on the rig's presets
    cases = {
        "decode": ("decode", model_file, "-o", blocker / "d.glb"),
        "encode": ("encode", model_file, made[1], "-o", blocker / "z.npy"),
        "fit": ("fit", exp, "-o", blocker / "m.npz"),
        "export": ("export", made[1], "--index", "0", "-o", blocker / "ex"),
        "export onto a file": ("export", made[1], "--index", "0", "-o", blocker),
        "sheet": ("sheet", "--n", "2", "-o", blocker / "s.png"),
        "make": ("make", preset, "-o", blocker / "k.glb"),
        "random --save-preset": ("random", "-o", tmp_path / "r.glb", "--save-preset", blocker / "r.yaml"),
    }
    for what, argv in cases.items():
        t0 = time.perf_counter()
        rc, out, err = cli(capsys, *argv)
        line = one_error_line(err)
        assert rc == 2 and str(blocker) in line, what
        if what == "fit":
            assert "fitted" not in out and time.perf_counter() - t0 < 5  # refused before the fit
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["file", "e.yaml", "p.yaml"] + (
        ["r.glb"] if (tmp_path / "r.glb").exists() else []))


def test_a_full_disk_while_writing_is_one_line_naming_the_file(model_file, tmp_path, capsys, monkeypatch):
    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "replace", full)
    rc, _, err = cli(capsys, "decode", model_file, "-o", tmp_path / "d.glb")
    line = one_error_line(err)
    assert rc == 2 and "No space left on device" in line and "d.glb" in line


# == 10. oversized requests ================================================================
def test_oversized_requests_are_refused_up_front_with_the_numbers(tmp_path, capsys, monkeypatch, rig):
    import avatar.cli.render as render_cli

    monkeypatch.setattr(render_cli, "available_memory", lambda: 8 << 30)
    continuous = next(s.name for s in rig.sliders if s.kind == "continuous")
    for argv in (("traverse", continuous, "--steps", "100000", "-o", tmp_path / "t.png"),
                 ("sheet", "--n", "100000000", "-o", tmp_path / "s.png")):
        t0 = time.perf_counter()
        rc, _, err = cli(capsys, *argv)
        line = one_error_line(err)
        assert rc == 2 and "GiB of memory" in line and "8.0 GiB are available" in line
        assert time.perf_counter() - t0 < 20
    assert not list(tmp_path.iterdir())


# == 11. fit without the features, codes that are strings ==================================
def test_fit_with_a_feature_the_store_lacks_and_string_codes_are_config_errors(tmp_path, capsys, made, model_file):
    exp = tmp_path / "e.yaml"
    exp.write_text(f"dataset: {made[1]}\nfeatures:\n  - renders: {{size: 32}}\nmodels: [{{kind: pca, n_components: 2}}]\n")
    rc, _, err = cli(capsys, "fit", exp)
    assert rc == 2 and f"{exp}:2: features: the dataset has no renders (it stores: vertices)" in err
    codes = tmp_path / "codes.npy"
    np.save(codes, np.array([["a", "b"]]))
    rc, _, err = cli(capsys, "decode", model_file, "--codes-file", codes, "-o", tmp_path / "d.glb")
    assert rc == 2 and "expected numeric codes" in one_error_line(err)


# == 12. messages that mislead ===============================================================
def test_messages_say_what_is_wrong_and_quote_no_foreign_file(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(cfg_text(tmp_path / "s.zarr", vary=[], seed=None) + "seed: 1e23\n")
    rc, _, err = cli(capsys, "generate", cfg)
    assert rc == 2 and "got a list" not in err and "vary: the list is empty" in err
    assert "seed must be at most 2**63 - 1, got 1e+23" in err and "99999999" not in err
    secret = tmp_path / "shadow"
    for content in ("root:$6$SECRETSALT$SECRETHASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
                    "the password is SECRETHASH\n"):
        secret.write_text(content)
        cfg.write_text(cfg_text(tmp_path / "s.zarr", base=str(secret)))
        rc, _, err = cli(capsys, "generate", cfg)
        assert rc == 2 and "SECRET" not in err and str(secret) in err
        assert "not the kind of file expected" in err or "got text" in err


# == 13-16. the explorer's gate ==========================================================
@pytest.fixture(scope="module")
def explorer_state(rig):
    import avatar.latent as L
    from avatar.explorer import ExplorerState, LatentView, SliderBasis

    rng = np.random.default_rng(1)
    V = rig.template.vertices[None] + 0.01 * rng.normal(size=(12, rig.n_vertices, 3))
    model = L.fit_vertices(V, kind="pca", n_components=2, random_state=0)
    basis = SliderBasis().fit(rig)  # default settings: the test does not depend on how the basis is made
    return ExplorerState(rig, LatentView(model, rig.n_vertices, "synthetic"), basis, texture_size=32)


@pytest.fixture(scope="module")
def explorer(explorer_state):
    from avatar.explorer import Explorer

    ex = Explorer(explorer_state, port=0)
    ex.guard.log = lambda line: None
    yield ex
    ex.stop()


def _ws(explorer, origin):
    import viser
    from websockets.sync.client import connect

    return connect(explorer.url.replace("http://", "ws://"), origin=origin, open_timeout=10,
                   subprotocols=[f"viser-v{viser.__version__}"], max_size=None)


def _send(ws, type_: str, **fields) -> None:
    import msgspec

    ws.send(msgspec.msgpack.encode({"type": type_, **fields}))


def _handshake(ws) -> None:
    _send(ws, "ViewerCameraMessage", wxyz=[1.0, 0.0, 0.0, 0.0], position=[0.0, 1.0, 2.7], fov=0.9, near=0.01,
          far=100.0, image_height=600, image_width=800, look_at=[0.0, 0.9, 0.0], up_direction=[0.0, 1.0, 0.0])


def _wait(cond, timeout=10.0):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)


def _a_continuous_slider(explorer):
    s = next(s for s in explorer.state.rig.sliders if s.kind == "continuous" and s.max < 999)
    return s, explorer.inputs[s.name]


def test_origin_rule():
    from avatar.explorer.guard import origin_allowed

    assert origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", "127.0.0.1")
    assert origin_allowed("http://localhost:8080", "localhost:8080", "127.0.0.1")
    assert not origin_allowed("http://evil.example.com", "127.0.0.1:8080", "127.0.0.1")
    assert not origin_allowed("http://evil.example.com:8080", "evil.example.com:8080", "127.0.0.1")  # rebinding
    assert not origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8080", "127.0.0.1")  # another local page
    assert not origin_allowed(None, "127.0.0.1:8080", "127.0.0.1")
    assert not origin_allowed("null", "127.0.0.1:8080", "127.0.0.1")
    assert origin_allowed("http://myhost:8080", "myhost:8080", "0.0.0.0")  # exposed on purpose


def test_13_a_cross_origin_websocket_is_closed_before_any_message(explorer):
    from websockets.exceptions import ConnectionClosed

    s, handle = _a_continuous_slider(explorer)
    value = handle.value
    with _ws(explorer, "http://evil.example.com") as ws:
        try:  # the server may have closed it already: then these sends fail, as they should
            _handshake(ws)
            _send(ws, "GuiUpdateMessage", uuid=handle._impl.uuid, updates={"value": float(s.min)})
        except ConnectionClosed:
            pass
        with pytest.raises(ConnectionClosed):
            for _ in range(1000):
                ws.recv(timeout=10)  # not one message of the page reaches it
        assert ws.close_code == 1008
    time.sleep(0.3)
    assert handle.value == value and explorer.guard.refused["origin"] >= 1
    with _ws(explorer, explorer.url) as ws:  # the page's own origin is served
        assert isinstance(ws.recv(timeout=10), bytes)


def test_14_clients_set_only_values_of_our_widgets(explorer):
    from viser import _messages as m

    s, handle = _a_continuous_slider(explorer)
    guard = explorer.guard
    with _ws(explorer, explorer.url) as ws:
        _handshake(ws)
        _wait(lambda: len(explorer.server._connected_clients) > 0)
        cid = max(explorer.server._connected_clients)
        for updates in ({"min": 0.0}, {"max": 1.0}, {"visible": False}, {"update_cb": []},
                        {"disabled": True}, {"value": float(s.default), "min": 0.0}):
            assert not guard.allow(cid, m.GuiUpdateMessage(handle._impl.uuid, updates)), updates
            _send(ws, "GuiUpdateMessage", uuid=handle._impl.uuid, updates=updates)
        assert not guard.allow(cid, m.GuiUpdateMessage(explorer.b_upload._impl.uuid, {"value": {}}))
        assert not guard.allow(cid, m.GuiUpdateMessage("not-a-widget", {"value": 1}))
        time.sleep(0.5)
    assert (handle.min, handle.max, handle.visible, handle.disabled) == (s.min, s.max, True, False)
    assert handle._impl.update_cb  # our callback is still there


def test_15_every_value_is_validated_with_or_without_the_handshake(explorer):
    s, handle = _a_continuous_slider(explorer)
    state, j = explorer.state, explorer.state.spec.index(s.name)
    before = handle.value, state.values[j]
    refused = dict(explorer.guard.refused)
    with _ws(explorer, explorer.url) as ws:
        _send(ws, "GuiUpdateMessage", uuid=handle._impl.uuid, updates={"value": 999.0})  # no handshake
        _wait(lambda: explorer.guard.refused["handshake"] > refused.get("handshake", 0))
        _handshake(ws)
        _wait(lambda: len(explorer.server._connected_clients) > 0)
        for bad in (999.0, float(s.min) - 1, "nan", True):
            _send(ws, "GuiUpdateMessage", uuid=handle._impl.uuid, updates={"value": bad})
        _wait(lambda: explorer.guard.refused["value"] >= refused.get("value", 0) + 4)
        assert (handle.value, state.values[j]) == before  # never stored, never broadcast
        good = float(s.max)  # a valid value from the same client goes through to the state
        _send(ws, "GuiUpdateMessage", uuid=handle._impl.uuid, updates={"value": good})
        _wait(lambda: state.values[j] == good)
        assert handle.value == good


def test_16_uploads_are_refused_by_declared_size_and_capped(explorer):
    from viser import _messages as m

    guard, uploads = explorer.guard, explorer.server.gui._current_file_upload_states
    up = explorer.b_upload._impl.uuid
    with _ws(explorer, explorer.url) as ws:
        _handshake(ws)
        _wait(lambda: len(explorer.server._connected_clients) > 0)
        cid = max(explorer.server._connected_clients)
        refused = guard.refused["upload"]
        _send(ws, "FileTransferStartUpload", source_component_uuid=up, transfer_uuid="t-huge", filename="x.yaml",
              mime_type="text/yaml", part_count=4_000_000, size_bytes=10**12)
        _wait(lambda: guard.refused["upload"] > refused)
        for i in range(8):  # its parts find nothing to grow
            _send(ws, "FileTransferPart", source_component_uuid=up, transfer_uuid="t-huge", part_index=i,
                  content=b"x" * 60_000)
        time.sleep(0.3)
        assert "t-huge" not in uploads
        # a client that declares little and sends more is dropped at the first excess byte
        _send(ws, "FileTransferStartUpload", source_component_uuid=up, transfer_uuid="t-liar", filename="x.yaml",
              mime_type="text/yaml", part_count=3, size_bytes=100)
        _wait(lambda: "t-liar" in uploads)
        _send(ws, "FileTransferPart", source_component_uuid=up, transfer_uuid="t-liar", part_index=0,
              content=b"x" * 200_000)
        _wait(lambda: "t-liar" not in uploads)
        assert not guard.allow(cid, m.FileTransferStartUpload(explorer.b_glb._impl.uuid, "t-2", "x", "t", 1, 10))


def test_deep_json_in_a_model_header_is_one_line(model_file, tmp_path, capsys):
    with np.load(model_file, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["header"] = np.frombuffer(b"[" * 100000 + b"]" * 100000, np.uint8)
    bad = tmp_path / "deep.npz"
    np.savez(bad, **arrays)
    rc, _, err = cli(capsys, "decode", bad, "-o", tmp_path / "d.glb")
    assert rc == 2 and "damaged header" in one_error_line(err)


def test_other_client_messages_are_dropped(explorer):
    from viser import _messages as m

    cid = 10**6  # the rule does not depend on who sends it
    for message in (m.ShareUrlRequest(), m.ShareUrlDisconnect(), m.GuiFormSubmitMessage(uuid="x"),
                    m.CommandTriggerMessage(uuid="x")):
        assert not explorer.guard.allow(cid, message), type(message).__name__


def test_oversized_datasets_fits_and_pages_are_refused_before_the_work(tmp_path, capsys, monkeypatch, made, rig):
    import avatar.checks
    import avatar.cli.render as render_cli
    from avatar.cli.errors import UsageError
    from avatar.cli.explore import make_explorer
    from avatar.cli.main import build_parser

    monkeypatch.setattr(avatar.checks, "available_memory", lambda: 1 << 30)
    monkeypatch.setattr(render_cli, "available_memory", lambda: 1 << 30)
    for argv in (("turntable", "--seed", "0", "--frames", "720", "--size", "4096", "-o", tmp_path / "t.gif"),
                 ("render", "--seed", "0", "--views", ",".join(["front"] * 200), "--size", "1024",
                  "-o", tmp_path / "r.png")):
        rc, _, err = cli(capsys, *argv)
        assert rc == 2 and "GiB of memory" in one_error_line(err) and "1.0 GiB are available" in err
    cfg = write_cfg(tmp_path / "c.yaml", tmp_path / "new" / "folder" / "s.zarr", n=4096, shard=4096,
                    outputs={"textures": {"size": 1024}})
    rc, _, err = cli(capsys, "generate", cfg, "--workers", "2", "--no-progress")
    assert rc == 2 and "need about" in one_error_line(err) and "lower `shard:`" in err
    exp = tmp_path / "e.yaml"
    exp.write_text(f"dataset: {made[1]}\nfeatures: [vertices]\nmodels: [{{kind: pca, n_components: 2}}]\n"
                   f"output: {tmp_path / 'm.npz'}\n")
    monkeypatch.setattr(avatar.checks, "available_memory", lambda: 1 << 10)
    rc, out, err = cli(capsys, "fit", exp)
    assert rc == 2 and "needs about" in one_error_line(err) and "fitted" not in out
    with pytest.raises(UsageError, match="the quick PCA needs about"):
        make_explorer(build_parser().parse_args(["explore", "--n-avatars", "10000000", "--port", "65001"]),
                      log=lambda *a: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "e.yaml"]


def test_stopping_the_pool_leaves_nothing_for_the_exit_hook_to_race(monkeypatch):
    # CPython 3.11's exit hook writes to each pool's wakeup pipe while the pool's manager thread may be
    # closing it (a traceback at exit after Ctrl-C): _stop_pool must leave that thread finished,
    # its pipe closed, and no worker alive, even with a worker busy for a minute
    import concurrent.futures.process as cfp
    import multiprocessing as mp

    from avatar.dataset.generate import _stop_pool

    closing = cfp._ExecutorManagerThread.join_executor_internals

    def slow_closing(self):  # a loaded machine: the manager thread is late to close its pipes
        time.sleep(1.0)
        closing(self)

    monkeypatch.setattr(cfp._ExecutorManagerThread, "join_executor_internals", slow_closing)

    pool = cfp.ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn"))
    busy = [pool.submit(time.sleep, 60) for _ in range(3)]
    time.sleep(0.5)  # the workers take their tasks
    procs, manager = list(pool._processes.values()), pool._executor_manager_thread
    t0 = time.monotonic()
    _stop_pool(pool)
    assert time.monotonic() - t0 < 10
    assert procs and not any(p.is_alive() for p in procs)
    assert not manager.is_alive()
    wakeups = [w for t, w in cfp._threads_wakeups.items() if t is manager]
    assert all(w._closed for w in wakeups)
    assert all(f.done() for f in busy)
