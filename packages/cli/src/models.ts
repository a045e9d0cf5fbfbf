/**
 * Building the model stack for sampling: STDiT2 (a trainer checkpoint folder, an official
 * `model.safetensors` + `config.json`, or a preset with seeded random weights), the VAE and the
 * text encoder (`builtin` or a local folder). A trainer checkpoint records which VAE and text
 * encoder it was trained with (`train_config.json`), and those are the defaults.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '@opensora/core';
import { STDiT2, type STDiT2ConfigInput } from '@opensora/stdit';
import { createTextEncoder, type TextEncoderAdapter, type TextEncoderSpec } from '@opensora/text';
import { createVae, type VaeAdapter, type VaeSpec } from '@opensora/vae';
import { TRAIN_PRESET_NAMES, modelConfigOf, resolveTrainConfig, textSpecOf, vaeSpecOf, type TrainConfigInput } from '@opensora/trainer';

export interface ModelStack {
  model: STDiT2;
  vae: VaeAdapter;
  textEncoder: TextEncoderAdapter;
  /** Where each part came from, for logs. */
  sources: { model: string; vae: string; textEncoder: string };
  dispose(): void;
}

export interface ModelStackOptions {
  /** Checkpoint folder, model file/folder, a training preset name such as 'tiny' (random weights with its VAE and text encoder), or an STDiT2 preset name (default: 'tiny'). */
  model?: string;
  /** 'builtin' or a diffusers AutoencoderKL folder. */
  vae?: string;
  /** 'builtin' or a T5 folder. */
  textEncoder?: string;
  /** Seed of random weights when a preset is named. */
  seed?: number;
}

type Spec = { type: string; [k: string]: unknown };

/** The VAE / text-encoder specs a trainer checkpoint was made with (its `train_config.json`), if any. */
function trainingSpecs(dir: string): { vae?: Spec; textEncoder?: Spec } {
  for (const candidate of [path.join(dir, 'train_config.json'), path.join(dir, '..', 'train_config.json')]) {
    if (existsSync(candidate)) {
      const cfg = resolveTrainConfig(JSON.parse(readFileSync(candidate, 'utf8')) as TrainConfigInput);
      return { vae: vaeSpecOf(cfg) as Spec, textEncoder: textSpecOf(cfg) as Spec };
    }
  }
  return {};
}

/** A trainer checkpoint's `config.json` is camelCase (our STDiT2Config); the official one is snake_case. */
function camelCaseConfig(modelPath: string): STDiT2ConfigInput | undefined {
  const file = statSync(modelPath).isDirectory() ? path.join(modelPath, 'config.json') : path.join(path.dirname(modelPath), 'config.json');
  if (!existsSync(file)) return undefined;
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  if (!('hiddenSize' in raw)) return undefined;
  const { type: _type, freeze: _freeze, ...config } = raw;
  return config as STDiT2ConfigInput;
}

function specFor(kind: 'vae' | 'text', value: string | undefined, fromCkpt: Spec | undefined): Spec {
  if (value === undefined) return fromCkpt ?? { type: 'builtin' };
  if (value === 'builtin') return fromCkpt?.type === 'builtin' ? fromCkpt : { type: 'builtin' };
  if (!existsSync(value)) {
    throw new InvalidArgumentError(`--${kind === 'vae' ? 'vae' : 'text-encoder'} ${value}: no such folder`, {
      hint: "use 'builtin' or the path of a local folder",
    });
  }
  return kind === 'vae' ? { type: 'sd-vae', path: value } : { type: 't5', path: value };
}

export async function loadModelStack(o: ModelStackOptions): Promise<ModelStack> {
  let model: STDiT2 | null;
  let modelSource: string;
  let ckpt: ReturnType<typeof trainingSpecs> = {};
  const m = o.model ?? 'tiny';
  if (existsSync(m)) {
    const isDir = statSync(m).isDirectory();
    let modelPath = m;
    if (isDir && existsSync(path.join(m, 'model'))) modelPath = path.join(m, 'model'); // trainer checkpoint folder
    if (isDir) ckpt = trainingSpecs(m);
    model = STDiT2.fromPretrained(modelPath, { config: camelCaseConfig(modelPath) });
    modelSource = modelPath;
  } else if (TRAIN_PRESET_NAMES.includes(m)) {
    // A training preset (e.g. 'tiny'): random weights of its model, with its VAE and text encoder.
    const cfg = resolveTrainConfig(m);
    ckpt = { vae: vaeSpecOf(cfg) as Spec, textEncoder: textSpecOf(cfg) as Spec };
    model = null;
    modelSource = `train preset ${m} (random weights)`;
  } else {
    try {
      model = STDiT2.preset(m, {}, { seed: o.seed ?? 0 });
    } catch (e) {
      throw new InvalidArgumentError(`--model ${m} is neither a file/folder nor a preset (${(e as Error).message.split('\n')[0]})`);
    }
    modelSource = `preset ${m} (random weights)`;
  }
  const vaeSpec = specFor('vae', o.vae, ckpt.vae);
  const textSpec = specFor('text', o.textEncoder, ckpt.textEncoder);
  // No input range check: the long-video loop re-encodes raw, unclamped decoded clips, as the reference does.
  const vae = await createVae({ ...vaeSpec, rangeTolerance: false } as VaeSpec);
  let textEncoder: TextEncoderAdapter;
  if (model === null) {
    textEncoder = await createTextEncoder(textSpec as TextEncoderSpec);
    const cfg = resolveTrainConfig(m);
    model = new STDiT2(modelConfigOf(cfg, vae.latentChannels, textEncoder.captionChannels, textEncoder.modelMaxLength), { seed: o.seed ?? 0 });
  } else {
    textEncoder = await createTextEncoder(
      (textSpec.type === 'builtin'
        ? { captionChannels: model.config.captionChannels, modelMaxLength: model.config.modelMaxLength, ...textSpec }
        : textSpec) as TextEncoderSpec,
    );
  }
  const built: STDiT2 = model;
  if (textEncoder.captionChannels !== built.config.captionChannels) {
    throw new InvalidArgumentError(
      `text encoder gives ${textEncoder.captionChannels}-channel embeddings but the model expects ${built.config.captionChannels}`,
      { hint: 'use the text encoder the model was trained with' },
    );
  }
  if (vae.latentChannels !== built.config.inChannels) {
    throw new InvalidArgumentError(`the VAE gives ${vae.latentChannels} latent channels but the model expects ${built.config.inChannels}`, {
      hint: 'use the VAE the model was trained with',
    });
  }
  return {
    model: built,
    vae,
    textEncoder,
    sources: { model: modelSource, vae: JSON.stringify(vaeSpec), textEncoder: JSON.stringify(textSpec) },
    dispose() {
      built.dispose();
      vae.dispose();
      textEncoder.dispose();
    },
  };
}
