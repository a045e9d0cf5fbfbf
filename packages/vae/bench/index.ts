/**
 * `npm run bench -w @opensora/vae`: encode and decode frames/s for 256x256 frames with the tiny
 * AutoencoderKL config (random weights, SD-VAE shape: compression 8, 4 latent channels) and with the
 * built-in default. VAE_BENCH_SD=1 adds the official sd-vae-ft-ema config (random weights; slow here).
 *
 * The reference figure is PyTorch (fp32, 2 threads) running the same module tree
 * (bench/torch_reference.py). It is measured in the same run when Debian's python3 with torch is
 * present (timings on shared machines vary ~20% run to run); otherwise the figure recorded below is shown.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf, initBackend, formatBackend, Rng } from '@opensora/core';
import { AutoencoderKL, BuiltinVae, SD_VAE_CONFIG, TINY_VAE_CONFIG, VideoAutoencoderKL, type VaeAdapter } from '../src/index.js';

interface Figure {
  encode_fps: number;
  decode_fps: number;
  source: string;
}
/** Recorded with bench/torch_reference.py (torch 1.13 CPU, 2 threads) on a 2-core dev machine. */
const RECORDED: Record<string, Figure> = {
  tiny: { encode_fps: 3.92, decode_fps: 2.79, source: 'recorded' },
  sd: { encode_fps: 0.06, decode_fps: 0.05, source: 'recorded' },
};

const withSd = process.env.VAE_BENCH_SD === '1';

function torchFigures(): Record<string, Figure> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_reference.py');
  try {
    const out = execFileSync('/usr/bin/python3', [script, 'time', 'tiny', ...(withSd ? ['sd'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 900_000 });
    const figs: Record<string, Figure> = {};
    for (const line of out.trim().split('\n')) {
      const j = JSON.parse(line) as { config: string; encode_fps: number; decode_fps: number };
      figs[j.config] = { encode_fps: j.encode_fps, decode_fps: j.decode_fps, source: 'measured now' };
    }
    return { ...RECORDED, ...figs };
  } catch {
    return RECORDED;
  }
}

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

function bench(name: string, vae: VaeAdapter, frames: number, ref?: Figure, size = 256): void {
  const x = tf.tensor(new Rng(1).fillUniform(new Float32Array(3 * frames * size * size), -1, 1), [1, 3, frames, size, size]);
  const z = vae.encode(x);
  const encMs = time(() => vae.encode(x).dispose());
  const decMs = time(() => vae.decode(z).dispose());
  const f = (ms: number) => ((frames * 1000) / ms).toFixed(2);
  const r = ref ? ` | reference PyTorch (${ref.source}): encode ${ref.encode_fps.toFixed(2)}, decode ${ref.decode_fps.toFixed(2)} frames/s` : '';
  console.log(`${name.padEnd(32)} latent ${JSON.stringify(z.shape.slice(1)).padEnd(16)} encode ${f(encMs)} frames/s, decode ${f(decMs)} frames/s${r}`);
  tf.dispose([x, z]);
}

const ref = torchFigures();
console.log(`VAE throughput on 256x256 frames (${withSd ? '' : 'VAE_BENCH_SD=1 adds the official config; '}timings vary ~20% run to run on shared machines)`);
const tiny = new VideoAutoencoderKL(new AutoencoderKL(TINY_VAE_CONFIG, { seed: 0 }), { microBatchSize: 4 });
console.log(`tiny AutoencoderKL: ${AutoencoderKL.countParameters(TINY_VAE_CONFIG)} parameters, compression ${tiny.spatialCompression}, posterior sampled`);
bench('tiny AutoencoderKL, 4 frames', tiny, 4, ref.tiny);
tiny.dispose();
for (const p of [2, 8]) {
  const b = new BuiltinVae({ patchSize: p });
  bench(`builtin patch ${p}, 16 frames`, b, 16);
  b.dispose();
}
if (withSd) {
  const sd = new VideoAutoencoderKL(new AutoencoderKL(SD_VAE_CONFIG, { seed: 0 }), { microBatchSize: 1 });
  bench('sd-vae-ft-ema config, 1 frame', sd, 1, ref.sd);
  sd.dispose();
}
