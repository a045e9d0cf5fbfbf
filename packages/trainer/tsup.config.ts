import { defineConfig } from 'tsup';
import { libraryBuild } from '../../tsup.shared.ts';

// index: the library; worker-entry: a training process (`node dist/worker-entry.js ...`)
// that a parent can signal or kill (used by the CLI and the resume tests).
export default defineConfig(libraryBuild({ entry: ['src/index.ts', 'src/worker-entry.ts'], dts: { entry: ['src/index.ts'] } }));
