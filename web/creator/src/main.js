// The static character creator that `avatar webapp` writes (docs/morphs.md).
//
// The avatar is one GLB whose morph targets are the rig's sliders (and a latent model's components);
// moving a slider sets its targets' weights by the rig's rule (see weights.js). The GLB and the page's
// configuration arrive in avatar-data.js as `window.AVATAR = {config, glb}` (base64), so the page works
// from file:// with no request at all, and offline: three.js is bundled into creator.js.
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { buildPanel } from "./panel.js";
import { presetYaml } from "./preset.js";
import { sliderWeights } from "./weights.js";
import { macroWeights } from "./macros.js";
import { glbWithWeights } from "./glb.js";

const SKIN = new THREE.Color().setRGB(0.80, 0.64, 0.54, THREE.SRGBColorSpace);  // export.SKIN_RGBA, an sRGB colour

function decodeBase64(text) {
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes.buffer;
}

function setup(config, gltf, glbBuffer) {
  const view = document.getElementById("view");
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  view.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0xeceae6);
  scene.add(new THREE.HemisphereLight(0xffffff, 0x8a8070, 1.6));
  const key = new THREE.DirectionalLight(0xffffff, 1.8);
  key.position.set(1.5, 3.0, 2.5);
  scene.add(key);
  const rim = new THREE.DirectionalLight(0xffffff, 0.6);
  rim.position.set(-2.0, 1.5, -2.0);
  scene.add(rim);
  const grid = new THREE.GridHelper(4, 16, 0xb0aaa0, 0xd0ccc4);
  scene.add(grid);
  scene.add(gltf.scene);

  let mesh = null;
  gltf.scene.traverse((o) => { if (o.isMesh && o.morphTargetDictionary && !mesh) mesh = o; });
  if (!mesh) gltf.scene.traverse((o) => { if (o.isMesh && !mesh) mesh = o; });
  const material = mesh.material;
  const texture = material.map;

  const box = new THREE.Box3().setFromBufferAttribute(mesh.geometry.attributes.position);
  const height = box.max.y - box.min.y;
  const camera = new THREE.PerspectiveCamera(30, 1, 0.01, 100);
  const target = new THREE.Vector3(0, box.min.y + 0.55 * height, 0);
  camera.position.set(0, target.y, 2.0 * height + 0.3);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.target.copy(target);
  controls.update();

  let dirty = true;
  const render = () => { dirty = true; };
  controls.addEventListener("change", render);
  function resize() {
    const w = view.clientWidth, h = view.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
    render();
  }
  window.addEventListener("resize", resize);
  resize();
  let frames = 0;
  (function loop() {
    requestAnimationFrame(loop);
    if (dirty) {
      dirty = false;
      renderer.render(scene, camera);
      frames++;
    }
  })();

  const dict = mesh.morphTargetDictionary || {};
  const influences = mesh.morphTargetInfluences || [];
  const values = {};  // slider name -> value (array units), for the exported sliders
  const latent = {};  // latent target name -> sd
  for (const g of config.groups) for (const s of g.sliders) values[s.name] = s.value;

  // the floor: the rig stands every avatar on its soles (y = 0), a minimum that morph targets cannot
  // carry; the page applies it, as the change of the soles' lowest point since the file's weights
  const base = mesh.geometry.attributes.position;
  const deltas = mesh.geometry.morphAttributes.position || [];
  const relative = mesh.geometry.morphTargetsRelative;
  function positions(indices) {
    const out = [];
    for (const v of indices) {
      const p = [base.getX(v), base.getY(v), base.getZ(v)];
      influences.forEach((w, t) => {
        if (!w) return;
        const d = deltas[t];
        const q = [d.getX(v), d.getY(v), d.getZ(v)];
        for (let k = 0; k < 3; k++) p[k] += w * (relative ? q[k] : q[k] - p[k]);
      });
      out.push(p);
    }
    return out;
  }
  const lowest = () => Math.min(...positions(config.soles).map((p) => p[1]));
  const floor0 = config.soles.length ? lowest() : 0;
  const y0 = gltf.scene.position.y;
  function applyFloor() {
    if (config.soles.length) gltf.scene.position.y = y0 - (lowest() - floor0);
  }
  const macroSliders = config.groups.flatMap((g) => g.sliders).filter((s) => s.macro);
  function setSlider(name, v) {
    const s = config.sliders[name];
    values[name] = v;
    if (s.macro) {
      for (const [t, w] of Object.entries(macroWeights(config.macro_targets, macroSliders, values))) {
        influences[dict[t]] = w;
      }
    } else {
      const w = sliderWeights(s, v);
      s.targets.forEach((t, i) => { influences[dict[t]] = w[i]; });
    }
    applyFloor();
    render();
  }
  function setLatent(name, z) {
    latent[name] = z;
    influences[dict[name]] = z;
    applyFloor();
    render();
  }
  function setTextured(on) {
    material.map = on ? texture : null;
    material.color = on ? new THREE.Color(1, 1, 1) : SKIN.clone();
    material.needsUpdate = true;
    render();
  }
  function yaml() {
    return presetYaml(config, values, latent);
  }
  function save(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  }
  function download() {
    save(new Blob([yaml()], { type: "application/x-yaml" }), `${config.name}.yaml`);
  }
  function downloadGlb() {
    const readable = {};
    for (const [name, v] of Object.entries(values)) readable[name] = v;
    save(new Blob([glbWithWeights(glbBuffer, influences, readable)], { type: "model/gltf-binary" }),
         `${config.name}.glb`);
  }
  const api = {
    mesh, config, values, latent, setSlider, setLatent, setTextured, yaml, download, downloadGlb,
    weight: (t) => influences[dict[t]],
    // the avatar's vertices (export order) as on screen, for checks: morphs, then the floor offset
    positions: (indices) => positions(indices).map((p) => [p[0], p[1] + gltf.scene.position.y - y0, p[2]]),
    frames: () => frames,
    hasTexture: !!texture,
  };
  buildPanel(document.getElementById("panel"), config, api);
  window.creator = api;
  document.body.dataset.ready = "1";
}

function main() {
  const data = window.AVATAR;
  const status = document.getElementById("status");
  if (!data) {
    status.textContent = "avatar-data.js is missing: keep the folder that avatar webapp wrote together.";
    return;
  }
  const buffer = decodeBase64(data.glb);
  new GLTFLoader().parse(buffer.slice(0), "", (gltf) => {
    status.remove();
    setup(data.config, gltf, buffer);
  }, (err) => { status.textContent = `could not read the avatar: ${err && err.message ? err.message : err}`; });
}

main();
