/**
 * A deliberately naive, independent float64 re-implementation of diffusers' AutoencoderKL in plain
 * loops, NCHW, reading PyTorch-layout weights by their diffusers names. It shares no code with
 * src/, so a layout or maths slip in the tfjs port shows up as a mismatch.
 */
export interface Img {
  c: number;
  h: number;
  w: number;
  d: Float64Array; // [c, h, w]
}
export type SD = Record<string, { shape: number[]; data: Float32Array }>;

export interface RefConfig {
  in_channels: number;
  out_channels: number;
  block_out_channels: number[];
  layers_per_block: number;
  latent_channels: number;
  norm_num_groups: number;
}

const EPS = 1e-6;

function W(sd: SD, k: string): Float32Array {
  const v = sd[k];
  if (!v) throw new Error(`reference: missing ${k}`);
  return v.data;
}

/** torch Conv2d (cross-correlation), weight [o, i, k, k], explicit pads (top, bottom, left, right). */
export function conv(x: Img, w: Float32Array, b: Float32Array, o: number, k: number, stride: number, pt: number, pb: number, pl: number, pr: number): Img {
  const ho = Math.floor((x.h + pt + pb - k) / stride) + 1;
  const wo = Math.floor((x.w + pl + pr - k) / stride) + 1;
  const d = new Float64Array(o * ho * wo);
  for (let co = 0; co < o; co++)
    for (let yo = 0; yo < ho; yo++)
      for (let xo = 0; xo < wo; xo++) {
        let s = b[co]!;
        for (let ci = 0; ci < x.c; ci++)
          for (let ky = 0; ky < k; ky++) {
            const yi = yo * stride - pt + ky;
            if (yi < 0 || yi >= x.h) continue;
            for (let kx = 0; kx < k; kx++) {
              const xi = xo * stride - pl + kx;
              if (xi < 0 || xi >= x.w) continue;
              s += w[((co * x.c + ci) * k + ky) * k + kx]! * x.d[(ci * x.h + yi) * x.w + xi]!;
            }
          }
        d[(co * ho + yo) * wo + xo] = s;
      }
  return { c: o, h: ho, w: wo, d };
}

function convNamed(sd: SD, name: string, x: Img, k: 1 | 3, down = false): Img {
  const w = sd[`${name}.weight`]!;
  const o = w.shape[0]!;
  if (down) return conv(x, w.data, W(sd, `${name}.bias`), o, 3, 2, 0, 1, 0, 1);
  const p = k === 3 ? 1 : 0;
  return conv(x, w.data, W(sd, `${name}.bias`), o, k, 1, p, p, p, p);
}

export function groupNorm(x: Img, gamma: ArrayLike<number>, beta: ArrayLike<number>, groups: number, act: boolean): Img {
  const cg = x.c / groups;
  const hw = x.h * x.w;
  const d = new Float64Array(x.d.length);
  for (let g = 0; g < groups; g++) {
    let m = 0;
    for (let i = g * cg * hw; i < (g + 1) * cg * hw; i++) m += x.d[i]!;
    m /= cg * hw;
    let v = 0;
    for (let i = g * cg * hw; i < (g + 1) * cg * hw; i++) v += (x.d[i]! - m) ** 2;
    v /= cg * hw;
    const inv = 1 / Math.sqrt(v + EPS);
    for (let c = g * cg; c < (g + 1) * cg; c++)
      for (let i = 0; i < hw; i++) {
        let y = (x.d[c * hw + i]! - m) * inv * gamma[c]! + beta[c]!;
        if (act) y = y / (1 + Math.exp(-y));
        d[c * hw + i] = y;
      }
  }
  return { ...x, d };
}

function gn(sd: SD, name: string, x: Img, groups: number, act: boolean): Img {
  return groupNorm(x, W(sd, `${name}.weight`), W(sd, `${name}.bias`), groups, act);
}

function add(a: Img, b: Img): Img {
  const d = new Float64Array(a.d.length);
  for (let i = 0; i < d.length; i++) d[i] = a.d[i]! + b.d[i]!;
  return { ...a, d };
}

function resnet(sd: SD, name: string, x: Img, g: number): Img {
  let h = gn(sd, `${name}.norm1`, x, g, true);
  h = convNamed(sd, `${name}.conv1`, h, 3);
  h = gn(sd, `${name}.norm2`, h, g, true);
  h = convNamed(sd, `${name}.conv2`, h, 3);
  const sc = sd[`${name}.conv_shortcut.weight`] ? convNamed(sd, `${name}.conv_shortcut`, x, 1) : x;
  return add(sc, h);
}

/** y[t][o] = sum_i x[t][i] W[o][i] + b[o] over tokens t (x as [C, S] channel-major). */
function lin(tokens: Float64Array[], w: Float32Array, b: Float32Array, c: number): Float64Array[] {
  return tokens.map((t) => {
    const y = new Float64Array(c);
    for (let o = 0; o < c; o++) {
      let s = b[o]!;
      for (let i = 0; i < c; i++) s += w[o * c + i]! * t[i]!;
      y[o] = s;
    }
    return y;
  });
}

export function attention(sd: SD, name: string, x: Img, g: number): Img {
  const n = gn(sd, `${name}.group_norm`, x, g, false);
  const c = x.c;
  const s = x.h * x.w;
  const tokens: Float64Array[] = [];
  for (let t = 0; t < s; t++) {
    const v = new Float64Array(c);
    for (let ch = 0; ch < c; ch++) v[ch] = n.d[ch * s + t]!;
    tokens.push(v);
  }
  const q = lin(tokens, W(sd, `${name}.to_q.weight`), W(sd, `${name}.to_q.bias`), c);
  const k = lin(tokens, W(sd, `${name}.to_k.weight`), W(sd, `${name}.to_k.bias`), c);
  const v = lin(tokens, W(sd, `${name}.to_v.weight`), W(sd, `${name}.to_v.bias`), c);
  const scale = 1 / Math.sqrt(c);
  const o: Float64Array[] = [];
  for (let i = 0; i < s; i++) {
    const sc = new Float64Array(s);
    let mx = -Infinity;
    for (let j = 0; j < s; j++) {
      let d = 0;
      for (let ch = 0; ch < c; ch++) d += q[i]![ch]! * k[j]![ch]!;
      sc[j] = d * scale;
      mx = Math.max(mx, sc[j]!);
    }
    let z = 0;
    for (let j = 0; j < s; j++) z += sc[j] = Math.exp(sc[j]! - mx);
    const out = new Float64Array(c);
    for (let j = 0; j < s; j++) for (let ch = 0; ch < c; ch++) out[ch] += (sc[j]! / z) * v[j]![ch]!;
    o.push(out);
  }
  const p = lin(o, W(sd, `${name}.to_out.0.weight`), W(sd, `${name}.to_out.0.bias`), c);
  const d = new Float64Array(x.d.length);
  for (let t = 0; t < s; t++) for (let ch = 0; ch < c; ch++) d[ch * s + t] = p[t]![ch]! + x.d[ch * s + t]!;
  return { ...x, d };
}

export function upsample(x: Img): Img {
  const h = 2 * x.h;
  const w = 2 * x.w;
  const d = new Float64Array(x.c * h * w);
  for (let c = 0; c < x.c; c++) for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) d[(c * h + y) * w + xx] = x.d[(c * x.h + (y >> 1)) * x.w + (xx >> 1)]!;
  return { c: x.c, h, w, d };
}

function mid(sd: SD, name: string, x: Img, g: number): Img {
  let h = resnet(sd, `${name}.resnets.0`, x, g);
  h = attention(sd, `${name}.attentions.0`, h, g);
  return resnet(sd, `${name}.resnets.1`, h, g);
}

/** Encoder + quant_conv + split: mean and clamped logvar, each [L, h, w]. */
export function refEncode(sd: SD, cfg: RefConfig, x: Img): { mean: Img; logvar: Img } {
  const g = cfg.norm_num_groups;
  const n = cfg.block_out_channels.length;
  let h = convNamed(sd, 'encoder.conv_in', x, 3);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cfg.layers_per_block; j++) h = resnet(sd, `encoder.down_blocks.${i}.resnets.${j}`, h, g);
    if (i < n - 1) h = convNamed(sd, `encoder.down_blocks.${i}.downsamplers.0.conv`, h, 3, true);
  }
  h = mid(sd, 'encoder.mid_block', h, g);
  h = gn(sd, 'encoder.conv_norm_out', h, g, true);
  h = convNamed(sd, 'encoder.conv_out', h, 3);
  h = convNamed(sd, 'quant_conv', h, 1);
  const L = cfg.latent_channels;
  const hw = h.h * h.w;
  const mean = { c: L, h: h.h, w: h.w, d: h.d.slice(0, L * hw) };
  const lv = h.d.slice(L * hw).map((v) => Math.min(20, Math.max(-30, v)));
  return { mean, logvar: { c: L, h: h.h, w: h.w, d: lv } };
}

export function refDecode(sd: SD, cfg: RefConfig, z: Img): Img {
  const g = cfg.norm_num_groups;
  const n = cfg.block_out_channels.length;
  let h = convNamed(sd, 'post_quant_conv', z, 1);
  h = convNamed(sd, 'decoder.conv_in', h, 3);
  h = mid(sd, 'decoder.mid_block', h, g);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cfg.layers_per_block + 1; j++) h = resnet(sd, `decoder.up_blocks.${i}.resnets.${j}`, h, g);
    if (i < n - 1) h = convNamed(sd, `decoder.up_blocks.${i}.upsamplers.0.conv`, upsample(h), 3);
  }
  h = gn(sd, 'decoder.conv_norm_out', h, g, true);
  return convNamed(sd, 'decoder.conv_out', h, 3);
}
