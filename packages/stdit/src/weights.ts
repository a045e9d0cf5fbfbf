/**
 * Checkpoint I/O in the official layout: `model.safetensors` (+ `config.json`) as on the hub
 * (hpcai-tech/OpenSora-STDiT-v2-stage{2,3}), read lazily one tensor at a time, and the
 * reference loader's reparameterisation (spec section 8): dropped `pos_embed*` keys, a 4-D
 * patch-embedding weight unsqueezed to 5-D, and `y_embedding` extended (last row repeated) or
 * truncated to the model's `modelMaxLength`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { atomicWriteFile, ConfigError, OpenSoraError, openSafetensors, saveSafetensors, tf, type SafetensorsReader } from '@opensora/core';
import { configFromOfficial, configToOfficial, resolveConfig, type STDiT2Config, type STDiT2ConfigInput } from './config.js';

/** Keys the reference loader always deletes. */
export const DROPPED_KEYS = ['pos_embed', 'pos_embed_temporal'];

/**
 * `y_embedding` rows adapted to `rows`: extended by repeating the last row (the reference's
 * 120 -> 200 extension of PixArt-style checkpoints) or truncated.
 */
export function adaptCaptionEmbedding(data: Float32Array, shape: number[], rows: number): { data: Float32Array; shape: number[] } {
  const [L, C] = shape as [number, number];
  if (L === rows) return { data, shape };
  const out = new Float32Array(rows * C);
  if (rows < L) out.set(data.subarray(0, rows * C));
  else {
    out.set(data);
    const last = data.subarray((L - 1) * C, L * C);
    for (let r = L; r < rows; r++) out.set(last, r * C);
  }
  return { data: out, shape: [rows, C] };
}

export interface ResolvedCheckpoint {
  weights: string;
  config: STDiT2Config;
  configSource: string;
}

/**
 * Finds weights and config: a directory holding `model.safetensors` (or an index) and
 * `config.json`, or a `.safetensors` file whose config is in its `__metadata__.config` or in a
 * `config.json` next to it. `config` overrides both.
 */
export function resolveCheckpoint(p: string, reader: SafetensorsReader, config?: STDiT2ConfigInput | Record<string, unknown>): ResolvedCheckpoint {
  const isDir = statSync(p).isDirectory();
  if (config) {
    const official = Object.keys(config).some((k) => k.includes('_'));
    return {
      weights: reader.path,
      config: official ? configFromOfficial(config as Record<string, unknown>) : resolveConfig(config as STDiT2ConfigInput, 'options.config'),
      configSource: 'options.config',
    };
  }
  const candidates = [isDir ? path.join(p, 'config.json') : path.join(path.dirname(p), 'config.json')];
  const meta = reader.metadata?.config;
  if (!isDir && meta) return { weights: reader.path, config: configFromOfficial(meta), configSource: `${reader.path} (__metadata__.config)` };
  for (const c of candidates) {
    if (existsSync(c)) return { weights: reader.path, config: configFromOfficial(readFileSync(c, 'utf8')), configSource: c };
  }
  if (meta) return { weights: reader.path, config: configFromOfficial(meta), configSource: `${reader.path} (__metadata__.config)` };
  throw new ConfigError(`No STDiT2 config found for ${p}`, {
    hint: 'put the hub config.json next to the weights, or pass { config } (for the official 1.1 model: STDIT2_PRESETS["STDiT2-XL/2"])',
  });
}

/** Reads every expected tensor from `reader`, applying the reference loader's reparameterisation. */
export function* readOfficialTensors(
  reader: SafetensorsReader,
  expected: { name: string; shape: number[] }[],
  modelMaxLength: number,
): Generator<[string, tf.Tensor]> {
  for (const s of expected) {
    if (!reader.has(s.name)) continue;
    const info = reader.info(s.name);
    let data = reader.readFloat32(s.name);
    let shape = info.shape;
    if (s.name === 'x_embedder.proj.weight' && shape.length === 4) shape = [shape[0]!, shape[1]!, 1, shape[2]!, shape[3]!];
    if (s.name === 'y_embedder.y_embedding' && shape.length === 2 && shape[0] !== modelMaxLength) {
      ({ data, shape } = adaptCaptionEmbedding(data, shape, modelMaxLength));
    }
    yield [s.name, tf.tensor(data, shape, 'float32')];
  }
}

/** Keys in the file that the model does not use (after the reference loader's deletions). */
export function unexpectedKeys(reader: SafetensorsReader, expected: Set<string>): string[] {
  return reader.keys().filter((k) => !expected.has(k) && !DROPPED_KEYS.includes(k));
}

export async function writeCheckpoint(
  file: string,
  tensors: Map<string, tf.Tensor>,
  config: STDiT2Config,
): Promise<void> {
  await saveSafetensors(file, tensors, {
    metadata: { format: 'pt', config: JSON.stringify(configToOfficial(config)) },
  });
}

export async function writePretrained(dir: string, tensors: Map<string, tf.Tensor>, config: STDiT2Config): Promise<void> {
  await writeCheckpoint(path.join(dir, 'model.safetensors'), tensors, config);
  await atomicWriteFile(path.join(dir, 'config.json'), JSON.stringify(configToOfficial(config), null, 2) + '\n');
}

export function openWeights(p: string): SafetensorsReader {
  if (!existsSync(p)) throw new OpenSoraError('E_IO', `STDiT2 checkpoint ${p} does not exist`, { hint: 'check the path' });
  return openSafetensors(p);
}
