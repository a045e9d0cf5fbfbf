import { describe, expect, it } from 'vitest';
import { extractPromptOptions, MaskError, parseReferencePaths, splitLoopPrompts } from '../src/index.js';
import { loadFixture } from './fixtures.js';

interface Fx {
  reference_path_cases: Array<{ reference_path: string | null; read_from_path_called_with: string[]; num_refs: number }>;
  extract_json_from_prompts_cases: Array<{ prompt: string; text?: string; additional_info?: unknown; error?: { type: string; message: string } }>;
  process_prompts_cases: Array<{ prompt: string; num_loop: number; per_loop_texts?: string[]; error?: { type: string; message: string } }>;
}
const fx = loadFixture<Fx>('mask_strategy_public.json');

describe('parseReferencePaths', () => {
  for (const c of fx.reference_path_cases) {
    it(`splits ${JSON.stringify(c.reference_path)} as the reference does`, () => {
      const got = parseReferencePaths(c.reference_path);
      expect(got).toEqual(c.read_from_path_called_with);
      expect(got).toHaveLength(c.num_refs);
    });
  }
  it('optionally trims, keeping empty entries so indices line up', () => {
    expect(parseReferencePaths(' a.png ; b.mp4;', { trim: true })).toEqual(['a.png', 'b.mp4', '']);
    expect(parseReferencePaths(undefined)).toEqual([]);
    expect(() => parseReferencePaths(3 as unknown as string)).toThrow(MaskError);
  });
});

const toOptions = (info: unknown): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  if (info && typeof info === 'object' && !Array.isArray(info)) {
    const o = info as Record<string, unknown>;
    if ('reference_path' in o) out.referencePath = o.reference_path;
    if ('mask_strategy' in o) out.maskStrategy = o.mask_strategy;
  }
  return out;
};

describe('extractPromptOptions', () => {
  for (const c of fx.extract_json_from_prompts_cases.filter((c) => !c.error)) {
    it(`matches the reference for ${JSON.stringify(c.prompt)}`, () => {
      const r = extractPromptOptions(c.prompt);
      expect(r.text).toBe(c.text);
      const info = c.additional_info as Record<string, unknown>;
      expect(r.json ?? {}).toEqual(info);
      expect(r.options).toEqual(toOptions(info));
    });
  }

  it('reads prompts the reference crashes on (brackets in the text, two objects)', () => {
    const crashed = fx.extract_json_from_prompts_cases.filter((c) => c.error).map((c) => c.prompt);
    expect(crashed).toEqual(['text [with bracket]', 'text [with bracket]{"mask_strategy": "0"}', 'two {"a": 1}{"b": 2}']);
    expect(extractPromptOptions(crashed[0]!)).toEqual({ text: 'text [with bracket]', options: {}, json: undefined });
    expect(extractPromptOptions(crashed[1]!)).toEqual({ text: 'text [with bracket]', options: { maskStrategy: '0' }, json: { mask_strategy: '0' } });
    expect(extractPromptOptions(crashed[2]!)).toEqual({ text: 'two {"a": 1}', options: {}, json: { b: 2 } });
  });

  it('accepts nested JSON values and null options', () => {
    const r = extractPromptOptions('A cat.{"mask_strategy": "0;0,1,0,-1,1", "reference_path": "a.png;b.png", "extra": {"k": [1, 2]}}');
    expect(r.text).toBe('A cat.');
    expect(r.options).toEqual({ maskStrategy: '0;0,1,0,-1,1', referencePath: 'a.png;b.png' });
    expect(extractPromptOptions('x{"mask_strategy": null}').options).toEqual({ maskStrategy: null });
    expect(extractPromptOptions('no options at all')).toEqual({ text: 'no options at all', options: {}, json: undefined });
    expect(extractPromptOptions('')).toEqual({ text: '', options: {}, json: undefined });
  });

  it('errors on broken JSON options or non-string values', () => {
    const bad = (p: string, re: RegExp) => {
      try {
        extractPromptOptions(p);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(MaskError);
        expect((e as MaskError).code).toBe('E_PROMPT_OPTIONS');
        expect((e as MaskError).message).toMatch(re);
        expect((e as MaskError).input).toBe(p);
      }
    };
    bad('A cat.{"mask_strategy": "0"', /do not parse/);
    bad("A cat.{'mask_strategy': '0'}".replace(/'/g, '"').replace('"0"}', '"0",}'), /do not parse/);
    bad('A cat.{"reference_path": 5}', /"reference_path" must be a string/);
    bad('A cat.{"mask_strategy": ["0"]}', /"mask_strategy" must be a string/);
  });
});

describe('splitLoopPrompts', () => {
  for (const c of fx.process_prompts_cases) {
    it(`${JSON.stringify(c.prompt)} over ${c.num_loop} loop(s)`, () => {
      if (c.error) {
        expect(() => splitLoopPrompts(c.prompt, c.num_loop)).toThrow(expect.objectContaining({ code: 'E_LOOP_PROMPT' }));
      } else {
        expect(splitLoopPrompts(c.prompt, c.num_loop)).toEqual(c.per_loop_texts);
      }
    });
  }

  it('the docs example: each text for 2 loops of 16', () => {
    const texts = ['jeep in forest.', 'jeep in desert.', 'jeep on snow.', 'jeep in city.', 'a', 'b', 'c', 'd'];
    const prompt = texts.map((t, i) => `|${2 * i}|${t}`).join('');
    expect(splitLoopPrompts(prompt, 16)).toEqual(texts.flatMap((t) => [t, t]));
  });

  it('applies the preprocessing to each text', () => {
    expect(splitLoopPrompts('|0|A Cat|1|A Dog', 2, { preprocess: (t) => t.toLowerCase() })).toEqual(['a cat', 'a dog']);
    expect(splitLoopPrompts('A Cat', 2, { preprocess: (t) => t.toLowerCase() })).toEqual(['a cat', 'a cat']);
  });

  it('errors say what is wrong', () => {
    expect(() => splitLoopPrompts('|0|a cat.|5|a dog.', 3)).toThrow(/cover 5 loop\(s\) but 3 are generated/);
    expect(() => splitLoopPrompts('|0|a cat.|2|a dog.|4', 4)).toThrow(/segment \|4\| has no text/);
    expect(() => splitLoopPrompts('|0|a|x|b', 2)).toThrow(/"x" is not an integer/);
    expect(() => splitLoopPrompts('a', 0)).toThrow(expect.objectContaining({ code: 'E_MASK_ARGUMENT' }));
  });
});
