/**
 * Progress for long work: a bar (cli-progress) on a TTY, periodic plain lines otherwise (CI, logs).
 */
import cliProgress from 'cli-progress';

export interface ProgressOptions {
  total: number;
  label?: string;
  /** Output stream (default: stderr). */
  stream?: NodeJS.WriteStream;
  /** Force the mode; default: a bar when the stream is a TTY and CI is not set. */
  mode?: 'bar' | 'lines' | 'silent';
  /** In line mode, print at most once per this many ms (default 5000) and at each 10% step. */
  intervalMs?: number;
  /** Unit shown after the rate, e.g. 'steps' (default 'it'). */
  unit?: string;
}

export interface Progress {
  /** Advance by `n` (default 1); `info` is shown after the bar (e.g. `{ loss: 0.12 }`). */
  tick(n?: number, info?: Record<string, string | number>): void;
  /** Set the absolute position. */
  update(value: number, info?: Record<string, string | number>): void;
  done(info?: Record<string, string | number>): void;
  readonly value: number;
}

function fmtInfo(info?: Record<string, string | number>): string {
  if (!info) return '';
  return Object.entries(info)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toPrecision(4)) : v}`)
    .join(' ');
}

export function createProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const label = options.label ?? 'progress';
  const unit = options.unit ?? 'it';
  const total = Math.max(0, options.total);
  const mode = options.mode ?? (stream.isTTY && !process.env.CI ? 'bar' : 'lines');
  const start = Date.now();
  let value = 0;
  let lastInfo = '';

  if (mode === 'bar') {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: `${label} [{bar}] {percentage}% {value}/{total} {rate} ${unit}/s eta {eta_formatted} {info}`,
        hideCursor: true,
        clearOnComplete: false,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: '', rate: '0.00' });
    const payload = (info?: Record<string, string | number>) => {
      if (info) lastInfo = fmtInfo(info);
      const secs = (Date.now() - start) / 1000;
      return { info: lastInfo, rate: secs > 0 ? (value / secs).toFixed(2) : '0.00' };
    };
    return {
      get value() {
        return value;
      },
      tick(n = 1, info) {
        value += n;
        bar.update(value, payload(info));
      },
      update(v, info) {
        value = v;
        bar.update(value, payload(info));
      },
      done(info) {
        bar.update(value, payload(info));
        bar.stop();
      },
    };
  }

  const interval = options.intervalMs ?? 5000;
  let lastPrint = 0;
  let lastDecile = -1;
  const print = (force: boolean, info?: Record<string, string | number>) => {
    if (mode === 'silent') return;
    if (info) lastInfo = fmtInfo(info);
    const now = Date.now();
    const decile = total > 0 ? Math.floor((10 * value) / total) : 0;
    if (!force && now - lastPrint < interval && decile === lastDecile) return;
    lastPrint = now;
    lastDecile = decile;
    const secs = (now - start) / 1000;
    const pct = total > 0 ? ` (${((100 * value) / total).toFixed(0)}%)` : '';
    const rate = secs > 0 ? ` ${(value / secs).toFixed(2)} ${unit}/s` : '';
    stream.write(`${label}: ${value}/${total}${pct}${rate}${lastInfo ? ' ' + lastInfo : ''}\n`);
  };
  return {
    get value() {
      return value;
    },
    tick(n = 1, info) {
      value += n;
      print(false, info);
    },
    update(v, info) {
      value = v;
      print(false, info);
    },
    done(info) {
      print(true, info);
    },
  };
}
