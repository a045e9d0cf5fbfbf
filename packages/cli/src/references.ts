/**
 * Loading a conditioning reference (flows.md 2.3): a video (every frame decoded, no temporal
 * subsampling) or an image, cover-resized and centre-cropped to the target size with the
 * reference's `resize_crop` (bilinear for video frames, bicubic for images), in [-1, 1], `[3, T, H, W]`.
 */
import { existsSync, statSync } from 'node:fs';
import { InvalidArgumentError } from '@opensora/core';
import { decodeFrames, frameToChw, isUrl, mediaKind, resizeCropImage, resizeCropVideo, type Frame } from '@opensora/data';

export interface LoadedReference {
  data: Float32Array;
  shape: [number, number, number, number];
}

export async function loadReference(p: string, size: [number, number]): Promise<LoadedReference> {
  const [H, W] = size;
  if (p.trim() === '') throw new InvalidArgumentError('empty reference path', { hint: "check the ';'-separated --reference-path list" });
  if (isUrl(p)) {
    throw new InvalidArgumentError(`reference ${p} is a URL`, { hint: 'download it first and pass the local path' });
  }
  if (!existsSync(p) || !statSync(p).isFile()) {
    throw new InvalidArgumentError(`reference ${p}: no such file`, { hint: "check the ';'-separated --reference-path list" });
  }
  if (mediaKind(p) === 'image') {
    const frame = await resizeCropImage(p, H, W);
    const data = new Float32Array(3 * H * W);
    frameToChw(frame, data, 1, 0);
    return { data, shape: [3, 1, H, W] };
  }
  const frames: Frame[] = [];
  await decodeFrames(p, (f) => {
    frames.push({ data: f.data.slice(), width: f.width, height: f.height });
  });
  if (frames.length === 0) throw new InvalidArgumentError(`reference video ${p} has no frames`);
  return { data: resizeCropVideo(frames, H, W), shape: [3, frames.length, H, W] };
}
