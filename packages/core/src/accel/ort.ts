/**
 * Synchronous access to onnxruntime-node's native session.
 *
 * The public `InferenceSession.run()` is async (it defers to setImmediate), which a tfjs kernel
 * cannot await. Underneath, the package's binding module (`onnxruntime-node/dist/binding.js`)
 * exposes `new binding.InferenceSession()` with synchronous `loadModel(bytes...)` and
 * `run(feeds, fetches, options)`. That module is not a public API, so this file pins the
 * behaviour to onnxruntime-node 1.30.x and refuses other versions unless told otherwise.
 *
 * onnxruntime-node is an optional dependency: it is loaded with a guarded `createRequire`, and
 * every caller falls back to plain tfjs when `loadOrt()` returns null.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { encodeOnnxModel, type OnnxGraph } from './onnx-model.js';

/** The onnxruntime-node version this module was written and tested against. */
export const PINNED_ORT_VERSION = '1.30';

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: Record<string, unknown>): void;
  run(feeds: Record<string, unknown>, fetches: Record<string, unknown>, options: Record<string, unknown>): Record<string, { data: Float32Array; dims: number[] }>;
  dispose?(): void;
}

interface OrtModule {
  Tensor: new (type: string, data: ArrayBufferView, dims: readonly number[]) => unknown;
}

export interface OrtRuntime {
  version: string;
  threads: number;
  Tensor: OrtModule['Tensor'];
  /** A session for `graph`, built once per `key` and cached. */
  session(key: string, graph: () => OnnxGraph): NativeSession;
  /** Number of sessions built so far. */
  readonly sessionCount: number;
  dispose(): void;
}

export interface LoadOrtOptions {
  /** Intra-op threads (default: the number of cores). */
  threads?: number;
  /** Load a version other than 1.30.x (its private binding module may differ). */
  allowUntestedVersion?: boolean;
  /** Let onnxruntime's worker threads spin between calls (default false: they sleep). */
  spinning?: boolean;
  /** The package to load (default 'onnxruntime-node'; tests use a missing name to exercise the fallback). */
  moduleName?: string;
}

export type LoadOrtResult = { ok: true; runtime: OrtRuntime } | { ok: false; reason: string };

const req = createRequire(import.meta.url);

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 200);
}

/** Loads onnxruntime-node and its synchronous native session, or says why it cannot. */
export function loadOrt(options: LoadOrtOptions = {}): LoadOrtResult {
  let version: string;
  let ort: OrtModule;
  let bindingMod: { binding: { InferenceSession: new () => NativeSession }; initOrt: () => void };
  const mod = options.moduleName ?? 'onnxruntime-node';
  try {
    version = (req(`${mod}/dist/version.js`) as { version: string }).version;
  } catch (e) {
    return { ok: false, reason: `${mod} is not installed (${firstLine(e)})` };
  }
  if (!version.startsWith(`${PINNED_ORT_VERSION}.`) && !options.allowUntestedVersion) {
    return {
      ok: false,
      reason: `onnxruntime-node ${version} is installed, but the fast kernels are pinned to ${PINNED_ORT_VERSION}.x (they use its private synchronous binding); install onnxruntime-node@${PINNED_ORT_VERSION} or pass allowUntestedVersion`,
    };
  }
  try {
    ort = req(mod) as OrtModule;
    bindingMod = req(`${mod}/dist/binding.js`);
    bindingMod.initOrt();
  } catch (e) {
    return { ok: false, reason: `onnxruntime-node ${version} failed to load (${firstLine(e)})` };
  }
  if (typeof bindingMod?.binding?.InferenceSession !== 'function') {
    return { ok: false, reason: `onnxruntime-node ${version}: the native binding has no InferenceSession` };
  }
  const threads = Math.max(1, options.threads ?? (os.availableParallelism?.() ?? os.cpus().length));
  const sessionOptions: Record<string, unknown> = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    enableCpuMemArena: true,
    enableMemPattern: false,
    extra: { session: { intra_op: { allow_spinning: options.spinning ? '1' : '0' } } },
  };
  const sessions = new Map<string, NativeSession>();
  const runtime: OrtRuntime = {
    version,
    threads,
    Tensor: ort.Tensor,
    session(key, graph) {
      let s = sessions.get(key);
      if (!s) {
        const bytes = encodeOnnxModel(graph());
        s = new bindingMod.binding.InferenceSession();
        s.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, sessionOptions);
        sessions.set(key, s);
      }
      return s;
    },
    get sessionCount() {
      return sessions.size;
    },
    dispose() {
      for (const s of sessions.values()) s.dispose?.();
      sessions.clear();
    },
  };
  // smoke test: one tiny Gemm must run synchronously and be right
  try {
    const s = runtime.session('__smoke', () => ({
      nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
      inputs: [
        { name: 'a', type: 1, shape: ['m', 'k'] },
        { name: 'b', type: 1, shape: ['k', 'n'] },
      ],
      outputs: [{ name: 'y', type: 1, shape: ['m', 'n'] }],
    }));
    const out = new Float32Array(1);
    s.run(
      { a: new ort.Tensor('float32', Float32Array.from([1, 2]), [1, 2]), b: new ort.Tensor('float32', Float32Array.from([3, 4]), [2, 1]) },
      { y: new ort.Tensor('float32', out, [1, 1]) },
      {},
    );
    if (out[0] !== 11) return { ok: false, reason: `onnxruntime-node ${version}: smoke test gave ${out[0]} instead of 11` };
  } catch (e) {
    return { ok: false, reason: `onnxruntime-node ${version}: the synchronous native session failed (${firstLine(e)})` };
  }
  return { ok: true, runtime };
}
