import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderSynthFrame } from '@opensora/data';
import { escapeHtml, relativeUrl, renderGallery, writeGallery, type GalleryEntry } from '../src/gallery.js';
import { checkSample } from '../src/learning-check.js';

const dir = mkdtempSync(path.join(tmpdir(), 'gallery-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function videoCheck() {
  const [T, H, W] = [8, 32, 32];
  const frame = H * W * 3;
  const data = new Uint8Array(T * frame);
  for (let t = 0; t < T; t++) renderSynthFrame(data.subarray(t * frame, (t + 1) * frame), W, H, { shape: 'circle', color: 'red', background: 'blue', direction: 'left' }, t / (T - 1));
  // The prompt asks for a green object: colour wrong, background and direction right.
  return checkSample('a green circle moving left on a blue background', { data, frames: T, height: H, width: W });
}

describe('gallery', () => {
  it('escapes HTML and builds relative, encoded URLs', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    expect(relativeUrl('/a/b', '/a/b/media/x y.mp4')).toBe('media/x%20y.mp4');
    expect(relativeUrl('/a/b', '/a/c/s#1.png')).toBe('../c/s%231.png');
  });

  it('writes one self-contained page with videos, sheets, images, prompts and verdicts', async () => {
    const page = path.join(dir, 'out', 'gallery.html');
    const check = videoCheck();
    expect([check.objectColor, check.background, check.direction]).toEqual([false, true, true]);
    const entries: GalleryEntry[] = [
      { title: 'video 0', prompt: 'a green circle moving left on a blue background', path: path.join(dir, 'out', 'samples', 'sample 0.mp4'), sheet: path.join(dir, 'out', 'samples', 'sample0_sheet.png'), kind: 'video', check },
      { title: 'image <1>', prompt: 'a red square on a "white" background & more', path: 'out/samples/image1.png', kind: 'image' },
      { title: 'elsewhere', prompt: 'p', path: path.join(dir, 'other', 'v.mp4'), kind: 'video', check: { objectColor: null, background: null, direction: null } },
    ];
    const written = await writeGallery(page, entries, { title: 'Demo samples', report: 'LEARNING CHECK\nobject colour  1/2 <50%>', description: 'tiny model', baseDir: dir });
    expect(written).toBe(page);
    const html = readFileSync(page, 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<title>Demo samples</title>');
    expect(html).toContain('<video class="media" src="samples/sample%200.mp4" controls loop muted autoplay playsinline></video>');
    expect(html).toContain('<img class="sheet" src="samples/sample0_sheet.png"');
    // Relative entry paths resolve against baseDir, links are relative to the page's folder.
    expect(html).toContain('<img class="media" src="samples/image1.png" alt="a red square on a &quot;white&quot; background &amp; more">');
    expect(html).toContain('<video class="media" src="../other/v.mp4"');
    expect(html).toContain('<h2>image &lt;1&gt;</h2>');
    expect(html).toContain('<p class="prompt">a green circle moving left on a blue background</p>');
    expect(html).toContain('<pre class="report">LEARNING CHECK\nobject colour  1/2 &lt;50%&gt;</pre>');
    expect(html).toContain('<p>tiny model</p>');
    // Verdicts with what was seen.
    expect(html).toContain('<li class="bad"><span class="mark">✗</span> object colour <span class="detail">(seen: red)</span></li>');
    expect(html).toContain('<li class="ok"><span class="mark">✓</span> background <span class="detail">(seen: blue)</span></li>');
    expect(html).toContain('<li class="ok"><span class="mark">✓</span> direction <span class="detail">(seen: left)</span></li>');
    expect(html).toContain('<li class="na"><span class="mark">–</span> direction</li>');
    expect((html.match(/<figure>/g) ?? []).length).toBe(3);
    // Self-contained: nothing fetched from elsewhere.
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<script|<link/);
    // Atomic write: no temporary file left beside the page; rewriting replaces it whole.
    expect(readdirSync(path.dirname(page))).toEqual(['gallery.html']);
    await writeGallery(page, [entries[1]!], { baseDir: dir });
    const again = readFileSync(page, 'utf8');
    expect((again.match(/<figure>/g) ?? []).length).toBe(1);
    expect(again).toContain('<title>OpenSora.ts samples</title>');
    expect(again).not.toContain('<pre');
    expect(readdirSync(path.dirname(page))).toEqual(['gallery.html']);
  });

  it('resolves relative paths against the working directory by default', () => {
    const html = renderGallery(process.cwd(), [{ title: 't', prompt: 'p', path: 'media/a.png', kind: 'image' }]);
    expect(html).toContain('src="media/a.png"');
  });
});
