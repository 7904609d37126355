/**
 * Log lines a peer can cause once per connection (connected, disconnected,
 * closed, invalid input), bounded whatever the rate it dials at: of each
 * kind, the first `lines` in a window are said and the rest counted (into
 * the node's `logUnsaid`, `scuttle_log_lines_unsaid_total{kind}`); when the
 * window ends, one line says how many were not. Kinds are codes, not text
 * a peer chooses, so there are few of them.
 *
 * @packageDocumentation
 */
import type { LogLevel } from './types'

/** Lines of one kind said per window. */
export const LINES_PER_WINDOW = 10
/** Milliseconds of a window. */
export const WINDOW_MS = 60_000

/** See the module's comment. */
export class LogBudget {
  // Lines of each kind said and not said in this window.
  private readonly kinds = new Map<string, { said: number; unsaid: number }>()
  private timer: NodeJS.Timeout | null = null

  constructor(
    private readonly log: (line: string, level?: LogLevel) => void,
    // Lines not said, by kind, counted for good.
    private readonly unsaid: Record<string, number>,
    private readonly lines = LINES_PER_WINDOW,
    private readonly ms = WINDOW_MS,
  ) {}

  /** Say `line`, of `kind`, unless `lines` of that kind were said in this window. */
  say(kind: string, line: string, level?: LogLevel): void {
    let k = this.kinds.get(kind)
    if (k === undefined) this.kinds.set(kind, (k = { said: 0, unsaid: 0 }))
    // The window begins with its first line.
    this.timer ??= setTimeout(() => this.flush(), this.ms).unref()
    if (k.said < this.lines) {
      k.said++
      this.log(line, level)
      return
    }
    k.unsaid++
    this.unsaid[kind] = (this.unsaid[kind] ?? 0) + 1
  }

  /** Stop: nothing more is said. */
  close(): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.kinds.clear()
  }

  // The window ends: one line per kind with lines not said.
  private flush(): void {
    this.timer = null
    for (const [kind, k] of this.kinds) {
      if (k.unsaid > 0) this.log(`${k.unsaid} more "${kind}" lines in the last ${this.ms / 1000} s not said (the first ${this.lines} were; all counted in scuttle_log_lines_unsaid_total)`, 'warn')
    }
    this.kinds.clear()
  }
}
