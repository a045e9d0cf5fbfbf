import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SafetensorsError,
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  initBackend,
  loadSafetensors,
  openSafetensors,
  saveSafetensors,
  tf,
  type RawTensor,
} from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.resolve(here, '../../../../shared/fixtures');
let dir: string;

beforeAll(async () => {
  await initBackend('cpu');
  dir = mkdtempSync(path.join(tmpdir(), 'st-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a raw safetensors file from a header object and a data buffer. */
function writeRaw(name: string, header: unknown, data: Uint8Array, headerLenOverride?: bigint): string {
  const file = path.join(dir, name);
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(h.length));
  writeFileSync(file, Buffer.concat([len, h, data]));
  return file;
}

describe('safetensors round trip', () => {
  it('round-trips every dtype with metadata', async () => {
    const raw: Record<string, RawTensor> = {
      f64: { dtype: 'F64', shape: [2], data: new Float64Array([1.5, -2.25]) },
      f32: { dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4.5]) },
      f16: { dtype: 'F16', shape: [3], data: f32ToF16([0.5, -1, 65504]) },
      bf16: { dtype: 'BF16', shape: [3], data: f32ToBf16([0.5, -1, 3.0e38]) },
      i64: { dtype: 'I64', shape: [2], data: new BigInt64Array([-3n, 2n ** 40n]) },
      i32: { dtype: 'I32', shape: [2], data: new Int32Array([-7, 7]) },
      i16: { dtype: 'I16', shape: [1], data: new Int16Array([-300]) },
      i8: { dtype: 'I8', shape: [1], data: new Int8Array([-5]) },
      u8: { dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) },
      bool: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
      empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    };
    const file = path.join(dir, 'all.safetensors');
    await saveSafetensors(file, raw, { metadata: { format: 'pt', note: 'hi' } });
    const r = openSafetensors(file);
    expect(r.metadata).toEqual({ format: 'pt', note: 'hi' });
    expect(r.keys().sort()).toEqual(Object.keys(raw).sort());
    for (const [k, v] of Object.entries(raw)) {
      const got = r.read(k);
      expect(got.dtype).toBe(v.dtype);
      expect(got.shape).toEqual(v.shape);
      expect(Array.from(got.data as ArrayLike<number | bigint>)).toEqual(Array.from(v.data as ArrayLike<number | bigint>));
    }
    expect(Array.from(r.readFloat32('f16'))).toEqual([0.5, -1, 65504]);
    expect(Array.from(r.readFloat32('bf16')).slice(0, 2)).toEqual([0.5, -1]);
    expect(r.tensor('i32').dtype).toBe('int32');
    expect(r.tensor('bool').dtype).toBe('bool');
    expect(Array.from(r.tensor('f64').dataSync())).toEqual([1.5, -2.25]);
    expect(() => r.tensor('i64')).toThrow(/does not fit int32/);
    r.close();
    // header is 8-byte aligned
    const buf = readFileSync(file);
    expect(Number(buf.readBigUInt64LE(0)) % 8).toBe(0);
  });

  it('round-trips tf tensors, stored as F32, F16 or BF16', async () => {
    const t = { a: tf.tensor([[0.1, 0.2], [0.3, 0.4]]), b: tf.tensor([1, 2], [2], 'int32'), c: tf.tensor([true, false], [2], 'bool') };
    for (const floatDtype of ['F32', 'F16', 'BF16'] as const) {
      const file = path.join(dir, `tf-${floatDtype}.safetensors`);
      await saveSafetensors(file, t, { floatDtype });
      const back = loadSafetensors(file);
      expect(back.a!.shape).toEqual([2, 2]);
      const tol = floatDtype === 'F32' ? 0 : floatDtype === 'F16' ? 1e-3 : 4e-3;
      const got = back.a!.dataSync();
      [0.1, 0.2, 0.3, 0.4].forEach((v, i) => expect(Math.abs(got[i]! - Math.fround(v))).toBeLessThanOrEqual(tol));
      expect(Array.from(back.b!.dataSync())).toEqual([1, 2]);
      expect(openSafetensors(file).info('a').dtype).toBe(floatDtype);
    }
  });

  it('half conversions are exact on representable values and round to nearest', () => {
    const vals = [0, -0, 1, -2, 0.333251953125, 6.103515625e-5, 5.960464477539063e-8, 65504, Infinity, -Infinity];
    expect(Array.from(f16ToF32(f32ToF16(vals)))).toEqual(vals.map((v) => v));
    expect(Number.isNaN(f16ToF32(f32ToF16([NaN]))[0])).toBe(true);
    expect(f16ToF32(f32ToF16([70000]))[0]).toBe(Infinity);
    expect(Array.from(bf16ToF32(f32ToBf16([1, -2, 0.15625])))).toEqual([1, -2, 0.15625]);
    expect(bf16ToF32(f32ToBf16([1.00390625 + 1e-7]))[0]).toBe(1.0078125);
  });

  it('writes atomically: no temporary file is left, an old file survives a failed write', async () => {
    const file = path.join(dir, 'atomic.safetensors');
    await saveSafetensors(file, { x: tf.tensor([1]) });
    await expect(
      saveSafetensors(file, { x: { dtype: 'F32', shape: [4], data: new Float32Array(2) } }),
    ).rejects.toThrow(/needs 16/);
    expect(openSafetensors(file).readFloat32('x')[0]).toBe(1);
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('reads sharded checkpoints through an index and directories', async () => {
    const sub = path.join(dir, 'sharded');
    await saveSafetensors(path.join(sub, 'model-00001-of-00002.safetensors'), { a: tf.tensor([1, 2]) });
    await saveSafetensors(path.join(sub, 'model-00002-of-00002.safetensors'), { b: tf.tensor([3]) });
    writeFileSync(
      path.join(sub, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 12 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }),
    );
    const r = openSafetensors(sub);
    expect(r.keys()).toEqual(['a', 'b']);
    expect(Array.from(r.readFloat32('b'))).toEqual([3]);
    expect(r.metadata.total_size).toBe('12');
    r.close();
    writeFileSync(path.join(sub, 'bad.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'missing.safetensors' } }));
    expect(() => openSafetensors(path.join(sub, 'bad.safetensors.index.json'))).toThrow(/missing.safetensors/);
  });

  it('reads the reference STDiT2 fixture', () => {
    const r = openSafetensors(path.join(fixtures, 'stdit2_tiny_weights.safetensors'));
    const cfg = JSON.parse(r.metadata.config!);
    expect(cfg.hidden_size).toBe(96);
    expect(r.info('x_embedder.proj.weight')).toMatchObject({ dtype: 'F32', shape: [96, 4, 1, 2, 2] });
    const w = r.readFloat32('x_embedder.proj.weight');
    expect(w.length).toBe(96 * 16);
    expect(w.every((v) => Number.isFinite(v))).toBe(true);
    expect(r.keys()).toContain('y_embedder.y_embedding');
    expect(r.info('y_embedder.y_embedding').shape).toEqual([16, 32]);
    r.close();
  });
});

describe('malformed files get a typed error naming the file', () => {
  const ok = { x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  const cases: Array<[string, () => string, RegExp]> = [
    ['truncated under 8 bytes', () => (writeFileSync(path.join(dir, 'short.st'), Buffer.from([1, 2, 3])), path.join(dir, 'short.st')), /truncated: 3 bytes/],
    ['header length past the end', () => writeRaw('hlen.st', ok, new Uint8Array(8), 1n << 40n), /runs past the end/],
    ['header not JSON', () => writeRaw('nojson.st', '{"x": nope', new Uint8Array(0)), /not valid JSON/],
    ['header not an object', () => writeRaw('arr.st', '[1,2]', new Uint8Array(0)), /not an object/],
    ['unknown dtype', () => writeRaw('dtype.st', { x: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)), /unknown dtype "F8"/],
    ['shape/size mismatch', () => writeRaw('size.st', { x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /needs 12/],
    ['offsets out of range', () => writeRaw('range.st', ok, new Uint8Array(4)), /out of range/],
    ['offsets reversed', () => writeRaw('rev.st', { x: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)), /begin <= end/],
    [
      'overlapping offsets',
      () => writeRaw('overlap.st', { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)),
      /overlap/,
    ],
    ['bad shape', () => writeRaw('shape.st', { x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), /non-negative integers/],
    ['bad metadata', () => writeRaw('meta.st', { __metadata__: { a: 1 } }, new Uint8Array(0)), /__metadata__.a is not a string/],
    ['missing file', () => path.join(dir, 'nope.safetensors'), /does not exist/],
  ];
  for (const [label, make, re] of cases) {
    it(label, () => {
      const file = make();
      let err: unknown;
      try {
        openSafetensors(file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SafetensorsError);
      expect((err as SafetensorsError).code).toBe('E_SAFETENSORS');
      expect((err as Error).message).toContain(path.basename(file));
      expect((err as Error).message).toMatch(re);
    });
  }

  it('unknown tensor names are reported with examples', () => {
    const r = openSafetensors(writeRaw('one.st', ok, new Uint8Array(8)));
    expect(() => r.read('y')).toThrow(/no tensor named 'y'.*'x'/);
  });
});

describe('lazy reading', () => {
  it('reads one tensor of a 320 MB file without reading the rest', async () => {
    const file = path.join(dir, 'big.safetensors');
    const big = 80 * 1024 * 1024; // floats per big tensor: 320 MB
    const header = {
      small: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      big: { dtype: 'F32', shape: [big], data_offsets: [16, 16 + big * 4] },
    };
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const fd = openSync(file, 'w');
    writeSync(fd, len);
    writeSync(fd, h);
    writeSync(fd, Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));
    const chunk = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < (big * 4) / chunk.length; i++) writeSync(fd, chunk);
    closeSync(fd);

    const before = process.memoryUsage().arrayBuffers;
    const r = openSafetensors(file);
    expect(Array.from(r.readFloat32('small'))).toEqual([1, 2, 3, 4]);
    expect(r.bytesRead).toBe(8 + h.length + 16);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
    expect(r.info('big').byteLength).toBe(big * 4);
    r.close();
    rmSync(file);
    expect(existsSync(file)).toBe(false);
  });
});
