import type { ViteUserConfig } from 'vitest/config';

/**
 * Test settings shared by every package: node environment, generous timeouts for
 * tensor work on 2 cores, and a JSON report per package that `scripts/test-summary.mjs`
 * adds up into the closing "N passed, N failed" line of `npm test`.
 */
export function sharedTestConfig(name: string): ViteUserConfig {
  return {
    test: {
      name,
      environment: 'node',
      include: ['test/**/*.test.ts'],
      passWithNoTests: true,
      testTimeout: 120_000,
      hookTimeout: 120_000,
      pool: 'forks',
      reporters: ['default', 'json'],
      outputFile: { json: '.test-results/vitest.json' },
    },
  };
}
