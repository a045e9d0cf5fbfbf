import { existsSync, mkdirSync, renameSync, rmSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { synthesizeDataset } from '@opensora/data';
import { loadSafetensors, tf } from '@opensora/core';

export const PKG_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = path.join(os.tmpdir(), 'opensora-trainer-tests');

/**
 * A small synthetic dataset (mp4 clips and png images from @opensora/data), made once per machine
 * and shared by the test files (written to a temporary folder, then renamed into place).
 */
export async function syntheticDataset(name = 'base', options: { seed?: number; numVideos?: number; numImages?: number } = {}): Promise<string> {
  const dir = path.join(CACHE, `${name}-v1`);
  const csv = path.join(dir, 'dataset.csv');
  if (existsSync(csv)) return csv;
  mkdirSync(CACHE, { recursive: true });
  const tmp = mkdtempSync(path.join(CACHE, `.${name}-`));
  const r = await synthesizeDataset({ outDir: tmp, seed: options.seed ?? 1, numVideos: options.numVideos ?? 16, numImages: options.numImages ?? 8, concurrency: 2, csvName: 'dataset.csv' });
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another test file made it first
  }
  if (path.basename(r.csvPath) !== 'dataset.csv') throw new Error(`unexpected csv name ${r.csvPath}`);
  return csv;
}

export function tmpDir(prefix: string): string {
  mkdirSync(CACHE, { recursive: true });
  return mkdtempSync(path.join(os.tmpdir(), `trainer-${prefix}-`));
}

/** Every tensor of a safetensors file as raw float bits. */
export function readBits(file: string): Record<string, Uint32Array> {
  const rec = loadSafetensors(file);
  const out: Record<string, Uint32Array> = {};
  for (const [k, t] of Object.entries(rec)) {
    const d = t.dataSync();
    out[k] = new Uint32Array(new Float32Array(d).buffer);
  }
  tf.dispose(Object.values(rec));
  return out;
}

/** Names of the tensors whose bits differ (and the count of differing elements of the first). */
export function diffBits(a: Record<string, Uint32Array>, b: Record<string, Uint32Array>): string[] {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  const bad: string[] = [];
  for (const n of names) {
    const x = a[n];
    const y = b[n];
    if (!x || !y || x.length !== y.length) {
      bad.push(`${n}: missing or resized`);
      continue;
    }
    let d = 0;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) d++;
    if (d) bad.push(`${n}: ${d}/${x.length} elements differ`);
  }
  return bad;
}

export interface WorkerRun {
  child: ChildProcess;
  events: Array<Record<string, unknown>>;
  stderr: string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `src/worker-entry.ts` (through tsx) with the given arguments; `onEvent` sees each JSON line. */
export function startWorker(args: string[], onEvent?: (e: Record<string, unknown>, run: WorkerRun) => void): WorkerRun {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PKG_ROOT, 'src', 'worker-entry.ts'), '--events', '--backend', 'wasm', ...args], {
    cwd: PKG_ROOT,
    env: { ...process.env, OPENSORA_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run: WorkerRun = { child, events: [], stderr: '', done: null as never };
  let buf = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      try {
        const e = JSON.parse(line) as Record<string, unknown>;
        run.events.push(e);
        onEvent?.(e, run);
      } catch {
        /* a non-JSON line */
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    run.stderr += chunk.toString('utf8');
  });
  run.done = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return run;
}

/**
 * Overrides that make the tiny presets cheaper for tests of the training mechanics (resume,
 * checkpoints, pipeline): a 48-wide model on 4x4 built-in VAE patches. Too narrow to learn to
 * sample (its tokens carry 192 values), which these tests do not need.
 */
export const FAST = ['vae.patchSize=4', 'model.config.hiddenSize=48'];
