import type { tf } from '@opensora/core';

/** What every text encoder returns for a batch of captions. */
export interface TextEncoderOutput {
  /** Caption features, [B, 1, L, C] float32 (the reference's `last_hidden_state[:, None]`). */
  embeddings: tf.Tensor;
  /** [B, L] int32: 1 for real tokens (the appended EOS included), 0 for padding. */
  mask: tf.Tensor;
}

/**
 * The narrow interface the model, the trainer and the CLI see. `encode` pads every caption to
 * `modelMaxLength` tokens and truncates longer ones as the reference's tokenizer call does
 * (`padding="max_length", truncation=True, add_special_tokens=True`).
 * The learned null caption for classifier-free guidance belongs to the diffusion model
 * (`y_embedder.y_embedding`); see `nullEmbeddings`.
 */
export interface TextEncoderAdapter {
  encode(texts: string[]): TextEncoderOutput;
  /** Feature size C of the embeddings (4096 for T5-XXL). */
  readonly captionChannels: number;
  /** Token length L of every encoded batch (200 in the v1.1 configs). */
  readonly modelMaxLength: number;
  /**
   * A string that changes whenever the encoder would produce different embeddings for the same
   * caption (weights, tokenizer, length). The embedding cache refuses shards with another id.
   */
  readonly id: string;
  dispose(): void;
}

/** Token ids of a padded, truncated batch. */
export interface TokenizedBatch {
  /** [B * L] row-major token ids (pad id in padded slots). */
  ids: Int32Array;
  /** [B * L] 1 for real tokens and EOS, 0 for padding. */
  mask: Int32Array;
  /** Number of real tokens (EOS included) per caption. */
  lengths: number[];
  /** Whether the caption had to be cut to fit `modelMaxLength`. */
  truncated: boolean[];
  batchSize: number;
  maxLength: number;
}
