// common.js: shared by the reference and benchmark scripts: loads a tfjs
// graph model from a local folder (model.json + shards, no fetch), and makes
// the synthetic test image that tests/unit/test_runtime_tfjs.c rebuilds in C.
'use strict';
const fs = require('fs');
const path = require('path');

function defaultModelPath(name) {
  const base = process.env.XDG_DATA_HOME || path.join(process.env.HOME || '/', '.local/share');
  return path.join(base, 'visionfs/backbones', name, 'model.json');
}

// An IOHandler reading model.json and its shards from disk. The declared
// input shape is relaxed to [-1,-1,-1,C] (tfjs otherwise rejects other
// batch sizes and resolutions; the weights are unchanged).
function fileHandler(jsonPath) {
  return {
    load: async () => {
      const j = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
      const relax = (shape) => {
        if (shape && Array.isArray(shape.dim))
          shape.dim.forEach((d, i) => { if (i < shape.dim.length - 1) d.size = '-1'; });
      };
      for (const n of j.modelTopology.node)
        if (n.op === 'Placeholder' && n.attr && n.attr.shape) relax(n.attr.shape.shape);
      if (j.signature && j.signature.inputs)
        for (const k of Object.keys(j.signature.inputs)) relax(j.signature.inputs[k].tensorShape);
      const dir = path.dirname(jsonPath);
      const specs = [];
      const bufs = [];
      for (const g of j.weightsManifest) {
        for (const p of g.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
        specs.push(...g.weights);
      }
      const all = Buffer.concat(bufs);
      return {
        modelTopology: j.modelTopology,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
        format: j.format,
        generatedBy: j.generatedBy,
        convertedBy: j.convertedBy,
        signature: j.signature,
        userDefinedMetadata: j.userDefinedMetadata,
      };
    },
  };
}

// The synthetic image: integer arithmetic only, so C reproduces it exactly.
// A smooth background, a bright disc, a dark rectangle and a checkerboard
// patch, values 0..255 RGB, NHWC [1, s, s, 3] as a Float32Array.
function synthImage(s) {
  const out = new Float32Array(s * s * 3);
  const cx = Math.floor((s * 5) / 8), cy = Math.floor((s * 3) / 8), r = Math.floor(s / 6);
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < s; x++) {
      let R = Math.floor((x * 255) / (s - 1));
      let G = Math.floor((y * 255) / (s - 1));
      let B = Math.floor(((x + y) * 127) / (s - 1)) % 256;
      const dx = x - cx, dy = y - cy;
      if (dx * dx + dy * dy <= r * r) { R = 240; G = 200; B = 40; }
      if (x >= Math.floor(s / 8) && x < Math.floor(s / 3) && y >= Math.floor(s / 2) &&
          y < Math.floor((s * 7) / 8)) { R = 30; G = 40; B = 90; }
      if (x >= Math.floor((s * 3) / 5) && y >= Math.floor((s * 3) / 5) &&
          y < Math.floor((s * 9) / 10) && x < Math.floor((s * 9) / 10)) {
        const c = ((x >> 3) + (y >> 3)) & 1 ? 250 : 5;
        R = c; G = c; B = c;
      }
      const i = (y * s + x) * 3;
      out[i] = R; out[i + 1] = G; out[i + 2] = B;
    }
  }
  return out;
}

module.exports = { defaultModelPath, fileHandler, synthImage };
