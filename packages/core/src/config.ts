/**
 * Config loading and validation. Files: JSON, YAML, or a TS/JS module whose default export (or
 * `config` export) is the config; TS modules load through jiti. Validation uses zod schemas, and
 * a failure lists every bad field by its path with what was expected. `applyOverrides` applies
 * `a.b.c=value` strings (as from `--set`) with type coercion.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError, OpenSoraError } from './errors.js';

export { z };

/** Loads a config file and returns its plain value (not yet validated). */
export async function loadConfigFile(file: string): Promise<unknown> {
  const ext = path.extname(file).toLowerCase();
  const abs = path.resolve(file);
  if (['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'].includes(ext)) {
    let mod: Record<string, unknown>;
    try {
      if (ext === '.ts' || ext === '.mts' || ext === '.cts') {
        const { createJiti } = await import('jiti');
        const jiti = createJiti(pathToFileURL(abs).href, { interopDefault: true });
        mod = (await jiti.import(abs)) as Record<string, unknown>;
      } else {
        mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
      }
    } catch (e) {
      throw new OpenSoraError('E_CONFIG_FILE', `Cannot load config module ${file}: ${(e as Error).message.split('\n')[0]}`, { cause: e });
    }
    const value = mod && typeof mod === 'object' && 'default' in mod ? mod.default : (mod?.config ?? mod);
    return typeof value === 'function' ? await (value as () => unknown)() : value;
  }
  if (!['.json', '.yaml', '.yml'].includes(ext)) {
    throw new OpenSoraError('E_CONFIG_FILE', `Config file ${file} has an unsupported extension '${ext}'`, {
      hint: 'use .json, .yaml, .yml, .ts, .js, .mjs or .cjs',
    });
  }
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (e) {
    throw new OpenSoraError('E_CONFIG_FILE', `Cannot read config file ${file} (${(e as NodeJS.ErrnoException).code ?? e})`, {
      cause: e,
      hint: 'check the path',
    });
  }
  if (ext === '.json') {
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new OpenSoraError('E_CONFIG_FILE', `Config file ${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  {
    const doc = YAML.parseDocument(text);
    if (doc.errors.length) {
      const err = doc.errors[0]!;
      throw new OpenSoraError('E_CONFIG_FILE', `Config file ${file} is not valid YAML: ${err.message.split('\n')[0]}`, { cause: err });
    }
    return doc.toJS();
  }
}

/** One validation problem: the dotted path of the field and what was wrong. */
export interface ConfigIssue {
  path: string;
  message: string;
}

function issuePath(p: ReadonlyArray<PropertyKey>): string {
  if (p.length === 0) return '(root)';
  return p
    .map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`))
    .join('');
}

/** Validates `value` against `schema`; throws a ConfigError that lists every bad field. */
export function validateConfig<S extends z.ZodType>(schema: S, value: unknown, source = 'config'): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues: ConfigIssue[] = r.error.issues.map((i) => ({ path: issuePath(i.path), message: i.message }));
  const lines = issues.map((i) => `  - ${i.path}: ${i.message}`).join('\n');
  throw new ConfigError(`Invalid ${source}:\n${lines}`, { details: { issues } });
}

/** Parses the value side of `key=value` into a number, boolean, null, JSON value or string. */
export function coerceValue(raw: string): unknown {
  const v = raw.trim();
  if (v === '') return '';
  if (v === 'true' || v === 'True') return true;
  if (v === 'false' || v === 'False') return false;
  if (v === 'null' || v === 'None' || v === '~') return null;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return Number(v);
  if (/^[[{"]/.test(v)) {
    try {
      return JSON.parse(v);
    } catch {
      /* a string that merely starts with a bracket */
    }
  }
  return raw;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Applies overrides to a deep copy of `obj`. Each override is `a.b.c=value` (array elements by
 * index: `a.0.b=1`); objects on the way are created as needed. Values are coerced by `coerceValue`.
 */
export function applyOverrides<T>(obj: T, overrides: string[] | Record<string, unknown>): T {
  const out = structuredClone(obj) as unknown;
  const pairs: Array<[string, unknown]> = Array.isArray(overrides)
    ? overrides.map((o) => {
        const eq = o.indexOf('=');
        if (eq <= 0) {
          throw new OpenSoraError('E_OVERRIDE', `Override '${o}' is not of the form key.path=value`, {
            hint: 'e.g. --set optimizer.lr=1e-4',
          });
        }
        return [o.slice(0, eq).trim(), coerceValue(o.slice(eq + 1))];
      })
    : Object.entries(overrides);
  for (const [key, value] of pairs) {
    const parts = key.split('.').filter((p) => p.length > 0);
    if (parts.length === 0) throw new OpenSoraError('E_OVERRIDE', `Override key '${key}' is empty`);
    if (!isPlainObject(out)) throw new OpenSoraError('E_OVERRIDE', `Cannot apply override '${key}' to a non-object config`);
    let node: Record<string, unknown> | unknown[] = out as Record<string, unknown>;
    for (let i = 0; i < parts.length - 1; i++) {
      const k = parts[i]!;
      const next: unknown = Array.isArray(node) ? node[Number(k)] : node[k];
      if (next === undefined || next === null) {
        const created = /^\d+$/.test(parts[i + 1]!) ? [] : {};
        if (Array.isArray(node)) node[Number(k)] = created;
        else node[k] = created;
        node = created;
      } else if (typeof next === 'object') {
        node = next as Record<string, unknown> | unknown[];
      } else {
        throw new OpenSoraError('E_OVERRIDE', `Override '${key}': '${parts.slice(0, i + 1).join('.')}' is ${JSON.stringify(next)}, not an object`);
      }
    }
    const last = parts[parts.length - 1]!;
    if (Array.isArray(node)) {
      if (!/^\d+$/.test(last)) throw new OpenSoraError('E_OVERRIDE', `Override '${key}': '${last}' is not an array index`);
      node[Number(last)] = value;
    } else {
      node[last] = value;
    }
  }
  return out as T;
}

/** Loads a file, applies overrides, and validates: the usual path from disk to a typed config. */
export async function loadConfig<S extends z.ZodType>(
  schema: S,
  file: string,
  overrides: string[] = [],
): Promise<z.output<S>> {
  const raw = await loadConfigFile(file);
  return validateConfig(schema, applyOverrides(raw, overrides), `config ${file}`);
}
