/**
 * A minimal ONNX model writer: just enough protobuf to describe small single-purpose graphs
 * (one or a few nodes with symbolic input shapes) that the kernel accelerator hands to
 * onnxruntime. Field numbers follow onnx/onnx.proto (ModelProto, GraphProto, NodeProto,
 * AttributeProto, ValueInfoProto, TypeProto, TensorShapeProto, TensorProto).
 */

/** ONNX TensorProto.DataType values used here. */
export const OnnxType = { float: 1, int32: 6, int64: 7, bool: 9 } as const;
export type OnnxElemType = (typeof OnnxType)[keyof typeof OnnxType];

export type OnnxAttr =
  | { kind: 'int'; value: number }
  | { kind: 'ints'; value: readonly number[] }
  | { kind: 'float'; value: number }
  | { kind: 'floats'; value: readonly number[] }
  | { kind: 'string'; value: string };

export interface OnnxNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs?: Record<string, OnnxAttr>;
  domain?: string;
}

export interface OnnxValue {
  name: string;
  type: OnnxElemType;
  /** Each dim a fixed size, or a symbol name (dynamic). */
  shape: readonly (number | string)[];
}

export interface OnnxInitializer {
  name: string;
  type: OnnxElemType;
  dims: readonly number[];
  /** float32 values (type float) or integer values (int32/int64). */
  values: readonly number[];
}

export interface OnnxGraph {
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValue[];
  outputs: readonly OnnxValue[];
  initializers?: readonly OnnxInitializer[];
  /** Extra opset domains, e.g. `{ 'com.microsoft': 1 }`. */
  domains?: Record<string, number>;
  opset?: number;
}

class Writer {
  private chunks: number[] = [];

  varint(v: number | bigint): this {
    let n = BigInt.asUintN(64, BigInt(v));
    do {
      let b = Number(n & 0x7fn);
      n >>= 7n;
      if (n !== 0n) b |= 0x80;
      this.chunks.push(b);
    } while (n !== 0n);
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, v: number | bigint): this {
    return this.tag(field, 0).varint(v);
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2).varint(data.length);
    for (const b of data) this.chunks.push(b);
    return this;
  }

  str(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  msg(field: number, w: Writer): this {
    return this.bytes(field, w.finish());
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    for (const x of b) this.chunks.push(x);
    return this;
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

function attrProto(name: string, a: OnnxAttr): Writer {
  const w = new Writer().str(1, name);
  switch (a.kind) {
    case 'float':
      w.float(2, a.value).int(20, 1);
      break;
    case 'int':
      w.int(3, a.value).int(20, 2);
      break;
    case 'string':
      w.str(4, a.value).int(20, 3);
      break;
    case 'floats':
      for (const v of a.value) w.float(7, v);
      w.int(20, 6);
      break;
    case 'ints':
      for (const v of a.value) w.int(8, v);
      w.int(20, 7);
      break;
  }
  return w;
}

function valueInfo(v: OnnxValue): Writer {
  const shape = new Writer();
  for (const d of v.shape) {
    const dim = new Writer();
    if (typeof d === 'number') dim.int(1, d);
    else dim.str(2, d);
    shape.msg(1, dim);
  }
  const tensorType = new Writer().int(1, v.type).msg(2, shape);
  const type = new Writer().msg(1, tensorType);
  return new Writer().str(1, v.name).msg(2, type);
}

function tensorProto(t: OnnxInitializer): Writer {
  const w = new Writer();
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.type);
  w.str(8, t.name);
  let raw: Uint8Array;
  if (t.type === OnnxType.float) raw = new Uint8Array(Float32Array.from(t.values).buffer);
  else if (t.type === OnnxType.int32) raw = new Uint8Array(Int32Array.from(t.values).buffer);
  else if (t.type === OnnxType.int64) raw = new Uint8Array(BigInt64Array.from(t.values.map((x) => BigInt(x))).buffer);
  else raw = Uint8Array.from(t.values);
  w.bytes(9, raw);
  return w;
}

/** Serialises a graph into ONNX model bytes (IR version 8, default opset 17). */
export function encodeOnnxModel(g: OnnxGraph): Uint8Array {
  const graph = new Writer();
  g.nodes.forEach((n, i) => {
    const node = new Writer();
    for (const s of n.inputs) node.str(1, s);
    for (const s of n.outputs) node.str(2, s);
    node.str(3, `n${i}`);
    node.str(4, n.op);
    for (const [k, a] of Object.entries(n.attrs ?? {})) node.msg(5, attrProto(k, a));
    if (n.domain) node.str(7, n.domain);
    graph.msg(1, node);
  });
  graph.str(2, 'g');
  for (const t of g.initializers ?? []) graph.msg(5, tensorProto(t));
  for (const v of g.inputs) graph.msg(11, valueInfo(v));
  for (const v of g.outputs) graph.msg(12, valueInfo(v));

  const model = new Writer().int(1, 8).str(2, 'opensora-accel');
  model.msg(8, new Writer().str(1, '').int(2, g.opset ?? 17));
  for (const [domain, version] of Object.entries(g.domains ?? {})) {
    model.msg(8, new Writer().str(1, domain).int(2, version));
  }
  model.msg(7, graph);
  return model.finish();
}
