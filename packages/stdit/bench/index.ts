/**
 * STDiT2 benchmark on the config of shared/facts.md: hidden 384, depth 6, 6 heads, patch 1x2x2,
 * 4 latent channels, caption_channels 512, 32 text tokens, input_sq_size 64, qk_norm, pred_sigma;
 * batch 2, latent 4x8x32x32 (8 frames of 256x256 px). Random weights.
 *
 *   npm run bench -w @opensora/stdit [-- --backend wasm|cpu] [--accel onnxruntime|none] [--reps N]
 *                                      [--checkpoint auto|on|off] [--no-train] [--memory]
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

/** One Gemm of the size facts.md quotes, through whatever serves tfjs's matMul now: a load gauge. */
function gemmGauge(): number {
  const a = tf.randomNormal([4096, 256]);
  const b = tf.randomNormal([256, 1024]);
  tf.matMul(a, b).dispose();
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    c.dataSync();
    best = Math.min(best, performance.now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  return (2 * 4096 * 256 * 1024) / (best / 1000) / 1e9;
}

async function main() {
  const accel = arg('accel', 'onnxruntime');
  const reps = Number(arg('reps', '3'));
  const doTrain = !process.argv.includes('--no-train');
  // the cpu backend keeps tensors in JS typed arrays (zero-copy for onnxruntime, no 4 GiB heap
  // limit); without onnxruntime, wasm is the faster backend
  await initBackend('wasm'); // loads the wasm kernels so that both backends get patched
  let fast: FastKernelsInfo | null = null;
  if (accel !== 'none') fast = enableFastKernels({ engine: 'onnxruntime' });
  const backend = arg('backend', process.env.OPENSORA_BACKEND ?? (fast?.enabled ? 'cpu' : 'wasm'));
  await initBackend(backend);
  const ckptArg = arg('checkpoint', 'auto');
  // tfjs keeps every gradient until the backward pass ends: the plain step needs ~8 GiB here,
  // more than the wasm heap (4 GiB), so wasm trains with checkpointing
  const checkpoint = ckptArg === 'on' || (ckptArg === 'auto' && backend === 'wasm');
  console.log(`backend: ${formatBackend(describeBackend())}`);
  console.log(`kernels: ${fast?.enabled ? `onnxruntime-node ${fast.version}, ${fast.threads} threads (${fast.note})` : `tfjs only (${fast ? fast.note : '--accel none'})`}`);
  console.log(`gemm gauge: [4096,256]x[256,1024] at ${gemmGauge().toFixed(0)} GFLOP/s now (facts.md: onnxruntime 130-170, tfjs-wasm 33; lower means a busy machine)`);

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

  const cpuNote: string[] = [];
  const time = (label: string, fn: () => void): number => {
    fn(); // warm-up
    const ts: number[] = [];
    const cs: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      fn();
      const c = process.cpuUsage(c0);
      ts.push(performance.now() - t0);
      cs.push((c.user + c.system) / 1000);
    }
    const order = ts.map((_, i) => i).sort((a, b) => ts[a]! - ts[b]!);
    const mid = order[Math.floor(order.length / 2)]!;
    console.log(`  ${label}: runs ${ts.map((t) => t.toFixed(0)).join(', ')} ms wall; ${cs.map((t) => t.toFixed(0)).join(', ')} ms CPU (all threads)`);
    cpuNote.push(`${label}: ${(cs[mid]! / 1000).toFixed(2)} CPU-seconds, i.e. >= ${(cs[mid]! / 2000).toFixed(2)} s on 2 idle cores`);
    return ts[mid]!;
  };

  const fwd = time('forward', () => {
    const o = model.forward(inputs);
    o.dataSync();
    o.dispose();
  });
  const params = [...model.parameters().values()];
  let step = NaN;
  let peak = NaN;
  if (doTrain) {
    const trainStep = () => {
      const { value, grads } = tf.variableGrads(
        () => tf.tidy(() => tf.mean(tf.square(tf.sub(model.forward(inputs, { gradientCheckpointing: checkpoint }), target))) as tf.Scalar),
        params,
      );
      value.dataSync();
      Object.values(grads)[0]!.dataSync();
      value.dispose();
      tf.dispose(Object.values(grads));
    };
    step = time(`training step${checkpoint ? ' (gradient checkpointing)' : ''}`, trainStep);
    if (process.argv.includes('--memory')) peak = (await tf.profile(trainStep)).peakBytes;
  }
  const line = (label: string, ms: number, gflop: number, refS: number) =>
    console.log(
      `${label.padEnd(28)} ${ms.toFixed(0).padStart(7)} ms  ${(gflop / (ms / 1000)).toFixed(1).padStart(6)} GFLOP/s   reference ${(refS * 1000).toFixed(0)} ms (${(gflop / refS).toFixed(0)} GFLOP/s)   ratio ${(ms / 1000 / refS).toFixed(2)}x`,
    );
  console.log('\nSTDiT2 benchmark config (hidden 384, depth 6, 6 heads, B=2, latent 4x8x32x32, 32 tokens):');
  line('forward (no grad)', fwd, FWD_GFLOP, REF_FORWARD_S);
  if (doTrain) line(checkpoint ? 'train step (ckpt, fwd+MSE+bwd)' : 'training step (fwd+MSE+bwd)', step, STEP_GFLOP, REF_STEP_S);
  if (!Number.isNaN(peak)) console.log(`peak tensor memory of a training step: ${(peak / 2 ** 30).toFixed(2)} GiB`);
  if (doTrain && checkpoint) console.log('(checkpointing recomputes each block: 568 GFLOP of work; the GFLOP/s above use the 426 GFLOP count)');
  console.log('ratio = our time / reference time (PyTorch 1.13 CPU, 2 threads; facts.md). Lower is better.');
  console.log(`CPU time (load-independent): ${cpuNote.join('; ')}`);
  model.dispose();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
