/**
 * Text-encoder throughput: prompts/s of a tiny T5, of the T5 v1.1 small config (random weights,
 * the real shapes), of the built-in encoder, and of embedding-cache hits, with L = 200 tokens
 * (the v1.1 model_max_length). Reference figures, measured in the same run when Debian's
 * python3-torch is installed: the same T5 maths in PyTorch (CPU, fp32, 2 threads, full L as the
 * reference computes it; bench/torch_t5.py); for T5-XXL an estimate scaled by FLOPs.
 * Run: npm run bench -w @opensora/text
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Rng, formatBackend, initBackend, tf } from '@opensora/core';
import type { T5Config, TextEncoderAdapter } from '../src/index.js';
import { BuiltinTextEncoder, CachedTextEncoder, EmbeddingCache, HfTokenizer, T5EncoderModel, T5TextEncoder, T5_V1_1_XXL_CONFIG } from '../src/index.js';
import { tinyT5Config, tinyTokenizerJson, TINY_WORDS } from '../test/helpers.js';

const info = await initBackend();
console.log(`backend: ${formatBackend(info)}`);

const L = 200;
const B = 8;
const rng = new Rng('text-bench');
const words = [...TINY_WORDS, 'quickly', 'slowly', 'bright', 'dark', 'forest', 'city', 'street', 'night'];
/** Captions of 15..40 words (roughly 20..60 T5 tokens, typical of video captions). */
const captions = Array.from({ length: 64 }, () => Array.from({ length: 15 + rng.int(26) }, () => rng.pick(words)).join(' '));

function bench(label: string, enc: TextEncoderAdapter, texts: string[], minMs = 1500): number {
  const warm = enc.encode(texts.slice(0, B));
  warm.embeddings.dispose();
  warm.mask.dispose();
  let n = 0;
  let i = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs || n < 2 * B) {
    const batch = texts.slice(i, i + B);
    i = (i + B) % texts.length;
    const out = enc.encode(batch);
    out.embeddings.dataSync();
    out.embeddings.dispose();
    out.mask.dispose();
    n += batch.length;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  console.log(`${label.padEnd(58)} ${rate.toFixed(1).padStart(9)} prompts/s`);
  return rate;
}

/** Multiply-adds per prompt of a T5 encoder forward at length L (linear layers + attention). */
function t5Flops(c: T5Config, len: number): number {
  const inner = c.numHeads * c.dKv;
  const ffIn = c.isGatedAct ? 2 * c.dFf : c.dFf;
  const perTok = 3 * c.dModel * inner + inner * c.dModel + c.dModel * ffIn + c.dFf * c.dModel;
  const attn = 2 * len * inner;
  return 2 * c.numLayers * len * (perTok + attn);
}

const tok = new HfTokenizer(tinyTokenizerJson());
const T5_V1_1_SMALL: T5Config = { ...T5_V1_1_XXL_CONFIG, dModel: 512, dKv: 64, dFf: 1024, numHeads: 6, numLayers: 8 };
const tinyCfg = tinyT5Config({ dModel: 64, dKv: 16, numHeads: 4, dFf: 128, numLayers: 2 });

/** The reference figures, measured now: the same T5 maths in PyTorch (Debian's python3-torch), if installed. */
function torchFigures(): { tiny?: number; small?: number; note: string } {
  const py = '/usr/bin/python3';
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'torch_t5.py');
  if (!existsSync(py)) return { note: 'not measured: no /usr/bin/python3' };
  const r = spawnSync(py, [script, 'time'], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) return { note: `not measured: PyTorch unavailable (apt-get install python3-torch python3-numpy) ${(r.stderr ?? '').trim().split('\n').pop() ?? ''}` };
  const out: { tiny?: number; small?: number; note: string } = { note: (r.stdout.split('\n')[0] ?? '').trim() };
  for (const line of r.stdout.split('\n')) {
    const m = /^RESULT (\w+) ([\d.]+)/.exec(line);
    if (m) out[m[1] as 'tiny' | 'small'] = Number(m[2]);
  }
  return out;
}
const TORCH = torchFigures();
const ref = (label: string, v: number | undefined) =>
  console.log(`${`  reference: ${label}`.padEnd(58)} ${v === undefined ? '      n/a' : v.toFixed(1).padStart(9)} prompts/s`);
console.log(`reference T5: PyTorch, full L ${L} (${TORCH.note})`);

console.log(`\nT5 encoders, batch ${B}, L ${L} (random weights; the tiny test tokenizer: ${captions.length} captions of 15-40 words)`);
const tiny = new T5TextEncoder(T5EncoderModel.random(tinyCfg, 1), tok, { modelMaxLength: L, maxBatchSize: B });
const tinyFull = new T5TextEncoder(T5EncoderModel.random(tinyCfg, 1), tok, { modelMaxLength: L, maxBatchSize: B, trimPadding: false });
bench(`tiny T5 (d 64, 2 layers, 4 heads), trimmed to real length`, tiny, captions);
bench(`tiny T5, full L ${L} (trimPadding: false)`, tinyFull, captions);
ref('PyTorch, same maths, full L', TORCH.tiny);
const small = new T5TextEncoder(T5EncoderModel.random(T5_V1_1_SMALL, 1), tok, { modelMaxLength: L, maxBatchSize: B });
const smallFull = new T5TextEncoder(T5EncoderModel.random(T5_V1_1_SMALL, 1), tok, { modelMaxLength: L, maxBatchSize: B, trimPadding: false });
const smallFlops = t5Flops(T5_V1_1_SMALL, L);
bench(`T5 v1.1 small shapes (d 512, 8 layers), trimmed`, small, captions, 3000);
const rSmall = bench(`T5 v1.1 small shapes, full L (${(smallFlops / 1e9).toFixed(2)} GFLOP/prompt)`, smallFull, captions, 3000);
ref('PyTorch, same maths, full L', TORCH.small);
const gflops = (rSmall * smallFlops) / 1e9;
const xxlFlops = t5Flops(T5_V1_1_XXL_CONFIG, L);
console.log(`  -> full L: ${gflops.toFixed(1)} GFLOP/s. T5-XXL at L ${L} is ${(xxlFlops / 1e12).toFixed(2)} TFLOP/prompt: about ${(xxlFlops / 1e9 / gflops).toFixed(0)} s/prompt at that rate`);
if (TORCH.small) {
  const tg = (TORCH.small * smallFlops) / 1e9;
  console.log(`     (PyTorch: ${tg.toFixed(1)} GFLOP/s, about ${(xxlFlops / 1e9 / tg).toFixed(0)} s/prompt); hence the embedding cache`);
}

// core's optional onnxruntime kernels (enableFastKernels), when this core build has them
const core = (await import('@opensora/core')) as unknown as Record<string, unknown>;
if (typeof core.enableFastKernels === 'function') {
  const fk = (core.enableFastKernels as (o: object) => { enabled: boolean; note: string })({ engine: 'onnxruntime' });
  console.log(`\nwith core's fast kernels: ${fk.note}`);
  if (fk.enabled) {
    bench(`tiny T5, trimmed, fast kernels`, tiny, captions);
    bench(`T5 v1.1 small shapes, trimmed, fast kernels`, small, captions, 3000);
    const r = bench(`T5 v1.1 small shapes, full L, fast kernels`, smallFull, captions, 3000);
    ref('PyTorch, same maths, full L', TORCH.small);
    console.log(`  -> full L: ${((r * smallFlops) / 1e9).toFixed(1)} GFLOP/s; T5-XXL about ${(xxlFlops / 1e9 / ((r * smallFlops) / 1e9)).toFixed(0)} s/prompt at that rate`);
    (core.disableFastKernels as () => void)();
  }
}

console.log(`\nbuilt-in encoder, batch ${B}, L ${L}`);
const b512 = new BuiltinTextEncoder({ captionChannels: 512, modelMaxLength: L });
bench('built-in, C 512', b512, captions);
const b4096 = new BuiltinTextEncoder({ captionChannels: 4096, modelMaxLength: L });
bench('built-in, C 4096 (T5-XXL width)', b4096, captions);

console.log(`\nembedding cache hits (shards on disk, reopened; batch ${B})`);
const dir = mkdtempSync(path.join(tmpdir(), 'text-cache-bench-'));
try {
  for (const [label, enc] of [
    ['T5 v1.1 small shapes, C 512', small],
    ['C 512 (built-in)', b512],
    ['C 4096 (built-in, T5-XXL width)', b4096],
  ] as Array<[string, TextEncoderAdapter]>) {
    const d = path.join(dir, label.replace(/\W+/g, '_'));
    const fill = new CachedTextEncoder(enc, EmbeddingCache.open(d, enc));
    for (let i = 0; i < captions.length; i += B) {
      const o = fill.encode(captions.slice(i, i + B));
      o.embeddings.dispose();
      o.mask.dispose();
    }
    fill.cache.close();
    const hits = new CachedTextEncoder(enc, EmbeddingCache.open(d, enc));
    const r = bench(`cache hit, ${label}`, hits, captions);
    if (hits.stats.misses !== 0) throw new Error('bench: expected only hits');
    hits.cache.close();
    if (label.startsWith('C 4096')) {
      console.log(`  -> ${(r * (xxlFlops / 1e9 / gflops)).toFixed(0)}x the T5-XXL encode rate estimated above (same C 4096 output size)`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
for (const e of [tiny, tinyFull, small, smallFull, b512, b4096]) e.dispose();
console.log(`\ntensors alive after disposing the encoders: ${tf.memory().numTensors}`);
