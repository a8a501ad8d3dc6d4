"""The neutral body as a list of signed-distance steps (a stylised mannequin).

Every shape is placed on a joint or landmark from :mod:`avatar.body.anatomy` and
mirrored to the right side, so the body is symmetric by construction.
:func:`body_program` returns ``[(op, shape, blend_radius), ...]`` for
:func:`avatar.body.sdf.evaluate`; :func:`left_eye_centre` places the separate eye spheres.
"""
from __future__ import annotations

import numpy as np

from avatar.body.anatomy import JOINTS, LANDMARKS
from avatar.body.sdf import Cone, Ellipsoid, HalfSpace

J, L = JOINTS, LANDMARKS
EYE_RADIUS = 0.0122


def _off(p, dx=0.0, dy=0.0, dz=0.0) -> tuple:
    return (float(p[0] + dx), float(p[1] + dy), float(p[2] + dz))


def _frame(forward, up_hint) -> tuple:
    """Rows: an orthonormal frame whose second row points along ``forward``."""
    f = np.asarray(forward, float)
    f /= np.linalg.norm(f)
    side = np.cross(f, up_hint)
    side /= np.linalg.norm(side)
    third = np.cross(side, f)
    return (tuple(side), tuple(f), tuple(third))


def _left(side: str) -> list:
    """Shapes of one side; called with "l" and mirrored for "r"."""
    s = 1.0 if side == "l" else -1.0

    def m(p):  # mirror a left-side point
        return (s * p[0], p[1], p[2])

    def j(name):
        return J[f"{name}_{side}"]

    sh, el, wr, tip = j("shoulder"), j("elbow"), j("wrist"), j("fingertip")
    hip, kn, an, toe = j("hip"), j("knee"), j("ankle"), j("toe")
    hand_dir = (tip - wr) / np.linalg.norm(tip - wr)
    palm_normal = np.array([hand_dir[1], -hand_dir[0], 0.0]) * s  # points away from the body
    palm_normal /= np.linalg.norm(palm_normal)

    def along_hand(t, across=0.0, out=0.0):
        p = wr + t * hand_dir + np.array([0.0, 0.0, across]) + out * palm_normal
        return tuple(float(v) for v in p)

    shapes = [
        # shoulders and arms
        ("union", Ellipsoid(_off(sh, s * 0.012, -0.012, 0.0), (0.058, 0.062, 0.056)), 0.03),
        ("union", Cone(tuple(sh), tuple(el), 0.047, 0.035), 0.02),
        ("union", Ellipsoid(_off(sh + 0.45 * (el - sh), 0, 0, -0.008), (0.042, 0.082, 0.043),
                            _frame(el - sh, (0, 0, 1))), 0.02),
        ("union", Cone(tuple(el), tuple(wr), 0.035, 0.025), 0.015),
        ("union", Ellipsoid(_off(el + 0.3 * (wr - el), 0, 0, 0.004), (0.041, 0.075, 0.036),
                            _frame(wr - el, (0, 0, 1))), 0.02),
        # hand: a flat palm, four fingers and a thumb
        ("union", Ellipsoid(along_hand(0.045), (0.019, 0.052, 0.043),
                            _frame(hand_dir, (0, 0, 1))), 0.012),
    ]
    for k, across in enumerate((0.027, 0.009, -0.009, -0.026)):
        reach = (0.175, 0.185, 0.18, 0.16)[k]
        shapes.append(("union", Cone(along_hand(0.085, across), along_hand(reach, across * 1.05, -0.004),
                                     0.0095, 0.0078), 0.007))
    shapes += [
        ("union", Cone(along_hand(0.02, 0.03, -0.01), along_hand(0.075, 0.058, -0.022), 0.013, 0.0095), 0.012),
        ("union", Cone(along_hand(0.075, 0.058, -0.022), along_hand(0.105, 0.062, -0.026), 0.0095, 0.0085), 0.006),
        # legs
        ("union", Cone(tuple(hip), tuple(kn), 0.082, 0.052), 0.04),
        ("union", Ellipsoid(_off(hip + 0.38 * (kn - hip), s * 0.008, 0, 0.012), (0.08, 0.16, 0.078)), 0.04),
        ("union", Ellipsoid(_off(kn, 0, 0.005, 0.03), (0.035, 0.04, 0.025)), 0.02),
        ("union", Cone(tuple(kn), tuple(an), 0.05, 0.032), 0.02),
        ("union", Ellipsoid(m(L["calf_l"]), (0.048, 0.105, 0.048)), 0.03),
        # foot: heel to toes, flat sole cut below
        ("union", Cone(_off(an, 0, -0.045, -0.025), _off(toe, 0, 0.0, -0.02), 0.04, 0.03), 0.03),
        ("union", Ellipsoid(_off(toe, 0, 0.005, -0.035), (0.045, 0.028, 0.06)), 0.03),
        # face features of one side
        ("union", Ellipsoid(_off(m(L["brow_l"]), 0, 0.002, -0.008), (0.021, 0.0055, 0.01),
                            _frame((s * 0.3, 0, 1.0), (0, 1, 0))), 0.012),
        ("union", Ellipsoid(_off(m(L["cheekbone_l"]), 0, 0, -0.014), (0.019, 0.012, 0.018)), 0.016),
        ("union", Ellipsoid(_off(m(L["cheek_l"]), 0, 0, -0.02), (0.012, 0.012, 0.01)), 0.025),
        ("union", Cone(m(L["jaw_angle_l"]), _off(L["chin"], s * 0.012, 0.002, -0.008), 0.010, 0.012), 0.025),
        ("union", Ellipsoid(_off(m(L["nostril_l"]), 0, 0, -0.003), (0.0085, 0.0075, 0.009)), 0.008),
        # ear: a flattened shell with a carved bowl
        ("union", Ellipsoid(_off(m(L["ear_l"]), s * 0.004, 0.0, 0.0), (0.02, 0.032, 0.0105),
                            _frame((0, 1.0, -0.25), (s, 0, 0))), 0.006),
        ("subtract", Ellipsoid(_off(m(L["ear_l"]), s * 0.016, 0.0, 0.002), (0.011, 0.019, 0.006),
                               _frame((0, 1.0, -0.25), (s, 0, 0))), 0.004),
        # eye socket: a hollow the eyeball sits in
        ("subtract", Ellipsoid(_off(m(L["eye_l"]), 0, 0.0, 0.0125), (0.0155, 0.0115, 0.011)), 0.005),
        # upper eyelid: a rim above the eyeball
        ("union", Ellipsoid(_off(m(L["eye_l"]), 0, 0.0065, 0.0065), (0.0145, 0.0055, 0.0085)), 0.003),
    ]
    return shapes


def body_program() -> list:
    """The neutral body as ``[(op, shape, k), ...]`` steps."""
    trunk = [
        ("union", Ellipsoid((0.0, 0.945, -0.01), (0.158, 0.11, 0.105)), 0.0),
        ("union", Ellipsoid((0.0, 1.085, 0.0), (0.135, 0.13, 0.098)), 0.06),
        ("union", Ellipsoid((0.0, 1.275, -0.005), (0.158, 0.17, 0.11)), 0.06),
        ("union", Cone((0.15, 1.40, -0.015), (-0.15, 1.40, -0.015), 0.06, 0.06), 0.05),
        ("union", Ellipsoid((0.072, 1.305, 0.05), (0.072, 0.062, 0.045)), 0.03),
        ("union", Ellipsoid((-0.072, 1.305, 0.05), (0.072, 0.062, 0.045)), 0.03),
        ("union", Ellipsoid((0.07, 0.905, -0.055), (0.082, 0.09, 0.07)), 0.03),
        ("union", Ellipsoid((-0.07, 0.905, -0.055), (0.082, 0.09, 0.07)), 0.03),
        # neck and head
        ("union", Cone((0.0, 1.40, -0.012), (0.0, 1.585, -0.005), 0.056, 0.05), 0.04),
        ("union", Ellipsoid(tuple(L["head_center"]), (0.074, 0.09, 0.096)), 0.03),
        ("union", Ellipsoid((0.0, 1.585, 0.02), (0.056, 0.066, 0.068)), 0.035),
        ("union", Ellipsoid(tuple(L["chin"] + (0.0, 0.004, -0.012)), (0.021, 0.017, 0.017)), 0.015),
        ("union", Cone((0.0, 1.648, 0.088), tuple(L["nose_tip"] + (0.0, 0.004, -0.004)), 0.0075, 0.0105), 0.008),
        ("union", Ellipsoid(tuple(L["nose_tip"] + (0.0, 0.002, -0.007)), (0.011, 0.0105, 0.0105)), 0.004),
        ("union", Ellipsoid(tuple(L["lip_upper"] + (0.0, 0.0, -0.01)), (0.023, 0.0068, 0.0095)), 0.006),
        ("union", Ellipsoid(tuple(L["lip_lower"] + (0.0, 0.0, -0.011)), (0.02, 0.0072, 0.0095)), 0.006),
    ]
    sides = _left("l") + _left("r")
    carve = [
        # the parting of the lips
        ("subtract", Ellipsoid(tuple(L["mouth"] + (0.0, 0.0, 0.006)), (0.026, 0.0016, 0.012)), 0.002),
        # nostrils
        ("subtract", Ellipsoid((0.0075, 1.5905, 0.106), (0.0038, 0.0028, 0.005)), 0.002),
        ("subtract", Ellipsoid((-0.0075, 1.5905, 0.106), (0.0038, 0.0028, 0.005)), 0.002),
        # flat soles
        ("intersect", HalfSpace((0, 0.0, 0), (0, -1.0, 0), ((-0.3, -0.05, -0.2), (0.3, 0.12, 0.25))), 0.004),
    ]
    return trunk + sides + carve


def left_eye_centre() -> np.ndarray:
    """Centre of the left eyeball, a separate closed sphere of EYE_RADIUS (the right one mirrors it)."""
    return L["eye_l"]


def bounds() -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box holding the whole body, with a margin."""
    return np.array([-0.72, -0.01, -0.17]), np.array([0.72, 1.775, 0.21])
