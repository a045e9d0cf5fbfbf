import { ASPECT_RATIOS, type AspectTable, type ResolutionSpec } from './aspect-tables.js';
import { BucketError } from './errors.js';

export { ASPECT_RATIOS };
export type { AspectTable, ResolutionSpec };

/**
 * The built-in resolution names in the reference's dict order. (`Object.keys(ASPECT_RATIOS)` cannot keep
 * that order: JavaScript lists integer-like keys such as '256' first.)
 */
export const RESOLUTION_NAMES: readonly string[] = Object.freeze([
  '144p',
  '256',
  '240p',
  '360p',
  '512',
  '480p',
  '720p',
  '1024',
  '1080p',
  '4k',
]);

/** Aspect-ratio key entries in order, as [key, [height, width]]. */
export type RatioEntries = ReadonlyArray<readonly [string, readonly [number, number]]>;

/**
 * A ratio table: either a record (kept in insertion order; avoid integer-like keys such as '1', which
 * JavaScript moves to the front) or an explicit list of [key, [h, w]] entries.
 */
export type RatioTableInput = Readonly<Record<string, readonly [number, number]>> | RatioEntries;

function entriesOf(ratios: RatioTableInput): RatioEntries {
  return Array.isArray(ratios) ? (ratios as RatioEntries) : Object.entries(ratios as Record<string, readonly [number, number]>);
}

/**
 * The reference's `get_closest_ratio(height, width, ratios)`: the key minimising |float(key) - height / width|;
 * on an exact tie the first key in table order wins. Extreme ratios are not rejected.
 */
export function getClosestRatio(height: number, width: number, ratios: RatioTableInput): string {
  const entries = entriesOf(ratios);
  if (entries.length === 0) throw new BucketError('E_BUCKET_ARG', 'getClosestRatio: the ratio table is empty');
  const r = height / width;
  let best = entries[0]![0];
  let bestD = Math.abs(parseFloat(best) - r);
  for (let i = 1; i < entries.length; i++) {
    const k = entries[i]![0];
    const d = Math.abs(parseFloat(k) - r);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

/**
 * Formats a number like Python's `f"{x:.{digits}f}"`: the exact binary value rounded half to even
 * (JavaScript's `toFixed` rounds exact halves up, e.g. 0.125 -> '0.13' where Python gives '0.12').
 */
export function formatFixedPython(x: number, digits = 2): string {
  if (!Number.isFinite(x)) throw new BucketError('E_BUCKET_ARG', `formatFixedPython: ${x} is not finite`);
  if (!Number.isInteger(digits) || digits < 0 || digits > 20) throw new BucketError('E_BUCKET_ARG', `formatFixedPython: digits must be 0..20, got ${digits}`);
  const neg = x < 0 || Object.is(x, -0);
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const exp = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  const mant = exp === 0 ? frac : frac | (1n << 52n);
  const e = exp === 0 ? -1074 : exp - 1075;
  const num = mant * 10n ** BigInt(digits);
  let q: bigint;
  if (e >= 0) q = num << BigInt(e);
  else {
    const den = 1n << BigInt(-e);
    q = num / den;
    const rem2 = (num % den) * 2n;
    if (rem2 > den || (rem2 === den && q % 2n === 1n)) q += 1n;
  }
  let s = q.toString();
  if (digits > 0) {
    s = s.padStart(digits + 1, '0');
    s = `${s.slice(0, -digits)}.${s.slice(-digits)}`;
  }
  return neg ? `-${s}` : s;
}

/**
 * The reference's `get_h_w(a, ts, eps=1e-4)`: for ratio a = h / w and pixel count ts,
 * h = sqrt(ts * a) + eps, then ceil(h) if that is even else floor(h); w = h / a + eps, rounded the same way.
 * (The built-in tables are NOT this function's output; it only generates custom tables.)
 */
export function getHW(a: number, ts: number, eps = 1e-4): [number, number] {
  const evenOrFloor = (v: number): number => (Math.ceil(v) % 2 === 0 ? Math.ceil(v) : Math.floor(v));
  const h = evenOrFloor(Math.sqrt(ts * a) + eps);
  const w = evenOrFloor(h / a + eps);
  return [h, w];
}

/**
 * The reference's `get_aspect_ratios_dict(ts, ars)`: key `f"{a:.2f}"` to `get_h_w(a, ts)` for every ratio,
 * in the given order (a later ratio with the same key replaces the earlier value, in the earlier position,
 * like a Python dict).
 */
export function aspectRatiosTable(ts: number, ars: readonly number[]): Array<[string, [number, number]]> {
  const out = new Map<string, [number, number]>();
  for (const a of ars) out.set(formatFixedPython(a, 2), getHW(a, ts));
  return [...out.entries()];
}

/** What `registerResolution` takes: a pixel count and either a ratio table or a list of ratios (h / w). */
export interface CustomResolution {
  /** Nominal pixel count S (> 0); sources with H * W >= 0.8 * S are eligible. */
  pixels: number;
  /** Explicit table: aspect key (h / w as a string) to [h, w]. */
  ratios?: RatioTableInput;
  /** Ratios h / w from which the table is generated with the reference's rounding (`getHW`, keys `f"{a:.2f}"`). */
  aspectRatios?: readonly number[];
}

/** A resolution resolved for the bucket: ordered keys, parsed key values and sizes. */
export interface ResolvedResolution {
  readonly name: string;
  readonly pixels: number;
  readonly keys: readonly string[];
  readonly values: Float64Array;
  readonly sizes: ReadonlyArray<readonly [number, number]>;
  readonly spec: ResolutionSpec;
}

const customRegistry = new Map<string, ResolvedResolution>();
const builtinCache = new Map<string, ResolvedResolution>();

function isBuiltin(name: string): boolean {
  return Object.prototype.hasOwnProperty.call(ASPECT_RATIOS, name);
}

function resolveEntries(name: string, pixels: number, entries: RatioEntries, builtinSpec?: ResolutionSpec): ResolvedResolution {
  const keys: string[] = [];
  const sizes: Array<readonly [number, number]> = [];
  const values = new Float64Array(entries.length);
  const record: Record<string, readonly [number, number]> = {};
  entries.forEach(([k, hw], i) => {
    keys.push(k);
    sizes.push(Object.freeze([hw[0], hw[1]] as const));
    values[i] = parseFloat(k);
    record[k] = sizes[i]!;
  });
  return Object.freeze({ name, pixels, keys, values, sizes, spec: builtinSpec ?? Object.freeze({ pixels, ratios: Object.freeze(record) }) });
}

/** Validates and builds a custom resolution without registering it. */
export function defineResolution(name: string, spec: CustomResolution): ResolvedResolution {
  const fail = (msg: string): never => {
    throw new BucketError('E_BUCKET_RESOLUTION', `Custom resolution ${JSON.stringify(name)}: ${msg}`);
  };
  if (typeof name !== 'string' || name.trim() === '') fail('the name must be a non-empty string');
  if (isBuiltin(name)) fail(`clashes with the built-in resolution ${JSON.stringify(name)}; pick another name (e.g. '${name}-custom')`);
  if (spec === null || typeof spec !== 'object') fail('expected { pixels, ratios } or { pixels, aspectRatios }');
  const { pixels } = spec;
  if (typeof pixels !== 'number' || !Number.isFinite(pixels) || pixels <= 0) fail(`pixels must be a positive number, got ${String(pixels)}`);
  const hasRatios = spec.ratios !== undefined;
  const hasArs = spec.aspectRatios !== undefined;
  if (hasRatios === hasArs) fail('give exactly one of `ratios` (a table) or `aspectRatios` (a list of h / w ratios)');
  let entries: RatioEntries;
  if (hasArs) {
    const ars = spec.aspectRatios!;
    if (!Array.isArray(ars) || ars.length === 0) fail('aspectRatios must be a non-empty list of positive numbers');
    ars.forEach((a, i) => {
      if (typeof a !== 'number' || !Number.isFinite(a) || a <= 0) fail(`aspectRatios[${i}] must be a positive number, got ${String(a)}`);
    });
    const keys = ars.map((a) => formatFixedPython(a, 2));
    const dup = keys.find((k, i) => keys.indexOf(k) !== i);
    if (dup !== undefined) fail(`two aspect ratios round to the same key ${JSON.stringify(dup)}; remove one`);
    entries = aspectRatiosTable(pixels, ars);
  } else {
    if (spec.ratios === null || typeof spec.ratios !== 'object') fail('ratios must be a table { key: [h, w] } or a list of [key, [h, w]]');
    entries = entriesOf(spec.ratios!);
    if (entries.length === 0) fail('the ratio table is empty; give at least one aspect key');
    const seen = new Set<string>();
    for (const e of entries) {
      if (!Array.isArray(e) || e.length !== 2) fail(`every entry must be [key, [h, w]], got ${JSON.stringify(e)}`);
      const [k] = e;
      if (typeof k !== 'string' || !Number.isFinite(parseFloat(k)) || parseFloat(k) <= 0) {
        fail(`aspect key ${JSON.stringify(k)} must be a string holding a positive number (height / width)`);
      }
      if (seen.has(k)) fail(`aspect key ${JSON.stringify(k)} appears twice`);
      seen.add(k);
    }
  }
  for (const [k, hw] of entries) {
    if (!Array.isArray(hw) || hw.length !== 2 || !hw.every((v) => Number.isInteger(v) && v > 0)) {
      fail(`aspect key ${JSON.stringify(k)} has size ${JSON.stringify(hw)}; sizes must be [height, width] with positive integers` + (hasArs ? ' (pixels is too small for this ratio)' : ''));
    }
  }
  return resolveEntries(name, pixels, entries);
}

/**
 * Registers a resolution name for every Bucket created afterwards, e.g. `registerResolution('64px',
 * { pixels: 64 * 64, aspectRatios: [9 / 16, 1, 16 / 9] })` for a small CPU run. Names of built-in
 * resolutions are rejected. Registering the same name again with the identical table is a no-op; with a
 * different table it is an error (call `unregisterResolution` first).
 */
export function registerResolution(name: string, spec: CustomResolution): ResolutionSpec {
  const res = defineResolution(name, spec);
  const prev = customRegistry.get(name);
  if (prev) {
    const same =
      prev.pixels === res.pixels &&
      prev.keys.length === res.keys.length &&
      prev.keys.every((k, i) => k === res.keys[i] && prev.sizes[i]![0] === res.sizes[i]![0] && prev.sizes[i]![1] === res.sizes[i]![1]);
    if (!same) {
      throw new BucketError(
        'E_BUCKET_RESOLUTION',
        `Custom resolution ${JSON.stringify(name)} is already registered with a different table; call unregisterResolution(${JSON.stringify(name)}) first`,
      );
    }
    return prev.spec;
  }
  customRegistry.set(name, res);
  return res.spec;
}

/** Removes a custom resolution; returns whether it existed. Built-ins cannot be removed. */
export function unregisterResolution(name: string): boolean {
  if (isBuiltin(name)) throw new BucketError('E_BUCKET_RESOLUTION', `${JSON.stringify(name)} is a built-in resolution and cannot be unregistered`);
  return customRegistry.delete(name);
}

/** All known resolution names: built-ins in reference order, then custom ones in registration order. */
export function listResolutions(): string[] {
  return [...RESOLUTION_NAMES, ...customRegistry.keys()];
}

/** Looks a resolution up (local overrides first, then built-ins, then the registry); undefined if unknown. */
export function findResolution(name: string, local?: ReadonlyMap<string, ResolvedResolution>): ResolvedResolution | undefined {
  const l = local?.get(name);
  if (l) return l;
  if (isBuiltin(name)) {
    let r = builtinCache.get(name);
    if (!r) {
      const spec = ASPECT_RATIOS[name]!;
      r = resolveEntries(name, spec.pixels, Object.entries(spec.ratios), spec);
      builtinCache.set(name, r);
    }
    return r;
  }
  return customRegistry.get(name);
}

/** The pixel count and table of a known resolution (built-in or registered), or undefined. */
export function getResolution(name: string): ResolutionSpec | undefined {
  return findResolution(name)?.spec;
}
