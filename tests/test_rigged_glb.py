"""Rigged GLB export: the file's own skinning reproduces our posed bodies; bind pose; animation; validity."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from avatar import gltf
from avatar.export import pose_sweep_glb, rig_skin, sweep, write_mesh

ROOT = Path(__file__).resolve().parent.parent
TOL = 1e-4  # 0.1 mm

POSES = {
    "elbow 90": {"pose.elbow_l": 90},
    "T-pose arms": {"pose.shoulder_raise_l": 48, "pose.shoulder_raise_r": 48},
    "head turn": {"pose.head_turn": 40, "pose.head_nod": 15},
    "knee bend": {"pose.knee_l": 100, "pose.knee_r": 100},  # lifts both feet: the floor shift moves the root
}


def write_rigged(rig, values, path: Path, texture_size: int | None = None) -> bytes:
    """Write ``values``'s rigged GLB to ``path`` and return the bytes read back from disk."""
    rest, skin = rig_skin(rig, values)
    texture = rig.textures(rig.values(values), texture_size) if texture_size else None
    write_mesh(path, rest, rig.template, {"test": 1}, texture, skin=skin)
    return path.read_bytes()


def random_pose(rig, seed: int) -> np.ndarray:
    x = rig.sample(1, seed=seed, pose=True)[0]  # a random body in a random pose
    assert np.count_nonzero(x[rig.posing.columns]) > 10
    return x


def position(data: bytes) -> np.ndarray:
    tree, binary = gltf.unpack(data)
    return gltf.accessor(tree, binary, tree["meshes"][0]["primitives"][0]["attributes"]["POSITION"])


@pytest.mark.parametrize("name", [*POSES, "random", "knight random"])
def test_file_skinning_reproduces_our_posed_vertices(rig, tmp_path, name):
    if name in POSES:
        x = rig.values(POSES[name])
    else:
        x = random_pose(rig, seed=7)
        if name.startswith("knight"):  # another body, so other rest joints, in a random pose
            import avatar

            knight = rig.values(avatar.load_preset(ROOT / "configs" / "avatars" / "knight.yaml", rig))
            knight[rig.posing.columns] = x[rig.posing.columns]
            x = knight
    data = write_rigged(rig, x, tmp_path / "posed.glb")
    ours = rig.vertices(x)[rig.template.export_index].astype(np.float64)
    got = gltf.skinned_positions(data)
    rest = position(data)
    np.testing.assert_allclose(rest, rig.vertices(x, posed=False)[rig.template.export_index], atol=1e-6)
    assert np.abs(ours - rest).max() > 0.05, "the pose should move some vertex by centimetres"
    err = np.abs(got - ours).max()
    assert err < TOL, f"{name}: the GLB's own skinning is {err * 1000:.3f} mm from ours"
    assert abs(got[:, 1].min()) < TOL  # re-floored: the lowest point (soles, or knees) on y = 0


def test_knee_bend_carries_the_floor_shift_in_the_root(rig, tmp_path):
    data = write_rigged(rig, rig.values(POSES["knee bend"]), tmp_path / "knees.glb")
    tree, _ = gltf.unpack(data)
    skin = tree["skins"][0]
    root = tree["nodes"][skin["skeleton"]]
    b = rig.bound(rig.values(POSES["knee bend"]))
    assert b.shift[1] < -0.05  # the bent knees lift the feet, so the body is lowered to the floor
    sk = rig.posing.skeleton
    r = int(np.flatnonzero(sk.parents < 0)[0])
    np.testing.assert_allclose(root["translation"], b.heads[r] + b.shift, atol=1e-9)


def test_structure_joints_weights_and_scene_root(rig, tmp_path):
    x = rig.values(POSES["elbow 90"])
    data = write_rigged(rig, x, tmp_path / "elbow.glb")
    tree, binary = gltf.unpack(data)
    sk = rig.posing.skeleton
    J = len(sk.names)
    skin = tree["skins"][0]
    assert len(skin["joints"]) == J
    joint_nodes = [tree["nodes"][n] for n in skin["joints"]]
    assert [n["name"] for n in joint_nodes] == list(sk.names)
    assert all("scale" not in n and len(n["rotation"]) == 4 and len(n["translation"]) == 3 for n in joint_nodes)
    for b, p in enumerate(sk.parents):  # the node hierarchy is the skeleton's
        if p >= 0:
            assert skin["joints"][b] in tree["nodes"][skin["joints"][p]]["children"]
    scene_roots = tree["scenes"][tree["scene"]]["nodes"]
    assert skin["skeleton"] in scene_roots and skin["skeleton"] == skin["joints"][int(np.flatnonzero(sk.parents < 0)[0])]
    mesh_node = next(n for n in tree["nodes"] if "mesh" in n)
    assert mesh_node["skin"] == 0
    attrs = tree["meshes"][0]["primitives"][0]["attributes"]
    j4, w4 = gltf.accessor(tree, binary, attrs["JOINTS_0"]), gltf.accessor(tree, binary, attrs["WEIGHTS_0"])
    assert tree["accessors"][attrs["JOINTS_0"]]["componentType"] == gltf.UNSIGNED_BYTE and J <= 256
    assert w4.dtype == np.float32 and np.abs(w4.sum(1, dtype=np.float32) - 1).max() <= 2.4e-7
    idx = rig.template.export_index
    assert np.array_equal(j4, np.where(sk.weights[idx] > 0, sk.influences[idx], 0))
    np.testing.assert_allclose(w4, sk.weights[idx], atol=1e-6)
    ibm = gltf.accessor(tree, binary, skin["inverseBindMatrices"]).reshape(J, 4, 4).transpose(0, 2, 1)
    b = rig.bound(x)
    np.testing.assert_allclose(ibm[:, :3, :3] @ b.heads[:, :, None] + ibm[:, :3, 3:], 0, atol=1e-5)  # heads -> 0
    assert tree["extras"]["avatar"]["sliders"] == {"test": 1}  # export.py's extras survive
    # the chunks are 4-byte aligned and the header's length is the file's
    assert struct.unpack_from("<I", data, 8)[0] == len(data) and len(data) % 4 == 0
    assert tree["buffers"][0]["byteLength"] == len(binary)


def test_bind_pose_is_the_rest_shape(rig, tmp_path):
    data = write_rigged(rig, rig.defaults(), tmp_path / "rest.glb")
    np.testing.assert_allclose(gltf.skinned_positions(data), position(data), atol=1e-6)
    tree, binary = gltf.unpack(data)
    skin = tree["skins"][0]
    J = len(skin["joints"])
    ibm = gltf.accessor(tree, binary, skin["inverseBindMatrices"]).reshape(J, 4, 4).transpose(0, 2, 1)
    G = gltf.world_matrices(tree)[skin["joints"]] @ ibm
    np.testing.assert_allclose(G, np.broadcast_to(np.eye(4), G.shape), atol=1e-5)  # every joint at rest


def test_pack_unpack_round_trip_and_refusals():
    tree = {"asset": {"version": "2.0"}, "x": "é"}
    for binary in (b"", b"abc", b"abcdefgh"):
        data = gltf.pack(tree, binary)
        assert len(data) % 4 == 0
        t, b = gltf.unpack(data)
        assert t == tree and b[:len(binary)] == binary and len(b) % 4 == 0
    with pytest.raises(gltf.GLBError):
        gltf.unpack(b"glTF" + b"\0" * 30)
    with pytest.raises(gltf.GLBError):
        gltf.unpack(gltf.pack(tree, b"abcd")[:-2])


def test_quaternions_round_trip():
    from scipy.spatial.transform import Rotation

    R = np.concatenate([Rotation.random(500, random_state=1).as_matrix(),
                        [np.eye(3), np.diag([-1.0, -1, 1]), np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1])]])
    q = gltf.quaternions(R)
    np.testing.assert_allclose(gltf.quaternion_matrices(q), R, atol=1e-12)
    np.testing.assert_allclose(np.abs(q), np.abs(Rotation.from_matrix(R).as_quat()), atol=1e-9)  # x, y, z, w


def test_weights_renormalised_in_float32():
    rng = np.random.default_rng(0)
    w = rng.random((20000, 4)).astype(np.float32) * (rng.random((20000, 4)) > 0.3)
    w[:, 0] += 1e-3
    n = gltf.normalised_weights(w)
    assert n.dtype == np.float32 and np.abs(n.sum(1, dtype=np.float32) - 1).max() <= 1.2e-7
    np.testing.assert_allclose(n, w / w.sum(1, keepdims=True), atol=1e-6)


def test_a_skin_needs_a_glb(rig, tmp_path):
    rest, skin = rig_skin(rig, rig.defaults())
    with pytest.raises(ValueError, match="only GLB"):
        write_mesh(tmp_path / "a.obj", rest, rig.template, skin=skin)


# -- the pose-sweep animation ---------------------------------------------------
@pytest.fixture(scope="module")
def elbow_sweep(rig, tmp_path_factory):
    """``avatar turntable --pose-sweep pose.elbow_l`` with 9 keyframes at 12 fps, read back from disk."""
    from avatar.cli.main import main

    out = tmp_path_factory.mktemp("sweep") / "elbow.glb"
    assert main(["turntable", "--pose-sweep", "pose.elbow_l", "--frames", "9", "--fps", "12",
                 "--texture-size", "64", "-o", str(out)]) == 0
    return out


def test_sweep_keyframes_follow_the_slider(rig, elbow_sweep):
    data = elbow_sweep.read_bytes()
    tree, _ = gltf.unpack(data)
    assert len(tree["animations"]) == 1
    times, values = gltf.keyframes(data)
    assert len(times) == 9
    np.testing.assert_allclose(times, np.arange(9) / 12, atol=1e-6)
    targets = {(tree["nodes"][n]["name"], path) for n, path in values}
    assert targets == {("lowerarm01.L", "rotation"), ("root", "translation")}  # only the bone that turns
    assert all(len(v) == 9 for v in values.values())
    j = rig.slider_names.index("pose.elbow_l")
    s = rig.sliders[j]
    xs = sweep(s.min, s.max, 9)
    assert xs[0] == xs[-1] == s.min and xs[4] == s.max
    idx = rig.template.export_index
    posed = {}
    for k in (0, 2, 4, 8):
        x = rig.defaults()
        x[j] = xs[k]
        posed[k] = rig.vertices(x)[idx]
        err = np.abs(gltf.skinned_positions(data, keyframe=k) - posed[k]).max()
        assert err < TOL, (k, err)
    np.testing.assert_allclose(gltf.skinned_positions(data), posed[0], atol=TOL)  # the static pose: frame 0
    assert np.abs(posed[4] - posed[0]).max() > 0.2  # min to max moves the hand by decimetres


def test_sweep_cli_refusals(rig, tmp_path, capsys):
    from avatar.cli.main import main

    assert main(["turntable", "--pose-sweep", "pose.elbow_l", "-o", str(tmp_path / "a.gif")]) == 2
    assert "give -o NAME.glb" in capsys.readouterr().err
    assert main(["turntable", "--pose-sweep", "body.age", "-o", str(tmp_path / "a.glb")]) == 2
    assert "not a pose slider" in capsys.readouterr().err
    assert main(["turntable", "--pose-sweep", "pose.elbo_l", "-o", str(tmp_path / "a.glb")]) == 2
    assert "did you mean 'pose.elbow_l'" in capsys.readouterr().err
    assert main(["turntable", "--seed", "0", "-o", str(tmp_path / "a.glb")]) == 2
    assert "--pose-sweep" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_sweep_of_a_preset_keeps_its_body(rig):
    import avatar

    values = avatar.load_preset(ROOT / "configs" / "avatars" / "knight.yaml", rig)
    data = pose_sweep_glb(rig, values, "pose.knee_r", frames=5, texture_size=None)
    x = rig.values(values)
    j = rig.slider_names.index("pose.knee_r")
    idx = rig.template.export_index
    np.testing.assert_allclose(position(data), rig.vertices(x, posed=False)[idx], atol=1e-6)
    for k, v in zip((0, 2, 4), (rig.sliders[j].min, rig.sliders[j].max, rig.sliders[j].min)):
        y = x.copy()
        y[j] = v
        assert np.abs(gltf.skinned_positions(data, keyframe=k) - rig.vertices(y)[idx]).max() < TOL


# -- Khronos validator ----------------------------------------------------------
def validator_dir():
    d = ROOT / ".tools" / "node_modules"
    return d if (d / "gltf-validator").is_dir() and shutil.which("node") else None


def validate(path: Path) -> dict:
    r = subprocess.run(["node", str(ROOT / "tests" / "gltf_validate.cjs"), str(validator_dir()), str(path)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


@pytest.mark.skipif(validator_dir() is None, reason="node or gltf-validator missing (install.sh installs them)")
def test_rigged_and_animated_glbs_pass_the_khronos_validator(rig, tmp_path, elbow_sweep):
    posed = tmp_path / "posed.glb"
    write_rigged(rig, random_pose(rig, seed=3), posed, texture_size=256)
    for path in (posed, elbow_sweep):
        report = validate(path)
        assert report["errors"] == 0, report["messages"]
        assert report["warnings"] == 0, report["messages"]
