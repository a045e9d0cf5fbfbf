import { defineConfig } from 'tsup';
import { libraryBuild } from '../../tsup.shared.ts';

// bin: the `opensora` executable.
export default defineConfig(libraryBuild({ entry: ['src/index.ts', 'src/bin.ts'], dts: { entry: 'src/index.ts' } }));
