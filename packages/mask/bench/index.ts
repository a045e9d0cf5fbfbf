/**
 * Throughput of the mask package's hot paths (all pure TypeScript, no tensors):
 * training masks per second and strategy plans per second.
 * There is no reference figure to compare with: the reference draws masks with Python's
 * `random` inside its training step and parses strategies once per prompt; both are negligible
 * next to a model step, which is what these numbers are meant to confirm.
 */
import { DEFAULT_MASK_RATIOS, MaskGenerator, planMaskStrategy } from '../src/index.js';

function time(label: string, n: number, fn: () => void, reference: string): void {
  fn(); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  const ms = performance.now() - t0;
  console.log(`${label.padEnd(48)} ${((n / ms) * 1000).toExponential(2).padStart(9)} /s   (${(ms / n * 1000).toFixed(2)} µs each)   reference: ${reference}`);
}

const gen = new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 0 });
time('MaskGenerator.getMasks(8, 16) (stage ratios)', 20_000, () => gen.getMasks(8, 16), 'not measured (Python random, per step)');
time('MaskGenerator.getMasks(8, 128)', 5_000, () => gen.getMasks(8, 128), 'not measured');
time('planMaskStrategy, 4 samples, T=32', 20_000, () =>
  planMaskStrategy({
    strategies: ['0', '0,0,0,-8,8', '0;0,1,0,-1,1', '0,0,0,0,32,0.4'],
    targetFrames: 32,
    referenceLengths: [[1], [16], [1, 1], [32]],
  }), 'not measured (once per prompt and loop)');
