/**
 * Cutting scenes into clips (tools/scene_cut/cut.py) with frame-exact boundaries: the reference
 * snaps scene boundaries to whole seconds (FrameTimecode fps=1); here each scene [s, e) in source
 * frames becomes exactly its frames (accurate input seek to half a frame before s, timestamps reset,
 * `-frames:v` for the count). Options as the reference: target fps, shorter-side resize,
 * minimum/maximum clip seconds; but by default nothing is resampled or resized and small videos are
 * never upscaled unless asked (`allowUpscale`).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { ffmpegCommand, type BinaryOptions } from './binaries.js';
import { resolveRowPath, type DatasetRow } from './csv.js';
import { MediaError, errorLine } from './errors.js';
import { probeMedia } from './media.js';
import { parseTimecode, parseTimestampColumn, type RowError } from './scenes.js';

export interface CutOptions extends BinaryOptions {
  /** Output folder of the clips. */
  saveDir: string;
  /** Base folder of relative input paths (default: cwd). */
  root?: string;
  /** Re-time clips to this fps (reference CLI: 30); default: keep the source fps. */
  targetFps?: number | null;
  /** Resize so that the shorter side is this (reference CLI: 720); default: keep the size. */
  shorterSize?: number | null;
  /** Allow `shorterSize` to enlarge smaller videos (the reference always does). Default false. */
  allowUpscale?: boolean;
  /** Skip scenes shorter than this many seconds. */
  minSeconds?: number | null;
  /** Truncate scenes longer than this many seconds. */
  maxSeconds?: number | null;
  crf?: number;
  preset?: string;
  /** Keep the source's audio (default true; the reference maps every stream). */
  keepAudio?: boolean;
  concurrency?: number;
  /** Clip paths in the returned rows: relative to this folder (default: absolute). */
  relativeTo?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface CutClip {
  /** Row index in the input table and scene index in its timestamp list (kept in the file name). */
  row: number;
  scene: number;
  source: string;
  file: string;
  startFrame: number;
  /** Exclusive. */
  endFrame: number;
}

export interface CutResult {
  /** One row per clip, probed after writing: path, num_frames, height, width, aspect_ratio, fps, resolution, plus source/scene columns. */
  rows: DatasetRow[];
  clips: CutClip[];
  errors: RowError[];
  /** Scenes skipped by minSeconds, per row. */
  skipped: number;
}

function evenScale(w: number, h: number, shorter: number): [number, number] {
  const even = (x: number) => Math.max(2, 2 * Math.round(x / 2));
  if (w > h) return [even((w * shorter) / h), even(shorter)];
  return [even(shorter), even((h * shorter) / w)];
}

/** Cuts one scene [startFrame, endFrame) of `src` into `dst`; resolves to the frames written. */
export async function cutClip(
  src: string,
  dst: string,
  scene: { startFrame: number; endFrame: number; fps: number; width: number; height: number; hasAudio?: boolean },
  options: Omit<CutOptions, 'saveDir'> = {},
): Promise<number> {
  const { startFrame: s, endFrame: e, fps } = scene;
  if (!(e > s)) throw new MediaError(src, `empty scene [${s}, ${e})`);
  const duration = (e - s) / fps;
  const outFps = options.targetFps && options.targetFps > 0 ? options.targetFps : fps;
  const frames = outFps === fps ? e - s : Math.max(1, Math.round(duration * outFps));
  const filters = ['setpts=PTS-STARTPTS'];
  if (outFps !== fps) filters.push(`fps=${outFps}`);
  let [w, h] = [scene.width, scene.height];
  if (options.shorterSize && (options.allowUpscale || Math.min(w, h) > options.shorterSize)) {
    [w, h] = evenScale(w, h, options.shorterSize);
    filters.push(`scale=${w}:${h}:flags=bicubic`);
  } else if (w % 2 || h % 2) {
    filters.push(`crop=${w - (w % 2)}:${h - (h % 2)}:0:0`);
  }
  const input = s > 0 ? ['-ss', ((s - 0.5) / fps).toFixed(6)] : [];
  const out = [
    '-vf',
    filters.join(','),
    '-frames:v',
    String(frames),
    '-r',
    String(outFps),
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    '-preset',
    options.preset ?? 'veryfast',
    '-crf',
    String(options.crf ?? 18),
    '-map',
    '0:v:0',
    '-v',
    'error',
  ];
  if (scene.hasAudio && options.keepAudio !== false) out.push('-map', '0:a?', '-af', 'asetpts=PTS-STARTPTS', '-t', duration.toFixed(6), '-c:a', 'aac');
  else out.push('-an');
  await new Promise<void>((resolve, reject) => {
    ffmpegCommand(src, options)
      .inputOptions(input)
      .outputOptions(out)
      .format('mp4')
      .on('error', (err: Error, _o: string | null, stderr: string | null) => reject(new MediaError(src, `cut failed: ${err.message.split('\n')[0]} ${stderr ?? ''}`.trim())))
      .on('end', () => resolve())
      .save(dst);
  });
  return frames;
}

/**
 * cut.py over a table with a `timestamp` column: every scene becomes `{saveDir}/{stem}_scene-{idx}.mp4`
 * (idx = the scene's position in the timestamp list, gaps kept). Each clip is probed after writing
 * (the reference never checks); a clip or row that fails is reported, the others go on.
 */
export async function cutScenes(rows: readonly DatasetRow[], options: CutOptions): Promise<CutResult> {
  const root = options.root ?? process.cwd();
  mkdirSync(options.saveDir, { recursive: true });
  const limit = pLimit(options.concurrency ?? 2);
  const errors: RowError[] = [];
  const clips: CutClip[] = [];
  const outRows: Array<{ key: [number, number]; row: DatasetRow }> = [];
  let skipped = 0;
  const jobs: Array<Promise<void>> = [];
  let done = 0;
  let total = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const ts = row.timestamp;
    if (typeof ts !== 'string' || !ts.trim().startsWith('[') || !ts.trim().endsWith(']')) continue;
    const src = resolveRowPath(row.path, root);
    let scenes: Array<[string, string]>;
    try {
      scenes = parseTimestampColumn(ts);
    } catch (e) {
      errors.push({ row: i, path: row.path, error: errorLine(e) });
      continue;
    }
    const stem = path.basename(src, path.extname(src));
    const rowJob = (async () => {
      let info;
      try {
        info = await probeMedia(src, options);
      } catch (e) {
        errors.push({ row: i, path: row.path, error: errorLine(e) });
        return;
      }
      const fps = row.fps && row.fps > 0 ? row.fps : info.fps;
      const sceneJobs = scenes.map(([a, b], idx) => {
        const s = Math.round(parseTimecode(a) * fps);
        let e = Math.min(info.numFrames, Math.round(parseTimecode(b) * fps));
        const secs = (e - s) / fps;
        if (options.minSeconds && secs < options.minSeconds) {
          skipped++;
          return Promise.resolve();
        }
        if (options.maxSeconds && secs > options.maxSeconds) e = s + Math.round(options.maxSeconds * fps);
        total++;
        return limit(async () => {
          const file = path.join(options.saveDir, `${stem}_scene-${idx}.mp4`);
          try {
            await cutClip(src, file, { startFrame: s, endFrame: e, fps, width: info.width, height: info.height, hasAudio: info.hasAudio }, options);
            const clip = await probeMedia(file, { ...options, frameCount: 'packets' });
            clips.push({ row: i, scene: idx, source: row.path, file, startFrame: s, endFrame: e });
            outRows.push({
              key: [i, idx],
              row: {
                path: options.relativeTo ? path.relative(options.relativeTo, file) : path.resolve(file),
                num_frames: clip.numFrames,
                height: clip.height,
                width: clip.width,
                aspect_ratio: clip.aspectRatio,
                fps: clip.fps,
                resolution: clip.resolution,
                source: row.path,
                scene: idx,
                start_frame: s,
                end_frame: e,
              },
            });
          } catch (err) {
            errors.push({ row: i, path: row.path, error: `scene ${idx}: ${errorLine(err)}` });
          } finally {
            options.onProgress?.(++done, total);
          }
        });
      });
      await Promise.all(sceneJobs);
    })();
    jobs.push(rowJob);
  }
  await Promise.all(jobs);
  outRows.sort((x, y) => x.key[0] - y.key[0] || x.key[1] - y.key[1]);
  clips.sort((x, y) => x.row - y.row || x.scene - y.scene);
  errors.sort((a, b) => a.row - b.row);
  return { rows: outRows.map((r) => r.row), clips, errors, skipped };
}
