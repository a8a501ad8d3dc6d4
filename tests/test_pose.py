"""Pose: MakeHuman's skeleton following the shape, pose sliders, skinning, presets and config errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatar.body import assets, pose
from avatar.spec.config import ConfigError
from avatar.spec.pose import load_pose, pose_names, with_pose
from avatar.spec.sliders import preset_vector

ROOT = Path(__file__).resolve().parent.parent
AVATARS = ROOT / "configs" / "avatars"


def posed(rig, base=None, **values):
    x = rig.defaults() if base is None else np.array(base, np.float64)
    for k, v in values.items():
        x[rig.spec.index(k.replace("__", "."))] = v
    return x


def body_faces(rig):
    f = rig.faces
    return f[(f < assets.N_BODY).all(axis=1)]


def bone(rig, name):
    return rig.posing.skeleton.index(name)


# -- the skeleton -------------------------------------------------------------------------
def test_skeleton_is_ordered_and_weights_are_normalised(rig):
    sk = rig.posing.skeleton
    assert len(sk.names) == 163 and sk.parents[0] == -1
    assert all(sk.parents[j] < j for j in range(1, len(sk.names)))  # parents first
    assert sk.influences.shape == (rig.n_vertices, 4)
    np.testing.assert_allclose(sk.weights.sum(axis=1), 1.0, atol=1e-6)
    assert (sk.weights >= 0).all()
    eyes = slice(assets.N_BODY, rig.n_vertices)  # the eyeballs follow the eye bones
    assert {sk.names[j] for j in np.unique(sk.influences[eyes][sk.weights[eyes] > 0])} == {"eye.L", "eye.R"}


def test_bone_frames_are_rotations_with_y_along_the_bone(rig):
    S = rig.sample(4, seed=1)
    ends = rig.rest_ends(S).astype(np.float64)
    H, T = ends[:, 0::2], ends[:, 1::2]
    R = pose.bone_frames(H, T, rig.posing.skeleton.rolls)
    np.testing.assert_allclose(np.einsum("...ji,...jk->...ik", R, R), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    d = (T - H) / np.linalg.norm(T - H, axis=-1, keepdims=True)
    np.testing.assert_allclose(R[..., :, 1], d, atol=1e-9)


def test_joints_follow_the_shape(rig):
    """Cube centroids are blended with the body: a taller avatar's knees and head are higher."""
    short, tall = posed(rig, body__height=0), posed(rig, body__height=100)
    J = rig.joints(np.stack([short, tall]), posed=False)
    for b in ("head", "lowerleg01.L", "upperarm01.R"):
        assert J[1, bone(rig, b), 1] > J[0, bone(rig, b), 1] + 0.02, b
    # and exactly the skeleton's regressor on MakeHuman's plain rule over all of base.obj, cubes included
    from test_body import reference_vertices

    S = rig.sample(3, seed=8)
    for s in rig.sliders:  # the plain rule is MakeHuman's: our own deformers stay at rest
        if s.moves_mesh and not (s.makehuman or s.macro):
            S[:, rig.spec.index(s.name)] = s.default
    ends = rig.rest_ends(S)
    for x, e in zip(S, ends):
        ref = rig.posing.skeleton.regressor @ reference_vertices(rig, x, len(assets.base_mesh().vertices))
        np.testing.assert_allclose(e, ref, atol=1e-5)


def winding_numbers(points, v, faces):
    """(p,) generalized winding numbers of points about a closed mesh: 1 inside, 0 outside (Van Oosterom)."""
    a, b, c = (v[faces[:, i]][None] - points[:, None] for i in range(3))
    la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
    det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
    den = (la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc + np.einsum("pfi,pfi->pf", b, c) * la
           + np.einsum("pfi,pfi->pf", c, a) * lb)
    return np.arctan2(det, den).sum(axis=1) / (2 * np.pi)


def test_joints_of_a_child_lie_inside_its_body(rig):
    x = preset_vector(rig.spec, AVATARS / "child.yaml")
    v = rig.vertices(x, posed=False)[: assets.N_BODY].astype(np.float64)
    J = rig.joints(x[None], posed=False)[0].astype(np.float64)
    inner = ["spine05", "spine03", "spine01", "neck02", "head", "upperarm01.L", "lowerarm01.R", "wrist.L",
             "upperleg01.R", "lowerleg01.L", "foot.R", "finger3-1.L", "toe1-1.L", "clavicle.R"]
    w = winding_numbers(J[[bone(rig, b) for b in inner]], v, body_faces(rig))
    assert (w > 0.99).all(), [(b, round(float(x), 2)) for b, x in zip(inner, w) if x <= 0.99]
    assert abs(winding_numbers(np.array([[0.0, 2.5, 0.0]]), v, body_faces(rig))[0]) < 1e-6  # above the head


# -- posing ------------------------------------------------------------------------------
def test_rest_pose_gives_the_unposed_bytes(rig):
    S = rig.sample(6, seed=3)  # pose sliders at rest
    assert (S[:, rig.spec.pose_sliders] == 0).all()
    assert rig.vertices(S).tobytes() == rig.vertices(S, posed=False).tobytes()


def test_rotating_one_bone_moves_only_its_chain(rig):
    sk = rig.posing.skeleton
    x = posed(rig, pose__elbow_l=70)
    moved = np.any(rig.vertices(x) != rig.vertices(x, posed=False), axis=1)
    chain = set(sk.descendants(bone(rig, "lowerarm01.L")).tolist())
    touched = np.isin(sk.influences, list(chain)) & (sk.weights > 0)
    assert moved.any() and not (moved & ~touched.any(axis=1)).any()  # nothing outside the chain's reach moves
    far = rig.template.part_mask("foot_l", "foot_r", "head", "forearm_r", "hand_r")
    assert not moved[far].any()
    assert moved[rig.template.part_mask("hand_l")].all()


def test_elbow_moves_the_hand_on_a_circle_about_the_elbow(rig):
    angles = np.array([-30.0, 0.0, 40.0, 80.0, 110.0])
    S = np.stack([posed(rig, pose__elbow_l=a) for a in angles])
    J = rig.joints(S).astype(np.float64)
    elbow, hand = J[:, bone(rig, "lowerarm01.L")], J[:, bone(rig, "wrist.L")]
    np.testing.assert_allclose(elbow, elbow[:1].repeat(len(S), 0), atol=1e-5)  # the pivot stays put
    r = hand - elbow
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), np.linalg.norm(r[1]), rtol=1e-5)
    cos = r @ r[1] / np.linalg.norm(r, axis=1) / np.linalg.norm(r[1])
    np.testing.assert_allclose(np.degrees(np.arccos(np.clip(cos, -1, 1))), np.abs(angles), atol=0.05)


@pytest.mark.parametrize("preset", ["man", "child", "heavy"])
def test_t_pose_arms_are_horizontal(rig, preset):
    x = with_pose(rig.spec, preset_vector(rig.spec, AVATARS / f"{preset}.yaml"), "t-pose")
    J = rig.joints(x[None])[0]
    for side in "LR":
        d = J[bone(rig, f"wrist.{side}")] - J[bone(rig, f"upperarm01.{side}")]
        assert abs(np.degrees(np.arcsin(d[1] / np.linalg.norm(d)))) < 5, side


def reference_lbs(rig, x):
    """Posed vertices by plain 4x4 matrices (Blender's rule, written independently of pose.py's delta form)."""
    sk = rig.posing.skeleton
    ends = rig.rest_ends(x[None])[0].astype(np.float64)
    H, T = ends[0::2], ends[1::2]
    C = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    rest = np.zeros((len(H), 4, 4))
    for j in range(len(H)):
        d = C @ (T[j] - H[j])
        d /= np.linalg.norm(d)
        axis = np.cross([0.0, 1.0, 0.0], d)
        s, c = np.linalg.norm(axis), d[1]
        K = np.zeros((3, 3)) if s == 0 else np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]],
                                                      [-axis[1], axis[0], 0]]) / s
        Rmin = np.eye(3) + s * K + (1 - c) * K @ K
        cr, sr = np.cos(sk.rolls[j]), np.sin(sk.rolls[j])
        rest[j, :3, :3] = C.T @ Rmin @ np.array([[cr, 0, sr], [0, 1, 0], [-sr, 0, cr]])
        rest[j, :3, 3], rest[j, 3, 3] = H[j], 1.0
    ang = rig.posing.angles(x[None])[0]
    world = np.zeros_like(rest)
    for j in range(len(H)):
        ax, ay, az = ang[j]
        Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        Ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        Rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        local = np.eye(4)
        local[:3, :3] = Rz @ Ry @ Rx
        p = sk.parents[j]
        world[j] = rest[j] @ local if p < 0 else world[p] @ np.linalg.inv(rest[p]) @ rest[j] @ local
    skin = world @ np.linalg.inv(rest)
    V = rig.vertices(x, posed=False).astype(np.float64)
    Vh = np.concatenate([V, np.ones((len(V), 1))], axis=1)
    out = np.zeros_like(V)
    for k in range(4):
        out += sk.weights[:, k, None] * np.einsum("vij,vj->vi", skin[sk.influences[:, k]], Vh)[:, :3]
    out[:, 1] -= out[: assets.N_BODY, 1].min()
    return out


def test_posed_vertices_match_a_plain_matrix_reference(rig):
    x = rig.sample(3, seed=11, pose=True)[2]
    assert np.count_nonzero(x[rig.spec.pose_sliders]) > 20
    np.testing.assert_allclose(rig.vertices(x), reference_lbs(rig, x), atol=5e-5)  # 0.05 mm


def test_posed_rows_do_not_depend_on_the_batch(rig):
    S = rig.sample(9, seed=5, pose=True)
    V = rig.vertices(S)
    for i in (0, 4, 8):
        assert rig.vertices(S[i]).tobytes() == V[i].tobytes()
    assert rig.vertices(S[3:7]).tobytes() == V[3:7].tobytes()


def test_posed_bodies_stay_closed_with_positive_volume(rig):
    import trimesh

    S = rig.sample(6, seed=2, pose=True)
    for v in rig.vertices(S):
        m = trimesh.Trimesh(v[: assets.N_BODY], body_faces(rig), process=False)
        assert m.is_watertight and m.is_winding_consistent and m.volume > 0.01
        assert abs(v[: assets.N_BODY, 1].min()) < 1e-6  # the posed body stands on y = 0


def test_sample_keeps_the_rest_pose_unless_asked(rig):
    cols = rig.spec.pose_sliders
    assert len(cols) >= 16
    assert (rig.sample(50, seed=0)[:, cols] == 0).all()
    P = rig.sample(50, seed=0, pose=True)
    assert (P[:, cols] != 0).mean() > 0.9
    other = np.setdiff1d(np.arange(len(rig.sliders)), cols)
    np.testing.assert_array_equal(P[:, other], rig.sample(50, seed=0)[:, other])  # same shapes, posed


# -- presets and errors --------------------------------------------------------------------
def test_pose_presets_load_and_differ(rig):
    assert set(pose_names()) >= {"a-pose", "t-pose", "relaxed", "walk", "seated"}
    vecs = {n: with_pose(rig.spec, rig.defaults(), n) for n in pose_names()}
    assert (vecs["a-pose"] == rig.defaults()).all()
    for n, v in vecs.items():
        assert n == "a-pose" or np.count_nonzero(v - rig.defaults()) >= 4, n


def test_an_avatar_preset_picks_a_pose(rig, tmp_path):
    p = tmp_path / "sitter.yaml"
    p.write_text("name: sitter\npose: seated\nsliders:\n  body.gender: 90\n  pose.knee_l: 45\n")
    x = preset_vector(rig.spec, p)
    seated = load_pose("seated", rig.spec)
    assert x[rig.spec.index("pose.hip_flex_l")] == seated["pose.hip_flex_l"]
    assert x[rig.spec.index("pose.knee_l")] == 45  # the preset's own value wins


def test_pose_config_errors_name_the_problem(rig, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsliders:\n  pose.elbow_l: 500\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:3.*pose.elbow_l.*outside the allowed range"):
        preset_vector(rig.spec, bad)
    bad.write_text("name: bad\npose: sated\n")
    with pytest.raises(ConfigError, match=r"did you mean 'seated'"):
        preset_vector(rig.spec, bad)
    notpose = tmp_path / "notpose.yaml"
    notpose.write_text("name: p\nsliders:\n  body.age: 30\n")
    with pytest.raises(ConfigError, match="pose sliders only"):
        load_pose(str(notpose), rig.spec)


def test_rig_yaml_pose_entries_are_checked(tmp_path):
    from avatar.spec.sliders import load_rig_spec

    text = (ROOT / "configs" / "rigs" / "humanoid.yaml").read_text()
    bad = tmp_path / "rig.yaml"
    bad.write_text(text.replace("{bone: lowerarm01.L, axis: x}", "{bone: lowerarm1.L, axis: q}"))
    with pytest.raises(ConfigError) as err:
        load_rig_spec(bad)
    msg = str(err.value)
    assert "no bone 'lowerarm1.L'" in msg and "did you mean 'lowerarm01.L'" in msg and "axis" in msg
    bad.write_text(text.replace("skeleton: default", "skeleton: gaming"))
    with pytest.raises(ConfigError, match=r"rig.yaml:\d+: skeleton.*game_engine"):
        load_rig_spec(bad)


def test_a_rig_on_the_game_engine_skeleton(tmp_path):
    from avatar.body.rig import load_rig

    rig_yaml = tmp_path / "game.yaml"
    rig_yaml.write_text("""name: game
template: humanoid
skeleton: game_engine
sliders:
  body.height: {description: Stature., min: 0, max: 100, default: 50, macro: height}
  pose.elbow_l:
    description: Bends the left elbow.
    min: -40
    max: 110
    default: 0
    unit: deg
    pose: [{bone: lowerarm_l, axis: x}]
""")
    rig = load_rig(rig_yaml)
    sk = rig.posing.skeleton
    assert len(sk.names) == 53 and sk.names[0] == "Root"
    eyes = slice(assets.N_BODY, rig.n_vertices)
    assert {sk.names[j] for j in np.unique(sk.influences[eyes][sk.weights[eyes] > 0])} == {"head"}
    S = np.array([[50.0, a] for a in (0.0, 45.0, 90.0)])
    J = rig.joints(S).astype(np.float64)
    elbow, hand = J[:, sk.index("lowerarm_l")], J[:, sk.index("hand_l")]
    np.testing.assert_allclose(elbow, elbow[:1].repeat(3, 0), atol=1e-5)
    r = hand - elbow
    cos = r @ r[0] / np.linalg.norm(r, axis=1) / np.linalg.norm(r[0])
    np.testing.assert_allclose(np.degrees(np.arccos(np.clip(cos, -1, 1))), [0, 45, 90], atol=0.05)
    V = rig.vertices(S)
    moved = np.any(V[2] != V[0], axis=1)
    assert moved[rig.template.part_mask("hand_l")].all() and not moved[rig.template.part_mask("foot_r")].any()


def test_left_and_right_pose_sliders_mirror_each_other(rig):
    """pose.X_l at v is the mirror image of pose.X_r at v (MakeHuman's rolls are mirrored to within a
    degree or so: the hips differ most, 10 mm in a metre of motion at full flexion)."""
    m = rig.template.mirror
    for s in rig.sliders:
        if not (s.pose and s.name.endswith("_l")):
            continue
        for v in (s.min, s.max):
            xl, xr = posed(rig, **{s.name.replace(".", "__"): v}), posed(rig, **{s.name[:-2].replace(".", "__") + "_r": v})
            Vl, Vr, V0 = rig.vertices(np.stack([xl, xr, rig.defaults()])).astype(np.float64)
            moved = np.linalg.norm(Vr - V0, axis=1).max()
            err = np.abs(Vl[m] * (-1, 1, 1) - Vr).max()
            assert moved > 0.02 or s.name == "pose.fist_l" and v == 0, (s.name, v)
            assert err <= 0.015 * moved + 5e-4, (s.name, v, err, moved)


def test_joints_follow_our_own_deformers(tmp_path):
    """A `move` deformer (body vertices only) carries the joint cubes inside the region with it."""
    from avatar.body.rig import load_rig

    rig_yaml = tmp_path / "moved.yaml"
    rig_yaml.write_text("""name: moved
template: humanoid
sliders:
  arms.lift_elbow:
    description: Moves the region around the left elbow up.
    min: 0
    max: 100
    default: 0
    effects: [{deformer: move, at: elbow_l, radius: 0.12, amount: [0, 0.03, 0], side: left}]
""")
    rig = load_rig(rig_yaml)
    J = rig.joints(np.array([[0.0], [100.0]]), posed=False).astype(np.float64)
    sk = rig.posing.skeleton
    lift = J[1, :, 1] - J[0, :, 1]
    assert 0.02 < lift[sk.index("lowerarm01.L")] <= 0.0301   # inside the region: carried up
    assert abs(lift[sk.index("lowerarm01.R")]) < 1e-6 and abs(lift[sk.index("foot.L")]) < 1e-6


def _random_skin(rng, n=3, N=141, n_body=100, J=9):
    """Random rest vertices, bone transforms and 1-4 influences per vertex (largest weight first)."""
    V = rng.standard_normal((n, N, 3)).astype(np.float32)
    dA = rng.standard_normal((n, J, 3, 3)) * 0.3
    t = rng.standard_normal((n, J, 3)) * 0.1
    dA[:, 4], t[:, 4] = 0.0, 0.0  # a bone at rest
    k = rng.integers(1, 5, N)
    w = rng.random((N, 4)) * (np.arange(4) < k[:, None])
    w = -np.sort(-w / w.sum(axis=1, keepdims=True), axis=1)
    infl = np.stack([rng.choice(J, 4, replace=False) for _ in range(N)])
    infl[:5] = infl[0]  # a few vertices sharing one set of bones
    return V, dA, t, infl, w.astype(np.float32), n_body


def test_skin_slots_hold_every_vertex_once_with_its_own_bones():
    V, dA, t, infl, w, n_body = _random_skin(np.random.default_rng(0))
    w[0] = w[7] = (0.4, 0.3, 0.2, 0.1)
    infl[7] = infl[0][[2, 0, 3, 1]]                          # vertex 0's bones in another order...
    w[7] = w[0][[2, 0, 3, 1]]
    s = pose.skin_slots(infl, w, n_body)
    L = len(s.perm) // len(s.K)
    assert len(s.perm) == L * len(s.K) and np.array_equal(s.perm[s.pos], np.arange(len(infl)))
    blocks = s.pos // L
    for i in range(len(infl)):
        k = int((w[i] > 0).sum())
        b = blocks[i]
        by_bone = np.argsort(infl[i, :k])                    # a block's bones in ascending index
        assert s.K[b] == k and np.array_equal(s.bones[b, :k], infl[i, :k][by_bone])
        np.testing.assert_array_equal(s.w[:k, s.pos[i]], w[i, :k][by_bone])
        assert (s.w[k:, s.pos[i]] == 0).all()
    from collections import Counter                        # vertices with the same set of bones, in any
    sets = Counter((i >= n_body, *sorted(infl[i, :int((w[i] > 0).sum())])) for i in range(len(infl)))  # order,
    assert len(s.K) == sum(-(-count // L) for count in sets.values())                  # share blocks
    assert blocks[7] == blocks[0]                             # ...shares its block
    assert np.all(blocks[:n_body] < s.body_blocks) and np.all(blocks[n_body:] >= s.body_blocks)
    for b in range(len(s.K)):  # spare slots repeat a vertex of their own block
        assert np.all(blocks[s.perm[b * L:(b + 1) * L]] == b)


def test_skinning_loop_matches_float64_and_stands_the_body_on_the_floor():
    V, dA, t, infl, w, n_body = _random_skin(np.random.default_rng(1))
    slots = pose.skin_slots(infl, w, n_body)
    out, lift = pose.skin(V, dA, t, slots)
    V64 = V.astype(np.float64)
    ref = V64.copy()
    for k in range(4):
        j = infl[:, k]
        moved = np.einsum("bvij,bvj->bvi", dA[:, j], V64) + t[:, j]
        ref += w[None, :, k, None] * moved
    ref_lift = -ref[:, :n_body, 1].min(axis=1)
    np.testing.assert_allclose(lift, ref_lift, atol=1e-5)
    ref[:, :, 1] += ref_lift[:, None]
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert np.all(out[:, :n_body, 1].min(axis=1) == 0.0)
    again = V.copy()  # in place, and each avatar alone: the same bytes
    pose.skin(again, dA, t, slots, out=again)
    assert again.tobytes() == out.tobytes()
    assert pose.skin(V[1:2], dA[1:2], t[1:2], slots)[0].tobytes() == out[1:2].tobytes()


def test_forward_kinematics_carries_a_still_bone_exactly(rig):
    x = rig.sample(4, seed=3, pose=True)
    ends = rig.rest_ends(x).astype(np.float64)
    sk = rig.posing.skeleton
    H, T = ends[:, 0::2], ends[:, 1::2]
    Q = pose.euler_xyz(rig.posing.angles(x))
    dA, t = pose.skinning_transforms(sk.parents, H, pose.bone_frames(H, T, sk.rolls), Q)
    still = np.all(Q == np.eye(3), axis=(2, 3)) & (sk.parents >= 0)
    a, j = np.nonzero(still)
    assert len(j) > 10
    assert np.array_equal(dA[a, j], dA[a, sk.parents[j]]) and np.array_equal(t[a, j], t[a, sk.parents[j]])
    root = sk.parents < 0
    turned = ~np.all(Q[:, root] == np.eye(3), axis=(2, 3))
    assert np.all(dA[:, root][~turned] == 0) and np.all(t[:, root][~turned] == 0)
