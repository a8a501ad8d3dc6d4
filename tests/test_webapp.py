"""`avatar webapp`: the static character creator's folder, offline, and the page in a real browser."""
from __future__ import annotations

import io
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from avatar import gltf
from avatar.cli.main import main
from avatar.spec.sliders import preset_vector

ROOT = Path(__file__).resolve().parent.parent
PRESET = ROOT / "configs" / "avatars" / "heroine.yaml"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
BELLY = "stomach.pregnant"
FEET = ("feet.l_trans_up", "feet.r_trans_up")  # together, the floor is the lower foot's: the page applies it
# XML namespace names are identifiers that createElementNS needs, never fetched (three.js has one)
NAMESPACES = {"http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg"}


def _skip(reason: str):
    """Skip, saying why where a plain ``pytest -q`` shows it (skip reasons alone need ``-rs``)."""
    warnings.warn(f"browser test skipped: {reason}")
    pytest.skip(reason)


def _bundle_or_skip():
    from avatar.webapp import BUNDLE

    if not BUNDLE.is_file():
        _skip(f"{BUNDLE} is missing (install.sh builds it with npm and esbuild)")


@pytest.fixture(scope="module")
def site(rig, tmp_path_factory):
    """The creator for the heroine: the nose and stomach sliders, two sliders that lift one foot each,
    the weight macro's basis targets and a small PCA's components."""
    _bundle_or_skip()
    import avatar.latent as L

    folder = tmp_path_factory.mktemp("webapp")
    pca = L.fit_vertices(rig.vertices(rig.sample(30, seed=2), posed=False), kind="pca", n_components=3)
    L.save(pca, folder / "pca.npz", name="pca")
    out = folder / "site"
    assert main(["webapp", str(PRESET), "--morphs", f"nose,stomach,{','.join(FEET)},body.weight", "--model",
                 str(folder / "pca.npz"),
                 "--texture-size", "256", "-o", str(out)]) == 0
    return out


def test_the_folder_holds_the_page_the_glb_and_one_bundle_and_no_remote_url(rig, site):
    assert sorted(p.name for p in site.iterdir()) == ["avatar-data.js", "avatar.glb", "creator.js", "index.html"]
    html = (site / "index.html").read_text()
    assert re.findall(r'<script src="([^"]+)"', html) == ["avatar-data.js", "creator.js"]
    assert "<link" not in html and "@import" not in html
    for path in site.iterdir():
        text = path.read_bytes().decode("latin-1")
        urls = set(re.findall(r"(?:https?|wss?|ftp)://[^\s\"'`)<>]*", text)) - NAMESPACES
        assert not urls, (path.name, sorted(urls)[:5])
        assert not re.search(r"""(?:src|href)\s*=\s*["']//""", text), path.name  # protocol-relative
    glb = (site / "avatar.glb").read_bytes()
    names, weights, _ = gltf.morph_targets(glb)
    assert names[-3:] == ["pca.z0", "pca.z1", "pca.z2"] and not weights[-3:].any()
    assert gltf.unpack(glb)[0]["skins"]  # rigged and morphed
    # the data file carries the same GLB for file:// (no fetch) and the page's configuration
    import base64
    import json

    data = (site / "avatar-data.js").read_text()
    head, b64 = data.split(',\n"glb": "')
    assert base64.b64decode(b64.rstrip('"};\n')) == glb
    config = json.loads(head[len("window.AVATAR = {\"config\": "):])
    assert [g["name"] for g in config["groups"]] == ["body", "nose", "stomach", "feet"]
    assert config["sliders"]["body.weight"]["macro"] == "weight" and config["macro_targets"]
    belly = config["sliders"][BELLY]
    s = rig.sliders[rig.spec.index(BELLY)]
    assert (belly["label"], belly["unit"], belly["min"], belly["max"]) == (s.label, "%", s.min, s.max)
    assert config["latent"]["targets"] == ["pca.z0", "pca.z1", "pca.z2"]
    assert {b["name"] for b in config["baked"]} >= {"body.gender", "hair.style"}
    assert "body.weight" not in {b["name"] for b in config["baked"]}


def test_a_missing_bundle_is_one_clear_line(monkeypatch, tmp_path, capsys):
    import avatar.webapp

    monkeypatch.setattr(avatar.webapp, "BUNDLE", tmp_path / "nope" / "creator.js")
    assert main(["webapp", str(PRESET), "-o", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "install.sh" in err and "bundle" in err
    assert not (tmp_path / "site").exists()


def test_a_nonlinear_model_is_refused(rig, tmp_path, capsys):
    _bundle_or_skip()
    import avatar.latent as L

    ae = L.fit_vertices(rig.vertices(rig.sample(12, seed=1), posed=False), kind="autoencoder", n_components=2,
                        hidden=(8,), epochs=2)
    L.save(ae, tmp_path / "ae.npz", name="ae")
    assert main(["webapp", str(PRESET), "--model", str(tmp_path / "ae.npz"), "-o", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nonlinear" in err


def _canvas(page) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.locator("canvas").screenshot())).convert("RGB")).astype(int)


def _changed(a: np.ndarray, b: np.ndarray) -> int:
    return int((np.abs(a - b).sum(-1) > 24).sum())


def _settle(page, before_frames: int):
    page.wait_for_function(f"window.creator.frames() > {before_frames}", timeout=20000)
    time.sleep(0.2)


def test_page_in_headless_chromium(rig, site, tmp_path):
    if not CHROMIUM.exists():
        _skip(f"{CHROMIUM} is missing (install.sh installs Debian's chromium; this machine has none)")
    try:
        from playwright.sync_api import Error as PlaywrightError, sync_playwright
    except ImportError:
        _skip("the playwright package is missing (pip install -e '.[test]')")
    remote = []
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except PlaywrightError as err:
            _skip(f"chromium would not start: {str(err).splitlines()[0]}")
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760}, accept_downloads=True)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "blob:", "data:"))
                    else None)
            page.goto((site / "index.html").as_uri())  # file://: no server at all
            page.wait_for_selector("body[data-ready='1']", timeout=60000)
            _settle(page, 0)
            before = _canvas(page)
            skin = ((before[..., 0] > before[..., 2] + 25) & (before[..., 0] > 90)).sum()
            assert skin > 3000, "the textured avatar is not on screen"

            # a designer slider: its morph weight and the pixels follow
            s = rig.sliders[rig.spec.index(BELLY)]
            targets = page.evaluate(f"window.creator.config.sliders['{BELLY}'].targets")
            page.locator("details[data-group=stomach] summary").click()
            frames = page.evaluate("window.creator.frames()")
            page.locator(f"input[data-slider='{BELLY}']").fill(str(s.max))
            _settle(page, frames)
            assert page.evaluate(f"window.creator.weight('{targets[-1]}')") == pytest.approx(1.0)
            after = _canvas(page)
            assert _changed(before, after) > 300, "moving the belly slider did not change the picture"

            # a latent slider moves its component's weight and the body
            page.locator("details[data-group=latent] summary").click()
            frames = page.evaluate("window.creator.frames()")
            page.locator("input[data-slider='pca.z0']").fill("2.5")
            _settle(page, frames)
            assert page.evaluate("window.creator.weight('pca.z0')") == pytest.approx(2.5)
            latent = _canvas(page)
            assert _changed(after, latent) > 100
            page.locator("input[data-slider='pca.z0']").fill("0")

            # the weight macro (MakeHuman's rule, in the page) and both feet (the page's floor):
            # the vertices on the page are the rig's
            page.locator("details[data-group=body] summary").click()
            page.locator("details[data-group=feet] summary").click()
            page.locator("input[data-slider='body.weight']").fill("80")
            page.locator(f"input[data-slider='{FEET[0]}']").fill("60")
            page.locator(f"input[data-slider='{FEET[1]}']").fill("-30")
            body = np.flatnonzero(rig.template.export_index < 13380)[::7]
            on_page = np.array(page.evaluate(f"window.creator.positions({body.tolist()})"))
            r = preset_vector(rig.spec, PRESET)
            r[rig.spec.index(BELLY)], r[rig.spec.index("body.weight")] = s.max, 80.0
            r[rig.spec.index(FEET[0])], r[rig.spec.index(FEET[1])] = 60.0, -30.0
            want = rig.vertices(r, posed=False)[rig.template.export_index[body]]
            assert np.abs(on_page - want).max() < 0.05e-3
            for name, v in (("body.weight", 40), (FEET[0], 0), (FEET[1], 0)):  # back to the preset
                page.locator(f"input[data-slider='{name}']").fill(str(v))

            # the texture toggle
            frames = page.evaluate("window.creator.frames()")
            page.locator("#texture-toggle").uncheck()
            _settle(page, frames)
            assert _changed(_canvas(page), latent) > 300
            page.locator("#texture-toggle").check()

            # the preset download round-trips through avatar validate to the page's values
            nose = "nose.scale_horiz"
            page.locator("details[data-group=nose] summary").click()
            page.locator(f"input[data-slider='{nose}']").fill("-40")
            with page.expect_download(timeout=20000) as download:
                page.get_by_role("button", name="Download preset YAML").click()
            assert download.value.suggested_filename == "heroine.yaml"
            path = tmp_path / "downloaded.yaml"
            download.value.save_as(path)
            # and the GLB, with the page's weights as its default ones
            with page.expect_download(timeout=20000) as download:
                page.get_by_role("button", name="Download GLB").click()
            glb_path = tmp_path / "downloaded.glb"
            download.value.save_as(glb_path)
            assert not errors, errors
        finally:
            browser.close()
    assert not remote, remote
    assert main(["validate", str(path)]) == 0
    want = preset_vector(rig.spec, PRESET)
    want[rig.spec.index(BELLY)], want[rig.spec.index(nose)] = s.max, -40.0
    np.testing.assert_array_equal(preset_vector(rig.spec, path), want)
    glb = glb_path.read_bytes()
    tree, _ = gltf.unpack(glb)
    assert tree["extras"]["avatar"]["sliders"][nose] == -40
    got = gltf.morphed_positions(glb)[np.flatnonzero(rig.template.export_index < 13380)]
    assert np.abs(got - rig.vertices(want, posed=False)[rig.template.export_index[rig.template.export_index < 13380]]
                  ).max() < 0.05e-3
    validator = ROOT / ".tools" / "node_modules"
    if (validator / "gltf-validator").is_dir():
        import json
        import subprocess

        r = subprocess.run(["node", str(ROOT / "tests" / "gltf_validate.cjs"), str(validator), str(glb_path)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and json.loads(r.stdout)["errors"] == 0, r.stdout + r.stderr
