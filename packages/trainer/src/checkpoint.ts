/**
 * Checkpoint folders, one per save, named like the reference: `epoch<E>-global_step<G>` (not
 * zero-padded; G = steps completed). Layout:
 *
 *   model/model.safetensors      the model state dict, official key names (loadable by STDiT2.fromPretrained)
 *   model/config.json            the model config
 *   ema.safetensors              the EMA weights (+ the model's untracked entries, so it loads as a model)
 *   optimizer/optimizer.safetensors  AdamW moments `<param>.exp_avg` / `<param>.exp_avg_sq`
 *   optimizer/state.json         step counts and hyper-parameters
 *   sampler.json                 bucket-sampler position: {seed, epoch, step, last_micro_batch_access_index, ...}
 *   rng.json                     RNG states of the run
 *   running_states.json          {epoch, step, global_step, sample_start_index, ...}
 *   manifest.json                every file above with its byte size, written last
 *
 * A save writes everything into a hidden temporary folder beside the final one, fsyncs every file
 * and the folder, then renames it into place: a crash at any point leaves either no folder with
 * the final name or a complete one. Hidden leftovers are removed by the next save.
 */
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tf, saveSafetensors, loadSafetensors, atomicWriteFile, OpenSoraError, type SafetensorsInput } from '@opensora/core';
import type { AdamWStateJson, NamedTensors } from './optim.js';

export const CHECKPOINT_NAME_RE = /^epoch(\d+)-global_step(\d+)$/;
const MANIFEST = 'manifest.json';
const TMP_PREFIX = '.tmp-';
const TRASH_PREFIX = '.trash-';

/** The reference's `running_states.json`, plus what exact resume needs. */
export interface RunningStates {
  epoch: number;
  /** Steps done within `epoch`. */
  step: number;
  /** Steps done in total. */
  global_step: number;
  /** `step * batch_size`, or null (the reference's field; meaningful for fixed-size datasets only). */
  sample_start_index: number | null;
  /** Consecutive non-finite steps at the time of the save. */
  consecutive_non_finite?: number;
  /** Steps skipped so far because of a non-finite loss or gradient. */
  skipped_steps?: number;
  [key: string]: unknown;
}

export interface CheckpointData {
  runningStates: RunningStates;
  /** The model state dict (official names). */
  model: Record<string, SafetensorsInput>;
  modelConfig?: Record<string, unknown>;
  ema?: Record<string, SafetensorsInput>;
  optimizer?: { tensors: NamedTensors; state: AdamWStateJson };
  sampler?: Record<string, unknown>;
  rng?: Record<string, unknown>;
  /** Extra JSON files: name (no folder) -> value. */
  extraJson?: Record<string, unknown>;
}

export interface SaveCheckpointOptions {
  /** After a successful save, delete older checkpoints so that only the newest K remain. */
  keepLast?: number | null;
  /** Called after each file is written into the temporary folder (fault injection in tests). */
  onFileWritten?: (relativePath: string) => void | Promise<void>;
}

export interface CheckpointInfo {
  path: string;
  name: string;
  epoch: number;
  globalStep: number;
}

export function checkpointName(epoch: number, globalStep: number): string {
  return `epoch${epoch}-global_step${globalStep}`;
}

function fsyncPath(p: string): void {
  const fd = openSync(p, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function writeJson(file: string, value: unknown): Promise<void> {
  const fh = await open(file, 'w');
  try {
    await fh.writeFile(JSON.stringify(value, null, 2) + '\n', 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Removes hidden temporary/trash folders left by an interrupted save. */
async function cleanLeftovers(outputs: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(outputs);
  } catch {
    return;
  }
  for (const n of names) {
    if (n.startsWith(TMP_PREFIX) || n.startsWith(TRASH_PREFIX)) await rm(path.join(outputs, n), { recursive: true, force: true });
  }
}

/**
 * Writes a checkpoint folder `outputs/epoch<E>-global_step<G>` atomically and returns its path.
 * An existing folder with the same name is replaced.
 */
export async function saveCheckpoint(outputs: string, data: CheckpointData, options: SaveCheckpointOptions = {}): Promise<string> {
  const { epoch, global_step: globalStep } = data.runningStates;
  const name = checkpointName(epoch, globalStep);
  await mkdir(outputs, { recursive: true });
  await cleanLeftovers(outputs);
  const tmp = path.join(outputs, `${TMP_PREFIX}${name}-${process.pid}-${randomBytes(3).toString('hex')}`);
  const final = path.join(outputs, name);
  await mkdir(tmp, { recursive: true });
  const files: Record<string, number> = {};
  const done = async (rel: string) => {
    const abs = path.join(tmp, rel);
    fsyncPath(abs);
    files[rel] = (await stat(abs)).size;
    await options.onFileWritten?.(rel);
  };
  try {
    await mkdir(path.join(tmp, 'model'));
    await saveSafetensors(path.join(tmp, 'model', 'model.safetensors'), data.model, { metadata: { format: 'pt', producer: '@opensora/trainer' } });
    await done('model/model.safetensors');
    if (data.modelConfig) {
      await writeJson(path.join(tmp, 'model', 'config.json'), data.modelConfig);
      await done('model/config.json');
    }
    fsyncPath(path.join(tmp, 'model'));
    if (data.ema) {
      await saveSafetensors(path.join(tmp, 'ema.safetensors'), data.ema, { metadata: { format: 'pt', producer: '@opensora/trainer', kind: 'ema' } });
      await done('ema.safetensors');
    }
    if (data.optimizer) {
      await mkdir(path.join(tmp, 'optimizer'));
      await saveSafetensors(path.join(tmp, 'optimizer', 'optimizer.safetensors'), data.optimizer.tensors, { metadata: { producer: '@opensora/trainer', kind: 'adamw' } });
      await done('optimizer/optimizer.safetensors');
      await writeJson(path.join(tmp, 'optimizer', 'state.json'), data.optimizer.state);
      await done('optimizer/state.json');
      fsyncPath(path.join(tmp, 'optimizer'));
    }
    if (data.sampler) {
      await writeJson(path.join(tmp, 'sampler.json'), data.sampler);
      await done('sampler.json');
    }
    if (data.rng) {
      await writeJson(path.join(tmp, 'rng.json'), data.rng);
      await done('rng.json');
    }
    for (const [n, v] of Object.entries(data.extraJson ?? {})) {
      if (n.includes('/') || n === MANIFEST) throw new OpenSoraError('E_INVALID_ARGUMENT', `checkpoint extra file name '${n}' is not allowed`);
      await writeJson(path.join(tmp, n), v);
      await done(n);
    }
    await writeJson(path.join(tmp, 'running_states.json'), data.runningStates);
    await done('running_states.json');
    await writeJson(path.join(tmp, MANIFEST), { format: 'opensora-trainer-checkpoint', version: 1, name, files });
    fsyncPath(path.join(tmp, MANIFEST));
    fsyncPath(tmp);
    if (existsSync(final)) {
      const trash = path.join(outputs, `${TRASH_PREFIX}${name}-${randomBytes(3).toString('hex')}`);
      await rename(final, trash);
      await rename(tmp, final);
      await rm(trash, { recursive: true, force: true });
    } else {
      await rename(tmp, final);
    }
    fsyncPath(outputs);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
  if (options.keepLast && options.keepLast > 0) await pruneCheckpoints(outputs, options.keepLast);
  return final;
}

/** Checks that a folder is a complete checkpoint (manifest present, every file of the right size). */
export function verifyCheckpoint(dir: string): { ok: true } | { ok: false; reason: string } {
  const manifestPath = path.join(dir, MANIFEST);
  if (!existsSync(manifestPath)) return { ok: false, reason: `no ${MANIFEST}` };
  let manifest: { files?: Record<string, number> };
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch (e) {
    return { ok: false, reason: `${MANIFEST} is not valid JSON (${(e as Error).message})` };
  }
  for (const [rel, size] of Object.entries(manifest.files ?? {})) {
    const abs = path.join(dir, rel);
    if (!existsSync(abs)) return { ok: false, reason: `missing ${rel}` };
    if (statSync(abs).size !== size) return { ok: false, reason: `${rel} has ${statSync(abs).size} bytes, manifest says ${size}` };
  }
  if (manifest.files?.['running_states.json'] === undefined) return { ok: false, reason: 'manifest lists no running_states.json' };
  return { ok: true };
}

/** Complete checkpoints under `outputs`, oldest first (by global step, then epoch). */
export function listCheckpoints(outputs: string, options: { includeIncomplete?: boolean } = {}): CheckpointInfo[] {
  let names: string[];
  try {
    names = readdirSync(outputs);
  } catch {
    return [];
  }
  const out: CheckpointInfo[] = [];
  for (const n of names) {
    const m = CHECKPOINT_NAME_RE.exec(n);
    if (!m) continue;
    const p = path.join(outputs, n);
    if (!options.includeIncomplete && !verifyCheckpoint(p).ok) continue;
    out.push({ path: p, name: n, epoch: Number(m[1]), globalStep: Number(m[2]) });
  }
  return out.sort((a, b) => a.globalStep - b.globalStep || a.epoch - b.epoch);
}

/** The newest complete checkpoint under `outputs`, or null. */
export function findLatestCheckpoint(outputs: string): string | null {
  const all = listCheckpoints(outputs);
  return all.length ? all[all.length - 1]!.path : null;
}

/** Deletes all but the newest `keep` complete checkpoints. */
export async function pruneCheckpoints(outputs: string, keep: number): Promise<string[]> {
  const all = listCheckpoints(outputs);
  const doomed = all.slice(0, Math.max(0, all.length - keep));
  for (const c of doomed) await rm(c.path, { recursive: true, force: true });
  return doomed.map((c) => c.path);
}

export interface LoadedCheckpoint {
  dir: string;
  runningStates: RunningStates;
  /** Model tensors (caller disposes). */
  model: Record<string, tf.Tensor>;
  modelConfig: Record<string, unknown> | null;
  ema: Record<string, tf.Tensor> | null;
  optimizer: { tensors: Record<string, tf.Tensor>; state: AdamWStateJson } | null;
  sampler: Record<string, unknown> | null;
  rng: Record<string, unknown> | null;
  readJson(name: string): Promise<unknown>;
}

async function readJsonIf(file: string): Promise<Record<string, unknown> | null> {
  if (!existsSync(file)) return null;
  return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
}

export interface LoadCheckpointOptions {
  /** Skip these parts (e.g. weights-only loads skip the optimizer). */
  skip?: Array<'ema' | 'optimizer'>;
}

/** Reads a checkpoint folder written by `saveCheckpoint`. */
export async function loadCheckpoint(dir: string, options: LoadCheckpointOptions = {}): Promise<LoadedCheckpoint> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new OpenSoraError('E_IO', `Checkpoint folder ${dir} does not exist`, { hint: 'pass a folder named epoch<E>-global_step<G>, or load: "latest"' });
  }
  const v = verifyCheckpoint(dir);
  if (!v.ok) {
    throw new OpenSoraError('E_IO', `Checkpoint ${dir} is incomplete or damaged: ${v.reason}`, {
      hint: 'resume from an earlier checkpoint (findLatestCheckpoint skips damaged ones)',
    });
  }
  const skip = new Set(options.skip ?? []);
  const runningStates = (await readJsonIf(path.join(dir, 'running_states.json'))) as RunningStates;
  const model = loadSafetensors(path.join(dir, 'model', 'model.safetensors'));
  const modelConfig = await readJsonIf(path.join(dir, 'model', 'config.json'));
  const emaPath = path.join(dir, 'ema.safetensors');
  const ema = !skip.has('ema') && existsSync(emaPath) ? loadSafetensors(emaPath) : null;
  const optPath = path.join(dir, 'optimizer', 'optimizer.safetensors');
  const optimizer =
    !skip.has('optimizer') && existsSync(optPath)
      ? { tensors: loadSafetensors(optPath), state: (await readJsonIf(path.join(dir, 'optimizer', 'state.json'))) as unknown as AdamWStateJson }
      : null;
  return {
    dir,
    runningStates,
    model,
    modelConfig,
    ema,
    optimizer,
    sampler: await readJsonIf(path.join(dir, 'sampler.json')),
    rng: await readJsonIf(path.join(dir, 'rng.json')),
    readJson: async (name: string) => readJsonIf(path.join(dir, name)),
  };
}

/** Disposes every tensor of a loaded checkpoint. */
export function disposeCheckpoint(c: LoadedCheckpoint): void {
  tf.dispose(Object.values(c.model));
  if (c.ema) tf.dispose(Object.values(c.ema));
  if (c.optimizer) tf.dispose(Object.values(c.optimizer.tensors));
}

/** Writes a small JSON file atomically (temp, fsync, rename). */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await atomicWriteFile(file, JSON.stringify(value, null, 2) + '\n');
}
