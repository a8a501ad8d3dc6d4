// The side panel: the rig's slider groups (labels and units as in the rig YAML), the latent
// components when the page has a model, a texture toggle and the preset download.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function format(v, step) {
  const digits = step >= 1 ? 0 : Math.min(3, Math.ceil(-Math.log10(step)));
  return v.toFixed(digits);
}

function sliderRow(s, value, onInput) {
  const out = el("output", { class: "value" }, format(value, s.step) + s.unit);
  const input = el("input", {
    type: "range", min: s.min, max: s.max, step: s.step, value: value,
    "aria-label": s.label, "data-slider": s.name, title: s.description || s.name,
  });
  input.value = value;
  input.addEventListener("input", () => {
    const v = Number(input.value);
    out.textContent = format(v, s.step) + s.unit;
    onInput(v);
  });
  input.addEventListener("dblclick", () => {
    input.value = s.default;
    input.dispatchEvent(new Event("input"));
  });
  const badge = s.exact ? "" : el("span", { class: "approx", title: s.note }, "≈");
  const row = el("div", { class: "row" }, el("label", { title: s.description || s.name }, s.label, badge), out, input);
  if (s.ends) row.append(el("div", { class: "ends" }, el("span", {}, s.ends[0]), el("span", {}, s.ends[1])));
  return row;
}

export function buildPanel(panel, config, api) {
  panel.append(el("h1", {}, config.name));
  if (config.description) panel.append(el("p", { class: "description" }, config.description));

  const tools = el("div", { class: "tools" });
  const tex = el("input", { type: "checkbox", id: "texture-toggle" });
  tex.checked = api.hasTexture;
  if (!api.hasTexture) tex.disabled = true;
  tex.addEventListener("change", () => api.setTextured(tex.checked));
  tools.append(el("label", { class: "toggle" }, tex, " Texture"));
  tools.append(el("button", { type: "button", onclick: () => api.download() }, "Download preset YAML"));
  tools.append(el("button", {
    type: "button", title: "The GLB with every morph target, its default weights set to the page's",
    onclick: () => api.downloadGlb(),
  }, "Download GLB"));
  const inputs = [];
  tools.append(el("button", {
    type: "button", onclick: () => {
      for (const i of inputs) { i.value = i.dataset.start; i.dispatchEvent(new Event("input")); }
    },
  }, "Reset"));
  panel.append(tools);
  const search = el("input", { type: "search", placeholder: "Filter sliders…", "aria-label": "Filter sliders" });
  panel.append(search);

  const sections = [];
  if (config.latent) {
    const L = config.latent;
    const body = el("div", { class: "rows" });
    L.targets.forEach((t, i) => {
      const evr = L.explained_variance_ratio ? ` (${(100 * L.explained_variance_ratio[i]).toFixed(1)}%)` : "";
      const s = { name: t, label: `z${i + 1}${evr}`, unit: " sd", min: -3, max: 3, step: 0.01, default: 0,
                  exact: true, description: `${L.model} component ${i}: ${L.unit}` };
      body.append(sliderRow(s, 0, (z) => api.setLatent(t, z)));
    });
    const d = el("details", { class: "group latent", "data-group": "latent" },
      el("summary", {}, `Latent: ${L.model} (${L.kind}, ${L.targets.length} components)`), body);
    panel.append(d);
    sections.push(d);
  }
  for (const g of config.groups) {
    const body = el("div", { class: "rows" });
    for (const s of g.sliders) body.append(sliderRow(s, s.value, (v) => api.setSlider(s.name, v)));
    const d = el("details", { class: "group", "data-group": g.name },
      el("summary", {}, `${g.label} (${g.sliders.length})`), body);
    panel.append(d);
    sections.push(d);
  }
  if (config.baked.length) {
    const body = el("div", { class: "rows baked" });
    for (const b of config.baked) body.append(el("div", { class: "row" }, el("label", {}, b.label), el("output", {}, b.text)));
    panel.append(el("details", { class: "group" }, el("summary", {}, `Baked into the base (${config.baked.length})`), body));
  }
  panel.append(el("p", { class: "note" },
    "Sliders marked ≈ are not exact as morphs in every combination (docs/morphs.md). Double-click a slider to reset it."));
  for (const i of panel.querySelectorAll("input[type=range]")) { i.dataset.start = i.value; inputs.push(i); }

  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    for (const d of sections) {
      let shown = 0;
      for (const row of d.querySelectorAll(".row")) {
        const hit = !q || row.textContent.toLowerCase().includes(q)
          || (row.querySelector("input")?.dataset.slider || "").includes(q);
        row.style.display = hit ? "" : "none";
        if (hit) shown++;
      }
      d.style.display = shown ? "" : "none";
      if (q && shown) d.open = true;
    }
  });
}
