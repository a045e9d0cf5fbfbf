import { describe, expect, it } from 'vitest';
import { initBackend, tf } from '@opensora/core';
import { loadModelStack } from '@opensora/cli';
import { parseSynthCaption, SYNTH_DIRECTION_NAMES } from '@opensora/data';
import { alphasCumprodOf, linearBetaSchedule } from '@opensora/scheduler';
import { BuiltinVae } from '@opensora/vae';
import { analyzeFrames } from '../src/learning-check.js';
import { formatMotionProbe, motionProbe, OPPOSITE_DIRECTION, probeClip, rgbVideoToPixels, type ProbeDenoiser } from '../src/motion-probe.js';

await initBackend();
const alphaBar = alphasCumprodOf(linearBetaSchedule(1000));
const vae = new BuiltinVae({ patchSize: 2 });

/** An oracle that "knows" a clip from its caption (the forward or the still version), shrunk by 10%. */
function oracle(order: 'forward' | 'static', frames = 8): ProbeDenoiser {
  return (xt, t, captions, size) =>
    tf.tidy(() => {
      const x0 = tf.concat(
        captions.map((c) => vae.encode(rgbVideoToPixels(probeClip(parseSynthCaption(c)![0]!, size, frames, order)))),
        0,
      );
      const a = alphaBar[t]!;
      return tf.div(tf.sub(xt, tf.mul(x0, 0.9 * Math.sqrt(a))), Math.sqrt(1 - a));
    });
}

describe('probeClip', () => {
  it('moves the object the captioned way forward, the opposite way reversed, and not at all static', () => {
    for (const direction of SYNTH_DIRECTION_NAMES) {
      const scene = { shape: 'square' as const, color: 'red' as const, direction, background: 'blue' as const };
      const fwd = probeClip(scene, 32, 8, 'forward');
      const rev = probeClip(scene, 32, 8, 'reversed');
      expect(analyzeFrames(fwd).direction).toBe(direction);
      expect(analyzeFrames(rev).direction).toBe(OPPOSITE_DIRECTION[direction]);
      expect(analyzeFrames(probeClip(scene, 32, 8, 'static')).direction).toBeNull();
      // reversed is the forward clip backwards
      const plane = 32 * 32 * 3;
      expect(Buffer.from(rev.data.subarray(0, plane)).equals(Buffer.from(fwd.data.subarray(7 * plane)))).toBe(true);
    }
    expect(() => probeClip({ shape: 'square', color: 'red', direction: 'up', background: 'blue' }, 15, 8, 'forward')).toThrow(/even integer/);
  });
});

describe('motionProbe', () => {
  it('finds the caption and order in an oracle that knows the motion', () => {
    const r = motionProbe({ vae }, { size: 16, clips: 4, timesteps: [700, 300], denoise: oracle('forward') });
    expect(r.rows.map((x) => x.t)).toEqual([700, 300]);
    expect(r.captionGap).toBeGreaterThan(1);
    expect(r.orderGap).toBeGreaterThan(1);
    expect(r.staticGap).toBeGreaterThan(0.5);
    // the error does not depend on the noise: eps cancels, only x0 - 0.9 x0 remains
    for (const row of r.rows) expect(row.mse.forward).toBeGreaterThan(0);
  });

  it('never draws the object in the background colour, even with two colours', () => {
    const r = motionProbe({ vae }, { size: 16, clips: 4, timesteps: [300], colors: ['red', 'blue'], shapes: ['square'], denoise: oracle('forward') });
    expect(r.staticGap).toBeGreaterThan(0.5);
    expect(r.orderGap).toBeGreaterThan(0.5);
  });

  it('shows a still-world oracle as preferring stills and ignoring the direction word', () => {
    const r = motionProbe({ vae }, { size: 16, clips: 4, timesteps: [500], denoise: oracle('static') });
    expect(r.staticGap).toBeLessThan(-0.5);
    // the opposite direction has the same middle frame: no caption gap at all
    expect(Math.abs(r.captionGap)).toBeLessThan(1e-6);
    expect(formatMotionProbe(r)).toMatch(/static gap -\d+\.\d%/);
  });

  it('runs a model stack (random tiny weights) and rejects bad options', async () => {
    const stack = await loadModelStack({ model: 'tiny' });
    const r = motionProbe(stack, { size: 16, clips: 1, timesteps: [500] });
    for (const v of Object.values(r.rows[0]!.mse)) expect(Number.isFinite(v) && v > 0).toBe(true);
    // seeded noise at every timestep (the first one included): two runs give the same figures
    const again = motionProbe(stack, { size: 16, clips: 1, timesteps: [500] });
    expect(again.rows).toEqual(r.rows);
    expect(() => motionProbe(stack, { timesteps: [1000] })).toThrow(/\[0, 999\]/);
    expect(() => motionProbe({ vae })).toThrow(/needs a model/);
    stack.dispose();
  });
});
