import { MaskError, quote } from './errors.js';
import { pyInt } from './pynum.js';

/**
 * Splits a `reference_path` value on `;` (what the reference does, without trimming, so that
 * reference indices in the strategy line up with the list). `null`/`undefined` gives `[]`.
 * Pass `{ trim: true }` to strip whitespace around each path. Empty entries are kept (their index
 * counts); the loader should reject them.
 */
export function parseReferencePaths(text: string | null | undefined, options: { trim?: boolean } = {}): string[] {
  if (text === null || text === undefined) return [];
  if (typeof text !== 'string') throw new MaskError('E_MASK_ARGUMENT', `reference_path must be a string, got ${typeof text}`);
  const parts = text.split(';');
  return options.trim ? parts.map((p) => p.trim()) : parts;
}

/** The options a prompt may carry in a JSON suffix. */
export interface PromptOptions {
  referencePath?: string | null;
  maskStrategy?: string | null;
}

export interface ExtractedPrompt {
  /** The prompt without its JSON suffix. */
  text: string;
  /** `reference_path` / `mask_strategy` from the JSON (only the keys that were present). */
  options: PromptOptions;
  /** The parsed JSON value (undefined when there was none); other keys are ignored by the pipeline. */
  json: unknown;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function tryJson(s: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(s) as unknown };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

function optionsOf(prompt: string, json: unknown): PromptOptions {
  const out: PromptOptions = {};
  if (!isPlainObject(json)) return out;
  for (const [key, prop] of [
    ['reference_path', 'referencePath'],
    ['mask_strategy', 'maskStrategy'],
  ] as const) {
    if (!(key in json)) continue;
    const v = json[key];
    if (v !== null && typeof v !== 'string') {
      throw new MaskError('E_PROMPT_OPTIONS', `prompt ${quote(prompt)}: "${key}" must be a string (or null), got ${JSON.stringify(v)}`, {
        input: prompt,
        field: key,
      });
    }
    out[prop] = v;
  }
  return out;
}

/**
 * Reads the JSON options a prompt may end with, as in
 * `A sunrise.{"reference_path": "wave.png", "mask_strategy": "0"}`.
 *
 * Where the reference's rule works (split just before each `{` or `[`; at most two pieces; the
 * second one JSON) the result is the same as the reference's, including its quirks (a JSON array
 * suffix is taken as the options value and ignored). Where the reference crashes (brackets in the
 * text, a nested object or array in the JSON) this reads the longest suffix starting with `{` that is
 * a JSON object instead, and a prompt with brackets but no JSON object is plain text. A suffix
 * that looks like options (`{"`) but is not valid JSON throws `E_PROMPT_OPTIONS`, as do option
 * values that are not strings.
 */
export function extractPromptOptions(prompt: string): ExtractedPrompt {
  if (typeof prompt !== 'string') throw new MaskError('E_MASK_ARGUMENT', `prompt must be a string, got ${typeof prompt}`);
  const starts: number[] = [];
  for (let i = 0; i < prompt.length; i++) if (prompt[i] === '{' || prompt[i] === '[') starts.push(i);
  if (starts.length === 0) return { text: prompt, options: {}, json: undefined };
  // The reference's reading: exactly one bracket, so two pieces: the text, then the JSON.
  if (starts.length === 1) {
    const at = starts[0]!;
    const r = tryJson(prompt.slice(at));
    if (r.ok) return { text: prompt.slice(0, at), options: optionsOf(prompt, r.value), json: r.value };
  }
  // Fallback: the longest trailing JSON object.
  let firstError: string | undefined;
  for (const at of starts) {
    if (prompt[at] !== '{') continue;
    const r = tryJson(prompt.slice(at));
    if (r.ok && isPlainObject(r.value)) return { text: prompt.slice(0, at), options: optionsOf(prompt, r.value), json: r.value };
    if (!r.ok && firstError === undefined && /^\{\s*"/.test(prompt.slice(at))) firstError = r.error;
  }
  if (firstError !== undefined) {
    throw new MaskError(
      'E_PROMPT_OPTIONS',
      `prompt ${quote(prompt)} ends with JSON options that do not parse (${firstError}); write them as one JSON object at the end, e.g. A sunrise.{"reference_path": "wave.png", "mask_strategy": "0"}`,
      { input: prompt },
    );
  }
  return { text: prompt, options: {}, json: undefined };
}

/**
 * Assigns prompt texts to loops (the reference's `process_prompts`). A prompt that starts with
 * `|0|` lists segments `|start|text|start|text...`: each text covers the loops from its start up to
 * the next start (the last one up to `numLoops`). Any other prompt is repeated for every loop.
 * `preprocess` (e.g. caption cleaning) is applied to each text.
 *
 * Throws `E_LOOP_PROMPT` for a start that is not an integer, a start without text, or segments that
 * do not add up to exactly `numLoops` loops.
 */
export function splitLoopPrompts(prompt: string, numLoops: number, options: { preprocess?: (text: string) => string } = {}): string[] {
  if (typeof prompt !== 'string') throw new MaskError('E_MASK_ARGUMENT', `prompt must be a string, got ${typeof prompt}`);
  if (!Number.isSafeInteger(numLoops) || numLoops < 1) {
    throw new MaskError('E_MASK_ARGUMENT', `numLoops must be an integer >= 1, got ${String(numLoops)}`, { field: 'numLoops' });
  }
  const prep = options.preprocess ?? ((t: string) => t);
  if (!prompt.startsWith('|0|')) return new Array<string>(numLoops).fill(prep(prompt));
  const pieces = prompt.split('|').slice(1);
  const starts: number[] = [];
  for (let i = 0; i < pieces.length; i += 2) {
    const s = pyInt(pieces[i]!);
    if (s === undefined) {
      throw new MaskError('E_LOOP_PROMPT', `prompt ${quote(prompt)}: segment start ${quote(pieces[i]!)} is not an integer loop index; write |0|text|2|text...`, {
        input: prompt,
        group: i / 2,
      });
    }
    if (i + 1 >= pieces.length) {
      throw new MaskError('E_LOOP_PROMPT', `prompt ${quote(prompt)}: segment |${pieces[i]}| has no text after it; write |0|text|2|text...`, {
        input: prompt,
        group: i / 2,
      });
    }
    starts.push(s);
  }
  const out: string[] = [];
  for (let j = 0; j < starts.length; j++) {
    const text = prep(pieces[2 * j + 1]!);
    const end = j + 1 < starts.length ? starts[j + 1]! : numLoops;
    for (let l = starts[j]!; l < end; l++) out.push(text);
  }
  if (out.length !== numLoops) {
    throw new MaskError(
      'E_LOOP_PROMPT',
      `prompt ${quote(prompt)}: its segments cover ${out.length} loop(s) but ${numLoops} are generated (starts ${starts.join(', ')}); segment starts must increase and stay below the loop count`,
      { input: prompt },
    );
  }
  return out;
}
