import { MaskError, quote } from './errors.js';
import { pyFloat, pyInt, pyStrip } from './pynum.js';

/**
 * One `;`-separated group of a mask strategy: copy `length` frames of reference `refId`, starting at
 * its frame `refStart`, into the generated clip of loop `loopId` at frame `targetStart`, and give
 * those frames the edit ratio `editRatio` (0 = frozen condition, 1 = fully regenerated).
 * Indices are latent frames; negative `refId`/`refStart`/`targetStart` count from the end.
 */
export interface MaskStrategyGroup {
  loopId: number;
  refId: number;
  refStart: number;
  targetStart: number;
  length: number;
  editRatio: number;
}

/** The six fields in order, with the reference's names (as used in error messages). */
export const MASK_STRATEGY_FIELDS = ['loop_id', 'ref_id', 'ref_start', 'target_start', 'length', 'edit_ratio'] as const;

/** Values used for missing trailing fields: `"0"` means `0,0,0,0,1,0`. */
export const MASK_STRATEGY_DEFAULTS: Readonly<Omit<MaskStrategyGroup, 'loopId'>> = Object.freeze({
  refId: 0,
  refStart: 0,
  targetStart: 0,
  length: 1,
  editRatio: 0,
});

const KEYS = ['loopId', 'refId', 'refStart', 'targetStart', 'length', 'editRatio'] as const;

const HINT = 'a group is 1 to 6 comma-separated numbers: loop_id[,ref_id[,ref_start[,target_start[,length[,edit_ratio]]]]]';

/**
 * Parses a mask strategy such as `"0"`, `"0,0,0,0,8,0.3"` or `"0,0,0,0,1;0,0,0,-1,1"`.
 *
 * Groups are separated by `;`, fields by `,`; missing trailing fields take the defaults
 * `(ref_id 0, ref_start 0, target_start 0, length 1, edit_ratio 0)`. Whitespace around a number is
 * ignored (as Python's int()/float() do). The first five fields are integers, the edit ratio is a
 * float in [0, 1].
 *
 * Unlike the reference, which converts only the groups of the current loop, every group is checked
 * here, so a typo in a later loop's group fails before any sampling starts. Throws a `MaskError`
 * (code `E_MASK_STRATEGY`) naming the group and field for an empty strategy or group, more than six
 * fields, a field that is not a number, a negative length, or an edit ratio outside [0, 1].
 */
export function parseMaskStrategy(text: string): MaskStrategyGroup[] {
  if (typeof text !== 'string') {
    throw new MaskError('E_MASK_STRATEGY', `mask strategy must be a string, got ${typeof text}`);
  }
  if (pyStrip(text) === '') {
    throw new MaskError('E_MASK_STRATEGY', `mask strategy ${quote(text)} is empty; ${HINT}, e.g. "0" to condition on the first frame`, {
      input: text,
    });
  }
  const groupTexts = text.split(';');
  const n = groupTexts.length;
  return groupTexts.map((gt, gi) => {
    const where = `mask strategy ${quote(text)}, group ${gi + 1} of ${n}`;
    if (pyStrip(gt) === '') {
      throw new MaskError(
        'E_MASK_STRATEGY',
        `${where} is empty (a leading, trailing or doubled ";"?); ${HINT}`,
        { input: text, group: gi, field: 'loop_id' },
      );
    }
    const fields = gt.split(',');
    if (fields.length > 6) {
      throw new MaskError('E_MASK_STRATEGY', `${where} (${quote(gt)}) has ${fields.length} fields; ${HINT}`, {
        input: text,
        group: gi,
      });
    }
    const values: number[] = [];
    for (let fi = 0; fi < 6; fi++) {
      const name = MASK_STRATEGY_FIELDS[fi]!;
      const raw = fields[fi];
      if (raw === undefined) {
        values.push(MASK_STRATEGY_DEFAULTS[KEYS[fi] as Exclude<(typeof KEYS)[number], 'loopId'>]);
        continue;
      }
      const at = `${where} (${quote(gt)}), field ${fi + 1} (${name}) = ${quote(raw)}`;
      if (fi < 5) {
        const v = pyInt(raw);
        if (v === undefined) {
          const kind = pyStrip(raw) === '' ? 'is empty' : 'is not an integer';
          throw new MaskError('E_MASK_STRATEGY', `${at} ${kind}; ${HINT}`, { input: text, group: gi, field: name });
        }
        if (fi === 4 && v < 0) {
          throw new MaskError('E_MASK_STRATEGY', `${at} is negative; the number of frames to copy must be >= 0`, {
            input: text,
            group: gi,
            field: name,
          });
        }
        values.push(v);
      } else {
        const v = pyFloat(raw);
        if (v === undefined) {
          throw new MaskError('E_MASK_STRATEGY', `${at} is not a number; the edit ratio is a float in [0, 1]`, {
            input: text,
            group: gi,
            field: name,
          });
        }
        if (!(v >= 0 && v <= 1)) {
          throw new MaskError(
            'E_MASK_STRATEGY',
            `${at} is outside [0, 1]; 0 keeps the reference frame, 1 regenerates it fully, values in between edit it partially`,
            { input: text, group: gi, field: name },
          );
        }
        values.push(v);
      }
    }
    const [loopId, refId, refStart, targetStart, length, editRatio] = values as [number, number, number, number, number, number];
    return { loopId, refId, refStart, targetStart, length, editRatio };
  });
}

/** Checks a group given as an object (same rules as the parser); returns it normalised. */
export function validateMaskStrategyGroup(g: Partial<MaskStrategyGroup> & { loopId: number }, groupIndex = 0): MaskStrategyGroup {
  const full: MaskStrategyGroup = { ...MASK_STRATEGY_DEFAULTS, ...g } as MaskStrategyGroup;
  for (let fi = 0; fi < 6; fi++) {
    const key = KEYS[fi]!;
    const name = MASK_STRATEGY_FIELDS[fi]!;
    const v = full[key];
    const at = `mask strategy group ${groupIndex + 1}: ${name} = ${String(v)}`;
    if (fi < 5 && !Number.isSafeInteger(v)) {
      throw new MaskError('E_MASK_STRATEGY', `${at} is not an integer`, { group: groupIndex, field: name });
    }
    if (fi === 4 && v < 0) {
      throw new MaskError('E_MASK_STRATEGY', `${at} is negative; the number of frames to copy must be >= 0`, {
        group: groupIndex,
        field: name,
      });
    }
    if (fi === 5 && !(typeof v === 'number' && v >= 0 && v <= 1)) {
      throw new MaskError('E_MASK_STRATEGY', `${at} is outside [0, 1]`, { group: groupIndex, field: name });
    }
  }
  return full;
}

/**
 * Writes groups back as a strategy string in the docs' style: just the loop id when every other
 * field has its default (`"0,0,0,0,1"` → `"0"`), otherwise five fields, and the edit ratio only when
 * it is not 0 (`"0,1,0,-1"` → `"0,1,0,-1,1"`).
 */
export function formatMaskStrategy(groups: readonly MaskStrategyGroup[] | MaskStrategyGroup): string {
  const list = Array.isArray(groups) ? groups : [groups as MaskStrategyGroup];
  return list
    .map((g, i) => {
      const v = validateMaskStrategyGroup(g, i);
      const vals = [v.loopId, v.refId, v.refStart, v.targetStart, v.length, v.editRatio];
      const plain = v.refId === 0 && v.refStart === 0 && v.targetStart === 0 && v.length === 1;
      const end = v.editRatio !== 0 ? 6 : plain ? 1 : 5;
      return vals.slice(0, end).map((x) => String(x)).join(',');
    })
    .join(';');
}

/** Joins strategies with `;`, skipping null/undefined/blank ones; null when nothing is left. */
export function joinMaskStrategies(...parts: Array<string | null | undefined>): string | null {
  const kept = parts.filter((p): p is string => typeof p === 'string' && pyStrip(p) !== '');
  return kept.length ? kept.join(';') : null;
}
