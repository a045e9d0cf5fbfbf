/** Finding and opening the weights of a diffusers model folder. */
import fs from 'node:fs';
import path from 'node:path';
import { openSafetensors, type SafetensorsReader } from '@opensora/core';
import { ioError } from './errors.js';

/** What `loadStateDict` needs from a lazy reader (core's `SafetensorsReader` is one). */
export interface TensorSource {
  keys(): string[];
  info(name: string): { shape: readonly number[] };
  readFloat32(name: string): Float32Array;
  close?(): void;
}

/** Weight files looked for in a diffusers folder, in order. */
export const WEIGHT_FILE_CANDIDATES = [
  'diffusion_pytorch_model.safetensors',
  'diffusion_pytorch_model.safetensors.index.json',
  'model.safetensors',
  'model.safetensors.index.json',
  'diffusion_pytorch_model.fp16.safetensors',
  'diffusion_pytorch_model.fp16.safetensors.index.json',
];

/** Opens the safetensors weights (single file or sharded index) of a diffusers folder. */
export function openWeights(dir: string): SafetensorsReader {
  for (const c of WEIGHT_FILE_CANDIDATES) {
    const p = path.join(dir, c);
    if (fs.existsSync(p)) return openSafetensors(p);
  }
  const bins = fs.readdirSync(dir).filter((f) => f.endsWith('.bin') || f.endsWith('.ckpt') || f.endsWith('.pt'));
  throw ioError(`No safetensors weights in '${dir}' (looked for ${WEIGHT_FILE_CANDIDATES.join(', ')})`, {
    hint:
      bins.length > 0
        ? `found ${bins.join(', ')}: PyTorch pickles cannot be read here; convert them to safetensors (e.g. diffusers' save_pretrained(..., safe_serialization=True))`
        : 'download the folder with its diffusion_pytorch_model.safetensors',
  });
}
