import type { Options } from 'tsup';

/**
 * The build every package shares: ESM + CJS + .d.ts from `src/index.ts`, for Node 20, with
 * `import.meta.url` shimmed in the CJS output. A package passes only what differs (extra entries).
 */
export function libraryBuild(overrides: Options = {}): Options {
  return {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    sourcemap: true,
    target: 'node20',
    shims: true,
    ...overrides,
  };
}
