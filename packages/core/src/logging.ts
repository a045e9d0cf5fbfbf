/**
 * A small levelled logger. Levels: debug < info < warn < error < silent. The default level comes
 * from `OPENSORA_LOG_LEVEL` (else `info`). Lines go to stderr so that stdout stays clean for data.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface LogSink {
  (level: Exclude<LogLevel, 'silent'>, line: string): void;
}

export interface LoggerOptions {
  name?: string;
  level?: LogLevel;
  /** Where lines go (default: stderr). */
  sink?: LogSink;
  /** Prefix lines with an ISO timestamp (default: true when not a TTY). */
  timestamps?: boolean;
}

export interface Logger {
  readonly name: string;
  level: LogLevel;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(name: string): Logger;
  enabled(level: LogLevel): boolean;
}

function envLevel(): LogLevel {
  const v = (process.env.OPENSORA_LOG_LEVEL ?? '').toLowerCase();
  return v in ORDER ? (v as LogLevel) : 'info';
}

const stderrSink: LogSink = (_level, line) => {
  process.stderr.write(line + '\n');
};

function fmtFields(fields?: Record<string, unknown>): string {
  if (!fields) return '';
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length ? ' ' + parts.join(' ') : '';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const name = options.name ?? 'opensora';
  const sink = options.sink ?? stderrSink;
  const timestamps = options.timestamps ?? !process.stderr.isTTY;
  const logger: Logger = {
    name,
    level: options.level ?? envLevel(),
    enabled(level) {
      return ORDER[level] >= ORDER[logger.level] && level !== 'silent';
    },
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (sub) => createLogger({ ...options, name: `${name}:${sub}`, level: logger.level, sink, timestamps }),
  };
  function emit(level: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>) {
    if (!logger.enabled(level)) return;
    const ts = timestamps ? new Date().toISOString() + ' ' : '';
    sink(level, `${ts}[${name}] ${level === 'info' ? '' : level.toUpperCase() + ' '}${msg}${fmtFields(fields)}`);
  }
  return logger;
}

/** The process-wide default logger. */
export const log: Logger = createLogger();
