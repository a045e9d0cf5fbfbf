import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDatasetCsv, writeRandomClip, type DatasetRow } from '@opensora/data';
import { cli, expectOneLineError } from './helpers.js';



let dir: string;
let csv: string;
let synthRows: DatasetRow[];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'oscli-data-'));
  const r = await cli(['data', 'synth', '--out', dir, '--videos', '4', '--images', '2', '--seed', '3']);
  expect(r.code, r.stderr).toBe(0);
  csv = path.join(dir, 'synth.csv');
  synthRows = await readDatasetCsv(csv);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('opensora data synth', () => {
  it('writes media and a CSV with exact captions', () => {
    expect(synthRows).toHaveLength(6);
    expect(synthRows.filter((r) => r.num_frames === 1)).toHaveLength(2);
    for (const r of synthRows) {
      expect(existsSync(path.join(dir, r.path))).toBe(true);
      expect(r.text).toMatch(/^an? \w+ \w+( moving \w+)? on an? \w+ background/);
    }
  });

  it('draws clips from --lengths, --fps and --sizes, with --cut-fraction of them cut', async () => {
    const out = path.join(dir, 'shaped');
    const r = await cli(['data', 'synth', '--out', out, '--videos', '4', '--images', '1', '--seed', '5', '--lengths', '9', '10', '--fps', '12', '--sizes', '32x48', '--cut-fraction', '0.5']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('4 video(s) (2 with hard cuts) and 1 image(s)');
    const rows = await readDatasetCsv(path.join(out, 'synth.csv'));
    const videos = rows.filter((x) => x.num_frames !== 1);
    expect(videos).toHaveLength(4);
    for (const v of videos) {
      expect([9, 10]).toContain(v.num_frames);
      expect(v.fps).toBe(12);
    }
    for (const x of rows) expect([x.height, x.width]).toEqual([32, 48]);
    expect(videos.filter((v) => v.cuts)).toHaveLength(2);
    const none = await cli(['data', 'synth', '--out', path.join(dir, 'uncut'), '--videos', '2', '--images', '0', '--lengths', '8', '--cut-fraction', '0']);
    expect(none.stdout).toContain('(0 with hard cuts)');
  });

  it('bad --lengths, --fps, --sizes or --cut-fraction end with a one-line error and exit 2', async () => {
    for (const [flag, ...values] of [
      ['--lengths', '8', 'x'],
      ['--lengths', '0'],
      ['--fps', '-3'],
      ['--sizes', '32by32'],
      ['--sizes', '33x32'],
      ['--sizes', '4x4'],
      ['--cut-fraction', '1.5'],
    ] as const) {
      const r = await cli(['data', 'synth', '--out', path.join(dir, 'bad'), flag, ...values]);
      expect(r.code, `${flag} ${values.join(' ')}`).toBe(2);
      expectOneLineError(r.stderr);
      expect(r.stderr).toContain(flag);
    }
  });
});

describe('opensora data info', () => {
  it('probes every row, reports unreadable files and keeps them out', async () => {
    const bad = path.join(dir, 'with-bad.csv');
    writeFileSync(path.join(dir, 'not-a-video.mp4'), 'this is text\n');
    const lines = ['path,text', ...synthRows.map((r) => `${r.path},"${r.text}"`), 'missing.mp4,gone', 'not-a-video.mp4,text file'];
    writeFileSync(bad, lines.join('\n') + '\n');
    const r = await cli(['data', 'info', bad]);
    expect(r.code, r.stderr).toBe(0);
    const out = path.join(dir, 'with-bad_info.csv');
    expect(r.stdout).toContain(out);
    expect(r.stderr).toContain('missing.mp4');
    expect(r.stderr).toContain('not-a-video.mp4');
    const rows = await readDatasetCsv(out);
    expect(rows.map((x) => x.path)).toEqual(synthRows.map((x) => x.path));
    for (const [i, x] of rows.entries()) {
      const s = synthRows[i]!;
      expect([x.num_frames, x.height, x.width]).toEqual([s.num_frames, s.height, s.width]);
      expect(x.aspect_ratio).toBeCloseTo(s.height! / s.width!, 6);
      if (s.num_frames! > 1) expect(x.fps).toBe(s.fps);
    }
  });
});

describe('opensora data filter', () => {
  it('filters by frames and names the output with the reference suffixes', async () => {
    const r = await cli(['data', 'filter', csv, '--fmin', '2']);
    expect(r.code, r.stderr).toBe(0);
    const rows = await readDatasetCsv(path.join(dir, 'synth_fmin2.csv'));
    expect(rows.map((x) => x.path)).toEqual(synthRows.filter((x) => x.num_frames! >= 2).map((x) => x.path));
    expect(r.stdout).toContain('fmin/fmax: 6 -> 4 rows');
  });

  it('shuffles with a seed and takes the head', async () => {
    const a = await cli(['data', 'filter', csv, '--shuffle', '--seed', '5', '--head', '3']);
    expect(a.code, a.stderr).toBe(0);
    const f = path.join(dir, 'synth_shuffle5_head3.csv');
    const first = readFileSync(f, 'utf8');
    expect((await readDatasetCsv(f)).length).toBe(3);
    await cli(['data', 'filter', csv, '--shuffle', '--seed', '5', '--head', '3']);
    expect(readFileSync(f, 'utf8')).toBe(first);
  });

  it('refuses to run with nothing to do (it would overwrite the input)', async () => {
    const r = await cli(['data', 'filter', csv]);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr);
    expect(r.stderr).toContain('nothing to do');
  });
});

describe('opensora data cut', () => {
  it('detects the hard cuts and cuts frame-exact clips', async () => {
    const videos = path.join(dir, 'videos.csv');
    const vrows = synthRows.filter((x) => x.num_frames! > 1);
    writeFileSync(videos, ['path,num_frames,fps', ...vrows.map((x) => `${x.path},${x.num_frames},${x.fps}`)].join('\n') + '\n');
    const clips = path.join(dir, 'clips');
    const r = await cli(['data', 'cut', videos, '--save-dir', clips, '--min-scene-len', '3']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(path.join(dir, 'videos_timestamp.csv'))).toBe(true);
    const out = await readDatasetCsv(path.join(dir, 'videos_clips.csv'));
    // Every video is partitioned into its scenes: the clips' frames add up to the video's.
    for (const v of vrows) {
      const stem = path.basename(v.path, '.mp4');
      const mine = out.filter((c) => path.basename(c.path).startsWith(`${stem}_scene-`));
      const cuts = synthRows.find((s) => s.path === v.path)!.cuts;
      expect(mine.length).toBe(cuts ? (JSON.parse(String(cuts)) as number[]).length + 1 : 1);
      expect(mine.reduce((a, c) => a + c.num_frames!, 0)).toBe(v.num_frames);
      for (const c of mine) expect(existsSync(path.join(dir, c.path))).toBe(true);
    }
    expect(out.some((c) => /_scene-1\.mp4$/.test(c.path))).toBe(true);
  });
});

describe('opensora data score', () => {
  it('scores motion into flow, and a re-run resumes', async () => {
    const r = await cli(['data', 'score', csv, '--scorer', 'motion']);
    expect(r.code, r.stderr).toBe(0);
    const f = path.join(dir, 'synth_flow.csv');
    const rows = await readDatasetCsv(f);
    expect(rows).toHaveLength(6);
    for (const x of rows) {
      expect(Number.isFinite(x.flow)).toBe(true);
      if (x.num_frames! > 1) expect(x.flow!).toBeGreaterThan(0);
      else expect(x.flow).toBe(0);
    }
    const again = await cli(['data', 'score', csv, '--scorer', 'motion']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('scored 0 row(s)');
    expect(again.stdout).toContain('6 already scored');
  });

  it('scores sharpness', async () => {
    const r = await cli(['data', 'score', csv, '--scorer', 'sharpness', '-o', path.join(dir, 'sharp.csv')]);
    expect(r.code, r.stderr).toBe(0);
    const rows = await readDatasetCsv(path.join(dir, 'sharp.csv'));
    for (const x of rows) expect(x.sharpness as number).toBeGreaterThan(0);
  });

  it('scores aesthetic (--clip, --mlp) and match (--clip, --tokenizer, or the tokenizer beside the weights) with tiny CLIP weights', async () => {
    const w = await writeRandomClip(path.join(dir, 'clip'), { seed: 4 });
    const aes = await cli(['data', 'score', csv, '--scorer', 'aesthetic', '--clip', w.clip, '--mlp', w.mlp, '-o', path.join(dir, 'aes.csv'), '--workers', '2']);
    expect(aes.code, aes.stderr).toBe(0);
    expect(aes.stdout).toContain("scored 6 row(s) into column 'aes'");
    const aesRows = await readDatasetCsv(path.join(dir, 'aes.csv'));
    expect(aesRows.map((x) => x.path)).toEqual(synthRows.map((x) => x.path));
    for (const x of aesRows) expect(Number.isFinite(x.aes)).toBe(true);
    expect(new Set(aesRows.map((x) => x.aes)).size).toBeGreaterThan(1);
    for (const args of [['--tokenizer', w.tokenizer], []]) {
      const out = path.join(dir, `match${args.length}.csv`);
      const m = await cli(['data', 'score', csv, '--scorer', 'match', '--clip', w.clip, ...args, '-o', out]);
      expect(m.code, m.stderr).toBe(0);
      for (const x of await readDatasetCsv(out)) expect(Math.abs(x.match as number)).toBeLessThanOrEqual(100);
    }
    // a model-based scorer with missing files ends with one line and exit 2
    const noTok = await cli(['data', 'score', csv, '--scorer', 'match', '--clip', w.clip, '--tokenizer', path.join(dir, 'nope.json')]);
    expect(noTok.code).toBe(2);
    expectOneLineError(noTok.stderr);
    expect(noTok.stderr).toContain('nope.json');
  });

  it('rejects an unknown scorer and a model-based scorer without its weights', async () => {
    const a = await cli(['data', 'score', csv, '--scorer', 'nope']);
    expect(a.code).toBe(2);
    expectOneLineError(a.stderr);
    const b = await cli(['data', 'score', csv, '--scorer', 'aesthetic']);
    expect(b.code).toBe(2);
    expectOneLineError(b.stderr);
  });
});

describe('opensora data caption', () => {
  let server: Server;
  let base: string;
  let requests = 0;
  let fail = false;
  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        requests++;
        if (fail) {
          res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad request"}');
          return;
        }
        const msg = JSON.parse(body) as { messages: Array<{ content: Array<{ type: string }> }> };
        const images = msg.messages[0]!.content.filter((c) => c.type === 'image_url').length;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ choices: [{ message: { content: `caption with ${images} image(s)` } }] }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('captions every row through the endpoint and resumes', async () => {
    const r = await cli(['data', 'caption', csv, '--endpoint', base, '--concurrency', '2']);
    expect(r.code, r.stderr).toBe(0);
    const rows = await readDatasetCsv(path.join(dir, 'synth_caption.csv'));
    expect(rows.map((x) => x.text)).toEqual(rows.map(() => 'caption with 1 image(s)'));
    expect(requests).toBe(6);
    const again = await cli(['data', 'caption', csv, '--endpoint', base]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('6 already captioned');
    expect(requests).toBe(6);
  });

  it('fails with exit 1 when every request fails', async () => {
    fail = true;
    const r = await cli(['data', 'caption', csv, '--endpoint', base, '-o', path.join(dir, 'cap-fail.csv')]);
    fail = false;
    expect(r.code).toBe(1);
    const last = r.stderr.trim().split('\n').pop()!;
    expect(last).toMatch(/^opensora: error: captioning failed for all 6 row\(s\).*HTTP 400/);
  });
});

describe('opensora data merge / split / stats', () => {
  it('merges on path (union) and intersects', async () => {
    const head = path.join(dir, 'synth_shuffle5_head3.csv');
    const flow = path.join(dir, 'synth_flow.csv');
    const m = await cli(['data', 'merge', head, flow, '-o', path.join(dir, 'merged.csv')]);
    expect(m.code, m.stderr).toBe(0);
    const merged = await readDatasetCsv(path.join(dir, 'merged.csv'));
    expect(merged).toHaveLength(6);
    expect(merged.every((x) => Number.isFinite(x.flow))).toBe(true);
    const i = await cli(['data', 'merge', flow, head, '--intersection', '-o', path.join(dir, 'inter.csv')]);
    expect(i.code, i.stderr).toBe(0);
    const inter = await readDatasetCsv(path.join(dir, 'inter.csv'));
    const headRows = await readDatasetCsv(head);
    expect(new Set(inter.map((x) => x.path))).toEqual(new Set(headRows.map((x) => x.path)));
  });

  it('splits into N shards', async () => {
    const r = await cli(['data', 'split', csv, '-n', '4']);
    expect(r.code, r.stderr).toBe(0);
    const sizes = [];
    for (let k = 0; k < 4; k++) sizes.push((await readDatasetCsv(path.join(dir, `synth_${k}.csv`))).length);
    expect(sizes).toEqual([2, 2, 1, 1]);
    const one = await cli(['data', 'split', csv, '-n', '1', '--shuffle', '--seed', '1']);
    expect(one.code, one.stderr).toBe(0);
    expect((await readDatasetCsv(path.join(dir, 'synth_shuffle1_0.csv'))).length).toBe(6);
  });

  it('prints stats and draws the PNG', async () => {
    const png = path.join(dir, 'stats.png');
    const r = await cli(['data', 'stats', csv, '--png', png]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rows 6\s+videos 4\s+images 2/);
    expect(r.stdout).toContain('caption tokens');
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 1000, 700]);
  });
});

describe('opensora data: bad input', () => {
  it('a missing CSV ends with a one-line error and exit 2', async () => {
    const r = await cli(['data', 'info', path.join(dir, 'nope.csv')]);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr);
    expect(r.stderr).toContain('nope.csv');
  });

  it('a malformed CSV value names the row and column', async () => {
    const f = path.join(dir, 'badvalue.csv');
    writeFileSync(f, 'path,num_frames\na.mp4,12\nb.mp4,many\n');
    const r = await cli(['data', 'stats', f]);
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr);
    expect(r.stderr).toMatch(/row 2 .*column 'num_frames'/);
  });

  it('an unknown flag or a bad value ends with exit 2', async () => {
    const a = await cli(['data', 'info', csv, '--bogus']);
    expect(a.code).toBe(2);
    expectOneLineError(a.stderr);
    expect(a.stderr).toContain('--bogus');
    const b = await cli(['data', 'split', csv, '-n', 'abc']);
    expect(b.code).toBe(2);
    expectOneLineError(b.stderr);
    const c = await cli(['data', 'split', csv, '-n', '0']);
    expect(c.code).toBe(2);
    expectOneLineError(c.stderr);
    const d = await cli(['data', 'cut', csv]);
    expect(d.code).toBe(2);
    expectOneLineError(d.stderr);
  });
});
