/**
 * STDiT2 benchmark on the config of shared/facts.md: hidden 384, depth 6, 6 heads, patch 1x2x2,
 * 4 latent channels, caption_channels 512, 32 text tokens, input_sq_size 64, qk_norm, pred_sigma;
 * batch 2, latent 4x8x32x32 (8 frames of 256x256 px). Random weights.
 *
 *   npm run bench -w @opensora/stdit [-- --backend wasm|cpu] [--accel onnxruntime|none] [--reps N] [--no-train]
 */
import { describeBackend, enableFastKernels, formatBackend, initBackend, Rng, tf, type FastKernelsInfo } from '@opensora/core';
import { STDiT2 } from '../src/index.js';

const REF_FORWARD_S = 1.36;
const REF_STEP_S = 3.47;
const FWD_GFLOP = 142;
const STEP_GFLOP = 426;

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

async function main() {
  const backend = arg('backend', process.env.OPENSORA_BACKEND ?? 'auto');
  const accel = arg('accel', 'onnxruntime');
  const reps = Number(arg('reps', '3'));
  const doTrain = !process.argv.includes('--no-train');
  await initBackend(backend);
  let fast: FastKernelsInfo | null = null;
  if (accel !== 'none') fast = enableFastKernels({ engine: 'onnxruntime' });
  console.log(`backend: ${formatBackend(describeBackend())}`);
  console.log(`kernels: ${fast ? `${fast.enabled ? 'onnxruntime ' + fast.version : 'tfjs only'} (${fast.note})` : 'tfjs only (--accel none)'}`);

  const model = STDiT2.preset('STDiT2-bench', {}, { seed: 0 });
  // the reference init zeroes some projections; randomise them so every path does real work
  const rng = new Rng(1);
  for (const [, v] of model.namedParameters()) {
    const d = new Float32Array(v.size);
    rng.fillNormal(d, 0, 0.02);
    const t = tf.tensor(d, v.shape);
    v.assign(tf.tidy(() => tf.add(v, t)));
    t.dispose();
  }
  const n = model.countParameters();
  console.log(`model: STDiT2-bench, ${(n.trainable / 1e6).toFixed(1)}M trainable parameters`);
  const B = 2;
  const [T, H, W] = [8, 32, 32];
  const L = 32;
  const x = tf.randomNormal([B, 4, T, H, W], 0, 1, 'float32', 1);
  const y = tf.randomNormal([B, 1, L, 512], 0, 1, 'float32', 2);
  const inputs = {
    x,
    timestep: tf.tensor1d([100, 700]),
    y,
    mask: tf.tensor2d(Array.from({ length: B * L }, (_, i) => (i % L < (i < L ? 20 : 32) ? 1 : 0)), [B, L], 'int32'),
    numFrames: tf.fill([B], T),
    height: tf.fill([B], 256),
    width: tf.fill([B], 256),
    ar: tf.fill([B], 1),
    fps: tf.fill([B], 24),
  };
  const target = tf.randomNormal([B, 8, T, H, W], 0, 1, 'float32', 3);

  const time = (label: string, fn: () => void): number => {
    fn(); // warm-up
    const ts: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      fn();
      ts.push(performance.now() - t0);
    }
    ts.sort((a, b) => a - b);
    const med = ts[Math.floor(ts.length / 2)]!;
    console.log(`  ${label}: runs ${ts.map((t) => t.toFixed(0)).join(', ')} ms`);
    return med;
  };

  const fwd = time('forward', () => {
    const o = model.forward(inputs);
    o.dataSync();
    o.dispose();
  });
  const params = [...model.parameters().values()];
  let step = NaN;
  let stepCk = NaN;
  if (doTrain) {
    const trainStep = (ckpt: boolean) => () => {
      const { value, grads } = tf.variableGrads(
        () => tf.tidy(() => tf.mean(tf.square(tf.sub(model.forward(inputs, { gradientCheckpointing: ckpt }), target))) as tf.Scalar),
        params,
      );
      value.dataSync();
      Object.values(grads)[0]!.dataSync();
      value.dispose();
      tf.dispose(Object.values(grads));
    };
    step = time('training step', trainStep(false));
    if (process.argv.includes('--checkpoint')) stepCk = time('training step (checkpointed)', trainStep(true));
  }
  const line = (label: string, ms: number, gflop: number, refS: number) =>
    console.log(
      `${label.padEnd(28)} ${ms.toFixed(0).padStart(7)} ms  ${(gflop / (ms / 1000)).toFixed(1).padStart(6)} GFLOP/s   reference ${(refS * 1000).toFixed(0)} ms (${(gflop / refS).toFixed(0)} GFLOP/s)   ratio ${(ms / 1000 / refS).toFixed(2)}x`,
    );
  console.log('\nSTDiT2 benchmark config (hidden 384, depth 6, 6 heads, B=2, latent 4x8x32x32, 32 tokens):');
  line('forward (no grad)', fwd, FWD_GFLOP, REF_FORWARD_S);
  if (doTrain) line('training step (fwd+MSE+bwd)', step, STEP_GFLOP, REF_STEP_S);
  if (!Number.isNaN(stepCk)) line('training step, checkpointed', stepCk, STEP_GFLOP, REF_STEP_S);
  console.log('ratio = our time / reference time (PyTorch 1.13 CPU, 2 threads; facts.md). Lower is better.');
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
