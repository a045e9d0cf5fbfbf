/**
 * Tensor backend selection. The backend is chosen once per process, here, and every other
 * package takes tfjs from `@opensora/core` (`import { tf } from '@opensora/core'`), so that a
 * process never holds two tfjs instances.
 *
 * `auto` tries, in order: `@tensorflow/tfjs-node-gpu`, `@tensorflow/tfjs-node` (both optional:
 * they cannot be installed everywhere), `@tensorflow/tfjs-backend-wasm`, then the pure-JS `cpu`.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendError } from './errors.js';

export { tf };

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendPreference = 'auto' | BackendName;

export interface BackendInfo {
  /** The tfjs backend now active. */
  name: BackendName;
  /** What was asked for (argument, else `OPENSORA_BACKEND`, else `auto`). */
  requested: BackendPreference;
  /** Why this backend was chosen, in one sentence. */
  reason: string;
  /** One line per candidate that was tried and did not load. */
  notes: string[];
  /** The npm package that provides the backend. */
  package: string;
  /** True for the CUDA build of tfjs-node. */
  gpu: boolean;
  /** Backend capabilities worth reporting (wasm SIMD/threads). */
  features: Record<string, boolean | number | string>;
}

export interface InitBackendOptions {
  /** Print the one-line notes for candidates that failed to load (default: false). */
  verbose?: boolean;
  /** Re-run the selection even if a backend was already chosen in this process. */
  force?: boolean;
}

const PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow', 'wasm', 'cpu'];
let current: BackendInfo | null = null;
let pending: Promise<BackendInfo> | null = null;
let pendingKey = '';

const req = createRequire(import.meta.url);

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.slice(0, 200);
}

/** Loads a native tfjs-node build: GPU first when `gpuFirst`, then CPU. */
async function tryNative(notes: string[]): Promise<{ pkg: string; gpu: boolean } | null> {
  for (const [pkg, gpu] of [
    ['@tensorflow/tfjs-node-gpu', true],
    ['@tensorflow/tfjs-node', false],
  ] as const) {
    try {
      // Guarded dynamic import: these packages are optional and usually absent.
      await import(/* @vite-ignore */ pkg);
      if (!tf.findBackendFactory('tensorflow')) {
        notes.push(`${pkg}: loaded, but registered no 'tensorflow' backend with this tfjs instance`);
        continue;
      }
      if (await tf.setBackend('tensorflow')) return { pkg, gpu };
      notes.push(`${pkg}: loaded, but the 'tensorflow' backend failed to initialise`);
    } catch (e) {
      notes.push(`${pkg}: not available (${firstLine(e)})`);
    }
  }
  return null;
}

/** Directory that holds the tfjs wasm binaries, resolved from the installed package. */
export function wasmBinaryDir(): string {
  return path.dirname(req.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;
}

async function tryWasm(notes: string[]): Promise<Record<string, boolean | number | string> | null> {
  try {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // The threaded build cannot start in Node (its worker comes from a blob URL): single thread.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasm.setWasmPaths(wasmBinaryDir());
    if (await tf.setBackend('wasm')) {
      await tf.ready();
      return {
        simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
        threads: 1,
        wasmDir: wasmBinaryDir(),
      };
    }
    notes.push('@tensorflow/tfjs-backend-wasm: the wasm backend failed to initialise');
  } catch (e) {
    notes.push(`@tensorflow/tfjs-backend-wasm: not available (${firstLine(e)})`);
  }
  return null;
}

function parsePreference(p: string | undefined, source: string): BackendPreference {
  const v = (p ?? 'auto').trim().toLowerCase();
  if (v === '') return 'auto';
  if (!(PREFERENCES as readonly string[]).includes(v)) {
    throw new BackendError(`Unknown backend '${p}' in ${source}`, {
      hint: `use one of ${PREFERENCES.join(', ')}`,
    });
  }
  return v as BackendPreference;
}

async function select(requested: BackendPreference, verbose: boolean): Promise<BackendInfo> {
  const notes: string[] = [];
  const done = (info: Omit<BackendInfo, 'requested' | 'notes'>): BackendInfo => {
    current = { ...info, requested, notes };
    if (verbose) for (const n of notes) console.error(`[opensora] backend: ${n}`);
    return current;
  };

  if (requested === 'auto' || requested === 'tensorflow') {
    const native = await tryNative(notes);
    if (native) {
      return done({
        name: 'tensorflow',
        reason: `${native.pkg} loaded (${native.gpu ? 'CUDA' : 'CPU'} libtensorflow)`,
        package: native.pkg,
        gpu: native.gpu,
        features: {},
      });
    }
    if (requested === 'tensorflow') {
      throw new BackendError(
        `Backend 'tensorflow' was requested but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node could be loaded: ${notes.join('; ')}`,
        {
          hint: "install @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node on a machine that can download libtensorflow, or use OPENSORA_BACKEND=wasm",
          details: { notes },
        },
      );
    }
  }
  if (requested === 'auto' || requested === 'wasm') {
    const features = await tryWasm(notes);
    if (features) {
      return done({
        name: 'wasm',
        reason:
          requested === 'wasm'
            ? 'wasm was requested'
            : 'no native tfjs-node build is installed; the wasm backend is the fastest one available',
        package: '@tensorflow/tfjs-backend-wasm',
        gpu: false,
        features,
      });
    }
    if (requested === 'wasm') {
      throw new BackendError(`Backend 'wasm' was requested but could not be loaded: ${notes.join('; ')}`, {
        hint: 'reinstall @tensorflow/tfjs-backend-wasm, or use OPENSORA_BACKEND=cpu',
        details: { notes },
      });
    }
  }
  if (!(await tf.setBackend('cpu'))) {
    throw new BackendError("The pure-JS 'cpu' backend failed to initialise", { details: { notes } });
  }
  await tf.ready();
  return done({
    name: 'cpu',
    reason: requested === 'cpu' ? 'cpu was requested' : 'no faster backend could be loaded',
    package: '@tensorflow/tfjs-backend-cpu',
    gpu: false,
    features: {},
  });
}

/**
 * Chooses and initialises the tensor backend. `preference` defaults to `OPENSORA_BACKEND`, then
 * `auto`. Calling it again with the same preference returns the cached choice; a different
 * explicit preference (or `force`) switches backends.
 */
export async function initBackend(
  preference?: BackendPreference | string,
  options: InitBackendOptions = {},
): Promise<BackendInfo> {
  const requested =
    preference !== undefined
      ? parsePreference(preference, 'initBackend()')
      : parsePreference(process.env.OPENSORA_BACKEND, 'OPENSORA_BACKEND');
  if (!options.force && current && current.requested === requested && tf.getBackend() === current.name) {
    return current;
  }
  const key = `${requested}`;
  if (pending && pendingKey === key && !options.force) return pending;
  pendingKey = key;
  pending = select(requested, options.verbose ?? false).finally(() => {
    pending = null;
  });
  return pending;
}

/** Ensures some backend is initialised (the env/auto choice if none was made yet). */
export async function ensureBackend(): Promise<BackendInfo> {
  return current && tf.getBackend() === current.name ? current : initBackend();
}

/** What `initBackend` chose, or null before it ran. */
export function describeBackend(): BackendInfo | null {
  return current;
}

/** A one-line human description of the active backend. */
export function formatBackend(info: BackendInfo | null = current): string {
  if (!info) return 'no backend initialised (call initBackend())';
  const feats = Object.entries(info.features)
    .filter(([k]) => k !== 'wasmDir')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return `${info.name} (${info.package}${feats ? `, ${feats}` : ''}): ${info.reason}`;
}
