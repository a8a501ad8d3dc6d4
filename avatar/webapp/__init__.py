"""``avatar webapp``: a static character creator in one folder (docs/morphs.md).

The folder holds ``index.html``, ``avatar.glb`` (the rigged avatar with its sliders, and a linear
latent model's components, as morph targets), ``avatar-data.js`` (the same GLB in base64 and the
page's configuration, so the page reads it from file:// without any request) and ``creator.js``:
three.js (GLTFLoader, OrbitControls) and our module (web/creator/src), bundled by esbuild when
install.sh runs. Nothing in it refers to a remote URL; no Python runs behind it.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

BUNDLE = Path(__file__).resolve().parent / "dist" / "creator.js"
FILES = ("index.html", "avatar.glb", "avatar-data.js", "creator.js")


class WebappError(ValueError):
    pass


def bundle_path() -> Path:
    """The built bundle; WebappError (one line saying how to build it) when it is missing."""
    if not BUNDLE.is_file():
        raise WebappError(f"the web creator's bundle {BUNDLE} is missing: run install.sh (it needs npm; it runs "
                          "npm ci and esbuild in web/creator)")
    return BUNDLE


def slider_step(s) -> float:
    """The page's step for a slider: 1 for whole numbers, else about a thousandth of its range."""
    if s.kind == "integer":
        return 1.0
    return float(10.0 ** np.floor(np.log10(max(s.max - s.min, 1e-9) / 1000.0)))


def page_config(rig, values, morphs, name: str, description: str = "") -> dict:
    """What the page needs: groups of exported sliders (labels, units, ranges, targets), the avatar's
    readable values (for the YAML download), the baked sliders and the latent model, if any."""
    from avatar.export import readable_values
    from avatar.spec.sliders import unit_suffix

    x = np.asarray(rig.values(values), np.float64)
    by_name = {m.name: m for m in morphs.sliders}
    macros = morphs.extras.get("macros") or {}
    sliders, groups = {}, []
    for g, label in rig.spec.groups.items():
        rows = []
        labels = [s.label for s in rig.sliders if s.group == g and s.name in by_name]
        for j, s in enumerate(rig.sliders):
            if s.group == g and s.name in macros.get("sliders", {}):
                row = {"name": s.name, "label": s.label, "unit": unit_suffix(s.unit), "min": s.min, "max": s.max,
                       "default": s.default, "value": float(x[j]), "step": slider_step(s), "macro": s.macro,
                       "targets": [], "exact": True, "note": "", "description": s.description, "ends": None}
                rows.append(row)
                sliders[s.name] = row
            if s.group != g or s.name not in by_name:
                continue
            ends = _ends(s.makehuman)
            shown = s.label
            if labels.count(s.label) > 1:  # "Left ear move" twice: say which way each moves
                shown += f" ({ends[0]}–{ends[1]})" if ends else f" ({s.name.split('.', 1)[1].replace('_', ' ')})"
            m = by_name[s.name]
            note = ("moves one foot, so the floor: exact alone, approximate with the other foot's sliders"
                    if m.one_foot else f"up to {m.linear_error_mm:.3f} mm from linear")
            row = {"name": s.name, "label": shown, "unit": unit_suffix(s.unit), "ends": ends, "min": s.min, "max": s.max,
                   "default": s.default, "value": float(x[j]), "step": slider_step(s), "targets": list(m.targets),
                   "exact": m.exact, "note": "" if m.exact else note, "description": s.description}
            rows.append(row)
            sliders[s.name] = row
        if rows:
            groups.append({"name": g, "label": label, "sliders": rows})
    readable = readable_values(rig, x)
    preset = {s.name: {"value": readable[s.name], "is_default": bool(x[j] == s.default)}
              for j, s in enumerate(rig.sliders)}
    baked = [{"name": s.name, "label": f"{rig.spec.groups.get(s.group, s.group)}: {s.label}",
              "text": f"{_text(readable[s.name])}{unit_suffix(s.unit) if s.kind in ('continuous', 'integer') else ''}"}
             for j, s in enumerate(rig.sliders) if s.name not in sliders and x[j] != s.default]
    latent = morphs.extras.get("latent")
    t = rig.template
    feet = t.part_mask("foot_l", "foot_r")[t.export_index]
    return {"name": name, "description": description, "groups": groups, "sliders": sliders, "preset": preset,
            "baked": baked, "latent": latent, "macro_targets": macros.get("targets", {}),
            "soles": np.flatnonzero(feet).tolist()}


def _ends(makehuman: str | None):
    """MakeHuman's words for a modifier's two ends (``ears/l-ear-trans-down|up`` -> down, up), or None."""
    if not makehuman or "|" not in makehuman:
        return None
    left, right = makehuman.rsplit("|", 1)
    ends = [left.rsplit("-", 1)[-1], right]
    return None if ends == ["decr", "incr"] else ends  # MakeHuman's plain words say nothing


def _text(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def build_site(rig, values, morphs, out: str | Path, name: str, description: str = "",
               texture_size: int = 1024) -> list[Path]:
    """Write the creator's folder for one avatar and its morph targets; returns the files written."""
    from avatar.export import write_atomic, readable_values, rig_skin, write_mesh

    bundle = bundle_path()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x = np.asarray(rig.values(values), np.float64)
    _, skin = rig_skin(rig, x)
    texture = rig.textures(x, texture_size) if texture_size else None
    glb_path = out / "avatar.glb"
    write_mesh(glb_path, morphs.base, rig.template, readable_values(rig, x), texture, spec=rig.spec, skin=skin,
               morphs=morphs)
    glb = glb_path.read_bytes()
    config = page_config(rig, x, morphs, name, description)
    data = ("window.AVATAR = {\"config\": " + json.dumps(config, separators=(",", ":"))
            + ",\n\"glb\": \"" + base64.b64encode(glb).decode("ascii") + "\"};\n")
    write_atomic(out / "avatar-data.js", data.encode("utf-8"))
    write_atomic(out / "creator.js", bundle.read_bytes())
    write_atomic(out / "index.html", index_html(name).encode("utf-8"))
    return [out / f for f in FILES]


def index_html(name: str) -> str:
    title = html.escape(f"{name}: avatar creator")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  html, body {{ margin: 0; height: 100%; font: 13px/1.35 system-ui, sans-serif; color: #222; background: #eceae6; }}
  #app {{ display: flex; height: 100%; }}
  #panel {{ width: 340px; overflow-y: auto; padding: 10px 12px; box-sizing: border-box; background: #faf9f7;
           border-right: 1px solid #d8d4cc; }}
  #view {{ flex: 1; position: relative; min-width: 0; }}
  #view canvas {{ width: 100%; height: 100%; display: block; }}
  #status {{ position: absolute; top: 45%; width: 100%; text-align: center; color: #666; }}
  h1 {{ font-size: 17px; margin: 2px 0 4px; }}
  .description {{ margin: 0 0 8px; color: #555; }}
  .tools {{ display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin-bottom: 8px; }}
  .tools button {{ font: inherit; padding: 3px 8px; }}
  input[type=search] {{ width: 100%; box-sizing: border-box; margin-bottom: 6px; font: inherit; padding: 3px 6px; }}
  details.group {{ border-top: 1px solid #e2ded6; padding: 3px 0; }}
  summary {{ cursor: pointer; font-weight: 600; padding: 2px 0; }}
  .row {{ display: grid; grid-template-columns: 1fr auto; column-gap: 6px; padding: 2px 0; }}
  .row input[type=range] {{ grid-column: 1 / 3; width: 100%; margin: 0; }}
  .row label {{ overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }}
  .ends {{ grid-column: 1 / 3; display: flex; justify-content: space-between; font-size: 11px; color: #999;
           margin-top: -2px; }}
  .value {{ font-variant-numeric: tabular-nums; color: #555; }}
  .approx {{ color: #a05a00; margin-left: 4px; cursor: help; }}
  .note {{ color: #777; font-size: 12px; }}
</style>
</head>
<body>
<div id="app">
  <aside id="panel"></aside>
  <main id="view"><div id="status">Loading the avatar…</div></main>
</div>
<script src="avatar-data.js"></script>
<script src="creator.js"></script>
</body>
</html>
"""
