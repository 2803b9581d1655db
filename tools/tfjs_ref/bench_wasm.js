// bench_wasm.js: the peer runtime for bench/backbone: tfjs 4.22 with the
// wasm backend (XNNPACK, SIMD; one thread, as wasm threads do not work under
// node) on the same CenterNet weights, and on EfficientNet-Lite0 (our
// converted graph) when installed. Prints one json line per case:
// {"case":..., "size":..., "batch":..., "ms_per_image": best of reps, ...}.
// Usage: node bench_wasm.js [model.json] [reps]
'use strict';
const tf = require('@tensorflow/tfjs');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const fs = require('fs');
const path = require('path');
const { defaultModelPath, fileHandler } = require('./common');

const EMB = 'tower_0/extern1/hard_swish/mul_1';
const HEADS = ['tower_0/keypoints', 'tower_0/wh'];

async function main() {
  const jsonPath = process.argv[2] || defaultModelPath('centernet');
  const reps = parseInt(process.argv[3] || '5', 10);
  wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/'));
  wasm.setThreadsCount(1);
  await tf.setBackend('wasm');
  await tf.ready();
  const model = await tf.loadGraphModel(fileHandler(jsonPath));
  const cases = [
    ['centernet', model, 'backbone', 320, EMB], ['centernet', model, 'backbone', 512, EMB],
    ['centernet', model, 'detector', 512, HEADS],
  ];
  const effPath = defaultModelPath('efficientnet-lite0');
  const effMeta = path.join(path.dirname(effPath), 'backbone.json');
  if (fs.existsSync(effPath) && fs.existsSync(effMeta)) {
    const emb = JSON.parse(fs.readFileSync(effMeta, 'utf8')).embedding;
    const eff = await tf.loadGraphModel(fileHandler(effPath));
    cases.push(['efficientnet-lite0', eff, 'backbone', 224, emb]);
  }
  for (const batch of [1, 8]) {
    for (const [modelName, m, name, size, outs] of cases) {
      const input = m.inputs[0].name;
      const x = tf.randomUniform([batch, size, size, 3], 0, 255, 'float32', 7);
      const run = () => {
        const y = m.execute({ [input]: x }, outs);
        const ys = Array.isArray(y) ? y : [y];
        ys.forEach((t) => t.dataSync());
        tf.dispose(ys);
      };
      run(); // warm-up
      const n = reps;
      const times = [];
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < n; i++) {
        const t0 = process.hrtime.bigint();
        run();
        times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 1e3 / n / batch;
      times.sort((a, b) => a - b);
      // best of n, as bench_backbone: the machine may be shared
      const ms = times[0] / batch;
      const median = times[Math.floor(times.length / 2)] / batch;
      console.log(JSON.stringify({ model: modelName, case: name, size, batch, threads: 1, ms_per_image: ms,
        median_ms_per_image: median, cpu_ms_per_image: cpuMs }));
      x.dispose();
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
