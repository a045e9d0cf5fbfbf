import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '@opensora/core';
import { BuiltinTextEncoder, createTextEncoder, nullEmbeddings, sinusoidalPositions } from '../src/index.js';
import { builtinDigest } from './digest.js';

const here = path.dirname(fileURLToPath(import.meta.url));

beforeAll(async () => {
  await initBackend();
});

/** 1000 distinct words: consonant-vowel syllables, 1 to 3 of them. */
function vocabulary(n: number): string[] {
  const cons = 'bdfgklmnprstvz'.split('');
  const vow = 'aeiou'.split('');
  const syl: string[] = [];
  for (const c of cons) for (const v of vow) syl.push(c + v);
  const words: string[] = [];
  for (let i = 0; words.length < n; i++) {
    const a = syl[i % syl.length]!;
    const b = syl[Math.floor(i / syl.length) % syl.length]!;
    words.push(i < syl.length ? a : a + b + (i >= syl.length * syl.length ? 'x' : ''));
  }
  return words;
}

describe('BuiltinTextEncoder', () => {
  it('gives [B,1,L,C] embeddings and T5-style masks (words + EOS, right padding)', () => {
    const enc = new BuiltinTextEncoder({ captionChannels: 32, modelMaxLength: 10, contextScale: 0, sentenceScale: 0 });
    expect(enc.captionChannels).toBe(32);
    expect(enc.modelMaxLength).toBe(10);
    const out = enc.encode(['A red ball.', '', 'one two three four five six seven eight nine ten eleven']);
    expect(out.embeddings.shape).toEqual([3, 1, 10, 32]);
    expect(out.mask.dtype).toBe('int32');
    const m = out.mask.arraySync() as number[][];
    expect(m[0]).toEqual([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    expect(m[1]).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(m[2]).toEqual(new Array(10).fill(1)); // truncated: 9 words + EOS
    expect(enc.tokenize(['one two three four five six seven eight nine ten eleven']).truncated).toEqual([true]);
    const e = out.embeddings.arraySync() as number[][][][];
    expect(e[0]![0]![5]!.every((v) => v === 0)).toBe(true); // padding is zero
    // token = u(word) + 0.5 * PE(position)
    const pe = sinusoidalPositions(10, 32);
    const u = enc.wordVector('red');
    for (let c = 0; c < 32; c++) expect(e[0]![0]![1]![c]).toBeCloseTo(u[c]! + 0.5 * pe[32 + c]!, 5);
    // the EOS of "" (position 0) and of "A red ball." (position 3) share the EOS vector, shifted by PE
    for (let c = 0; c < 32; c++) expect(e[0]![0]![3]![c]! - 0.5 * pe[3 * 32 + c]!).toBeCloseTo(e[1]![0]![0]![c]! - 0.5 * pe[c]!, 5);
    out.embeddings.dispose();
    out.mask.dispose();
  });

  it('adds the neighbours and the sentence to every token', () => {
    const C = 16;
    const enc = new BuiltinTextEncoder({ captionChannels: C, modelMaxLength: 8 });
    expect(enc.contextScale).toBe(0.5);
    expect(enc.sentenceScale).toBe(1);
    expect(enc.id).toContain(':ctx0.5:sent1');
    const out = enc.encode(['red ball']);
    const e = out.embeddings.dataSync();
    const pe = sinusoidalPositions(8, C);
    const w = (x: string, r?: 'before' | 'after' | 'pair') => enc.wordVector(x, r);
    const BOS = '\u0000<s>';
    const EOS = '\u0000</s>';
    // sentence = (pair(BOS red) + pair(red ball) + pair(ball EOS)) / sqrt 3, on every token
    const sent = (c: number) => (w(`${BOS} red`, 'pair')[c]! + w('red ball', 'pair')[c]! + w(`ball ${EOS}`, 'pair')[c]!) / Math.sqrt(3);
    for (let c = 0; c < C; c++) {
      // token 0 "red": u(red) + 0.5 (before(BOS) + after(ball)) + 0.5 PE(0) + sentence
      expect(e[c]).toBeCloseTo(w('red')[c]! + 0.5 * (w(BOS, 'before')[c]! + w('ball', 'after')[c]!) + 0.5 * pe[c]! + sent(c), 5);
      // token 2 EOS: nothing after it
      expect(e[2 * C + c]).toBeCloseTo(w(EOS)[c]! + 0.5 * w('ball', 'before')[c]! + 0.5 * pe[2 * C + c]! + sent(c), 5);
    }
    // the three roles of a word are unrelated vectors
    expect(Array.from(w('red'))).not.toEqual(Array.from(w('red', 'before')));
    expect(Array.from(w('red', 'after'))).not.toEqual(Array.from(w('red', 'before')));
    // "red ball, blue box" and "blue ball, red box": the same words, different bindings, different sentence vectors
    const a = enc.encode(['a red ball and a blue box']).embeddings.dataSync();
    const b = enc.encode(['a blue ball and a red box']).embeddings.dataSync();
    let d = 0;
    for (let c = 0; c < C; c++) d = Math.max(d, Math.abs(a[7 * C + c]! - b[7 * C + c]!)); // the EOS tokens differ only through the sentence
    expect(d).toBeGreaterThan(0.3);
    out.embeddings.dispose();
    out.mask.dispose();
  });

  it('rejects non-finite scales', () => {
    expect(() => new BuiltinTextEncoder({ contextScale: NaN })).toThrow(/contextScale/);
    expect(() => new BuiltinTextEncoder({ sentenceScale: Infinity })).toThrow(/sentenceScale/);
  });

  it('tokenizes on letters and digits, case- and punctuation-insensitively', () => {
    expect(BuiltinTextEncoder.splitWords('A red-ball, ROLLS!! 2 times')).toEqual(['a', 'red', 'ball', 'rolls', '2', 'times']);
    expect(BuiltinTextEncoder.splitWords('Café naïve')).toEqual(['café', 'naïve']);
    expect(BuiltinTextEncoder.splitWords('夕日の海')).toEqual(['夕', '日', 'の', '海']);
    const enc = new BuiltinTextEncoder({ captionChannels: 16, modelMaxLength: 8 });
    const a = enc.encode(['A Red Ball!']);
    const b = enc.encode(['a red ball']);
    expect(Array.from(a.embeddings.dataSync())).toEqual(Array.from(b.embeddings.dataSync()));
    for (const t of [a.embeddings, a.mask, b.embeddings, b.mask]) t.dispose();
  });

  it('distinguishes every word of a 1000-word vocabulary', () => {
    const words = vocabulary(1000);
    expect(new Set(words).size).toBe(1000);
    const C = 64;
    const enc = new BuiltinTextEncoder({ captionChannels: C, modelMaxLength: 4 });
    const out = enc.encode(words);
    const e = out.embeddings.dataSync();
    const m = out.mask.dataSync();
    // every caption is [word, EOS]; compare the word tokens (same position, so PE cancels)
    const vecs = words.map((_, i) => e.subarray(i * 4 * C, i * 4 * C + C));
    expect(Array.from(m.subarray(0, 4))).toEqual([1, 1, 0, 0]);
    let maxCos = -1;
    let minDist = Infinity;
    const u = words.map((w) => enc.wordVector(w));
    const norms = u.map((v) => Math.hypot(...v));
    for (let i = 0; i < 1000; i++) {
      for (let j = i + 1; j < 1000; j++) {
        let dot = 0;
        let d2 = 0;
        for (let c = 0; c < C; c++) {
          dot += u[i]![c]! * u[j]![c]!;
          const d = vecs[i]![c]! - vecs[j]![c]!;
          d2 += d * d;
        }
        maxCos = Math.max(maxCos, dot / (norms[i]! * norms[j]!));
        minDist = Math.min(minDist, Math.sqrt(d2));
      }
    }
    // independent random directions in 64-d: |cos| stays well below 1; the closest pair is far apart
    expect(maxCos).toBeLessThan(0.75);
    expect(minDist).toBeGreaterThan(4);
    out.embeddings.dispose();
    out.mask.dispose();
  });

  it('word order and seeds matter', () => {
    const enc = new BuiltinTextEncoder({ captionChannels: 16, modelMaxLength: 6 });
    const other = new BuiltinTextEncoder({ captionChannels: 16, modelMaxLength: 6, seed: 1 });
    const a = enc.encode(['red ball blue box']).embeddings;
    const b = enc.encode(['blue ball red box']).embeddings;
    const c = other.encode(['red ball blue box']).embeddings;
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeGreaterThan(0.5);
    expect(tf.max(tf.abs(tf.sub(a, c))).dataSync()[0]).toBeGreaterThan(0.5);
    expect(enc.id).not.toBe(other.id);
    for (const t of [a, b, c]) t.dispose();
  });

  it('is deterministic across processes', () => {
    const here0 = builtinDigest();
    const require = createRequire(import.meta.url);
    const tsx = require.resolve('tsx');
    const out = execFileSync(process.execPath, ['--import', tsx, path.join(here, 'scripts', 'builtin-digest.ts')], {
      cwd: path.join(here, '..'),
      encoding: 'utf8',
      env: { ...process.env, OPENSORA_LOG_LEVEL: 'silent' },
    });
    const there = JSON.parse(out.trim().split('\n').pop()!) as ReturnType<typeof builtinDigest>;
    expect(there).toEqual(here0);
  });

  it('rejects bad input and options', async () => {
    const enc = await createTextEncoder({ type: 'builtin', captionChannels: 8, modelMaxLength: 4 });
    expect(() => enc.encode([])).toThrow(/batch is empty/);
    expect(() => enc.encode([undefined as unknown as string])).toThrow(/texts\[0\] is undefined/);
    expect(() => new BuiltinTextEncoder({ captionChannels: 0 })).toThrow(/captionChannels/);
    expect(() => new BuiltinTextEncoder({ modelMaxLength: 2.5 })).toThrow(/modelMaxLength/);
    await expect(createTextEncoder({ type: 'nope' } as never)).rejects.toThrow(/unknown type 'nope'/);
    enc.dispose();
  });
});

describe('nullEmbeddings', () => {
  it("tiles the model's y_embedding [L, C] to [n, 1, L, C] as the reference's null(n)", () => {
    const y = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
    const n = nullEmbeddings(y, 3);
    expect(n.shape).toEqual([3, 1, 2, 3]);
    expect(Array.from(n.dataSync())).toEqual([1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6]);
    expect(() => nullEmbeddings(tf.zeros([2]), 1)).toThrow(/must be \[L, C\]/);
    expect(() => nullEmbeddings(y, 0)).toThrow(/positive integer/);
    n.dispose();
    y.dispose();
  });
});
