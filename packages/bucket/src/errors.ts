/**
 * The one error class of @opensora/bucket. `code` says what kind of problem it is, the message says
 * what is wrong (naming the resolution, frame key or row at fault) and how to fix it.
 */
export type BucketErrorCode =
  /** A bucket config entry is malformed (unknown resolution, bad keep probability or batch size, bad frame key). */
  | 'E_BUCKET_CONFIG'
  /** A custom resolution is invalid or clashes with an existing name. */
  | 'E_BUCKET_RESOLUTION'
  /** A function argument is out of range (negative seed, frame interval 0, rank >= numReplicas, ...). */
  | 'E_BUCKET_ARG'
  /** Dataset rows or columns are malformed (missing or negative num_frames / height / width). */
  | 'E_BUCKET_DATA'
  /** A sampler state dict is malformed or belongs to another dataset / config. */
  | 'E_BUCKET_STATE'
  /** A grouping worker thread failed. */
  | 'E_BUCKET_WORKER';

export class BucketError extends Error {
  readonly code: BucketErrorCode;
  constructor(code: BucketErrorCode, message: string) {
    super(message);
    this.name = 'BucketError';
    this.code = code;
  }
}
