"""The rig audit's page: figures, plain-language advice and the self-contained report.

    from avatar.compare.audit import audit_rig
    from avatar.compare.audit_page import write_audit
    write_audit(audit_rig(rig), "reports/rig-audit")   # report.html + audit.json + figures/*.png

:func:`audit_figures` and :func:`audit_report` are the pieces, usable on any
:class:`avatar.compare.audit.Audit`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from avatar.rendering.core import HEAD_PARTS

def write_audit(audit, out) -> list[Path]:
    """Write ``report.html``, ``audit.json`` and ``figures/*.png`` of ``audit`` into folder ``out``.

    Everything is computed in memory first, then each file is written atomically.
    """
    from ..export import atomic_write

    out = Path(out)
    pngs = audit_figures(audit)
    page = audit_report(audit, pngs).html().encode("utf-8")
    data = json.dumps(audit.to_json(), indent=1).encode("utf-8")
    written = []
    for name, png in pngs.items():
        p = out / "figures" / f"{name}.png"
        atomic_write(p, lambda f, png=png: f.write(png))
        written.append(p)
    atomic_write(out / "audit.json", lambda f: f.write(data))
    atomic_write(out / "report.html", lambda f: f.write(page))
    return written + [out / "audit.json", out / "report.html"]


# --------------------------------------------------------------------------
# the audit page
# --------------------------------------------------------------------------
def audit_figures(audit) -> dict[str, bytes]:
    """PNG bytes of every audit figure, by file name (without .png)."""
    from . import figures as F

    a = audit
    vis_g, vis_t = np.flatnonzero(a.visible_geometry), np.flatnonzero(a.visible_texture)
    names = np.array(a.names)
    groups = np.array(a.groups)
    pngs: dict[str, bytes] = {}
    if len(vis_g):
        pngs["geometry_magnitude"] = F.bar_chart(
            a.geometry_max_mm[vis_g], names[vis_g], groups=list(groups[vis_g]), log=True,
            title="Largest vertex movement over each slider's full range",
            xlabel="millimetres (log scale)", as_png=True)
        order = vis_g[np.lexsort((names[vis_g], groups[vis_g]))]
        pngs["geometry_cosine"] = F.heatmap(
            a.cosine["geometry"][np.ix_(order, order)], names[order], names[order], diverging=True, vmin=-1,
            vmax=1, title="Geometry: cosine similarity of the sliders' effects",
            colorbar_label="cosine (+1 same, 0 unrelated, -1 opposite)", as_png=True)
        zoom = [_zoom(a.moved_part_share[j], a.part_names) for j in vis_g]
        pngs["geometry_maps"] = F.effect_maps(
            a.vertex_points,
            a.vertex_mm[vis_g], names[vis_g], zoom=zoom, units="mm",
            title="Where each slider moves the mesh (front view; dark red = moves most; face sliders "
                  "zoomed on the head)", as_png=True)
    if len(vis_t):
        pngs["texture_magnitude"] = F.bar_chart(
            a.texture_max[vis_t], names[vis_t], groups=list(groups[vis_t]),
            title="Largest colour change over each slider's full range",
            xlabel="RGB distance (0-1 scale; 1.73 = black to white)", as_png=True)
        order = vis_t[np.lexsort((names[vis_t], groups[vis_t]))]
        pngs["texture_cosine"] = F.heatmap(
            a.cosine["texture"][np.ix_(order, order)], names[order], names[order], diverging=True, vmin=-1,
            vmax=1, title="Texture: cosine similarity of the sliders' effects",
            colorbar_label="cosine (+1 same, 0 unrelated, -1 opposite)", as_png=True)
        zoom = [_zoom(a.texture_part_share[j], a.part_names) for j in vis_t]
        pngs["texture_maps"] = F.effect_maps(
            a.vertex_points, a.vertex_texture[vis_t], names[vis_t], zoom=zoom, units="RGB",
            title="Where each slider changes the colours (front view; the texel under each vertex)", as_png=True)
    shown = np.flatnonzero(~a.invisible)
    if len(shown):
        merged, cols = _merged_shares(a, shown)
        pngs["regions"] = F.heatmap(merged.T, cols, names[shown], vmin=0, vmax=1, cmap="Blues",
                                    title="Share of each slider's effect per body part (shape change; colour "
                                          "change for texture sliders)", colorbar_label="share", as_png=True)
        pngs["nonlinearity"] = F.bar_chart(
            a.nonlinearity[shown], names[shown], groups=list(groups[shown]), xlim=(0, 1),
            title="Nonlinearity: how much a slider's effect changes from avatar to avatar",
            xlabel="0 = the same on every avatar, 1 = unrelated", threshold=0.5, as_png=True)
    spectra = {m: a.spectra[m] for m in ("geometry", "texture", "combined") if np.any(a.spectra[m] > 0)}
    if spectra:
        pngs["spectrum"] = F.spectrum(spectra, a.ranks, title="Singular values of the full-range effects",
                                      as_png=True)
        dirs = {m: a.spectra[f"{m}_directions"] for m in spectra if len(a.spectra[f"{m}_directions"])}
        pngs["spectrum_directions"] = F.spectrum(
            dirs, {m: a.ranks[f"{m}_directions"] for m in dirs},
            title="The same with every slider's effect at equal size (directions only)", as_png=True)
    return pngs


def _zoom(share, part_names) -> str:
    """"head" for an effect that stays (90 %) on the head and neck, else "body"."""
    on_head = sum(s for s, n in zip(share, part_names) if n in HEAD_PARTS or n == "neck")
    return "head" if on_head >= 0.9 else "body"


def _merged_shares(a, rows):
    """(len(rows), parts) shares with mirrored parts merged ("ear (L+R)"), and the column names."""
    cols, index = [], {}
    for name in a.part_names:
        key = f"{name[:-2]} (L+R)" if name.endswith(("_l", "_r")) else name
        if key not in index:
            index[key] = len(cols)
            cols.append(key)
    out = np.zeros((len(rows), len(cols)))
    for r, j in enumerate(rows):
        share = a.shape_part_share[j] if a.visible_geometry[j] else a.texture_part_share[j]
        for p, name in enumerate(a.part_names):
            key = f"{name[:-2]} (L+R)" if name.endswith(("_l", "_r")) else name
            out[r, index[key]] += share[p]
    return out, cols


def _advice(a) -> list:
    """Plain-language suggestions for a designer, most important first."""
    items = []
    for p in a.pairs():
        if p["verdict"] == "redundant":
            items.append((f"{p['a']} and {p['b']} are redundant in {p['modality']} (cosine {p['cosine']:+.2f}): "
                          f"they change the same {'vertices' if p['modality'] == 'geometry' else 'texels'} "
                          f"the same way{' (one undoes the other)' if p['cosine'] < 0 else ''}. Merge them, "
                          f"or make one of them act somewhere else.", "bad"))
    for j in np.flatnonzero(a.invisible):
        items.append((f"{a.names[j]} changes nothing visible (no vertex moves {a.settings['visible_mm']} mm, "
                      f"no texel changes 3 levels): remove it or give it an effect.", "bad"))
    ent = [p for p in a.pairs() if p["verdict"] == "entangled"]
    if ent:
        txt = "; ".join(f"{p['a']} ~ {p['b']} ({p['cosine']:+.2f})" for p in ent[:6])
        items.append((f"{len(ent)} entangled pairs overlap strongly (the largest: {txt}). That is expected "
                      f"for macro sliders; elsewhere a learned model will tend to mix them.", "warn"))
    small = [j for j in np.flatnonzero(a.visible_geometry & ~a.visible_texture) if a.geometry_max_mm[j] < 2.0]
    for j in small:
        items.append((f"{a.names[j]} moves no vertex more than {a.geometry_max_mm[j]:.1f} mm over its whole "
                      f"range: barely visible; make its effect larger or drop it.", "warn"))
    nl = [j for j in np.flatnonzero(~a.invisible) if a.nonlinearity[j] >= 0.5]
    if nl:
        items.append((f"{len(nl)} sliders act very differently from avatar to avatar (nonlinearity >= 0.5: "
                       f"{', '.join(a.names[j] for j in nl)}): their effect depends on other sliders "
                       f"(a tattoo's position only matters when a tattoo is drawn). They are hard to recover "
                       f"with linear models.", "warn"))
    spread = [j for j in np.flatnonzero(a.visible_geometry) if a.shape_part_share[j].max() < 0.25]
    if spread:
        items.append((f"{len(spread)} sliders change the shape in many places rather than one region "
                      f"(no part takes a quarter of the change): "
                      f"{', '.join(a.names[j] for j in spread)}.", "muted"))
    return items


def audit_report(audit, pngs: dict[str, bytes] | None = None):
    """The audit page as a :class:`avatar.compare.report.Report` (figures from :func:`audit_figures`)."""
    from .report import Report

    a = audit
    pngs = audit_figures(a) if pngs is None else pngs
    P = len(a.names)
    s = a.settings
    pairs = a.pairs()
    n_red = sum(p["verdict"] == "redundant" for p in pairs)
    rg, rt, rc = a.ranks["geometry_directions"], a.ranks["texture_directions"], a.ranks["combined_directions"]
    r = Report(f"Rig audit: {Path(str(s['rig'])).stem}",
               f"{P} sliders, effects averaged over {s['samples']} random avatars (seed {s['seed']}), "
               f"texture atlas {s['texture_size']} x {s['texture_size']}; computed in {a.seconds:.1f} s.",
               "This page looks at the character creator's sliders themselves, before any learning: what each "
               "slider changes, where on the body, which sliders do nearly the same thing, and how many "
               "independent ways of changing an avatar they add up to.")

    r.section("Summary", "The headline numbers of the audit; the sections below explain each one.")
    r.metric_cards([
        ("sliders", P, f"{int(a.visible_geometry.sum())} move the mesh, {int(a.visible_texture.sum())} "
                       f"paint the texture"),
        ("invisible", int(a.invisible.sum()), "sliders that change nothing", "bad" if a.invisible.any() else "good"),
        ("redundant pairs", n_red, f"|cosine| >= {s['redundant']}", "bad" if n_red else "good"),
        ("entangled pairs", len(pairs) - n_red, f"{s['entangled']} <= |cosine| < {s['redundant']}",
         "warn" if len(pairs) > n_red else "good"),
        ("independent directions", f"{rc['entropy']:.1f}", f"effective rank of {int((~a.invisible).sum())} "
                                                           f"visible sliders' effects"),
        ("dimensions for 95 %", a.ranks["combined"]["k95"], "of all movement, sizes counted"),
    ])
    r.subsection("What to change", "Suggestions for whoever designs the sliders, most important first.")
    advice = _advice(a)
    r.bullets(advice if advice else [("Nothing to flag: every slider is visible and no two overlap much.",
                                      "good")])

    r.section("What the words on this page mean",
              "A slider's effect is how the avatar changes when only that slider moves; the rest of this page "
              "compares those effects.")
    r.definitions([
        ("effect (of a slider)", "How far every vertex of the mesh moves, and how much every texel of the "
         "texture changes colour, when the slider goes from its minimum to its maximum with the other "
         "sliders unchanged. Measured around many random avatars and averaged."),
        ("full range", "From the slider's minimum to its maximum. For an on/off or a list slider (a colour "
         "choice) it is the switch between the two most different choices."),
        ("region", "The body part where the slider changes the shape most (for texture sliders: where "
         "it changes the colours most). Parts that only move along rigidly do not count: widening the "
         "shoulders moves the hands, but the region is the shoulders."),
        ("cosine similarity", "How alike two effects are, from +1 (the same change, maybe of another size) "
         "through 0 (unrelated: different places or directions) to -1 (exactly opposite)."),
        ("disentangled", "Each slider changes one thing that no other slider changes: their effects are "
         "unrelated (cosine near 0). This is what makes sliders easy to use and easy to learn back."),
        ("entangled", "Two sliders partly change the same thing (|cosine| 0.5 to 0.9), e.g. body weight and "
         "thigh girth both widen the thighs. Normal for 'macro' sliders; a learner will mix them."),
        ("redundant", "Two sliders change nearly the same thing (|cosine| above 0.9): from the avatar alone "
         "you could hardly tell which one was moved."),
        ("effective rank", "How many independent directions the sliders' effects really span. 83 sliders "
         "that were all unrelated would give 83; overlaps make it smaller."),
        ("nonlinearity", "0 when a slider does the same thing on every avatar; towards 1 when its effect "
         "depends on the other sliders (a tattoo position does nothing without a tattoo)."),
        ("invisible", f"No vertex moves {s['visible_mm']} mm and no texel changes by 3 colour levels (of 255) "
         "over the slider's whole range."),
    ])

    r.section("How strongly each slider changes the avatar",
              "Longer bars are sliders whose full range changes the avatar more; compare sliders of the same "
              "group.")
    _figure(r, pngs, "geometry_magnitude", "The largest distance any vertex moves when the slider goes "
                "from minimum to maximum (averaged over random avatars), on a log scale: height and posture "
                "move the head by tens of centimetres, face sliders move a few millimetres.")
    _figure(r, pngs, "texture_magnitude", "The largest colour change of any texel over the slider's full "
                "range (0-1 RGB scale; about 0.01 is one visible level).")

    r.section("Where each slider acts",
              "Each small picture is the body seen from the front, bright where the slider moves the mesh or "
              "changes the colour.")
    _figure(r, pngs, "geometry_maps", "How far each vertex moves over the slider's full range, each panel "
                "scaled to its own maximum (printed under it). A slider that should be local but lights up "
                "the whole body deserves a look.")
    _figure(r, pngs, "texture_maps", "How much each texel's colour changes over the slider's full range.")
    _figure(r, pngs, "regions", "Share of each slider's shape change that falls in each body part (left "
                "and right parts merged). A column with one dark cell is a local slider; a pale, spread-out "
                "column acts on the whole body.")

    r.section("Which sliders overlap",
              "Two sliders overlap (are entangled) when moving either one changes the same vertices or "
              "texels in the same way.")
    _figure(r, pngs, "geometry_cosine", "Cosine similarity between the mesh effects of every pair of "
                "sliders that move the mesh, grouped by slider group. Red: alike, blue: opposite, white: "
                "unrelated. The diagonal is each slider with itself.")
    _figure(r, pngs, "texture_cosine", "The same for the texture effects of the sliders that paint.")
    rows = [(p["a"], p["b"], p["modality"], p["cosine"],
             (p["verdict"], "bad" if p["verdict"] == "redundant" else "warn")) for p in pairs]
    if rows:
        r.table(rows, ["slider", "slider", "where", "cosine", "verdict"],
                caption=f"Every pair with |cosine| >= {s['entangled']}, most alike first.")
    else:
        r.paragraph("No pair of sliders overlaps by more than the entangled threshold.")

    r.section("How many dimensions the sliders really span",
              "If every slider changed something no other slider changes, the sliders would span as many "
              "dimensions as there are sliders; overlaps and tiny effects make the real number smaller.")
    cards = []
    for m, label in (("geometry", "mesh"), ("texture", "texture"), ("combined", "both")):
        d, e = a.ranks[f"{m}_directions"], a.ranks[m]
        n = int({"geometry": a.visible_geometry, "texture": a.visible_texture,
                 "combined": ~a.invisible}[m].sum())
        cards.append((f"{label}: directions", f"{d['entropy']:.1f}", f"effective rank of {n} sliders, "
                      f"sizes ignored"))
        cards.append((f"{label}: 90/95/99 %", f"{e['k90']}/{e['k95']}/{e['k99']}",
                      f"dimensions holding that share of all movement (entropy rank {e['entropy']:.1f})"))
    r.metric_cards(cards)
    r.paragraph(f"Two ways to count. 'Directions' gives every visible slider the same size, so it counts how "
                f"many independent kinds of change there are: {rg['entropy']:.1f} for the mesh out of "
                f"{int(a.visible_geometry.sum())} sliders, {rt['entropy']:.1f} for the texture out of "
                f"{int(a.visible_texture.sum())}. The energy counts weigh each slider by how much it moves "
                f"the avatar over its full range, so one large slider (body height moves the crown by "
                f"{a.geometry_max_mm.max() / 10:.0f} cm) can hold most of the movement; this is what a "
                f"variance-based learner such as PCA will see first.")
    _figure(r, pngs, "spectrum", "Left: singular values of the effect matrix (one row per slider, and per "
                "extra choice of a list slider), relative to the largest. Right: the share of all movement "
                "held by the first k dimensions, with the 90, 95 and 99 % marks.")
    _figure(r, pngs, "spectrum_directions", "The same with every slider's effect scaled to the same size: "
                "a flat curve means the sliders point in many different directions.")

    r.section("Sliders that act differently on different avatars",
              "A slider is nonlinear when what it does depends on the other sliders, which makes it harder "
              "for a model to learn.")
    _figure(r, pngs, "nonlinearity", "1 - |average effect| / average |effect| over the random avatars. Most "
                "shape sliders are near 0; sliders that only matter together with another one (tattoo "
                "settings, make-up colours) are high.")

    r.section("Every slider", "One row per slider with the numbers behind the pictures above.")
    rows = []
    for row in a.slider_rows():
        verdict = ("invisible", "bad") if row["invisible"] else ""
        rows.append((row["slider"], row["group"], row["modality"], row["region_text"],
                     round(row["geometry_max_mm"], 2), round(row["geometry_mean_mm"], 3),
                     round(100 * row["geometry_support"], 1), round(row["texture_max"], 3),
                     round(row["nonlinearity"], 2), verdict))
    r.table(rows, ["slider", "group", "changes", "region (where the shape / colour changes)", "max mm",
                   "mean mm", "% vertices > 1 mm", "max RGB", "nonlinearity", ""],
            caption="Full-range figures, averaged over the random avatars.")

    r.section("How this was measured",
              "The numbers come from moving one slider at a time a little, around many random avatars, and "
              "watching what changes.")
    r.bullets([
        f"{s['samples']} random avatars are drawn from the sliders' own distributions (seed {s['seed']}).",
        f"Around each, every continuous slider is moved {s['step']:.0%} of its range down and up (clipped to "
        "its range) and the change of every vertex and texel is divided by the step: a central finite "
        "difference. Multiplied by the slider's range it gives the full-range effect.",
        "On/off and list sliders are evaluated at every choice; their full-range effect is the change between "
        "the two most different choices, and all their choices enter the dimension count.",
        f"Geometry is measured on all {s['n_vertices']:,} vertices in millimetres; texture on the "
        f"{s['n_texels']:,} texels of a {s['texture_size']} x {s['texture_size']} atlas as the RGB distance "
        "(0-1 scale).",
        "Cosine similarity uses the effects averaged over the avatars, flattened into one long vector per "
        "slider. 'Both' scales the mesh and texture halves to the same total size before joining them.",
        "The region uses the change of each vertex's edges (how much the surface stretches or bends "
        "there), not the movement itself, so rigidly carried parts do not count.",
        "Effective rank: exp of the entropy of the normalised singular values (Roy and Vetterli, 2007); it "
        "equals k for k equal, unrelated effects.",
    ])
    return r


def _figure(r, pngs: dict, key: str, caption: str) -> None:
    """Add figure ``key`` with its caption when the audit drew it (texture figures need texture sliders)."""
    if key in pngs:
        r.figure(pngs[key], caption)
