import { describe, expect, it } from 'vitest';
import { adaptiveCuts, formatTimecode, formatTimestampColumn, parseTimecode, parseTimestampColumn, rgbToHsvPlanar } from '../src/index.js';

describe('scene detector parts', () => {
  it('converts RGB to OpenCV 8-bit HSV', () => {
    const px = Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0, 128, 128, 128, 0, 0, 0, 255, 128, 0]);
    const h = new Uint8Array(7);
    const s = new Uint8Array(7);
    const v = new Uint8Array(7);
    rgbToHsvPlanar(px, 7, h, s, v);
    expect(Array.from(h)).toEqual([0, 60, 120, 30, 0, 0, 15]);
    expect(Array.from(s)).toEqual([255, 255, 255, 255, 0, 0, 255]);
    expect(Array.from(v)).toEqual([255, 255, 255, 255, 128, 0, 255]);
  });

  it('declares a cut where content / neighbour mean >= 3 and content >= 15, at least min_scene_len apart', () => {
    const vals = new Array(60).fill(2);
    vals[0] = 0;
    vals[20] = 40; // clear cut
    vals[25] = 40; // too close to the previous one (min_scene_len 15)
    vals[45] = 12; // high ratio but content below 15
    vals[50] = 30;
    vals[51] = 30; // neighbours raise the mean: 30 / ((2+30+2+2)/4) = 3.33 >= 3 -> cut at 50; 51 is too close
    expect(adaptiveCuts(vals)).toEqual([20, 50]);
    expect(adaptiveCuts(vals, { minSceneLen: 3 })).toEqual([20, 25, 50, 51]);
    expect(adaptiveCuts(new Array(30).fill(0))).toEqual([]);
    // all-zero neighbours with content >= 15: ratio 255
    const z = new Array(30).fill(0);
    z[16] = 16;
    expect(adaptiveCuts(z)).toEqual([16]);
  });

  it('formats and parses timecodes and the Python-repr timestamp column', () => {
    expect(formatTimecode(0)).toBe('00:00:00.000');
    expect(formatTimecode(3725.5)).toBe('01:02:05.500');
    expect(formatTimecode(13 / 24)).toBe('00:00:00.542');
    expect(parseTimecode('01:02:05.500')).toBe(3725.5);
    const cell = formatTimestampColumn([
      ['00:00:00.000', '00:00:01.500'],
      ['00:00:01.500', '00:00:03.000'],
    ]);
    expect(cell).toBe("[('00:00:00.000', '00:00:01.500'), ('00:00:01.500', '00:00:03.000')]");
    expect(parseTimestampColumn(cell)).toEqual([
      ['00:00:00.000', '00:00:01.500'],
      ['00:00:01.500', '00:00:03.000'],
    ]);
    expect(parseTimestampColumn('[["00:00:00.000", "00:00:02.000"]]')).toEqual([['00:00:00.000', '00:00:02.000']]);
    expect(parseTimestampColumn('[]')).toEqual([]);
    expect(() => parseTimestampColumn('[1, 2]')).toThrow(/no \(start, end\) pairs/);
  });
});
