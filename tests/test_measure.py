"""Body measurements (cm, kg), sliders solved from them, and their CLI: known answers and exact properties."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import ConvexHull

from avatar.cli.main import main
from avatar.measure import Ruler, hull_perimeter
from avatar.measure.curves import plane_frame
from avatar.measure.ruler import template_joints
from avatar.measure.solve import Unreachable
from avatar.spec.config import ConfigError, Problems, parse_yaml_lenient
from avatar.spec.measurements import load_measurements, parse_measurements

ROOT = Path(__file__).resolve().parent.parent
ANNY_WAIST = [4121, 10763, 10760, 10757, 10777, 10776, 10779, 10780, 10778, 10781, 10771, 10773, 10772, 10775,
              10774, 10814, 10834, 10816, 10817, 10818, 10819, 10820, 10821, 4181, 4180, 4179, 4178, 4177, 4176,
              4175, 4196, 4173, 4131, 4132, 4129, 4130, 4128, 4138, 4135, 4137, 4136, 4133, 4134, 4108, 4113, 4118]


@pytest.fixture(scope="module")
def bodies(rig):
    """Rest vertices (6, V, 3) of six prior avatars, and their sliders."""
    S = rig.sample(6, seed=11)
    return S, rig.vertices(S, posed=False)


def test_every_measurement_is_plausible_on_the_default_body(rig):
    m = rig.measure(rig.defaults())
    assert set(m) == set(load_measurements().names) and len(m) == 24
    assert 160 < m["stature"] < 172 and 45 < m["mass"] < 70 and 17 < m["bmi"] < 25
    assert m["chest"] > m["underbust"] - 12 and m["hips"] > m["waist"]
    for limb in ("upper_arm", "forearm", "wrist", "thigh", "knee", "calf", "ankle"):
        assert 10 < m[limb] < 65, limb
    assert m["wrist"] < m["forearm"] < m["upper_arm"] < m["thigh"]
    assert 30 < m["shoulder_width"] < 45 and 70 < m["inseam"] < 90 and 48 < m["head"] < 60


def test_scaled_meshes_scale_exactly(rig, bodies):
    _, V = bodies
    k = 1.25
    a, b = rig.measure(vertices=V), rig.measure(vertices=(V.astype(np.float64) * k))
    for name, spec in ((m.name, m) for m in rig.ruler.spec.measurements):
        power = {"cm": 1, "L": 3, "kg": 3, "kg/m2": 1}[spec.unit]
        np.testing.assert_allclose(b[name], a[name] * k ** power, rtol=1e-5, err_msg=name)


def test_a_rigid_motion_changes_nothing_but_nothing(rig, bodies):
    _, V = bodies
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # about the vertical: stature is along y
    moved = V.astype(np.float64) @ R.T + [0.4, 2.0, -1.0]
    a, b = rig.measure(vertices=V), rig.measure(vertices=moved)
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-4, err_msg=name)


def test_a_batch_measures_as_its_avatars_one_by_one(rig, bodies):
    _, V = bodies
    many = np.concatenate([V] * 50)  # 300 avatars: two chunks on two threads
    batch = rig.measure(vertices=many)
    for i in (0, 3, 5, 299):
        one = rig.measure(vertices=many[i])
        for name in batch:
            assert batch[name][i] == one[name], name


def test_the_waist_is_annys_loop_and_grows_with_weight(rig):
    x = np.repeat(rig.defaults()[None], 5, axis=0)
    x[:, rig.slider_names.index("body.weight")] = [0, 25, 50, 75, 100]
    V = rig.vertices(x, posed=False).astype(np.float64)
    loop = V[:, ANNY_WAIST]
    expected = np.linalg.norm(loop - np.roll(loop, 1, axis=1), axis=-1).sum(axis=1) * 100
    m = rig.measure(vertices=V)
    np.testing.assert_allclose(m["waist"], expected, rtol=1e-12)
    for name in ("waist", "hips", "thigh", "mass", "bmi", "upper_arm"):
        assert np.all(np.diff(m[name]) > 0), name
    assert np.ptp(m["stature"]) < 1.5  # weight barely changes stature


def test_stature_grows_with_height_and_lengths_follow(rig):
    x = np.repeat(rig.defaults()[None], 3, axis=0)
    x[:, rig.slider_names.index("body.height")] = [0, 50, 100]
    m = rig.measure(x)
    for name in ("stature", "inseam", "lower_leg_height", "forearm_length"):
        assert np.all(np.diff(m[name]) > 0), name


def test_section_curves_lie_on_their_planes_at_the_template(rig):
    ruler, spec = rig.ruler, rig.ruler.spec
    body = rig.template.vertices[: rig.template.n_body]
    joints = template_joints(rig.template)
    for m in spec.measurements:
        if m.plane is None:
            continue
        origin, normal = plane_frame(m.plane, body, joints)
        pts = ruler.points(body, m.name)
        assert np.abs((pts - origin) @ normal).max() < 1e-9, m.name
        if isinstance(m.plane.through, int):
            continue  # through a point of the skin: the centre lies inside, away from it
        # the curve nearest the plane's point: its centre is close to it (the arm's, not the torso's)
        assert np.linalg.norm(pts.mean(axis=0) - origin) < 0.12, m.name


def test_hull_perimeter_known_answers():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], axis=1) * 0.3
    np.testing.assert_allclose(hull_perimeter(circle[None]), [200 * 0.6 * np.sin(np.pi / 200)], rtol=1e-12)
    # a concave, wobbly loop in a tilted plane: the hull of its points, as scipy finds it
    r = 1 + 0.3 * np.sin(5 * t) + 0.05 * rng.standard_normal(len(t))
    flat = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    hull = ConvexHull(flat)
    expected = hull.area  # in 2-D, scipy's "area" is the perimeter
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    tilted = np.concatenate([flat, np.zeros((len(t), 1))], axis=1) @ q.T + [1, 2, 3]
    np.testing.assert_allclose(hull_perimeter(tilted[None]), [expected], rtol=1e-10)


def test_agrees_with_annys_anthropometry_on_the_same_vertices(rig, bodies):
    torch = pytest.importorskip("torch")
    anny = pytest.importorskip("anny")
    from types import SimpleNamespace

    from anny.anthropometry import Anthropometry

    model = anny.Anny(local_changes="default")
    idx = model.base_mesh_vertex_indices.numpy()
    faces = model.faces.numpy()
    body_faces = faces[np.all(idx[faces] < rig.template.n_body, axis=1)]  # anny's own body surface
    _, V = bodies
    V = V.astype(np.float64)
    A = np.repeat(V[:, : rig.template.n_body].mean(axis=1, keepdims=True), len(idx), axis=1)
    on_body = idx < rig.template.n_body
    A[:, on_body] = V[:, idx[on_body]]
    A = np.stack([A[..., 0], -A[..., 2], A[..., 1]], axis=-1)  # ours (y up) -> anny's frame (z up)
    proxy = SimpleNamespace(base_mesh_vertex_indices=model.base_mesh_vertex_indices, faces=torch.tensor(body_faces))
    theirs = {k: v.numpy() for k, v in Anthropometry(proxy)(torch.tensor(A)).items()}
    at_980 = Ruler(rig.template, replace(rig.ruler.spec, density=980.0))  # anny's density
    ours = at_980(V)
    np.testing.assert_allclose(ours["stature"] / 100, theirs["height"], atol=1e-3)
    np.testing.assert_allclose(ours["waist"] / 100, theirs["waist_circumference"], atol=1e-3)
    np.testing.assert_allclose(ours["volume"] / 1000, theirs["volume"], atol=1e-4)   # 0.1 L
    np.testing.assert_allclose(ours["mass"], theirs["mass"], atol=0.1)
    np.testing.assert_allclose(ours["bmi"], theirs["bmi"], atol=0.05)


def test_solve_hits_targets_within_a_millimetre(rig):
    x = rig.defaults()
    x[rig.slider_names.index("body.gender")] = 100
    y = rig.solve(x, {"stature": 182.0, "waist": 84.0})
    m = rig.measure(y)
    assert abs(m["stature"] - 182) < 0.1 and abs(m["waist"] - 84) < 0.1
    moved = {rig.slider_names[j] for j in np.flatnonzero(y != x)}
    assert moved and all(n.startswith("body.") or ".measure_" in n for n in moved)
    assert y[rig.slider_names.index("body.gender")] == 100  # not free: untouched
    # a batch, with chosen free sliders
    S = rig.sample(3, seed=4)
    Y = rig.solve(S, {"waist": 75.0}, free=["body.weight", "torso.*"])
    np.testing.assert_allclose(rig.measure(Y)["waist"], 75.0, atol=0.1)
    fixed = [j for j, n in enumerate(rig.slider_names) if n != "body.weight" and not n.startswith("torso.")]
    assert np.array_equal(Y[:, fixed], S[:, fixed])


def test_unreachable_targets_name_the_reachable_range(rig):
    with pytest.raises(Unreachable, match=r"waist 20 cm is out of reach .* they reach (\d+\.\d) to (\d+\.\d) cm"):
        rig.solve(rig.defaults(), {"waist": 20.0})
    with pytest.raises(KeyError, match="did you mean 'waist'"):
        rig.solve(rig.defaults(), {"waists": 80.0})
    with pytest.raises(ValueError, match="matches no continuous shape slider"):
        rig.solve(rig.defaults(), {"waist": 80.0}, free=["body.heigth"])


def test_presets_with_measurements_and_their_errors(rig, tmp_path):
    p = tmp_path / "tall.yaml"
    p.write_text("name: tall\nsliders: {body.gender: 100}\nmeasurements: {stature: 182, waist: 84}\n"
                 "free: [body.height, body.weight, torso.*]\n")
    m = rig.measure(rig.preset(p))
    assert abs(m["stature"] - 182) < 0.1 and abs(m["waist"] - 84) < 0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nmeasurements:\n  waist: 80\n  statue: 170\nfree: [body.heigth]\n")
    with pytest.raises(ConfigError) as err:
        rig.preset(bad)
    text = str(err.value)
    assert f"{bad}:4: measurements.statue: unknown measurement 'statue'; did you mean 'stature'?" in text
    assert "free[0]: matches no slider; did you mean 'body.height'?" in text


def test_measurements_file_errors_name_file_line_and_key():
    text = ("measurements:\n  neck:\n    kind: circumferance\n  arm:\n    kind: distance\n"
            "    between: [elbow_l, wrist]\nlandmarks:\n  elbow_l: {vertex: 99999}\n")
    data, lines, dup = parse_yaml_lenient(text, "m.yaml")
    with pytest.raises(ConfigError) as err:
        parse_measurements(data, Problems("m.yaml", lines, dup))
    text = str(err.value)
    assert "m.yaml:3: measurements.neck.kind: unknown kind 'circumferance'; did you mean 'circumference'?" in text
    assert "landmarks.elbow_l.vertex: vertex 99999 is not a body vertex" in text
    assert "unknown landmark 'wrist'" in text


def test_cli_measure_table_json_csv_picture(rig, tmp_path, capsys):
    preset = ROOT / "configs" / "avatars" / "knight.yaml"
    assert main(["measure", str(preset), "--json", "--only", "stature,waist"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = rig.measure(rig.preset(preset))
    assert out["units"] == {"stature": "cm", "waist": "cm"}
    assert abs(out["avatars"]["knight"]["waist"] - m["waist"]) < 1e-3
    csv = tmp_path / "m.csv"
    png = tmp_path / "m.png"
    assert main(["measure", str(preset), str(ROOT / "configs" / "avatars" / "child.yaml"), "--csv", str(csv),
                 "--picture", str(png)]) == 0
    rows = csv.read_text().splitlines()
    assert rows[0].split(",")[:3] == ["avatar", "stature", "mass"] and len(rows) == 3
    assert float(rows[2].split(",")[1]) < float(rows[1].split(",")[1]) - 40  # the child is much shorter
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[0] > 400 and (np.abs(img.astype(int) - [214, 64, 52]).sum(axis=2) < 30).sum() > 500
    assert main(["measure", str(preset), "--only", "waists"]) == 2
    assert "did you mean 'waist'" in capsys.readouterr().err


def test_a_dataset_conditioned_on_measurements(rig, tmp_path):
    """condition: every avatar solved to stature and waist targets of its own, drawn from (seed, row)."""
    import yaml

    import avatar.dataset as dataset
    from avatar.dataset.condition import draw_targets
    from avatar.dataset.config import config_from_text

    cond = {"targets": {"stature": {"normal": [172.0, 6.0], "clip": [160.0, 185.0]}, "waist": {"uniform": [72.0, 88.0]}}}
    text = yaml.safe_dump({"rig": "humanoid", "n": 20, "seed": 5, "sampler": "prior", "vary": ["body.*", "nose.*"],
                           "base": {"body.age": 30}, "condition": cond,
                           "outputs": {"measurements": {}}, "shard": 8})
    config = config_from_text(text, "<test>", store=str(tmp_path / "c.zarr"))
    dataset.generate(config, workers=1, progress=False, rig=rig)
    ds = dataset.open(tmp_path / "c.zarr")
    goal = draw_targets(config.condition, 5, 0, 20)
    names = ds.measurement_names
    for k in ("stature", "waist"):
        np.testing.assert_allclose(ds.measurements[:, names.index(k)], goal[k], atol=0.1)
    assert 160 <= goal["stature"].min() and goal["stature"].max() <= 185 and np.ptp(goal["waist"]) > 5
    # rows 8..15 drawn on their own give the same targets (a pure function of seed and row)
    part = draw_targets(config.condition, 5, 8, 16)
    assert all(np.array_equal(part[k], goal[k][8:16]) for k in goal)
    nose = [j for j, n in enumerate(ds.slider_names) if n.startswith("nose.")]
    assert np.array_equal(ds.sliders[:, nose], dataset.sample(config)[:, nose])  # the solve leaves the rest
    bad = yaml.safe_dump({"rig": "humanoid", "n": 4, "condition": {"targets": {"statue": {"normal": [170, 5]},
                                                                               "waist": {"normal": [80, -1]}},
                                                                   "free": ["body.heigth"]}})
    with pytest.raises(ConfigError) as err:
        config_from_text(bad, "d.yaml", store=str(tmp_path / "x.zarr"))
    text = str(err.value)
    assert "condition.targets.statue: unknown measurement 'statue'; did you mean 'stature'?" in text
    assert "condition.targets.waist.normal: the sd must be positive" in text
    assert "condition.free[0]: matches no slider; did you mean 'body.height'?" in text


def test_validate_knows_every_kind_of_config(tmp_path, capsys):
    files = [ROOT / "configs" / "measurements" / "default.yaml", ROOT / "configs" / "datasets" / "conditioned-bodies.yaml",
             ROOT / "configs" / "avatars" / "knight.yaml"]
    assert main(["validate", *map(str, files)]) == 0
    bad = tmp_path / "m.yaml"
    bad.write_text("landmarks: {}\nmeasurements:\n  neck: {kind: circumference, loop: [1, 2]}\n")
    assert main(["validate", str(bad)]) == 2
    assert f"{bad}:3: measurements.neck.loop: expected a list of at least 3 vertex indices" in capsys.readouterr().err


def test_cli_measures_meshes_of_our_topology_as_they_are(rig, tmp_path, capsys):
    import trimesh

    from avatar.export import write_mesh

    S = rig.sample(2, seed=9, pose=True)
    V = rig.vertices(S)  # posed: a mesh is measured in its own pose
    ply = tmp_path / "a.ply"
    trimesh.Trimesh(V[0], rig.faces, process=False).export(ply)
    glb = tmp_path / "b.glb"
    write_mesh(glb, V[1], rig.template)  # seams split for the UVs: mapped back to the solid
    assert main(["measure", str(ply), str(glb), "--json", "--only", "waist,mass,forearm"]) == 0
    got = json.loads(capsys.readouterr().out)["avatars"]
    want = rig.measure(vertices=V, names=["waist", "mass", "forearm"])
    for i, name in enumerate(("a", "b")):
        for k in ("waist", "mass", "forearm"):
            assert abs(got[name][k] - want[k][i]) < 2e-3, (name, k)
