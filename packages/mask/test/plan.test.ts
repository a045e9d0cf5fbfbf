import { describe, expect, it } from 'vitest';
import { editRatioEntryStep, MaskError, parseMaskStrategy, planMaskStrategy, planSampleMask, type Placement } from '../src/index.js';
import { loadFixture } from './fixtures.js';

interface ApplyCase {
  strategies: Array<string | null>;
  T_target: number;
  reference_lengths: number[][];
  loop_i: number;
  ok: boolean;
  expected_mask_per_frame?: number[][];
  expected_placements?: Array<Array<Placement | null>>;
  error?: { type: string; message: string };
}

const fixture = loadFixture<{
  apply_cases: ApplyCase[];
  p_sample_mask_t_table: { table: Record<string, Record<string, number>> };
}>('mask_strategy_public.json');

/**
 * The issue's rule, independent of the implementation: a successful reference case must also
 * succeed here unless one of its groups (for this loop) reaches outside the clip or the reference
 * (after resolving negative starts once), where the reference clips silently.
 */
function inRangeForIssue(c: ApplyCase): boolean {
  return c.strategies.every((s, i) => {
    if (s === null) return true;
    let groups;
    try {
      groups = parseMaskStrategy(s);
    } catch {
      return false;
    }
    return groups.every((g) => {
      if (g.loopId !== c.loop_i) return true;
      const lens = c.reference_lengths[i]!;
      const ref = g.refId < 0 ? lens.length + g.refId : g.refId;
      if (ref < 0 || ref >= lens.length) return false;
      if (g.length === 0) return true;
      const tref = lens[ref]!;
      const rs = g.refStart < 0 ? tref + g.refStart : g.refStart;
      const ts = g.targetStart < 0 ? c.T_target + g.targetStart : g.targetStart;
      return ts >= 0 && ts + g.length <= c.T_target && rs >= 0 && rs < tref && (tref === 1 || rs + g.length <= tref);
    });
  });
}

// The public cases where the reference succeeds only by clipping or by wrapping a negative index twice.
const CLIPPED_BY_REFERENCE = ['0,0,0,12,8', '0,0,-20,0,1', '0,0,0,-20,1'];

describe('planMaskStrategy against the reference fixture', () => {
  fixture.apply_cases.forEach((c, idx) => {
    it(`case ${idx}: ${JSON.stringify(c.strategies)} T=${c.T_target} refs=${JSON.stringify(c.reference_lengths)} loop ${c.loop_i}`, () => {
      const run = () =>
        planMaskStrategy({ strategies: c.strategies, loopIndex: c.loop_i, targetFrames: c.T_target, referenceLengths: c.reference_lengths });
      const clipped = c.strategies.some((s) => s !== null && CLIPPED_BY_REFERENCE.includes(s));
      if (clipped) expect(c.ok && !inRangeForIssue(c)).toBe(true);
      if (c.ok && inRangeForIssue(c)) {
        const plans = run();
        expect(plans.map((p) => p.mask)).toEqual(c.expected_mask_per_frame);
        expect(plans.map((p) => p.placements)).toEqual(c.expected_placements);
        // Masks are float32 values.
        for (const p of plans) for (const v of p.mask) expect(Math.fround(v)).toBe(v);
      } else {
        expect(run).toThrow(MaskError);
      }
    });
  });
});

function planErr(strategy: string, T: number, refs: number[], loopIndex = 0): MaskError {
  try {
    planSampleMask(strategy, { targetFrames: T, referenceLengths: refs, loopIndex });
  } catch (e) {
    expect(e).toBeInstanceOf(MaskError);
    return e as MaskError;
  }
  throw new Error(`expected ${strategy} to fail`);
}

describe('planning rules', () => {
  it('image to video (the docs example "0")', () => {
    const p = planSampleMask('0', { targetFrames: 4, referenceLengths: [1] });
    expect(p.mask).toEqual([0, 1, 1, 1]);
    expect(p.placements).toEqual([{ ref: 0, frame: 0 }, null, null, null]);
    expect(p.groups).toEqual([{ group: 0, ref: 0, refStart: 0, targetStart: 0, length: 1, editRatio: 0, broadcast: false }]);
  });

  it('video extending "0,0,0,-8,8" puts ref frames 0..7 on the last 8 target frames', () => {
    const p = planSampleMask('0,0,0,-8,8', { targetFrames: 16, referenceLengths: [16] });
    expect(p.mask).toEqual([...new Array(8).fill(1), ...new Array(8).fill(0)]);
    expect(p.placements.slice(8)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((frame) => ({ ref: 0, frame })));
    expect(p.placements.slice(0, 8)).toEqual(new Array(8).fill(null));
  });

  it('connecting "0;0,1,0,-1,1": ref 0 first, ref 1 last', () => {
    const p = planSampleMask('0;0,1,0,-1,1', { targetFrames: 5, referenceLengths: [1, 1] });
    expect(p.mask).toEqual([0, 1, 1, 1, 0]);
    expect(p.placements).toEqual([{ ref: 0, frame: 0 }, null, null, null, { ref: 1, frame: 0 }]);
  });

  it('editing "0,0,0,0,32,0.4": float32 ratio on 32 frames', () => {
    const p = planSampleMask('0,0,0,0,32,0.4', { targetFrames: 32, referenceLengths: [40] });
    expect(p.mask).toEqual(new Array(32).fill(Math.fround(0.4)));
    expect(p.mask[0]).toBe(0.4000000059604645);
    expect(p.placements[31]).toEqual({ ref: 0, frame: 31 });
  });

  it('broadcasts a one-frame reference over the length', () => {
    const p = planSampleMask('0,0,-1,2,3,0.5', { targetFrames: 6, referenceLengths: [1] });
    expect(p.mask).toEqual([1, 1, 0.5, 0.5, 0.5, 1]);
    expect(p.placements).toEqual([null, null, { ref: 0, frame: 0 }, { ref: 0, frame: 0 }, { ref: 0, frame: 0 }, null]);
    expect(p.groups[0]!.broadcast).toBe(true);
  });

  it('resolves negative ref_id, ref_start and target_start once', () => {
    const p = planSampleMask('0,-1,-4,-6,4', { targetFrames: 8, referenceLengths: [1, 10] });
    expect(p.placements).toEqual([null, null, ...[6, 7, 8, 9].map((frame) => ({ ref: 1, frame })), null, null]);
    expect(p.groups[0]).toMatchObject({ ref: 1, refStart: 6, targetStart: 2 });
  });

  it('later groups overwrite earlier ones; other loops are ignored; length 0 is a no-op', () => {
    const p = planSampleMask('0,0,0,0,4,0.2;0,1,0,2,1;1,0,0,0,4;0,0,0,0,0', { targetFrames: 4, referenceLengths: [4, 1] });
    const r = Math.fround(0.2);
    expect(p.mask).toEqual([r, r, 0, r]);
    expect(p.placements).toEqual([{ ref: 0, frame: 0 }, { ref: 0, frame: 1 }, { ref: 1, frame: 0 }, { ref: 0, frame: 3 }]);
    expect(p.groups.map((g) => g.group)).toEqual([0, 1]);
    const p1 = planSampleMask('0,0,0,0,4,0.2;1,0,0,0,2', { targetFrames: 4, referenceLengths: [4], loopIndex: 1 });
    expect(p1.mask).toEqual([0, 0, 1, 1]);
    // A negative loop id never matches.
    expect(planSampleMask('-1', { targetFrames: 2, referenceLengths: [1] }).mask).toEqual([1, 1]);
  });

  it('edit ratio 1 still places the reference (sampling starts from it) but keeps mask 1', () => {
    const p = planSampleMask('0,0,0,0,2,1', { targetFrames: 3, referenceLengths: [2] });
    expect(p.mask).toEqual([1, 1, 1]);
    expect(p.placements).toEqual([{ ref: 0, frame: 0 }, { ref: 0, frame: 1 }, null]);
  });

  it('no strategy: all ones, no placements', () => {
    for (const s of [null, undefined]) {
      expect(planSampleMask(s, { targetFrames: 3, referenceLengths: [] })).toEqual({ mask: [1, 1, 1], placements: [null, null, null], groups: [] });
    }
  });

  it('accepts parsed groups', () => {
    const groups = parseMaskStrategy('0,0,0,-8,8');
    const a = planSampleMask(groups, { targetFrames: 16, referenceLengths: [16] });
    const b = planSampleMask('0,0,0,-8,8', { targetFrames: 16, referenceLengths: [16] });
    expect(a).toEqual(b);
  });
});

describe('planning errors name the sample, group and field', () => {
  it('target range past the clip (the reference clips silently)', () => {
    const e = planErr('0,0,0,0,1;0,0,0,12,8', 16, [4]);
    expect(e.code).toBe('E_MASK_PLACEMENT');
    expect(e.group).toBe(1);
    expect(e.field).toBe('length');
    expect(e.message).toContain('group 2 of 2 ("0,0,0,12,8")');
    expect(e.message).toMatch(/target frames 12\.\.19 run past the 16-frame clip/);
  });
  it('reference range past the reference', () => {
    const e = planErr('0,0,0,0,16', 16, [8]);
    expect([e.code, e.field]).toEqual(['E_MASK_PLACEMENT', 'length']);
    expect(e.message).toMatch(/reference frames 0\.\.15 run past reference 0, which has 8 frames/);
    // The reference would broadcast its clipped last frame here; this is an error too.
    expect(planErr('0,0,-1,0,4', 8, [8]).field).toBe('length');
  });
  it('starts outside', () => {
    expect(planErr('0,0,20,0,4', 16, [16]).field).toBe('ref_start');
    expect(planErr('0,0,-20,0,1', 16, [16]).field).toBe('ref_start');
    expect(planErr('0,0,1,0,1', 16, [1]).field).toBe('ref_start');
    expect(planErr('0,0,0,16,4', 16, [16]).field).toBe('target_start');
    expect(planErr('0,0,0,-20,1', 16, [16]).field).toBe('target_start');
  });
  it('reference index out of range or missing', () => {
    const e = planErr('0,1,0,0,1', 16, [1]);
    expect([e.code, e.field]).toEqual(['E_MASK_PLACEMENT', 'ref_id']);
    expect(e.message).toMatch(/1 reference\(s\)/);
    expect(planErr('0,-2', 4, [1]).field).toBe('ref_id');
    expect(planErr('0', 4, []).message).toMatch(/has none/);
    // Checked even for length 0, as in the reference.
    expect(planErr('0,3,0,0,0', 4, [1]).field).toBe('ref_id');
  });
  it('syntax errors surface as E_MASK_STRATEGY; the batch error names the sample', () => {
    expect(planErr('0,0,0,0,1;', 16, [1]).code).toBe('E_MASK_STRATEGY');
    expect(planErr('1,x,y,z,w', 16, [1], 1).code).toBe('E_MASK_STRATEGY');
    try {
      planMaskStrategy({ strategies: ['0', '0,2'], targetFrames: 4, referenceLengths: [[1], [1]] });
      expect.unreachable();
    } catch (e) {
      expect((e as MaskError).sample).toBe(1);
      expect((e as MaskError).message).toMatch(/^sample 1: /);
    }
  });
  it('bad arguments', () => {
    const bad = (f: () => unknown) => expect(f).toThrow(expect.objectContaining({ code: 'E_MASK_ARGUMENT' }));
    bad(() => planSampleMask('0', { targetFrames: 0, referenceLengths: [1] }));
    bad(() => planSampleMask('0', { targetFrames: 2.5, referenceLengths: [1] }));
    bad(() => planSampleMask('0', { targetFrames: 4, referenceLengths: [0] }));
    bad(() => planSampleMask('0', { targetFrames: 4, referenceLengths: [1], loopIndex: -1 }));
    bad(() => planMaskStrategy({ strategies: ['0', null], targetFrames: 4, referenceLengths: [[1]] }));
  });
});

describe('editRatioEntryStep (float32 m_t of p_sample)', () => {
  it('matches the reference table', () => {
    const table = fixture.p_sample_mask_t_table.table;
    let n = 0;
    for (const [steps, row] of Object.entries(table)) {
      for (const [ratio, expected] of Object.entries(row)) {
        expect(editRatioEntryStep(Number(ratio), Number(steps))).toBe(expected);
        n++;
      }
    }
    expect(n).toBeGreaterThan(50);
  });
  it('rounds in float32 (0.29 x 100 = 29, where float64 gives 28)', () => {
    expect(Math.trunc(0.29 * 100)).toBe(28);
    expect(editRatioEntryStep(0.29, 100)).toBe(29);
  });
  it('rejects bad input', () => {
    expect(() => editRatioEntryStep(1.5, 100)).toThrow(MaskError);
    expect(() => editRatioEntryStep(0.5, 0)).toThrow(MaskError);
  });
});
