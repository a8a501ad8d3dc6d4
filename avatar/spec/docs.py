"""Generated doc sections: the slider table, the deformer vocabulary and the scene sliders.

``python -m avatar.spec.docs`` rewrites the parts of docs/sliders.md (every
slider of the body) and docs/images.md (the scene sliders: camera, lights,
background) between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers;
tests check that the committed pages match, so the docs cannot drift from the YAML.
"""
from __future__ import annotations

import re
from pathlib import Path

from avatar.spec.vocabulary import COMMON, VOCABULARY

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SLIDERS_PAGE = ROOT / "docs" / "sliders.md"  # holds the generated sections
IMAGES_PAGE = ROOT / "docs" / "images.md"    # the scene sliders' table


def slider_table(sliders, markdown: bool = False) -> str:
    """A text (or Markdown) table of slider specs: group, name, range, default, unit, description."""
    head = ("group", "name", "range", "default", "unit", "description")
    rows = [(s.group, s.name, _range(s), str(s.readable(s.default)), s.unit, s.description) for s in sliders]
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r[:1] + (f"`{r[1]}`",) + r[2:]) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head[:-1])]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    return "\n".join(fmt.format(*r) for r in [head, *rows])


def _range(s) -> str:
    if s.kind == "categorical":
        return " / ".join(s.categories)
    if s.kind == "bool":
        return "false / true"
    return f"{s.readable(s.min)} to {s.readable(s.max)}"


def scene_table(sliders) -> str:
    """Markdown table of scene sliders: name, role, range, default, unit, prior, description."""
    out = ["| slider | role | range | default | unit | prior (`prior` sampler, `sample(scene=True)`) | description |",
           "|---|---|---|---|---|---|---|"]
    for s in sliders:
        out.append(f"| `{s.name}` | `{s.scene}` | {_range(s)} | {s.readable(s.default)} | {s.unit} | "
                   f"{_prior(s)} | {s.description} |")
    return "\n".join(out)


def _prior(s) -> str:
    d = s.distribution
    if d["kind"] == "uniform":
        return f"uniform {s.readable(d['low'])} to {s.readable(d['high'])}"
    if d["kind"] == "normal":
        return f"normal, mean {d['mean']:g}, sd {d['std']:g}"
    if d["kind"] == "categorical":
        return "equal weights" if len(set(d["weights"].values())) == 1 else \
            ", ".join(f"{c} {w:g}" for c, w in d["weights"].items())
    return d["kind"]


def vocabulary_table() -> str:
    """Markdown table of the deformers a rig's effects may use."""
    out = ["| deformer | what it does | parameters |", "|---|---|---|"]
    for name, (what, params) in VOCABULARY.items():
        ps = [f"`{p}`{'' if req else ' (optional)'}: {desc}" for p, (_, req, desc) in params.items()]
        out.append(f"| `{name}` | {what} | {'<br>'.join(ps) or '(none)'} |")
    common = "; ".join(f"`{p}`: {desc}" for p, (_, _, desc) in COMMON.items())
    out.append(f"\nEvery effect may also set {common}.")
    return "\n".join(out)


def sections(page: Path = SLIDERS_PAGE) -> dict[str, str]:
    """{section name: generated text} of one page (docs/sliders.md or docs/images.md)."""
    from avatar.body.rig import DEFAULT_RIG
    from avatar.spec.sliders import load_rig_spec

    spec = load_rig_spec(DEFAULT_RIG)
    if page == IMAGES_PAGE:
        return {"scene": scene_table([spec.sliders[j] for j in spec.scene_sliders])}
    body = [s for s in spec.sliders if not s.scene]  # the scene sliders have their own page
    return {"sliders": slider_table(body, markdown=True), "deformers": vocabulary_table()}


def render(text: str, page: Path = SLIDERS_PAGE) -> str:
    """Page text with every generated section brought up to date."""
    for name, body in sections(page).items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{page.name} has no <!-- {name}:start/end --> markers")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


if __name__ == "__main__":
    for page in (SLIDERS_PAGE, IMAGES_PAGE):
        page.write_text(render(page.read_text(), page))
        print(f"updated {page}")
