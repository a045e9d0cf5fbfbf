/**
 * Zero-copy access to tensor data inside a tfjs kernel, for the `cpu` backend (data lives in JS
 * typed arrays) and the `wasm` backend (data lives in the wasm heap: views, no copies).
 */
import type { tf } from '../backend.js';

type TensorInfo = tf.TensorInfo;

export interface Access {
  /** Whether `f32` can give a float32 view of this tensor (check before allocating outputs). */
  readable(t: TensorInfo): boolean;
  /** A Float32Array over the tensor's data (a view, not a copy). Call after every `alloc`. */
  f32(t: TensorInfo): Float32Array;
  /** A new float32 output tensor and a writable view of its data. */
  alloc(shape: number[]): { info: TensorInfo; view: Float32Array };
}

interface CpuLike {
  data: { get(id: object): { values?: unknown } | undefined };
  makeTensorInfo(shape: number[], dtype: 'float32', values?: Float32Array): TensorInfo;
}

interface WasmLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(id: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
}

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function cpuAccess(backend: CpuLike): Access {
  return {
    readable(t) {
      return t.dtype === 'float32' && backend.data.get(t.dataId)?.values instanceof Float32Array;
    },
    f32(t) {
      const v = backend.data.get(t.dataId)?.values;
      if (!(v instanceof Float32Array)) throw new Error('accel: cpu tensor without Float32Array values');
      return v;
    },
    alloc(shape) {
      const view = new Float32Array(size(shape));
      return { info: backend.makeTensorInfo(shape, 'float32', view), view };
    },
  };
}

function wasmAccess(backend: WasmLike): Access {
  const view = (offset: number, n: number) => new Float32Array(backend.wasm.HEAPU8.buffer, offset, n);
  return {
    readable(t) {
      return t.dtype === 'float32' && backend.dataIdMap.get(t.dataId) !== undefined;
    },
    f32(t) {
      const d = backend.dataIdMap.get(t.dataId);
      if (!d) throw new Error('accel: wasm tensor without heap data');
      return view(d.memoryOffset, size(t.shape));
    },
    alloc(shape) {
      const info = backend.makeOutput(shape, 'float32');
      return { info, view: view(backend.dataIdMap.get(info.dataId)!.memoryOffset, size(shape)) };
    },
  };
}

/** The access helper for a backend instance, or null for backends this module does not handle. */
export function accessFor(backendName: string, backend: unknown): Access | null {
  if (backendName === 'cpu') return cpuAccess(backend as CpuLike);
  if (backendName === 'wasm') return wasmAccess(backend as WasmLike);
  return null;
}
