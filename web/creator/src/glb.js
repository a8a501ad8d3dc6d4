// The GLB with the page's weights as its default weights (mesh.weights), and the exported sliders'
// values in its record of the avatar (extras.avatar.sliders): what "Download GLB" saves. Only the JSON
// chunk changes; the binary chunk is copied as it is.
const JSON_CHUNK = 0x4e4f534a;

export function glbWithWeights(buffer, weights, sliderValues) {
  const view = new DataView(buffer);
  const jsonLength = view.getUint32(12, true);
  if (view.getUint32(0, true) !== 0x46546c67 || view.getUint32(16, true) !== JSON_CHUNK) {
    throw new Error("not a GLB");
  }
  const tree = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 20, jsonLength)));
  for (const mesh of tree.meshes || []) {
    if (mesh.weights && mesh.weights.length === weights.length) mesh.weights = Array.from(weights, Number);
  }
  const record = tree.extras && tree.extras.avatar && tree.extras.avatar.sliders;
  if (record) for (const [name, v] of Object.entries(sliderValues)) if (name in record) record[name] = v;
  let text = new TextEncoder().encode(JSON.stringify(tree));
  const padded = new Uint8Array(Math.ceil(text.length / 4) * 4).fill(0x20);
  padded.set(text);
  text = padded;
  const rest = new Uint8Array(buffer, 20 + jsonLength);  // the BIN chunk, header included
  const out = new Uint8Array(12 + 8 + text.length + rest.length);
  const o = new DataView(out.buffer);
  o.setUint32(0, 0x46546c67, true);
  o.setUint32(4, 2, true);
  o.setUint32(8, out.length, true);
  o.setUint32(12, text.length, true);
  o.setUint32(16, JSON_CHUNK, true);
  out.set(text, 20);
  out.set(rest, 20 + text.length);
  return out;
}
