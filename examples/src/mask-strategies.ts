/**
 * `@opensora/mask`: the mask-strategy language of inference and the random masks of training.
 *
 *   1. parse a strategy into its groups, and see the error a typo gives;
 *   2. write strategies with the recipes (animate an image, extend a video, edit a video with a
 *      ratio, connect two clips) and print what each plan does to every latent frame;
 *   3. plan a long video (`planLoops` / `longVideo`): which frames of each clip are conditioned
 *      on the previous one, and where each clip lands in the final video;
 *   4. the options a prompt can carry (JSON suffix, `|k|` loop segments);
 *   5. training masks with `MaskGenerator`: how often each type is drawn, and an exact resume.
 *
 * The package is pure TypeScript: plans are arrays, nothing here needs a tensor backend.
 * Run it: `npx tsx examples/src/mask-strategies.ts`
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DEFAULT_MASK_RATIOS,
  MASK_STRATEGY_FIELDS,
  MaskError,
  MaskGenerator,
  animateImage,
  connectClips,
  editRatioEntryStep,
  editVideo,
  extendVideo,
  extractPromptOptions,
  formatMaskStrategy,
  longVideo,
  parseMaskStrategy,
  parseReferencePaths,
  planLoops,
  planMaskStrategy,
  splitLoopPrompts,
  type LoopPlan,
  type MaskStrategyGroup,
  type MaskType,
  type SampleMaskPlan,
} from '@opensora/mask';

export interface MaskExampleOptions {
  /** Latent frames of the clip being planned (default 16). */
  frames?: number;
  /** Training masks drawn for the frequency table (default 20000). */
  draws?: number;
  log?: (line: string) => void;
}

export interface RecipePlan {
  name: string;
  strategy: string;
  referenceLengths: number[];
  plan: SampleMaskPlan;
}

export interface MaskExampleResult {
  parsed: MaskStrategyGroup[];
  /** The error code of a malformed strategy. */
  errorCode: string;
  recipes: RecipePlan[];
  long: LoopPlan;
  /** Sampling step at which an edited frame starts to be denoised (ratio 0.4, 20 steps). */
  editEntryStep: number;
  prompt: { text: string; references: string[]; strategy: string | null | undefined; loopPrompts: string[] };
  /** Frequency of each training mask type over `draws` draws. */
  frequencies: Record<string, number>;
  /** Masks drawn after restoring a saved generator state, and those of the original generator. */
  resume: { restored: boolean[][]; original: boolean[][] };
}

/** One line per plan: `G` = generated from noise, `r0:3` = frame 3 of reference 0 frozen there, `r0:3@0.4` = edited. */
export function formatPlan(plan: SampleMaskPlan): string {
  return plan.mask
    .map((m, t) => {
      const p = plan.placements[t];
      if (!p) return 'G';
      return `r${p.ref}:${p.frame}${m === 0 ? '' : `@${Number(m.toPrecision(3))}`}`;
    })
    .join(' ');
}

export async function main(o: MaskExampleOptions = {}): Promise<MaskExampleResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  const T = o.frames ?? 16;
  const draws = o.draws ?? 20000;

  // 1. The grammar: `;` separates groups, each loop_id[,ref_id[,ref_start[,target_start[,length[,edit_ratio]]]]].
  const text = '0;0,1,-4,-4,4,0.5';
  const parsed = parseMaskStrategy(text);
  log(`"${text}" has ${parsed.length} groups (${MASK_STRATEGY_FIELDS.join(', ')}):`);
  for (const g of parsed) log(`  ${JSON.stringify(g)}  ->  "${formatMaskStrategy(g)}"`);
  let errorCode = '';
  try {
    parseMaskStrategy('0,0,0.5');
  } catch (e) {
    if (!(e instanceof MaskError)) throw e;
    errorCode = e.code;
    log(`a typo is caught before sampling: ${e.code}: ${e.message}`);
  }

  // 2. The recipes: strategy strings for the standard flows, and what each plan does per frame.
  const half = Math.max(1, Math.floor(T / 2));
  const recipes: Array<{ name: string; strategy: string; referenceLengths: number[] }> = [
    { name: 'animate an image (first frame)', strategy: animateImage(), referenceLengths: [1] },
    { name: 'animate an image (last frame)', strategy: animateImage({ at: 'end' }), referenceLengths: [1] },
    { name: `extend a ${T}-frame video forward by ${T - half}`, strategy: extendVideo({ frames: half }), referenceLengths: [T] },
    { name: 'extend a video backward', strategy: extendVideo({ frames: half, direction: 'backward' }), referenceLengths: [T] },
    { name: 'edit a video, ratio 0.4', strategy: editVideo({ frames: T, editRatio: 0.4 }), referenceLengths: [T] },
    { name: 'connect two images', strategy: connectClips(), referenceLengths: [1, 1] },
    { name: 'connect two clips, 2 frames each', strategy: connectClips({ frames: 2 }), referenceLengths: [T, T] },
  ];
  log('');
  log(`plans for a ${T}-frame clip (G = generated, rR:F = frame F of reference R, @x = edit ratio):`);
  const planned: RecipePlan[] = recipes.map((r) => {
    const [plan] = planMaskStrategy({ strategies: [r.strategy], loopIndex: 0, targetFrames: T, referenceLengths: [r.referenceLengths] });
    log(`  ${r.name.padEnd(36)} "${r.strategy}"`);
    log(`    ${formatPlan(plan!)}`);
    return { ...r, plan: plan! };
  });
  const editEntryStep = editRatioEntryStep(0.4, 20);
  log(`with ratio 0.4 and 20 sampling steps, edited frames are held for steps 0..${editEntryStep - 1}, then denoised`);

  // 3. A long video: 4 clips of T frames, each continuing from the last 4 frames of the previous one.
  const L = Math.min(4, T - 1);
  const long = longVideo({ numFrames: T, conditionFrameLength: L, loop: 4, referenceFrames: 1, referenceLengths: [1] });
  log('');
  log(`long video: 4 loops of ${T} frames with ${L} condition frames = ${long.totalFrames} frames`);
  for (const s of long.loops) {
    log(
      `  loop ${s.loopIndex}: strategy "${s.strategy}", keeps frames ${s.keepFrom}..${T - 1} as video frames ${s.outputStart}..${s.outputEnd - 1}` +
        (s.conditionFrames.length ? `, conditioned on previous frames ${s.conditionFrames.join(',')}` : ''),
    );
    log(`    ${formatPlan({ mask: s.mask!, placements: s.placements!, groups: [] })}`);
  }
  // planLoops is the same without a first-clip reference (text to long video).
  const plain = planLoops({ numFrames: T, conditionFrameLength: L, loop: 3 });
  log(`text to long video, 3 loops: ${plain.totalFrames} frames, loop 2 uses "${plain.loops[2]!.strategy}"`);

  // 4. Prompt forms: options after the text (the reference's JSON suffix), `|k|` loop segments.
  const raw = '|0|a red ball rolls.|2|the ball stops.{"reference_path": "start.png;end.png", "mask_strategy": "0;0,1,0,-1,1"}';
  const ex = extractPromptOptions(raw);
  const prompt = {
    text: ex.text,
    references: parseReferencePaths(ex.options.referencePath),
    strategy: ex.options.maskStrategy,
    loopPrompts: splitLoopPrompts(ex.text, 4),
  };
  log('');
  log(`prompt "${raw}"`);
  log(`  text "${prompt.text}", references ${JSON.stringify(prompt.references)}, strategy "${prompt.strategy}"`);
  log(`  per loop: ${JSON.stringify(prompt.loopPrompts)}`);

  // 5. Training masks: true = generated (in the loss), false = a condition frame.
  const gen = new MaskGenerator(DEFAULT_MASK_RATIOS, { seed: 7 });
  const counts = new Map<string, number>();
  for (let i = 0; i < draws; i++) {
    const { type } = gen.draw(T);
    counts.set(type, (counts.get(type) ?? 0) + 1);
  }
  const frequencies: Record<string, number> = {};
  log('');
  log(`training mask types over ${draws} draws (T = ${T}):`);
  for (const [type, p] of Object.entries(DEFAULT_MASK_RATIOS) as Array<[MaskType, number]>) {
    frequencies[type] = (counts.get(type) ?? 0) / draws;
    log(`  ${type.padEnd(24)} ${frequencies[type]!.toFixed(3)}  (configured ${p})`);
  }
  const fmt = (m: boolean[]) => m.map((g) => (g ? '.' : 'C')).join('');
  log(`a batch of 4 (C = condition frame): ${gen.getMasks(4, T).map(fmt).join('  ')}`);
  // Resume: the state is JSON, saved with the checkpoint; the restored generator continues the stream.
  const saved = JSON.stringify(gen.state());
  const original = gen.getMasks(8, T);
  const restored = MaskGenerator.fromState(JSON.parse(saved)).getMasks(8, T);
  log(`after restoring the saved state, the next 8 masks are ${restored.every((m, i) => fmt(m) === fmt(original[i]!)) ? 'the same' : 'DIFFERENT'}`);

  return { parsed, errorCode, recipes: planned, long, editEntryStep, prompt, frequencies, resume: { restored, original } };
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  main().catch((e: unknown) => {
    console.error(`mask example failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
