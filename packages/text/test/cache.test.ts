import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, openSafetensors, tf } from '@opensora/core';
import {
  BuiltinTextEncoder,
  CACHE_FORMAT,
  CachedTextEncoder,
  EmbeddingCache,
  T5TextEncoder,
  captionKey,
  createTextEncoder,
  precomputeEmbeddings,
} from '../src/index.js';
import { tinyT5Config, writeTinyT5 } from './helpers.js';

let tmp: string;
beforeAll(async () => {
  await initBackend();
  tmp = mkdtempSync(path.join(os.tmpdir(), 'opensora-text-cache-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const CAPTIONS = ['a red ball', 'the cat runs on the grass', '', 'dog in snow', 'sunset over the sea'];

/** Encoder output with padding zeroed (what the cache returns). */
function masked(out: { embeddings: tf.Tensor; mask: tf.Tensor }): Float32Array {
  return tf.tidy(() => tf.mul(out.embeddings, tf.reshape(tf.cast(out.mask, 'float32'), [out.mask.shape[0]!, 1, out.mask.shape[1]!, 1])).dataSync() as Float32Array);
}

function dispose(out: { embeddings: tf.Tensor; mask: tf.Tensor }): void {
  out.embeddings.dispose();
  out.mask.dispose();
}

describe('EmbeddingCache', () => {
  it('keys captions by SHA-256', () => {
    expect(captionKey('')).toBe('e3b0c44298fc1c149afbf4c8996fb924');
    expect(captionKey('a red ball')).not.toBe(captionKey('a red ball '));
  });

  it('stores real tokens only, reads back exactly, persists across reopen', async () => {
    const dir = path.join(tmp, 'roundtrip');
    const enc = new BuiltinTextEncoder({ captionChannels: 24, modelMaxLength: 12 });
    const cache = EmbeddingCache.open(dir, enc);
    expect(cache.get(CAPTIONS)).toBeNull();
    const out = enc.encode(CAPTIONS);
    cache.put(CAPTIONS, out);
    expect(cache.pendingCount).toBe(5);
    const hit = cache.get(CAPTIONS)!; // pending entries are readable at once
    expect(Array.from(hit.embeddings.dataSync())).toEqual(Array.from(out.embeddings.dataSync())); // builtin pads with zeros
    dispose(hit);
    await cache.flush();
    expect(cache.pendingCount).toBe(0);
    cache.close();

    const files = readdirSync(dir);
    expect(files.filter((f) => f.endsWith('.safetensors'))).toHaveLength(1);
    expect(files.some((f) => f.endsWith('.tmp'))).toBe(false);
    const r = openSafetensors(path.join(dir, files.find((f) => f.endsWith('.safetensors'))!));
    expect(r.metadata.format).toBe(CACHE_FORMAT);
    expect(r.metadata.encoder).toBe(enc.id);
    expect(r.info(captionKey('a red ball')).shape).toEqual([4, 24]); // 3 words + EOS
    expect(r.info(captionKey('')).shape).toEqual([1, 24]);
    r.close();

    const again = EmbeddingCache.open(dir, enc);
    expect(again.size).toBe(5);
    const back = again.get([CAPTIONS[3]!, CAPTIONS[0]!])!;
    const fresh = enc.encode([CAPTIONS[3]!, CAPTIONS[0]!]);
    expect(Array.from(back.embeddings.dataSync())).toEqual(Array.from(fresh.embeddings.dataSync()));
    expect(Array.from(back.mask.dataSync())).toEqual(Array.from(fresh.mask.dataSync()));
    expect(back.mask.dtype).toBe('int32');
    dispose(back);
    dispose(fresh);
    dispose(out);
    again.close();
  });

  it('refuses shards of another encoder and stray files', () => {
    const dir = path.join(tmp, 'mismatch');
    const a = new BuiltinTextEncoder({ captionChannels: 8, modelMaxLength: 6 });
    const c = EmbeddingCache.open(dir, a);
    const out = a.encode(['x']);
    c.put(['x'], out);
    c.close();
    dispose(out);
    expect(() => EmbeddingCache.open(dir, new BuiltinTextEncoder({ captionChannels: 8, modelMaxLength: 6, seed: 2 }))).toThrow(/was written for encoder/);
    expect(() => EmbeddingCache.open(dir, new BuiltinTextEncoder({ captionChannels: 8, modelMaxLength: 7 }))).toThrow(/one cache folder per text encoder/);
    const b = new BuiltinTextEncoder({ captionChannels: 8, modelMaxLength: 6 });
    expect(() => new CachedTextEncoder(b, EmbeddingCache.open(path.join(tmp, 'other'), { encoderId: 'zzz', captionChannels: 8, modelMaxLength: 6 }))).toThrow(/cache is for encoder 'zzz'/);
    const stray = path.join(tmp, 'stray');
    EmbeddingCache.open(stray, b).close();
    writeFileSync(path.join(stray, 'weights.safetensors'), Buffer.from([2, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d]));
    expect(() => EmbeddingCache.open(stray, b)).toThrow(/not an embedding-cache shard/);
  });

  it('writes a shard every shardSize captions; F16 storage stays within 1e-3', () => {
    const dir = path.join(tmp, 'shards');
    const enc = new BuiltinTextEncoder({ captionChannels: 8, modelMaxLength: 5 });
    const cache = EmbeddingCache.open(dir, enc, { shardSize: 2, floatDtype: 'F16' });
    const caps = ['a', 'b', 'c', 'd', 'e'];
    const out = enc.encode(caps);
    cache.put(caps, out);
    cache.close();
    expect(readdirSync(dir).filter((f) => f.endsWith('.safetensors'))).toHaveLength(1); // 5 >= 2 -> one shard at put
    const c2 = EmbeddingCache.open(dir, enc, { shardSize: 2 });
    const more = enc.encode(['f', 'g']);
    c2.put(['f', 'g'], more);
    expect(readdirSync(dir).filter((f) => f.endsWith('.safetensors'))).toHaveLength(2);
    const got = c2.get(caps)!;
    const a = got.embeddings.dataSync();
    const b = out.embeddings.dataSync();
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
    expect(m).toBeLessThan(1e-3);
    expect(m).toBeGreaterThan(0);
    dispose(got);
    dispose(out);
    dispose(more);
    c2.close();
  });

  it('rejects a left-padded mask or wrong shapes on put', () => {
    const enc = new BuiltinTextEncoder({ captionChannels: 4, modelMaxLength: 3 });
    const cache = EmbeddingCache.open(path.join(tmp, 'bad'), enc);
    const emb = tf.zeros([1, 1, 3, 4]);
    expect(() => cache.put(['x'], { embeddings: emb, mask: tf.tensor2d([[0, 1, 1]], [1, 3], 'int32') })).toThrow(/not right-padded/);
    expect(() => cache.put(['x', 'y'], { embeddings: emb, mask: tf.tensor2d([[1, 1, 0]], [1, 3], 'int32') })).toThrow(/embeddings must be \[2, 1, 3, 4\]/);
    emb.dispose();
    cache.close();
  });
});

describe('EmbeddingCache shared by two writers', () => {
  it('each writer sees the other after refresh(); no temp files remain', async () => {
    const dir = path.join(tmp, 'shared');
    const enc = new BuiltinTextEncoder({ captionChannels: 8, modelMaxLength: 6 });
    const a = EmbeddingCache.open(dir, enc);
    const b = EmbeddingCache.open(dir, enc);
    const oa = enc.encode(['from a']);
    const ob = enc.encode(['from b']);
    a.put(['from a'], oa);
    b.put(['from b'], ob);
    await Promise.all([a.flush(), b.flush()]);
    expect(a.has('from b')).toBe(false);
    expect(a.refresh()).toBe(1);
    expect(a.has('from b')).toBe(true);
    const got = a.get(['from b'])!;
    expect(Array.from(got.embeddings.dataSync())).toEqual(Array.from(ob.embeddings.dataSync()));
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    for (const o of [oa, ob, got]) dispose(o);
    a.close();
    b.close();
    expect(() => a.get(['x'])).toThrow(/after close/);
  });
});

describe('CachedTextEncoder with a tiny T5', () => {
  it('returns the same embeddings on misses and hits, encoding each caption once', async () => {
    const model = path.join(tmp, 't5');
    await writeTinyT5(model, tinyT5Config(), 21);
    const t5 = await T5TextEncoder.fromPretrained(model, { modelMaxLength: 10 });
    const dir = path.join(tmp, 't5cache');
    const cached = new CachedTextEncoder(t5, EmbeddingCache.open(dir, t5));
    const direct = t5.encode(CAPTIONS);
    const first = cached.encode([...CAPTIONS, CAPTIONS[0]!]);
    expect(cached.stats).toEqual({ hits: 0, misses: 6 });
    const second = cached.encode(CAPTIONS);
    expect(cached.stats).toEqual({ hits: 5, misses: 6 });
    const want = masked(direct);
    const got1 = first.embeddings.dataSync().subarray(0, want.length);
    const got2 = second.embeddings.dataSync();
    let d1 = 0;
    let d2 = 0;
    for (let i = 0; i < want.length; i++) {
      d1 = Math.max(d1, Math.abs(got1[i]! - want[i]!));
      d2 = Math.max(d2, Math.abs(got2[i]! - want[i]!));
    }
    expect(d1).toBeLessThan(1e-6);
    expect(d2).toBeLessThan(1e-6);
    expect(Array.from(second.mask.dataSync())).toEqual(Array.from(direct.mask.dataSync()));
    for (const o of [direct, first, second]) dispose(o);
    await cached.flush();
    cached.dispose();
    // a new process-like session: everything is a hit
    const again = await createTextEncoder({ type: 't5', path: model, modelMaxLength: 10, cacheDir: dir });
    const o = again.encode(CAPTIONS);
    expect((again as CachedTextEncoder).stats).toEqual({ hits: 5, misses: 0 });
    dispose(o);
    again.dispose();
  });

  it('precomputeEmbeddings encodes each distinct uncached caption once', async () => {
    const enc = new BuiltinTextEncoder({ captionChannels: 8, modelMaxLength: 6 });
    const cache = EmbeddingCache.open(path.join(tmp, 'pre'), enc);
    const r1 = await precomputeEmbeddings(enc, [...CAPTIONS, ...CAPTIONS], cache, { batchSize: 2, progress: false });
    expect(r1).toEqual({ total: 10, encoded: 5, cached: 0 });
    const r2 = await precomputeEmbeddings(enc, [...CAPTIONS, 'new one'], cache, { progress: false });
    expect(r2).toEqual({ total: 6, encoded: 1, cached: 5 });
    expect(cache.size).toBe(6);
    cache.close();
  });
});
