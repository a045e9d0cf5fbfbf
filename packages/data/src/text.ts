/**
 * Caption text utilities of datautil: the DeepFloyd/PixArt T5 caption cleaner (`--clean-caption`),
 * the LLaVA prefix remover (`--refine-llm-caption`), URL detection, a language heuristic and a
 * token-count approximation.
 *
 * Differences from the reference, stated: the cleaner has no `ftfy` (mojibake repair) step and
 * strips HTML tags with a regex instead of BeautifulSoup; Python's Unicode-aware `\w`/`\b` are
 * ASCII here. `isEnglish` is a small stop-word heuristic, not the lingua model.
 */

const BAD_PUNCT = /[#®•©™&@·º½¾¿¡§~)(\][}{|\\/*]{1,}/g;

function unquotePlus(s: string): string {
  const t = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(t);
  } catch {
    // Decode valid %XX runs only (Python's unquote leaves invalid ones as they are).
    return t.replace(/(%[0-9a-fA-F]{2})+/g, (m) => {
      try {
        return decodeURIComponent(m);
      } catch {
        return m;
      }
    });
  }
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', '#39': "'" };

/** html.unescape for the common named and numeric entities. */
export function htmlUnescape(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-zA-Z]+|#39);?/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    return ENTITIES[e] ?? m;
  });
}

function basicClean(text: string): string {
  return htmlUnescape(htmlUnescape(text)).trim();
}

/** One pass of the T5 caption cleaner (`clean_caption`). The output is lower-cased. */
export function cleanCaptionOnce(input: string): string {
  let c = String(input);
  c = unquotePlus(c);
  c = c.trim().toLowerCase();
  c = c.replace(/<person>/g, 'person');
  // urls
  c = c.replace(/\b((?:https?:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))/g, '');
  c = c.replace(/\b((?:www:(?:\/{1,3}|[a-zA-Z0-9%])|[a-zA-Z0-9.-]+[.](?:com|co|ru|net|org|edu|gov|it)[\w/-]*\b\/?(?!@)))/g, '');
  // html (BeautifulSoup(...).text)
  c = c.replace(/<[^>]*>/g, '');
  // @nickname
  c = c.replace(/@[\w\d]+\b/g, '');
  // CJK strokes ... CJK unified ideographs
  c = c.replace(/[\u31c0-\u31ef]+/g, '');
  c = c.replace(/[\u31f0-\u31ff]+/g, '');
  c = c.replace(/[\u3200-\u32ff]+/g, '');
  c = c.replace(/[\u3300-\u33ff]+/g, '');
  c = c.replace(/[\u3400-\u4dbf]+/g, '');
  c = c.replace(/[\u4dc0-\u4dff]+/g, '');
  c = c.replace(/[\u4e00-\u9fff]+/g, '');
  // all kinds of dashes -> "-"
  c = c.replace(/[\u002D\u058A\u05BE\u1400\u1806\u2010-\u2015\u2E17\u2E1A\u2E3A\u2E3B\u2E40\u301C\u3030\u30A0\uFE31\uFE32\uFE58\uFE63\uFF0D]+/g, '-');
  // quotes to one standard
  c = c.replace(/[`´«»“”¨]/g, '"');
  c = c.replace(/[‘’]/g, "'");
  c = c.replace(/&quot;?/g, '');
  c = c.replace(/&amp/g, '');
  // ip addresses
  c = c.replace(/\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/g, ' ');
  // article ids
  c = c.replace(/\d:\d\d\s+$/g, '');
  // literal \n
  c = c.replace(/\\n/g, ' ');
  c = c.replace(/#\d{1,3}\b/g, '');
  c = c.replace(/#\d{5,}\b/g, '');
  c = c.replace(/\b\d{6,}\b/g, '');
  // filenames
  c = c.replace(/[\S]+\.(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp3|mp4)/g, '');
  c = c.replace(/["']{2,}/g, '"');
  c = c.replace(/[.]{2,}/g, ' ');
  c = c.replace(BAD_PUNCT, ' ');
  c = c.replace(/\s+\.\s+/g, ' ');
  // this-is-my-cute-cat / this_is_my_cute_cat
  if ((c.match(/[-_]/g) ?? []).length > 3) c = c.replace(/[-_]/g, ' ');
  c = basicClean(c);
  c = c.replace(/\b[a-zA-Z]{1,3}\d{3,15}\b/g, '');
  c = c.replace(/\b[a-zA-Z]+\d+[a-zA-Z]+\b/g, '');
  c = c.replace(/\b\d+[a-zA-Z]+\d+\b/g, '');
  c = c.replace(/(worldwide\s+)?(free\s+)?shipping/g, '');
  c = c.replace(/(free\s)?download(\sfree)?/g, '');
  c = c.replace(/\bclick\b\s(?:for|on)\s\w+/g, '');
  c = c.replace(/\b(?:png|jpg|jpeg|bmp|webp|eps|pdf|apk|mp3|mp4)(\simage[s]?)?/g, '');
  c = c.replace(/\bpage\s+\d+\b/g, '');
  c = c.replace(/\b\d*[a-zA-Z]+\d+[a-zA-Z]+\d+[a-zA-Z\d]*\b/g, ' ');
  c = c.replace(/\b\d+\.?\d*[xх×]\d+\.?\d*\b/g, '');
  c = c.replace(/\b\s+:\s+/g, ': ');
  c = c.replace(/(\D[,./])\b/g, '$1 ');
  c = c.replace(/\s+/g, ' ');
  c = c.replace(/^["']([\w\W]+)["']$/, '$1');
  c = c.replace(/^['_,\-:;]/, '');
  c = c.replace(/['_,\-:\-+]$/, '');
  c = c.replace(/^\.\S+$/, '');
  return c.trim();
}

/** `--clean-caption`: the cleaner applied twice, as the reference does. */
export function cleanCaption(text: string): string {
  return cleanCaptionOnce(cleanCaptionOnce(text));
}

const LLM_PREFIXES = [
  'The video shows',
  'The video captures',
  'The video features',
  'The video depicts',
  'The video presents',
  'The video is ',
  'In the video,',
  'The image shows',
  'The image captures',
  'The image features',
  'The image depicts',
  'The image presents',
  'The image is ',
  'The image portrays',
  'In the image,',
];

/** `--refine-llm-caption`: drop a LLaVA opening ("The video shows", ...), capitalise the rest. */
export function refineLlmCaption(text: string): string {
  for (const p of LLM_PREFIXES) {
    if (text.startsWith(p) || text.startsWith(p.toLowerCase())) {
      const rest = text.slice(p.length).trim();
      return rest ? rest[0]!.toUpperCase() + rest.slice(1) : rest;
    }
  }
  return text;
}

/** `--remove-url`: true when the text contains an http(s) URL. */
export function hasUrl(text: string): boolean {
  return /https?:\/\/\S+/.test(text);
}

const EN_WORDS = new Set(
  'a an the and or but of in on at to from with by for as is are was were be been being it its this that these those there here he she they we you i his her their our your my not no yes do does did has have had will would can could should may might must shall into over under up down left right out off about above below between through during before after while then than so very more most some any each every all both few many much other such only own same just also again once where when why how what which who whom whose one two three background moving camera video image scene shows man woman people'
    .split(' '),
);
const OTHER_WORDS = new Set(
  'le la les un une des et est dans sur avec pour pas du au aux der die das und ist ein eine nicht mit auf zu den dem el los las y es en con por para una del il lo gli di che per non della het een van zijn niet op dat o os um uma com não'.split(' '),
);

/**
 * Heuristic English check for `--lang en` (the reference uses lingua): the text must be mostly
 * Latin letters, and English function words must outnumber those of French, German, Spanish,
 * Italian, Dutch and Portuguese. Captions without any function word count as English only when
 * they are pure ASCII.
 */
export function isEnglish(text: string): boolean {
  const letters = text.match(/\p{L}/gu) ?? [];
  if (letters.length === 0) return false;
  const latin = letters.filter((ch) => /\p{Script=Latin}/u.test(ch)).length;
  if (latin / letters.length < 0.9) return false;
  const words = text.toLowerCase().match(/\p{L}+/gu) ?? [];
  let en = 0;
  let other = 0;
  for (const w of words) {
    if (EN_WORDS.has(w)) en++;
    if (OTHER_WORDS.has(w)) other++;
  }
  // eslint-disable-next-line no-control-regex
  if (en === 0 && other === 0) return /^[\x00-\x7f]*$/.test(text);
  return en > other;
}

/**
 * Approximate T5 token count (with EOS) when no tokenizer is supplied: sentencepiece splits
 * words into pieces of about 4 characters and punctuation into its own pieces. Pass a real
 * tokenizer (`countTokens`) for exact `text_len`.
 */
export function approxTokenCount(text: string): number {
  const pieces = text.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? [];
  let n = 0;
  for (const p of pieces) n += /[\p{L}\p{N}]/u.test(p) ? Math.max(1, Math.ceil(p.length / 6)) : 1;
  return n + 1;
}

/** `--merge-cmotion` sentences. */
export const CMOTION_SENTENCES: Readonly<Record<string, string>> = {
  static: 'The camera is static.',
  dynamic: 'The camera is moving.',
  'zoom in': 'The camera is zooming in.',
  'zoom out': 'The camera is zooming out.',
  'pan left': 'The camera is panning left.',
  'pan right': 'The camera is panning right.',
  'tilt up': 'The camera is tilting up.',
  'tilt down': 'The camera is tilting down.',
  'pan/tilt': 'The camera is panning.',
  unknown: '',
};
