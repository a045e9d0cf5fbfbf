/**
 * Python's `int(str)` and `float(str)` rules for the strings the reference converts, so that every
 * strategy the reference reads is read the same way here: surrounding whitespace (Python's set,
 * not JavaScript's) is ignored, a sign is allowed, single underscores may separate digits, leading
 * zeros are fine, and any Unicode decimal digit counts as its value (`'٣'` is 3), as in Python.
 */

// Characters for which Python's str.isspace() is true (what int()/float() strip).
const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const STRIP_RE = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');

export function pyStrip(s: string): string {
  return s.replace(STRIP_RE, '');
}

const ND = /\p{Nd}/u;
const ND_G = /\p{Nd}/gu;
const ND_NON_ASCII = /(?![0-9])\p{Nd}/u;

/**
 * Replaces every Unicode decimal digit by its ASCII digit. Unicode keeps each script's digits as a
 * contiguous run 0..9, so a digit's value is its distance from the start of its run, modulo 10.
 */
function asciiDigits(s: string): string {
  if (!ND_NON_ASCII.test(s)) return s;
  return s.replace(ND_G, (ch) => {
    const cp = ch.codePointAt(0)!;
    let start = cp;
    while (ND.test(String.fromCodePoint(start - 1))) start--;
    return String((cp - start) % 10);
  });
}

const DIGITS = '[0-9](?:_?[0-9])*';
const INT_RE = new RegExp(`^[+-]?${DIGITS}$`);
const FLOAT_RE = new RegExp(`^[+-]?(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?${DIGITS})?$`);
const SPECIAL_RE = /^([+-]?)(inf|infinity|nan)$/i;

/** `int(s)` as Python does it for base 10; undefined when Python would raise (or the value is not a safe integer). */
export function pyInt(s: string): number | undefined {
  const t = asciiDigits(pyStrip(s));
  if (!INT_RE.test(t)) return undefined;
  const v = Number(t.replace(/_/g, ''));
  return Number.isSafeInteger(v) ? (Object.is(v, -0) ? 0 : v) : undefined;
}

/** `float(s)` as Python does it; undefined when Python would raise. */
export function pyFloat(s: string): number | undefined {
  const t = asciiDigits(pyStrip(s));
  const sp = SPECIAL_RE.exec(t);
  if (sp) {
    if (sp[2]!.toLowerCase() === 'nan') return NaN;
    return sp[1] === '-' ? -Infinity : Infinity;
  }
  if (!FLOAT_RE.test(t)) return undefined;
  return Number(t.replace(/_/g, ''));
}
