/**
 * Captioning through an OpenAI-compatible vision chat endpoint (`POST {baseUrl}/chat/completions`,
 * as vLLM, SGLang, llama.cpp's server or LMDeploy serve LLaVA-style models, or a hosted API).
 * Frames are sampled as the reference's prompts expect (1 frame at 0.5; 2 at 0.25/0.75; 3 at
 * 0.1/0.5/0.9), shrunk so the shorter side is 336 when a side exceeds 336 (bicubic), sent as
 * base64 JPEG. Requests run with bounded concurrency, retry with exponential backoff on network
 * errors, timeouts, 408/409/429 and 5xx (honouring Retry-After), and the output CSV is
 * checkpointed so that a re-run skips rows already captioned.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { createLogger, createProgress, type Logger } from '@opensora/core';
import { readDatasetCsv, rebaseRows, resolveRowPath, writeDatasetCsv, type DatasetRow } from './csv.js';
import type { Frame } from './decode.js';
import { DataError, errorLine } from './errors.js';
import { encodeJpeg, resizeRgb } from './imageops.js';
import { mediaKind } from './media.js';
import type { RowError } from './scenes.js';
import { readScorerInput } from './score.js';

/** Prompts by name (this port's wording; `{}` is replaced by the row's existing text). */
export const CAPTION_PROMPTS: Readonly<Record<string, string>> = {
  image: 'Describe this image and its style in a very detailed manner. The description should be useful for an AI to re-generate the image. Use no more than six sentences.',
  'image-text': 'Describe this image and its style in a very detailed manner. An existing short description is: "{}". The description should be useful for an AI to re-generate the image. Use no more than six sentences.',
  video:
    'Describe this video and its style in a very detailed manner. Pay attention to all objects, their motion and the camera motion. The description should be useful for an AI to re-generate the video. Use no more than six sentences.',
  'video-text':
    'Describe this video and its style in a very detailed manner. An existing short description is: "{}". Pay attention to all objects, their motion and the camera motion. The description should be useful for an AI to re-generate the video. Use no more than six sentences.',
};

/** Frame positions for 1, 2 or 3 frames (the reference's). */
export function captionFramePoints(n: number): number[] {
  if (n === 1) return [0.5];
  if (n === 2) return [0.25, 0.75];
  if (n === 3) return [0.1, 0.5, 0.9];
  throw new DataError(`numFrames must be 1, 2 or 3 (got ${n})`);
}

export interface CaptionOptions {
  /** e.g. 'http://127.0.0.1:8000/v1' (the path before /chat/completions). */
  baseUrl: string;
  model: string;
  apiKey?: string;
  /** A name from CAPTION_PROMPTS or literal prompt text. Default 'video' / 'image' by the row's kind. */
  prompt?: string;
  numFrames?: 1 | 2 | 3;
  /** Shorter side after shrinking (default 336; 0 disables). */
  resize?: number;
  maxTokens?: number;
  temperature?: number;
  concurrency?: number;
  /** Retries after the first attempt (default 4). */
  retries?: number;
  /** First backoff in ms (default 500); doubles per retry, capped at 30 s. */
  backoffMs?: number;
  timeoutMs?: number;
  /** Output CSV: checkpointed while running, read back to resume. */
  output?: string;
  resume?: boolean;
  checkpointEvery?: number;
  root?: string;
  /** Column to write (default 'text'). */
  column?: string;
  headers?: Record<string, string>;
  /** Injected fetch (default: global fetch). */
  fetch?: typeof fetch;
  /** Injected sleep (tests). */
  sleep?: (ms: number) => Promise<void>;
  logger?: Logger;
  progress?: boolean;
}

export interface CaptionResult {
  rows: DatasetRow[];
  captioned: number;
  skipped: number;
  errors: RowError[];
  /** HTTP attempts made, including retries. */
  requests: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

function retryable(e: unknown): boolean {
  if (e instanceof HttpError) return e.status === 408 || e.status === 409 || e.status === 429 || e.status >= 500;
  return true; // network errors, timeouts, malformed bodies
}

async function frameDataUrls(frames: Frame[], resize: number): Promise<string[]> {
  const out: string[] = [];
  for (let f of frames) {
    if (resize > 0 && (f.width > resize || f.height > resize)) {
      const s = resize / Math.min(f.width, f.height);
      f = await resizeRgb(f, Math.max(1, Math.round(f.width * s)), Math.max(1, Math.round(f.height * s)));
    }
    out.push(`data:image/jpeg;base64,${(await encodeJpeg(f)).toString('base64')}`);
  }
  return out;
}

/** Sends one chat completion request with images; returns the message text. */
export async function requestCaption(
  options: Pick<CaptionOptions, 'baseUrl' | 'model' | 'apiKey' | 'maxTokens' | 'temperature' | 'timeoutMs' | 'headers' | 'fetch'>,
  prompt: string,
  imageUrls: string[],
): Promise<string> {
  const f = options.fetch ?? fetch;
  const url = `${options.baseUrl.replace(/\/+$/, '')}/chat/completions`;
  const body = {
    model: options.model,
    messages: [
      {
        role: 'user',
        content: [...imageUrls.map((u) => ({ type: 'image_url', image_url: { url: u } })), { type: 'text', text: prompt }],
      },
    ],
    max_tokens: options.maxTokens ?? 300,
    temperature: options.temperature ?? 0,
  };
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), options.timeoutMs ?? 120_000);
  try {
    const res = await f(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}), ...(options.headers ?? {}) },
      body: JSON.stringify(body),
      signal: ctl.signal,
    });
    const text = await res.text();
    if (!res.ok) {
      const ra = res.headers.get('retry-after');
      const raMs = ra !== null && /^\d+(\.\d+)?$/.test(ra.trim()) ? Number(ra) * 1000 : undefined;
      throw new HttpError(res.status, `HTTP ${res.status} from ${url}: ${text.slice(0, 200)}`, raMs);
    }
    let json: { choices?: Array<{ message?: { content?: unknown } }> };
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      throw new Error(`response from ${url} is not JSON: ${text.slice(0, 120)}`);
    }
    const content = json.choices?.[0]?.message?.content;
    const out = typeof content === 'string' ? content : Array.isArray(content) ? content.map((p) => (typeof p === 'object' && p && 'text' in p ? String((p as { text: unknown }).text) : '')).join('') : undefined;
    if (out === undefined) throw new Error(`response from ${url} has no choices[0].message.content`);
    return out.replace(/\s*\n+\s*/g, ' ').trim();
  } finally {
    clearTimeout(timer);
  }
}

/** Captions every row of a CSV (path) or rows; see the module comment. */
export async function captionRows(source: string | readonly DatasetRow[], options: CaptionOptions): Promise<CaptionResult> {
  const rows = typeof source === 'string' ? await readDatasetCsv(source) : source.map((r) => ({ ...r }));
  const root = path.resolve(options.root ?? (typeof source === 'string' ? path.dirname(source) : process.cwd()));
  const col = options.column ?? 'text';
  const logger = options.logger ?? createLogger({ name: 'data:caption' });
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const done = new Set<string>();
  if ((options.resume ?? true) && options.output && existsSync(options.output)) {
    const prev = await readDatasetCsv(options.output);
    const outRoot = path.dirname(path.resolve(options.output));
    const byPath = new Map(prev.filter((r) => typeof r[col] === 'string' && (r[col] as string).length > 0).map((r) => [resolveRowPath(r.path, outRoot), r[col] as string]));
    for (const r of rows) {
      const k = resolveRowPath(r.path, root);
      const v = byPath.get(k);
      if (v !== undefined) {
        r[col] = v;
        done.add(k);
      }
    }
  }
  const todo = rows.map((_, i) => i).filter((i) => !done.has(resolveRowPath(rows[i]!.path, root)));
  const numFrames = options.numFrames ?? 1;
  const points = captionFramePoints(numFrames);
  const limit = pLimit(options.concurrency ?? 4);
  const retries = options.retries ?? 4;
  const base = options.backoffMs ?? 500;
  const errors: RowError[] = [];
  let requests = 0;
  let since = 0;
  let writing: Promise<unknown> = Promise.resolve();
  const outRoot = options.output ? path.dirname(path.resolve(options.output)) : root;
  const checkpoint = () => {
    if (!options.output) return writing;
    const snap = rebaseRows(rows, root, outRoot);
    writing = writing.then(() => writeDatasetCsv(options.output!, snap));
    return writing;
  };
  const bar = options.progress ? createProgress({ total: todo.length, label: 'caption', unit: 'rows' }) : null;
  await Promise.all(
    todo.map((i) =>
      limit(async () => {
        const row = rows[i]!;
        const file = resolveRowPath(row.path, root);
        try {
          const kind = mediaKind(file);
          const input = await readScorerInput(file, row, { frames: { points: kind === 'image' ? [0] : points } });
          const frames = kind === 'image' ? input.frames : input.frames.slice(0, numFrames);
          const urls = await frameDataUrls(frames, options.resize ?? 336);
          const name = options.prompt ?? (kind === 'image' ? 'image' : 'video');
          const template = CAPTION_PROMPTS[name] ?? name;
          const prompt = template.replace('{}', typeof row.text === 'string' ? row.text : '');
          let caption: string | undefined;
          for (let attempt = 0; caption === undefined; attempt++) {
            try {
              requests++;
              caption = await requestCaption(options, prompt, urls);
            } catch (e) {
              if (attempt >= retries || !retryable(e)) throw e;
              const wait = e instanceof HttpError && e.retryAfterMs !== undefined ? e.retryAfterMs : Math.min(30_000, base * 2 ** attempt);
              logger.debug(`retry ${attempt + 1}/${retries} for ${row.path} in ${wait} ms: ${errorLine(e)}`);
              await sleep(wait);
            }
          }
          row[col] = caption;
          if (++since >= (options.checkpointEvery ?? 16)) {
            since = 0;
            void checkpoint();
          }
        } catch (e) {
          errors.push({ row: i, path: row.path, error: errorLine(e) });
          logger.warn(`caption failed for ${row.path}: ${errorLine(e)}`);
        } finally {
          bar?.tick();
        }
      }),
    ),
  );
  bar?.done();
  await checkpoint();
  errors.sort((a, b) => a.row - b.row);
  return { rows, captioned: todo.length - errors.length, skipped: rows.length - todo.length, errors, requests };
}
