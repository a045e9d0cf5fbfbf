import { describe, expect, it } from 'vitest';
import {
  approxTokenCount,
  cleanCaption,
  datautilOutputPath,
  dedupRows,
  differenceRows,
  filterRange,
  hasUrl,
  headRows,
  intersectRows,
  isEnglish,
  mergeCmotion,
  mergeRows,
  pyFloat,
  refineLlmCaption,
  shardRows,
  shuffleRows,
  sortRows,
} from '../src/index.js';

describe('caption text', () => {
  it('cleans captions like the T5 cleaner (lower-case, URLs, HTML, handles, ids, punctuation)', () => {
    expect(cleanCaption('A Red Circle  moving LEFT')).toBe('a red circle moving left');
    expect(cleanCaption('Check https://example.com/x now')).toBe('check now');
    expect(cleanCaption('<b>bold</b> cat @someone')).toBe('bold cat');
    expect(cleanCaption('photo IMG_1234.jpg of a dog')).toBe('photo of a dog');
    expect(cleanCaption('this-is-my-cute-cat')).toBe('this is my cute cat');
    expect(cleanCaption('free shipping worldwide shipping sale')).toBe('sale');
    expect(cleanCaption('“quoted” text')).toBe('"quoted" text');
    expect(cleanCaption('hello,world')).toBe('hello, world');
    expect(cleanCaption('size 1920x1080 wallpaper')).toBe('size wallpaper');
    expect(cleanCaption('a%20cat')).toBe('a cat');
  });

  it('refines LLaVA openings', () => {
    expect(refineLlmCaption('The video shows a cat jumping.')).toBe('A cat jumping.');
    expect(refineLlmCaption('the image depicts  two dogs')).toBe('Two dogs');
    expect(refineLlmCaption('In the video, a man walks.')).toBe('A man walks.');
    expect(refineLlmCaption('A cat.')).toBe('A cat.');
  });

  it('detects URLs, English and approximates token counts', () => {
    expect(hasUrl('see http://a.b/c')).toBe(true);
    expect(hasUrl('no link here')).toBe(false);
    expect(isEnglish('a red circle moving left on a blue background')).toBe(true);
    expect(isEnglish('un cercle rouge sur un fond bleu et une voiture')).toBe(false);
    expect(isEnglish('ein roter Kreis auf dem blauen Hintergrund und der Hund')).toBe(false);
    expect(isEnglish('赤い円が左に動く')).toBe(false);
    expect(isEnglish('sunset beach')).toBe(true);
    expect(approxTokenCount('a red circle')).toBe(4);
    expect(approxTokenCount('')).toBe(1);
  });
});

describe('datautil operations', () => {
  const rows = [
    { path: 'a.mp4', text: 'one', num_frames: 10, aes: 4, resolution: 100, cmotion: 'static' },
    { path: 'b.mp4', text: 'two', num_frames: 50, aes: 6, resolution: 400, cmotion: 'pan left' },
    { path: 'c.mp4', text: 'one', num_frames: 30, aes: undefined, resolution: 900, cmotion: 'unknown' },
    { path: 'a.mp4', text: 'dup', num_frames: 10, aes: 5, resolution: 100 },
  ];

  it('filters, dedups, sorts (missing last), merges, shards like np.array_split', () => {
    expect(filterRange(rows, 'num_frames', 20).map((r) => r.path)).toEqual(['b.mp4', 'c.mp4']);
    expect(filterRange(rows, 'aes', 5).map((r) => r.path)).toEqual(['b.mp4', 'a.mp4']);
    expect(filterRange(rows, 'resolution', undefined, 400).length).toBe(3);
    expect(dedupRows(rows, 'path').length).toBe(3);
    expect(dedupRows(rows, 'text').map((r) => r.text)).toEqual(['one', 'two', 'dup']);
    expect(sortRows(rows, 'aes', false).map((r) => r.aes)).toEqual([6, 5, 4, undefined]);
    expect(sortRows(rows, 'aes', true).map((r) => r.aes)).toEqual([4, 5, 6, undefined]);
    expect(differenceRows(rows, [{ path: 'a.mp4' }]).map((r) => r.path)).toEqual(['b.mp4', 'c.mp4']);
    expect(intersectRows([{ path: 'b.mp4', text: 'keep' }], [{ path: 'b.mp4', text: 'other', flow: 2 }])).toEqual([{ path: 'b.mp4', text: 'keep', flow: 2 }]);
    expect(mergeRows([[{ path: 'x', aes: 1 }], [{ path: 'x', flow: 2 }, { path: 'y', flow: 3 }]])).toEqual([{ path: 'x', aes: 1, flow: 2 }, { path: 'y', flow: 3 }]);
    expect(shardRows([1, 2, 3, 4, 5, 6, 7], 3)).toEqual([[1, 2, 3], [4, 5], [6, 7]]);
    expect(headRows(rows, 2).length).toBe(2);
    expect(mergeCmotion(rows).map((r) => r.text)).toEqual(['one The camera is static.', 'two The camera is panning left.', 'one', 'dup']);
  });

  it('shuffles deterministically with a seed', () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ path: `${i}` }));
    const a = shuffleRows(many, 7).map((r) => r.path);
    expect(shuffleRows(many, 7).map((r) => r.path)).toEqual(a);
    expect(shuffleRows(many, 8).map((r) => r.path)).not.toEqual(a);
    expect([...a].sort()).toEqual(many.map((r) => r.path).sort());
  });

  it('names outputs with the reference suffixes in its order', () => {
    expect(datautilOutputPath(['/m/meta.csv'], { info: true, fmin: 1 })).toBe('/m/meta_info_fmin1.csv');
    expect(datautilOutputPath(['/m/meta_clips_info_fmin1_aes.csv'], { aesmin: 5 })).toBe('/m/meta_clips_info_fmin1_aes_aesmin5.0.csv');
    expect(datautilOutputPath(['/m/x.csv'], { fmax: 256, fmin: 128 })).toBe('/m/x_fmin128_fmax256.csv');
    expect(datautilOutputPath(['/m/x.csv'], { aesmin: 0.5, sort: 'aes', cleanCaption: true, removeEmptyCaption: true, refineLlmCaption: true })).toBe('/m/x_sort_noempty_llm_clean_aesmin0.5.csv');
    expect(datautilOutputPath(['/m/a.csv', '/n/b.v2.csv'], { mergeCmotion: true, difference: '/m/done.csv' })).toBe('/m/a+b.v2-done_cmcaption.csv');
    expect(datautilOutputPath(['/m/part*.csv'], { shuffle: true, seed: 3, head: 10, hwmin: 64, ocrmax: 2 })).toBe('/m/part_hwmin64_ocrmax2.0_shuffle3_head10.csv');
    expect(pyFloat(5)).toBe('5.0');
  });
});
