// make_refs.js: writes tests/data/runtime/centernet_tfjs_ref.json, the small
// reference that tests/unit/test_runtime_tfjs.c checks our runtime against.
// The reference runtime is tfjs 4.22 with its cpu backend (float32), run on
// the installed CenterNet with synthetic images this script makes (common.js
// synthImage, rebuilt bit for bit in C). Only small tensors are kept: global
// average pools of the taps, crops of feature maps and heads, detections.
// Usage: cd tools/tfjs_ref && npm install && node make_refs.js [model.json] [out.json]
'use strict';
const tf = require('@tensorflow/tfjs');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { defaultModelPath, fileHandler, synthImage } = require('./common');

const TAPS = {
  s8: 'tower_0/MobilenetV3/expanded_conv_5/add',
  s16: 'tower_0/MobilenetV3/expanded_conv_11/project/BatchNorm/FusedBatchNorm',
  s32pre: 'tower_0/MobilenetV3/expanded_conv_14/add',
  s32: 'tower_0/extern1/hard_swish/mul_1',
  neck4: 'tower_0/CenternetHead/mul',
  keypoints: 'tower_0/keypoints',
  wh: 'tower_0/wh',
  detections: 'tower_0/detections',
};

const round = (v) => Number(v.toPrecision(9));

function gap(t) {
  return tf.tidy(() => tf.mean(t, [1, 2]).reshape([-1]));
}

// crop [y0,y1) x [x0,x1) of a [1,H,W,C] map
function crop(t, y0, y1, x0, x1) {
  return tf.tidy(() => tf.slice(t, [0, y0, x0, 0], [1, y1 - y0, x1 - x0, -1]));
}

function entry(name, node, kind, t, extra) {
  return Object.assign({ name, node, kind, shape: t.shape, values: Array.from(t.dataSync(), round) },
    extra || {});
}

async function main() {
  const jsonPath = process.argv[2] || defaultModelPath('centernet');
  const out = process.argv[3] ||
    path.join(__dirname, '../../tests/data/runtime/centernet_tfjs_ref.json');
  await tf.setBackend('cpu');
  await tf.ready();
  const model = await tf.loadGraphModel(fileHandler(jsonPath));
  const input = model.inputs[0].name;
  const dir = path.dirname(jsonPath);
  const bin = JSON.parse(fs.readFileSync(jsonPath, 'utf8')).weightsManifest[0].paths[0];
  const sha = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, bin))).digest('hex');
  const ref = {
    generator: 'tools/tfjs_ref/make_refs.js',
    runtime: `tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}`,
    weights_sha256: sha,
    image: 'synthImage (tools/tfjs_ref/common.js), values 0..255 RGB',
    tolerance: 'abs(c - ref) <= 1e-3 * max(abs(ref)) + 1e-4; detections: score 1e-3, box 0.05 px',
    cases: [],
  };
  for (const size of [320, 512]) {
    const img = synthImage(size);
    const x = tf.tensor4d(img, [1, size, size, 3]);
    const names = ['s8', 's16', 's32pre', 's32'];
    if (size === 512) names.push('neck4', 'keypoints', 'wh', 'detections');
    const ys = model.execute({ [input]: x }, names.map((n) => TAPS[n]));
    const t = {};
    names.forEach((n, i) => { t[n] = ys[i]; });
    const c = { size, input_sum: img.reduce((a, v) => a + v, 0), tensors: [] };
    for (const n of ['s8', 's16', 's32pre', 's32'])
      c.tensors.push(entry(`${n}_gap`, TAPS[n], 'gap', gap(t[n])));
    const q = size / 32; // s32 map side
    c.tensors.push(entry('s32_crop', TAPS.s32, 'crop', crop(t.s32, q - 3, q, 0, 3),
      { crop: [q - 3, q, 0, 3] }));
    c.tensors.push(entry('s8_crop', TAPS.s8, 'crop', crop(t.s8, 3, 7, 5, 9), { crop: [3, 7, 5, 9] }));
    if (size === 512) {
      c.tensors.push(entry('neck4_gap', TAPS.neck4, 'gap', gap(t.neck4)));
      c.tensors.push(entry('wh_crop', TAPS.wh, 'crop', crop(t.wh, 60, 68, 76, 84),
        { crop: [60, 68, 76, 84] }));
      c.tensors.push(entry('keypoints_crop', TAPS.keypoints, 'crop',
        crop(t.keypoints, 44, 48, 76, 80), { crop: [44, 48, 76, 80] }));
      c.tensors.push(entry('detections', TAPS.detections, 'detections', t.detections));
    }
    ref.cases.push(c);
    tf.dispose(ys);
    x.dispose();
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(ref) + '\n');
  console.log(`wrote ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
