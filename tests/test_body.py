"""The body's machinery: the macro rule, the blend's exactness and determinism, the catalogue, eyes, measures."""
from __future__ import annotations

import numpy as np
import pytest

import avatar
from avatar.body import assets, catalogue, eyes, macros
from avatar.measure.body import mass_kg, stature_cm, volume_litres
from avatar.body.targets import default_targets
from avatar.cli.main import main
from avatar.spec.config import ConfigError
from avatar.spec.sliders import rig_spec_from_data
from avatar.spec.config import Problems


@pytest.fixture(scope="module")
def rig():
    return avatar.load_rig()


# -- MakeHuman 1.1's macro rule --------------------------------------------------------------------
def test_age_years_follow_makehuman_anchors():
    assert macros.age_to_years([0, 0.1875, 0.5, 1]) == pytest.approx([1, 10, 25, 90])
    a = np.linspace(0, 1, 41)
    assert macros.years_to_age(macros.age_to_years(a)) == pytest.approx(a)


def test_factor_ramps_at_known_points():
    F = macros.factor_values([[0.5] * 8 + [1, 1, 1], [1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0], [0, 1, 1, 0, 0, 1, 0, 1, 2, 0, 0]])
    col = {f: F[:, i] for i, f in enumerate(macros.FACTORS)}
    # the neutral human: all averages, young, half male, thirds of each ethnicity
    assert col["young"][0] == 1 and col["averagemuscle"][0] == 1 and col["male"][0] == 0.5
    assert col["minheight"][0] == col["maxheight"][0] == 0 and col["african"][0] == pytest.approx(1 / 3)
    # a male baby, max weight and height, max cup; all ethnic values 0 fall back to thirds
    assert col["baby"][1] == 1 and col["maxweight"][1] == 1 and col["maxheight"][1] == 1 and col["maxcup"][1] == 1
    assert col["asian"][1] == pytest.approx(1 / 3)
    # an old woman, max muscle, min weight, ideal proportions, max firmness, all african
    assert col["old"][2] == 1 and col["female"][2] == 1 and col["maxmuscle"][2] == 1
    assert col["minweight"][2] == 1 and col["idealproportions"][2] == 1 and col["african"][2] == 1
    # each variable's factors are a partition of one (the ramps are convex weights)
    for names in (("baby", "child", "young", "old"), ("minmuscle", "averagemuscle", "maxmuscle")):
        assert sum(col[n] for n in names) == pytest.approx(np.ones(3))


def test_cells_hold_every_non_zero_weight():
    keys = [str(k) for k in default_targets().names if macros.is_macro_target(str(k))]
    assert len(keys) == 564
    basis = macros.MacroBasis(keys)
    M = np.random.default_rng(0).random((500, 11))
    M[:50, :8] = np.round(M[:50, :8] * 4) / 4  # ramp ends and kinks, where factors turn exactly 0
    F = macros.factor_values(M)
    W = basis.weights(F)
    cell, active = basis.cells(F)
    for c, act in enumerate(active):
        rows = cell == c
        outside = np.setdiff1d(np.arange(len(keys)), np.arange(len(keys))[act])  # act: indices or a slice
        assert np.all(W[np.ix_(rows, outside)] == 0)
    assert np.mean([len(a) for a in basis.cells(F)[1]]) < 100  # about 90 of 564 targets per avatar


def test_repeated_macro_files_are_blended_once_with_their_summed_weights(rig):
    for basis in (rig._macros, rig._local_macros):
        dense = [rig._dense(k) for k in basis.keys]  # on the blend set: the body, helper eyeballs, joint cubes
        first = {}
        for k, d in zip(basis.keys, dense):  # the same displacement exactly when the same number
            j = basis.same[basis.keys.index(k)]
            if j in first:
                assert np.array_equal(d, first[j])
            else:
                assert not any(np.array_equal(d, e) for e in first.values())
                first[j] = d
        assert sorted(first) == list(range(basis.n_targets))
        F = macros.factor_values(rig.macro_values(rig.sample(64, seed=4)))
        W, T = basis.weights(F), basis.target_weights(F)
        for j in range(basis.n_targets):
            np.testing.assert_allclose(T[:, j], W[:, basis.same == j].sum(axis=1), rtol=1e-12, atol=0)
    assert rig._macros.n_targets < 0.5 * len(rig._macros.keys)  # 143 of MakeHuman's 340 dense files differ


# -- the blend --------------------------------------------------------------------------------------
def reference_vertices(rig, x: np.ndarray, n: int = assets.N_BODY) -> np.ndarray:
    """One avatar's base.obj vertices 0..n-1 by the plain rule in float64: base + sum of weighted
    targets, the body on y = 0 (n = 19158: with every helper, the joint cubes too)."""
    table, base = default_targets(), assets.base_mesh().vertices[:n]
    V = base.copy()
    F = macros.factor_values(rig.macro_values(x[None]))
    keys = [str(k) for k in table.names if macros.is_macro_target(str(k))]
    for key, w in zip(keys, macros.MacroBasis(keys).weights(F)[0]):
        if w:
            V += w * table.dense(key, n)
    races = macros.normalise_races(rig.macro_values(x[None])[:, 8:])[0]
    for s, v in zip(rig.sliders, x):
        if not s.makehuman or v == s.default:
            continue
        group, _, name = s.makehuman.partition("/")
        if group == "expression":
            unit = name.rsplit("/", 1)[1]
            for r, race in enumerate(("african", "asian", "caucasian")):
                V += v / 100 * races[r] * table.dense(f"expression/units/{race}/{unit}", n)
        elif "|" in name:
            stem, _, ends = name.rpartition("-")
            lo, hi = ends.split("|")
            V += abs(v) / 100 * table.dense(f"{group}/{stem}-{hi if v > 0 else lo}", n)
        else:
            V += v / 100 * table.dense(s.makehuman, n)
    return V - (0, V[: assets.N_BODY, 1].min(), 0)


def test_blend_equals_the_plain_rule(rig):
    S = rig.sample(4, seed=11)
    for s in rig.sliders:  # the plain rule is MakeHuman's: our own deformers stay at rest
        if s.moves_mesh and not (s.makehuman or s.macro):
            S[:, rig.spec.index(s.name)] = s.default
    j = rig.spec.index("expression.mouth_open")
    S[1, j] = 80.0  # an expression unit, blended by ethnicity
    V = rig.vertices(S)
    for x, v in zip(S, V):
        np.testing.assert_allclose(v[: assets.N_BODY], reference_vertices(rig, x), atol=2e-6)


def test_this_blas_gives_equal_rows_equal_bytes_wherever_they_sit():
    """What batch-free rows rest on: checked directly, so that a BLAS kernel that rounds by position (OpenBLAS's
    Haswell kernel on AMD Zen 4, which avatar/__init__.py steers clear of) fails here by name."""
    from avatar.body.blend import rows_round_alike

    assert rows_round_alike(), "import avatar before numpy, or set OPENBLAS_CORETYPE=SkylakeX (avatar/__init__.py)"


def test_rows_do_not_depend_on_the_batch_they_are_computed_in(rig):
    """Byte-identical rows for any split, one row included, and any neighbours in the blend's tiles
    (other orders of the batch): the dataset's determinism across workers and resumes rests on this."""
    S = rig.sample(300, seed=2)
    whole = rig.vertices(S)
    for cuts in ((0, 1, 300), (0, 5, 6, 250, 300), (0, 2, 3, 5, 9, 300)):
        parts = np.concatenate([rig.vertices(S[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
        assert parts.tobytes() == whole.tobytes(), cuts
    for order in (np.arange(300)[::-1], np.random.default_rng(0).permutation(300)):
        assert rig.vertices(S[order]).tobytes() == whole[order].tobytes()


def test_a_chunk_shared_among_threads_gives_each_avatar_its_one_thread_bytes(rig):
    """The blend's passes dealt among threads by panels, the rest split by avatars: the same bytes for
    1 to 5 threads, at rest (the joint cubes skipped), posed, and with the rest bone ends wanted."""
    from threadpoolctl import threadpool_limits

    rest, posed = rig.sample(70, seed=5), rig.sample(70, seed=5, pose=True)
    for S, want_ends in ((rest, False), (posed, False), (rest, True)):
        got = []
        for threads in (1, 2, 3, 5):
            out = np.full((len(S), rig.n_vertices, 3), np.nan, np.float32)
            ends = np.full((len(S), 2 * rig.posing.n_bones, 3), np.nan, np.float32) if want_ends else None
            rig._chunk(rig.values(S), out, True, ends, threads)
            got.append(out.tobytes() + (ends.tobytes() if want_ends else b""))
        assert all(g == got[0] for g in got[1:]) and not np.isnan(out).any()
    with threadpool_limits(1, user_api="blas"):
        alone = rig.vertices(posed)
    assert alone.tobytes() == rig.vertices(posed).tobytes()


def test_workers_deal_every_panel_once_in_whole_blocks():
    from avatar.body import workers
    from avatar.body._blend_kernel import BLOCK

    panels = np.arange(7, 7 + 3 * (5 * BLOCK + 3), 3)
    for threads in (1, 2, 3, 4, 9):
        shares = workers.deal(panels, threads)
        assert len(shares) == min(threads, 6) and all(s.dtype == np.int64 and s.flags.c_contiguous for s in shares)
        assert np.array_equal(np.sort(np.concatenate(shares)), panels)
        for s in shares:
            assert (np.diff(s) > 0).all()
            starts = np.searchsorted(panels, s[::BLOCK])
            assert (starts % BLOCK == 0).all()                 # each share is whole blocks of the list
        assert max(map(len, shares)) - min(map(len, shares)) <= BLOCK
    for n, threads in ((10, 3), (2, 5), (0, 2), (7, 1)):
        parts = workers.rows(n, threads)
        assert parts[0][0] == 0 and parts[-1][1] == n and all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        assert len(parts) == max(1, min(n, threads)) and all(b > a for a, b in parts if n)


def test_workers_each_runs_the_first_part_here_the_others_on_the_pool_and_raises_their_errors():
    import threading

    from avatar.body import workers

    seen = {}
    workers.each(lambda k: seen.setdefault(k, threading.get_ident()), [0, 1, 2])
    me = threading.get_ident()
    assert sorted(seen) == [0, 1, 2] and seen[0] == me and me not in (seen[1], seen[2])

    def fail(k):
        if k == 2:
            raise ValueError("part 2")
    with pytest.raises(ValueError, match="part 2"):
        workers.each(fail, [0, 1, 2])


def test_the_blend_kernel_sums_the_weighted_rows_of_each_panel():
    """The compiled blend against float64 products, on random matrices with zero weights, zero strengths,
    targets and fields missing from panels and empty tile slots (whose rows it must leave alone)."""
    from avatar.body import _blend_kernel as kernel, blend

    rng = np.random.default_rng(3)
    n, Tm, B, K, n_body = 23, 150, 40, 12, 25                  # 23 avatars: the last tile is part-empty;
    Dm = rng.standard_normal((Tm, 3 * B)).astype(np.float32)   # 150 targets: three words of bits
    Dm *= np.repeat(rng.random((Tm, -(-3 * B // kernel.PANEL))) < 0.6, kernel.PANEL, axis=1)[:, : 3 * B]
    fields = []
    for k in range(K):
        rows = np.sort(rng.choice(B + 6, size=rng.integers(1, 12), replace=False))  # rows >= B: eyeball fields
        fields.append((rows, rng.standard_normal((len(rows), 3)).astype(np.float32)))
    W = rng.random((n, Tm)).astype(np.float32) * (rng.random((n, Tm)) < 0.3)
    G = rng.random((n, K)).astype(np.float32) * (rng.random((n, K)) < 0.7)
    pan = blend.panels(fields, Dm, n_body, B, B + 6)
    tiles = blend.tiles(rng.integers(0, 4, n), kernel.TILE)
    assert (tiles == -1).sum() == 1 and sorted(tiles[tiles >= 0]) == list(range(n))
    Wt, Gt = blend.by_tile(W, tiles), blend.by_tile(G, tiles)
    for t, slots in enumerate(tiles):                           # tile by tile, avatars side by side
        for i, a in enumerate(slots):
            assert (Wt[t, :, i] == (W[a] if a >= 0 else 0)).all() and (Gt[t, :, i] == (G[a] if a >= 0 else 0)).all()
    tbits = blend.tile_bits(Wt)
    np.testing.assert_array_equal(tbits, blend.bitsets(np.array([(W[s[s >= 0]] != 0).any(axis=0) for s in tiles])))
    out = np.full((n, 3 * n_body + kernel.PANEL), np.nan, np.float32)     # room for the last body panel's padding
    side = np.full((n, pan.side_width), np.nan, np.float32)
    floor = rng.random(n).astype(np.float32)
    everything = np.arange(len(pan.fptr) - 1)
    assert (pan.pbits != 0).any() and (~pan.pbits != 0).any()        # some targets skip some panels
    kernel.blend(Wt, Gt, tiles, tbits, pan.Dm, pan.pbits, pan.fptr, pan.feats, pan.Dl, out, side, pan.n_out, pan.n_macro,
                 everything, floor)
    D = np.zeros((K, 3 * (B + 6)))
    for k, (rows, d) in enumerate(fields):
        D[k, (3 * rows[:, None] + np.arange(3)).ravel()] = d.ravel()
    want = G.astype(np.float64) @ D
    want[:, : 3 * B] += W.astype(np.float64) @ Dm
    want[:, 1: 3 * n_body: 3] -= floor[:, None]                  # the floor comes off the body's y only
    got = np.concatenate([out[:, : 3 * n_body], side[:, : 3 * (B - n_body)],
                          side[:, pan.extra: pan.extra + 18]], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # an avatar's bytes are its own: the same avatar computed alone, in its own tile
    for i in (0, 7, 22):
        o1, s1 = np.zeros((1, out.shape[1]), np.float32), np.zeros((1, side.shape[1]), np.float32)
        t1 = blend.tiles(np.zeros(1, np.int64), kernel.TILE)
        W1 = blend.by_tile(W[i:i + 1], t1)
        kernel.blend(W1, blend.by_tile(G[i:i + 1], t1), t1, blend.tile_bits(W1), pan.Dm, pan.pbits, pan.fptr, pan.feats, pan.Dl, o1, s1,
                     pan.n_out, pan.n_macro, everything, floor[i:i + 1])
        assert o1[0, : 3 * n_body].tobytes() == out[i, : 3 * n_body].tobytes()
        assert s1[0].tobytes() == side[i].tobytes()


def test_compiled_weights_are_numpys_bytes(rig):
    """_weights_kernel: the macro weights equal MacroBasis.target_weights (float64 sums, then float32) and
    the field strengths the plain rule, at random values and at every slider's extremes."""
    from avatar.body import _weights_kernel, blend
    from avatar.body.macros import factor_values, normalise_races

    S = rig.values(rig.sample(40, seed=2))
    lo, hi = (np.array([getattr(s, k) for s in rig.sliders], float) for k in ("min", "max"))
    ends = np.repeat(rig.defaults()[None], 2 * len(lo), axis=0)
    ends[np.arange(len(lo)) * 2, np.arange(len(lo))], ends[np.arange(len(lo)) * 2 + 1, np.arange(len(lo))] = lo, hi
    for X in (S, rig.values(ends)):
        Fm = factor_values(rig.macro_values(X))
        tiles = blend.tiles(np.zeros(len(X), np.int64), 8)              # in order, the last tile part-empty
        Ft = blend.by_tile(Fm, tiles)
        for basis in (rig._macros, rig._local_macros):
            keys, starts = basis.by_displacement
            want = np.zeros((len(X), basis.n_targets))
            for d in range(basis.n_targets):                  # the rule: products left to right, sums in key order
                for q in range(starts[d], starts[d + 1]):
                    w = Fm[:, basis.columns[keys[q], 0]]
                    for c in basis.columns[keys[q], 1:]:
                        w = w * Fm[:, c]
                    want[:, d] = w if q == starts[d] else want[:, d] + w
            got = np.full((len(X), basis.n_targets + 3), np.nan, np.float32)
            basis.target_weights(Fm, got, 3)                  # a tile an avatar
            assert got[:, 3:].tobytes() == want.astype(np.float32).tobytes()
            assert basis.target_weights(Fm).tobytes() == want.tobytes()
            tiled = np.full((len(tiles), basis.n_targets + 3, 8), np.nan, np.float32)
            _weights_kernel.target_weights(Ft, basis.columns, keys, starts, tiled, 3)
            rows = tiled[:, 3:].transpose(0, 2, 1).reshape(-1, basis.n_targets)
            assert rows[: len(X)].tobytes() == want.astype(np.float32).tobytes() and (rows[len(X):] == 0).all()
        G = rig.features(X)
        Gt = np.full((len(tiles), G.shape[1] + 2, 8), np.nan, np.float32)   # tile by tile, as the rig blends
        rig._strengths(X, Fm, Gt, tiles)
        rows = Gt.transpose(0, 2, 1).reshape(-1, G.shape[1] + 2)
        assert rows[: len(X), : G.shape[1]].tobytes() == G.tobytes() and (rows[len(X):] == 0).all()
        assert (rows[:, G.shape[1]:] == 0).all()
        races = normalise_races(rig.macro_values(X)[:, 8:11]).astype(np.float32)
        cont, dflt, up_span, down_span, up_col, down_col, onehot, on_value, race_col, race_src, race_of = \
            rig._strength_tables
        want = np.zeros_like(G)
        for i, j in enumerate(cont):                        # the rule, slider by slider
            if up_col[i] >= 0:
                want[:, up_col[i]] = np.maximum((X[:, j] - dflt[i]) / up_span[i], 0.0)
            if down_col[i] >= 0:
                want[:, down_col[i]] = np.maximum((dflt[i] - X[:, j]) / down_span[i], 0.0)
        for (col, j), value in zip(onehot, on_value):
            want[:, col] = X[:, j] == value
        want[:, race_col] = want[:, race_src] * races[:, race_of]
        want[:, -1] = 1.0
        assert G.tobytes() == want.tobytes()
    assert (G[:, race_col] != 0).any()                       # the expressions at their extremes


def test_bitsets_hold_each_rows_columns():
    """blend.bitsets: bit j of word w is column 64 w + j, for widths short of, at and past a word."""
    from avatar.body import blend

    rng = np.random.default_rng(0)
    for width in (1, 63, 64, 65, 150):
        mask = rng.random((7, width)) < 0.4
        bits = blend.bitsets(mask)
        assert bits.dtype == np.uint64 and bits.shape == (7, -(-width // 64))
        got = (bits[:, np.arange(width) // 64] >> (np.arange(width) % 64).astype(np.uint64)) & np.uint64(1)
        np.testing.assert_array_equal(got.astype(bool), mask)


def test_recycled_outputs_never_share_memory_with_a_live_array():
    """buffers.Recycler: a dropped array's memory comes back; a kept array, or a kept view of one, keeps it."""
    from avatar.body.buffers import Recycler

    pool = Recycler(keep=2, most=1 << 20)
    a = pool.empty((10, 4))
    assert a.flags.writeable and a.flags.c_contiguous and a.dtype == np.float32 and a.shape == (10, 4)
    where = a.ctypes.data
    del a
    b = pool.empty((3, 4))                                   # smaller: the same memory again
    assert b.ctypes.data == where
    view = b[1:]
    del b
    c = pool.empty((10, 4))                                  # b's view still lives: other memory
    assert c.ctypes.data != where
    c[...] = 1.0
    view[...] = 2.0
    assert (c == 1.0).all()
    d = pool.empty((10, 4))                                  # both buffers in use: a third, the oldest forgotten
    assert len({d.ctypes.data, c.ctypes.data, where}) == 3 and pool.held == 2 * 160
    del view
    big = pool.empty((1 << 19, 1))                            # over ``most``: a plain array, not kept
    assert big.flags.owndata and pool.held <= 2 * 160


def test_recycled_outputs_under_threads_are_each_their_own():
    """Threads taking and dropping arrays at once never get memory another live array uses."""
    import threading

    from avatar.body.buffers import Recycler

    pool, problems = Recycler(keep=2), []

    def work(k):
        for i in range(300):
            a = pool.empty((64,), np.int64)
            a[...] = k * 1000 + i
            if not (a == k * 1000 + i).all():
                problems.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not problems


def test_a_kept_result_is_not_overwritten_by_the_next(rig):
    """rig.vertices hands out memory again only once its last result is dropped."""
    S = rig.sample(4, seed=0)
    first = rig.vertices(S)
    copy = first.copy()
    second = rig.vertices(rig.sample(4, seed=1))
    assert first.tobytes() == copy.tobytes() and second.tobytes() != copy.tobytes()
    where = first.ctypes.data
    del first
    third = rig.vertices(S)                                   # first's memory again (second's is in use)
    assert third.ctypes.data == where and third.tobytes() == copy.tobytes()


def test_a_chunk_of_few_varied_sliders_skips_the_others_fields_to_the_same_bytes(rig):
    """Avatars that vary three sliders blend only the fields some of them use: the bytes they get among
    prior avatars (every field blended), and a layout kept per set of fields used, the last few."""
    rng = np.random.default_rng(0)
    S = np.repeat(rig.defaults()[None], 40, axis=0)
    for name in ("nose.width1", "body.age", "ears.l_flap"):
        s = rig.sliders[rig.spec.index(name)]
        S[:, rig.spec.index(name)] = rng.uniform(s.min, s.max, len(S))
    rig._layouts.clear()
    alone = rig.vertices(S)
    assert len(rig._layouts) == 1                               # the fields used by the chunk, only
    fptr, feats, _ = next(iter(rig._layouts.values()))
    assert len(feats) < 0.1 * len(rig._panels.feats) and fptr[-1] == len(feats)
    among = rig.vertices(np.concatenate([rig.sample(60, seed=1), S]))[60:]
    assert alone.tobytes() == among.tobytes()
    from avatar.body.rig import LAYOUTS

    for name in [s.name for s in rig.sliders if s.name.startswith("nose.")][:LAYOUTS + 3]:
        T = np.repeat(rig.defaults()[None], 8, axis=0)         # other sets of fields: the last few kept
        T[:, rig.spec.index(name)] = rig.sliders[rig.spec.index(name)].max
        rig.vertices(T)
    assert len(rig._layouts) == LAYOUTS


def test_linear_modifiers_used_by_the_compare_tests_are_exactly_linear(rig):
    """MakeHuman pairs whose decr target is the incr target negated: linear over -100..100."""
    from test_compare import LINEAR

    x0 = rig.defaults()
    sizes = []
    for name in LINEAR:
        j = rig.spec.index(name)
        S = np.repeat(x0[None], 3, axis=0)
        S[:, j] = (-100, 0, 100)
        lo, mid, hi = rig.vertices(S).astype(np.float64)
        np.testing.assert_allclose(hi - mid, mid - lo, atol=2e-6, err_msg=name)
        assert np.abs(hi - mid).max() > 0.003, name  # and it moves something (> 3 mm)
        sizes.append(np.linalg.norm(hi - mid))
    sizes = np.sort(sizes)
    assert (sizes[1:] / sizes[:-1] > 1.5).all(), sizes  # distinct variances: PCA cannot mix them


# -- the catalogue and the rig YAML ------------------------------------------------------------------
def test_rig_declares_every_catalogue_modifier(rig):
    mods = catalogue.modifiers()
    assert len(mods) == 266 >= 250  # MakeHuman's 269 less the 3 genital ones, which move no body vertex
    text = open(avatar.DEFAULT_RIG).read()
    out = __import__("subprocess").run([__import__("sys").executable, "-m", "avatar.body.catalogue"],
                                       capture_output=True, text=True, check=True).stdout
    assert out in text, "configs/rigs/humanoid.yaml is out of sync: python -m avatar.body.catalogue"
    names = {s.name: s for s in rig.sliders}
    for m in mods:
        s = names[m.name]
        assert s.makehuman == m.makehuman and s.label and s.description.endswith(".")
        assert (s.min, s.max) == ((0, 100) if m.one_sided else (-100, 100))
    groups = {m.group for m in mods}
    assert {"nose", "ears", "eyes", "mouth", "head", "torso", "arms", "legs", "hands", "feet"} <= groups
    assert sum(s.group == "expression" for s in rig.sliders) == 34
    # genital and nipple modifiers are never sampled
    assert all(rig.sliders[rig.spec.index(m.name)].distribution["kind"] == "fixed" for m in mods
               if m.makehuman.startswith(catalogue.OFF_BY_DEFAULT))


def test_a_rig_with_too_many_sliders_is_refused():
    data = {"name": "huge", "template": "humanoid",
            "sliders": {f"body.s{i}": {"description": "x", "min": 0, "max": 1, "default": 0} for i in range(2001)}}
    with pytest.raises(ConfigError, match="at most 2,000 sliders, this one has 2,001"):
        rig_spec_from_data(data, Problems("<huge>"))


# -- eyes, priors, measures --------------------------------------------------------------------------
def test_eyes_are_spheres_on_the_blended_helper_eyeballs(rig):
    S = rig.sample(3, seed=4)
    V = rig.vertices(S)
    t = rig.template
    for side, group in (("eye_l", "helper-l-eye"), ("eye_r", "helper-r-eye")):
        ball = V[:, t.part_mask(side)].astype(np.float64)
        centre = ball.mean(axis=1, keepdims=True)
        r = np.linalg.norm(ball - centre, axis=2)
        assert np.ptp(r, axis=1).max() < 1e-5 and (r.mean(axis=1) > 0.012).all() and (r.mean(axis=1) < 0.02).all()
    # the eyes sit in the head: between the brows and the nose tip, behind the face
    head_top = V[:, : t.n_body, 1].max(axis=1)
    assert (V[:, t.part_mask("eye_l"), 1].mean(axis=1) > head_top - 0.2).all()
    assert eyes.EYE_SPHERE.vertices.shape == (546, 3)


def test_adult_statures_are_close_to_population_figures(rig):
    S = rig.sample(1200, seed=5)
    h = stature_cm(rig.vertices(S), rig.template.n_body)
    col = rig.slider_names.index
    adult = S[:, col("body.age")] >= 20
    men, women = adult & (S[:, col("body.gender")] > 70), adult & (S[:, col("body.gender")] < 30)
    assert 168 < np.median(h[men]) < 180 and 156 < np.median(h[women]) < 168
    assert h.max() < 215  # no giants
    assert h[~adult].min() < 130  # children are small


def test_measures_of_the_default_avatar(rig):
    V = rig.vertices(rig.defaults())
    t = rig.template
    body = t.faces[np.all(t.faces < t.n_body, axis=1)]
    import trimesh

    solid = trimesh.Trimesh(V[: t.n_body].astype(np.float64), body, process=False)
    assert solid.is_watertight and volume_litres(V, body)[0] == pytest.approx(solid.volume * 1000, rel=1e-5)
    assert 150 < stature_cm(V, t.n_body)[0] < 175 and 45 < mass_kg(V, body)[0] < 85


def test_make_and_sliders_show_stature_and_mass(tmp_path, capsys):
    preset = avatar.DEFAULT_RIG.parents[1] / "avatars" / "child.yaml"
    assert main(["make", str(preset), "-o", str(tmp_path / "c.ply")]) == 0
    line = capsys.readouterr().out
    assert " m, " in line and " kg)" in line
    metres = float(line.split("(")[1].split(" m")[0])
    assert 0.9 < metres < 1.45  # a child
    assert main(["sliders", "--group", "body", "--preset", str(preset)]) == 0
    out = capsys.readouterr().out
    assert "body.age" in out and f"{preset}: {metres:.2f} m" in out


def test_validate_reads_a_rigs_targets(tmp_path, capsys):
    rig = tmp_path / "mine.yaml"
    body = ("name: t\ntemplate: humanoid\nsliders:\n  nose.mine:\n    description: A sculpt of my own.\n"
            "    min: 0\n    max: 100\n    default: 0\n    effects: [{deformer: target, file: %s}]\n")
    rig.write_text(body % "missing.target")
    assert main(["validate", str(rig)]) == 2
    err = capsys.readouterr().err
    assert f"{rig}:4: sliders.nose.mine.effects: cannot read its target" in err and "missing.target" in err
    rig.write_text(body % "nose/nose-hump-incr, side: left")
    assert main(["validate", str(rig)]) == 2
    assert "'side' does not apply to it" in capsys.readouterr().err
    (tmp_path / "bump.target").write_text("# my own\n5 0.0 0.1 0.0\n")
    rig.write_text(body % "bump.target")
    assert main(["validate", str(rig)]) == 0


def test_cli_notes_are_one_line(tmp_path, capsys):
    mhm = tmp_path / "a.mhm"
    mhm.write_text("version v1.1.1\nskeleton default.mhskel\nmodifier nose/nose-width1-decr|incr 0.200000\n")
    assert main(["make", str(mhm), "-o", str(tmp_path / "a.ply")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("avatar: note: ignored 1 line(s)") and "skeleton" in err and len(err.splitlines()) == 1


def test_stores_of_another_template_are_refused(rig):
    from avatar.dataset.store import DatasetError, require_current_template

    good = {"template": "humanoid", "static_sha256": {"faces": rig.template.faces_sha256}}
    require_current_template("s.zarr", good)
    for attrs in ({"template": "humanoid", "static_sha256": {"faces": "0" * 64}},   # the old mannequin's faces
                  {"template": "mannequin", "static_sha256": {"faces": rig.template.faces_sha256}}):
        with pytest.raises(DatasetError, match="another template than this version's body"):
            require_current_template("s.zarr", attrs)
