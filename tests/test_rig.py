"""The rig and its template: valid, local, symmetric, deterministic, known answers.

Geometry checks run on whole batches of avatars with numpy (face normals, areas
and per-component volumes of an (n, V, 3) batch); trimesh is used only where
trimesh itself is the point (``rig.mesh``).
"""
from __future__ import annotations

import numpy as np
import pytest

import avatar.body.template as template_module
from avatar.body import anatomy

MM = 1e-3
SEED = 20240611       # the random population of the validity tests
N_RANDOM = 500
CHUNK = 40            # avatars per vectorised geometry chunk (keeps memory ~0.5 GB)
MACROS = ("body.weight", "body.muscle", "body.masculinity", "body.age")
HEAD_PARTS = ("head", "forehead", "face", "nose", "mouth", "chin", "ear_l", "ear_r", "eye_l", "eye_r")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def face_normals(X: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(..., F, 3) unnormalised face normals (twice the area) of vertices (..., V, 3)."""
    a, b, c = (X[..., faces[:, k], :] for k in range(3))
    return np.cross(b - a, c - a)


def cross32(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """np.cross for (..., 3) arrays, written out (np.cross is slow on big batches)."""
    out = np.empty_like(u)
    out[..., 0] = u[..., 1] * v[..., 2] - u[..., 2] * v[..., 1]
    out[..., 1] = u[..., 2] * v[..., 0] - u[..., 0] * v[..., 2]
    out[..., 2] = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    return out


def component_volumes(X: np.ndarray, faces: np.ndarray, comp: np.ndarray, n_comp: int) -> np.ndarray:
    """(n, C) signed volume of each connected component (divergence theorem), X (n, V, 3)."""
    X = np.asarray(X, dtype=np.float64)
    a = X[:, faces[:, 0]]
    n = face_normals(X, faces)
    onehot = np.zeros((len(faces), n_comp))
    onehot[np.arange(len(faces)), comp] = 1.0
    return np.einsum("nfk,nfk->nf", a, n) @ onehot / 6.0


def total_volume(X: np.ndarray, faces: np.ndarray) -> float:
    X = np.asarray(X, dtype=np.float64)
    return float(np.einsum("fk,fk->", X[faces[:, 0]], face_normals(X, faces)) / 6.0)


def with_values(rig, **values) -> np.ndarray:
    """Defaults with some sliders set; keys use '__' for the dot ('body__height')."""
    x = rig.defaults()
    for key, v in values.items():
        x[rig.slider_names.index(key.replace("__", "."))] = v
    return x


def slider(rig, name: str):
    return rig.sliders[rig.slider_names.index(name)]


def moved_parts(template, disp: np.ndarray, threshold: float) -> dict[str, float]:
    """{part: max displacement} for the parts where some vertex moved more than ``threshold``."""
    out = {}
    for k, name in enumerate(template.part_names):
        m = disp[template.parts == k]
        if len(m) and m.max() > threshold:
            out[name] = float(m.max())
    return out


def fmt_mm(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v / MM:.2f} mm" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------
# 1. the template
# --------------------------------------------------------------------------
def directed_edges(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def test_template_sizes_and_parts(template):
    V, F = len(template.vertices), len(template.faces)
    assert 10_000 <= V <= 30_000, V
    assert template.vertices.shape == (V, 3) and template.faces.shape == (F, 3)
    assert np.isfinite(template.vertices).all()
    assert template.faces.min() >= 0 and template.faces.max() < V
    assert len(np.unique(template.faces)) == V, "vertices used by no face"
    assert tuple(template.part_names) == template_module.PART_NAMES
    assert template.parts.shape == (V,)
    counts = np.bincount(template.parts, minlength=len(template.part_names))
    assert len(counts) == len(template.part_names)
    empty = [n for n, c in zip(template.part_names, counts) if c == 0]
    assert not empty, f"parts without vertices: {empty}"
    assert np.all(np.diff(template.parts) >= 0), "vertices are not sorted by part"


def test_template_is_closed_and_consistently_wound(template):
    f = template.faces
    assert not np.any((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])), "repeated corner"
    # watertight: every undirected edge is shared by exactly two faces
    _, uses = np.unique(np.sort(directed_edges(f), axis=1), axis=0, return_counts=True)
    assert np.all(uses == 2), f"{np.sum(uses != 2)} edges not used by exactly 2 faces (max {uses.max()})"
    # consistent winding: the two faces at an edge walk it in opposite directions,
    # so no directed edge occurs twice
    _, directed_uses = np.unique(directed_edges(f), axis=0, return_counts=True)
    assert np.all(directed_uses == 1), f"{np.sum(directed_uses > 1)} edges walked the same way by both faces"
    # no duplicate faces (the same three vertices, whatever their order)
    assert len(np.unique(np.sort(f, axis=1), axis=0)) == len(f), "duplicate faces"


def test_template_components_are_positive_solids(template, components):
    comp, count = components
    assert count == 3, f"expected body + 2 eyeballs, got {count} components"
    sizes = np.bincount(comp)
    assert sizes[1] == sizes[2], "the eyeballs differ"
    # the two small components are exactly the eyeball parts
    vert_comp = np.zeros(len(template.vertices), dtype=np.int64)
    vert_comp[template.faces.ravel()] = np.repeat(comp, 3)
    eyes = template.part_mask("eye_l", "eye_r")
    assert np.all(vert_comp[eyes] > 0) and np.all(vert_comp[~eyes] == 0)
    assert set(vert_comp[template.part_mask("eye_l")]) != set(vert_comp[template.part_mask("eye_r")])
    vol = component_volumes(template.vertices[None], template.faces, comp, count)[0]
    assert np.all(vol > 0), f"component volumes {vol} (a negative one is wound inside out)"
    # a ~1.75 m body: tens of litres; an eyeball of radius 12.2 mm: ~7.6 ml
    assert 0.03 < vol[0] < 0.15, vol[0]
    r = 0.0122
    np.testing.assert_allclose(vol[1:], 4 / 3 * np.pi * r**3, rtol=0.05)
    # each component is a closed surface of Euler characteristic 2 - 2 genus;
    # the eyeballs are spheres
    for k in (1, 2):
        fk = template.faces[comp == k]
        n_edges = len(np.unique(np.sort(directed_edges(fk), axis=1), axis=0))
        assert len(np.unique(fk)) - n_edges + len(fk) == 2


def test_template_has_no_degenerate_faces(template):
    area = 0.5 * np.linalg.norm(face_normals(template.vertices, template.faces), axis=1)
    bad = np.flatnonzero(area <= 1e-10)
    names = np.array(template.part_names)
    detail = "; ".join(f"face {i} area {area[i]:.2e} m^2 parts {'/'.join(names[template.parts[template.faces[i]]])}"
                       for i in bad[np.argsort(area[bad])][:6])
    assert len(bad) == 0, f"{len(bad)} faces with area <= 1e-10 m^2 (min {area.min():.2e}): {detail}"


def test_template_is_mirror_symmetric(template):
    v, m = template.vertices, template.mirror
    assert np.array_equal(v[m], v * (-1.0, 1.0, 1.0)), "template not exactly mirror-symmetric"
    assert np.array_equal(m[m], np.arange(len(v))), "the mirror map is not an involution"
    # part labels mirror: a vertex of ear_l has its twin in ear_r, midline parts map to themselves
    mirror_part = np.array([template.part_names.index(anatomy.mirror_name(p)) for p in template.part_names])
    wrong = np.flatnonzero(template.parts[m] != mirror_part[template.parts])
    assert len(wrong) == 0, f"{len(wrong)} vertices whose twin is not in the mirrored part"
    # a face's mirror image, reversed to keep the outward winding, is a face
    def canonical(f):  # rotate each triangle so its smallest index comes first (keeps the winding)
        k = np.argmin(f, axis=1)[:, None]
        return np.take_along_axis(f, (k + np.arange(3)) % 3, axis=1)

    faces = {tuple(f) for f in canonical(template.faces)}
    mirrored = canonical(m[template.faces][:, ::-1])
    assert all(tuple(f) in faces for f in mirrored), "the faces are not mirror-symmetric with outward winding"


def test_template_uvs(template):
    assert template.uv_faces.shape == template.faces.shape
    assert template.uv_faces.min() >= 0 and template.uv_faces.max() < len(template.uv)
    assert len(np.unique(template.uv_faces)) == len(template.uv), "UVs used by no face"
    assert np.isfinite(template.uv).all()
    assert template.uv.min() >= 0.0 and template.uv.max() <= 1.0, (template.uv.min(), template.uv.max())


# --------------------------------------------------------------------------
# 2. validity of a random population plus every slider at both ends
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def population(rig, extremes):
    """(S, labels): 500 random avatars, then each slider at its min, then each at its max."""
    lo, hi = extremes
    S = np.vstack([rig.sample(N_RANDOM, seed=SEED), lo, hi])
    labels = ([f"sample {i} (seed {SEED})" for i in range(N_RANDOM)]
              + [f"{s.name}=min ({s.min:g})" for s in rig.sliders]
              + [f"{s.name}=max ({s.max:g})" for s in rig.sliders])
    return S, labels


@pytest.fixture(scope="module")
def validity(rig, template, components, population):
    """Per-avatar geometry statistics of the population, computed in vectorised chunks."""
    S, _ = population
    faces = template.faces
    comp, n_comp = components
    n0 = face_normals(template.vertices, faces)
    n0 = (n0 / np.linalg.norm(n0, axis=1, keepdims=True)).astype(np.float32)
    onehot = np.zeros((len(faces), n_comp))
    onehot[np.arange(len(faces)), comp] = 1.0
    out = {k: [] for k in ("finite", "min_y", "volume", "min_area", "min_area_face", "cos", "n_inverted")}
    inverted = np.zeros(len(faces), dtype=np.int64)  # per face: in how many avatars it is inverted
    inverted_in = []                                   # per avatar: the inverted faces
    for i in range(0, len(S), CHUNK):
        X32 = rig.vertices(S[i:i + CHUNK])
        out["finite"].append(np.isfinite(X32).all(axis=(1, 2)))
        out["min_y"].append(X32[:, :, 1].min(axis=1))
        # float32 throughout: edge vectors of float32 vertices are exact, and the
        # products keep ~1e-7 relative error (volumes to ~1e-9 m^3, far below an
        # eyeball's 7.6e-6 m^3); float64 would double the time
        a = X32[:, faces[:, 0]]
        n = cross32(X32[:, faces[:, 1]] - a, X32[:, faces[:, 2]] - a)
        twice_area = np.sqrt(np.einsum("nfk,nfk->nf", n, n))
        cos = np.einsum("nfk,fk->nf", n, n0) / np.maximum(twice_area, 1e-30)
        out["volume"].append(np.einsum("nfk,nfk->nf", a, n).astype(np.float64) @ onehot / 6.0)
        out["min_area"].append(0.5 * twice_area.min(axis=1))
        out["min_area_face"].append(twice_area.argmin(axis=1))
        out["cos"].append(cos.min(axis=1))
        bad = ~(cos > 0)
        out["n_inverted"].append(bad.sum(axis=1))
        inverted += bad.sum(axis=0)
        inverted_in += [np.flatnonzero(row) for row in bad]
    stats = {k: np.concatenate(v) for k, v in out.items()}
    stats["inverted_per_face"] = inverted
    stats["inverted_in"] = inverted_in
    return stats


def test_population_is_finite(validity, population):
    bad = np.flatnonzero(~validity["finite"])
    assert len(bad) == 0, f"non-finite vertices in {[population[1][i] for i in bad[:5]]}"


def test_population_stands_on_the_floor(validity, population):
    err = np.abs(validity["min_y"])
    worst = int(np.argmax(err))
    assert err.max() <= 1e-5, f"lowest vertex at y = {validity['min_y'][worst]:.3g} for {population[1][worst]}"


def test_population_component_volumes_positive(validity, population):
    vol = validity["volume"]
    assert vol.shape[1] == 3
    bad = np.flatnonzero(~(vol > 0).all(axis=1))
    detail = "; ".join(f"{population[1][i]}: {vol[i]}" for i in bad[:5])
    assert len(bad) == 0, f"{len(bad)} avatars with a component of volume <= 0: {detail}"


def test_population_has_no_degenerate_faces(validity, population, template):
    area = validity["min_area"]
    bad = np.flatnonzero(~(area > 1e-12))
    names = np.array(template.part_names)
    detail = "; ".join(
        f"{population[1][i]}: face {validity['min_area_face'][i]} area {area[i]:.2e} m^2 "
        f"(parts {'/'.join(names[template.parts[template.faces[validity['min_area_face'][i]]]])})"
        for i in bad[np.argsort(area[bad])][:5])
    assert len(bad) == 0, f"{len(bad)} of {len(area)} avatars have a face of area <= 1e-12 m^2: {detail}"


# Known limitation (README, "The template mesh"): deformers do not collide, so
# where a thick limb meets a thick trunk (armpit, groin) or the neck meets the
# jaw, or in the creases of the eyelids and the lips' parting, a combination of
# several sliders can fold a few faces over. Every single
# slider at either end must fold nothing; random combinations stay within these
# bounds, and only in those creases.
MAX_FOLDED_PER_AVATAR = 60        # faces, of ~50,000
MIN_FOLD_FREE_RANDOM = 0.8        # fraction of random avatars with no fold at all
CREASE_PARTS = {"chest", "abdomen", "pelvis", "neck", "chin", "upper_arm_l", "upper_arm_r",
                "thigh_l", "thigh_r", "face", "mouth"}


def test_random_combinations_fold_only_a_few_crease_faces(validity, template):
    cos = validity["cos"][:N_RANDOM]
    folded = np.asarray(validity["n_inverted"][:N_RANDOM])
    assert (cos > 0).mean() >= MIN_FOLD_FREE_RANDOM, f"only {(cos > 0).mean():.0%} of random avatars fold-free"
    assert folded.max() <= MAX_FOLDED_PER_AVATAR, f"an avatar folds {folded.max()} faces"
    faces = np.flatnonzero(validity["inverted_per_face"])
    parts = set(map(str, np.array(template.part_names)[template.parts[template.faces[faces]]].ravel()))
    assert parts <= CREASE_PARTS, f"folds outside the creases: {sorted(parts - CREASE_PARTS)}"


def test_single_slider_extremes_have_no_inverted_faces(validity, population, template, rig):
    """Every face keeps a positive dot product with its template normal.

    Bends (posture up to 20 deg plus age up to 10 deg on the same joint) turn
    faces by at most 30 deg, so any face turned by 90 deg or more is folded over.
    """
    cos, labels = validity["cos"], population[1]
    bad = np.flatnonzero(~(cos > 0))
    bad = bad[bad >= N_RANDOM]
    if len(bad) == 0:
        return
    names = np.array(template.part_names)

    def describe(i):
        faces = validity["inverted_in"][i]
        parts = " ".join(sorted(set(map(str, names[template.parts[template.faces[faces]]].ravel()))))
        return (f"{labels[i]}: {len(faces)} faces inverted, worst turned "
                f"{np.degrees(np.arccos(np.clip(cos[i], -1, 1))):.1f} deg, parts {parts}")

    single = [i for i in bad if i >= N_RANDOM]  # one slider at an end, the rest at default
    single.sort(key=lambda i: (-validity["n_inverted"][i], cos[i]))
    randoms = [i for i in bad if i < N_RANDOM]
    often = np.argsort(-validity["inverted_per_face"])[:8]
    pytest.fail(
        f"{len(bad)} of {len(cos)} avatars have inverted faces "
        f"({len(randoms)} of {N_RANDOM} random; {len(single)} of {2 * len(rig.sliders)} single-slider extremes; "
        f"{np.count_nonzero(validity['inverted_per_face'])} distinct faces).\n"
        f"single sliders at an end, worst first:\n  " + "\n  ".join(describe(i) for i in single[:40]) +
        "\nworst random avatar:\n  " + (describe(min(randoms, key=lambda i: cos[i])) if randoms else "-") +
        "\nfaces inverted most often (face: avatars, parts): " +
        ", ".join(f"{f}: {validity['inverted_per_face'][f]} {'/'.join(names[template.parts[template.faces[f]]])}"
                  for f in often))


def test_mesh_via_trimesh(rig, template):
    """``rig.mesh(..., textured=False)`` is the watertight solid, vertex for vertex."""
    presets = [None, {"body.height": 196.5, "body.weight": 85.0, "face.ear_point": 60.0},
               rig.sample(1, seed=SEED + 1)[0]]
    for values in presets:
        mesh = rig.mesh(values, textured=False)
        x = rig.defaults() if values is None else rig.values(values)
        np.testing.assert_array_equal(mesh.faces, template.faces)
        np.testing.assert_allclose(mesh.vertices, rig.vertices(x), rtol=0, atol=1e-6)
        assert mesh.is_watertight and mesh.is_winding_consistent, values
        assert mesh.volume > 0, values
        assert len(mesh.split(only_watertight=False)) == 3
        assert np.array_equal(mesh.metadata["parts"], template.parts)
    tall = rig.mesh(presets[1], textured=False)
    assert tall.bounds[1, 1] - tall.bounds[0, 1] == pytest.approx(1.965, abs=0.02)


def test_textured_mesh_is_the_solid_split_at_seams(rig, template):
    """The default (textured) mesh splits seam vertices but is the same surface."""
    values = {"body.weight": 70.0, "face.nose_length": 80.0}
    solid = rig.mesh(values, textured=False)
    mesh = rig.mesh(values, texture_size=64)
    index = np.asarray(mesh.metadata["solid_index"])
    assert len(mesh.vertices) >= len(solid.vertices)
    np.testing.assert_array_equal(mesh.vertices, solid.vertices[index])
    np.testing.assert_array_equal(index[mesh.faces], solid.faces)  # same triangles, same winding
    uv = np.asarray(mesh.visual.uv)
    assert uv.shape == (len(mesh.vertices), 2) and uv.min() >= 0.0 and uv.max() <= 1.0
    assert np.isclose(mesh.volume, solid.volume, rtol=1e-9)


# --------------------------------------------------------------------------
# 3. every slider is visible
# --------------------------------------------------------------------------
GEOMETRY_GROUPS = ("body", "face")  # other groups (skin, tattoo, ...) paint the texture only


def has_effects(s) -> bool:
    return any(s.effects.values()) if isinstance(s.effects, dict) else bool(s.effects)


def test_every_shape_slider_visibly_changes_the_mesh(rig, extreme_vertices):
    # A 512 px render framing the face (~0.2 m) shows ~0.4 mm per pixel, so a
    # 2 mm move is ~5 px: clearly visible. A slider that moves no vertex by
    # 2 mm between its ends does nothing a user or a model can see.
    # (body.height changes everything; that is fine and passes trivially.)
    lo, hi = extreme_vertices
    disp = np.linalg.norm(hi.astype(np.float64) - lo, axis=2).max(axis=1)
    shape = [j for j, s in enumerate(rig.sliders) if s.group in GEOMETRY_GROUPS]
    assert len(shape) >= 50
    weak = {rig.slider_names[j]: float(disp[j]) for j in shape if not disp[j] > 2 * MM}
    assert not weak, f"sliders moving no vertex by more than 2 mm min vs max: {fmt_mm(weak)}"
    # a shape slider without effects would be a dead slider
    dead = [rig.slider_names[j] for j in shape if not has_effects(rig.sliders[j])]
    assert not dead, f"body/face sliders without effects: {dead}"


def test_texture_sliders_leave_the_geometry_alone(rig, extreme_vertices):
    """Sliders outside body/face (skin colour, tattoos, ...) list no effects and move no vertex."""
    lo, hi = extreme_vertices
    default = rig.vertices(rig.defaults())
    for j, s in enumerate(rig.sliders):
        if s.group in GEOMETRY_GROUPS:
            continue
        assert not has_effects(s), f"{s.name} has geometry effects outside the body/face groups"
        assert np.array_equal(lo[j], default) and np.array_equal(hi[j], default), s.name


# --------------------------------------------------------------------------
# 4. locality
# --------------------------------------------------------------------------
def extreme_displacement(rig, extreme_vertices, name: str) -> np.ndarray:
    """(V,) distance each vertex moves between the slider's min and max (others default)."""
    j = rig.slider_names.index(name)
    lo, hi = extreme_vertices
    return np.linalg.norm(hi[j].astype(np.float64) - lo[j], axis=1)


def test_face_sliders_move_only_the_head(rig, template, extreme_vertices):
    allowed = template.part_mask(*HEAD_PARTS, "neck")
    face_sliders = [s.name for s in rig.sliders if s.group == "face"]
    assert len(face_sliders) >= 30
    leaks = {}
    for name in face_sliders:
        disp = extreme_displacement(rig, extreme_vertices, name)
        disp[allowed] = 0.0
        if disp.max() > 0.5 * MM:
            leaks[name] = fmt_mm(moved_parts(template, disp, 0.5 * MM))
    assert not leaks, f"face sliders moving body parts by > 0.5 mm: {leaks}"


# slider -> (parts it may move by > 0.5 mm, [(more parts, lowest y, highest y)]): the
# bands admit a neighbouring part only at the seam, in template heights (metres)
THIGHS = ("thigh_l", "thigh_r")
BODY_MICRO_REGIONS = {
    # girth about the upper arm: the arm, its elbow, and the chest at the armpit
    # (the abdomen, about 13 cm and more below the armpit, is out of bounds)
    "body.upper_arm_girth": (("upper_arm_l", "upper_arm_r", "forearm_l", "forearm_r", "chest"), ()),
    "body.forearm_girth": (("upper_arm_l", "upper_arm_r", "forearm_l", "forearm_r", "hand_l", "hand_r"), ()),
    "body.hand_size": (("hand_l", "hand_r", "forearm_l", "forearm_r"), ()),
    # the template's thigh parts reach up to the groin and hip side (y 1.05 m),
    # so the thigh girth may touch the lowest abdomen there
    "body.thigh_girth": (("pelvis", "thigh_l", "thigh_r", "shin_l", "shin_r"), ((("abdomen",), 0.0, 1.03),)),
    # the calf, eased in below the knee (knee joint at y 0.515 m)
    "body.calf_girth": (("shin_l", "shin_r", "foot_l", "foot_r"), ((THIGHS, 0.0, 0.6),)),
    # the belly bump reaches the groin, labelled as the top of the thighs
    "body.belly": (("abdomen", "chest", "pelvis"), ((THIGHS, 0.95, 2.0),)),
    "body.buttocks": (("pelvis", "thigh_l", "thigh_r"), ()),
    # the waist band meets the hip side, labelled thigh up to y 1.05 m
    "body.waist": (("chest", "abdomen", "pelvis"), ((THIGHS, 0.95, 2.0),)),
    # a thicker neck may fill out the neck and its base; it must not reshape the face
    "body.neck_girth": (("neck", "chest"), ()),
}


@pytest.mark.parametrize("name", sorted(BODY_MICRO_REGIONS))
def test_body_micro_sliders_are_local(rig, template, extreme_vertices, name):
    parts, bands = BODY_MICRO_REGIONS[name]
    disp = extreme_displacement(rig, extreme_vertices, name)
    inside = template.part_mask(*parts)
    assert disp[inside].max() > 2 * MM, "the slider does nothing in its own region"
    y = template.vertices[:, 1]
    for band_parts, y_lo, y_hi in bands:
        inside |= template.part_mask(*band_parts) & (y >= y_lo) & (y <= y_hi)
    disp[inside] = 0.0
    leaks = moved_parts(template, disp, 0.5 * MM)
    assert not leaks, f"{name} moves parts outside {parts} (bands {bands}) by > 0.5 mm: {fmt_mm(leaks)}"


@pytest.mark.parametrize("name", MACROS)
def test_macro_sliders_are_global(rig, template, extreme_vertices, name):
    disp = extreme_displacement(rig, extreme_vertices, name)
    moved = moved_parts(template, disp, 1 * MM)
    assert len(moved) >= 6, f"{name} moves only {len(moved)} parts by > 1 mm: {fmt_mm(moved)}"


# --------------------------------------------------------------------------
# 5. symmetry
# --------------------------------------------------------------------------
def asymmetry(X: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Largest distance between each avatar's vertex and its twin's mirror image, X (..., V, 3)."""
    X = np.asarray(X, dtype=np.float64)
    return np.abs(X[..., mirror, :] - X * (-1.0, 1.0, 1.0)).max(axis=(-1, -2))


def test_default_avatar_is_mirror_symmetric(rig, template):
    assert asymmetry(rig.vertices(rig.defaults()), template.mirror) <= 1e-5


def test_avatars_without_asymmetry_are_mirror_symmetric(rig, template, extreme_vertices):
    j = rig.slider_names.index("face.asymmetry")
    S = rig.sample(100, seed=SEED + 2)
    S[:, j] = 0.0
    err = asymmetry(rig.vertices(S), template.mirror)
    assert err.max() <= 1e-5, f"sample {int(np.argmax(err))} off by {err.max():.3g} m"
    # and every slider at either end (except asymmetry itself) keeps the symmetry
    lo, hi = extreme_vertices
    for X, end in ((lo, "min"), (hi, "max")):
        err = asymmetry(X, template.mirror)
        err[j] = 0.0
        bad = {rig.slider_names[k]: float(err[k]) for k in np.flatnonzero(err > 1e-5)}
        assert not bad, f"asymmetric at their {end}: {bad}"


def test_asymmetry_slider_breaks_symmetry(rig, template):
    top = slider(rig, "face.asymmetry").max
    assert asymmetry(rig.vertices(with_values(rig, face__asymmetry=top)), template.mirror) > 2 * MM


# --------------------------------------------------------------------------
# 6. determinism
# --------------------------------------------------------------------------
def test_sampling_is_reproducible(rig):
    a, b = rig.sample(100, seed=3), rig.sample(100, seed=3)
    assert a.shape == (100, len(rig.sliders)) and a.dtype == np.float64
    assert np.array_equal(a, b)
    assert not np.array_equal(a, rig.sample(100, seed=4))
    # row i depends only on (seed, start + i)
    assert np.array_equal(rig.sample(10, seed=3, start=5), rig.sample(20, seed=3)[5:15])
    # ... across the sampler's 4096-row blocks too
    assert np.array_equal(rig.sample(10, seed=3, start=4090), rig.sample(4100, seed=3)[4090:])


def test_vertices_are_deterministic(rig):
    S = rig.sample(50, seed=3)
    X = rig.vertices(S)
    assert X.shape == (50, rig.n_vertices, 3) and X.dtype == np.float32
    assert X.tobytes() == rig.vertices(S).tobytes()
    one_by_one = np.stack([rig.vertices(s) for s in S])
    assert one_by_one.shape == X.shape
    # float32 matmul blocking may differ in the last bit between batch sizes
    np.testing.assert_allclose(one_by_one, X, rtol=0, atol=1e-5)
    np.testing.assert_allclose(rig.vertices(S, chunk=7), X, rtol=0, atol=1e-5)
    assert rig.vertices(S[0]).shape == (rig.n_vertices, 3)


# --------------------------------------------------------------------------
# 7. stature
# --------------------------------------------------------------------------
def test_stature_is_the_height_slider(rig, crown):
    S = rig.sample(200, seed=SEED + 3)
    X = rig.vertices(S).astype(np.float64)
    floor = X[:, :, 1].min(axis=1)
    assert np.abs(floor).max() <= 1e-5
    height = X[:, crown, 1] - floor
    j = rig.slider_names.index("body.height")
    err = np.abs(height - S[:, j] / 100.0)
    assert err.max() <= 1e-4, f"crown-to-sole off by {err.max():.3g} m for sample {int(np.argmax(err))}"
    assert S[:, j].std() > 5.0  # the population really spans heights


# --------------------------------------------------------------------------
# 8. known answers
# --------------------------------------------------------------------------
def test_leg_length_raises_the_hips(rig, template, crown):
    pelvis = template.part_mask("pelvis")
    d = np.linalg.norm(template.vertices - anatomy.JOINTS["pelvis"], axis=1)
    hip = int(np.argmin(np.where(pelvis, d, np.inf)))  # the pelvis vertex nearest the pelvis joint
    s = slider(rig, "body.leg_length")
    fractions = []
    for v in (s.min, s.default, s.max):
        X = rig.vertices(with_values(rig, body__leg_length=v)).astype(np.float64)
        floor = X[:, 1].min()
        fractions.append((X[hip, 1] - floor) / (X[crown, 1] - floor))
    assert fractions[0] < fractions[1] < fractions[2], fractions
    assert fractions[2] - fractions[0] > 0.02, fractions  # > 3.5 cm of a 1.75 m figure


def test_nose_length_moves_the_tip_down(rig, template):
    nose = template.part_mask("nose")
    tip = int(np.argmax(np.where(nose, template.vertices[:, 2], -np.inf)))  # the most forward nose vertex
    s = slider(rig, "face.nose_length")
    y = [rig.vertices(with_values(rig, face__nose_length=v))[tip, 1] for v in (s.min, s.default, s.max)]
    assert y[2] < y[1] - 1 * MM, y
    assert y[0] > y[1] + 1 * MM, y


def test_ear_point_raises_the_ear_tops(rig, template):
    s = slider(rig, "face.ear_point")
    Xd = rig.vertices(with_values(rig, face__ear_point=s.default))
    Xm = rig.vertices(with_values(rig, face__ear_point=s.max))
    for ear in ("ear_l", "ear_r"):
        m = template.part_mask(ear)
        assert Xm[m, 1].max() > Xd[m, 1].max() + 5 * MM, (ear, Xd[m, 1].max(), Xm[m, 1].max())


def test_posture_leans_the_head_forward(rig, template):
    head = template.part_mask(*HEAD_PARTS)
    s = slider(rig, "body.posture")
    z0 = rig.vertices(with_values(rig, body__posture=s.default))[head, 2].astype(np.float64)
    forward = rig.vertices(with_values(rig, body__posture=s.max))[head, 2] - z0
    back = rig.vertices(with_values(rig, body__posture=s.min))[head, 2] - z0
    assert forward.min() > 0 and forward.mean() > 5e-2, (forward.min(), forward.mean())
    assert back.max() < 0 and back.mean() < -2e-2, (back.max(), back.mean())


def test_weight_changes_the_volume(rig, template):
    s = slider(rig, "body.weight")
    vol = [total_volume(rig.vertices(with_values(rig, body__weight=v)), template.faces)
           for v in (s.min, s.default, s.max)]
    assert vol[2] > 1.10 * vol[1], vol
    assert vol[0] < 0.95 * vol[1], vol


# --------------------------------------------------------------------------
# 9. the committed template is what the build makes; files round-trip
# --------------------------------------------------------------------------
def test_build_regenerates_the_committed_template():
    # needs the build extras (scikit-image, pyfqmr, xatlas; in the `test` extra); ~15 s
    built = template_module.build()
    committed = template_module.load()
    assert built.name == committed.name and tuple(built.part_names) == tuple(committed.part_names)
    assert np.array_equal(built.faces, committed.faces), "faces differ from meshes/"
    assert np.array_equal(built.uv_faces, committed.uv_faces), "uv_faces differ from meshes/"
    assert np.array_equal(built.parts, committed.parts), "part labels differ from meshes/"
    assert built.vertices.shape == committed.vertices.shape and built.uv.shape == committed.uv.shape
    np.testing.assert_allclose(built.vertices, committed.vertices, rtol=0, atol=1e-6)
    np.testing.assert_allclose(built.uv, committed.uv, rtol=0, atol=1e-6)


def test_save_load_round_trip(template, tmp_path):
    paths = template_module.save(template, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{template.name}.{e}" for e in ("obj", "ply", "json"))
    back = template_module.load(template.name, tmp_path)
    assert back.name == template.name and tuple(back.part_names) == tuple(template.part_names)
    for field in ("vertices", "faces", "uv", "uv_faces", "parts"):
        a, b = getattr(back, field), getattr(template, field)
        assert a.shape == b.shape and np.array_equal(a, b), field
    # the PLY is the same solid
    import trimesh

    ply = trimesh.load(tmp_path / f"{template.name}.ply", process=False)
    np.testing.assert_array_equal(ply.faces, template.faces)
    np.testing.assert_allclose(ply.vertices, template.vertices, rtol=0, atol=1e-6)
