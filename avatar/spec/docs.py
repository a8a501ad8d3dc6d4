"""Generated doc sections: the slider table and the deformer vocabulary.

``python -m avatar.spec.docs`` rewrites the parts of docs/sliders.md between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers; a test checks that
the committed page matches, so the docs cannot drift from the YAML.
"""
from __future__ import annotations

import re
from pathlib import Path

from avatar.spec.vocabulary import COMMON, VOCABULARY

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SLIDERS_PAGE = ROOT / "docs" / "sliders.md"  # holds the generated sections


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


def vocabulary_table() -> str:
    """Markdown table of the deformers a rig's effects may use."""
    out = ["| deformer | what it does | parameters |", "|---|---|---|"]
    for name, (what, params) in VOCABULARY.items():
        ps = [f"`{p}`{'' if req else ' (optional)'}: {desc}" for p, (_, req, desc) in params.items()]
        out.append(f"| `{name}` | {what} | {'<br>'.join(ps) or '(none)'} |")
    common = "; ".join(f"`{p}`: {desc}" for p, (_, _, desc) in COMMON.items())
    out.append(f"\nEvery effect may also set {common}.")
    return "\n".join(out)


def sections() -> dict[str, str]:
    from avatar.body.rig import DEFAULT_RIG
    from avatar.spec.sliders import load_rig_spec

    spec = load_rig_spec(DEFAULT_RIG)
    return {"sliders": slider_table(spec.sliders, markdown=True), "deformers": vocabulary_table()}


def render(text: str) -> str:
    """Page text with every generated section brought up to date."""
    for name, body in sections().items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{SLIDERS_PAGE.name} has no <!-- {name}:start/end --> markers")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


if __name__ == "__main__":
    SLIDERS_PAGE.write_text(render(SLIDERS_PAGE.read_text()))
    print(f"updated {SLIDERS_PAGE}")
