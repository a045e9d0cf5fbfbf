/** Atomic file writes: write a temporary file beside the target, fsync, then rename over it. */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

function tempPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

export type WritableData = string | Uint8Array | ArrayBufferView;

function toBytes(d: WritableData): Uint8Array {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (d instanceof Uint8Array) return d;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** Writes `chunks` to `target` atomically: readers see the old file or the whole new one, never a part. */
export async function atomicWriteFile(target: string, data: WritableData | WritableData[]): Promise<void> {
  await mkdir(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempPath(target);
  const fh = await open(tmp, 'w');
  try {
    for (const chunk of Array.isArray(data) ? data : [data]) {
      const bytes = toBytes(chunk);
      let off = 0;
      while (off < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off);
        off += bytesWritten;
      }
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, target);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Synchronous twin of `atomicWriteFile`. */
export function atomicWriteFileSync(target: string, data: WritableData | WritableData[]): void {
  mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
  const tmp = tempPath(target);
  const fd = openSync(tmp, 'w');
  try {
    for (const chunk of Array.isArray(data) ? data : [data]) {
      const bytes = toBytes(chunk);
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, target);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
}
