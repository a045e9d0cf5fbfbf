/**
 * safetensors reading and writing.
 *
 * Format: an 8-byte little-endian header length N, N bytes of JSON
 * (`{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { k: v } }`), then the
 * data buffer; offsets are relative to the start of the data buffer.
 *
 * Reading is lazy: `openSafetensors` reads and validates the header only, and each tensor is read
 * from disk when asked for, so a multi-gigabyte checkpoint costs only what is materialised. A
 * sharded checkpoint (`*.safetensors.index.json`) opens as one reader. Every malformed-file case
 * throws a `SafetensorsError` that names the file and the problem.
 */
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tf } from './backend.js';
import { OpenSoraError, type OpenSoraErrorOptions } from './errors.js';

export type SafetensorsDtype =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL';

export type RawTypedArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint8Array;

export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: RawTypedArray;
}

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  byteLength: number;
  /** Absolute offset of the first byte in the file. */
  fileOffset: number;
  /** The file that holds the tensor (differs per shard). */
  file: string;
}

export const DTYPE_SIZE: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** Headers larger than this are refused (the format's own reference limit is 100 MB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export class SafetensorsError extends OpenSoraError {
  readonly file: string;
  constructor(file: string, problem: string, options: OpenSoraErrorOptions = {}) {
    super('E_SAFETENSORS', `${file}: ${problem}`, { ...options, details: { file, ...(options.details ?? {}) } });
    this.file = file;
  }
}

function isDtype(d: unknown): d is SafetensorsDtype {
  return typeof d === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, d);
}

function numel(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// half-precision conversion

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = F16_TABLE[src[i]!]!;
  return out;
}

export function bf16ToF32(src: Uint16Array): Float32Array {
  const u = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) u[i] = src[i]! << 16;
  return new Float32Array(u.buffer);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float32 -> IEEE half, round to nearest even. */
export function f32ToF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32Scratch[0] = src[i]!;
    const x = u32Scratch[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let h = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && h & 1)) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
    out[i] = sign | h;
  }
  return out;
}

/** float32 -> bfloat16, round to nearest even. */
export function f32ToBf16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32Scratch[0] = src[i]!;
    const x = u32Scratch[0]!;
    if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) {
      out[i] = (x >>> 16) | 0x40;
      continue;
    }
    const rounding = 0x7fff + ((x >>> 16) & 1);
    out[i] = ((x + rounding) >>> 16) & 0xffff;
  }
  return out;
}

function viewAs(dtype: SafetensorsDtype, buf: ArrayBuffer): RawTypedArray {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buf);
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'U64':
      return new BigUint64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'U32':
      return new Uint32Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'I8':
      return new Int8Array(buf);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf);
  }
}

function toFloat32(raw: RawTensor): Float32Array {
  const { dtype, data } = raw;
  if (dtype === 'F32') return data as Float32Array;
  if (dtype === 'F16') return f16ToF32(data as Uint16Array);
  if (dtype === 'BF16') return bf16ToF32(data as Uint16Array);
  const out = new Float32Array(data.length);
  if (dtype === 'I64' || dtype === 'U64') {
    const d = data as BigInt64Array | BigUint64Array;
    for (let i = 0; i < d.length; i++) out[i] = Number(d[i]!);
  } else {
    const d = data as Exclude<RawTypedArray, BigInt64Array | BigUint64Array>;
    for (let i = 0; i < d.length; i++) out[i] = d[i]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// reading

export interface SafetensorsReader {
  /** The file (or index) this reader was opened on. */
  readonly path: string;
  readonly metadata: Record<string, string>;
  keys(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor's data in its stored dtype. */
  read(name: string): RawTensor;
  /** The tensor's data converted to float32 (F16/BF16/F64/integers converted). */
  readFloat32(name: string): Float32Array;
  /** A tf tensor: float32 for float dtypes, int32 for integer dtypes, bool for BOOL. */
  tensor(name: string): tf.Tensor;
  /** Bytes read from disk so far (header included), for diagnostics and tests. */
  readonly bytesRead: number;
  close(): void;
}

class SingleFileReader implements SafetensorsReader {
  readonly path: string;
  readonly metadata: Record<string, string>;
  private fd: number | null;
  private readonly entries: Map<string, TensorInfo>;
  private _bytesRead = 0;

  constructor(file: string) {
    this.path = file;
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (e) {
      throw new SafetensorsError(file, `cannot open (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
        cause: e,
        hint: 'check the path',
      });
    }
    this.fd = fd;
    try {
      const { entries, metadata } = this.parseHeader(fd, file);
      this.entries = entries;
      this.metadata = metadata;
    } catch (e) {
      closeSync(fd);
      this.fd = null;
      throw e;
    }
  }

  get bytesRead(): number {
    return this._bytesRead;
  }

  private readAt(fd: number, length: number, position: number, into?: Uint8Array): Uint8Array {
    const buf = into ?? Buffer.allocUnsafe(length);
    let off = 0;
    while (off < length) {
      const n = readSync(fd, buf, off, length - off, position + off);
      if (n === 0) throw new SafetensorsError(this.path, `unexpected end of file at byte ${position + off}`);
      off += n;
    }
    this._bytesRead += length;
    return buf;
  }

  private parseHeader(fd: number, file: string) {
    const size = fstatSync(fd).size;
    if (size < 8) throw new SafetensorsError(file, `truncated: ${size} bytes, shorter than the 8-byte header length`);
    const lenBuf = this.readAt(fd, 8, 0);
    const headerLen = new DataView(lenBuf.buffer, lenBuf.byteOffset, 8).getBigUint64(0, true);
    if (headerLen > BigInt(size - 8)) {
      throw new SafetensorsError(file, `header length ${headerLen} runs past the end of the file (${size} bytes)`, {
        hint: 'the file is truncated or not a safetensors file',
      });
    }
    if (headerLen > BigInt(MAX_HEADER_BYTES)) {
      throw new SafetensorsError(file, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    }
    const n = Number(headerLen);
    if (n < 2) throw new SafetensorsError(file, `header of ${n} bytes is too short to be JSON`);
    const text = new TextDecoder('utf-8').decode(this.readAt(fd, n, 8));
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (e) {
      throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`, { cause: e });
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw new SafetensorsError(file, 'header JSON is not an object');
    }
    const dataStart = 8 + n;
    const dataSize = size - dataStart;
    const entries = new Map<string, TensorInfo>();
    let metadata: Record<string, string> = {};
    const spans: Array<[number, number, string]> = [];
    for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof value !== 'object' || value === null || Array.isArray(value)) {
          throw new SafetensorsError(file, '__metadata__ is not an object of strings');
        }
        for (const [k, v] of Object.entries(value)) {
          if (typeof v !== 'string') throw new SafetensorsError(file, `__metadata__.${k} is not a string`);
        }
        metadata = value as Record<string, string>;
        continue;
      }
      const e = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof e !== 'object' || e === null) throw new SafetensorsError(file, `tensor '${name}': entry is not an object`);
      if (!isDtype(e.dtype)) {
        throw new SafetensorsError(file, `tensor '${name}': unknown dtype ${JSON.stringify(e.dtype)}`, {
          hint: `supported: ${Object.keys(DTYPE_SIZE).join(', ')}`,
        });
      }
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new SafetensorsError(file, `tensor '${name}': shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`);
      }
      const offs = e.data_offsets;
      if (
        !Array.isArray(offs) ||
        offs.length !== 2 ||
        !offs.every((o) => Number.isSafeInteger(o) && o >= 0) ||
        offs[0] > offs[1]
      ) {
        throw new SafetensorsError(file, `tensor '${name}': data_offsets ${JSON.stringify(offs)} are not [begin, end] with 0 <= begin <= end`);
      }
      const [begin, end] = offs as [number, number];
      if (end > dataSize) {
        throw new SafetensorsError(file, `tensor '${name}': data_offsets [${begin}, ${end}] are out of range (data buffer has ${dataSize} bytes)`, {
          hint: 'the file is truncated',
        });
      }
      const shape = e.shape as number[];
      const expected = numel(shape) * DTYPE_SIZE[e.dtype];
      if (end - begin !== expected) {
        throw new SafetensorsError(file, `tensor '${name}': ${end - begin} bytes stored but shape [${shape.join(', ')}] of ${e.dtype} needs ${expected}`);
      }
      entries.set(name, { dtype: e.dtype, shape, byteLength: expected, fileOffset: dataStart + begin, file });
      spans.push([begin, end, name]);
    }
    spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let reach: [number, number, string] | null = null; // the span reaching furthest so far
    for (const cur of spans) {
      if (cur[1] === cur[0]) continue; // empty tensors occupy no bytes
      if (reach && cur[0] < reach[1]) {
        throw new SafetensorsError(file, `tensors '${reach[2]}' [${reach[0]}, ${reach[1]}] and '${cur[2]}' [${cur[0]}, ${cur[1]}] overlap`);
      }
      if (!reach || cur[1] > reach[1]) reach = cur;
    }
    return { entries, metadata };
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.entries.get(name);
    if (!e) {
      throw new SafetensorsError(this.path, `no tensor named '${name}'`, {
        hint: `it holds ${this.entries.size} tensors${this.entries.size ? `, e.g. '${this.keys().slice(0, 3).join("', '")}'` : ''}`,
      });
    }
    return e;
  }

  read(name: string): RawTensor {
    const e = this.info(name);
    if (this.fd === null) throw new SafetensorsError(this.path, 'reader is closed');
    // Read straight into a fresh ArrayBuffer: aligned for the typed-array view, no extra copy.
    const ab = new ArrayBuffer(e.byteLength);
    this.readAt(this.fd, e.byteLength, e.fileOffset, new Uint8Array(ab));
    return { dtype: e.dtype, shape: [...e.shape], data: viewAs(e.dtype, ab) };
  }

  readFloat32(name: string): Float32Array {
    return toFloat32(this.read(name));
  }

  tensor(name: string): tf.Tensor {
    return rawToTensor(this.read(name), this.path, name);
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

function rawToTensor(raw: RawTensor, file: string, name: string): tf.Tensor {
  const { dtype, shape, data } = raw;
  if (dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64') {
    return tf.tensor(toFloat32(raw), shape, 'float32');
  }
  if (dtype === 'BOOL') return tf.tensor(data as Uint8Array, shape, 'bool');
  const out = new Int32Array(data.length);
  if (dtype === 'I64' || dtype === 'U64' || dtype === 'U32') {
    for (let i = 0; i < data.length; i++) {
      const v = Number(data[i]!);
      if (v > 2147483647 || v < -2147483648) {
        throw new SafetensorsError(file, `tensor '${name}': value ${v} at index ${i} does not fit int32`, {
          hint: 'use reader.read() for the raw 64-bit data',
        });
      }
      out[i] = v;
    }
  } else {
    out.set(data as Int32Array | Int16Array | Int8Array | Uint16Array | Uint8Array);
  }
  return tf.tensor(out, shape, 'int32');
}

class ShardedReader implements SafetensorsReader {
  readonly path: string;
  readonly metadata: Record<string, string>;
  private readonly weightMap: Map<string, string>;
  private readonly shards = new Map<string, SingleFileReader>();

  constructor(indexPath: string) {
    this.path = indexPath;
    let index: { metadata?: unknown; weight_map?: unknown };
    try {
      index = JSON.parse(readFileSync(indexPath, 'utf8'));
    } catch (e) {
      throw new SafetensorsError(indexPath, `index is not readable JSON (${(e as Error).message})`, { cause: e });
    }
    if (typeof index.weight_map !== 'object' || index.weight_map === null) {
      throw new SafetensorsError(indexPath, 'index has no weight_map object');
    }
    this.weightMap = new Map();
    const dir = path.dirname(indexPath);
    for (const [k, v] of Object.entries(index.weight_map as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new SafetensorsError(indexPath, `weight_map['${k}'] is not a file name`);
      const shardPath = path.resolve(dir, v);
      if (!existsSync(shardPath)) {
        throw new SafetensorsError(indexPath, `weight_map['${k}'] names shard '${v}', which does not exist`);
      }
      this.weightMap.set(k, shardPath);
    }
    const md: Record<string, string> = {};
    if (index.metadata && typeof index.metadata === 'object') {
      for (const [k, v] of Object.entries(index.metadata)) md[k] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    this.metadata = md;
  }

  private shard(name: string): SingleFileReader {
    const file = this.weightMap.get(name);
    if (!file) throw new SafetensorsError(this.path, `no tensor named '${name}' in the index`);
    let r = this.shards.get(file);
    if (!r) {
      r = new SingleFileReader(file);
      this.shards.set(file, r);
    }
    if (!r.has(name)) throw new SafetensorsError(file, `the index maps '${name}' to this shard, but it does not hold it`);
    return r;
  }

  get bytesRead(): number {
    let n = 0;
    for (const r of this.shards.values()) n += r.bytesRead;
    return n;
  }

  keys(): string[] {
    return [...this.weightMap.keys()];
  }
  has(name: string): boolean {
    return this.weightMap.has(name);
  }
  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }
  read(name: string): RawTensor {
    return this.shard(name).read(name);
  }
  readFloat32(name: string): Float32Array {
    return this.shard(name).readFloat32(name);
  }
  tensor(name: string): tf.Tensor {
    return this.shard(name).tensor(name);
  }
  close(): void {
    for (const r of this.shards.values()) r.close();
    this.shards.clear();
  }
}

const DIR_CANDIDATES = [
  'model.safetensors',
  'diffusion_pytorch_model.safetensors',
  'model.safetensors.index.json',
  'diffusion_pytorch_model.safetensors.index.json',
];

/** Resolves a file, an index, or a directory holding one, to the path to open. */
export function resolveSafetensorsPath(p: string): string {
  let st;
  try {
    st = statSync(p);
  } catch (e) {
    throw new SafetensorsError(p, 'does not exist', { cause: e, hint: 'check the path to the checkpoint' });
  }
  if (!st.isDirectory()) return p;
  for (const c of DIR_CANDIDATES) if (existsSync(path.join(p, c))) return path.join(p, c);
  const found = readdirSync(p).filter((f) => f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json'));
  const index = found.find((f) => f.endsWith('.index.json'));
  if (index) return path.join(p, index);
  if (found.length === 1) return path.join(p, found[0]!);
  throw new SafetensorsError(p, found.length === 0 ? 'directory holds no .safetensors file' : `directory holds several .safetensors files (${found.join(', ')}) and no index`, {
    hint: 'name the file to open',
  });
}

/** Opens a `.safetensors` file, a `*.safetensors.index.json`, or a directory with one. Lazy. */
export function openSafetensors(p: string): SafetensorsReader {
  const file = resolveSafetensorsPath(p);
  return file.endsWith('.json') ? new ShardedReader(file) : new SingleFileReader(file);
}

/** Reads tensors (all, or `keys`) into tf tensors. The caller owns (disposes) them. */
export function loadSafetensors(p: string, options: { keys?: string[] } = {}): Record<string, tf.Tensor> {
  const r = openSafetensors(p);
  try {
    const out: Record<string, tf.Tensor> = {};
    for (const k of options.keys ?? r.keys()) out[k] = r.tensor(k);
    return out;
  } finally {
    r.close();
  }
}

// ---------------------------------------------------------------------------------------------
// writing

export type SafetensorsInput = tf.Tensor | RawTensor;

export interface SaveSafetensorsOptions {
  metadata?: Record<string, string>;
  /** Store float tensors as this dtype (default F32). */
  floatDtype?: 'F32' | 'F16' | 'BF16';
}

function isRaw(t: SafetensorsInput): t is RawTensor {
  return !(t instanceof tf.Tensor) && typeof (t as RawTensor).dtype === 'string' && 'data' in t;
}

function bytesOf(name: string, t: SafetensorsInput, floatDtype: 'F32' | 'F16' | 'BF16'): { dtype: SafetensorsDtype; shape: number[]; bytes: Uint8Array } {
  if (isRaw(t)) {
    if (!isDtype(t.dtype)) throw new OpenSoraError('E_SAFETENSORS', `tensor '${name}': unknown dtype ${t.dtype}`);
    const expected = numel(t.shape) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new OpenSoraError('E_SAFETENSORS', `tensor '${name}': ${t.data.byteLength} bytes of data for shape [${t.shape.join(', ')}] of ${t.dtype} (needs ${expected})`);
    }
    return { dtype: t.dtype, shape: [...t.shape], bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
  }
  const shape = [...t.shape];
  const data = t.dataSync();
  if (t.dtype === 'float32') {
    const f = data as Float32Array;
    const arr = floatDtype === 'F16' ? f32ToF16(f) : floatDtype === 'BF16' ? f32ToBf16(f) : f;
    return { dtype: floatDtype, shape, bytes: new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength) };
  }
  if (t.dtype === 'int32') {
    const a = data as Int32Array;
    return { dtype: 'I32', shape, bytes: new Uint8Array(a.buffer, a.byteOffset, a.byteLength) };
  }
  if (t.dtype === 'bool') {
    const a = Uint8Array.from(data as Uint8Array);
    return { dtype: 'BOOL', shape, bytes: a };
  }
  throw new OpenSoraError('E_SAFETENSORS', `tensor '${name}': dtype ${t.dtype} cannot be stored in safetensors`);
}

/**
 * Writes tensors to `file` atomically (temporary file, fsync, rename). Tensors are materialised
 * one at a time, so peak memory stays near the largest tensor. Keys are written in sorted order.
 */
export async function saveSafetensors(
  file: string,
  tensors: Record<string, SafetensorsInput> | Map<string, SafetensorsInput>,
  options: SaveSafetensorsOptions = {},
): Promise<void> {
  const entries = (tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors)).sort((a, b) =>
    a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0,
  );
  const floatDtype = options.floatDtype ?? 'F32';
  const header: Record<string, unknown> = {};
  if (options.metadata) {
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') throw new OpenSoraError('E_SAFETENSORS', `metadata '${k}' must be a string`);
    }
    header.__metadata__ = options.metadata;
  }
  let offset = 0;
  for (const [name, t] of entries) {
    const shape = [...t.shape];
    const isFloat = isRaw(t) ? null : t.dtype === 'float32';
    const dtype: SafetensorsDtype = isRaw(t) ? t.dtype : isFloat ? floatDtype : t.dtype === 'int32' ? 'I32' : t.dtype === 'bool' ? 'BOOL' : 'F32';
    if (!isDtype(dtype)) throw new OpenSoraError('E_SAFETENSORS', `tensor '${name}': unknown dtype ${dtype}`);
    const size = numel(shape) * DTYPE_SIZE[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let headerText = JSON.stringify(header);
  const pad = (8 - ((Buffer.byteLength(headerText) + 8) % 8)) % 8;
  headerText += ' '.repeat(pad);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const lenBytes = Buffer.alloc(8);
  lenBytes.writeBigUInt64LE(BigInt(headerBytes.length));

  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    const write = async (b: Uint8Array) => {
      let off = 0;
      while (off < b.byteLength) off += (await fh.write(b, off, b.byteLength - off)).bytesWritten;
    };
    await write(lenBytes);
    await write(headerBytes);
    for (const [name, t] of entries) {
      const { bytes } = bytesOf(name, t, floatDtype);
      const h = header[name] as { data_offsets: [number, number] };
      if (bytes.byteLength !== h.data_offsets[1] - h.data_offsets[0]) {
        throw new OpenSoraError('E_SAFETENSORS', `tensor '${name}': size changed while writing`);
      }
      await write(bytes);
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, file);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}
