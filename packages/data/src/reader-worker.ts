/** Worker-thread entry of the dataset reader (piscina): decode + transform one sample. */
import { loadSample, type SampleTask, type SampleResult } from './sample.js';

export default async function run(task: SampleTask): Promise<Omit<SampleResult, 'video'>> {
  // `task.out` is a view over a SharedArrayBuffer owned by the caller: write in place, return facts only.
  const r = await loadSample(task);
  return { fps: r.fps, indices: r.indices, total: r.total, recounted: r.recounted };
}
