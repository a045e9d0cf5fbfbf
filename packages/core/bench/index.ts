/**
 * safetensors read throughput: a 500 MB F32 file (50 tensors of 10 MB) read tensor by tensor
 * through `openSafetensors().readFloat32`, against a plain `fs.readFile` of the same file, in the
 * same run. Reference figure: fs.readFile is the ceiling (the bytes must come off the disk / page
 * cache either way). Run: npm run bench -w @opensora/core
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openSafetensors } from '../src/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'st-bench-'));
const file = path.join(dir, 'bench.safetensors');
const nTensors = 50;
const floats = (10 * 1024 * 1024) / 4;
const header: Record<string, unknown> = {};
for (let i = 0; i < nTensors; i++) {
  header[`t${i}`] = { dtype: 'F32', shape: [floats], data_offsets: [i * floats * 4, (i + 1) * floats * 4] };
}
const h = Buffer.from(JSON.stringify(header));
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(h.length));
const fd = openSync(file, 'w');
writeSync(fd, len);
writeSync(fd, h);
const chunk = Buffer.from(new Float32Array(floats).fill(0.5).buffer);
for (let i = 0; i < nTensors; i++) writeSync(fd, chunk);
closeSync(fd);
const mb = (nTensors * floats * 4) / 1e6;

function fmt(label: string, ms: number) {
  console.log(`${label.padEnd(42)} ${ms.toFixed(0).padStart(6)} ms  ${(mb / (ms / 1000)).toFixed(0).padStart(6)} MB/s`);
}

try {
  console.log(`safetensors read throughput, ${mb.toFixed(0)} MB file (${nTensors} F32 tensors)`);
  for (let rep = 0; rep < 2; rep++) {
    let t = performance.now();
    const buf = await readFile(file);
    fmt(`fs.readFile (reference ceiling)`, performance.now() - t);
    void buf.length;
    t = performance.now();
    const r = openSafetensors(file);
    let sum = 0;
    for (const k of r.keys()) sum += r.readFloat32(k)[0]!;
    r.close();
    fmt(`openSafetensors + readFloat32 every tensor`, performance.now() - t);
    t = performance.now();
    const r2 = openSafetensors(file);
    r2.readFloat32('t25');
    r2.close();
    const one = performance.now() - t;
    console.log(`${'one tensor of 50 (lazy)'.padEnd(42)} ${one.toFixed(1).padStart(6)} ms  (${r2.bytesRead} bytes read)`);
    void sum;
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
