import { expect } from 'vitest';
import { runCli } from '../src/program.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in process with a capturing io. */
export async function cli(args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

/** A failure must end with a short error, never a stack trace. */
export function expectOneLineError(stderr: string): void {
  const lines = stderr.trim().split('\n');
  expect(lines[0]).toMatch(/error/i);
  expect(lines.length).toBeLessThanOrEqual(2); // commander adds "(run with --help for usage)"
  expect(stderr).not.toMatch(/^\s+at /m);
}
