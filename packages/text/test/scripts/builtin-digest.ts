// Run in a separate process by builtin.test.ts: prints a digest of the built-in encoder's output.
import { initBackend } from '@opensora/core';
import { builtinDigest } from '../digest.js';

await initBackend('cpu');
process.stdout.write(JSON.stringify(builtinDigest()) + '\n');
