import { defineConfig } from 'tsup';
import { libraryBuild } from '../../tsup.shared.ts';

// reader-worker: the piscina worker that decodes samples off the main thread.
export default defineConfig(libraryBuild({ entry: ['src/index.ts', 'src/reader-worker.ts'] }));
