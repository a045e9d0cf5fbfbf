/**
 * Where ffmpeg and ffprobe come from. Order: an explicit path passed in code, then the
 * `FFMPEG_PATH` / `FFPROBE_PATH` environment variables (a system ffmpeg), then the static binaries
 * shipped in the `@ffmpeg-installer/ffmpeg` and `@ffprobe-installer/ffprobe` registry packages.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import ffmpegFactory from 'fluent-ffmpeg';
import { MediaError } from './errors.js';

const req = createRequire(import.meta.url);

export interface FfmpegBinaries {
  ffmpeg: string;
  ffprobe: string;
  /** Where each path came from: 'option' | 'env' | 'installer'. */
  source: { ffmpeg: string; ffprobe: string };
}

export interface BinaryOptions {
  ffmpegPath?: string;
  ffprobePath?: string;
}

let defaults: FfmpegBinaries | null = null;
let overrides: BinaryOptions = {};

function installerPath(pkg: string): string | null {
  try {
    const mod = req(pkg) as { path?: string };
    return mod.path && existsSync(mod.path) ? mod.path : null;
  } catch {
    return null;
  }
}

/** Sets process-wide ffmpeg/ffprobe paths (a config field for a system ffmpeg). `undefined` clears. */
export function configureFfmpeg(options: BinaryOptions): void {
  overrides = { ...options };
  defaults = null;
}

/** Resolves the ffmpeg and ffprobe binaries (see module comment for the order). */
export function resolveBinaries(options: BinaryOptions = {}): FfmpegBinaries {
  if (!options.ffmpegPath && !options.ffprobePath && defaults) return defaults;
  const pick = (opt: string | undefined, over: string | undefined, env: string | undefined, pkg: string, name: string) => {
    if (opt) return { p: opt, s: 'option' };
    if (over) return { p: over, s: 'option' };
    if (env) return { p: env, s: 'env' };
    const inst = installerPath(pkg);
    if (inst) return { p: inst, s: 'installer' };
    throw new MediaError(name, `no ${name} binary found`, {
      hint: `install ${pkg} (npm), or set ${name.toUpperCase()}_PATH to a system ${name}`,
    });
  };
  const f = pick(options.ffmpegPath, overrides.ffmpegPath, process.env.FFMPEG_PATH, '@ffmpeg-installer/ffmpeg', 'ffmpeg');
  const p = pick(options.ffprobePath, overrides.ffprobePath, process.env.FFPROBE_PATH, '@ffprobe-installer/ffprobe', 'ffprobe');
  const out: FfmpegBinaries = { ffmpeg: f.p, ffprobe: p.p, source: { ffmpeg: f.s, ffprobe: p.s } };
  if (!options.ffmpegPath && !options.ffprobePath) defaults = out;
  return out;
}

/** A fluent-ffmpeg command bound to the resolved binaries (no global fluent-ffmpeg state is touched). */
export function ffmpegCommand(input?: string | NodeJS.ReadableStream, options: BinaryOptions = {}): ffmpegFactory.FfmpegCommand {
  const bin = resolveBinaries(options);
  const cmd = input === undefined ? ffmpegFactory() : ffmpegFactory(input as string);
  cmd.setFfmpegPath(bin.ffmpeg);
  cmd.setFfprobePath(bin.ffprobe);
  return cmd;
}
