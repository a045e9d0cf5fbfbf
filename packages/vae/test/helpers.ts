/** Test helpers: an independent diffusers key/shape list and random state dicts. */
import { Rng } from '@opensora/core';
import type { RefConfig, SD } from './reference.js';

/** diffusers AutoencoderKL state-dict keys and PyTorch shapes, written out from diffusers' module tree. */
export function diffusersShapes(cfg: RefConfig): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const conv = (n: string, i: number, o: number, k: number) => {
    out[`${n}.weight`] = [o, i, k, k];
    out[`${n}.bias`] = [o];
  };
  const norm = (n: string, c: number) => {
    out[`${n}.weight`] = [c];
    out[`${n}.bias`] = [c];
  };
  const res = (n: string, i: number, o: number) => {
    norm(`${n}.norm1`, i);
    conv(`${n}.conv1`, i, o, 3);
    norm(`${n}.norm2`, o);
    conv(`${n}.conv2`, o, o, 3);
    if (i !== o) conv(`${n}.conv_shortcut`, i, o, 1);
  };
  const mid = (n: string, c: number) => {
    res(`${n}.resnets.0`, c, c);
    norm(`${n}.attentions.0.group_norm`, c);
    for (const p of ['to_q', 'to_k', 'to_v', 'to_out.0']) {
      out[`${n}.attentions.0.${p}.weight`] = [c, c];
      out[`${n}.attentions.0.${p}.bias`] = [c];
    }
    res(`${n}.resnets.1`, c, c);
  };
  const ch = cfg.block_out_channels;
  const top = ch[ch.length - 1]!;
  const L = cfg.latent_channels;
  conv('encoder.conv_in', cfg.in_channels, ch[0]!, 3);
  let prev = ch[0]!;
  ch.forEach((c, i) => {
    for (let j = 0; j < cfg.layers_per_block; j++) res(`encoder.down_blocks.${i}.resnets.${j}`, j ? c : prev, c);
    if (i < ch.length - 1) conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, c, c, 3);
    prev = c;
  });
  mid('encoder.mid_block', top);
  norm('encoder.conv_norm_out', top);
  conv('encoder.conv_out', top, 2 * L, 3);
  conv('quant_conv', 2 * L, 2 * L, 1);
  conv('post_quant_conv', L, L, 1);
  conv('decoder.conv_in', L, top, 3);
  mid('decoder.mid_block', top);
  prev = top;
  [...ch].reverse().forEach((c, i) => {
    for (let j = 0; j <= cfg.layers_per_block; j++) res(`decoder.up_blocks.${i}.resnets.${j}`, j ? c : prev, c);
    if (i < ch.length - 1) conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, c, c, 3);
    prev = c;
  });
  norm('decoder.conv_norm_out', ch[0]!);
  conv('decoder.conv_out', ch[0]!, cfg.out_channels, 3);
  return out;
}

/**
 * Random weights for every key: conv/linear ~ U(-1/sqrt(fan_in), +), GroupNorm gamma ~ U(0.5, 1.5)
 * and beta ~ U(-0.3, 0.3), so that the affine layout is exercised too.
 */
export function randomStateDict(cfg: RefConfig, seed: number): SD {
  const rng = new Rng(seed);
  const sd: SD = {};
  for (const [k, shape] of Object.entries(diffusersShapes(cfg))) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /norm/.test(k);
    if (isNorm && k.endsWith('.weight')) rng.fillUniform(data, 0.5, 1.5);
    else if (isNorm) rng.fillUniform(data, -0.3, 0.3);
    else {
      const fanIn = shape.length === 4 ? shape[1]! * shape[2]! * shape[3]! : shape.length === 2 ? shape[1]! : 16;
      const bound = 1 / Math.sqrt(fanIn);
      rng.fillUniform(data, -bound, bound);
    }
    sd[k] = { shape, data };
  }
  return sd;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
