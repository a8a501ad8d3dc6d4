// The current avatar as a preset YAML that `avatar make` and `avatar validate` read: every slider the
// avatar was made with that differs from its default (config.preset, readable values), with the
// exported sliders at their values on the page. Strings are JSON-quoted, which is valid YAML.
function number(v, step) {
  const digits = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)) + 1);
  return String(Number(v.toFixed(digits)));
}

function scalar(v) {
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return String(v);
  return JSON.stringify(String(v));
}

export function presetYaml(config, values, latent) {
  const lines = [`name: ${JSON.stringify(config.name)}`];
  if (config.description) lines.push(`description: ${JSON.stringify(config.description)}`);
  const moved = Object.entries(latent).filter(([, z]) => z !== 0);
  if (moved.length) {
    lines.push("# the latent sliders' offsets are not slider values and are not included:");
    lines.push(`# ${moved.map(([t, z]) => `${t} = ${z.toFixed(2)} sd`).join(", ")}`);
  }
  lines.push("sliders:");
  let any = false;
  for (const [name, p] of Object.entries(config.preset)) {
    let v = p.value;
    const s = config.sliders[name];
    if (s) {
      if (values[name] === s.default) continue;
      v = Number(number(values[name], s.step));
    } else if (p.is_default) {
      continue;
    }
    lines.push(`  ${name}: ${scalar(v)}`);
    any = true;
  }
  if (!any) lines[lines.length - 1] = "sliders: {}";
  return lines.join("\n") + "\n";
}
