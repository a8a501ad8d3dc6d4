"""The explorer: its state and math (designer <-> latent), validation, presets, and the page in a real browser."""
from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import avatar
import avatar.latent as L
from avatar.spec.config import ConfigError
from avatar.explorer import ExplorerState, LatentView, SliderBasis, preset_path, quick_model
from avatar.explorer.display import DisplayMesh, encode_image
from avatar.explorer.models import shape_sliders, texture_sliders
from avatar.explorer.state import Change

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
NOSE, BELLY = "nose.scale_horiz", "stomach.pregnant"


@pytest.fixture(scope="module")
def basis(rig):
    return SliderBasis().fit(rig)


@pytest.fixture(scope="module")
def axes_model(rig):
    """A PCA whose two axes are known: avatars varying only the nose width and the belly, on a full
    grid of their upper halves (where the rig is exactly linear), so the two codes are uncorrelated."""
    a, b = rig.spec.index(NOSE), rig.spec.index(BELLY)
    ga, gb = np.meshgrid(np.linspace(0, 100, 5), np.linspace(0, 100, 5))
    S = np.repeat(rig.defaults()[None], 25, axis=0)
    S[:, a], S[:, b] = ga.ravel(), gb.ravel()
    return L.fit_vertices(rig.vertices(S), kind="pca", n_components=2, random_state=0)


@pytest.fixture()
def state(rig, basis, axes_model, tmp_path):
    return ExplorerState(rig, LatentView(axes_model, rig.n_vertices, "axes"), basis, texture_size=64,
                         preset_dir=tmp_path / "presets")


# -- designer -> latent -> designer ---------------------------------------------------------------
def test_designer_slider_moves_the_latent_codes(state, rig):
    v0, z0 = state.vertices.copy(), state.code_sd.copy()
    change = state.set_slider(NOSE, 100.0)
    assert change == Change(geometry=True, texture=False, codes=True)
    np.testing.assert_array_equal(state.vertices, rig.vertices(state.values))
    assert not np.array_equal(state.vertices, v0)
    dz = state.code_sd - z0
    # the nose moved exactly one of the two known axes: +100 on a grid of 0..100 is 2.83 sd
    assert np.sort(np.abs(dz)) == pytest.approx([0.0, 2.828], abs=0.01)
    assert state.mode == "designer" and not state.implied.any()


def test_latent_slider_implies_the_right_designer_slider(state, rig):
    spans = rig.spec.highs() - rig.spec.lows()
    for name in (NOSE, BELLY):
        state.reset()
        z0 = state.code_sd.copy()
        state.set_slider(name, 100.0)
        dz = state.code_sd - z0
        k = int(np.argmax(np.abs(dz)))  # the axis this slider moves
        state.reset()
        v_designer = state.vertices.copy()
        change = state.set_code(k, 2.0)
        assert change.geometry and change.codes and state.mode == "latent"
        assert state.code_sd[k] == pytest.approx(2.0)
        np.testing.assert_allclose(state.vertices, L.decode_vertices(state.latent.model, state.codes[None])[0])
        assert not np.allclose(state.vertices, v_designer)
        frac = state.implied / spans
        top = int(np.argmax(np.abs(frac)))
        assert rig.slider_names[top] == name
        assert frac[top] ** 2 / np.sum(frac ** 2) > 0.8  # the bars are dominated by that one slider
        # +2 sd along the axis the slider raised means raising the slider (and the reverse)
        assert np.sign(state.implied[top]) == np.sign(dz[k] * (2.0 - z0[k]))
        # the designer sliders keep the avatar the latent move started from
        np.testing.assert_array_equal(state.values, rig.defaults())
        applied = state.apply_implied()
        assert applied.geometry and state.mode == "designer"
        assert state.values[top] != rig.defaults()[top]


def test_latent_move_and_back(state, rig):
    state.set_slider(BELLY, 80.0)
    state.set_code(0, -1.5)
    state.set_code(1, 0.5)
    assert state.code_sd == pytest.approx([-1.5, 0.5])
    # a designer edit goes back to the designer avatar (the rig, exactly), re-encoded
    state.set_slider(NOSE, 60.0)
    assert state.mode == "designer"
    np.testing.assert_array_equal(state.vertices, rig.vertices(state.values))
    np.testing.assert_allclose(state.codes, L.encode_vertices(state.latent.model, state.vertices[None])[0],
                               rtol=1e-6, atol=1e-9)


def test_texture_slider_changes_only_the_texture(state, rig):
    v0, t0, z0 = state.vertices.copy(), state.texture.copy(), state.codes.copy()
    change = state.set_slider("skin.tone", 90.0)
    assert change == Change(geometry=False, texture=True, codes=False)
    np.testing.assert_array_equal(state.vertices, v0)
    np.testing.assert_array_equal(state.codes, z0)
    np.testing.assert_array_equal(state.texture, rig.textures(state.values, 64))
    assert not np.array_equal(state.texture, t0)
    state.set_slider("tattoo.pattern", "star")
    assert state.values[rig.spec.index("tattoo.pattern")] == rig.sliders[rig.spec.index("tattoo.pattern")] \
        .categories.index("star")
    both = [rig.slider_names[j] for j in np.flatnonzero(shape_sliders(rig) & texture_sliders(rig))]
    assert both == ["body.african", "body.asian", "body.caucasian"]  # ethnicity shapes the body and tints the skin


# -- validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, message", [
    ("body.heigth", 170.0, "did you mean 'body.height'"),
    ("body.height", 500.0, "outside the allowed range 0 to 100%"),
    ("body.height", float("nan"), "body.height"),
    ("body.height", "tall", "body.height"),
    ("tattoo.pattern", "stars", "did you mean 'star'"),
    ("tattoo.flip", 3, "expected true or false"),
    (7, 1.0, "unknown slider"),
])
def test_invalid_designer_values_are_refused(state, name, value, message):
    before = state.values.copy()
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        state.set_slider(name, value)
    np.testing.assert_array_equal(state.values, before)


@pytest.mark.parametrize("index, value, message", [
    (2, 1.0, "component 2 does not exist"),
    (-1, 1.0, "does not exist"),
    (True, 1.0, "does not exist"),
    (0, 3.5, "outside the allowed range -3 to 3 sd"),
    (0, float("inf"), "expected a number"),
    (0, "1", "expected a number"),
])
def test_invalid_latent_values_are_refused(state, index, value, message):
    z = state.codes.copy()
    with pytest.raises(ConfigError, match=message):
        state.set_code(index, value)
    np.testing.assert_array_equal(state.codes, z)
    assert state.mode == "designer"


# -- presets ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "/etc/passwd", "/tmp/x", "a/b", "a\\b", ".hidden",
                                  "..", "", " ", "x" * 65, "na me", "name\nx", None, 5, "c:x"])
def test_preset_names_that_are_paths_are_refused(state, tmp_path, name):
    with pytest.raises(ConfigError, match="bad preset name"):
        state.save_preset(name)
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "presets").exists()


def test_preset_saving_off_without_a_directory(rig, basis, axes_model):
    s = ExplorerState(rig, LatentView(axes_model, rig.n_vertices), basis, texture_size=64, preset_dir=None)
    with pytest.raises(ConfigError, match="--preset-dir"):
        s.save_preset("ok")


def test_preset_symlink_is_refused(tmp_path):
    (tmp_path / "elsewhere.yaml").write_text("x")
    d = tmp_path / "presets"
    d.mkdir()
    (d / "link.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    with pytest.raises(ConfigError, match="not a plain file"):
        preset_path(d, "link")
    assert preset_path(d, "ok.yaml") == (d / "ok.yaml").resolve()


def test_saved_preset_reloads_to_the_same_values(state, rig, tmp_path):
    for name, value in [("body.height", 82.5), ("nose.scale_horiz", 71.25), ("skin.lip_colour", "berry"),
                        ("tattoo.flip", True), ("tattoo.pattern", "spiral"), ("tattoo.hue", 12.0)]:
        state.set_slider(name, value)
    path = state.save_preset("my-avatar_1")
    assert path == (tmp_path / "presets" / "my-avatar_1.yaml").resolve()
    assert sorted(p.name for p in path.parent.iterdir()) == ["my-avatar_1.yaml"]  # no temporary left
    loaded = avatar.load_preset(path, rig)
    np.testing.assert_array_equal(rig.values(loaded), state.values)
    assert state.presets["my-avatar_1"] == path
    # and back through the page's own loaders
    values = state.values.copy()
    state.reset()
    state.load_preset("my-avatar_1")
    np.testing.assert_array_equal(state.values, values)
    state.reset()
    state.load_preset_text(path.read_text())
    np.testing.assert_array_equal(state.values, values)


def test_bad_uploaded_preset_changes_nothing(state):
    state.set_slider("body.height", 90.0)
    before = state.values.copy()
    with pytest.raises(ConfigError, match=r"up.yaml:3: sliders.body.height: value 900"):
        state.load_preset_text("name: x\nsliders:\n  body.height: 900\n", file="up.yaml")
    with pytest.raises(ConfigError):
        state.load_preset("../../configs/avatars/knight")
    np.testing.assert_array_equal(state.values, before)


# -- files --------------------------------------------------------------------------------------------
def test_glb_download_is_the_avatar_with_its_sliders(state, rig):
    import trimesh

    state.set_slider("body.weight", 80.0)
    data = state.glb(texture_size=64)
    assert data[:4] == b"glTF"
    scene = trimesh.load(io.BytesIO(data), file_type="glb")
    mesh = next(iter(scene.geometry.values()))
    np.testing.assert_allclose(mesh.vertices, state.vertices[rig.template.export_index], atol=1e-6)
    assert b'"body.weight":80.0' in data.replace(b" ", b"")


def test_display_glb_is_valid_and_exact(rig, state):
    import trimesh

    d = DisplayMesh(rig.template)
    image = encode_image(state.texture)
    glb = d.glb(state.vertices, image)
    mesh = next(iter(trimesh.load(io.BytesIO(glb), file_type="glb").geometry.values()))
    np.testing.assert_array_equal(mesh.vertices, state.vertices[rig.template.export_index].astype(np.float64))
    np.testing.assert_array_equal(mesh.faces, rig.template.export_faces)
    ref = rig.mesh(state.values, texture_size=64)  # trimesh's own export of the same avatar: same UVs
    np.testing.assert_allclose(mesh.visual.uv, ref.visual.uv, atol=1e-6)
    n = d.normals(state.vertices)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    v, f = state.vertices.astype(np.float64), rig.faces  # area-weighted face normals, summed per vertex
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    ref_n = np.zeros_like(v)
    for c in range(3):
        np.add.at(ref_n, f[:, c], fn)
    np.testing.assert_allclose(n, ref_n / np.linalg.norm(ref_n, axis=1, keepdims=True), atol=1e-4)


# -- models and the cache ---------------------------------------------------------------------------
def test_quick_model_is_cached_by_rig_and_settings(rig, tmp_path):
    logs = []
    m1, p1 = quick_model(rig, n_avatars=40, n_components=4, cache_dir=tmp_path, log=logs.append)
    m2, p2 = quick_model(rig, n_avatars=40, n_components=4, cache_dir=tmp_path, log=logs.append)
    assert p1 == p2 and p1.exists() and len(logs) == 1  # fitted once, then read back
    np.testing.assert_array_equal(m1.components_, m2.components_)
    V = rig.vertices(rig.sample(40, seed=0))
    ref = L.fit_vertices(V, kind="pca", n_components=4, random_state=0)
    np.testing.assert_allclose(np.abs(m2.components_), np.abs(ref.components_), atol=1e-5)
    _, p3 = quick_model(rig, n_avatars=40, n_components=3, cache_dir=tmp_path, log=logs.append)
    assert p3 != p1
    p1.write_bytes(b"not a model")  # a damaged cache is refitted, not trusted
    m4, _ = quick_model(rig, n_avatars=40, n_components=4, cache_dir=tmp_path, log=logs.append)
    assert any("unusable" in line for line in logs)
    np.testing.assert_array_equal(m4.components_, m1.components_)


def test_model_for_another_mesh_is_refused(rig):
    m = L.fit_vertices(np.random.default_rng(0).normal(size=(10, 50, 3)), n_components=2)
    with pytest.raises(ValueError, match="50 vertices"):
        LatentView(m, rig.n_vertices)


# -- command line --------------------------------------------------------------------------------------
def build_parser():
    from avatar.cli.main import build_parser as avatar_parser

    return avatar_parser()


def test_cli_defaults_bind_localhost():
    args = build_parser().parse_args(["explore"])
    assert (args.host, args.port, args.model, args.preset_dir) == ("127.0.0.1", 8080, None, None)
    args = build_parser().parse_args(["explore", "--model", "m.npz", "--port", "9000", "--host", "0.0.0.0",
                                 "--preset-dir", "p", "--n-components", "8"])
    assert (args.host, args.port, args.model, args.preset_dir, args.n_components) == \
        ("0.0.0.0", 9000, "m.npz", "p", 8)


@pytest.mark.parametrize("argv, message", [
    (["--port", "0"], "--port"), (["--port", "70000"], "--port"), (["--host", "example.org"], "--host"),
    (["--n-components", "0"], "--n-components"), (["--texture-size", "10"], "--texture-size"),
    (["--model", "no/such/model.npz"], "no such model file"),
])
def test_cli_refuses_bad_options(argv, message):
    from avatar.cli.main import UsageError
    from avatar.cli.explore import check_args

    with pytest.raises(UsageError, match=message):
        check_args(build_parser().parse_args(["explore", *argv]))


def test_cli_bad_input_exits_2_without_a_traceback(tmp_path, capsys):
    from avatar.cli.main import main

    bad = tmp_path / "m.npz"
    bad.write_bytes(b"\x80\x04K\x01.")  # a pickle, not a model file
    assert main(["explore", "--port", "0"]) == 2
    assert main(["explore", "--model", str(bad), "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--port must be 1 to 65535" in err and str(bad) in err and "Traceback" not in err


# -- the page in a real browser -------------------------------------------------------------------------
def _skip(reason: str):
    """Skip, saying why where a plain ``pytest -q`` shows it (skip reasons alone need ``-rs``)."""
    warnings.warn(f"browser test skipped: {reason}")
    pytest.skip(reason)


def _skin_pixels(img: np.ndarray) -> int:
    """Pixels of the avatar's skin (reddish, not the grey grid, white ground or blue widgets)."""
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return int(np.sum((r > g) & (g > b) & (r - b > 25) & (r > 80)))


def _canvas(page) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.locator("canvas").first.screenshot())).convert("RGB"))


def _wait(cond, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        out = cond()
        if isinstance(out, (bool, np.bool_)):  # numpy's False is not `False`: test the truth, not the object
            if out:
                return out
        elif out is not None:
            return out
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _thumb(page, label: str):
    row = page.get_by_text(label, exact=True).first.locator("xpath=ancestor::*[.//*[@role='slider']][1]")
    return row.locator("[role=slider]").first


def test_page_in_headless_chromium(rig, basis, tmp_path):
    if not CHROMIUM.exists():
        _skip(f"{CHROMIUM} is missing (install.sh installs Debian's chromium; this machine has none)")
    try:
        from playwright.sync_api import Error as PlaywrightError, sync_playwright
    except ImportError:
        _skip("the playwright package is missing (pip install -e '.[test]')")
    from avatar.explorer import Explorer

    model, _ = quick_model(rig, n_avatars=60, n_components=4, cache_dir=tmp_path, log=lambda *a: None)
    state = ExplorerState(rig, LatentView(model, rig.n_vertices, "quick"), basis, texture_size=256)
    explorer = Explorer(state, port=0)  # the system picks a free port
    assert explorer.url.startswith("http://127.0.0.1:")
    port = int(explorer.url.rsplit(":", 1)[1])
    if Path("/proc/net/tcp").exists():  # listening on loopback only: 127.0.0.1 is 0100007F there
        listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                     if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port]
        assert listening == ["0100007F:%04X" % port]
    assert explorer.server.request_share_url() is None  # no public tunnel, whatever a client asks
    try:
        with sync_playwright() as pw:
            try:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            except PlaywrightError as err:
                _skip(f"chromium would not start: {str(err).splitlines()[0]}")
            page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
            page.goto(explorer.url)
            page.wait_for_selector("[role=slider]", timeout=20000)
            before = _wait(lambda: (lambda im: im if _skin_pixels(im) > 2000 else None)(_canvas(page)), 30,
                           "the textured avatar to appear")
            v0, z0, pushes = state.vertices.copy(), state.code_sd.copy(), explorer.pushes

            # a designer slider: weight 50 -> 100 by the keyboard on its thumb
            thumb = _thumb(page, "weight (%)")
            thumb.focus()
            thumb.press("End")
            j = rig.spec.index("body.weight")
            _wait(lambda: state.values[j] == 100.0 and explorer.pushes > pushes, 15, "the weight edit")
            assert np.abs(state.vertices - v0).max() > 0.005  # the server's mesh changed (> 5 mm somewhere)
            np.testing.assert_array_equal(state.vertices, rig.vertices(state.values))
            # and where it lands in the latent: the codes of the new avatar
            assert np.abs(state.code_sd - z0).max() > 0.01
            np.testing.assert_allclose(state.codes, L.encode_vertices(model, state.vertices[None])[0], rtol=1e-6)
            after = _wait(lambda: (lambda im: im if np.abs(im.astype(int) - before).sum(-1).astype(bool).sum()
                                   > 500 and _skin_pixels(im) > 2000 else None)(_canvas(page)), 30,
                          "the avatar on screen to change")
            from PIL import Image

            Image.fromarray(before).save(tmp_path / "before.png")
            Image.fromarray(after).save(tmp_path / "after.png")
            # the latent sliders on the page followed the designer edit
            z_page = float(_thumb(page, "z1 (%.1f%%)" % (100 * model.explained_variance_ratio_[0]))
                           .get_attribute("aria-valuenow"))
            assert z_page == pytest.approx(np.clip(state.code_sd[0], -3, 3), abs=0.051)

            # a latent slider: the avatar changes and the bars of implied designer changes appear
            v1 = state.vertices.copy()
            thumb = _thumb(page, "z1 (%.1f%%)" % (100 * model.explained_variance_ratio_[0]))
            thumb.focus()
            thumb.press("Home")
            _wait(lambda: state.mode == "latent" and state.code_sd[0] == pytest.approx(-3.0), 15, "the latent edit")
            assert np.abs(state.vertices - v1).max() > 0.005
            assert np.abs(state.implied).max() > 0
            page.wait_for_selector("text=designer slider(s) move by more than", timeout=15000)

            # the download button hands over the avatar on show as a GLB
            with page.expect_download(timeout=30000) as download:
                page.get_by_role("button", name="Download GLB").click()
            assert download.value.suggested_filename == "avatar.glb"
            data = Path(download.value.path()).read_bytes()
            assert data[:4] == b"glTF"
            import trimesh

            mesh = next(iter(trimesh.load(io.BytesIO(data), file_type="glb").geometry.values()))
            np.testing.assert_allclose(mesh.vertices, state.vertices[rig.template.export_index], atol=1e-6)
            browser.close()
    finally:
        explorer.stop()


def test_model_of_vertices_and_textures_drives_both(rig, basis):
    """A model fitted (as `avatar fit` does) on vertices and 32^2 textures: the latent side paints too."""
    S = rig.sample(30, seed=3)
    arrays = {"vertices": rig.vertices(S), "textures": rig.textures(S, 64)}
    ft = L.FeatureTransform([{"name": "vertices"}, {"name": "textures", "size": 32}]).fit_arrays(arrays)
    model = L.make_model("pca", 3, random_state=0).fit(ft.forward(arrays))
    model.features_ = ft
    s = ExplorerState(rig, LatentView(model, rig.n_vertices), basis, texture_size=64)
    assert s.latent.texture_size == 64
    z0 = s.codes.copy()
    change = s.set_slider("skin.tone", 95.0)  # a texture slider now moves the codes as well
    assert change == Change(geometry=False, texture=True, codes=True)
    assert not np.allclose(s.codes, z0)
    np.testing.assert_allclose(s.codes, L.encode(model, {"vertices": s.vertices[None],
                                                        "textures": rig.textures(s.values, 64)[None]})[0])
    change = s.set_code(0, 1.0)
    assert change.geometry and change.texture
    np.testing.assert_array_equal(s.texture, L.decode_textures(model, s.codes[None])[0])
    assert s.texture.shape == (32, 32, 3)
    change = s.set_slider("body.weight", 70.0)  # back to the designer: the rig's own texture again
    assert change.texture and s.texture.shape == (64, 64, 3)
