"""Config loading, rig/preset validation messages, and slider sampling."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import truncnorm

from avatar.spec.config import ConfigError, Problem, did_you_mean, load_yaml
from avatar.spec.sliders import load_preset, load_rig_spec, preset_vector

FIXTURES = Path(__file__).parent / "fixtures"
RIG = FIXTURES / "rig_small.yaml"

HEADER = """\
name: t
description: test rig
template: humanoid
sliders:
"""


@pytest.fixture(scope="module")
def spec():
    return load_rig_spec(RIG)


def write(tmp_path: Path, text: str, name: str = "f.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line of ``path`` containing ``needle``."""
    hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return hits[nth - 1]


def errors(fn, *args) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        fn(*args)
    assert str(info.value) == "\n".join(map(str, info.value.problems))
    return info.value.problems


def one(problems: list[Problem], key: str) -> Problem:
    hits = [p for p in problems if p.key == key]
    assert len(hits) == 1, f"expected one problem at {key!r}, got {problems}"
    return hits[0]


def bad_rig(tmp_path: Path, sliders: str) -> tuple[Path, list[Problem]]:
    """A rig with the given ``sliders:`` body (indented by 2); its problems."""
    path = write(tmp_path, HEADER + textwrap.indent(textwrap.dedent(sliders), "  "))
    return path, errors(load_rig_spec, path)


# the fixture rig ------------------------------------------------------------------
def test_fixture_rig_loads(spec):
    assert spec.name == "small" and spec.template == "humanoid" and spec.source == str(RIG)
    assert spec.groups == {"body": "Body", "face": "Face", "skin": "Skin"}
    assert spec.slider_names[:2] == ["body.height", "body.arm_length"]
    assert spec.index("face.ear_shape") == 4
    ear, asym, fingers = (spec.sliders[spec.index(n)] for n in ("face.ear_shape", "face.asym", "body.fingers"))
    assert ear.categories == ("round", "pointed", "elf") and (ear.min, ear.max, ear.default) == (0.0, 2.0, 0.0)
    assert ear.effects["round"] == () and ear.effects["elf"][0]["amount"] == (0.01, 0.03, -0.01)
    assert (asym.min, asym.max, asym.default) == (0.0, 1.0, 0.0)
    assert asym.effects[0]["side"] == "left" and asym.effects[0]["amount_at_min"] is None
    assert fingers.distribution == {"kind": "uniform", "low": 3.0, "high": 6.0}
    assert spec.sliders[0].label == "Height" and spec.sliders[1].label == "Arm length"
    assert spec.sliders[0].line == line_of(RIG, "body.height:")
    nose = spec.sliders[spec.index("face.nose_width")]
    assert nose.distribution["low"] == pytest.approx(0.001)  # `1e-3` is a str to YAML 1.1
    assert nose.effects[1]["amount_at_min"] == (-0.003, 0.0, 0.0)
    assert spec.sliders[1].effects[1]["span"] == (0.2, 0.8)
    # a target effect's amount defaults to the whole target
    assert nose.effects[2] == {"deformer": "target", "file": "nose/nose-hump-incr", "amount": 1.0,
                               "side": "both", "amount_at_min": None}
    assert spec.sliders[0].effects[1]["amount"] == 0.5
    np.testing.assert_array_equal(spec.defaults(), [175, 0, 5, 50, 0, 0, 0.5])
    np.testing.assert_array_equal(spec.lows(), [140, -10, 3, 0, 0, 0, 0])
    np.testing.assert_array_equal(spec.highs(), [210, 10, 6, 100, 2, 1, 1])


def test_unknown_slider_index_suggests(spec):
    with pytest.raises(KeyError, match="did you mean 'body.height'"):
        spec.index("body.heigth")


def test_did_you_mean_and_problem_str():
    assert did_you_mean("nose_tp", ["nose_tip", "chin"]) == "; did you mean 'nose_tip'?"
    assert did_you_mean("zzz", ["nose_tip"]) == ""
    assert str(Problem("a.yaml", 3, "sliders.x.max", "bad")) == "a.yaml:3: sliders.x.max: bad"
    assert str(Problem("a.yaml", None, "", "bad")) == "a.yaml: bad"


# document-level errors ----------------------------------------------------------------
def test_missing_empty_and_comment_only_files(tmp_path):
    [p] = errors(load_yaml, tmp_path / "nope.yaml")
    assert p.file.endswith("nope.yaml") and "not found" in p.message
    for text in ("", "# only a comment\n"):
        [p] = errors(load_yaml, write(tmp_path, text))
        assert "empty" in p.message and p.file.endswith("f.yaml")


def test_non_mapping_document(tmp_path):
    path = write(tmp_path, "- body.height\n- 3\n")
    [p] = errors(load_rig_spec, path)
    assert p.line == 1 and "must be a mapping" in p.message and "a list" in p.message


def test_syntax_error_and_two_documents(tmp_path):
    [p] = errors(load_yaml, write(tmp_path, "a: 1\nb: [1, 2\nc: 3\n"))
    assert "YAML syntax error" in p.message and p.line is not None
    path = write(tmp_path, "a: 1\n---\nb: 2\n")
    [p] = errors(load_yaml, path)
    assert p.line == 2 and "second YAML document" in p.message


def test_duplicate_key_reports_both_lines(tmp_path):
    path, problems = bad_rig(tmp_path, """\
        body.height:
          description: Height.
          min: 140
          max: 210
          default: 175
          max: 220
        """)
    p = one(problems, "sliders.body.height.max")
    first, second = line_of(path, "max: 210"), line_of(path, "max: 220")
    assert p.line == second and f"line {first}" in p.message and f"line {second}" in p.message
    assert "duplicate key 'max'" in p.message and str(p).startswith(f"{path}:{second}: ")


# rig validation --------------------------------------------------------------------
def test_unknown_top_level_key_suggests(tmp_path):
    slider = "  a.b: {description: x, min: 0, max: 1, default: 0}\n"
    path = write(tmp_path, HEADER.replace("template:", "templat:") + slider)
    problems = errors(load_rig_spec, path)
    p = one(problems, "templat")
    assert p.line == line_of(path, "templat:") and "did you mean 'template'?" in p.message
    assert any("missing required key 'template'" in q.message for q in problems)


def test_unknown_slider_key_kind_and_unit_suggest(tmp_path):
    path, problems = bad_rig(tmp_path, """\
        body.height:
          description: Height.
          kind: continous
          min: 140
          max: 210
          defualt: 175
          unit: cms
        """)
    assert "did you mean 'default'?" in one(problems, "sliders.body.height.defualt").message
    assert one(problems, "sliders.body.height.defualt").line == line_of(path, "defualt")
    assert "did you mean 'continuous'?" in one(problems, "sliders.body.height.kind").message
    assert "did you mean 'cm'?" in one(problems, "sliders.body.height.unit").message


def test_min_max_default_and_integer_errors(tmp_path):
    path, problems = bad_rig(tmp_path, """\
        body.a:
          description: A.
          min: 10
          max: 10
          default: 10
        body.b:
          description: B.
          min: 140
          max: 210
          default: 250
          unit: cm
        body.c:
          kind: integer
          description: C.
          min: 0
          max: 5
          default: 2.5
        """)
    p = one(problems, "sliders.body.a.max")
    assert "min (10) must be less than max (10)" in p.message and p.line == line_of(path, "max: 10")
    p = one(problems, "sliders.body.b.default")
    assert p.message == "default 250 is outside the allowed range 140 to 210 cm"
    assert p.line == line_of(path, "default: 250")
    p = one(problems, "sliders.body.c.default")
    assert "whole number" in p.message and "2.5" in p.message


def test_bool_nan_inf_as_numbers_rejected(tmp_path):
    path, problems = bad_rig(tmp_path, """\
        body.a:
          description: A.
          min: true
          max: .inf
          default: .nan
        """)
    assert one(problems, "sliders.body.a.min").message == "expected a number, got true"
    assert "infinity" in one(problems, "sliders.body.a.max").message
    p = one(problems, "sliders.body.a.default")
    assert "NaN" in p.message and p.line == line_of(path, ".nan")


def test_effect_errors_suggest(tmp_path):
    path, problems = bad_rig(tmp_path, """\
        face.nose:
          description: Nose.
          min: 0
          max: 1
          default: 0
          effects:
            - {deformer: mvoe, at: nose_tip, radius: 0.1, amount: [0, 0, 1]}
            - {deformer: move, at: nose_tp, radius: 0.1, amount: [0, 0, 1], amont: 1}
            - {deformer: length, bone: thigh_ll, amount: [1, 2]}
            - {deformer: girth, bone: shin_l, amount: 0.1, span: [0.8, 0.2]}
        """)
    pre = "sliders.face.nose.effects"
    p = one(problems, f"{pre}[0].deformer")
    assert "unknown deformer 'mvoe'; did you mean 'move'?" in p.message and p.line == line_of(path, "mvoe")
    assert "did you mean 'amount'?" in one(problems, f"{pre}[1].amont").message
    p = one(problems, f"{pre}[1].at")
    assert "unknown point 'nose_tp'; did you mean 'nose_tip'?" in p.message and p.line == line_of(path, "nose_tp")
    assert "unknown bone 'thigh_ll'; did you mean 'thigh_l'?" in one(problems, f"{pre}[2].bone").message
    assert "expected a number, got a list" in one(problems, f"{pre}[2].amount").message
    assert "0 <= a < b <= 1" in one(problems, f"{pre}[3].span").message


def test_slider_kind_rules(tmp_path):
    path, problems = bad_rig(tmp_path, """\
        face.ear:
          kind: categorical
          description: Ear.
          categories: [round, pointed]
          default: pointy
          min: 0
          distribution: {kind: categorical, weights: {round: 1, pointd: 2}}
          effects: {rond: []}
        face.blink:
          kind: bool
          description: Blink.
          default: 1
          distribution: {kind: normal, std: 1}
          effects: [{deformer: move, at: eye_l, radius: 0.02, amount: [0, 1, 0], amount_at_min: [0, 0, 0]}]
        body.height:
          description: Height.
          min: 140
          max: 210
          default: 175
          unit: cm
          effects: [{deformer: stature}]
        body.shape:
          description: A sculpted target without its file, then a file that is not text.
          min: 0
          max: 1
          default: 0
          effects: [{deformer: target, amount: 1}, {deformer: target, file: 3}, {deformer: bend, bone: neck}]
        """)
    assert "did you mean 'pointed'?" in one(problems, "sliders.face.ear.default").message
    assert "does not apply" in one(problems, "sliders.face.ear.min").message
    assert "did you mean 'pointed'?" in one(problems, "sliders.face.ear.distribution.weights.pointd").message
    assert "did you mean 'round'?" in one(problems, "sliders.face.ear.effects.rond").message
    assert "expected true or false, got 1" in one(problems, "sliders.face.blink.default").message
    assert "does not fit a bool slider" in one(problems, "sliders.face.blink.distribution.kind").message
    assert "only for continuous and integer" in one(
        problems, "sliders.face.blink.effects[0].amount_at_min").message
    # pose and stature are MakeHuman's now: no bend or stature deformer
    assert "unknown deformer 'stature'" in one(problems, "sliders.body.height.effects[0].deformer").message
    assert "unknown deformer 'bend'" in one(problems, "sliders.body.shape.effects[2].deformer").message
    assert "missing required key 'file'" in one(problems, "sliders.body.shape.effects[0]").message
    assert "expected text, got 3" in one(problems, "sliders.body.shape.effects[1].file").message


def test_many_problems_reported_at_once(tmp_path):
    path, problems = bad_rig(tmp_path, """\
        body.a:
          description: A.
          min: 0
          max: 1
          default: 2
        Body-b:
          description: B.
        face.c:
          description: C.
          min: 0
          max: 1
          default: 0
          distribution: {kind: normal, std: 0}
        """)
    keys = {p.key for p in problems}
    assert {"sliders.body.a.default", "sliders.Body-b", "sliders.face.c.distribution.std"} <= keys
    assert [p.line for p in problems] == sorted(p.line for p in problems)
    assert all(p.file == str(path) for p in problems)


# presets ---------------------------------------------------------------------------
def test_preset_fixture(spec):
    values = load_preset(FIXTURES / "preset_small.yaml", spec)
    assert values == {"body.height": 195.0, "face.ear_shape": "elf", "face.asym": True, "body.fingers": 4}
    vec = preset_vector(spec, FIXTURES / "preset_small.yaml")
    expected = spec.defaults()
    expected[[0, 2, 4, 5]] = [195, 4, 2, 1]
    np.testing.assert_array_equal(vec, expected)


def test_preset_errors(tmp_path, spec):
    path = write(tmp_path, """\
        name: broken
        colour: red
        sliders:
          body.heigth: 180
          body.height: 250
          body.fingers: 4.5
          face.ear_shape: elff
          face.asym: 1
          face.nose_width: tall
          body.arm_length: .nan
          skin.tone: 1e-3
        """)
    problems = errors(load_preset, path, spec)
    p = one(problems, "sliders.body.heigth")
    assert "did you mean 'body.height'?" in p.message and p.line == line_of(path, "heigth")
    p = one(problems, "sliders.body.height")
    assert p.message == "value 250 is outside the allowed range 140 to 210 cm"
    assert str(p) == f"{path}:{line_of(path, 'body.height:')}: sliders.body.height: {p.message}"
    assert one(problems, "colour").message.startswith("unknown key 'colour'; allowed keys: name,")
    assert "whole number" in one(problems, "sliders.body.fingers").message
    assert "unknown category 'elff'; did you mean 'elf'?" in one(problems, "sliders.face.ear_shape").message
    assert "expected true or false, got 1" in one(problems, "sliders.face.asym").message
    assert "expected a number, got 'tall'" in one(problems, "sliders.face.nose_width").message
    assert "NaN" in one(problems, "sliders.body.arm_length").message
    assert not [p for p in problems if p.key == "sliders.skin.tone"]  # 1e-3 is a number
    assert len(problems) == 8


def test_preset_bool_as_number_and_duplicate(tmp_path, spec):
    path = write(tmp_path, "name: x\nsliders:\n  body.height: true\n  face.asym: true\n  face.asym: false\n")
    problems = errors(load_preset, path, spec)
    assert one(problems, "sliders.body.height").message == "expected a number, got true"
    assert "first at line 4, again at line 5" in one(problems, "sliders.face.asym").message


def test_to_vector_readable_values(spec):
    vec = spec.to_vector({"face.ear_shape": "pointed", "face.asym": True, "body.height": "1.8e2"})
    assert vec[spec.index("face.ear_shape")] == 1 and vec[spec.index("face.asym")] == 1
    assert vec[spec.index("body.height")] == 180
    assert spec.to_vector({"face.ear_shape": 2})[spec.index("face.ear_shape")] == 2
    np.testing.assert_array_equal(spec.to_vector({}), spec.defaults())
    problems = errors(spec.to_vector, {"body.height": 300, "face.ear_shape": "pointy", "face.asym": "yes"})
    assert {p.file for p in problems} == {"<values>"}
    assert one(problems, "body.height").message == "value 300 is outside the allowed range 140 to 210 cm"
    assert "did you mean 'pointed'?" in one(problems, "face.ear_shape").message
    assert str(one(problems, "face.asym")) == "<values>: face.asym: expected true or false, got 'yes'"


# sampling --------------------------------------------------------------------------
def test_sampling_is_deterministic_and_independent_of_n_and_start(spec):
    full = spec.sample(4200, seed=7)
    np.testing.assert_array_equal(full, spec.sample(4200, seed=7))
    np.testing.assert_array_equal(spec.sample(10, seed=7, start=5), full[5:15])
    np.testing.assert_array_equal(spec.sample(100, seed=7, start=4050), full[4050:4150])  # across a block
    np.testing.assert_array_equal(spec.sample(1, seed=7, start=4199)[0], full[4199])
    assert spec.sample(0, seed=7).shape == (0, len(spec.sliders))
    assert not np.array_equal(spec.sample(10, seed=8), full[:10])
    with pytest.raises(ValueError):
        spec.sample(3, seed=-1)


def test_sampled_values_respect_kinds_and_ranges(spec):
    s = spec.sample(20000, seed=1)
    assert s.shape == (20000, 7) and s.dtype == np.float64
    assert np.all(s >= spec.lows()) and np.all(s <= spec.highs())
    fingers = s[:, spec.index("body.fingers")]
    assert np.all(fingers == np.round(fingers))
    np.testing.assert_allclose(np.bincount(fingers.astype(int) - 3) / len(s), 0.25, atol=0.02)
    ears = s[:, spec.index("face.ear_shape")].astype(int)
    np.testing.assert_allclose(np.bincount(ears, minlength=3) / len(s), [0.7, 0.2, 0.1], atol=0.02)
    assert abs(s[:, spec.index("face.asym")].mean() - 0.1) < 0.02
    assert np.all(s[:, spec.index("skin.tone")] == 0.5)  # fixed
    nose = s[:, spec.index("face.nose_width")]
    assert nose.min() >= 0.001 and nose.max() <= 90
    norm = s[:, spec.index("body.height")]
    assert abs(norm.mean() - 172) < 0.3 and abs(norm.std() - 9) < 0.3


def test_truncated_normal_matches_scipy(tmp_path):
    path = write(tmp_path, HEADER + textwrap.indent(textwrap.dedent("""\
        body.a:
          description: A strongly truncated normal.
          min: 0
          max: 10
          default: 5
          distribution: {kind: normal, mean: 8, std: 5}
        """), "  "))
    x = load_rig_spec(path).sample(20000, seed=3)[:, 0]
    ref = truncnorm((0 - 8) / 5, (10 - 8) / 5, loc=8, scale=5)
    assert x.min() >= 0 and x.max() <= 10
    assert abs(x.mean() - ref.mean()) < 0.06 and abs(x.std() - ref.std()) < 0.06


def test_normalize(spec):
    s = spec.normalize(spec.sample(500, seed=0))
    assert s.min() >= 0 and s.max() <= 1
    np.testing.assert_allclose(spec.normalize(spec.highs()), 1.0)


def test_unknown_template_is_a_config_error(tmp_path):
    slider = "  body.a: {description: A., min: 0, max: 1, default: 0}\n"
    path = write(tmp_path, HEADER.replace("template: humanoid", "template: humanoidd") + slider)
    [p] = errors(load_rig_spec, path)
    assert p.key == "template" and p.line == line_of(path, "template:")
    assert "unknown template 'humanoidd'; did you mean 'humanoid'?" in p.message
