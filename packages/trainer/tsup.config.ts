import { defineConfig } from 'tsup';

export default defineConfig({
  // index: the library; worker-entry: a training process (`node dist/worker-entry.js ...`)
  // that a parent can signal or kill (used by the CLI and the resume tests).
  entry: ['src/index.ts', 'src/worker-entry.ts'],
  format: ['esm', 'cjs'],
  dts: { entry: ['src/index.ts'] },
  clean: true,
  sourcemap: true,
  target: 'node20',
  shims: true,
});
