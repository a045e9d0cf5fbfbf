/**
 * Loading the official Open-Sora 1.1 weights from local folders (nothing is downloaded):
 *
 *   - the STDiT2 checkpoint (e.g. a local copy of hpcai-tech/OpenSora-STDiT-v2-stage3:
 *     `model.safetensors` + `config.json`)            -> `STDiT2.fromPretrained(dir)`
 *   - the SD VAE (stabilityai/sd-vae-ft-ema: `config.json` +
 *     `diffusion_pytorch_model.safetensors`)            -> `createVae({ type: 'sd-vae', path })`
 *   - the T5 text encoder (DeepFloyd/t5-v1_1-xxl as safetensors: `config.json`,
 *     `model.safetensors` or its sharded index, `tokenizer.json`) -> `createTextEncoder({ type: 't5', path })`
 *
 * or all three at once with `loadModelStack` of `@opensora/cli` (what `opensora sample --model
 * --vae --text-encoder` does). It also prints the parameter counts of the official configs, from
 * shapes alone (nothing is allocated).
 *
 * With real folders:
 *   npx tsx examples/src/load-official-weights.ts --model ~/models/OpenSora-STDiT-v2-stage3 \
 *     --vae ~/models/sd-vae-ft-ema --text-encoder ~/models/t5-v1_1-xxl [--sample]
 * (the full-size T5-XXL encoder needs about 19 GB of memory in float32; `--sample` then makes one
 * 2-step 64x64 image to show the three parts fit together).
 *
 * Without arguments, it first writes tiny random weights in the same three layouts, with the
 * packages' own writers (`STDiT2.savePretrained`, `AutoencoderKL.stateDict()` + `saveSafetensors`,
 * `randomT5Weights` + `t5ConfigToJson`), then loads them exactly as it would load the real ones.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatBackend, initBackend, saveSafetensors } from '@opensora/core';
import { generate, loadModelStack, type GeneratedSample } from '@opensora/cli';
import { createScheduler } from '@opensora/scheduler';
import { STDiT2, type ParameterCount } from '@opensora/stdit';
import { T5_V1_1_XXL_CONFIG, countT5EncoderParameters, createTextEncoder, randomT5Weights, t5ConfigToJson, t5StandInTokenizerJson, type T5Config } from '@opensora/text';
import { AutoencoderKL, SD_VAE_CONFIG, TINY_VAE_CONFIG, createVae } from '@opensora/vae';

export interface OfficialWeightsOptions {
  /** Folders of the three parts; when all are missing, tiny random stand-ins are written to `workDir`. */
  model?: string;
  vae?: string;
  textEncoder?: string;
  workDir?: string;
  /** Make one image with the loaded parts (default: true for the stand-ins, false for real weights). */
  sample?: boolean;
  log?: (line: string) => void;
}

export interface OfficialWeightsResult {
  counts: { stdit2: ParameterCount; sdVae: number; t5xxl: number };
  folders: { model: string; vae: string; textEncoder: string };
  loaded: {
    modelConfig: STDiT2['config'];
    modelParameters: number;
    vaeLatentChannels: number;
    vaeSpatialCompression: number;
    textChannels: number;
    textMaxLength: number;
    /** Shape of the embeddings of one prompt. */
    embeddingShape: number[];
  };
  /** The stack from `loadModelStack` with the same folders: its model's parameter count and sources. */
  stack: { modelParameters: number; sources: Record<string, string> };
  sample?: GeneratedSample;
}

const M = (n: number) => `${(n / 1e6).toFixed(2)}M`;
const GB = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** Writes tiny random weights in the three official layouts; returns the folders. */
export async function writeStandIns(dir: string): Promise<{ model: string; vae: string; textEncoder: string }> {
  const folders = { model: path.join(dir, 'OpenSora-STDiT-v2-stage3'), vae: path.join(dir, 'sd-vae-ft-ema'), textEncoder: path.join(dir, 't5-v1_1-xxl') };
  for (const f of Object.values(folders)) mkdirSync(f, { recursive: true });

  // T5: a 2-layer encoder with T5-v1.1's structure (gated gelu, relative attention buckets).
  const t5: T5Config = { ...T5_V1_1_XXL_CONFIG, vocabSize: 64, dModel: 16, dKv: 4, dFf: 24, numLayers: 2, numHeads: 4 };
  writeFileSync(path.join(folders.textEncoder, 'config.json'), JSON.stringify(t5ConfigToJson(t5), null, 2));
  const words = ['a', 'red', 'blue', 'green', 'circle', 'square', 'moving', 'left', 'right', 'on', 'background'];
  // A stand-in tokenizer.json over a few words. The real T5 folder ships its own; save one with
  // transformers' `AutoTokenizer.save_pretrained` if it has only `spiece.model`.
  writeFileSync(path.join(folders.textEncoder, 'tokenizer.json'), JSON.stringify(t5StandInTokenizerJson(words)));
  writeFileSync(path.join(folders.textEncoder, 'tokenizer_config.json'), JSON.stringify({ pad_token: '<pad>', eos_token: '</s>', unk_token: '<unk>' }));
  const t5Weights = Object.fromEntries(Object.entries(randomT5Weights(t5, 1)).map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }]));
  await saveSafetensors(path.join(folders.textEncoder, 'model.safetensors'), t5Weights, { metadata: { format: 'pt' } });

  // SD VAE: the SD VAE's architecture (4 levels, 8x spatial compression, 4 latent channels) with few channels.
  const vae = new AutoencoderKL(TINY_VAE_CONFIG, { init: 'random', seed: 2 });
  const sd = vae.stateDict();
  await saveSafetensors(path.join(folders.vae, 'diffusion_pytorch_model.safetensors'), sd, { metadata: { format: 'pt' } });
  for (const t of Object.values(sd)) t.dispose();
  vae.dispose();
  writeFileSync(path.join(folders.vae, 'config.json'), JSON.stringify({ _class_name: 'AutoencoderKL', ...TINY_VAE_CONFIG }, null, 2));

  // STDiT2: STDiT2-XL/2's structure (qk-norm, 200 text tokens, learned sigma) at a tiny width and depth.
  const model = STDiT2.preset('STDiT2-XL/2', { depth: 1, hiddenSize: 48, numHeads: 2, captionChannels: t5.dModel, inputSqSize: 32 }, { seed: 3 });
  await model.savePretrained(folders.model); // model.safetensors (official key names) + config.json (snake_case)
  model.dispose();
  return folders;
}

export async function main(o: OfficialWeightsOptions = {}): Promise<OfficialWeightsResult> {
  const log = o.log ?? ((s: string) => console.log(s));
  log(`backend: ${formatBackend(await initBackend())}`);

  // Parameter counts of the official configs, from shapes alone.
  const stdit2 = STDiT2.countParameters('STDiT2-XL/2');
  const sdVae = AutoencoderKL.countParameters(SD_VAE_CONFIG);
  const t5xxl = countT5EncoderParameters(T5_V1_1_XXL_CONFIG);
  log('official parameter counts (float32 / bfloat16 size):');
  log(`  STDiT2-XL/2      ${M(stdit2.total)} (${M(stdit2.trainable)} trainable, ${stdit2.keys} tensors)  ${GB(stdit2.bytesF32)} / ${GB(stdit2.total * 2)}`);
  log(`  SD VAE           ${M(sdVae)}  ${GB(sdVae * 4)} / ${GB(sdVae * 2)}`);
  log(`  T5-v1.1-XXL enc. ${M(t5xxl)}  ${GB(t5xxl * 4)} / ${GB(t5xxl * 2)}`);

  const real = o.model !== undefined || o.vae !== undefined || o.textEncoder !== undefined;
  if (real && !(o.model && o.vae && o.textEncoder)) throw new Error('give all three of --model, --vae and --text-encoder (or none, for the tiny stand-ins)');
  let folders: OfficialWeightsResult['folders'];
  if (real) {
    folders = { model: o.model!, vae: o.vae!, textEncoder: o.textEncoder! };
  } else {
    const dir = path.resolve(o.workDir ?? path.join(tmpdir(), 'opensora-official-layout-example'));
    rmSync(dir, { recursive: true, force: true });
    folders = await writeStandIns(dir);
    log(`wrote tiny random stand-ins in the official layouts under ${dir}`);
  }

  // The three parts, one by one.
  const model = STDiT2.fromPretrained(folders.model);
  const vae = await createVae({ type: 'sd-vae', path: folders.vae });
  const text = await createTextEncoder({ type: 't5', path: folders.textEncoder, modelMaxLength: model.config.modelMaxLength });
  const enc = text.encode(['a red circle moving left on a blue background']);
  const loaded: OfficialWeightsResult['loaded'] = {
    modelConfig: model.config,
    modelParameters: model.countParameters().total,
    vaeLatentChannels: vae.latentChannels,
    vaeSpatialCompression: vae.spatialCompression,
    textChannels: text.captionChannels,
    textMaxLength: text.modelMaxLength,
    embeddingShape: [...enc.embeddings.shape],
  };
  enc.embeddings.dispose();
  enc.mask.dispose();
  log(`STDiT2: depth ${model.config.depth}, hidden ${model.config.hiddenSize}, ${M(loaded.modelParameters)} parameters, ${model.config.modelMaxLength} text tokens`);
  log(`VAE: ${vae.latentChannels} latent channels, ${vae.spatialCompression}x spatial compression`);
  log(`T5: ${text.captionChannels}-channel embeddings, one prompt -> [${loaded.embeddingShape.join(', ')}]`);
  const fits = text.captionChannels === model.config.captionChannels && vae.latentChannels === model.config.inChannels;
  log(`the parts fit together: ${fits ? 'yes' : `NO (caption channels ${model.config.captionChannels} vs ${text.captionChannels}, latent channels ${model.config.inChannels} vs ${vae.latentChannels})`}`);
  model.dispose();
  vae.dispose();
  text.dispose();

  // All three at once: what `opensora sample --model M --vae V --text-encoder T` loads.
  const stack = await loadModelStack({ model: folders.model, vae: folders.vae, textEncoder: folders.textEncoder });
  const stackInfo = { modelParameters: stack.model.countParameters().total, sources: stack.sources };
  log(`loadModelStack: ${JSON.stringify(stack.sources)}`);
  let sample: GeneratedSample | undefined;
  try {
    if (o.sample ?? !real) {
      const outDir = path.join(real ? tmpdir() : path.dirname(folders.model), 'samples');
      const res = await generate({
        ...stack,
        scheduler: createScheduler({ type: 'iddpm', numSamplingSteps: 2, cfgScale: 7.0 }),
        prompts: ['a red circle on a blue background'],
        imageSize: [64, 64],
        numFrames: 1,
        saveDir: outDir,
        sampleName: 'official_layout',
      });
      sample = res.samples[0];
      log(`one image with the loaded weights: ${sample?.path}`);
    }
  } finally {
    stack.dispose();
  }
  return { counts: { stdit2, sdVae, t5xxl }, folders, loaded, stack: stackInfo, ...(sample ? { sample } : {}) };
}

const isMain = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, vae: { type: 'string' }, 'text-encoder': { type: 'string' }, sample: { type: 'boolean' } },
  });
  main({ model: values.model, vae: values.vae, textEncoder: values['text-encoder'], sample: values.sample }).catch((e: unknown) => {
    console.error(`loading failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  });
}
