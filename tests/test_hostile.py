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
}


@pytest.mark.parametrize("edit", list(METADATA_EDITS))
def test_verify_finds_damaged_metadata_and_nothing_trusts_it(store, capsys, edit):
    cfg, path = store
    METADATA_EDITS[edit](path)
    t0 = time.perf_counter()
    rc, out, err = cli(capsys, "verify", path)
    assert time.perf_counter() - t0 < 10  # a huge n_shards is not walked
    if edit == "zarr.json nested 100000 deep":  # no longer a dataset at all: bad input
        assert rc == 2 and "not an avatar dataset" in err
        return
    assert rc == 1 and "damaged metadata" in out and "ok" not in out.split()
    # nothing else reads it either: export, encode's open, generate's resume, the Python API
    rc, _, err = cli(capsys, "export", path, "--index", "0", "-o", path.parent / "ex")
    assert rc == 2 and "damaged store metadata" in one_error_line(err)
    assert not (path.parent / "ex").exists()
    rc, _, err = cli(capsys, "generate", cfg, "--workers", "1", "--no-progress")
    assert rc == 2 and "damaged store metadata" in one_error_line(err) and "--overwrite" in err
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
    over = {"n": 192, "shard": 16, "outputs": {"vertices": {"dtype": "float32"}, "textures": {"size": 32}}}
    cfg = write_cfg(tmp_path / "c.yaml", tmp_path / "s.zarr", **over)
    proc = subprocess.Popen([*AVATAR, "generate", str(cfg), "--workers", "2", "--no-progress"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    t0 = time.monotonic()
    while not any(st.checksum_file(tmp_path / "s.zarr", k).exists() for k in range(12)):
        assert proc.poll() is None and time.monotonic() - t0 < 240, "no shard was completed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # as the terminal does: the parent and every worker
    t1 = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - t1 < 15  # promptly, never waiting for busy workers
    assert proc.returncode == 130
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err
    assert "interrupted" in one_error_line(err) and "rerun" in err
    done = st.completed(tmp_path / "s.zarr", 12)
    assert 0 < done.sum() < 12
    # resumes to the bytes of an uninterrupted run
    assert subprocess.run([*AVATAR, "generate", str(cfg), "--workers", "2", "--no-progress"], cwd=ROOT,
                          capture_output=True).returncode == 0
    dataset.generate(config_from_text(cfg_text(tmp_path / "ref.zarr", **over)), workers=1, progress=False)
    assert files_of(tmp_path / "s.zarr") == files_of(tmp_path / "ref.zarr")
