"""Fitting the rig to a mesh: the slider values, pose and rigid transform that reproduce it.

    fit = avatar.fit_body(V)        # (V, 3) vertices of our topology: .values, .vertex_error_mm, .unidentifiable
    fit = avatar.fit_body(scan)     # a trimesh of any topology: also .transform and .surface_error_mm

:mod:`.linear`   the linear sliders' exact, constant Jacobian (per side of each slider's default)
:mod:`.solver`   bounded Levenberg-Marquardt on sliders, pose and a rigid map; the posterior sd
:mod:`.qp`       the bounded step: a box-constrained quadratic program
:mod:`.geometry` Kabsch, principal axes, closest points on triangles
:mod:`.body`     ``fit_body`` for our topology and for scans
"""
from .body import BodyFit, fit_body, free_sliders, implied_change

__all__ = ["BodyFit", "fit_body", "free_sliders", "implied_change"]
