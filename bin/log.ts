/**
 * Log lines of a command: one line each, with a time and a level, as text
 * (`2026-01-02T03:04:05.678Z info [a] peer b connected ...`) or as JSON
 * for collectors (`{"time","level","node","msg"}`), on stderr.
 */

/** How much to say. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug'
/** How to say it. */
export type LogFormat = 'text' | 'json'

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 }

/** Writes log lines of one node. */
export class Logger {
  constructor(
    private readonly id: string,
    private readonly level: LogLevel,
    private readonly format: LogFormat,
    private readonly write: (s: string) => void = (s) => process.stderr.write(s),
  ) {}

  /** Log `msg` at `level`: the node says which lines are warnings (default info). */
  readonly line = (msg: string, level?: LogLevel): void => {
    const l = level ?? 'info'
    if (RANK[l] > RANK[this.level]) return
    const time = new Date().toISOString()
    this.write(this.format === 'json' ? `${JSON.stringify({ time, level: l, node: this.id, msg })}\n` : `${time} ${l} [${this.id}] ${msg}\n`)
  }
}
