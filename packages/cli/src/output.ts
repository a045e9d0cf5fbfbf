/**
 * Saving samples as the reference does (flows.md 3.7): clamp to [-1, 1], map to [0, 1], then
 * `x * 255 + 0.5` truncated to uint8. One frame: PNG (sharp). Several: H.264 MP4 (ffmpeg,
 * yuv420p, through @opensora/data's encoder). Writes are atomic (temporary file, then rename). Optional contact sheet of frames.
 */
import { renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { tf } from '@opensora/core';
import { OpenSoraError } from '@opensora/core';
import { encodeMp4, writePng } from '@opensora/data';

/** Frames as uint8 RGB, `[T, H, W, 3]` interleaved. */
export interface Uint8Video {
  data: Uint8Array;
  frames: number;
  height: number;
  width: number;
}

export interface SavedSample {
  path: string;
  prompt: string;
  frames: number;
  height: number;
  width: number;
  fps: number;
  contactSheet?: string;
}

/** `[3, T, H, W]` in [-1, 1] -> uint8 `[T, H, W, 3]`, with the reference's rounding. */
export function videoToUint8(x: tf.Tensor): Uint8Video {
  if (x.rank !== 4 || x.shape[0] !== 3) {
    throw new OpenSoraError('E_SHAPE', `expected a [3, T, H, W] video, got [${x.shape.join(', ')}]`);
  }
  const [, T, H, W] = x.shape as [number, number, number, number];
  const src = x.dataSync();
  const out = new Uint8Array(T * H * W * 3);
  const plane = T * H * W;
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      let v = src[c * plane + i]!;
      v = v < -1 ? -1 : v > 1 ? 1 : v;
      const q = Math.fround(Math.fround((v + 1) / 2) * 255 + 0.5);
      out[i * 3 + c] = q >= 255 ? 255 : q <= 0 ? 0 : Math.trunc(q);
    }
  }
  return { data: out, frames: T, height: H, width: W };
}

function tmpName(target: string): string {
  const ext = path.extname(target);
  return path.join(path.dirname(target), `.${path.basename(target, ext)}.${process.pid}.tmp${ext}`);
}

/** Writes one RGB frame as PNG, atomically. */
export async function writePngAtomic(frame: Uint8Array, width: number, height: number, file: string): Promise<void> {
  const tmp = tmpName(file);
  try {
    await writePng(tmp, { data: frame, width, height });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Pads a frame by one black column/row where a size is odd (H.264 4:2:0 needs even sizes). */
function padEven(frame: Uint8Array, width: number, height: number): Uint8Array {
  const w2 = width + (width % 2);
  const h2 = height + (height % 2);
  if (w2 === width && h2 === height) return frame;
  const out = new Uint8Array(w2 * h2 * 3);
  for (let y = 0; y < height; y++) out.set(frame.subarray(y * width * 3, (y + 1) * width * 3), y * w2 * 3);
  return out;
}

/** Encodes frames to H.264 MP4 (yuv420p), atomically; odd sizes are padded by one pixel. */
export async function writeMp4(video: Uint8Video, fps: number, file: string): Promise<void> {
  const tmp = tmpName(file);
  const fb = video.width * video.height * 3;
  function* frames() {
    for (let t = 0; t < video.frames; t++) yield padEven(video.data.subarray(t * fb, (t + 1) * fb), video.width, video.height);
  }
  try {
    await encodeMp4(tmp, frames(), {
      width: video.width + (video.width % 2),
      height: video.height + (video.height % 2),
      fps,
      crf: 17,
      preset: 'medium',
    });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** A grid of up to `maxFrames` evenly spaced frames, `columns` wide, as one PNG. */
export async function writeContactSheet(video: Uint8Video, file: string, options: { maxFrames?: number; columns?: number; gap?: number } = {}): Promise<void> {
  const maxFrames = Math.min(options.maxFrames ?? 8, video.frames);
  const idx = Array.from({ length: maxFrames }, (_, i) => Math.round((i * (video.frames - 1)) / Math.max(1, maxFrames - 1)));
  const cols = Math.min(options.columns ?? maxFrames, maxFrames);
  const rows = Math.ceil(maxFrames / cols);
  const gap = options.gap ?? 2;
  const W = cols * video.width + (cols - 1) * gap;
  const H = rows * video.height + (rows - 1) * gap;
  const sheet = new Uint8Array(W * H * 3).fill(255);
  const fb = video.width * video.height * 3;
  idx.forEach((f, i) => {
    const ox = (i % cols) * (video.width + gap);
    const oy = Math.floor(i / cols) * (video.height + gap);
    for (let y = 0; y < video.height; y++) {
      const src = f * fb + y * video.width * 3;
      sheet.set(video.data.subarray(src, src + video.width * 3), ((oy + y) * W + ox) * 3);
    }
  });
  await writePngAtomic(sheet, W, H, file);
}

/** Saves one sample: `<base>.png` for one frame, `<base>.mp4` otherwise (and `<base>_sheet.png`). */
export async function saveSample(
  video: Uint8Video,
  o: { basePath: string; fps: number; prompt: string; contactSheet?: boolean; forceVideo?: boolean },
): Promise<SavedSample> {
  const isImage = video.frames === 1 && !o.forceVideo;
  const file = `${o.basePath}${isImage ? '.png' : '.mp4'}`;
  if (isImage) await writePngAtomic(video.data, video.width, video.height, file);
  else await writeMp4(video, o.fps, file);
  const out: SavedSample = { path: file, prompt: o.prompt, frames: video.frames, height: video.height, width: video.width, fps: o.fps };
  if (o.contactSheet && !isImage) {
    out.contactSheet = `${o.basePath}_sheet.png`;
    await writeContactSheet(video, out.contactSheet);
  }
  return out;
}
