/**
 * The real `opensora` executable in a child process: exit codes as a shell sees them (0, 2, 130),
 * one-line errors without stack traces, and a fresh process that knows the tiny resolutions.
 *
 * The bin is built from src/bin.ts with tsup (the package's build tool and settings) into
 * .test-results/, so that the test does not depend on, or race with, a build of dist/.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { build } from 'tsup';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeMedia, synthesizeDataset } from '@opensora/data';

const PKG = path.resolve(import.meta.dirname, '..');
let binDir: string;
let bin: string;
let work: string;

interface Proc {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { onStderr?: (all: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Proc> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OPENSORA_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      opts.onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

function expectOneLineUsageError(p: Proc, pattern: RegExp): void {
  expect(p.code, p.stderr).toBe(2);
  const errors = p.stderr.split('\n').filter((l) => /error/i.test(l));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(pattern);
  expect(p.stderr).not.toMatch(/^\s+at /m);
}

beforeAll(async () => {
  mkdirSync(path.join(PKG, '.test-results'), { recursive: true });
  binDir = mkdtempSync(path.join(PKG, '.test-results', 'bin-'));
  await build({
    config: false,
    entry: { bin: path.join(PKG, 'src/bin.ts') },
    format: ['esm'],
    outDir: binDir,
    target: 'node20',
    shims: true,
    silent: true,
    clean: false,
    dts: false,
  });
  bin = path.join(binDir, 'bin.js');
  expect(existsSync(bin)).toBe(true);
  work = mkdtempSync(path.join(os.tmpdir(), 'oscli-bin-'));
}, 120_000);

afterAll(() => {
  rmSync(binDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe('the opensora executable', () => {
  it('is what the package installs: bin opensora -> dist/bin.js, built from src/bin.ts with a shebang', async () => {
    const pkg = JSON.parse(readFileSync(path.join(PKG, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ opensora: './dist/bin.js' });
    expect(readFileSync(path.join(PKG, 'tsup.config.ts'), 'utf8')).toContain("'src/bin.ts'");
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('--help exits 0 and prints the usage', async () => {
    const p = await run(['--help']);
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/^Usage: opensora \[options\] \[command\]/);
    expect(p.stderr).toBe('');
  });

  it('--version exits 0', async () => {
    const p = await run(['--version']);
    expect(p.code).toBe(0);
    expect(p.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('a bad flag, a bad command and a bad value exit 2 with one line', async () => {
    expectOneLineUsageError(await run(['--bogus']), /unknown option '--bogus'/);
    expectOneLineUsageError(await run(['sample', '--bogus']), /unknown option '--bogus'/);
    expectOneLineUsageError(await run(['nope']), /unknown command 'nope'/);
    expectOneLineUsageError(await run(['sample', '-p', 'x', '--num-frames', 'many']), /--num-frames must be an integer/);
    expectOneLineUsageError(await run(['train', '--start-from-scratch']), /--start-from-scratch needs --load/);
  });

  it('a fresh process samples at a tiny resolution with random tiny weights', async () => {
    const p = await run(['sample', '--model', 'tiny', '-p', 'a red circle', '--resolution', 'tiny-32', '--aspect-ratio', '1:1', '--num-frames', '1', '--steps', '1', '--save-dir', 'out']);
    expect(p.code, p.stderr).toBe(0);
    const info = await probeMedia(path.join(work, 'out', 'sample_0.png'));
    expect([info.height, info.width]).toEqual([32, 32]);
  });

  it('SIGINT during training saves a checkpoint and exits 130', async () => {
    const ds = await synthesizeDataset({ outDir: path.join(work, 'ds'), seed: 2, numVideos: 3, numImages: 3, sizes: [[32, 32]], imageSizes: [[32, 32]], lengths: [8], concurrency: 2 });
    let sent = false;
    const p = await run(['train', '--preset', 'tiny', '--data', ds.csvPath, '--outputs', 'sig', '--max-steps', '100000', '--ckpt-every', '100000'], {
      onStderr: (all, child) => {
        if (!sent && /tiny: [1-9]\d*\//.test(all)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent).toBe(true);
    expect(p.code, p.stderr).toBe(130);
    const m = /stopped by signal; last checkpoint: (\S+)/.exec(p.stdout);
    expect(m, p.stdout).not.toBeNull();
    expect(existsSync(path.join(m![1]!, 'model', 'model.safetensors'))).toBe(true);
  });
});
