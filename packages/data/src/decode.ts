/**
 * Frame decoding through ffmpeg (fluent-ffmpeg) to raw RGB24, and image decoding through sharp.
 * `readVideoFrames` decodes only what it needs: it seeks to just before the first wanted frame and
 * stops as soon as the last one is out, so reading 16 frames of a long video never decodes the rest.
 */
import type { Readable } from 'node:stream';
import sharp from 'sharp';
import { ffmpegCommand, type BinaryOptions } from './binaries.js';
import { MediaError, errorLine } from './errors.js';
import { checkFile, probeMedia } from './media.js';

/** One RGB frame, interleaved (HWC), 3 bytes per pixel. */
export interface Frame {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DecodeOptions extends BinaryOptions {
  /** Output size (ffmpeg bilinear scale); default: the native size. Both or neither. */
  width?: number;
  height?: number;
  /** ffmpeg decoder threads (default 1: parallelism comes from running several decoders). */
  threads?: number;
}

export interface ReadFramesOptions extends DecodeOptions {
  /** Frame rate of the file (from the CSV or a probe); probed when absent. */
  fps?: number;
  /** Native size, needed to size the output buffer when no `width/height` is given; probed when absent. */
  nativeWidth?: number;
  nativeHeight?: number;
  /** Wanted frames further apart than this are read by separate seeks (default 96). */
  seekGap?: number;
  /**
   * Indices past the real end of the file: 'error' (default) throws a MediaError whose
   * `details.decoded` is the number of frames that exist from the first requested index; 'clamp'
   * repeats the last frame that exists (the reference's `extract_frames` clamps the same way).
   */
  beyondEnd?: 'error' | 'clamp';
}

function outSize(o: DecodeOptions, nw: number, nh: number): [number, number] {
  if ((o.width === undefined) !== (o.height === undefined)) {
    throw new MediaError('decode', 'give both width and height, or neither');
  }
  return [o.width ?? nw, o.height ?? nh];
}

/** Collects an ffmpeg raw stream into frames of `fw*fh*3` bytes; resolves when ffmpeg ends. */
function runRaw(
  p: string,
  inputOptions: string[],
  outputOptions: string[],
  options: BinaryOptions,
  onFrame: (frame: Uint8Array) => boolean | void,
  frameBytes: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const cmd = ffmpegCommand(p, options).inputOptions(inputOptions).outputOptions(outputOptions).format('rawvideo');
    let count = 0;
    let settled = false;
    let pending: Buffer = Buffer.alloc(0);
    let stopped = false;
    const stream = cmd.pipe() as Readable;
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(count);
    };
    cmd.on('error', (err: Error, _stdout: string | null, stderr: string | null) => {
      if (stopped) return finish();
      const e = new Error(`${err.message}\n${stderr ?? ''}`);
      finish(e);
    });
    stream.on('data', (chunk: Buffer) => {
      if (stopped) return;
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= frameBytes) {
        const f = new Uint8Array(frameBytes);
        f.set(pending.subarray(0, frameBytes));
        pending = pending.subarray(frameBytes);
        count++;
        if (onFrame(f) === false) {
          stopped = true;
          cmd.kill('SIGKILL');
          finish();
          return;
        }
      }
    });
    stream.on('end', () => finish());
    stream.on('error', (e) => finish(e));
  });
}

function reason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = msg
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const pick = lines.find((l) => /invalid|error|moov|no such|failed|truncat|corrupt|not found/i.test(l) && !/^ffmpeg exited/.test(l));
  return (pick ?? errorLine(e)).slice(0, 300);
}

async function nativeFacts(p: string, o: ReadFramesOptions): Promise<{ fps: number; w: number; h: number }> {
  if (o.fps && o.fps > 0 && ((o.nativeWidth && o.nativeHeight) || (o.width && o.height))) {
    return { fps: o.fps, w: o.nativeWidth ?? o.width!, h: o.nativeHeight ?? o.height! };
  }
  const info = await probeMedia(p, { ffmpegPath: o.ffmpegPath, ffprobePath: o.ffprobePath });
  return { fps: o.fps && o.fps > 0 ? o.fps : info.fps, w: info.width, h: info.height };
}

/**
 * Decodes the frames at `indices` (any order, repeats allowed) and returns them in that order.
 * Seeks with ffmpeg's accurate input seek to half a frame before each group's first index and
 * selects frames by their number after the seek, so the result is frame-exact for constant frame
 * rate files.
 */
export async function readVideoFrames(p: string, indices: readonly number[], options: ReadFramesOptions = {}): Promise<Frame[]> {
  checkFile(p);
  if (indices.length === 0) return [];
  for (const i of indices) {
    if (!Number.isInteger(i) || i < 0) throw new MediaError(p, `frame index ${i} is not a non-negative integer`);
  }
  const { fps, w: nw, h: nh } = await nativeFacts(p, options);
  if (!(fps > 0)) throw new MediaError(p, 'unknown frame rate; pass fps');
  const [fw, fh] = outSize(options, nw, nh);
  const frameBytes = fw * fh * 3;
  const uniq = [...new Set(indices)].sort((a, b) => a - b);
  const gap = options.seekGap ?? 96;
  const groups: number[][] = [];
  for (const i of uniq) {
    const g = groups[groups.length - 1];
    if (g && i - g[g.length - 1]! <= gap) g.push(i);
    else groups.push([i]);
  }
  const got = new Map<number, Frame>();
  let lastAvailable: Frame | undefined;
  for (const g of groups) {
    const first = g[0]!;
    const rel = g.map((i) => i - first);
    const inputOptions = ['-threads', String(options.threads ?? 1)];
    if (first > 0) inputOptions.unshift('-ss', ((first - 0.5) / fps).toFixed(6));
    const contiguous = rel.every((r, k) => r === k);
    const filters = contiguous ? [] : [`select='${rel.map((r) => `eq(n\\,${r})`).join('+')}'`];
    if (fw !== nw || fh !== nh) filters.push(`scale=${fw}:${fh}:flags=bilinear`);
    const outputOptions = [...(filters.length ? ['-vf', filters.join(',')] : []), '-vsync', '0', '-frames:v', String(g.length), '-pix_fmt', 'rgb24', '-v', 'error'];
    const frames: Uint8Array[] = [];
    try {
      await runRaw(p, inputOptions, outputOptions, options, (f) => void frames.push(f), frameBytes);
    } catch (e) {
      throw new MediaError(p, `decode failed: ${reason(e)}`, { cause: e });
    }
    for (let k = 0; k < frames.length; k++) got.set(g[k]!, { data: frames[k]!, width: fw, height: fh });
    if (frames.length) lastAvailable = got.get(g[frames.length - 1]!);
    if (frames.length < g.length) {
      if (options.beyondEnd === 'clamp') {
        if (!lastAvailable) throw new MediaError(p, `no frame could be decoded at or after index ${first}`);
        for (let k = frames.length; k < g.length; k++) got.set(g[k]!, lastAvailable);
      } else {
        throw new MediaError(p, `frame ${g[frames.length]} does not exist (${frames.length} of ${g.length} wanted frames decoded from index ${first})`, {
          details: { decodedFrom: first, decoded: frames.length, missingIndex: g[frames.length] },
        });
      }
    }
  }
  return indices.map((i) => got.get(i)!);
}

/**
 * Streams every frame of a video (optionally resized) to `onFrame`; return false from it to stop.
 * Resolves to the number of frames delivered.
 */
export async function decodeFrames(
  p: string,
  onFrame: (frame: Frame, index: number) => boolean | void,
  options: DecodeOptions & { nativeWidth?: number; nativeHeight?: number; maxFrames?: number } = {},
): Promise<number> {
  checkFile(p);
  let nw = options.nativeWidth;
  let nh = options.nativeHeight;
  if (!(nw && nh) && !(options.width && options.height)) {
    const info = await probeMedia(p, options);
    nw = info.width;
    nh = info.height;
  }
  const [fw, fh] = outSize(options, nw ?? options.width!, nh ?? options.height!);
  const outputOptions = ['-vsync', '0', '-pix_fmt', 'rgb24', '-v', 'error'];
  if (options.width && (options.width !== nw || options.height !== nh)) outputOptions.unshift('-vf', `scale=${fw}:${fh}:flags=bilinear`);
  if (options.maxFrames) outputOptions.push('-frames:v', String(options.maxFrames));
  let idx = 0;
  try {
    return await runRaw(
      p,
      ['-threads', String(options.threads ?? 1)],
      outputOptions,
      options,
      (data) => onFrame({ data, width: fw, height: fh }, idx++),
      fw * fh * 3,
    );
  } catch (e) {
    throw new MediaError(p, `decode failed: ${reason(e)}`, { cause: e });
  }
}

/** Decodes an image to RGB (alpha dropped, greyscale expanded), like PIL's `convert('RGB')`. */
export async function readImage(p: string): Promise<Frame> {
  checkFile(p);
  try {
    const { data, info } = await sharp(p).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels === 3) return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
    const out = new Uint8Array(info.width * info.height * 3);
    for (let i = 0, n = info.width * info.height; i < n; i++) {
      const v = data[i * info.channels]!;
      out[i * 3] = v;
      out[i * 3 + 1] = info.channels > 1 ? data[i * info.channels + 1]! : v;
      out[i * 3 + 2] = info.channels > 2 ? data[i * info.channels + 2]! : v;
    }
    return { data: out, width: info.width, height: info.height };
  } catch (e) {
    throw new MediaError(p, `cannot decode image: ${errorLine(e)}`, { cause: e });
  }
}
