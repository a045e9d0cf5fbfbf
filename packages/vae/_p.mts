import { tf, initBackend } from '@opensora/core';
import { AutoencoderKL, TINY_VAE_CONFIG } from './src/index.ts';
await initBackend();
const m = new AutoencoderKL(TINY_VAE_CONFIG);
const z = tf.randomNormal([4, 32, 32, 4]) as tf.Tensor4D;
const x = tf.randomUniform([4, 256, 256, 3], -1, 1) as tf.Tensor4D;
m.decodeNHWC(z).dispose();
for (const [name, fn] of [['decode', () => m.decodeNHWC(z)], ['encode', () => { const p = m.encodeNHWC(x); p.logvar.dispose(); return p.mean; }]] as const) {
  const prof = await tf.profile(() => { fn().dispose(); });
  const agg = new Map<string, number>();
  let total = 0;
  for (const k of prof.kernels) { if (k.name.endsWith('__op')) continue; const t = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0; const key = k.name + (k.name === 'FusedConv2D' ? '' : ''); agg.set(key, (agg.get(key) ?? 0) + t); total += t; }
  console.log(name, 'total kernel ms', total.toFixed(0));
  console.log([...agg.entries()].sort((a, b) => b[1] - a[1]).slice(0, 14).map(([k, v]) => `${k}:${v.toFixed(0)}`).join(' '));
}
