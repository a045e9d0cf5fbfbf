/**
 * One self-contained HTML page showing the demo's samples: each video (`<video controls loop
 * muted autoplay>`) or image, its contact sheet, its prompt and the learning-check verdicts.
 * Media are linked relative to the page's folder, so the folder can be moved or served as is.
 */
import path from 'node:path';
import { atomicWriteFile } from '@opensora/core';
import type { FrameAnalysis, SampleCheck } from './learning-check.js';

export interface GalleryEntry {
  title: string;
  prompt: string;
  /** png (image) or mp4 (video); absolute, or relative to `options.baseDir`. */
  path: string;
  /** Contact sheet image shown under a video; absolute, or relative to `options.baseDir`. */
  sheet?: string;
  kind: 'image' | 'video';
  /** Learning-check verdicts for this sample (see `checkSample`). */
  check?: Pick<SampleCheck, 'objectColor' | 'background' | 'direction'> & Partial<Pick<SampleCheck, 'analysis'>>;
}

export interface GalleryOptions {
  /** Page title and heading. Default 'OpenSora.ts samples'. */
  title?: string;
  /** Preformatted text shown above the samples (e.g. `formatLearningReport(...)`). */
  report?: string;
  /** Free text under the heading. */
  description?: string;
  /** Folder that relative entry paths are resolved against. Default `process.cwd()`. */
  baseDir?: string;
}

export function escapeHtml(s: string): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** URL of `target` relative to the folder `fromDir`, with '/' separators and each segment percent-encoded. */
export function relativeUrl(fromDir: string, target: string): string {
  const rel = path.relative(fromDir, target).split(path.sep).join('/');
  return rel
    .split('/')
    .map((seg) => (seg === '..' || seg === '.' ? seg : encodeURIComponent(seg)))
    .join('/');
}

function verdict(label: string, v: boolean | null | undefined, detail: string): string {
  const cls = v === true ? 'ok' : v === false ? 'bad' : 'na';
  const mark = v === true ? '✓' : v === false ? '✗' : '–';
  return `<li class="${cls}"><span class="mark">${mark}</span> ${escapeHtml(label)}${detail ? ` <span class="detail">(${escapeHtml(detail)})</span>` : ''}</li>`;
}

function checkHtml(check: GalleryEntry['check']): string {
  if (!check) return '';
  const a = check.analysis ?? [];
  const seen = (f: (x: FrameAnalysis) => string): string =>
    a.length ? `seen: ${a.map(f).join(' / ')}` : '';
  return [
    '<ul class="check">',
    verdict('object colour', check.objectColor, seen((x) => x.object?.name ?? 'none')),
    verdict('background', check.background, seen((x) => x.background?.name ?? 'none')),
    verdict('direction', check.direction, seen((x) => x.direction ?? 'none')),
    '</ul>',
  ].join('');
}

const STYLE = `
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#fafafa;color:#222}
h1{font-size:1.4rem}
pre.report{background:#fff;border:1px solid #ddd;padding:.75rem;overflow-x:auto}
.grid{display:flex;flex-wrap:wrap;gap:1rem}
figure{background:#fff;border:1px solid #ddd;margin:0;padding:.75rem;max-width:22rem}
figure video,figure img.media{width:16rem;image-rendering:pixelated;display:block;background:#000}
figure img.sheet{max-width:100%;image-rendering:pixelated;display:block;margin-top:.5rem}
figcaption h2{font-size:1rem;margin:.5rem 0 .25rem}
.prompt{font-style:italic;margin:.25rem 0}
ul.check{list-style:none;padding:0;margin:.25rem 0}
li.ok .mark{color:#080}li.bad .mark{color:#c00}li.na .mark{color:#888}
.detail{color:#666;font-size:.9em}
`;

/** Builds the page's HTML (links relative to `pageDir`). */
export function renderGallery(pageDir: string, entries: readonly GalleryEntry[], options: GalleryOptions = {}): string {
  const baseDir = path.resolve(options.baseDir ?? process.cwd());
  const url = (p: string): string => relativeUrl(path.resolve(pageDir), path.resolve(baseDir, p));
  const title = options.title ?? 'OpenSora.ts samples';
  const figures = entries.map((e) => {
    const src = escapeHtml(url(e.path));
    const media =
      e.kind === 'video'
        ? `<video class="media" src="${src}" controls loop muted autoplay playsinline></video>`
        : `<img class="media" src="${src}" alt="${escapeHtml(e.prompt)}">`;
    const sheet = e.sheet ? `<img class="sheet" src="${escapeHtml(url(e.sheet))}" alt="contact sheet: ${escapeHtml(e.prompt)}">` : '';
    return [
      '<figure>',
      media,
      sheet,
      '<figcaption>',
      `<h2>${escapeHtml(e.title)}</h2>`,
      `<p class="prompt">${escapeHtml(e.prompt)}</p>`,
      checkHtml(e.check),
      '</figcaption>',
      '</figure>',
    ].join('\n');
  });
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeHtml(title)}</h1>`,
    options.description ? `<p>${escapeHtml(options.description)}</p>` : '',
    options.report ? `<pre class="report">${escapeHtml(options.report)}</pre>` : '',
    '<div class="grid">',
    ...figures,
    '</div>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** Writes the gallery page to `file` atomically; returns the absolute path written. */
export async function writeGallery(file: string, entries: readonly GalleryEntry[], options: GalleryOptions = {}): Promise<string> {
  const target = path.resolve(file);
  await atomicWriteFile(target, renderGallery(path.dirname(target), entries, options));
  return target;
}
