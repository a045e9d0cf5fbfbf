/**
 * The CLI's one place where the tensor backend is chosen: `--backend` (or OPENSORA_BACKEND),
 * then the native matrix-product kernels of core's accel module (`--accel onnxruntime`, the
 * default, or OPENSORA_ACCEL; `none` keeps tfjs's own kernels). Without onnxruntime-node the
 * kernels are simply not replaced, with a one-line note.
 */
import { enableFastKernels, formatBackend, initBackend, type BackendInfo, type BackendPreference } from '@opensora/core';
import { UsageError } from './errors.js';
import type { CliIO } from './program.js';

export interface GlobalFlags {
  backend?: string;
  accel?: string;
}

export async function setupBackend(global: GlobalFlags, io: CliIO): Promise<BackendInfo> {
  const backend = await initBackend((global.backend as BackendPreference | undefined) ?? undefined);
  const accel = (global.accel ?? process.env.OPENSORA_ACCEL ?? 'onnxruntime').toLowerCase();
  if (accel !== 'onnxruntime' && accel !== 'none') throw new UsageError(`--accel must be onnxruntime or none, got '${accel}'`);
  let note = 'tfjs kernels';
  if (accel === 'onnxruntime' && backend.name !== 'tensorflow') {
    const info = enableFastKernels({ engine: 'onnxruntime' });
    note = info.enabled ? `onnxruntime-node ${info.version} kernels` : `tfjs kernels (${info.note})`;
  }
  io.stderr(`backend: ${formatBackend(backend)}; ${note}\n`);
  return backend;
}
