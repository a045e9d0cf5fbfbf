/**
 * The reference's temporal sampling and spatial transforms (spec 4.2, 4.3).
 * Video frames are resized in JS with torch's bilinear, align_corners=False, no antialias;
 * images go through sharp (bicubic, antialiased like PIL's BICUBIC). Output is float32
 * C,T,H,W in [-1, 1] (x/255, then normalise with mean 0.5, std 0.5).
 */
import sharp from 'sharp';
import { InvalidArgumentError } from '@opensora/core';
import type { Frame } from './decode.js';

export type TransformName = 'resize_crop' | 'center';

/** Python's round(): half to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The reference's `temporal_random_crop` as frame indices: `begin` in [0, max(0, total - size - 1)]
 * (inclusive) chosen by `u` in [0, 1) (or `begin` directly), `end = min(begin + size, total)`,
 * indices `trunc(linspace(begin, end - 1, numFrames))`. Throws when fewer than `numFrames` frames exist.
 */
export function temporalCropIndices(total: number, numFrames: number, frameInterval: number, choice: { u: number } | { begin: number }): number[] {
  if (!(Number.isInteger(total) && total >= 0 && Number.isInteger(numFrames) && numFrames >= 1 && Number.isInteger(frameInterval) && frameInterval >= 1)) {
    throw new InvalidArgumentError(`temporal crop needs integers total >= 0, numFrames >= 1, frameInterval >= 1 (got ${total}, ${numFrames}, ${frameInterval})`);
  }
  const size = numFrames * frameInterval;
  const maxBegin = Math.max(0, total - size - 1);
  const begin = 'begin' in choice ? choice.begin : Math.min(maxBegin, Math.floor(choice.u * (maxBegin + 1)));
  if (begin < 0 || begin > maxBegin) throw new InvalidArgumentError(`begin ${begin} outside [0, ${maxBegin}]`);
  const end = Math.min(begin + size, total);
  if (end - begin < numFrames) {
    throw new InvalidArgumentError(`clip has ${total} frames, fewer than the ${numFrames} needed`, { details: { total, numFrames } });
  }
  if (numFrames === 1) return [begin];
  const stop = end - 1;
  const step = (stop - begin) / (numFrames - 1);
  const out = new Array<number>(numFrames);
  for (let i = 0; i < numFrames - 1; i++) out[i] = Math.trunc(i * step + begin);
  out[numFrames - 1] = stop;
  return out;
}

/** Resize target and crop offsets of `resize_crop` for a source (h, w) and target (th, tw). */
export function resizeCropPlan(h: number, w: number, th: number, tw: number, kind: 'video' | 'image'): { rh: number; rw: number; top: number; left: number } {
  const sh = th / h;
  const sw = tw / w;
  let rh: number;
  let rw: number;
  if (sh > sw) {
    rh = th;
    rw = roundHalfEven(w * sh);
  } else {
    rh = roundHalfEven(h * sw);
    rw = tw;
  }
  const off = (s: number, t: number) => (kind === 'video' ? Math.floor((s - t) / 2) : roundHalfEven((s - t) / 2));
  return { rh, rw, top: off(rh, th), left: off(rw, tw) };
}

/** torch bilinear (align_corners=False) source taps for `outLen` outputs of an `inLen` axis. */
function taps(inLen: number, outLen: number, scale: number, offset: number, count: number): { i0: Int32Array; i1: Int32Array; l1: Float32Array } {
  const i0 = new Int32Array(count);
  const i1 = new Int32Array(count);
  const l1 = new Float32Array(count);
  for (let d = 0; d < count; d++) {
    let src = scale * (d + offset + 0.5) - 0.5;
    if (src < 0) src = 0;
    let a = Math.floor(src);
    if (a > inLen - 1) a = inLen - 1;
    i0[d] = a;
    i1[d] = a < inLen - 1 ? a + 1 : a;
    l1[d] = src - a;
  }
  void outLen;
  return { i0, i1, l1 };
}

/**
 * Bilinear-resizes frames to (rh, rw) and crops (th, tw) at (top, left), writing normalised floats
 * into `out` (C,T,H,W, T = frames.length) starting at frame slot `t0` of `tTotal`.
 */
export function resizeCropFramesInto(
  frames: readonly Frame[],
  plan: { rh: number; rw: number; top: number; left: number },
  th: number,
  tw: number,
  out: Float32Array,
  tTotal = frames.length,
  t0 = 0,
  scaleOverride?: { sy: number; sx: number },
): void {
  if (frames.length === 0) return;
  const { width: w, height: h } = frames[0]!;
  const sy = scaleOverride?.sy ?? h / plan.rh;
  const sx = scaleOverride?.sx ?? w / plan.rw;
  const ty = taps(h, plan.rh, sy, plan.top, th);
  const tx = taps(w, plan.rw, sx, plan.left, tw);
  const plane = th * tw;
  const inv = 1 / 127.5;
  const identity = plan.rh === h && plan.rw === w && !scaleOverride;
  // Per-column tap offsets (in bytes of the interleaved source) and weights, shared by every row.
  const c0 = new Int32Array(tw);
  const c1 = new Int32Array(tw);
  const wx1 = new Float32Array(tw);
  for (let x = 0; x < tw; x++) {
    c0[x] = tx.i0[x]! * 3;
    c1[x] = tx.i1[x]! * 3;
    wx1[x] = tx.l1[x]!;
  }
  for (let k = 0; k < frames.length; k++) {
    const f = frames[k]!;
    if (f.width !== w || f.height !== h) throw new InvalidArgumentError('all frames must have the same size');
    const src = f.data;
    const t = t0 + k;
    const base0 = t * plane;
    const base1 = (tTotal + t) * plane;
    const base2 = (2 * tTotal + t) * plane;
    if (identity) {
      for (let y = 0; y < th; y++) {
        let p = ((y + plan.top) * w + plan.left) * 3;
        let o = y * tw;
        for (let x = 0; x < tw; x++, p += 3, o++) {
          out[base0 + o] = src[p]! * inv - 1;
          out[base1 + o] = src[p + 1]! * inv - 1;
          out[base2 + o] = src[p + 2]! * inv - 1;
        }
      }
      continue;
    }
    for (let y = 0; y < th; y++) {
      const r0 = ty.i0[y]! * w * 3;
      const r1 = ty.i1[y]! * w * 3;
      const ly1 = ty.l1[y]!;
      const ly0 = 1 - ly1;
      let o = y * tw;
      for (let x = 0; x < tw; x++, o++) {
        const lx1 = wx1[x]!;
        const lx0 = 1 - lx1;
        const a = r0 + c0[x]!;
        const b = r0 + c1[x]!;
        const c = r1 + c0[x]!;
        const d = r1 + c1[x]!;
        const w00 = ly0 * lx0;
        const w01 = ly0 * lx1;
        const w10 = ly1 * lx0;
        const w11 = ly1 * lx1;
        out[base0 + o] = (w00 * src[a]! + w01 * src[b]! + w10 * src[c]! + w11 * src[d]!) * inv - 1;
        out[base1 + o] = (w00 * src[a + 1]! + w01 * src[b + 1]! + w10 * src[c + 1]! + w11 * src[d + 1]!) * inv - 1;
        out[base2 + o] = (w00 * src[a + 2]! + w01 * src[b + 2]! + w10 * src[c + 2]! + w11 * src[d + 2]!) * inv - 1;
      }
    }
  }
}

/** `resize_crop` for video frames: returns C,T,H,W float32 in [-1, 1]. */
export function resizeCropVideo(frames: readonly Frame[], th: number, tw: number, out?: Float32Array): Float32Array {
  const f0 = frames[0];
  if (!f0) throw new InvalidArgumentError('no frames');
  const plan = resizeCropPlan(f0.height, f0.width, th, tw, 'video');
  const dst = out ?? new Float32Array(3 * frames.length * th * tw);
  resizeCropFramesInto(frames, plan, th, tw, dst);
  return dst;
}

/** `center` for video frames (v1.0 transform; square size): scale the short side, centre crop. */
export function centerCropVideo(frames: readonly Frame[], size: number, out?: Float32Array): Float32Array {
  const f0 = frames[0];
  if (!f0) throw new InvalidArgumentError('no frames');
  const scale = size / Math.min(f0.height, f0.width);
  const rh = Math.floor(f0.height * scale);
  const rw = Math.floor(f0.width * scale);
  const plan = { rh, rw, top: Math.trunc(roundHalfEven((rh - size) / 2)), left: Math.trunc(roundHalfEven((rw - size) / 2)) };
  const dst = out ?? new Float32Array(3 * frames.length * size * size);
  resizeCropFramesInto(frames, plan, size, size, dst, frames.length, 0, { sy: 1 / scale, sx: 1 / scale });
  return dst;
}

/** Writes one RGB frame (already at the target size) as slot `t` of a C,T,H,W float buffer. */
export function frameToChw(frame: Frame, out: Float32Array, tTotal: number, t: number): void {
  const plane = frame.width * frame.height;
  const inv = 1 / 127.5;
  const src = frame.data;
  for (let c = 0; c < 3; c++) {
    const base = (c * tTotal + t) * plane;
    for (let i = 0; i < plane; i++) out[base + i] = src[i * 3 + c]! * inv - 1;
  }
}

/** `resize_crop` for an image file or RGB frame through sharp (bicubic), returning the target-size RGB frame. */
export async function resizeCropImage(input: string | Frame, th: number, tw: number, transform: TransformName = 'resize_crop'): Promise<Frame> {
  let img = typeof input === 'string' ? sharp(input) : sharp(Buffer.from(input.data.buffer, input.data.byteOffset, input.data.byteLength), { raw: { width: input.width, height: input.height, channels: 3 } });
  img = img.removeAlpha().toColourspace('srgb');
  const meta = typeof input === 'string' ? await sharp(input).metadata() : { width: input.width, height: input.height };
  const h = meta.height ?? 0;
  const w = meta.width ?? 0;
  if (!(h > 0 && w > 0)) throw new InvalidArgumentError('image has no size');
  let plan: { rh: number; rw: number; top: number; left: number };
  if (transform === 'center') {
    if (th !== tw) throw new InvalidArgumentError(`the center transform needs a square size, got ${th}x${tw}`);
    // ADM center_crop_arr: halve with a box filter while the short side >= 2*size, then bicubic.
    let ch = h;
    let cw = w;
    while (Math.min(ch, cw) >= 2 * th) {
      ch = Math.floor(ch / 2);
      cw = Math.floor(cw / 2);
    }
    const s = th / Math.min(ch, cw);
    const rh = roundHalfEven(ch * s);
    const rw = roundHalfEven(cw * s);
    plan = { rh, rw, top: Math.floor((rh - th) / 2), left: Math.floor((rw - tw) / 2) };
  } else plan = resizeCropPlan(h, w, th, tw, 'image');
  const { data, info } = await img
    .resize(plan.rw, plan.rh, { fit: 'fill', kernel: 'cubic' })
    .extract({ left: plan.left, top: plan.top, width: tw, height: th })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new InvalidArgumentError(`expected 3 channels after conversion, got ${info.channels}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: tw, height: th };
}
