// A slider's value -> its morph targets' weights, as avatar/morphs.py's SliderMorph.weights:
// above the default the `incr` side runs 0..1 up to max, below it the `decr` side 0..1 down to min;
// a one-target slider carries up - down (signed, -1..1, or 0..1 for a one-sided slider).
export function sliderWeights(s, v) {
  const up = Math.max(v - s.default, 0) / Math.max(s.max - s.default, 1e-12);
  const down = Math.max(s.default - v, 0) / Math.max(s.default - s.min, 1e-12);
  return s.targets.length === 2 ? [down, up] : [up - down];
}
