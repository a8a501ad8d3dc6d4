"""Compare learned latents with the designer sliders (issue 7): metrics, rig audit, figures, report.

    import avatar.compare as C
    C.mig(codes, factors)                                        # disentanglement_lib's MIG, 20 bins
    C.dci(codes_train, factors_train, codes_test, factors_test)  # dict: disentanglement, completeness, ...
    C.sap(codes_train, factors_train, codes_test, factors_test, continuous=False)
    card = C.compare_codes(Z_tr, S_tr, Z_te, S_te, slider_names)  # every metric, JSON-able
    C.compare_experiment("configs/experiments/faces-pca.yaml", "reports/faces-pca/")   # the report
    C.audit_rig(avatar.load_rig())                               # the slider design itself

Arrays are laid out (n_samples, n_dims). Continuous sliders are binned (20 equal-width
bins, recorded in ``estimators``) before the discrete metrics.
"""
from __future__ import annotations

from .metrics import dci, discretize, explicitness, mig, modularity, mutual_information, sap
from .scorecard import baselines, compare_codes

__all__ = ["audit_rig", "baselines", "compare_codes", "compare_experiment", "dci", "discretize", "explicitness",
           "mig", "modularity", "mutual_information", "sap"]


def compare_experiment(*args, **kwargs):
    """See :func:`avatar.compare.pipeline.compare_experiment` (imported on first use: matplotlib)."""
    from .pipeline import compare_experiment as run

    return run(*args, **kwargs)


def audit_rig(*args, **kwargs):
    """See :func:`avatar.compare.audit.audit_rig`."""
    from .audit import audit_rig as run

    return run(*args, **kwargs)
