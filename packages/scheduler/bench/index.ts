/**
 * Scheduler overhead per sampling step, excluding the model call, relative to a tiny model's
 * forward time. The tiny model is STDiT2-tiny from @opensora/stdit (randomly initialised) when
 * that package is built, else a small tf stand-in network defined here (the output says which).
 *
 * Overhead is measured by running the sampler with a zero-cost model that returns a
 * precomputed output (its one clone is counted as overhead), so the figure is everything the
 * scheduler does per step: guidance batching and arithmetic, the posterior step, noise draws,
 * the edit-mask selection.
 */
import { tf, initBackend, formatBackend, Rng } from '@opensora/core';
import { DPMSolver, IDDPM, type DenoiseFn, type SampleArgs } from '../src/index.js';

interface TinyModel {
  name: string;
  forward: DenoiseFn;
  dispose(): void;
}

const B = 1;
const C = 4;
const T = 4;
const H = 16;
const W = 16;
const L = 16;
const CAPTION = 32;

async function stditTiny(): Promise<TinyModel | string> {
  try {
    const name = '@opensora/stdit';
    const mod = (await import(name)) as {
      STDiT2: { preset(n: string): { forward(a: Record<string, unknown>): tf.Tensor; dispose(): void } };
    };
    const m = mod.STDiT2.preset('STDiT2-tiny');
    return {
      name: 'STDiT2-tiny from @opensora/stdit (hidden 96, depth 2, 4 heads, random init)',
      forward: (a) => m.forward({ ...a }),
      dispose: () => m.dispose(),
    };
  } catch (e) {
    return String((e as Error).message).split('\n')[0]!;
  }
}

/** Stand-in: patchify 2x2 -> 3-layer MLP (hidden 96) per token with a timestep/text bias -> unpatchify. */
function standIn(): TinyModel {
  const rng = new Rng(0);
  const init = (shape: number[], std: number) => tf.variable(tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 0, std), shape));
  const D = 96;
  const w1 = init([C * 4, D], 0.1);
  const w2 = init([D, D], 0.1);
  const w3 = init([D, 2 * C * 4], 0.1);
  const wy = init([CAPTION, D], 0.1);
  const forward: DenoiseFn = ({ x, timestep, y }) =>
    tf.tidy(() => {
      const b = x.shape[0]!;
      const tok = tf.reshape(tf.transpose(tf.reshape(x, [b, C, T, H / 2, 2, W / 2, 2]), [0, 2, 3, 5, 1, 4, 6]), [b * T * (H / 2) * (W / 2), C * 4]);
      const cond = tf.add(tf.matMul(tf.mean(y as tf.Tensor, [1, 2]), wy), tf.reshape(tf.sin(tf.div(timestep, 100)), [b, 1]));
      const h0 = tf.relu(tf.matMul(tok, w1));
      const h1 = tf.add(tf.reshape(h0, [b, -1, D]), tf.reshape(cond, [b, 1, D]));
      const h2 = tf.relu(tf.matMul(tf.reshape(h1, [-1, D]), w2));
      const o = tf.matMul(h2, w3);
      return tf.reshape(tf.transpose(tf.reshape(o, [b, T, H / 2, W / 2, 2 * C, 2, 2]), [0, 4, 1, 2, 5, 3, 6]), [b, 2 * C, T, H, W]);
    });
  return { name: 'stand-in tf network of this bench (2x2 patches, 3-layer MLP, hidden 96)', forward, dispose: () => tf.dispose([w1, w2, w3, wy]) };
}

/** Median over 5 runs of the mean time of `reps` calls (these shared machines vary by ~20%). */
function timeIt(fn: () => void, reps: number): number {
  fn(); // warm-up
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    runs.push((performance.now() - t0) / reps);
  }
  return runs.sort((a, b) => a - b)[2]!;
}

async function main(): Promise<void> {
  const info = await initBackend();
  console.log(`backend: ${formatBackend(info)}`);
  const st = await stditTiny();
  const models: TinyModel[] = typeof st === 'string' ? [standIn()] : [st, standIn()];
  if (typeof st === 'string') console.log(`@opensora/stdit not loadable (${st}); using the stand-in network only`);
  console.log(`latent [${B}, ${C}, ${T}, ${H}, ${W}] (${T} frames of ${H * 8}x${W * 8} px), text [${B}, 1, ${L}, ${CAPTION}], CFG batch ${2 * B}`);

  const rng = new Rng(1);
  const randn = (shape: number[]) => tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))), shape);
  const z = randn([B, C, T, H, W]);
  const xCond = randn([B, C, T, H, W]);
  const y = randn([B, 1, L, CAPTION]);
  const nullY = randn([L, CAPTION]);
  const textMask = tf.ones([B, L], 'int32');
  const kwargs = {
    numFrames: tf.fill([B], T),
    height: tf.fill([B], H * 8),
    width: tf.fill([B], W * 8),
    ar: tf.fill([B], 1),
    fps: tf.fill([B], 8),
  };

  // The model call as the guided sampler makes it: 2B rows.
  const x2 = tf.concat([z, z], 0);
  const y2 = tf.concat([y, tf.broadcastTo(tf.reshape(nullY, [1, 1, L, CAPTION]), [B, 1, L, CAPTION])], 0);
  const kw2 = Object.fromEntries(Object.entries(kwargs).map(([k, v]) => [k, tf.concat([v, v], 0)]));
  const m2 = tf.concat([textMask, textMask], 0);
  const t2 = tf.fill([2 * B], 500);
  const modelMs = models.map((model) =>
    timeIt(() => {
      const o = model.forward({ x: x2, timestep: t2, y: y2, mask: m2, ...kw2 });
      o.dataSync();
      o.dispose();
    }, 3),
  );
  const out2 = models[0]!.forward({ x: x2, timestep: t2, y: y2, mask: m2, ...kw2 });
  const zeroCost: DenoiseFn = ({ x }) => (x.shape[0] === 2 * B ? out2.clone() : tf.slice(out2, [0], [B]));

  const steps = 50;
  const rows: { what: string; ms: number }[] = [];
  const run = (what: string, sched: IDDPM | DPMSolver, extra: Partial<SampleArgs>) => {
    const args: SampleArgs = { model: zeroCost, z, text: { y, mask: textMask, nullY }, modelKwargs: kwargs, rng: new Rng(2), ...extra };
    const ms = timeIt(() => {
      const r = sched.sample(args);
      r.dataSync();
      r.dispose();
    }, 1) / sched.numSamplingSteps;
    rows.push({ what, ms });
  };
  const mask = [[0, 0.5, 1, 1]];
  run(`iddpm ${steps} steps, cfg 7 on 3 channels`, new IDDPM({ numSamplingSteps: steps, cfgScale: 7, cfgChannel: 3 }), {});
  run(`iddpm ${steps} steps, cfg + edit mask (ratios 0, 0.5, 1, 1)`, new IDDPM({ numSamplingSteps: steps, cfgScale: 7, cfgChannel: 3 }), { mask, xCond });
  run('dpm-solver++ 20 steps, cfg 4', new DPMSolver({ numSamplingSteps: 20, cfgScale: 4 }), {});
  run('dpm-solver++ 20 steps, cfg + edit mask', new DPMSolver({ numSamplingSteps: 20, cfgScale: 4 }), { mask, xCond });

  // Training-loss overhead (excluding the model), relative to one model forward at batch 2B.
  const iddpm = new IDDPM({ timestepRespacing: '' });
  const x0 = tf.concat([xCond, z], 0);
  const noise = tf.concat([z, xCond], 0);
  const lossMs = timeIt(() => {
    const r = iddpm.trainingLosses({ model: () => out2.clone(), xStart: x0, t: [10, 900], noise, mask: [[false, true, true, true], [true, true, true, true]] });
    r.loss.dataSync();
    tf.dispose([r.loss, r.mse, r.vb!]);
  }, 10);

  console.log('');
  models.forEach((m, i) => console.log(`model forward (batch ${2 * B}): ${modelMs[i]!.toFixed(2).padStart(8)} ms  ${m.name}`));
  const head = models.map((_, i) => `% of model ${i + 1}`.padStart(13)).join('');
  console.log(`\nscheduler overhead per step, model excluded (target: < 5% of a tiny model's forward)`);
  console.log(`  ${'sampler'.padEnd(52)} ${'ms/step'.padStart(8)}${head}`);
  for (const r of rows) {
    const pcts = modelMs.map((m) => `${((100 * r.ms) / m).toFixed(2)}%`.padStart(13)).join('');
    console.log(`  ${r.what.padEnd(52)} ${r.ms.toFixed(3).padStart(8)}${pcts}`);
  }
  const lp = modelMs.map((m) => `${((100 * lossMs) / m).toFixed(2)}%`.padStart(13)).join('');
  console.log(`  ${'training losses (mse + vb, frame mask), per batch'.padEnd(52)} ${lossMs.toFixed(3).padStart(8)}${lp}`);
  for (const m of models) m.dispose();
  out2.dispose();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
