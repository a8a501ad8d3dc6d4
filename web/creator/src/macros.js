// MakeHuman 1.1's macro rule, as avatar/body/macros.py: a macro value v in [0, 1] gives piecewise-linear
// factors, and a macro basis target (avatar make --morphs body...) weighs the product of its factors.
const AGE_YEARS = [[0, 1], [0.1875, 10], [0.5, 25], [1, 90]];

export function yearsToAge(years) {
  if (years <= AGE_YEARS[0][1]) return 0;
  for (let i = 1; i < AGE_YEARS.length; i++) {
    const [v0, y0] = AGE_YEARS[i - 1], [v1, y1] = AGE_YEARS[i];
    if (years <= y1) return v0 + (v1 - v0) * (years - y0) / (y1 - y0);
  }
  return 1;
}

const clip = (v) => Math.min(1, Math.max(0, v));

// the value of a macro slider (array units: years for age, 0..max otherwise) as MakeHuman's 0..1
export function macroValue(s, v) {
  return clip(s.macro === "age" ? yearsToAge(v) : v / s.max);
}

// {factor name: value} of the macro variables given as {variable: value in 0..1}
export function factorValues(m) {
  const f = {};
  if ("gender" in m) { f.female = 1 - m.gender; f.male = m.gender; }
  if ("age" in m) {
    const a = m.age, lo = a < 0.5, youngLo = Math.max(0, 3.2 * (a - 0.1875)), old = Math.max(0, 2 * a - 1);
    f.baby = lo ? Math.max(0, 1 - 5.333 * a) : 0;
    f.young = lo ? youngLo : 1 - old;
    f.child = lo ? Math.max(0, Math.min(1, 5.333 * a) - youngLo) : 0;
    f.old = lo ? 0 : old;
  }
  const three = { muscle: ["minmuscle", "averagemuscle", "maxmuscle"], weight: ["minweight", "averageweight", "maxweight"],
                  cupsize: ["mincup", "averagecup", "maxcup"], firmness: ["minfirmness", "averagefirmness", "maxfirmness"] };
  for (const [k, [lo, av, hi]] of Object.entries(three)) {
    if (!(k in m)) continue;
    const vmin = Math.max(0, 1 - 2 * m[k]), vmax = Math.max(0, 2 * m[k] - 1);
    f[lo] = vmin; f[av] = 1 - vmin - vmax; f[hi] = vmax;
  }
  const two = { height: ["minheight", "maxheight"], proportions: ["uncommonproportions", "idealproportions"] };
  for (const [k, [lo, hi]] of Object.entries(two)) {
    if (!(k in m)) continue;
    f[lo] = Math.max(0, 1 - 2 * m[k]); f[hi] = Math.max(0, 2 * m[k] - 1);
  }
  return f;
}

// {target name: weight} of the macro basis targets ({name: [factor, ...]}) for the sliders' values
export function macroWeights(targets, macroSliders, values) {
  const m = {};
  for (const s of macroSliders) m[s.macro] = macroValue(s, values[s.name]);
  const f = factorValues(m);
  const out = {};
  for (const [name, factors] of Object.entries(targets)) out[name] = factors.reduce((p, w) => p * f[w], 1);
  return out;
}
