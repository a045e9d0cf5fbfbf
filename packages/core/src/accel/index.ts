/**
 * Kernel acceleration: re-registers hot tfjs kernels (matrix products first) for the `cpu` and
 * `wasm` backends with implementations that call onnxruntime-node's native CPU kernels
 * synchronously, on zero-copy views of the tensors' data. tfjs stays the framework (autograd,
 * memory management, every other kernel); only the registered kernels change, so every
 * gradient that tfjs builds from them is accelerated too.
 *
 *   await initBackend();
 *   const info = enableFastKernels({ engine: 'onnxruntime' }); // falls back with a note
 *   console.log(info.enabled, info.note);
 *
 * When onnxruntime-node is missing, of another version than 1.30.x, or fails its smoke test,
 * nothing is re-registered and `note` says why. `disableFastKernels()` restores the original
 * kernels. Call it after `initBackend()`: a backend's kernels must be loaded to be replaced.
 */
import { tf } from '../backend.js';
import { accessFor } from './access.js';
import { FUSED_KERNELS, registerFusedGradients, setFusedBackends } from './fused.js';
import { ACCEL_KERNELS } from './kernels.js';
import { loadOrt, PINNED_ORT_VERSION, type OrtRuntime } from './ort.js';

export { encodeOnnxModel, OnnxType } from './onnx-model.js';
export type { OnnxGraph, OnnxNode, OnnxValue, OnnxAttr, OnnxInitializer } from './onnx-model.js';
export { PINNED_ORT_VERSION };
export { fusedAttention, fusedGatedResidual, fusedGeluTanh, fusedLayerNormModulate, fusedOpsAvailable, fusedRmsNorm } from './fused.js';

export interface FastKernelsOptions {
  /** The engine behind the kernels. Only 'onnxruntime' exists; 'none' disables. */
  engine?: 'onnxruntime' | 'none';
  /** Backends to patch (default: cpu and wasm). */
  backends?: string[];
  /** Kernel names to replace (default: all this module implements). */
  kernels?: string[];
  /** Also register the fused transformer ops (GELU, LayerNorm+modulate, RMSNorm, attention; default true). */
  fused?: boolean;
  /** Record wall and CPU time per kernel in `stats.byKernel` (costs a getrusage per call). */
  profile?: boolean;
  /** onnxruntime intra-op threads (default: number of cores). */
  threads?: number;
  /** Accept an onnxruntime-node version other than 1.30.x. */
  allowUntestedVersion?: boolean;
  /** The onnxruntime package name (default 'onnxruntime-node'; tests pass a missing one). */
  moduleName?: string;
}

export interface FastKernelsInfo {
  enabled: boolean;
  engine: 'onnxruntime' | 'none';
  /** onnxruntime-node version, when loaded. */
  version: string | null;
  threads: number;
  /** Kernel names replaced, per backend. */
  kernels: Record<string, string[]>;
  /** One line: what happened and why. */
  note: string;
  /** Calls served by onnxruntime, and calls handed back to the original kernel. */
  stats: {
    accelerated: number;
    fallback: number;
    /** With `profile`: per kernel name, calls and milliseconds (wall, and CPU of all threads). */
    byKernel?: Record<string, { calls: number; ms: number; cpuMs: number }>;
  };
}

interface Saved {
  kernelName: string;
  backendName: string;
  config: tf.KernelConfig;
}

let runtime: OrtRuntime | null = null;
let saved: Saved[] = [];
let added: { kernelName: string; backendName: string }[] = [];
let current: FastKernelsInfo = {
  enabled: false,
  engine: 'none',
  version: null,
  threads: 0,
  kernels: {},
  note: 'fast kernels not enabled',
  stats: { accelerated: 0, fallback: 0 },
};

/** Replaces hot kernels with onnxruntime-backed ones; returns what was done (never throws for a missing engine). */
export function enableFastKernels(options: FastKernelsOptions = {}): FastKernelsInfo {
  const engine = options.engine ?? 'onnxruntime';
  if (engine === 'none') {
    disableFastKernels();
    return current;
  }
  if (current.enabled) disableFastKernels();
  const loaded = loadOrt({
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.allowUntestedVersion !== undefined ? { allowUntestedVersion: options.allowUntestedVersion } : {}),
    ...(options.moduleName !== undefined ? { moduleName: options.moduleName } : {}),
  });
  if (!loaded.ok) {
    current = { ...current, enabled: false, engine: 'none', version: null, kernels: {}, note: `${loaded.reason}; using the plain tfjs kernels` };
    return current;
  }
  runtime = loaded.runtime;
  const ort = runtime;
  const stats: FastKernelsInfo['stats'] = { accelerated: 0, fallback: 0 };
  const profile = options.profile ?? false;
  if (profile) stats.byKernel = {};
  const timed = <T>(name: string, f: () => T): T => {
    if (!profile) return f();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const r = f();
    const c = process.cpuUsage(c0);
    const e = (stats.byKernel![name] ??= { calls: 0, ms: 0, cpuMs: 0 });
    e.calls++;
    e.ms += performance.now() - t0;
    e.cpuMs += (c.user + c.system) / 1000;
    return r;
  };
  const names = (options.kernels ?? Object.keys(ACCEL_KERNELS)).filter((k) => ACCEL_KERNELS[k]);
  const backends = options.backends ?? ['cpu', 'wasm'];
  const done: Record<string, string[]> = {};
  for (const backendName of backends) {
    for (const kernelName of names) {
      const original = tf.getKernel(kernelName, backendName);
      if (!original) continue;
      const impl = ACCEL_KERNELS[kernelName]!;
      saved.push({ kernelName, backendName, config: original });
      const kernelFunc = ((args: { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: Record<string, unknown> }) => {
        const access = accessFor(backendName, args.backend);
        const out = access ? timed(kernelName, () => impl(args, access, ort)) : null;
        if (out) {
          stats.accelerated++;
          return out;
        }
        stats.fallback++;
        return timed(`${kernelName} (tfjs)`, () => original.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]));
      }) as unknown as tf.KernelFunc;
      tf.unregisterKernel(kernelName, backendName);
      tf.registerKernel({ kernelName, backendName, kernelFunc, ...(original.setupFunc ? { setupFunc: original.setupFunc } : {}), ...(original.disposeFunc ? { disposeFunc: original.disposeFunc } : {}) });
      (done[backendName] ??= []).push(kernelName);
    }
  }
  if (options.fused ?? true) {
    registerFusedGradients();
    const fusedOn: string[] = [];
    for (const backendName of backends) {
      if (!tf.findBackendFactory(backendName)) continue;
      for (const [kernelName, impl] of Object.entries(FUSED_KERNELS)) {
        const kernelFunc = ((args: { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs?: Record<string, unknown> }) => {
          stats.accelerated++;
          return timed(kernelName, () => impl(args, accessFor(backendName, args.backend)!, ort));
        }) as unknown as tf.KernelFunc;
        if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
        tf.registerKernel({ kernelName, backendName, kernelFunc });
        added.push({ kernelName, backendName });
      }
      fusedOn.push(backendName);
    }
    setFusedBackends(fusedOn);
  }
  current = {
    enabled: true,
    engine: 'onnxruntime',
    version: runtime.version,
    threads: runtime.threads,
    kernels: done,
    note: `onnxruntime-node ${runtime.version} (${runtime.threads} threads) serves ${names.join(', ')} on ${Object.keys(done).join(', ') || 'no backend'}`,
    stats,
  };
  return current;
}

/** Restores the original tfjs kernels. */
export function disableFastKernels(): void {
  for (const s of saved) {
    tf.unregisterKernel(s.kernelName, s.backendName);
    tf.registerKernel(s.config);
  }
  saved = [];
  for (const a of added) tf.unregisterKernel(a.kernelName, a.backendName);
  added = [];
  setFusedBackends([]);
  runtime?.dispose();
  runtime = null;
  current = { ...current, enabled: false, engine: 'none', kernels: {}, note: 'fast kernels disabled', stats: { accelerated: 0, fallback: 0 } };
}

/** What `enableFastKernels` did (live stats). */
export function fastKernelsInfo(): FastKernelsInfo {
  return current;
}
