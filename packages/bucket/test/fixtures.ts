import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `<repo root>/../shared/fixtures`, resolved from this file (packages/bucket/test). */
export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../shared/fixtures');

export function loadFixture<T = unknown>(name: string): T {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, name), 'utf8')) as T;
}
