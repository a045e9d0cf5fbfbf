/**
 * Media kinds and probing. Videos are probed with ffprobe (through fluent-ffmpeg), images with sharp.
 * A probe either returns complete facts about the file or throws a `MediaError` that says what is
 * wrong with it: missing, empty, unreadable, truncated, no video stream, content that does not
 * match the extension.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { FfprobeData, FfprobeStream } from 'fluent-ffmpeg';
import { ffmpegCommand, type BinaryOptions } from './binaries.js';
import { MediaError, errorLine } from './errors.js';

/** Video extensions the reference accepts (lower case, with the dot). */
export const VIDEO_EXTENSIONS: readonly string[] = ['.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v'];
/** torchvision's IMG_EXTENSIONS. */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'];
/** fps the reference reports for images (`IMG_FPS`). */
export const IMAGE_FPS = 120;

export type MediaKind = 'video' | 'image';

/** 'video' or 'image' from the lower-case extension; throws for anything else. */
export function mediaKind(p: string): MediaKind {
  const ext = path.extname(stripQuery(p)).toLowerCase();
  if (VIDEO_EXTENSIONS.includes(ext)) return 'video';
  if (IMAGE_EXTENSIONS.includes(ext)) return 'image';
  throw new MediaError(p, `unsupported extension '${ext || '(none)'}'`, {
    hint: `videos: ${VIDEO_EXTENSIONS.join(' ')}; images: ${IMAGE_EXTENSIONS.join(' ')}`,
  });
}

/** True when `mediaKind` would accept the path. */
export function isMediaPath(p: string): boolean {
  const ext = path.extname(stripQuery(p)).toLowerCase();
  return VIDEO_EXTENSIONS.includes(ext) || IMAGE_EXTENSIONS.includes(ext);
}

export function isUrl(p: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(p);
}

function stripQuery(p: string): string {
  return isUrl(p) ? p.replace(/[?#].*$/, '') : p;
}

export type FrameCountSource = 'header' | 'packets' | 'decode' | 'duration' | 'image';

export interface MediaInfo {
  path: string;
  kind: MediaKind;
  /** Frame count (1 for images); see `frameCountSource`. */
  numFrames: number;
  height: number;
  width: number;
  /** Frames per second; `IMAGE_FPS` for images only in the reader, NaN here (as the reference's info). */
  fps: number;
  /** height / width, as the CSV column `aspect_ratio`. */
  aspectRatio: number;
  /** height * width. */
  resolution: number;
  /** Seconds (0 for images). */
  duration: number;
  /** Container (e.g. 'mov,mp4,m4a,3gp,3g2,mj2') or image format ('png'). */
  format: string;
  /** Video codec or image format. */
  codec: string;
  frameCountSource: FrameCountSource;
  hasAudio: boolean;
}

export interface ProbeOptions extends BinaryOptions {
  /**
   * How to count video frames. 'header' (default): the container's count, like OpenCV's
   * CAP_PROP_FRAME_COUNT in the reference's `--info`; 'packets': count packets (reads the file,
   * no decode: exact for ordinary streams); 'decode': decode every frame (exact, slow; the
   * reference's `--video-info`).
   */
  frameCount?: 'header' | 'packets' | 'decode';
  /** For images: decode the pixels too, so that a truncated image is caught (default true). */
  verifyImages?: boolean;
}

function parseRate(r: string | undefined): number {
  if (!r) return NaN;
  const [n, d] = r.split('/').map(Number);
  if (d === undefined) return Number(n);
  if (!Number.isFinite(n!) || !Number.isFinite(d) || d === 0 || n === 0) return NaN;
  return n! / d;
}

function num(v: unknown): number {
  const x = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(x) ? x : NaN;
}

function ffprobe(p: string, args: string[], options: BinaryOptions): Promise<FfprobeData> {
  return new Promise((resolve, reject) => {
    ffmpegCommand(p, options).ffprobe(args, (err: unknown, data: FfprobeData) => {
      if (err) reject(err);
      else resolve(data);
    });
  });
}

/** Checks that a local file exists, is not empty and is not plain text; throws a MediaError otherwise. */
export function checkFile(p: string): void {
  if (isUrl(p)) return;
  if (!existsSync(p)) throw new MediaError(p, 'file not found', { hint: 'check the path column (relative paths resolve against the CSV folder)' });
  const st = statSync(p);
  if (!st.isFile()) throw new MediaError(p, 'not a regular file');
  if (st.size === 0) throw new MediaError(p, 'empty file (0 bytes)');
  const head = Buffer.alloc(Math.min(256, st.size));
  const fd = openSync(p, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  // Every media container starts with binary magic; a head of printable ASCII is a text file.
  if (head.every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127))) {
    const svgOrPnm = /^\s*(<\?xml|<svg|P[1-7]\s)/.test(head.toString('latin1'));
    if (!svgOrPnm) throw new MediaError(p, `content is plain text, not media (starts with ${JSON.stringify(head.toString('latin1').slice(0, 24))})`);
  }
}

const IMAGE_FORMAT_OF_EXT: Record<string, string[]> = {
  '.jpg': ['jpeg'],
  '.jpeg': ['jpeg'],
  '.png': ['png'],
  '.webp': ['webp'],
  '.tif': ['tiff'],
  '.tiff': ['tiff'],
  '.bmp': ['bmp'],
  '.ppm': ['ppm'],
  '.pgm': ['ppm', 'pgm'],
};

async function probeImage(p: string, options: ProbeOptions): Promise<MediaInfo> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(p).metadata();
  } catch (e) {
    throw new MediaError(p, `cannot read image: ${errorLine(e)}`, { cause: e });
  }
  const ext = path.extname(p).toLowerCase();
  const expected = IMAGE_FORMAT_OF_EXT[ext];
  const fmt = String(meta.format ?? 'unknown');
  if (expected && !expected.includes(fmt)) {
    throw new MediaError(p, `content is ${fmt.toUpperCase()} but the extension says ${ext}`, {
      hint: 'rename the file to match its content (other tools dispatch on the extension)',
      details: { format: fmt },
    });
  }
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  if (!(width > 0 && height > 0)) throw new MediaError(p, 'image has no size');
  if (options.verifyImages !== false) {
    try {
      await sharp(p).raw().toBuffer();
    } catch (e) {
      throw new MediaError(p, `image fails to decode: ${errorLine(e)}`, { cause: e });
    }
  }
  return {
    path: p,
    kind: 'image',
    numFrames: 1,
    height,
    width,
    fps: NaN,
    aspectRatio: height / width,
    resolution: height * width,
    duration: 0,
    format: fmt,
    codec: fmt,
    frameCountSource: 'image',
    hasAudio: false,
  };
}

function pickVideoStream(streams: FfprobeStream[]): FfprobeStream | undefined {
  return streams.find((s) => s.codec_type === 'video' && !(s.disposition && s.disposition.attached_pic === 1));
}

async function probeVideo(p: string, options: ProbeOptions): Promise<MediaInfo> {
  const mode = options.frameCount ?? 'header';
  const args = mode === 'packets' ? ['-count_packets'] : mode === 'decode' ? ['-count_frames'] : [];
  let data: FfprobeData;
  try {
    data = await ffprobe(p, args, options);
  } catch (e) {
    const line = ffprobeReason(e);
    throw new MediaError(p, `cannot read video: ${line}`, { cause: e });
  }
  const formatName = String(data.format?.format_name ?? '');
  if (/_pipe$|^image2$|^(png|jpeg|webp|bmp|tiff)/.test(formatName)) {
    throw new MediaError(p, `content is an image (${formatName}) but the extension says video`, {
      hint: 'rename the file to its image extension',
      details: { format: formatName },
    });
  }
  const vs = pickVideoStream(data.streams ?? []);
  if (!vs) {
    const kinds = (data.streams ?? []).map((s) => s.codec_type).join(', ') || 'none';
    throw new MediaError(p, `no video stream (streams: ${kinds})`, { details: { format: formatName } });
  }
  let width = num(vs.width);
  let height = num(vs.height);
  if (!(width > 0 && height > 0)) throw new MediaError(p, 'video stream has no frame size');
  const rotate = Math.abs(num((vs.tags as Record<string, unknown> | undefined)?.rotate));
  if (rotate === 90 || rotate === 270) [width, height] = [height, width];
  let fps = parseRate(vs.avg_frame_rate);
  if (!(fps > 0)) fps = parseRate(vs.r_frame_rate);
  let duration = num(vs.duration);
  if (!(duration > 0)) duration = num(data.format?.duration);
  let numFrames = NaN;
  let source: FrameCountSource = 'header';
  if (mode === 'packets') {
    numFrames = num((vs as Record<string, unknown>).nb_read_packets);
    source = 'packets';
  } else if (mode === 'decode') {
    numFrames = num((vs as Record<string, unknown>).nb_read_frames);
    source = 'decode';
  }
  if (!(numFrames >= 0)) {
    numFrames = num(vs.nb_frames);
    source = 'header';
  }
  if (!(numFrames > 0) && duration > 0 && fps > 0) {
    numFrames = Math.round(duration * fps);
    source = 'duration';
  }
  if (!(numFrames > 0)) throw new MediaError(p, 'video has no frames (no frame count, no duration)');
  if (!(fps > 0)) fps = duration > 0 ? numFrames / duration : NaN;
  if (!(duration > 0)) duration = fps > 0 ? numFrames / fps : 0;
  return {
    path: p,
    kind: 'video',
    numFrames,
    height,
    width,
    fps,
    aspectRatio: height / width,
    resolution: height * width,
    duration,
    format: formatName,
    codec: String(vs.codec_name ?? ''),
    frameCountSource: source,
    hasAudio: (data.streams ?? []).some((s) => s.codec_type === 'audio'),
  };
}

/** The useful line of an ffprobe failure (fluent-ffmpeg puts the whole stderr in the message). */
function ffprobeReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const lines = msg
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^ffprobe (exited|version)|^built with|^configuration:|^lib[a-z]+ +\d/.test(l));
  const pick = lines.find((l) => /invalid|error|not found|moov|no such|failed|truncat/i.test(l)) ?? lines[lines.length - 1];
  return (pick ?? errorLine(e)).slice(0, 300);
}

/** Probes a video or image; throws a MediaError naming what is wrong with the file. */
export async function probeMedia(p: string, options: ProbeOptions = {}): Promise<MediaInfo> {
  const kind = mediaKind(p);
  checkFile(p);
  return kind === 'image' ? probeImage(p, options) : probeVideo(p, options);
}
