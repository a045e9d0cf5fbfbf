/**
 * The narrow interfaces the training loop needs from the model, VAE, text encoder, scheduler,
 * dataset reader and batch sampler. The packages of this monorepo implement them (see
 * `components.ts`); anything else with the same shape plugs in too.
 */
import type { tf, Rng } from '@opensora/core';
import type { Sample } from '@opensora/data';

/** The model inputs (STDiT2's forward argument). */
export interface ModelInputs {
  x: tf.Tensor;
  timestep: tf.Tensor;
  y: tf.Tensor;
  mask?: tf.Tensor | null;
  xMask?: tf.Tensor | null;
  numFrames: tf.Tensor;
  height: tf.Tensor;
  width: tf.Tensor;
  ar: tf.Tensor;
  fps: tf.Tensor;
  [key: string]: unknown;
}

export interface TrainableModel {
  forward(inputs: ModelInputs, options?: { training?: boolean; rng?: Rng; gradientCheckpointing?: boolean }): tf.Tensor;
  /** Trainable parameters by official key name. */
  parameters(): Map<string, tf.Variable>;
  /** Every entry of the state dict (live tensors: the loop never disposes them). */
  stateDict(): Map<string, tf.Tensor> | Record<string, tf.Tensor>;
  loadStateDict(record: Record<string, tf.Tensor>, options?: { strict?: boolean }): unknown;
  /** Written to `model/config.json` of each checkpoint when present. */
  readonly config?: unknown;
  gradientCheckpointing?: boolean;
  dispose(): void;
}

export interface TrainVae {
  encode(video: tf.Tensor, options?: { rng?: Rng; sample?: boolean }): tf.Tensor;
  readonly latentChannels: number;
  dispose(): void;
}

export interface TrainTextEncoder {
  encode(texts: string[]): { embeddings: tf.Tensor; mask: tf.Tensor };
  readonly captionChannels: number;
  readonly modelMaxLength: number;
  dispose(): void;
}

export interface TrainScheduler {
  trainingLosses(args: {
    model: (args: { x: tf.Tensor; timestep: tf.Tensor; xMask?: tf.Tensor; [k: string]: unknown }) => tf.Tensor;
    xStart: tf.Tensor;
    t: Int32Array | tf.Tensor;
    modelKwargs: Record<string, unknown>;
    mask?: tf.Tensor;
    rng?: Rng;
    noise?: tf.Tensor;
  }): { loss: tf.Tensor; mse: tf.Tensor; vb?: tf.Tensor };
  sampleTimesteps(batchSize: number, rng: Rng): Int32Array | tf.Tensor;
}

/** One sample as the reader returns it: @opensora/data's `Sample` fields the loop uses. */
export type TrainSample = Pick<Sample, 'video' | 'shape' | 'text' | 'numFrames' | 'height' | 'width' | 'ar' | 'fps'> & {
  /** The file actually read (a bad file may have been replaced by another sample of the bucket). */
  path?: string;
};

export interface TrainReader {
  /** `bucket` ('res/T/ar') lets a reader replace a bad file by another sample of the same bucket. */
  read(index: number, thw: [number, number, number], rng?: Rng, bucket?: string): Promise<TrainSample>;
  close?(): void | Promise<void>;
}

export interface TrainBatch {
  indices: number[];
  bucketId: readonly [string, number, string];
  thw: readonly [number, number, number];
}

/** The batch sampler (@opensora/bucket's VariableVideoBatchSampler has this shape). */
export interface TrainSampler {
  setEpoch(epoch: number): void;
  /** Steps per epoch (of the current epoch). */
  readonly length: number;
  /** The batch of a step of the current epoch (random access). */
  batchAt(step: number): TrainBatch;
  /** JSON-safe position after `stepsDone` steps (saved in each checkpoint). */
  stateDict?(stepsDone: number): unknown;
  /** Checks and restores a saved position; throws when it belongs to another dataset or bucket config. */
  loadStateDict?(state: unknown): void;
}

/** Everything the loop runs on. */
export interface TrainComponents {
  model: TrainableModel;
  vae: TrainVae;
  textEncoder: TrainTextEncoder;
  scheduler: TrainScheduler;
  reader: TrainReader;
  /** Builds the batch sampler for a seed (called once per run, after a resume knows its seed). */
  makeSampler(seed: number): TrainSampler;
  /** Dataset rows (for error messages: the path of a sample). */
  rows?: ReadonlyArray<{ path?: string }>;
  /** Releases what `createComponents` made (models, encoders, reader). */
  dispose(): void | Promise<void>;
}
