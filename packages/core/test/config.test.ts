import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, applyOverrides, coerceValue, loadConfig, loadConfigFile, validateConfig, z } from '../src/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'cfg-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const schema = z.object({
  model: z.object({ hiddenSize: z.number().int().positive(), depth: z.number().int() }),
  lr: z.number().positive(),
  name: z.string().default('run'),
  buckets: z.array(z.number()).optional(),
});

describe('config', () => {
  it('loads JSON, YAML, TS and JS modules', async () => {
    const value = { model: { hiddenSize: 96, depth: 2 }, lr: 1e-4 };
    writeFileSync(path.join(dir, 'a.json'), JSON.stringify(value));
    writeFileSync(path.join(dir, 'a.yaml'), 'model:\n  hiddenSize: 96\n  depth: 2\nlr: 1.0e-4\n');
    writeFileSync(path.join(dir, 'a.ts'), 'const depth: number = 2;\nexport default { model: { hiddenSize: 96, depth }, lr: 1e-4 };\n');
    writeFileSync(path.join(dir, 'a.mjs'), 'export default { model: { hiddenSize: 96, depth: 2 }, lr: 1e-4 };\n');
    for (const f of ['a.json', 'a.yaml', 'a.ts', 'a.mjs']) {
      expect(await loadConfigFile(path.join(dir, f))).toEqual(value);
    }
    const typed = await loadConfig(schema, path.join(dir, 'a.yaml'), ['model.depth=4', 'name=exp1']);
    expect(typed).toEqual({ ...value, model: { hiddenSize: 96, depth: 4 }, name: 'exp1' });
  });

  it('reports file errors clearly', async () => {
    writeFileSync(path.join(dir, 'bad.json'), '{ "a": ');
    writeFileSync(path.join(dir, 'bad.yaml'), 'a: [1, 2\n');
    await expect(loadConfigFile(path.join(dir, 'bad.json'))).rejects.toThrow(/bad.json is not valid JSON/);
    await expect(loadConfigFile(path.join(dir, 'bad.yaml'))).rejects.toThrow(/bad.yaml is not valid YAML/);
    await expect(loadConfigFile(path.join(dir, 'none.json'))).rejects.toThrow(/Cannot read config file .*ENOENT/);
    await expect(loadConfigFile(path.join(dir, 'a.toml'))).rejects.toThrow(/unsupported extension '.toml'/);
  });

  it('validation lists every bad field by path with what was expected', () => {
    let err: ConfigError | undefined;
    try {
      validateConfig(schema, { model: { hiddenSize: -1, depth: 'x' }, buckets: [1, 'a'] }, 'train config');
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.code).toBe('E_CONFIG');
    expect(err!.message).toMatch(/Invalid train config/);
    const paths = (err!.details.issues as Array<{ path: string }>).map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['model.hiddenSize', 'model.depth', 'lr', 'buckets[1]']));
    expect(err!.message).toMatch(/model\.depth: .*expected number/i);
  });

  it('overrides coerce types and create paths', () => {
    const base = { a: { b: 1, list: [1, 2, 3] }, s: 'x' };
    const out = applyOverrides(base, ['a.b=2.5', 'a.c.d=true', 'a.list.1=9', 's=None', 'e=[1,2]', 'f={"k":1}', 'g=hello world', 'h=1e-4']);
    expect(out).toEqual({ a: { b: 2.5, c: { d: true }, list: [1, 9, 3] }, s: null, e: [1, 2], f: { k: 1 }, g: 'hello world', h: 1e-4 });
    expect(base.a.b).toBe(1); // input untouched
    expect(coerceValue('007')).toBe(7);
    expect(coerceValue('[oops')).toBe('[oops');
    expect(() => applyOverrides(base, ['nonsense'])).toThrow(/not of the form key.path=value/);
    expect(() => applyOverrides(base, ['s.x=1'])).toThrow(/'s' is "x", not an object/);
  });
});
