/**
 * One sample load: decode only the frames a bucket's (T, H, W) needs, then transform. Shared by
 * the in-process path and the worker threads (`reader-worker.ts`), so both behave the same.
 */
import { readVideoFrames, type Frame } from './decode.js';
import { MediaError } from './errors.js';
import { probeMedia, type MediaKind } from './media.js';
import { centerCropVideo, frameToChw, resizeCropImage, resizeCropVideo, temporalCropIndices, type TransformName } from './transform.js';

export interface SampleTask {
  path: string;
  kind: MediaKind;
  /** Bucket target. */
  T: number;
  H: number;
  W: number;
  frameInterval: number;
  transform: TransformName;
  /** Uniform draw in [0, 1) that fixes the temporal crop's begin. */
  u: number;
  /** From the CSV when known (else probed). */
  numFrames?: number;
  fps?: number;
  width?: number;
  height?: number;
  defaultFps: number;
  ffmpegPath?: string;
  ffprobePath?: string;
  /** Output buffer (C,T,H,W floats), possibly over a SharedArrayBuffer; allocated when absent. */
  out?: Float32Array;
}

export interface SampleResult {
  video: Float32Array;
  /** Source fps (raw, as the reference returns it). */
  fps: number;
  /** Source frame indices used (`[0]` for images). */
  indices: number[];
  /** Frame count the crop was computed on. */
  total: number;
  /** True when the CSV's frame count overstated the file and the crop was redone on the real count. */
  recounted: boolean;
}

function toOut(task: SampleTask): Float32Array {
  const n = 3 * task.T * task.H * task.W;
  if (task.out) {
    if (task.out.length !== n) throw new MediaError(task.path, `output buffer holds ${task.out.length} floats, need ${n}`);
    return task.out;
  }
  return new Float32Array(n);
}

function transformFrames(frames: Frame[], task: SampleTask, out: Float32Array): void {
  if (task.transform === 'center') {
    if (task.H !== task.W) throw new MediaError(task.path, `the center transform needs a square size, got ${task.H}x${task.W}`);
    centerCropVideo(frames, task.H, out);
  } else resizeCropVideo(frames, task.H, task.W, out);
}

export async function loadSample(task: SampleTask): Promise<SampleResult> {
  const out = toOut(task);
  if (task.kind === 'image') {
    const frame = await resizeCropImage(task.path, task.H, task.W, task.transform);
    // An image fills every requested frame (T is 1 in every v1.1 bucket; the v1.0 dataset repeats it).
    for (let t = 0; t < task.T; t++) frameToChw(frame, out, task.T, t);
    return { video: out, fps: task.fps && task.fps > 0 ? task.fps : 120, indices: [0], total: 1, recounted: false };
  }
  let total = task.numFrames;
  let fps = task.fps;
  let width = task.width;
  let height = task.height;
  if (!(total && total > 0 && fps && fps > 0 && width && height)) {
    const info = await probeMedia(task.path, { ffmpegPath: task.ffmpegPath, ffprobePath: task.ffprobePath });
    total = total && total > 0 ? total : info.numFrames;
    fps = fps && fps > 0 ? fps : info.fps > 0 ? info.fps : task.defaultFps;
    width = info.width;
    height = info.height;
  }
  const opts = { fps, nativeWidth: width, nativeHeight: height, ffmpegPath: task.ffmpegPath, ffprobePath: task.ffprobePath };
  const crop = (n: number) => {
    try {
      return temporalCropIndices(n, task.T, task.frameInterval, { u: task.u });
    } catch (e) {
      throw new MediaError(task.path, `${n} frames, fewer than the ${task.T} the bucket needs`, { cause: e });
    }
  };
  let indices = crop(total);
  let frames: Frame[];
  let recounted = false;
  try {
    frames = await readVideoFrames(task.path, indices, opts);
  } catch (e) {
    if (!(e instanceof MediaError && typeof e.details.missingIndex === 'number')) throw e;
    // The header overstated the frame count: count packets and crop again on the real count.
    const info = await probeMedia(task.path, { frameCount: 'packets', ffmpegPath: task.ffmpegPath, ffprobePath: task.ffprobePath });
    total = info.numFrames;
    indices = crop(total);
    frames = await readVideoFrames(task.path, indices, opts);
    recounted = true;
  }
  transformFrames(frames, task, out);
  return { video: out, fps, indices, total, recounted };
}
