/**
 * PyTorch <-> tfjs weight layouts. Conv filters: PyTorch [out, in, kh, kw] <-> tfjs [kh, kw, in, out].
 * Linear weights: PyTorch [out, in] (y = x W^T + b) <-> [in, out] (y = x W + b). Vectors unchanged.
 */
import type { ParamSpec } from './params.js';

/** Torch-layout data of `spec` to tfjs layout (always a new array: readers may hand out views of shared buffers). */
export function fromTorchLayout(spec: ParamSpec, src: Float32Array): { data: Float32Array; shape: number[] } {
  if (spec.kind === 'vector') return { data: Float32Array.from(src), shape: [...spec.shape] };
  if (spec.kind === 'linear') {
    const [o, i] = spec.shape as [number, number];
    const out = new Float32Array(o * i);
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[c * o + r] = src[r * i + c]!;
    return { data: out, shape: [i, o] };
  }
  const [o, i, kh, kw] = spec.shape as [number, number, number, number];
  const out = new Float32Array(o * i * kh * kw);
  for (let co = 0; co < o; co++) {
    for (let ci = 0; ci < i; ci++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          out[((y * kw + x) * i + ci) * o + co] = src[((co * i + ci) * kh + y) * kw + x]!;
        }
      }
    }
  }
  return { data: out, shape: [kh, kw, i, o] };
}

/** tfjs-layout data of `spec` back to PyTorch layout (`spec.shape`). */
export function toTorchLayout(spec: ParamSpec, src: Float32Array): Float32Array {
  if (spec.kind === 'vector') return Float32Array.from(src);
  if (spec.kind === 'linear') {
    const [o, i] = spec.shape as [number, number];
    const out = new Float32Array(o * i);
    for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[r * i + c] = src[c * o + r]!;
    return out;
  }
  const [o, i, kh, kw] = spec.shape as [number, number, number, number];
  const out = new Float32Array(o * i * kh * kw);
  for (let co = 0; co < o; co++) {
    for (let ci = 0; ci < i; ci++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          out[((co * i + ci) * kh + y) * kw + x] = src[((y * kw + x) * i + ci) * o + co]!;
        }
      }
    }
  }
  return out;
}
