/**
 * A corrupt-media set made here: zero-byte file, truncated mp4, text file named .mp4, image with
 * the wrong extension, missing file, mp4 with no video stream. Every bad file is reported with a
 * reason; every good row is kept; nothing crashes.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@opensora/core';
import { DatasetReader, MediaError, cutScenes, detectScenesInRows, ffmpegCommand, probeMedia, runDatautil, runScorer, sharpnessScorer, synthesizeDataset, writeDatasetCsv, type DatasetRow } from '../src/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('osdata-corrupt-');
let csv: string;
let goodPaths: string[];
const BAD: Record<string, RegExp> = {
  'bad/zero.mp4': /empty file \(0 bytes\)/,
  'bad/truncated.mp4': /cannot read video: .*(moov atom not found|Invalid data)/,
  'bad/text.mp4': /content is plain text, not media \(starts with "this is not a video/,
  'bad/png_named.jpg': /content is PNG but the extension says \.jpg/,
  'bad/missing.mp4': /file not found/,
  'bad/audio_only.mp4': /no video stream \(streams: audio\)/,
};

beforeAll(async () => {
  const synth = await synthesizeDataset({ outDir: tmp.dir, seed: 2, numVideos: 3, numImages: 2, sizes: [[32, 32]], lengths: [12], fps: [12], cutFraction: 0 });
  goodPaths = synth.rows.map((r) => r.path);
  const dir = path.join(tmp.dir, 'bad');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'zero.mp4'), '');
  const mp4 = readFileSync(path.join(tmp.dir, synth.items[0]!.path));
  writeFileSync(path.join(dir, 'truncated.mp4'), mp4.subarray(0, Math.floor(mp4.length * 0.6)));
  writeFileSync(path.join(dir, 'text.mp4'), 'this is not a video\n'.repeat(20));
  copyFileSync(path.join(tmp.dir, synth.items[3]!.path), path.join(dir, 'png_named.jpg'));
  await new Promise<void>((resolve, reject) =>
    ffmpegCommand('anullsrc=r=8000:cl=mono')
      .inputFormat('lavfi')
      .outputOptions(['-t', '0.5', '-c:a', 'aac', '-v', 'error'])
      .on('error', reject)
      .on('end', () => resolve())
      .save(path.join(dir, 'audio_only.mp4')),
  );
  const rows: DatasetRow[] = [];
  // interleave bad rows between good ones
  const bad = Object.keys(BAD);
  synth.rows.forEach((r, i) => {
    rows.push({ path: r.path, text: r.text });
    if (bad[i]) rows.push({ path: bad[i]!, text: `bad ${i}` });
  });
  for (const b of bad.slice(synth.rows.length)) rows.push({ path: b, text: 'bad' });
  csv = path.join(tmp.dir, 'mixed.csv');
  await writeDatasetCsv(csv, rows);
});
afterAll(() => tmp.cleanup());

describe('corrupt media', () => {
  it('probeMedia throws a MediaError with the reason for each bad file', async () => {
    for (const [p, re] of Object.entries(BAD)) {
      const err = await probeMedia(path.join(tmp.dir, p)).catch((e: unknown) => e);
      expect(err, p).toBeInstanceOf(MediaError);
      expect((err as MediaError).code).toBe('E_MEDIA');
      expect((err as MediaError).message, p).toMatch(re);
      expect((err as MediaError).path).toBe(path.join(tmp.dir, p));
    }
  });

  it('datautil --info reports every bad file and keeps every good row', async () => {
    const res = await runDatautil([csv], { info: true });
    expect(res.rows.map((r) => r.path)).toEqual(goodPaths);
    expect(res.errors.map((e) => e.path).sort()).toEqual(Object.keys(BAD).sort());
    for (const e of res.errors) expect(e.error, e.path).toMatch(BAD[e.path]!);
    expect(res.outputs).toEqual([path.join(tmp.dir, 'mixed_info.csv')]);
    for (const r of res.rows) expect(r.num_frames! > 0 && r.height === 32 && r.width === 32).toBe(true);
  });

  it('--ext drops only the missing file', async () => {
    const res = await runDatautil([csv], { ext: true, dryRun: true });
    expect(res.rows.length).toBe(goodPaths.length + Object.keys(BAD).length - 1);
    expect(res.rows.some((r) => r.path === 'bad/missing.mp4')).toBe(false);
  });

  it('scene detection, cutting and scoring report bad rows and go on', async () => {
    const rows = (await runDatautil([csv], { dryRun: true })).rows;
    const scenes = await detectScenesInRows(rows, { root: tmp.dir, minSceneLen: 4 });
    const badVideos = Object.keys(BAD).filter((p) => p.endsWith('.mp4'));
    expect(scenes.errors.map((e) => e.path).sort(), JSON.stringify(scenes.errors)).toEqual(badVideos.sort());
    expect(scenes.rows.length).toBe(rows.length - badVideos.length); // images pass through
    const cut = await cutScenes([...scenes.rows, { path: 'bad/zero.mp4', timestamp: "[('00:00:00.000', '00:00:01.000')]" }], { root: tmp.dir, saveDir: path.join(tmp.dir, 'clips') });
    expect(cut.rows.length).toBe(3);
    expect(cut.errors.map((e) => e.path)).toEqual(['bad/zero.mp4']);
    const scored = await runScorer(rows, sharpnessScorer(), { root: tmp.dir });
    // decoders read images by content: the PNG named .jpg scores (only info's gate rejects it)
    expect(scored.errors.map((e) => e.path).sort()).toEqual(Object.keys(BAD).filter((p) => p !== 'bad/png_named.jpg').sort());
    expect(scored.rows.filter((r) => typeof r.sharpness === 'number').length).toBe(goodPaths.length + 1);
  });

  it('the reader throws a MediaError for each bad file, logs and counts it', async () => {
    const lines: string[] = [];
    const logger = createLogger({ name: 't', level: 'warn', sink: (_l, line) => lines.push(line), timestamps: false });
    const rows = (await runDatautil([csv], { dryRun: true })).rows.map((r) => ({ ...r, num_frames: 12, height: 32, width: 32, fps: 12 }));
    const reader = new DatasetReader(rows, { root: tmp.dir, workers: 0, logger });
    let ok = 0;
    for (let i = 0; i < rows.length; i++) {
      const isImage = /\.(png|jpg)$/.test(rows[i]!.path);
      try {
        await reader.read(i, isImage ? [1, 16, 16] : [4, 16, 16]);
        ok++;
      } catch (e) {
        expect(e).toBeInstanceOf(MediaError);
      }
    }
    expect(ok).toBe(goodPaths.length + 1); // the PNG named .jpg still decodes (sharp reads by content)
    expect(reader.failures.map((f) => path.relative(tmp.dir, f.path)).sort()).toEqual(Object.keys(BAD).filter((p) => p !== 'bad/png_named.jpg').sort());
    expect(lines.length).toBe(reader.failures.length);
    await reader.close();
  });
});
