import { mkdtempSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { MetricsLog, readJsonl, renderCurveSvg, lossSeries, writeLossCurvePng } from '../src/index.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'trainer-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('metrics', () => {
  it('appends JSONL, ignores a torn last line, and truncates records past a resume point', async () => {
    const f = path.join(dir, 'log.jsonl');
    const log = new MetricsLog(f);
    for (let s = 1; s <= 6; s++) log.append({ event: 'train', global_step: s, loss: 1 / s, mse: 0.5 / s });
    appendFileSync(f, '{"event":"train","glob');
    expect(readJsonl(f).map((r) => r.global_step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await log.truncateAfter(4)).toBe(2);
    expect(log.read().map((r) => r.global_step)).toEqual([1, 2, 3, 4]);
    expect(readJsonl(path.join(dir, 'missing.jsonl'))).toEqual([]);
  });

  it('draws a loss-curve PNG from the log', async () => {
    const f = path.join(dir, 'curve.jsonl');
    writeFileSync(f, '');
    const log = new MetricsLog(f);
    for (let s = 10; s <= 200; s += 10) log.append({ event: 'train', global_step: s, loss: 2 * Math.exp(-s / 60) + 0.1, mse: Math.exp(-s / 60), vb: 0.05 });
    log.append({ event: 'skip', global_step: 205, reason: 'non-finite loss' });
    const series = lossSeries(log.read());
    expect(series.map((s) => s.name)).toEqual(['loss', 'mse', 'vb']);
    expect(series[0]!.points.length).toBe(20);
    const svg = renderCurveSvg(series, { title: 'a <test>' });
    expect(svg).toContain('&lt;test&gt;');
    const png = path.join(dir, 'loss.png');
    expect(await writeLossCurvePng(f, png)).toBe(20);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 800, 450]);
    // the curve is drawn: some pixels are neither white nor grey
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    let coloured = 0;
    for (let i = 0; i < data.length; i += info.channels) if (Math.abs(data[i]! - data[i + 2]!) > 60) coloured++;
    expect(coloured).toBeGreaterThan(200);
  });
});
