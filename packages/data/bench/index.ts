/**
 * Data-pipeline benchmark on 16x256x256 H.264 clips made by the synthetic generator:
 * probe rows/s (datautil info), scene-detection frames/s, reader samples/s (bucket [16, 256, 256],
 * in-thread and with worker threads, and through the prefetching batch loader), each printed next
 * to a plain ffprobe / ffmpeg run over the same clips in the same process run.
 *
 *   npm run bench -w @opensora/data            (BENCH_CLIPS=32 to change the clip count)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pLimit from 'p-limit';
import { BatchLoader, DatasetReader, detectScenesInRows, probeRows, resolveBinaries, synthesizeDataset, type DatasetRow } from '../src/index.js';

const N = Number(process.env.BENCH_CLIPS ?? 24);
const CONC = 2;

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let bytes = 0;
    p.stdout.on('data', (d: Buffer) => (bytes += d.length));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(bytes) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  return [r, (performance.now() - t0) / 1000];
}

function row(label: string, ours: string, ref: string, ratio: string): void {
  console.log(`${label.padEnd(44)} ${ours.padStart(16)} ${ref.padStart(22)} ${ratio.padStart(8)}`);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'osdata-bench-'));
  try {
    const bin = resolveBinaries();
    const [synth, tSynth] = await timed(() => synthesizeDataset({ outDir: dir, seed: 1, numVideos: N, numImages: 0, sizes: [[256, 256]], lengths: [16], fps: [24], cutFraction: 0.25, minSceneFrames: 8, preset: 'veryfast', crf: 20 }));
    const files = synth.rows.map((r) => path.join(dir, r.path));
    const frames = synth.rows.reduce((a, r) => a + r.num_frames!, 0);
    console.log(`@opensora/data bench: ${N} clips of 16x256x256 H.264 (${frames} frames), ffmpeg ${bin.source.ffmpeg} (${bin.ffmpeg}), ${os.cpus().length} cores`);
    console.log(`synthesis: ${(N / tSynth).toFixed(1)} clips/s (render + libx264 veryfast)`);
    console.log('');
    row('figure', 'ours', 'plain ffmpeg/ffprobe', 'ratio');
    row('-'.repeat(44), '-'.repeat(16), '-'.repeat(22), '-'.repeat(8));

    // probe: ours (fluent-ffmpeg ffprobe + checks, 8 concurrent) vs plain ffprobe spawns (8 concurrent)
    const rows: DatasetRow[] = synth.rows.map((r) => ({ path: r.path }));
    await probeRows(rows.slice(0, 2), { root: dir }); // warm fluent-ffmpeg
    const [, tProbe] = await timed(() => probeRows(rows, { root: dir, concurrency: 8 }));
    const lim8 = pLimit(8);
    const [, tProbeRef] = await timed(() => Promise.all(files.map((f) => lim8(() => run(bin.ffprobe, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', f])))));
    row('probe (info) rows/s', (N / tProbe).toFixed(1), (N / tProbeRef).toFixed(1), (tProbeRef / tProbe).toFixed(2));

    // plain full decode to RGB24: the reference figure for everything that decodes
    const lim = pLimit(CONC);
    const [, tDec] = await timed(() => Promise.all(files.map((f) => lim(() => run(bin.ffmpeg, ['-v', 'error', '-threads', '1', '-i', f, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'])))));
    const decFps = frames / tDec;

    const [, tScene] = await timed(() => detectScenesInRows(synth.rows, { root: dir, concurrency: CONC }));
    row('scene detection frames/s', (frames / tScene).toFixed(0), `${decFps.toFixed(0)} (decode only)`, (tDec / tScene).toFixed(2));

    // reader: every clip read once at [16, 256, 256] (frameInterval 1: all 16 frames decoded)
    const plainClipsPerS = N / tDec;
    for (const workers of [0, CONC]) {
      const reader = new DatasetReader(synth.rows, { root: dir, workers, concurrency: CONC, frameInterval: 1 });
      await reader.read(0, [16, 256, 256]); // start workers
      const [, tRead] = await timed(async () => {
        const out = workers ? synth.rows.map(() => reader.allocate(16, 256, 256)) : [];
        await Promise.all(synth.rows.map((_, i) => reader.read(i, [16, 256, 256], undefined, out[i])));
      });
      row(`reader samples/s (${workers ? `${workers} worker threads` : 'in-thread'})`, (N / tRead).toFixed(1), `${plainClipsPerS.toFixed(1)} clips/s decode`, (tDec / tRead).toFixed(2));
      await reader.close();
    }
    const reader = new DatasetReader(synth.rows, { root: dir, workers: CONC, frameInterval: 1 });
    await reader.read(0, [16, 256, 256]);
    const B = 4;
    const specs = Array.from({ length: Math.floor(N / B) }, (_, k) => ({ indices: [0, 1, 2, 3].map((j) => k * B + j), thw: [16, 256, 256] as [number, number, number] }));
    const [, tLoad] = await timed(async () => {
      for await (const b of new BatchLoader(reader, specs, { prefetch: 2 })) void b;
    });
    row(`batch loader samples/s (B=${B}, prefetch 2)`, ((specs.length * B) / tLoad).toFixed(1), `${plainClipsPerS.toFixed(1)} clips/s decode`, ((specs.length * B * tDec) / N / tLoad).toFixed(2));
    await reader.close();
    console.log('');
    console.log('ratio > 1: ours is faster than the plain run; plain decode = `ffmpeg -threads 1 -i clip -f rawvideo -pix_fmt rgb24 pipe:1`,');
    console.log(`${CONC} at a time; the reader also resizes/normalises to float C,T,H,W and (with workers) runs the JS part off the main thread.`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
