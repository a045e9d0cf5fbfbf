import { createHash } from 'node:crypto';
import { BuiltinTextEncoder } from '../src/index.js';

export const DIGEST_PROMPTS = ['a red ball rolls on the grass', 'Ein Hund läuft im Schnee!', '夕日の海', '', 'x'.repeat(3) + ' 42 words'];

/** SHA-256 of the embeddings and masks of a few prompts, for two seeds and sizes. */
export function builtinDigest(): { a: string; b: string; first: number[] } {
  const hash = (enc: BuiltinTextEncoder) => {
    const out = enc.encode(DIGEST_PROMPTS);
    const e = out.embeddings.dataSync() as Float32Array;
    const m = out.mask.dataSync() as Int32Array;
    const h = createHash('sha256').update(new Uint8Array(e.buffer, e.byteOffset, e.byteLength)).update(new Uint8Array(m.buffer, m.byteOffset, m.byteLength)).digest('hex');
    const first = Array.from(e.subarray(0, 4));
    out.embeddings.dispose();
    out.mask.dispose();
    return { h, first };
  };
  const a = hash(new BuiltinTextEncoder({ captionChannels: 64, modelMaxLength: 16 }));
  const b = hash(new BuiltinTextEncoder({ captionChannels: 33, modelMaxLength: 7, seed: 'other' }));
  return { a: a.h, b: b.h, first: a.first };
}
