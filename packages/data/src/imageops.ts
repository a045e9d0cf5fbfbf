/** Small RGB helpers shared by scorers and the captioner. */
import sharp from 'sharp';
import type { Frame } from './decode.js';

function rawInput(f: Frame): sharp.Sharp {
  return sharp(Buffer.from(f.data.buffer, f.data.byteOffset, f.data.byteLength), { raw: { width: f.width, height: f.height, channels: 3 } });
}

/** Resizes an RGB frame (sharp, bicubic) to exactly width x height. */
export async function resizeRgb(f: Frame, width: number, height: number, kernel: keyof sharp.KernelEnum = 'cubic'): Promise<Frame> {
  const { data } = await rawInput(f).resize(width, height, { fit: 'fill', kernel }).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}

/** Encodes an RGB frame as JPEG (for vision-chat requests). */
export async function encodeJpeg(f: Frame, quality = 90): Promise<Buffer> {
  return rawInput(f).jpeg({ quality }).toBuffer();
}

/** ITU-R BT.601 luma (as OpenCV's RGB2GRAY) of an RGB frame, as float32. */
export function toGray(f: Frame): Float32Array {
  const n = f.width * f.height;
  const g = new Float32Array(n);
  const d = f.data;
  for (let i = 0; i < n; i++) g[i] = 0.299 * d[i * 3]! + 0.587 * d[i * 3 + 1]! + 0.114 * d[i * 3 + 2]!;
  return g;
}
