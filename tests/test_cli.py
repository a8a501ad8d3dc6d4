"""The command line and the exporters: round trips, determinism, error paths."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

import avatar
from avatar.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
KNIGHT = ROOT / "configs" / "avatars" / "knight.yaml"


@pytest.fixture(scope="module")
def rig():
    return avatar.load_rig()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avatar.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_sliders_table_lists_every_slider(rig, capsys):
    assert main(["sliders"]) == 0
    out = capsys.readouterr().out
    for s in rig.sliders:
        assert s.name in out and s.description in out
    assert main(["sliders", "--group", "nose", "--markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert len(md) == 2 + sum(s.group == "nose" for s in rig.sliders) == 2 + 21   # MakeHuman's 21 nose modifiers


def test_presets_all_valid_and_diverse(rig):
    presets = sorted((ROOT / "configs" / "avatars").glob("*.yaml"))
    assert len(presets) >= 5
    assert main(["validate", *map(str, presets)]) == 0
    V = np.stack([rig.vertices(avatar.load_preset(p, rig)) for p in presets])
    heights = V[:, :, 1].max(axis=1)
    assert heights.max() - heights.min() > 0.4  # child to knight
    # every pair of presets differs visibly somewhere
    for i in range(len(V)):
        for j in range(i + 1, len(V)):
            assert np.abs(V[i] - V[j]).max() > 0.01


@pytest.mark.parametrize("suffix", [".glb", ".obj", ".ply"])
def test_export_round_trip_keeps_vertex_count_and_order(rig, tmp_path, suffix):
    out = tmp_path / f"knight{suffix}"
    assert main(["make", str(KNIGHT), "-o", str(out)]) == 0
    expected = rig.vertices(avatar.load_preset(KNIGHT, rig)).astype(np.float64)
    t = rig.template
    loaded = trimesh.load(out, process=False)
    if isinstance(loaded, trimesh.Scene):
        (loaded,) = loaded.geometry.values()
    if suffix == ".ply":
        want_v, want_f = expected, t.faces
        assert loaded.is_watertight and loaded.is_winding_consistent and loaded.volume > 0
    else:
        want_v, want_f = expected[t.export_index], t.export_faces
        np.testing.assert_allclose(loaded.visual.uv, t.export_uv, atol=1e-6)
    assert loaded.vertices.shape == want_v.shape
    np.testing.assert_allclose(loaded.vertices, want_v, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, want_f)


def test_glb_records_the_sliders(rig, tmp_path):
    out = tmp_path / "k.glb"
    assert main(["make", str(KNIGHT), "-o", str(out)]) == 0
    raw = out.read_bytes()
    json_len = int.from_bytes(raw[12:16], "little")
    gltf = json.loads(raw[20:20 + json_len])
    sliders = gltf["extras"]["avatar"]["sliders"]
    assert sliders["body.height"] == 68 and len(sliders) == len(rig.sliders)
    # the recorded values rebuild the same avatar
    np.testing.assert_array_equal(rig.values(sliders), rig.values(avatar.load_preset(KNIGHT, rig)))


def test_random_is_deterministic(tmp_path):
    a, b, c = tmp_path / "a.ply", tmp_path / "b.ply", tmp_path / "c.ply"
    assert main(["random", "--seed", "3", "-o", str(a), "--save-preset", str(tmp_path / "a.yaml")]) == 0
    assert main(["random", "--seed", "3", "-o", str(b)]) == 0
    assert main(["random", "--seed", "4", "-o", str(c)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    # the saved preset rebuilds the same mesh (values rounded to 3 decimals)
    d = tmp_path / "d.ply"
    assert main(["make", str(tmp_path / "a.yaml"), "-o", str(d)]) == 0
    va = trimesh.load(a, process=False).vertices
    vd = trimesh.load(d, process=False).vertices
    assert np.abs(va - vd).max() < 1e-3


BAD_PRESETS = {
    "unknown": ("name: x\nsliders:\n  body.heigth: 180\n", ["bad.yaml:3", "body.heigth", "did you mean 'body.height'"]),
    "range": ("name: x\nsliders:\n  body.age: 250\n", ["bad.yaml:3", "250", "1 to 90 years"]),
    "type": ("name: x\nsliders:\n  nose.scale_horiz: wide\n", ["bad.yaml:3", "nose.scale_horiz", "number"]),
    "duplicate": ("name: x\nsliders:\n  body.height: 180\n  body.height: 170\n", ["bad.yaml:4", "duplicate", "3"]),
    "empty": ("", ["bad.yaml", "empty"]),
    "list": ("- body.height\n", ["bad.yaml", "mapping"]),
    "nan": ("name: x\nsliders:\n  body.weight: .nan\n", ["bad.yaml:3", "body.weight", "finite"]),
    "topkey": ("name: x\nslider:\n  body.height: 180\n", ["bad.yaml:2", "slider", "did you mean 'sliders'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_PRESETS))
def test_validate_reports_config_errors_without_traceback(tmp_path, case):
    text, needles = BAD_PRESETS[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    r = run_cli("validate", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle.lower() in r.stderr.lower(), (needle, r.stderr)


def test_make_with_bad_preset_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsliders:\n  body.height: 250\n  nose.scale_horzi: 3\n")
    out = tmp_path / "never.glb"
    r = run_cli("make", str(bad), "-o", str(out))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "250" in r.stderr and "did you mean 'nose.scale_horiz'" in r.stderr  # both problems at once
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_cli_usage_errors_exit_2(tmp_path):
    r = run_cli("make", str(KNIGHT), "-o", str(tmp_path / "x.stl"))
    assert r.returncode == 2 and "unknown mesh format" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("make", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "x.glb"))
    assert r.returncode == 2 and "missing.yaml" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.glb").exists()


def test_python_api_raises_one_config_error_with_all_problems(rig):
    with pytest.raises(avatar.ConfigError) as err:
        rig.values({"body.height": 999, "nose.scale_horzi": 10})
    assert len(err.value.problems) == 2


def test_every_command_reports_usage_errors_without_traceback(tmp_path):
    # run as ``python -m avatar.cli.main`` (the module is then __main__) and as ``python -m avatar``
    for runner in (run_cli, lambda *a: subprocess.run([sys.executable, "-m", "avatar", *a],
                                                      capture_output=True, text=True, cwd=ROOT)):
        r = runner("traverse", "nose.scale_horzi", "-o", str(tmp_path / "t.png"))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "did you mean 'nose.scale_horiz'" in r.stderr
    assert not (tmp_path / "t.png").exists()
