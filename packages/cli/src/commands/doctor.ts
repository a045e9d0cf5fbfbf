import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { createRequire } from 'node:module';
import { formatBackend, initBackend, type BackendInfo } from '@opensora/core';
import { resolveBinaries } from '@opensora/data';

export interface DoctorReport {
  backend: BackendInfo;
  node: string;
  platform: string;
  cpus: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  ffmpeg: { path: string | null; version: string | null; source: string };
  ffprobe: { path: string | null; version: string | null; source: string };
  onnxruntime: string | null;
  canRun: string[];
}

const req = createRequire(import.meta.url);

function binaryReport(which: 'ffmpeg' | 'ffprobe'): { path: string | null; version: string | null; source: string } {
  let bin;
  try {
    bin = resolveBinaries();
  } catch (e) {
    return { path: null, version: null, source: (e as Error).message };
  }
  const p = bin[which];
  try {
    const out = execFileSync(p, ['-version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    return { path: p, version: out.split('\n')[0]!.trim(), source: bin.source[which] };
  } catch (e) {
    return { path: null, version: null, source: `${p} (${bin.source[which]}) does not run: ${(e as Error).message.split('\n')[0]}` };
  }
}

export async function runDoctor(): Promise<DoctorReport> {
  const backend = await initBackend();
  let onnx: string | null = null;
  try {
    onnx = (req('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    onnx = null;
  }
  const memoryGiB = os.totalmem() / 2 ** 30;
  const canRun: string[] = [];
  canRun.push('tiny presets: training and sampling (the demo)');
  if (backend.gpu) {
    canRun.push('STDiT2-XL/2 inference and training with the official weights (GPU backend)');
  } else {
    canRun.push(
      `STDiT2-XL/2 builds and loads (${memoryGiB >= 8 ? 'enough' : 'too little'} memory for the 3.07 GB checkpoint), but full-size sampling is impractically slow without a GPU backend`,
    );
  }
  return {
    backend,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    cpus: os.cpus().length,
    memoryGiB,
    freeMemoryGiB: os.freemem() / 2 ** 30,
    ffmpeg: binaryReport('ffmpeg'),
    ffprobe: binaryReport('ffprobe'),
    onnxruntime: onnx,
    canRun,
  };
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [
    `backend   ${formatBackend(r.backend)}`,
    ...r.backend.notes.map((n) => `          tried: ${n}`),
    `node      ${r.node} on ${r.platform}, ${r.cpus} CPU cores`,
    `memory    ${r.memoryGiB.toFixed(1)} GiB total, ${r.freeMemoryGiB.toFixed(1)} GiB free`,
    `ffmpeg    ${r.ffmpeg.path ? `${r.ffmpeg.version} (${r.ffmpeg.source}: ${r.ffmpeg.path})` : 'NOT FOUND (' + r.ffmpeg.source + '): install ffmpeg or set FFMPEG_PATH'}`,
    `ffprobe   ${r.ffprobe.path ? `${r.ffprobe.version} (${r.ffprobe.source}: ${r.ffprobe.path})` : 'NOT FOUND (' + r.ffprobe.source + '): install ffprobe or set FFPROBE_PATH'}`,
    `kernels   ${r.onnxruntime ? `onnxruntime-node ${r.onnxruntime} (native matrix products)` : 'onnxruntime-node not installed (tfjs kernels only)'}`,
    'can run:',
    ...r.canRun.map((c) => `  - ${c}`),
  ];
  return lines.join('\n');
}
