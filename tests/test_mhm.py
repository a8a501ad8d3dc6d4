"""MakeHuman 1.1 ``.mhm`` files: parity with MakeHuman's rule, exact round trips, spellings, errors, CLI."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import avatar
from avatar.body import assets
from avatar.body.mhm import MACRO_NAMES, mhm_text, parse_mhm
from avatar.body.targets import default_targets
from avatar.cli.main import main
from avatar.spec.config import ConfigError
from avatar.spec.sliders import load_preset, preset_vector

ROOT = Path(__file__).resolve().parent.parent

YOUNG_MAN = """\
# Written by MakeHuman 1.1.1
version v1.1.1
tags young man
camera 0.0 0.0 0.0 0.0 0.0 1.0
modifier macrodetails/Gender 1.000000
modifier macrodetails/Age 0.500000
modifier macrodetails/African 0.000000
modifier macrodetails/Asian 0.000000
modifier macrodetails/Caucasian 1.000000
modifier macrodetails-universal/Muscle 0.650000
modifier macrodetails-universal/Weight 0.500000
modifier macrodetails-height/Height 0.620000
modifier macrodetails-proportions/BodyProportions 0.500000
modifier breast/BreastSize 0.500000
modifier breast/BreastFirmness 0.500000
modifier nose/nose-width1-decr|incr 0.500000
modifier armslegs/r-hand-scale-decr|incr 0.300000
modifier head/head-square 0.700000
eyebrows eyebrow001 9c81b9d4-b7d0-4a76-9f9c-5d0ec0a1e1a1
skeleton game_engine.mhskel
subdivide False
"""
OLD_WOMAN = """\
version v1.1.1
name old woman
modifier macrodetails/Gender 0.000000
modifier macrodetails/Age 0.875000
modifier macrodetails/African 0.600000
modifier macrodetails/Asian 0.400000
modifier macrodetails/Caucasian 0.000000
modifier macrodetails-universal/Muscle 0.300000
modifier macrodetails-universal/Weight 0.800000
modifier macrodetails-height/Height 0.350000
modifier macrodetails-proportions/BodyProportions 0.250000
modifier breast/BreastSize 0.700000
modifier breast/BreastFirmness 0.200000
modifier measure/measure-waist-circ-decr|incr -0.400000
modifier ears/l-ear-flap-decr|incr 0.800000
modifier eyebrows/eyebrows-angle-down|up -0.500000
skinMaterial skins/old_darkskinned_female/old_darkskinned_female.mhmat
"""
CHILD = """\
version v1.1.1
name child
modifier macrodetails/Gender 0.300000
modifier macrodetails/Age 0.150000
modifier macrodetails/Asian 1.000000
modifier macrodetails/African 0.000000
modifier macrodetails/Caucasian 0.000000
modifier macrodetails-universal/Muscle 0.400000
modifier macrodetails-universal/Weight 0.300000
modifier macrodetails-proportions/BodyProportions 0.800000
modifier chin/chin-prominent-decr|incr 0.600000
modifier mouth/mouth-scale-horiz-decr|incr -0.700000
modifier torso/torso-scale-depth-decr|incr 0.250000
"""
FILES = {"young_man": YOUNG_MAN, "old_woman": OLD_WOMAN, "child": CHILD}


@pytest.fixture(scope="module")
def rig():
    return avatar.load_rig()


# -- (a) parity: our own small implementation of MakeHuman 1.1's rule ---------------------------
def _ramps(v: float) -> tuple[float, float, float]:
    lo, hi = max(0.0, 1 - 2 * v), max(0.0, 2 * v - 1)
    return lo, 1 - lo - hi, hi


def _factors(m: dict[str, float]) -> dict[str, float]:
    """MakeHuman 1.1's factor values from a file's macro values (humanmodifier.py / human.py)."""
    g, a = m["Gender"], m["Age"]
    f = {"female": 1 - g, "male": g, "universal": 1.0}
    if a < 0.5:
        young = max(0.0, 3.2 * (a - 0.1875))
        f.update(baby=max(0.0, 1 - 5.333 * a), young=young, child=max(0.0, min(1.0, 5.333 * a) - young), old=0.0)
    else:
        f.update(baby=0.0, child=0.0, old=2 * a - 1, young=1 - (2 * a - 1))
    for var, word in (("Muscle", "muscle"), ("Weight", "weight"), ("BreastSize", "cup"), ("BreastFirmness", "firmness")):
        f["min" + word], f["average" + word], f["max" + word] = _ramps(m[var])
    f["minheight"], _, f["maxheight"] = _ramps(m["Height"])
    f["uncommonproportions"], _, f["idealproportions"] = _ramps(m["BodyProportions"])
    races = np.array([m["African"], m["Asian"], m["Caucasian"]])
    races = races / races.sum() if races.sum() > 0 else np.full(3, 1 / 3)
    f["african"], f["asian"], f["caucasian"] = races
    return f


def reference_body(text: str) -> np.ndarray:
    """The body (13,380 vertices, metres) that MakeHuman 1.1's rule gives for ``.mhm`` text."""
    table = default_targets()
    keys = [str(k) for k in table.names]
    by_stem = {k.rsplit("/", 1)[1]: k for k in keys if not k.startswith("expression/")}
    macros = {"Gender": .5, "Age": .5, "Muscle": .5, "Weight": .5, "Height": .5, "BodyProportions": .5,
              "BreastSize": .5, "BreastFirmness": .5, "African": 1 / 3, "Asian": 1 / 3, "Caucasian": 1 / 3}
    weights: dict[str, float] = {}
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] != "modifier":
            continue
        name, v = words[1], float(words[2])
        tail = name.rsplit("/", 1)[1]
        if tail in macros and name.startswith(("macrodetails", "breast/Breast")):
            macros[tail] = v
        elif "|" in tail:
            target, _, ends = tail.rpartition("-")
            lo, hi = ends.split("|")
            weights[by_stem[f"{target}-{lo}"]] = max(0.0, -v)
            weights[by_stem[f"{target}-{hi}"]] = max(0.0, v)
        else:
            weights[by_stem[tail]] = v
    f = _factors(macros)
    for k in keys:
        if k.startswith(("macrodetails/", "breast/female-", "breast/male-")):
            weights[k] = float(np.prod([f[w] for w in k.rsplit("/", 1)[1].split("-")]))
    X = assets.base_mesh().vertices[:assets.N_BODY].astype(np.float64).copy()
    for k, w in weights.items():
        if w:
            idx, d = table.rows(k)
            keep = idx < assets.N_BODY
            np.add.at(X, idx[keep], w * np.asarray(d[keep], np.float64))
    return X


@pytest.mark.parametrize("which", sorted(FILES))
def test_mhm_body_equals_makehuman_rule(rig, tmp_path, which):
    path = tmp_path / f"{which}.mhm"
    path.write_text(FILES[which])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        V = rig.vertices(preset_vector(rig.spec, path)[None])[0, :assets.N_BODY].astype(np.float64)
    ref = reference_body(FILES[which])
    ref[:, 1] -= ref[:, 1].min()  # the rig stands every avatar on y = 0
    V[:, 1] -= V[:, 1].min()
    assert np.abs(V - ref).max() < 1e-5  # 0.01 mm
    # the file really moves the body away from the default person
    base = rig.vertices(rig.defaults()[None])[0, :assets.N_BODY]
    assert np.abs(V - base).max() > 0.01


def test_reference_statures():
    """The reference gives plausible people: a tall young man, a short old woman, a child."""
    stature = {k: np.ptp(reference_body(t)[:, 1]) for k, t in FILES.items()}
    assert 1.85 < stature["young_man"] < 2.0 and 1.4 < stature["old_woman"] < 1.55
    assert 1.0 < stature["child"] < 1.35


# -- (b) round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("which", sorted(FILES))
def test_round_trip_is_exact(rig, which):
    model = parse_mhm(FILES[which], rig.spec)
    ours = mhm_text(model.values, rig.spec, model.name or which)
    again = parse_mhm(ours, rig.spec)
    assert mhm_text(again.values, rig.spec, again.name) == ours  # .mhm -> values -> .mhm, bytes
    assert again.note is None  # a file we wrote has nothing to ignore
    for k, v in model.values.items():
        assert again.values[k] == pytest.approx(v, abs=1e-9)


def test_values_round_trip_on_random_avatars(rig):
    S = rig.sample(20, seed=5)
    spec = rig.spec
    span = spec.highs() - spec.lows()
    for x in S:
        back = spec.to_vector(parse_mhm(mhm_text(x, spec, "random"), spec).values)
        err = np.abs(back - x) / span
        assert err.max() < 1e-6, spec.slider_names[int(err.argmax())]


def test_written_file_looks_like_makehuman(rig):
    text = mhm_text(rig.defaults(), rig.spec, "default person")
    lines = text.splitlines()
    assert lines[:3] == ["version v1.1.1", "name default person", "camera 0.0 0.0"]
    assert [line.split()[1] for line in lines[3:]] == [
        MACRO_NAMES[v] for v in ("gender", "age", "muscle", "weight", "height", "proportions", "cupsize",
                                 "firmness", "african", "asian", "caucasian")]
    assert "modifier macrodetails/Age 0.500000" in lines


# -- (c) MakeHuman 1.1's own group names ------------------------------------------------------
MAKEHUMAN_11 = {  # data/modifiers/modeling_modifiers.json and measurement_modifiers.json -> slider
    "armslegs/r-hand-scale-decr|incr": "hands.r_scale",
    "armslegs/l-lowerarm-scale-depth-decr|incr": None,
    "armslegs/r-upperleg-fat-decr|incr": None,
    "armslegs/l-foot-scale-decr|incr": None,
    "measure/measure-waist-circ-decr|incr": "torso.measure_waist_circ",
    "measure/measure-thigh-circ-decr|incr": None,
    "measure/measure-neck-circ-decr|incr": None,
    "head/head-oval": None,
    "nose/nose-trans-down|up": None,
    "armslegs/l-foot-trans-in|out": None,
    "eyes/r-eye-bag-in|out": None,
    "breast/BreastSize": "body.cupsize",
    "macrodetails-proportions/BodyProportions": "body.proportions",
}


@pytest.mark.parametrize("name", sorted(MAKEHUMAN_11))
def test_makehuman_11_spellings_resolve(rig, name):
    value = "0.500000"
    model = parse_mhm(f"modifier {name} {value}\n", rig.spec)
    assert len(model.values) == 1
    slider = next(iter(model.values))
    if MAKEHUMAN_11[name]:
        assert slider == MAKEHUMAN_11[name]
    # and written back in MakeHuman 1.1's own spelling
    assert f"modifier {name} {value}" in mhm_text(model.values, rig.spec).splitlines()


def test_genital_modifiers_are_read_and_ignored_with_a_note(rig):
    """MakeHuman's genital targets move only its helper genital geometry, which our body leaves out."""
    model = parse_mhm("modifier genitals/penis-length-decr|incr 0.5\nmodifier nose/nose-width1-decr|incr 0.2\n",
                      rig.spec)
    assert model.values == {"nose.width1": 20.0}
    assert "genitals/penis-length-decr|incr" in model.note


def test_mpfb2_and_makehuman_spellings_agree(rig):
    a = parse_mhm("modifier hands/r-hand-scale-decr|incr 0.3\nmodifier torso/measure-waist-circ-decr|incr -0.2\n",
                  rig.spec).values
    b = parse_mhm("modifier armslegs/r-hand-scale-decr|incr 0.3\nmodifier measure/measure-waist-circ-decr|incr -0.2\n",
                  rig.spec).values
    assert a == b == {"hands.r_scale": 30.0, "torso.measure_waist_circ": -20.0}
    # an opposite pair written the other way round means the opposite value
    c = parse_mhm("modifier hands/r-hand-scale-incr|decr 0.3\n", rig.spec).values
    assert c == {"hands.r_scale": -30.0}


def test_other_lines_ignored_with_one_note(rig, tmp_path):
    path = tmp_path / "man.mhm"
    path.write_text(YOUNG_MAN + "clothes tshirt 123\neyes HighPolyEyes 456\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = load_preset(path, rig.spec)
    assert values["body.gender"] == 100.0 and values["body.height"] == pytest.approx(62.0)
    assert len(caught) == 1
    note = str(caught[0].message)
    for word in ("eyebrows", "skeleton", "subdivide", "clothes", "eyes", str(path)):
        assert word in note


# -- (d) bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("line, message", [
    ("modifier nose/nose-widht1-decr|incr 0.5", "did you mean 'nose/nose-width1-decr|incr'"),
    ("modifier armslegs/r-hand-scael-decr|incr 0.5", "did you mean 'armslegs/r-hand-scale-decr|incr'"),
    ("modifier macrodetails/Gendr 0.5", "did you mean 'macrodetails/Gender'"),
    ("modifier nose/nose-width1-decr|incr abc", "expected a number, got 'abc'"),
    ("modifier nose/nose-width1-decr|incr nan", "expected a number"),
    ("modifier nose/nose-width1-decr|incr 1.5", "outside -1 to 1"),
    ("modifier head/head-square -0.5", "outside 0 to 1"),
    ("modifier macrodetails/Age 1.2", "outside 0 to 1"),
    ("modifier nose/nose-width1-decr|incr", "expected 'modifier <name> <value>'"),
    ("@@@ this is not mhm", "is not a .mhm property"),
])
def test_bad_input_names_file_and_line(rig, tmp_path, line, message):
    path = tmp_path / "bad.mhm"
    path.write_text(f"version v1.1.1\nname bad\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_preset(path, rig.spec)
    text = str(err.value)
    assert f"{path}:3:" in text and message in text, text


def test_every_bad_line_reported_at_once(rig):
    with pytest.raises(ConfigError) as err:
        parse_mhm("modifier nose/nose-widht1-decr|incr 0.5\nmodifier head/head-square 7\n", rig.spec, "x.mhm")
    assert len(err.value.problems) == 2 and "x.mhm:1:" in str(err.value) and "x.mhm:2:" in str(err.value)


# -- (e) the command line ---------------------------------------------------------------------
def test_cli_make_from_and_to_mhm(tmp_path, capsys):
    import trimesh

    src = tmp_path / "someone.mhm"
    src.write_text(OLD_WOMAN)
    glb = tmp_path / "someone.glb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["make", str(src), "-o", str(glb)]) == 0
    mesh = trimesh.load(glb, force="mesh")
    assert mesh.bounds[1][1] - mesh.bounds[0][1] == pytest.approx(1.47, abs=0.03)
    out = tmp_path / "elder.mhm"
    assert main(["make", str(ROOT / "configs" / "avatars" / "elder.yaml"), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("version v1.1.1\nname elder\ncamera 0.0 0.0\nmodifier macrodetails/Gender ")
    assert not list(tmp_path.glob("elder.png"))  # no texture for a model file
    rig = avatar.load_rig()
    want = preset_vector(rig.spec, ROOT / "configs" / "avatars" / "elder.yaml")
    got = preset_vector(rig.spec, out)
    assert np.abs((got - want) / (rig.spec.highs() - rig.spec.lows())).max() < 1e-6
    again = tmp_path / "again.mhm"
    assert main(["make", str(out), "-o", str(again)]) == 0
    assert again.read_text().replace("name again", "name elder") == text
    assert main(["validate", str(out)]) == 0
