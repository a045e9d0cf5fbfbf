/** Running a cached onnxruntime graph on tfjs tensors: what the accelerated and fused kernels share. */
import type { tf } from '../backend.js';
import type { Access } from './access.js';
import type { OnnxGraph } from './onnx-model.js';
import type { OrtRuntime } from './ort.js';

type TensorInfo = tf.TensorInfo;
/** A graph input: its name, the tensor, and optionally the dims onnxruntime sees (a reshape for free). */
export type Feed = [name: string, t: TensorInfo, dims?: readonly number[]];

/** Symbolic dim names `${prefix}0..rank-1`. */
export const sym = (prefix: string, rank: number) => Array.from({ length: rank }, (_, i) => `${prefix}${i}`);
export const prod = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Runs the graph cached under `key` (built by `graph` on first use): inputs by name, outputs
 * preallocated as tfjs tensors of `outs[i][0]` (seen by onnxruntime as `outs[i][1]`, default the
 * same) and fetched as `outNames` (default y0, y1, ...). Zero-copy on both sides.
 */
export function runGraph(
  ort: OrtRuntime,
  access: Access,
  key: string,
  graph: () => OnnxGraph,
  inputs: Feed[],
  outs: [shape: number[], ortDims?: readonly number[]][],
  outNames: readonly string[] = outs.map((_, i) => `y${i}`),
): TensorInfo[] {
  const session = ort.session(key, graph);
  const allocated = outs.map(([shape]) => access.alloc(shape));
  const feeds: Record<string, unknown> = {};
  // views are taken after every allocation (a wasm heap may have grown)
  for (const [name, t, dims] of inputs) feeds[name] = new ort.Tensor('float32', access.f32(t), dims ?? t.shape);
  const fetches: Record<string, unknown> = {};
  allocated.forEach((o, i) => {
    fetches[outNames[i]!] = new ort.Tensor('float32', access.f32(o.info), outs[i]![1] ?? outs[i]![0]);
  });
  session.run(feeds, fetches, {});
  return allocated.map((o) => o.info);
}
