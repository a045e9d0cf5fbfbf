import { describe, expect, it } from 'vitest';
import {
  formatMaskStrategy,
  joinMaskStrategies,
  MASK_STRATEGY_DEFAULTS,
  MaskError,
  parseMaskStrategy,
  type MaskStrategyGroup,
} from '../src/index.js';
import { fixNum, loadFixture } from './fixtures.js';

interface ParseCase {
  input: string;
  parsed_numbers?: Array<Array<number | string> | null>;
  process_mask_strategy_error?: { type: string; message: string };
  numeric_conversion_error?: { type: string; message: string };
}

const fixture = loadFixture<{ parse_cases: ParseCase[] }>('mask_strategy_public.json');

const toTuple = (g: MaskStrategyGroup): number[] => [g.loopId, g.refId, g.refStart, g.targetStart, g.length, g.editRatio];

function expectMaskError(fn: () => unknown, code: string, details: { group?: number; field?: string } = {}): MaskError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(MaskError);
  const me = err as MaskError;
  expect(me.code).toBe(code);
  if ('group' in details) expect(me.group).toBe(details.group);
  if ('field' in details) expect(me.field).toBe(details.field);
  return me;
}

// Where the reference accepts a strategy that the issue says must be an error.
const STRICTER_THAN_REFERENCE: Record<string, { group: number; field: string }> = {
  '0,0,0,0,8,2': { group: 0, field: 'edit_ratio' },
  '0,0,0,0,8,inf': { group: 0, field: 'edit_ratio' },
  '0,0,0,0,-1': { group: 0, field: 'length' },
  // Reference converts only the current loop's groups, so junk in loop 1 passes at loop 0; here it never does.
  '1,x,y,z,w': { group: 0, field: 'ref_id' },
};

describe('parseMaskStrategy against the reference fixture', () => {
  for (const c of fixture.parse_cases) {
    it(`parses ${JSON.stringify(c.input)}`, () => {
      const refOk = !c.process_mask_strategy_error && c.parsed_numbers !== undefined && c.parsed_numbers.every((g) => g !== null);
      const strict = STRICTER_THAN_REFERENCE[c.input];
      if (!refOk) {
        // Reference raises (AssertionError for > 6 fields, ValueError for non-numbers / empty groups).
        const e = expectMaskError(() => parseMaskStrategy(c.input), 'E_MASK_STRATEGY');
        expect(e.message).toContain(JSON.stringify(c.input));
        expect(e.input).toBe(c.input);
        expect(e.group).toBeTypeOf('number');
        return;
      }
      const expected = c.parsed_numbers!.map((g) => g!.map(fixNum));
      const validPerIssue = expected.every((g) => g[4]! >= 0 && g[5]! >= 0 && g[5]! <= 1);
      if (strict) expect(validPerIssue).toBe(false);
      if (!validPerIssue) {
        const e = expectMaskError(() => parseMaskStrategy(c.input), 'E_MASK_STRATEGY', strict ?? {});
        expect(e.message).toContain(JSON.stringify(c.input));
        return;
      }
      expect(parseMaskStrategy(c.input).map(toTuple)).toEqual(expected);
    });
  }

  it('covers every documented example', () => {
    const inputs = fixture.parse_cases.map((c) => c.input);
    for (const s of ['0', '0,0,0,-8,8', '0,0,0,0,16', '0;0,1,0,-1,1', '0,0,0,0,32,0.4', '0,0,0,0,8,0.3']) {
      expect(parseMaskStrategy(s).length).toBeGreaterThan(0);
    }
    expect(inputs.length).toBeGreaterThanOrEqual(28);
  });
});

describe('grammar: defaults and number forms', () => {
  it('fills every missing trailing field with its default', () => {
    expect(MASK_STRATEGY_DEFAULTS).toEqual({ refId: 0, refStart: 0, targetStart: 0, length: 1, editRatio: 0 });
    expect(parseMaskStrategy('3')).toEqual([{ loopId: 3, refId: 0, refStart: 0, targetStart: 0, length: 1, editRatio: 0 }]);
    expect(parseMaskStrategy('3,2').map(toTuple)).toEqual([[3, 2, 0, 0, 1, 0]]);
    expect(parseMaskStrategy('3,2,5').map(toTuple)).toEqual([[3, 2, 5, 0, 1, 0]]);
    expect(parseMaskStrategy('3,2,5,-4').map(toTuple)).toEqual([[3, 2, 5, -4, 1, 0]]);
    expect(parseMaskStrategy('3,2,5,-4,7').map(toTuple)).toEqual([[3, 2, 5, -4, 7, 0]]);
    expect(parseMaskStrategy('3,2,5,-4,7,0.75').map(toTuple)).toEqual([[3, 2, 5, -4, 7, 0.75]]);
  });

  it('reads numbers the way Python int()/float() do', () => {
    expect(parseMaskStrategy(' +1 ,\t-2\n, 0_0 ,00,1_6, .5 ').map(toTuple)).toEqual([[1, -2, 0, 0, 16, 0.5]]);
    expect(parseMaskStrategy('0,0,0,0,1,1.').map(toTuple)).toEqual([[0, 0, 0, 0, 1, 1]]);
    expect(parseMaskStrategy('0,0,0,0,1,25E-2').map(toTuple)).toEqual([[0, 0, 0, 0, 1, 0.25]]);
    expect(parseMaskStrategy('0,0,0,0,1,\u00a00.5\u3000').map(toTuple)).toEqual([[0, 0, 0, 0, 1, 0.5]]);
    // Any Unicode decimal digit, as Python's int() reads it (Arabic-Indic, Devanagari, fullwidth).
    expect(parseMaskStrategy('\u0663,\u0967\u0966,\uff18').map(toTuple)).toEqual([[3, 10, 8, 0, 1, 0]]);
    // A negative loop id parses (the reference accepts it) but never matches a loop.
    expect(parseMaskStrategy('-1').map(toTuple)).toEqual([[-1, 0, 0, 0, 1, 0]]);
    // Length 0 is allowed: the group copies nothing.
    expect(parseMaskStrategy('0,0,0,0,0').map(toTuple)).toEqual([[0, 0, 0, 0, 0, 0]]);
  });

  it('keeps the edit ratio as a double (float32 rounding happens in the plan)', () => {
    expect(parseMaskStrategy('0,0,0,0,8,0.3')[0]!.editRatio).toBe(0.3);
  });
});

describe('grammar: errors name the group and field', () => {
  const cases: Array<[string, number | undefined, string | undefined, RegExp]> = [
    ['', undefined, undefined, /is empty/],
    ['  ', undefined, undefined, /is empty/],
    [';', 0, 'loop_id', /group 1 of 2 is empty/],
    ['0;', 1, 'loop_id', /group 2 of 2 is empty/],
    ['0;;1', 1, 'loop_id', /group 2 of 3 is empty/],
    ['0,,1', 0, 'ref_id', /field 2 \(ref_id\) = "" is empty/],
    ['0,0,0,0,1,0.3,7', 0, undefined, /has 7 fields/],
    ['0;0,0,0,0,1,0,0,0', 1, undefined, /group 2 of 2 .* has 8 fields/],
    ['a', 0, 'loop_id', /field 1 \(loop_id\) = "a" is not an integer/],
    ['0.0', 0, 'loop_id', /is not an integer/],
    ['0,1.5', 0, 'ref_id', /is not an integer/],
    ['0,0,x', 0, 'ref_start', /ref_start/],
    ['0,0,0,y', 0, 'target_start', /target_start/],
    ['0,0,0,0,1e1', 0, 'length', /length/],
    ['0,0,0,0,8;0,0,0,0,-2', 1, 'length', /group 2 of 2 .*negative/],
    ['0,0,0,0,1,abc', 0, 'edit_ratio', /not a number/],
    ['0,0,0,0,1,-0.1', 0, 'edit_ratio', /outside \[0, 1\]/],
    ['0,0,0,0,1,1.0001', 0, 'edit_ratio', /outside \[0, 1\]/],
    ['0,0,0,0,1,nan', 0, 'edit_ratio', /outside \[0, 1\]/],
    ['0,0,0,0,1,-inf', 0, 'edit_ratio', /outside \[0, 1\]/],
    ['0,0,0,0,1,0x1', 0, 'edit_ratio', /not a number/],
    ['1 2', 0, 'loop_id', /not an integer/],
    ['0,0,0,0,1_', 0, 'length', /not an integer/],
    ['99999999999999999999', 0, 'loop_id', /not an integer/],
  ];
  for (const [input, group, field, re] of cases) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      const e = expectMaskError(() => parseMaskStrategy(input), 'E_MASK_STRATEGY', {
        ...(group !== undefined ? { group } : {}),
        ...(field !== undefined ? { field } : {}),
      });
      expect(e.message).toMatch(re);
      expect(e.message).toContain(JSON.stringify(input));
      expect(e.input).toBe(input);
    });
  }

  it('rejects a non-string', () => {
    expectMaskError(() => parseMaskStrategy(5 as unknown as string), 'E_MASK_STRATEGY');
  });
});

describe('formatMaskStrategy / joinMaskStrategies', () => {
  it('round-trips in the docs style', () => {
    for (const s of ['0', '0,0,0,-8,8', '0;0,1,0,-1,1', '0,0,0,0,32,0.4', '1,0,-4,0,4', '0,0,0,0,1,0.3;1']) {
      expect(formatMaskStrategy(parseMaskStrategy(s))).toBe(s);
    }
    expect(formatMaskStrategy(parseMaskStrategy('0,0,0,0,1,0'))).toBe('0');
    expect(formatMaskStrategy(parseMaskStrategy('0;0,1,0,-1'))).toBe('0;0,1,0,-1,1');
    expect(formatMaskStrategy(parseMaskStrategy(' 2 , 1 '))).toBe('2,1,0,0,1');
    expect(formatMaskStrategy({ loopId: 1, refId: 0, refStart: 0, targetStart: 0, length: 1, editRatio: 0.5 })).toBe('1,0,0,0,1,0.5');
  });

  it('validates groups given as objects', () => {
    expectMaskError(
      () => formatMaskStrategy({ loopId: 0, refId: 0, refStart: 0, targetStart: 0, length: -1, editRatio: 0 }),
      'E_MASK_STRATEGY',
      { field: 'length' },
    );
    expectMaskError(
      () => formatMaskStrategy({ loopId: 0.5, refId: 0, refStart: 0, targetStart: 0, length: 1, editRatio: 0 }),
      'E_MASK_STRATEGY',
      { field: 'loop_id' },
    );
    expectMaskError(
      () => formatMaskStrategy({ loopId: 0, refId: 0, refStart: 0, targetStart: 0, length: 1, editRatio: 2 }),
      'E_MASK_STRATEGY',
      { field: 'edit_ratio' },
    );
  });

  it('joins, skipping empty parts', () => {
    expect(joinMaskStrategies('0', null, undefined, ' ', '1,1')).toBe('0;1,1');
    expect(joinMaskStrategies(null, '')).toBeNull();
  });
});
