/** The captioning client against a small OpenAI-compatible server on 127.0.0.1 started here. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@opensora/core';
import { CAPTION_PROMPTS, captionFramePoints, captionRows, readDatasetCsv, synthesizeDataset, writeDatasetCsv, type SynthResult } from '../src/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('osdata-caption-');
let synth: SynthResult;
let server: http.Server;
let baseUrl = '';
let inFlight = 0;
let maxInFlight = 0;
const seenBodies: Array<{ images: Array<{ w: number; h: number }>; prompt: string; auth: string | undefined; model: string }> = [];
const failuresLeft = new Map<string, number>();
let requests = 0;

beforeAll(async () => {
  synth = await synthesizeDataset({ outDir: tmp.dir, seed: 4, numVideos: 4, numImages: 2, sizes: [[48, 64]], imageSizes: [[400, 600]], lengths: [12], fps: [12], cutFraction: 0 });
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', async () => {
      requests++;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        await new Promise((r) => setTimeout(r, 30));
        const j = JSON.parse(body) as { model: string; messages: Array<{ content: Array<{ type: string; text?: string; image_url?: { url: string } }> }> };
        const parts = j.messages[0]!.content;
        const prompt = parts.find((p) => p.type === 'text')!.text!;
        const images = [];
        for (const p of parts.filter((q) => q.type === 'image_url')) {
          const b64 = p.image_url!.url.replace(/^data:image\/jpeg;base64,/, '');
          const m = await sharp(Buffer.from(b64, 'base64')).metadata();
          images.push({ w: m.width!, h: m.height! });
        }
        seenBodies.push({ images, prompt, auth: req.headers.authorization, model: j.model });
        // key of the request: size of the first image + the prompt (stable per row)
        const key = `${images.length}:${images[0]!.w}x${images[0]!.h}`;
        const left = failuresLeft.get(key) ?? 0;
        if (left > 0) {
          failuresLeft.set(key, left - 1);
          res.writeHead(left % 2 ? 503 : 429, { 'content-type': 'application/json', 'retry-after': '0' });
          res.end('{"error":"busy"}');
          return;
        }
        if (prompt.includes('FORBIDDEN')) {
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end('{"error":"bad request"}');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ message: { role: 'assistant', content: `A scene with ${images.length} frame(s)\nof ${images[0]!.w}x${images[0]!.h}.` } }] }));
      } finally {
        inFlight--;
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  tmp.cleanup();
});

const quiet = createLogger({ name: 't', level: 'silent' });

describe('captioning client', () => {
  it('samples frames at the reference points', () => {
    expect(captionFramePoints(1)).toEqual([0.5]);
    expect(captionFramePoints(2)).toEqual([0.25, 0.75]);
    expect(captionFramePoints(3)).toEqual([0.1, 0.5, 0.9]);
  });

  it('captions every row with bounded concurrency, retries with backoff, shrinks big frames to 336', async () => {
    failuresLeft.set('3:64x48', 2); // every video's first two attempts fail (503 then 429)
    const sleeps: number[] = [];
    const out = path.join(tmp.dir, 'caption.csv');
    const res = await captionRows(synth.csvPath, {
      baseUrl,
      model: 'llava-test',
      apiKey: 'k1',
      numFrames: 3,
      concurrency: 2,
      retries: 8,
      backoffMs: 1,
      output: out,
      logger: quiet,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    expect(res.errors).toEqual([]);
    expect(res.captioned).toBe(6);
    expect(maxInFlight).toBeLessThanOrEqual(2);
    const rows = await readDatasetCsv(out);
    rows.forEach((r, i) => {
      if (synth.items[i]!.kind === 'video') expect(r.text).toBe('A scene with 3 frame(s) of 64x48.');
      else expect(r.text).toBe('A scene with 1 frame(s) of 504x336.'); // 400x600 image: shorter side 336
      expect(r.num_frames).toBe(synth.rows[i]!.num_frames);
    });
    expect(sleeps.length).toBe(2); // Retry-After: 0 honoured, no exponential wait needed
    expect(sleeps.every((s) => s === 0)).toBe(true);
    expect(seenBodies.every((b) => b.auth === 'Bearer k1' && b.model === 'llava-test')).toBe(true);
    expect(seenBodies.find((b) => b.images.length === 3)!.prompt).toBe(CAPTION_PROMPTS.video);
    expect(seenBodies.find((b) => b.images.length === 1)!.prompt).toBe(CAPTION_PROMPTS.image);
  });

  it('resumes: a re-run skips captioned rows and captions only the missing ones', async () => {
    const out = path.join(tmp.dir, 'caption.csv');
    const rows = await readDatasetCsv(out);
    await writeDatasetCsv(out, rows.map((r, i) => (i === 1 || i === 4 ? { ...r, text: '' } : r)));
    const before = requests;
    const res = await captionRows(synth.csvPath, { baseUrl, model: 'm', output: out, logger: quiet, numFrames: 3 });
    expect(res.skipped).toBe(4);
    expect(res.captioned).toBe(2);
    expect(requests - before).toBe(2);
    expect((await readDatasetCsv(out)).map((r) => r.text)).toEqual(rows.map((r) => r.text));
  });

  it('uses exponential backoff without Retry-After, gives up on permanent errors, reports the row', async () => {
    const sleeps: number[] = [];
    const fetchNoRetryAfter: typeof fetch = async (url, init) => {
      const r = await fetch(url, init);
      const headers = new Headers(r.headers);
      headers.delete('retry-after');
      return new Response(await r.text(), { status: r.status, headers });
    };
    failuresLeft.set('1:64x48', 3);
    const rows = [synth.rows[0]!, { ...synth.rows[1]!, text: 'FORBIDDEN' }];
    const res = await captionRows(rows, {
      baseUrl,
      model: 'm',
      root: tmp.dir,
      prompt: 'video-text',
      numFrames: 1,
      backoffMs: 100,
      retries: 5,
      fetch: fetchNoRetryAfter,
      logger: quiet,
      concurrency: 1,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    expect(sleeps).toEqual([100, 200, 400]);
    expect(res.rows[0]!.text).toBe('A scene with 1 frame(s) of 64x48.');
    expect(res.errors.length).toBe(1);
    expect(res.errors[0]!.row).toBe(1);
    expect(res.errors[0]!.error).toMatch(/HTTP 400/);
    expect(seenBodies[seenBodies.length - 1]!.prompt).toContain('"FORBIDDEN"');
  });
});
