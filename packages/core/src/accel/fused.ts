/**
 * Fused operations for transformer blocks, each one native onnxruntime call forward and one
 * backward, registered as new tfjs kernels with their gradients. They replace chains of
 * elementwise tfjs kernels (GELU is 9 kernels forward and ~20 backward; LayerNorm+modulate 9;
 * attention 5) whose intermediates also have to be stored for the backward pass.
 *
 * Available only while `enableFastKernels` is on; callers check `fusedOpsAvailable()` and use
 * their plain tfjs composition otherwise (same maths, float32 rounding may differ by ~1e-7).
 */
import { tf } from '../backend.js';
import type { Access } from './access.js';
import { prod, runGraph, sym, type Feed } from './graph-run.js';
import type { KernelArgs } from './kernels.js';
import { OnnxType, type OnnxGraph, type OnnxInitializer, type OnnxNode } from './onnx-model.js';
import type { OrtRuntime } from './ort.js';

type TensorInfo = tf.TensorInfo;
const F = OnnxType.float;

export type FusedKernel = (args: KernelArgs, access: Access, ort: OrtRuntime) => TensorInfo[];

/** Small graph-building helper: named nodes, scalar constants. */
class G {
  nodes: OnnxNode[] = [];
  inits: OnnxInitializer[] = [];
  private n = 0;
  private consts = new Map<string, string>();

  c(v: number): string {
    const k = String(v);
    let name = this.consts.get(k);
    if (!name) {
      name = `c${this.consts.size}`;
      this.consts.set(k, name);
      this.inits.push({ name, type: F, dims: [], values: [v] });
    }
    return name;
  }

  ints(vals: number[]): string {
    const name = `i${this.inits.length}`;
    this.inits.push({ name, type: OnnxType.int64, dims: [vals.length], values: vals });
    return name;
  }

  op(op: string, inputs: string[], attrs?: OnnxNode['attrs'], domain?: string, out?: string): string {
    const o = out ?? `t${this.n++}`;
    this.nodes.push({ op, inputs, outputs: [o], ...(attrs ? { attrs } : {}), ...(domain ? { domain } : {}) });
    return o;
  }

  multi(op: string, inputs: string[], outputs: string[], attrs?: OnnxNode['attrs']): void {
    this.nodes.push({ op, inputs, outputs, ...(attrs ? { attrs } : {}) });
  }

  graph(inputs: [string, number][], outputs: [string, number][]): OnnxGraph {
    return {
      nodes: this.nodes,
      initializers: this.inits,
      inputs: inputs.map(([name, r]) => ({ name, type: F, shape: sym(`${name}_`, r) })),
      outputs: outputs.map(([name, r]) => ({ name, type: F, shape: sym(`${name}_`, r) })),
      domains: { 'com.microsoft': 1 },
      opset: 17,
    };
  }
}

const int = (value: number) => ({ kind: 'int' as const, value });
const ints = (value: number[]) => ({ kind: 'ints' as const, value });
const flt = (value: number) => ({ kind: 'float' as const, value });

// ---------------------------------------------------------------------------------------------
// GELU, tanh approximation

const K0 = Math.sqrt(2 / Math.PI);
const K1 = 0.044715;

const geluFwd: FusedKernel = ({ inputs }, access, ort) => {
  const x = inputs.x!;
  const n = prod(x.shape);
  // ONNX Gelu (opset 20) with approximate="tanh": twice as fast here as com.microsoft FastGelu
  return runGraph(ort, access, 'gelu:fwd', () => {
    const g = new G();
    g.op('Gelu', ['x'], { approximate: { kind: 'string', value: 'tanh' } }, undefined, 'y0');
    return { ...g.graph([['x', 1]], [['y0', 1]]), opset: 20 };
  }, [['x', x, [n]]], [[[...x.shape], [n]]]);
};

const geluBwd: FusedKernel = ({ inputs }, access, ort) => {
  const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
  const n = prod(x.shape);
  return runGraph(ort, access, 'gelu:bwd', () => {
    const g = new G();
    const x2 = g.op('Mul', ['x', 'x']);
    const u = g.op('Mul', [g.op('Mul', ['x', g.op('Add', [g.c(1), g.op('Mul', [g.c(K1), x2])])]), g.c(K0)]);
    const t = g.op('Tanh', [u]);
    const a = g.op('Mul', [g.c(0.5), g.op('Add', [g.c(1), t])]);
    const sech2 = g.op('Sub', [g.c(1), g.op('Mul', [t, t])]);
    const du = g.op('Mul', [g.c(K0), g.op('Add', [g.c(1), g.op('Mul', [g.c(3 * K1), x2])])]);
    const b = g.op('Mul', [g.op('Mul', [g.op('Mul', [g.c(0.5), 'x']), sech2]), du]);
    g.op('Mul', ['dy', g.op('Add', [a, b])], undefined, undefined, 'y0');
    return g.graph([['dy', 1], ['x', 1]], [['y0', 1]]);
  }, [['dy', dy, [n]], ['x', x, [n]]], [[[...x.shape], [n]]]);
};

// ---------------------------------------------------------------------------------------------
// LayerNorm (no affine) followed by t2i modulate: y = LN(x)·(1 + scale) + shift

function bcastAxes(x: readonly number[], p: readonly number[]): number[] {
  const axes: number[] = [];
  for (let i = 0; i < x.length; i++) if (p[i] === 1 && x[i] !== 1) axes.push(i);
  return axes;
}

const lnModFwd: FusedKernel = ({ inputs, attrs }, access, ort) => {
  const { x, shift, scale } = inputs as { x: TensorInfo; shift: TensorInfo; scale: TensorInfo };
  const eps = Number(attrs?.eps ?? 1e-6);
  const r = x.shape.length;
  const D = x.shape[r - 1]!;
  const statShape = [...x.shape.slice(0, -1), 1];
  return runGraph(ort, access, `lnmod:fwd:${r}:${D}:${eps}`, () => {
    const g = new G();
    g.inits.push({ name: 'gamma', type: F, dims: [D], values: new Array<number>(D).fill(1) });
    g.inits.push({ name: 'beta', type: F, dims: [D], values: new Array<number>(D).fill(0) });
    g.multi('LayerNormalization', ['x', 'gamma', 'beta'], ['n', 'y1', 'y2'], { axis: int(-1), epsilon: flt(eps) });
    g.op('Add', [g.op('Mul', ['n', g.op('Add', ['scale', g.c(1)])]), 'shift'], undefined, undefined, 'y0');
    return g.graph([['x', r], ['shift', r], ['scale', r]], [['y0', r], ['y1', r], ['y2', r]]);
  }, [['x', x], ['shift', shift], ['scale', scale]], [[[...x.shape]], [statShape], [statShape]]);
};

const lnModBwd: FusedKernel = ({ inputs }, access, ort) => {
  const { dy, x, mean, rstd, scale } = inputs as Record<string, TensorInfo>;
  const r = x!.shape.length;
  const axes = bcastAxes(x!.shape, scale!.shape);
  return runGraph(ort, access, `lnmod:bwd:${r}:${axes.join(',')}`, () => {
    const g = new G();
    const nrm = g.op('Mul', [g.op('Sub', ['x', 'mean']), 'rstd']);
    const red = (t: string) => (axes.length ? g.op('ReduceSum', [t, g.ints(axes)], { keepdims: int(1) }) : g.op('Identity', [t]));
    g.op('Identity', [red('dy')], undefined, undefined, 'y1');
    g.op('Identity', [red(g.op('Mul', ['dy', nrm]))], undefined, undefined, 'y2');
    const gg = g.op('Mul', ['dy', g.op('Add', ['scale', g.c(1)])]);
    const mg = g.op('ReduceMean', [gg], { axes: ints([-1]), keepdims: int(1) });
    const mgn = g.op('ReduceMean', [g.op('Mul', [gg, nrm])], { axes: ints([-1]), keepdims: int(1) });
    g.op('Mul', ['rstd', g.op('Sub', [g.op('Sub', [gg, mg]), g.op('Mul', [nrm, mgn])])], undefined, undefined, 'y0');
    return g.graph([['dy', r], ['x', r], ['mean', r], ['rstd', r], ['scale', r]], [['y0', r], ['y1', r], ['y2', r]]);
  }, [['dy', dy!], ['x', x!], ['mean', mean!], ['rstd', rstd!], ['scale', scale!]], [[[...x!.shape]], [[...scale!.shape]], [[...scale!.shape]]]);
};

// ---------------------------------------------------------------------------------------------
// RMSNorm over the last axis with a weight: y = w · (x · rsqrt(mean(x²) + eps))

const rmsFwd: FusedKernel = ({ inputs, attrs }, access, ort) => {
  const { x, weight } = inputs as { x: TensorInfo; weight: TensorInfo };
  const eps = Number(attrs?.eps ?? 1e-6);
  const r = x.shape.length;
  const D = x.shape[r - 1]!;
  const rows = prod(x.shape) / D;
  return runGraph(ort, access, `rms:fwd:${eps}`, () => {
    const g = new G();
    const ms = g.op('ReduceMean', [g.op('Mul', ['x', 'x'])], { axes: ints([-1]), keepdims: int(1) });
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.c(eps)])])], undefined, undefined, 'y1');
    g.op('Mul', ['w', g.op('Mul', ['x', inv])], undefined, undefined, 'y0');
    return g.graph([['x', 2], ['w', 1]], [['y0', 2], ['y1', 2]]);
  }, [['x', x, [rows, D]], ['w', weight]], [[[...x.shape], [rows, D]], [[...x.shape.slice(0, -1), 1], [rows, 1]]]);
};

const rmsBwd: FusedKernel = ({ inputs }, access, ort) => {
  const { dy, x, inv, weight } = inputs as Record<string, TensorInfo>;
  const D = x!.shape[x!.shape.length - 1]!;
  const rows = prod(x!.shape) / D;
  return runGraph(ort, access, 'rms:bwd', () => {
    const g = new G();
    const nrm = g.op('Mul', ['x', 'inv']);
    g.op('ReduceSum', [g.op('Mul', ['dy', nrm]), g.ints([0])], { keepdims: int(0) }, undefined, 'y1');
    const gg = g.op('Mul', ['dy', 'w']);
    const m = g.op('ReduceMean', [g.op('Mul', [gg, nrm])], { axes: ints([-1]), keepdims: int(1) });
    g.op('Mul', ['inv', g.op('Sub', [gg, g.op('Mul', [nrm, m])])], undefined, undefined, 'y0');
    return g.graph([['dy', 2], ['x', 2], ['inv', 2], ['w', 1]], [['y0', 2], ['y1', 1]]);
  }, [['dy', dy!, [rows, D]], ['x', x!, [rows, D]], ['inv', inv!, [rows, 1]], ['w', weight!]], [[[...x!.shape], [rows, D]], [[D]]]);
};

// ---------------------------------------------------------------------------------------------
// attention core: o = softmax((q·scale)·kᵀ + bias)·v; also returns p for the backward pass

const attnFwd: FusedKernel = ({ inputs, attrs }, access, ort) => {
  const { q, k, v, bias } = inputs as { q: TensorInfo; k: TensorInfo; v: TensorInfo; bias?: TensorInfo };
  const scale = Number(attrs?.scale);
  const r = q.shape.length;
  const Lq = q.shape[r - 2]!;
  const Lk = k.shape[r - 2]!;
  const pShape = [...q.shape.slice(0, -2), Lq, Lk];
  const oShape = [...q.shape.slice(0, -1), v.shape[r - 1]!];
  const feeds: Feed[] = [['q', q], ['k', k], ['v', v]];
  if (bias) feeds.push(['bias', bias]);
  return runGraph(ort, access, `attn:fwd:${r}:${scale}:${bias ? bias.shape.length : 0}`, () => {
    const g = new G();
    const qs = g.op('Mul', ['q', g.c(scale)]);
    let s = g.op('FusedMatMul', [qs, 'k'], { transA: int(0), transB: int(1), alpha: flt(1) }, 'com.microsoft');
    if (bias) s = g.op('Add', [s, 'bias']);
    g.op('Softmax', [s], { axis: int(-1) }, undefined, 'y1');
    g.op('MatMul', ['y1', 'v'], undefined, undefined, 'y0');
    const ins: [string, number][] = [['q', r], ['k', r], ['v', r]];
    if (bias) ins.push(['bias', bias.shape.length]);
    return g.graph(ins, [['y0', r], ['y1', r]]);
  }, feeds, [[oShape], [pShape]]);
};

const attnBwd: FusedKernel = ({ inputs, attrs }, access, ort) => {
  const { dy, q, k, v, p } = inputs as Record<string, TensorInfo>;
  const scale = Number(attrs?.scale);
  const r = q!.shape.length;
  return runGraph(ort, access, `attn:bwd:${r}:${scale}`, () => {
    const g = new G();
    const mm = (a: string, b: string, tA: number, tB: number, alpha: number, out?: string) =>
      g.op('FusedMatMul', [a, b], { transA: int(tA), transB: int(tB), alpha: flt(alpha) }, 'com.microsoft', out);
    mm('p', 'dy', 1, 0, 1, 'y2'); // dv = pᵀ·do
    const dp = mm('dy', 'v', 0, 1, 1); // dp = do·vᵀ
    const rs = g.op('ReduceSum', [g.op('Mul', [dp, 'p']), g.ints([-1])], { keepdims: int(1) });
    const ds = g.op('Mul', ['p', g.op('Sub', [dp, rs])]);
    mm(ds, 'k', 0, 0, scale, 'y0'); // dq = scale·ds·k
    mm(ds, 'q', 1, 0, scale, 'y1'); // dk = dsᵀ·(scale·q)
    return g.graph([['dy', r], ['q', r], ['k', r], ['v', r], ['p', r]], [['y0', r], ['y1', r], ['y2', r]]);
  }, [['dy', dy!], ['q', q!], ['k', k!], ['v', v!], ['p', p!]], [[[...q!.shape]], [[...k!.shape]], [[...v!.shape]]]);
};

// ---------------------------------------------------------------------------------------------
// gated residual: y = x + g·a, with g broadcasting against a (e.g. [B, T, 1, D] against [B, T, S, D])

const gatedFwd: FusedKernel = ({ inputs }, access, ort) => {
  const { x, g, a } = inputs as Record<string, TensorInfo>;
  const r = x!.shape.length;
  return runGraph(ort, access, `gated:fwd:${r}`, () => {
    const gr = new G();
    gr.op('Add', ['x', gr.op('Mul', ['g', 'a'])], undefined, undefined, 'y0');
    return gr.graph([['x', r], ['g', r], ['a', r]], [['y0', r]]);
  }, [['x', x!], ['g', g!], ['a', a!]], [[[...x!.shape]]]);
};

const gatedBwd: FusedKernel = ({ inputs }, access, ort) => {
  const { dy, g, a } = inputs as Record<string, TensorInfo>;
  const r = a!.shape.length;
  const axes = bcastAxes(a!.shape, g!.shape);
  return runGraph(ort, access, `gated:bwd:${r}:${axes.join(',')}`, () => {
    const gr = new G();
    gr.op('Mul', ['dy', 'g'], undefined, undefined, 'y0'); // da
    const p = gr.op('Mul', ['dy', 'a']);
    if (axes.length) gr.op('ReduceSum', [p, gr.ints(axes)], { keepdims: int(1) }, undefined, 'y1');
    else gr.op('Identity', [p], undefined, undefined, 'y1');
    return gr.graph([['dy', r], ['g', r], ['a', r]], [['y0', r], ['y1', r]]);
  }, [['dy', dy!], ['g', g!], ['a', a!]], [[[...a!.shape]], [[...g!.shape]]]);
};

/** Fused kernels by tfjs kernel name. */
export const FUSED_KERNELS: Record<string, FusedKernel> = {
  OsGeluTanh: geluFwd,
  OsGeluTanhGrad: geluBwd,
  OsLayerNormModulate: lnModFwd,
  OsLayerNormModulateGrad: lnModBwd,
  OsRmsNorm: rmsFwd,
  OsRmsNormGrad: rmsBwd,
  OsAttention: attnFwd,
  OsAttentionGrad: attnBwd,
  OsGatedResidual: gatedFwd,
  OsGatedResidualGrad: gatedBwd,
};

type RunKernel = (name: string, inputs: Record<string, tf.Tensor>, attrs?: Record<string, unknown>) => tf.Tensor | tf.Tensor[];
const runKernel: RunKernel = (name, inputs, attrs = {}) =>
  (tf.engine() as unknown as { runKernel: (n: string, i: object, a: object) => tf.Tensor | tf.Tensor[] }).runKernel(name, inputs, attrs);
const arr = (t: tf.Tensor | tf.Tensor[]) => (Array.isArray(t) ? t : [t]);

let gradientsRegistered = false;

/** Registers the gradients of the fused kernels (once per process; gradients are backend-independent). */
export function registerFusedGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  tf.registerGradient({
    kernelName: 'OsGeluTanh',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => arr(runKernel('OsGeluTanhGrad', { dy: dy as tf.Tensor, x: saved[0]! }))[0]! }),
  });
  tf.registerGradient({
    kernelName: 'OsLayerNormModulate',
    inputsToSave: ['x', 'scale'],
    outputsToSave: [false, true, true],
    gradFunc: (dys, saved, attrs) => {
      const dy = (dys as tf.Tensor[])[0]!;
      const [x, scale, mean, rstd] = saved as tf.Tensor[];
      // one kernel gives every input's gradient: run it now (each closure below runs in its own tidy)
      const out = arr(runKernel('OsLayerNormModulateGrad', { dy, x: x!, mean: mean!, rstd: rstd!, scale: scale! }, attrs as Record<string, unknown>));
      return { x: () => out[0]!, shift: () => out[1]!, scale: () => out[2]! };
    },
  });
  tf.registerGradient({
    kernelName: 'OsRmsNorm',
    inputsToSave: ['x', 'weight'],
    outputsToSave: [false, true],
    gradFunc: (dys, saved) => {
      const dy = (dys as tf.Tensor[])[0]!;
      const [x, weight, inv] = saved as tf.Tensor[];
      const out = arr(runKernel('OsRmsNormGrad', { dy, x: x!, inv: inv!, weight: weight! }));
      return { x: () => out[0]!, weight: () => out[1]! };
    },
  });
  tf.registerGradient({
    kernelName: 'OsAttention',
    inputsToSave: ['q', 'k', 'v'],
    outputsToSave: [false, true],
    gradFunc: (dys, saved, attrs) => {
      const dy = (dys as tf.Tensor[])[0]!;
      const [q, k, v, p] = saved as tf.Tensor[];
      const out = arr(runKernel('OsAttentionGrad', { dy, q: q!, k: k!, v: v!, p: p! }, attrs as Record<string, unknown>));
      // the bias is a constant mask here; it gets a zero gradient of its shape
      const biasShape = (attrs as { biasShape?: number[] }).biasShape ?? [];
      return { q: () => out[0]!, k: () => out[1]!, v: () => out[2]!, bias: () => tf.zeros(biasShape) };
    },
  });
  tf.registerGradient({
    kernelName: 'OsGatedResidual',
    inputsToSave: ['g', 'a'],
    gradFunc: (dy, saved) => {
      const [g, a] = saved as tf.Tensor[];
      const out = arr(runKernel('OsGatedResidualGrad', { dy: dy as tf.Tensor, g: g!, a: a! }));
      return { x: () => (dy as tf.Tensor).clone(), a: () => out[0]!, g: () => out[1]! };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// public ops

let available: Set<string> = new Set();

/** Internal: the backends on which the fused kernels are registered now. */
export function setFusedBackends(backends: string[]): void {
  available = new Set(backends);
}

/** True when the fused ops can run on the active backend (fast kernels enabled, cpu or wasm). */
export function fusedOpsAvailable(): boolean {
  return available.has(tf.getBackend());
}

function need(name: string): void {
  if (!fusedOpsAvailable()) {
    throw new Error(`${name}: fused ops need enableFastKernels() with onnxruntime on the cpu or wasm backend (check fusedOpsAvailable())`);
  }
}

/** GELU with the tanh approximation, one native call (gradient included). */
export function fusedGeluTanh(x: tf.Tensor): tf.Tensor {
  need('fusedGeluTanh');
  return arr(runKernel('OsGeluTanh', { x }))[0]!;
}

/**
 * LayerNorm over the last axis (no affine, biased variance) then x·(1 + scale) + shift, with
 * shift/scale of x's rank broadcasting against it (e.g. [B, T, 1, D] against [B, T, S, D]).
 */
export function fusedLayerNormModulate(x: tf.Tensor, shift: tf.Tensor, scale: tf.Tensor, eps = 1e-6): tf.Tensor {
  need('fusedLayerNormModulate');
  if (shift.rank !== x.rank || scale.rank !== x.rank || shift.shape.join() !== scale.shape.join()) {
    throw new Error('fusedLayerNormModulate: shift and scale must have the same shape and the rank of x');
  }
  const [y, m, s] = arr(runKernel('OsLayerNormModulate', { x, shift, scale }, { eps }));
  m!.dispose();
  s!.dispose();
  return y!;
}

/** RMSNorm over the last axis: weight · x · rsqrt(mean(x²) + eps). */
export function fusedRmsNorm(x: tf.Tensor, weight: tf.Tensor, eps = 1e-6): tf.Tensor {
  need('fusedRmsNorm');
  const [y, inv] = arr(runKernel('OsRmsNorm', { x, weight }, { eps }));
  inv!.dispose();
  return y!;
}

/** softmax((q·scale)·kᵀ + bias)·v over the last two axes; q/k/v share batch dims; bias broadcasts. */
export function fusedAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, scale: number, bias?: tf.Tensor): tf.Tensor {
  need('fusedAttention');
  const inputs: Record<string, tf.Tensor> = { q, k, v };
  if (bias) inputs.bias = bias;
  const [o, p] = arr(runKernel('OsAttention', inputs, { scale, biasShape: bias ? [...bias.shape] : [] }));
  p!.dispose();
  return o!;
}

/** x + g·a in one pass (gradients: dx = dy, da = dy·g, dg = Σ dy·a over g's broadcast axes). */
export function fusedGatedResidual(x: tf.Tensor, g: tf.Tensor, a: tf.Tensor): tf.Tensor {
  need('fusedGatedResidual');
  if (x.shape.join() !== a.shape.join() || g.rank !== a.rank) throw new Error('fusedGatedResidual: x and a must have the same shape, g their rank');
  return arr(runKernel('OsGatedResidual', { x, g, a }))[0]!;
}
