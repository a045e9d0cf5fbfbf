import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError, readDatasetCsv, readDatasetCsvSync, rebaseRows, resolveRowPath, writeDatasetCsv, columnsOf } from '../src/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('dataset CSV', () => {
  it('round-trips typed rows, keeps extra columns, quotes commas and quotes', async () => {
    const file = path.join(tmp.dir, 'a.csv');
    const rows = [
      { path: 'media/a.mp4', text: 'a red circle, "moving" left', num_frames: 16, height: 32, width: 48, aspect_ratio: 32 / 48, fps: 24, resolution: 1536, aes: 5.5, extra: 'x' },
      { path: 'media/b.png', text: '', num_frames: 1, height: 8, width: 8, aspect_ratio: 1, fps: undefined, resolution: 64, aes: undefined, extra: 'y' },
    ];
    await writeDatasetCsv(file, rows);
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n')[0]).toBe('path,text,num_frames,height,width,aspect_ratio,fps,resolution,aes,extra');
    expect(text).toContain('"a red circle, ""moving"" left"');
    const back = await readDatasetCsv(file);
    expect(back).toEqual(rows);
    expect(readDatasetCsvSync(file)).toEqual(rows);
    expect(columnsOf(back)).toEqual(['path', 'text', 'num_frames', 'height', 'width', 'aspect_ratio', 'fps', 'resolution', 'aes', 'extra']);
  });

  it('infers numeric extra columns, reads NaN/empty as missing', async () => {
    const file = path.join(tmp.dir, 'b.csv');
    writeFileSync(file, 'path,sharpness,label\nx.mp4,1.5,cat\ny.mp4,nan,\n');
    const rows = await readDatasetCsv(file);
    expect(rows).toEqual([
      { path: 'x.mp4', sharpness: 1.5, label: 'cat' },
      { path: 'y.mp4', sharpness: undefined, label: undefined },
    ]);
  });

  it('schema errors name the file, row, line and column', async () => {
    const file = path.join(tmp.dir, 'bad.csv');
    writeFileSync(file, 'path,text,num_frames,height,width\nok.mp4,t,16,32,32\nbad.mp4,t,sixteen,32,32\nneg.mp4,t,16,-3,32\n,t,1,1,1\n');
    const err = await readDatasetCsv(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    const e = err as DataError;
    expect(e.code).toBe('E_DATA');
    expect(e.message).toContain(file);
    expect(e.message).toContain("row 2 (line 3), column 'num_frames': 'sixteen' is not a non-negative integer");
    expect(e.message).toContain("row 3 (line 4), column 'height': '-3' is not a non-negative integer");
    expect(e.message).toContain("row 4 (line 5), column 'path': '' is not a non-empty path");
    expect((e.details.issues as unknown[]).length).toBe(3);
  });

  it('reports a missing required column and a malformed file', async () => {
    const f1 = path.join(tmp.dir, 'nopath.csv');
    writeFileSync(f1, 'file,text\na,b\n');
    await expect(readDatasetCsv(f1)).rejects.toThrow(/missing required column 'path'/);
    await expect(readDatasetCsv(f1, { requirePath: false, requiredColumns: ['num_frames'] })).rejects.toThrow(/missing required column 'num_frames'/);
    const f2 = path.join(tmp.dir, 'ragged.csv');
    writeFileSync(f2, 'path,text\na.mp4,b,c\n');
    await expect(readDatasetCsv(f2)).rejects.toThrow(/malformed CSV/);
    await expect(readDatasetCsv(path.join(tmp.dir, 'absent.csv'))).rejects.toThrow(/not found/);
  });

  it('resolves relative paths against the CSV folder and rebases them when a table moves', () => {
    expect(resolveRowPath('media/a.mp4', '/data/set')).toBe('/data/set/media/a.mp4');
    expect(resolveRowPath('/abs/a.mp4', '/data/set')).toBe('/abs/a.mp4');
    expect(resolveRowPath('https://x.org/a.mp4', '/data/set')).toBe('https://x.org/a.mp4');
    expect(rebaseRows([{ path: 'media/a.mp4' }, { path: '/abs/b.mp4' }], '/data/set', '/data/out')).toEqual([{ path: '../set/media/a.mp4' }, { path: '/abs/b.mp4' }]);
  });

  it('writes atomically and only CSV', async () => {
    await expect(writeDatasetCsv(path.join(tmp.dir, 'x.parquet'), [{ path: 'a' }])).rejects.toThrow(/only CSV/);
  });
});
