import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  ConfigError,
  InvalidArgumentError,
  OpenSoraError,
  atomicWriteFileSync,
  createProgress,
  f32ToF16,
  openSafetensors,
  saveSafetensors,
  tf,
} from '@opensora/core';
import type { RawTensor, SafetensorsReader } from '@opensora/core';
import type { TextEncoderAdapter, TextEncoderOutput } from './types.js';
import { checkTexts } from './validate.js';

export const CACHE_FORMAT = 'opensora-text-cache/1';

export interface EmbeddingCacheOptions {
  /** The encoder's `id`; shards written by another encoder are refused. */
  encoderId: string;
  captionChannels: number;
  modelMaxLength: number;
  /** Captions per shard file; `put` writes a shard once this many are pending (default 256). */
  shardSize?: number;
  /** Storage precision (default F32; F16 halves the size, ~1e-3 relative error). */
  floatDtype?: 'F32' | 'F16';
  /** Shard readers kept open at once (default 32). */
  maxOpenShards?: number;
}

interface ShardEntry {
  file: string;
  reader: SafetensorsReader | null;
}

/** The cache key of a caption: the first 32 hex digits of the SHA-256 of its UTF-8 text. */
export function captionKey(caption: string): string {
  return createHash('sha256').update(caption, 'utf8').digest('hex').slice(0, 32);
}

/**
 * Caption embeddings on disk, so that captions are encoded once per dataset (T5-XXL costs more than
 * a diffusion step). A cache is a folder of safetensors shards; each tensor is named by the
 * caption's key (`captionKey`) and holds the caption's real tokens only, [n, C] (n = mask length,
 * EOS included); padding is rebuilt as zeros on read. Each shard's metadata records the encoder
 * id, C and L, and a cache refuses shards of another encoder. Shards are written atomically (temp
 * file + rename) under unique names, so several processes may fill one folder; `refresh()` picks up
 * shards written by others.
 */
export class EmbeddingCache {
  readonly dir: string;
  readonly encoderId: string;
  readonly captionChannels: number;
  readonly modelMaxLength: number;
  readonly shardSize: number;
  readonly floatDtype: 'F32' | 'F16';
  private readonly maxOpen: number;
  private readonly index = new Map<string, ShardEntry>();
  private readonly shards = new Map<string, ShardEntry>();
  private readonly open: ShardEntry[] = [];
  private pending = new Map<string, Float32Array>();
  private closed = false;

  private constructor(dir: string, o: EmbeddingCacheOptions) {
    this.dir = dir;
    this.encoderId = o.encoderId;
    this.captionChannels = o.captionChannels;
    this.modelMaxLength = o.modelMaxLength;
    this.shardSize = o.shardSize ?? 256;
    this.floatDtype = o.floatDtype ?? 'F32';
    this.maxOpen = o.maxOpenShards ?? 32;
    if (!Number.isInteger(this.shardSize) || this.shardSize < 1) throw new InvalidArgumentError(`EmbeddingCache: shardSize must be a positive integer, got ${this.shardSize}`);
  }

  /** Opens (creating if needed) a cache folder for `encoder` (or explicit options) and indexes its shards. */
  static open(dir: string, encoder: Pick<TextEncoderAdapter, 'id' | 'captionChannels' | 'modelMaxLength'> | EmbeddingCacheOptions, options: Partial<EmbeddingCacheOptions> = {}): EmbeddingCache {
    const base: EmbeddingCacheOptions =
      'encoderId' in encoder
        ? encoder
        : { encoderId: encoder.id, captionChannels: encoder.captionChannels, modelMaxLength: encoder.modelMaxLength };
    mkdirSync(dir, { recursive: true });
    const c = new EmbeddingCache(dir, { ...base, ...options });
    c.refresh();
    return c;
  }

  /** Indexes shard files not seen yet (e.g. written by another process). Returns how many were added. */
  refresh(): number {
    this.assertOpen();
    let added = 0;
    const files = readdirSync(this.dir)
      .filter((f) => f.endsWith('.safetensors') && !f.startsWith('.'))
      .sort();
    for (const f of files) {
      const file = path.join(this.dir, f);
      if (this.shards.has(file)) continue;
      const r = openSafetensors(file);
      try {
        this.checkShard(r);
        const entry: ShardEntry = { file, reader: null };
        this.shards.set(file, entry);
        for (const k of r.keys()) if (!this.index.has(k)) this.index.set(k, entry);
        added++;
      } finally {
        r.close();
      }
    }
    return added;
  }

  private checkShard(r: SafetensorsReader): void {
    const m = r.metadata;
    if (m.format !== CACHE_FORMAT) {
      throw new ConfigError(`${r.path} is not an embedding-cache shard (format '${m.format ?? 'none'}')`, { hint: 'give the cache a folder of its own' });
    }
    const want: Record<string, string> = {
      encoder: this.encoderId,
      caption_channels: String(this.captionChannels),
      model_max_length: String(this.modelMaxLength),
    };
    for (const [k, v] of Object.entries(want)) {
      if (m[k] !== v) {
        throw new ConfigError(`${r.path} was written for ${k} '${m[k]}', this cache is for '${v}'`, {
          details: { file: r.path, key: k, found: m[k], expected: v },
          hint: 'use one cache folder per text encoder (and modelMaxLength)',
        });
      }
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new OpenSoraError('E_INVALID_ARGUMENT', 'EmbeddingCache: used after close()');
  }

  /** Number of captions stored or pending. */
  get size(): number {
    let n = this.index.size;
    for (const k of this.pending.keys()) if (!this.index.has(k)) n++;
    return n;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  has(caption: string): boolean {
    const k = captionKey(caption);
    return this.pending.has(k) || this.index.has(k);
  }

  private reader(e: ShardEntry): SafetensorsReader {
    if (e.reader) {
      const i = this.open.indexOf(e);
      if (i >= 0 && i !== this.open.length - 1) {
        this.open.splice(i, 1);
        this.open.push(e);
      }
      return e.reader;
    }
    while (this.open.length >= this.maxOpen) {
      const old = this.open.shift()!;
      old.reader?.close();
      old.reader = null;
    }
    e.reader = openSafetensors(e.file);
    this.open.push(e);
    return e.reader;
  }

  /** The stored real-token features of one caption, [n * C] (n = its mask length), or undefined. */
  lookup(caption: string): { tokens: number; data: Float32Array } | undefined {
    this.assertOpen();
    const k = captionKey(caption);
    const p = this.pending.get(k);
    const C = this.captionChannels;
    if (p) return { tokens: p.length / C, data: p };
    const e = this.index.get(k);
    if (!e) return undefined;
    const r = this.reader(e);
    const info = r.info(k);
    if (info.shape.length !== 2 || info.shape[1] !== C || info.shape[0]! < 1 || info.shape[0]! > this.modelMaxLength) {
      throw new OpenSoraError('E_SAFETENSORS', `${e.file}: entry ${k} has shape [${info.shape.join(', ')}], expected [n <= ${this.modelMaxLength}, ${C}]`);
    }
    return { tokens: info.shape[0]!, data: r.readFloat32(k) };
  }

  /** The batch's embeddings [B, 1, L, C] (zeros at padding) and mask, or null if any caption is missing. */
  get(captions: string[]): TextEncoderOutput | null {
    checkTexts(captions, 'EmbeddingCache');
    const found = captions.map((c) => this.lookup(c));
    if (found.some((f) => !f)) return null;
    return this.assemble(found as Array<{ tokens: number; data: Float32Array }>);
  }

  /** Builds [B, 1, L, C] and [B, L] tensors from per-caption real-token features. */
  assemble(rows: Array<{ tokens: number; data: Float32Array }>): TextEncoderOutput {
    const B = rows.length;
    const L = this.modelMaxLength;
    const C = this.captionChannels;
    const emb = new Float32Array(B * L * C);
    const mask = new Int32Array(B * L);
    rows.forEach((r, b) => {
      emb.set(r.data.subarray(0, r.tokens * C), b * L * C);
      mask.fill(1, b * L, b * L + r.tokens);
    });
    return { embeddings: tf.tensor4d(emb, [B, 1, L, C]), mask: tf.tensor2d(mask, [B, L], 'int32') };
  }

  /**
   * Adds encoder output for `captions` (embeddings [B, 1, L, C], mask [B, L] with 1s first). Entries
   * are readable at once; a shard is written (synchronously, atomically) when `shardSize` are pending.
   */
  put(captions: string[], out: TextEncoderOutput): void {
    this.assertOpen();
    checkTexts(captions, 'EmbeddingCache.put');
    const B = captions.length;
    const L = this.modelMaxLength;
    const C = this.captionChannels;
    const es = out.embeddings.shape;
    if (es.length !== 4 || es[0] !== B || es[1] !== 1 || es[2] !== L || es[3] !== C) {
      throw new InvalidArgumentError(`EmbeddingCache.put: embeddings must be [${B}, 1, ${L}, ${C}], got [${es.join(', ')}]`);
    }
    if (out.mask.shape.length !== 2 || out.mask.shape[0] !== B || out.mask.shape[1] !== L) {
      throw new InvalidArgumentError(`EmbeddingCache.put: mask must be [${B}, ${L}], got [${out.mask.shape.join(', ')}]`);
    }
    const emb = out.embeddings.dataSync() as Float32Array;
    const mask = out.mask.dataSync();
    for (let b = 0; b < B; b++) {
      let n = 0;
      while (n < L && mask[b * L + n] !== 0) n++;
      for (let i = n; i < L; i++) {
        if (mask[b * L + i] !== 0) throw new InvalidArgumentError(`EmbeddingCache.put: mask row ${b} is not right-padded (1s then 0s)`);
      }
      if (n === 0) throw new InvalidArgumentError(`EmbeddingCache.put: mask row ${b} has no real token`);
      const k = captionKey(captions[b]!);
      if (this.index.has(k)) continue;
      this.pending.set(k, emb.slice(b * L * C, (b * L + n) * C));
    }
    if (this.pending.size >= this.shardSize) this.flushSync();
  }

  private shardPayload(): { file: string; tensors: Record<string, RawTensor>; metadata: Record<string, string>; entries: Array<[string, Float32Array]> } | null {
    if (this.pending.size === 0) return null;
    const entries = [...this.pending.entries()];
    const C = this.captionChannels;
    const tensors: Record<string, RawTensor> = {};
    for (const [k, v] of entries) {
      const shape = [v.length / C, C];
      tensors[k] = this.floatDtype === 'F16' ? { dtype: 'F16', shape, data: f32ToF16(v) } : { dtype: 'F32', shape, data: v };
    }
    const metadata = {
      format: CACHE_FORMAT,
      encoder: this.encoderId,
      caption_channels: String(C),
      model_max_length: String(this.modelMaxLength),
      count: String(entries.length),
    };
    const name = `emb-${Date.now().toString(36)}-${process.pid}-${randomBytes(4).toString('hex')}.safetensors`;
    return { file: path.join(this.dir, name), tensors, metadata, entries };
  }

  private committed(file: string, entries: Array<[string, Float32Array]>): void {
    const entry: ShardEntry = { file, reader: null };
    this.shards.set(file, entry);
    for (const [k, v] of entries) {
      if (!this.index.has(k)) this.index.set(k, entry);
      if (this.pending.get(k) === v) this.pending.delete(k);
    }
  }

  /** Writes the pending entries as one shard (atomic). */
  async flush(): Promise<void> {
    this.assertOpen();
    const p = this.shardPayload();
    if (!p) return;
    await saveSafetensors(p.file, p.tensors, { metadata: p.metadata });
    this.committed(p.file, p.entries);
  }

  /** Synchronous `flush` (used by `put` and `CachedTextEncoder.encode`, which are synchronous). */
  flushSync(): void {
    this.assertOpen();
    const p = this.shardPayload();
    if (!p) return;
    atomicWriteFileSync(p.file, serializeSafetensors(p.tensors, p.metadata));
    this.committed(p.file, p.entries);
  }

  /** Flushes pending entries and closes shard readers. */
  close(): void {
    if (this.closed) return;
    this.flushSync();
    for (const e of this.open) {
      e.reader?.close();
      e.reader = null;
    }
    this.open.length = 0;
    this.closed = true;
  }
}

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, U8: 1, BOOL: 1, F64: 8, I64: 8 };

/** Safetensors bytes (8-byte header length, JSON header padded to 8, data), for synchronous writes. */
export function serializeSafetensors(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array[] {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const n of names) {
    const t = tensors[n]!;
    const size = t.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[t.dtype] ?? NaN);
    if (size !== t.data.byteLength) throw new InvalidArgumentError(`serializeSafetensors: '${n}' has ${t.data.byteLength} bytes for shape [${t.shape.join(', ')}] ${t.dtype}`);
    header[n] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - ((Buffer.byteLength(text) + 8) % 8)) % 8);
  const hb = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(hb.length));
  return [len, hb, ...names.map((n) => new Uint8Array(tensors[n]!.data.buffer, tensors[n]!.data.byteOffset, tensors[n]!.data.byteLength))];
}

export interface CachedTextEncoderOptions {
  /** Store misses in the cache (default true). */
  writeMisses?: boolean;
}

/**
 * A `TextEncoderAdapter` that answers from an `EmbeddingCache` and encodes only the misses (each
 * distinct caption once per call), storing them. Its output is the same whether a caption was a
 * hit or a miss: real-token features as encoded, zeros at padding (the model never reads padded
 * positions: the cross-attention packs real tokens only).
 */
export class CachedTextEncoder implements TextEncoderAdapter {
  readonly encoder: TextEncoderAdapter;
  readonly cache: EmbeddingCache;
  readonly stats = { hits: 0, misses: 0 };
  private readonly writeMisses: boolean;

  constructor(encoder: TextEncoderAdapter, cache: EmbeddingCache, options: CachedTextEncoderOptions = {}) {
    if (cache.encoderId !== encoder.id || cache.captionChannels !== encoder.captionChannels || cache.modelMaxLength !== encoder.modelMaxLength) {
      throw new ConfigError(`CachedTextEncoder: the cache is for encoder '${cache.encoderId}' (C ${cache.captionChannels}, L ${cache.modelMaxLength}), not '${encoder.id}'`);
    }
    this.encoder = encoder;
    this.cache = cache;
    this.writeMisses = options.writeMisses ?? true;
  }

  get captionChannels(): number {
    return this.encoder.captionChannels;
  }
  get modelMaxLength(): number {
    return this.encoder.modelMaxLength;
  }
  get id(): string {
    return this.encoder.id;
  }

  encode(texts: string[]): TextEncoderOutput {
    checkTexts(texts, 'CachedTextEncoder');
    const rows = texts.map((t) => this.cache.lookup(t));
    const missing = [...new Set(texts.filter((_, i) => !rows[i]))];
    this.stats.hits += texts.length - texts.filter((_, i) => !rows[i]).length;
    this.stats.misses += texts.filter((_, i) => !rows[i]).length;
    if (missing.length) {
      const out = this.encoder.encode(missing);
      try {
        const L = this.modelMaxLength;
        const C = this.captionChannels;
        const emb = out.embeddings.dataSync() as Float32Array;
        const mask = out.mask.dataSync();
        const fresh = new Map<string, { tokens: number; data: Float32Array }>();
        missing.forEach((t, b) => {
          let n = 0;
          while (n < L && mask[b * L + n] !== 0) n++;
          fresh.set(t, { tokens: n, data: emb.subarray(b * L * C, (b * L + n) * C) });
        });
        texts.forEach((t, i) => {
          if (!rows[i]) rows[i] = fresh.get(t)!;
        });
        if (this.writeMisses) this.cache.put(missing, out);
      } finally {
        out.embeddings.dispose();
        out.mask.dispose();
      }
    }
    return this.cache.assemble(rows as Array<{ tokens: number; data: Float32Array }>);
  }

  flush(): Promise<void> {
    return this.cache.flush();
  }

  /** Writes pending entries and closes the cache; the wrapped encoder is disposed too. */
  dispose(): void {
    this.cache.close();
    this.encoder.dispose();
  }
}

export interface PrecomputeOptions {
  /** Captions per encoder call (default 16). */
  batchSize?: number;
  /** Show progress (default true). */
  progress?: boolean;
}

/**
 * Encodes every caption not yet in `cache` (duplicates once) and writes the shards; returns counts.
 * Run it once per dataset before training (the CLI and the trainer can call it).
 */
export async function precomputeEmbeddings(
  encoder: TextEncoderAdapter,
  captions: string[],
  cache: EmbeddingCache,
  options: PrecomputeOptions = {},
): Promise<{ total: number; encoded: number; cached: number }> {
  if (!Array.isArray(captions)) throw new InvalidArgumentError('precomputeEmbeddings: captions must be an array of strings');
  if (captions.length) checkTexts(captions, 'precomputeEmbeddings');
  const unique = [...new Set(captions)];
  const todo = unique.filter((c) => !cache.has(c));
  const bs = options.batchSize ?? 16;
  const prog = createProgress({ total: todo.length, label: 'text embeddings', unit: 'captions', mode: options.progress === false ? 'silent' : undefined });
  for (let i = 0; i < todo.length; i += bs) {
    const batch = todo.slice(i, i + bs);
    const out = encoder.encode(batch);
    try {
      cache.put(batch, out);
    } finally {
      out.embeddings.dispose();
      out.mask.dispose();
    }
    prog.tick(batch.length);
  }
  await cache.flush();
  prog.done();
  return { total: captions.length, encoded: todo.length, cached: unique.length - todo.length };
}

export function cacheExists(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.safetensors'));
}
