/**
 * tfjs kernels implemented by onnxruntime (synchronous native calls on zero-copy views).
 * Each kernel returns null when it does not handle a case (dtype, attribute), and the caller
 * then runs the backend's original kernel.
 */
import type { tf } from '../backend.js';
import type { Access } from './access.js';
import { prod, runGraph, sym, type Feed } from './graph-run.js';
import { OnnxType, type OnnxGraph, type OnnxNode } from './onnx-model.js';
import type { OrtRuntime } from './ort.js';

type TensorInfo = tf.TensorInfo;
export interface KernelArgs {
  inputs: Record<string, TensorInfo | undefined>;
  attrs?: Record<string, unknown>;
}
export type AccelKernel = (args: KernelArgs, access: Access, ort: OrtRuntime) => TensorInfo | TensorInfo[] | null;

const F = OnnxType.float;

/** Runs a cached single-purpose graph: inputs by name, one preallocated output. */
function run(
  ort: OrtRuntime,
  access: Access,
  key: string,
  graph: () => OnnxGraph,
  inputs: Feed[],
  outShape: number[],
  ortOutDims: readonly number[] = outShape,
): TensorInfo {
  return runMulti(ort, access, key, graph, inputs, [[outShape, ortOutDims]])[0]!;
}

/** Like `run` with several outputs named y0, y1, ... (or y for one, as `oneNode` names them). */
function runMulti(ort: OrtRuntime, access: Access, key: string, graph: () => OnnxGraph, inputs: Feed[], outs: [shape: number[], ortDims: readonly number[]][]): TensorInfo[] {
  return runGraph(ort, access, key, graph, inputs, outs, outs.length === 1 ? ['y'] : undefined);
}

/** A one-node graph over float tensors with symbolic dims of the given ranks. */
function oneNode(op: string, inRanks: number[], outRanks: number[], attrs?: OnnxNode['attrs'], domain?: string): () => OnnxGraph {
  const inNames = inRanks.map((_, i) => (inRanks.length === 1 ? 'x' : `x${i}`));
  const outNames = outRanks.map((_, i) => (outRanks.length === 1 ? 'y' : `y${i}`));
  return () => ({
    nodes: [{ op, inputs: inNames, outputs: outNames, ...(attrs ? { attrs } : {}), ...(domain ? { domain } : {}) }],
    inputs: inRanks.map((r, i) => ({ name: inNames[i]!, type: F, shape: sym(`i${i}_`, r) })),
    outputs: outRanks.map((r, i) => ({ name: outNames[i]!, type: F, shape: sym(`o${i}_`, r) })),
    ...(domain ? { domains: { [domain]: 1 } } : {}),
  });
}

function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(Math.max(x, y));
  }
  return out;
}

/**
 * Matrix product a·b with optional transposes and a bias (broadcast on the output), as tfjs's
 * BatchMatMul/_FusedMatMul define it. 2-D cases (including all-ones batch dims, and a batched
 * `a` against a 2-D `b`) go to Gemm; the rest to com.microsoft FusedMatMul.
 */
function matmulCore(
  a: TensorInfo,
  b: TensorInfo,
  tA: boolean,
  tB: boolean,
  bias: TensorInfo | undefined,
  access: Access,
  ort: OrtRuntime,
): TensorInfo | null {
  if (!access.readable(a) || !access.readable(b) || (bias && !access.readable(bias))) return null;
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) return null;
  const M = tA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const Ka = tA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const Kb = tB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = tB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (Ka !== Kb) return null;
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  const batch = broadcastShapes(batchA, batchB);
  if (!batch) return null;
  const outShape = [...batch, M, N];
  if (prod(outShape) === 0 || Ka === 0) return null;
  const bA = prod(batchA);
  const bB = prod(batchB);
  let biasDims: number[] | undefined;
  if (bias) {
    // Gemm's C must broadcast unidirectionally to (M, N): accept [N], [1, N], [M, N] and leading ones
    const bs = bias.shape;
    const lead = bs.slice(0, -2);
    if (lead.some((d) => d !== 1) || bs.length === 0) biasDims = undefined;
    else biasDims = bs.length === 1 ? [bs[0]!] : [bs[bs.length - 2]!, bs[bs.length - 1]!];
    if (!biasDims || broadcastShapes(biasDims, [M, N])?.join() !== [M, N].join()) return null;
  }
  if (bB === 1 && (bA === 1 || !tA)) {
    // one Gemm: a as [(batch·)M, K] (or [K, M] when transposed, batch 1), b as [K, N] / [N, K]
    const a2 = tA ? [Ka, M] : [bA * M, Ka];
    const b2 = tB ? [N, Kb] : [Kb, N];
    const key = `gemm:${+tA}${+tB}:${bias ? biasDims!.length : 0}`;
    if (bias && bA !== 1 && biasDims!.length === 2 && biasDims![0] !== 1) return null; // [M, N] bias with folded batches
    const graph = (): OnnxGraph => ({
      nodes: [
        {
          op: 'Gemm',
          inputs: bias ? ['a', 'b', 'c'] : ['a', 'b'],
          outputs: ['y'],
          attrs: { transA: { kind: 'int', value: +tA }, transB: { kind: 'int', value: +tB } },
        },
      ],
      inputs: [
        { name: 'a', type: F, shape: ['a0', 'a1'] },
        { name: 'b', type: F, shape: ['b0', 'b1'] },
        ...(bias ? [{ name: 'c', type: F, shape: sym('c', biasDims!.length) }] : []),
      ],
      outputs: [{ name: 'y', type: F, shape: ['m', 'n'] }],
    });
    const ins: Feed[] = [
      ['a', a, a2],
      ['b', b, b2],
    ];
    if (bias) ins.push(['c', bias, biasDims]);
    return run(ort, access, key, graph, ins, outShape, [tA ? M : bA * M, N]);
  }
  // batched: FusedMatMul (transposes inside the kernel), then the bias
  const key = `fmm:${+tA}${+tB}:${ra}:${rb}:${bias ? bias.shape.length : 0}`;
  const graph = (): OnnxGraph => {
    const nodes: OnnxNode[] = [
      {
        op: 'FusedMatMul',
        domain: 'com.microsoft',
        inputs: ['a', 'b'],
        outputs: [bias ? 'p' : 'y'],
        attrs: { transA: { kind: 'int', value: +tA }, transB: { kind: 'int', value: +tB }, alpha: { kind: 'float', value: 1 } },
      },
    ];
    if (bias) nodes.push({ op: 'Add', inputs: ['p', 'c'], outputs: ['y'] });
    return {
      nodes,
      inputs: [
        { name: 'a', type: F, shape: sym('a', ra) },
        { name: 'b', type: F, shape: sym('b', rb) },
        ...(bias ? [{ name: 'c', type: F, shape: sym('c', bias.shape.length) }] : []),
      ],
      outputs: [{ name: 'y', type: F, shape: sym('y', outShape.length) }],
      domains: { 'com.microsoft': 1 },
    };
  };
  const ins: Feed[] = [
    ['a', a],
    ['b', b],
  ];
  if (bias) ins.push(['c', bias]);
  return run(ort, access, key, graph, ins, outShape);
}

export const batchMatMul: AccelKernel = ({ inputs, attrs }, access, ort) =>
  matmulCore(inputs.a!, inputs.b!, Boolean(attrs?.transposeA), Boolean(attrs?.transposeB), undefined, access, ort);

export const fusedMatMul: AccelKernel = ({ inputs, attrs }, access, ort) => {
  const activation = (attrs?.activation as string | undefined) ?? 'linear';
  if (activation !== 'linear' || inputs.preluActivationWeights) return null;
  return matmulCore(inputs.a!, inputs.b!, Boolean(attrs?.transposeA), Boolean(attrs?.transposeB), inputs.bias, access, ort);
};

const MIN_ELEMENTWISE = 4096; // below this the native call costs more than it saves

export const transpose: AccelKernel = ({ inputs, attrs }, access, ort) => {
  const x = inputs.x!;
  const perm = (attrs?.perm as number[] | undefined) ?? [];
  if (!access.readable(x) || prod(x.shape) < MIN_ELEMENTWISE || perm.length !== x.shape.length) return null;
  if (perm.every((p, i) => p === i)) return null;
  // drop size-1 dims: a lower-rank transpose is faster and the data layout is the same
  const keep = x.shape.map((d, i) => (d !== 1 ? i : -1)).filter((i) => i >= 0);
  const redShape = keep.map((i) => x.shape[i]!);
  const redPerm = perm.filter((p) => x.shape[p] !== 1).map((p) => keep.indexOf(p));
  const outShape = perm.map((p) => x.shape[p]!);
  if (redPerm.every((p, i) => p === i)) return null;
  const key = `transpose:${redPerm.join(',')}`;
  return run(ort, access, key, oneNode('Transpose', [redShape.length], [redShape.length], { perm: { kind: 'ints', value: redPerm } }), [['x', x, redShape]], outShape, redPerm.map((p) => redShape[p]!));
};

function unary(op: string): AccelKernel {
  return ({ inputs }, access, ort) => {
    const x = inputs.x!;
    if (!access.readable(x) || prod(x.shape) < MIN_ELEMENTWISE) return null;
    const n = prod(x.shape);
    return run(ort, access, `unary:${op}`, oneNode(op, [1], [1]), [['x', x, [n]]], [...x.shape], [n]);
  };
}

export const softmax: AccelKernel = ({ inputs, attrs }, access, ort) => {
  const x = inputs.logits!;
  const dim = (attrs?.dim as number | undefined) ?? -1;
  const r = x.shape.length;
  if (!access.readable(x) || prod(x.shape) < MIN_ELEMENTWISE || (dim !== -1 && dim !== r - 1)) return null;
  const last = x.shape[r - 1]!;
  const rows = prod(x.shape) / last;
  return run(ort, access, 'softmax', oneNode('Softmax', [2], [2], { axis: { kind: 'int', value: -1 } }), [['x', x, [rows, last]]], [...x.shape], [rows, last]);
};

export const unpack: AccelKernel = ({ inputs, attrs }, access, ort) => {
  const x = inputs.value!;
  const r = x.shape.length;
  const axis = (((attrs?.axis as number | undefined) ?? 0) + r) % r;
  const num = x.shape[axis]!;
  if (!access.readable(x) || prod(x.shape) < MIN_ELEMENTWISE || num < 2 || num > 16) return null;
  // view as [outer, num, inner] and split the middle axis
  const outer = prod(x.shape.slice(0, axis));
  const inner = prod(x.shape.slice(axis + 1));
  const outShape = x.shape.filter((_, i) => i !== axis);
  const key = `unpack:${num}`;
  const graph = (): OnnxGraph => ({
    nodes: [
      { op: 'Split', inputs: ['x'], outputs: Array.from({ length: num }, (_, i) => `y${i}`), attrs: { axis: { kind: 'int', value: 1 }, num_outputs: { kind: 'int', value: num } } },
    ],
    inputs: [{ name: 'x', type: F, shape: ['a', num, 'c'] }],
    outputs: Array.from({ length: num }, (_, i) => ({ name: `y${i}`, type: F, shape: ['a', 1, 'c'] })),
    opset: 18,
  });
  return runMulti(ort, access, key, graph, [['x', x, [outer, num, inner]]], Array.from({ length: num }, () => [outShape, [outer, 1, inner]] as [number[], number[]]));
};

function binary(op: string): AccelKernel {
  return ({ inputs }, access, ort) => {
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    if (!access.readable(a) || !access.readable(b)) return null;
    const out = broadcastShapes(a.shape, b.shape);
    if (!out || prod(out) < MIN_ELEMENTWISE) return null;
    // equal shapes: flatten to 1-D so that one cached session serves every rank
    if (a.shape.join() === b.shape.join()) {
      const n = prod(out);
      return run(ort, access, `bin:${op}:flat`, oneNode(op, [1, 1], [1]), [['x0', a, [n]], ['x1', b, [n]]], out, [n]);
    }
    return run(ort, access, `bin:${op}:${a.shape.length}:${b.shape.length}`, oneNode(op, [a.shape.length, b.shape.length], [out.length]), [['x0', a], ['x1', b]], out);
  };
}

/** Square and Rsqrt have no single ONNX op; small graphs do them in one call. */
function unaryGraph(name: string, build: (x: string) => OnnxNode[]): AccelKernel {
  return ({ inputs }, access, ort) => {
    const x = inputs.x!;
    if (!access.readable(x) || prod(x.shape) < MIN_ELEMENTWISE) return null;
    const n = prod(x.shape);
    return run(ort, access, `unary:${name}`, () => ({
      nodes: build('x'),
      inputs: [{ name: 'x', type: F, shape: ['n'] }],
      outputs: [{ name: 'y', type: F, shape: ['n'] }],
    }), [['x', x, [n]]], [...x.shape], [n]);
  };
}

function parseAxes(axis: unknown, rank: number): number[] {
  const list = axis === null || axis === undefined ? Array.from({ length: rank }, (_, i) => i) : Array.isArray(axis) ? (axis as number[]) : [axis as number];
  return [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((x, y) => x - y);
}

function reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceMax'): AccelKernel {
  return ({ inputs, attrs }, access, ort) => {
    const x = inputs.x!;
    if (!access.readable(x) || prod(x.shape) < MIN_ELEMENTWISE) return null;
    const r = x.shape.length;
    // Sum and Mean name the attribute axis, Max reductionIndices
    const axes = parseAxes(attrs?.axis ?? attrs?.reductionIndices, r);
    if (axes.length === 0 || axes.some((a) => a < 0 || a >= r)) return null;
    const keepDims = Boolean(attrs?.keepDims);
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const outShape = keepDims ? kept : x.shape.filter((_, i) => !axes.includes(i));
    const key = `${op}:${r}:${axes.join(',')}`;
    const graph = (): OnnxGraph => {
      const axesAttr = op === 'ReduceSum' ? undefined : { axes: { kind: 'ints' as const, value: axes }, keepdims: { kind: 'int' as const, value: 1 } };
      return {
        nodes: [{ op, inputs: op === 'ReduceSum' ? ['x', 'axes'] : ['x'], outputs: ['y'], attrs: axesAttr ?? { keepdims: { kind: 'int', value: 1 } } }],
        inputs: [{ name: 'x', type: F, shape: sym('i', r) }],
        outputs: [{ name: 'y', type: F, shape: sym('o', r) }],
        initializers: op === 'ReduceSum' ? [{ name: 'axes', type: OnnxType.int64, dims: [axes.length], values: axes }] : [],
      };
    };
    return run(ort, access, key, graph, [['x', x]], outShape, kept);
  };
}

/** Concat along `axis` of same-rank float tensors (Pack: along a new axis, via size-1 views). */
function concatLike(pack: boolean): AccelKernel {
  return ({ inputs, attrs }, access, ort) => {
    const list = (Array.isArray(inputs) ? inputs : Object.values(inputs)) as TensorInfo[];
    if (list.length < 2 || list.length > 16 || !list.every((t) => access.readable(t))) return null;
    const r0 = list[0]!.shape.length;
    const rank = pack ? r0 + 1 : r0;
    const axis = ((((attrs?.axis as number | undefined) ?? 0) % rank) + rank) % rank;
    const dims = list.map((t) => (pack ? [...t.shape.slice(0, axis), 1, ...t.shape.slice(axis)] : [...t.shape]));
    if (dims.some((d) => d.length !== rank || d.some((x, i) => i !== axis && x !== dims[0]![i]))) return null;
    const outShape = [...dims[0]!];
    outShape[axis] = dims.reduce((a, d) => a + d[axis]!, 0);
    if (prod(outShape) < MIN_ELEMENTWISE) return null;
    const n = list.length;
    const key = `concat:${n}:${rank}:${axis}`;
    const graph = (): OnnxGraph => ({
      nodes: [{ op: 'Concat', inputs: list.map((_, i) => `x${i}`), outputs: ['y'], attrs: { axis: { kind: 'int', value: axis } } }],
      inputs: list.map((_, i) => ({ name: `x${i}`, type: F, shape: sym(`i${i}_`, rank) })),
      outputs: [{ name: 'y', type: F, shape: sym('o', rank) }],
    });
    return run(ort, access, key, graph, list.map((t, i) => [`x${i}`, t, dims[i]!] as Feed), outShape);
  };
}

/** The kernels this module replaces, by tfjs kernel name. */
export const ACCEL_KERNELS: Record<string, AccelKernel> = {
  BatchMatMul: batchMatMul,
  _FusedMatMul: fusedMatMul,
  Transpose: transpose,
  Tanh: unary('Tanh'),
  Exp: unary('Exp'),
  Sqrt: unary('Sqrt'),
  Sigmoid: unary('Sigmoid'),
  Neg: unary('Neg'),
  Square: unaryGraph('square', (x) => [{ op: 'Mul', inputs: [x, x], outputs: ['y'] }]),
  Rsqrt: unaryGraph('rsqrt', (x) => [
    { op: 'Sqrt', inputs: [x], outputs: ['s'] },
    { op: 'Reciprocal', inputs: ['s'], outputs: ['y'] },
  ]),
  Add: binary('Add'),
  Sub: binary('Sub'),
  Multiply: binary('Mul'),
  RealDiv: binary('Div'),
  Maximum: binary('Max'),
  Sum: reduce('ReduceSum'),
  Mean: reduce('ReduceMean'),
  Max: reduce('ReduceMax'),
  Softmax: softmax,
  Unpack: unpack,
  Concat: concatLike(false),
  Pack: concatLike(true),
};
