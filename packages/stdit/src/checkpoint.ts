/**
 * Gradient checkpointing for one block: the forward runs without recording its intermediates
 * (they are freed as soon as the block output exists); the backward pass recomputes the block
 * under a fresh gradient tape and back-propagates through the recomputation. Built on
 * `tf.customGrad`, so the outer tape sees one node whose inputs are the block input, the shared
 * context tensors and every block parameter.
 */
import { tf } from '@opensora/core';
import { blockForward, type AttnParams, type BlockContext, type BlockParams } from './block.js';

type Slot = { path: string[]; diff: boolean };

const BLOCK_KEYS: (keyof BlockParams)[] = [
  'table', 'tableT', 'crossQW', 'crossQB', 'crossKvW', 'crossKvB', 'crossProjW', 'crossProjB', 'fc1W', 'fc1B', 'fc2W', 'fc2B',
];
const ATTN_KEYS: (keyof AttnParams)[] = ['qkvW', 'qkvB', 'qNorm', 'kNorm', 'projW', 'projB'];
const CTX_DIFF: (keyof BlockContext)[] = ['yTokens', 'tMod', 'tModT'];
const CTX_CONST: (keyof BlockContext)[] = ['yBias', 'yValid', 'ropeCos', 'ropeSin', 'ropeRot', 'dropS', 'dropT', 'dropM'];

function isTrainable(t: tf.Tensor): boolean {
  return !(t instanceof tf.Variable) || t.trainable;
}

/** Flattens (x, params, ctx) into a tensor list with a rebuild recipe. */
function flatten(x: tf.Tensor, p: BlockParams, ctx: BlockContext) {
  const tensors: tf.Tensor[] = [x];
  const slots: Slot[] = [{ path: ['x'], diff: true }];
  for (const k of BLOCK_KEYS) {
    tensors.push(p[k] as tf.Tensor);
    slots.push({ path: ['p', k], diff: isTrainable(p[k] as tf.Tensor) });
  }
  for (const a of ['attn', 'attnT'] as const) {
    for (const k of ATTN_KEYS) {
      const t = p[a][k];
      if (!t) continue;
      tensors.push(t);
      slots.push({ path: ['p', a, k], diff: isTrainable(t) });
    }
  }
  for (const k of CTX_DIFF) {
    tensors.push(ctx[k] as tf.Tensor);
    slots.push({ path: ['c', k], diff: true });
  }
  for (const k of CTX_CONST) {
    const t = ctx[k] as tf.Tensor | null;
    if (!t) continue;
    tensors.push(t);
    slots.push({ path: ['c', k], diff: false });
  }
  return { tensors, slots };
}

function rebuild(ts: tf.Tensor[], slots: Slot[], ctxBase: BlockContext): { x: tf.Tensor; p: BlockParams; ctx: BlockContext } {
  const p: Record<string, unknown> = { attn: {}, attnT: {} };
  const ctx: Record<string, unknown> = {
    ...ctxBase,
    yBias: null,
    yValid: null,
    dropS: null,
    dropT: null,
    dropM: null,
    debug: undefined,
  };
  let x: tf.Tensor | null = null;
  slots.forEach((s, i) => {
    const t = ts[i]!;
    if (s.path[0] === 'x') x = t;
    else if (s.path[0] === 'p' && s.path.length === 2) p[s.path[1]!] = t;
    else if (s.path[0] === 'p') (p[s.path[1]!] as Record<string, unknown>)[s.path[2]!] = t;
    else ctx[s.path[1]!] = t;
  });
  return { x: x!, p: p as unknown as BlockParams, ctx: ctx as unknown as BlockContext };
}

/** `blockForward(x, p, ctx)` with recomputation in the backward pass. */
export function checkpointed(x: tf.Tensor, p: BlockParams, ctx: BlockContext): tf.Tensor {
  const { tensors, slots } = flatten(x, p, ctx);
  const diffIdx = slots.map((s, i) => (s.diff ? i : -1)).filter((i) => i >= 0);
  const f = tf.customGrad((...args: (tf.Tensor | ((ts: tf.Tensor[]) => void))[]) => {
    const save = args[args.length - 1] as (ts: tf.Tensor[]) => void;
    const ins = args.slice(0, -1) as tf.Tensor[];
    save(ins);
    const value = tf.tidy(() => {
      const r = rebuild(ins, slots, ctx);
      return blockForward(r.x, r.p, r.ctx);
    });
    const gradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]): tf.Tensor[] => {
      const dyT = Array.isArray(dy) ? dy[0]! : dy;
      const diffIns = diffIdx.map((i) => saved[i]!);
      // tfjs keeps one global tape: a nested tf.grads started while the outer backward pass runs
      // would replace it and then clear it. Park the outer tape and restore it afterwards, so
      // that the recomputation's tape is freed as soon as this block's gradients exist.
      const state = (tf.engine() as unknown as { state: { activeTape: unknown[] | null } }).state;
      const outerTape = state.activeTape;
      let g: tf.Tensor[];
      try {
        g = tf.grads((...diffArgs: tf.Tensor[]) => {
          const all = saved.slice();
          diffIdx.forEach((idx, j) => {
            all[idx] = diffArgs[j]!;
          });
          const r = rebuild(all, slots, ctx);
          return blockForward(r.x, r.p, r.ctx);
        })(diffIns, dyT);
      } finally {
        state.activeTape = outerTape;
      }
      const out: tf.Tensor[] = saved.map((t) => tf.zerosLike(t));
      diffIdx.forEach((idx, j) => {
        out[idx]!.dispose();
        out[idx] = g[j]!;
      });
      return out;
    };
    return { value, gradFunc };
  });
  return (f as unknown as (...ts: tf.Tensor[]) => tf.Tensor)(...tensors);
}
