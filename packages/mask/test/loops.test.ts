import { describe, expect, it } from 'vitest';
import {
  animateImage,
  connectClips,
  DEFAULT_CONDITION_FRAME_LENGTH,
  editVideo,
  extendVideo,
  longVideo,
  loopTotalFrames,
  MaskError,
  parseMaskStrategy,
  planLoops,
  planSampleMask,
} from '../src/index.js';

describe('planLoops', () => {
  it('the docs example: T=32, L=8, 16 loops gives 392 frames', () => {
    const plan = planLoops({ numFrames: 32, conditionFrameLength: 8, loop: 16 });
    expect(plan.totalFrames).toBe(392);
    expect(loopTotalFrames(32, 8, 16)).toBe(392);
    expect(plan.loops).toHaveLength(16);
    const last = plan.loops[15]!;
    expect(last.outputEnd).toBe(392);
  });

  it('chains each loop on the last L frames of the previous clip, as the reference builds the strategy', () => {
    const plan = planLoops({ numFrames: 16, conditionFrameLength: 4, loop: 3, strategy: '0', referenceCount: 1 });
    const [l0, l1, l2] = plan.loops as [(typeof plan.loops)[0], (typeof plan.loops)[0], (typeof plan.loops)[0]];
    expect(l0).toMatchObject({ loopIndex: 0, previousClipRef: null, chainGroup: null, strategy: '0', keepFrom: 0, outputStart: 0, outputEnd: 16 });
    expect(l0.conditionFrames).toEqual([]);
    expect(l1.strategy).toBe('0;1,1,-4,0,4');
    expect(l1.previousClipRef).toBe(1);
    expect(l1.chainGroup).toEqual({ loopId: 1, refId: 1, refStart: -4, targetStart: 0, length: 4, editRatio: 0 });
    expect(l1.conditionFrames).toEqual([12, 13, 14, 15]);
    expect(l1.conditionOutputFrames).toEqual([12, 13, 14, 15]);
    expect(l1).toMatchObject({ keepFrom: 4, outputStart: 16, outputEnd: 28 });
    expect(l2.strategy).toBe('0;1,1,-4,0,4;2,2,-4,0,4');
    expect(l2.conditionOutputFrames).toEqual([24, 25, 26, 27]);
    expect(l2).toMatchObject({ keepFrom: 4, outputStart: 28, outputEnd: 40 });
    expect(plan.totalFrames).toBe(40);
    // The kept ranges tile the output exactly.
    let next = 0;
    for (const s of plan.loops) {
      expect(s.outputStart).toBe(next);
      expect(s.outputEnd - s.outputStart).toBe(16 - s.keepFrom);
      next = s.outputEnd;
    }
    expect(next).toBe(plan.totalFrames);
  });

  it('without a strategy the chain group stands alone; without referenceCount it names the last reference', () => {
    const plan = planLoops({ numFrames: 8, conditionFrameLength: 2, loop: 2 });
    expect(plan.loops[0]!.strategy).toBeNull();
    expect(plan.loops[1]!.strategy).toBe('1,-1,-2,0,2');
    expect(plan.conditionFrameLength).toBe(2);
  });

  it('plans and validates every loop up front when reference lengths are known', () => {
    const plan = planLoops({ numFrames: 8, conditionFrameLength: 3, loop: 3, strategy: '0,0,0,0,8', referenceLengths: [16] });
    expect(plan.loops[0]!.mask).toEqual(new Array(8).fill(0));
    expect(plan.loops[0]!.placements![7]).toEqual({ ref: 0, frame: 7 });
    expect(plan.loops[2]!.referenceLengths).toEqual([16, 8, 8]);
    expect(plan.loops[2]!.mask).toEqual([0, 0, 0, 1, 1, 1, 1, 1]);
    expect(plan.loops[2]!.placements!.slice(0, 3)).toEqual([5, 6, 7].map((frame) => ({ ref: 2, frame })));
    // The same as planning the loop's strategy directly.
    expect(plan.loops[1]!.mask).toEqual(planSampleMask(plan.loops[1]!.strategy, { loopIndex: 1, targetFrames: 8, referenceLengths: [16, 8] }).mask);
    // A bad group for a later loop fails before anything is generated.
    expect(() => planLoops({ numFrames: 8, conditionFrameLength: 3, loop: 3, strategy: '0;2,0,0,6,4', referenceLengths: [1] })).toThrow(
      expect.objectContaining({ code: 'E_MASK_PLACEMENT', group: 1 }),
    );
  });

  it('a single loop is the plain clip; the default L is 4', () => {
    expect(DEFAULT_CONDITION_FRAME_LENGTH).toBe(4);
    const one = planLoops({ numFrames: 2, loop: 1 });
    expect(one.totalFrames).toBe(2);
    expect(one.loops).toHaveLength(1);
    expect(planLoops({ numFrames: 16, loop: 2 }).totalFrames).toBe(28);
  });

  it('validates 0 < L < T, integer counts, and the strategy', () => {
    const bad = (args: Parameters<typeof planLoops>[0], re: RegExp) => expect(() => planLoops(args)).toThrow(re);
    bad({ numFrames: 16, conditionFrameLength: 16, loop: 2 }, /between 1 and numFrames - 1 = 15/);
    bad({ numFrames: 16, conditionFrameLength: 0, loop: 2 }, /between 1/);
    bad({ numFrames: 16, conditionFrameLength: 4, loop: 0 }, /loop must be an integer >= 1/);
    bad({ numFrames: 0, conditionFrameLength: 4, loop: 1 }, /numFrames/);
    bad({ numFrames: 16, conditionFrameLength: 4, loop: 2, strategy: '0;' }, /group 2 of 2 is empty/);
    bad({ numFrames: 16, conditionFrameLength: 4, loop: 2, referenceCount: 2, referenceLengths: [1] }, /disagree/);
  });
});

describe('recipes', () => {
  it('write the documented strategies', () => {
    expect(animateImage()).toBe('0');
    expect(animateImage({ at: 'end' })).toBe('0,0,0,-1,1');
    expect(animateImage({ at: 5, editRatio: 0.2, ref: 1, loop: 2 })).toBe('2,1,0,5,1,0.2');
    expect(extendVideo({ frames: 8 })).toBe('0,0,-8,0,8');
    expect(extendVideo({ frames: 8, direction: 'backward' })).toBe('0,0,0,-8,8');
    expect(editVideo({ frames: 32, editRatio: 0.4 })).toBe('0,0,0,0,32,0.4');
    expect(editVideo({ frames: 8, editRatio: 0.3 })).toBe('0,0,0,0,8,0.3');
    expect(connectClips()).toBe('0,0,-1,0,1;0,1,0,-1,1');
    expect(connectClips({ frames: 4, first: 2, second: 0 })).toBe('0,2,-4,0,4;0,0,0,-4,4');
  });

  it('plan to the same masks as the docs strings', () => {
    const same = (a: string, b: string, T: number, refs: number[]) =>
      expect(planSampleMask(a, { targetFrames: T, referenceLengths: refs })).toEqual(planSampleMask(b, { targetFrames: T, referenceLengths: refs }));
    same(animateImage(), '0', 16, [1]);
    same(connectClips(), '0;0,1,0,-1,1', 16, [1, 1]);
    same(extendVideo({ frames: 8, direction: 'backward' }), '0,0,0,-8,8', 16, [16]);
    same(editVideo({ frames: 32, editRatio: 0.4 }), '0,0,0,0,32,0.4', 32, [32]);
    const fwd = planSampleMask(extendVideo({ frames: 4 }), { targetFrames: 16, referenceLengths: [10] });
    expect(fwd.placements.slice(0, 4)).toEqual([6, 7, 8, 9].map((frame) => ({ ref: 0, frame })));
    expect(fwd.mask.slice(0, 5)).toEqual([0, 0, 0, 0, 1]);
    // Connecting two videos takes the end of the first and the start of the second.
    const c = planSampleMask(connectClips({ frames: 2 }), { targetFrames: 8, referenceLengths: [5, 6] });
    expect(c.placements).toEqual([{ ref: 0, frame: 3 }, { ref: 0, frame: 4 }, null, null, null, null, { ref: 1, frame: 0 }, { ref: 1, frame: 1 }]);
  });

  it('longVideo: the docs long-video recipe', () => {
    const plan = longVideo({ numFrames: 16, conditionFrameLength: 8, loop: 16, referenceFrames: 16, referenceLengths: [24] });
    expect(plan.loops[0]!.strategy).toBe('0,0,0,0,16');
    expect(plan.loops[0]!.mask).toEqual(new Array(16).fill(0));
    expect(plan.loops[1]!.strategy).toBe('0,0,0,0,16;1,1,-8,0,8');
    expect(plan.totalFrames).toBe(16 * 8 + 8);
    expect(longVideo({ numFrames: 16, loop: 2 }).loops[0]!.strategy).toBeNull();
  });

  it('all recipe outputs parse; bad inputs throw', () => {
    for (const s of [animateImage(), extendVideo({ frames: 3 }), editVideo({ frames: 2, editRatio: 1 }), connectClips()]) {
      expect(() => parseMaskStrategy(s)).not.toThrow();
    }
    expect(() => extendVideo({ frames: 0 })).toThrow(MaskError);
    expect(() => editVideo({ frames: 4, editRatio: 1.5 })).toThrow(MaskError);
    expect(() => connectClips({ frames: -1 })).toThrow(MaskError);
  });
});
