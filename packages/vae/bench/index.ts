/**
 * `npm run bench -w @opensora/vae`: encode and decode frames/s for one 256x256 frame with the tiny
 * AutoencoderKL config (random weights) and with the built-in default. Set VAE_BENCH_SD=1 to add
 * the official sd-vae-ft-ema config (random weights, ~1 GFLOP... much slower here).
 */
import { tf, initBackend, formatBackend, Rng } from '@opensora/core';
import { AutoencoderKL, BuiltinVae, SD_VAE_CONFIG, TINY_VAE_CONFIG, VideoAutoencoderKL, type VaeAdapter } from '../src/index.js';

const info = await initBackend();
console.log(`backend: ${formatBackend?.() ?? info.name}`);

function time(fn: () => void, minMs = 1500, minIters = 3): number {
  fn(); // warm-up (kernel setup, weight upload)
  let iters = 0;
  const t0 = performance.now();
  while (iters < minIters || performance.now() - t0 < minMs) {
    fn();
    iters++;
  }
  return (performance.now() - t0) / iters;
}

function bench(name: string, vae: VaeAdapter, frames: number, size = 256): void {
  const x = tf.tensor(new Rng(1).fillUniform(new Float32Array(3 * frames * size * size), -1, 1), [1, 3, frames, size, size]);
  const z = vae.encode(x);
  const encMs = time(() => vae.encode(x, { sample: true }).dispose());
  const decMs = time(() => vae.decode(z).dispose());
  const fps = (ms: number) => ((frames * 1000) / ms).toFixed(2);
  console.log(
    `${name.padEnd(34)} latent ${JSON.stringify(z.shape.slice(1))}: encode ${fps(encMs)} frames/s (${(encMs / frames).toFixed(1)} ms/frame), decode ${fps(decMs)} frames/s (${(decMs / frames).toFixed(1)} ms/frame)`,
  );
  tf.dispose([x, z]);
}

console.log('VAE throughput, 256x256 frames (reference: the SD VAE in PyTorch fp32 on this kind of 2-core CPU is roughly 1-2 frames/s to encode and 0.5-1 to decode at 256x256 [estimate, not measured here])');
const tiny = new VideoAutoencoderKL(new AutoencoderKL(TINY_VAE_CONFIG, { seed: 0 }), { microBatchSize: 4 });
console.log(`tiny AutoencoderKL: ${AutoencoderKL.countParameters(TINY_VAE_CONFIG)} parameters, f=${tiny.spatialCompression}`);
bench('tiny AutoencoderKL (4 frames)', tiny, 4);
tiny.dispose();
for (const p of [2, 8]) {
  const b = new BuiltinVae({ patchSize: p });
  bench(`builtin patch ${p} (16 frames)`, b, 16);
  b.dispose();
}
if (process.env.VAE_BENCH_SD === '1') {
  const sd = new VideoAutoencoderKL(new AutoencoderKL(SD_VAE_CONFIG, { seed: 0 }), { microBatchSize: 1 });
  bench('sd-vae-ft-ema config (1 frame)', sd, 1);
  sd.dispose();
}
