/**
 * Settings of a command from three places, the command line winning over
 * the environment, and the environment over a file: `--config FILE` (JSON,
 * an object whose keys are the long flags, `{"id": "a", "connect":
 * ["127.0.0.1:7946"], "interval": 200}`), then `SCUTTLE_<FLAG>` variables
 * (`SCUTTLE_ID=a`, `SCUTTLE_MTU_BYTES=20000`, lists comma-separated:
 * `SCUTTLE_CONNECT=h1:7946,h2:7946`), then the flags. All three end as one
 * command line, checked by the command's own parser, so every value meets
 * the same checks whatever its source.
 */
import * as fs from 'fs'
import type { ParseArgsConfig } from 'util'
import { readArgs, UsageError } from './args'

type Options = NonNullable<ParseArgsConfig['options']>

/** Where a setting came from, for the error that names it. */
type Source = 'flag' | 'env' | 'file'

/** Reads a command's settings from a file, the environment and its flags. */
export class ConfigLoader {
  /**
   * `also`: SCUTTLE_* variables read elsewhere (SCUTTLE_ADMIN_TOKEN; the
   * client's SCUTTLE_NODE, in an environment the two share), known too.
   */
  constructor(
    private readonly options: Options,
    private readonly env: Readonly<Record<string, string | undefined>> = process.env,
    private readonly also: readonly string[] = [],
  ) {}

  /** The environment variable of a flag. */
  static envName(flag: string): string {
    return `SCUTTLE_${flag.toUpperCase().replace(/-/g, '_')}`
  }

  /**
   * What to say of SCUTTLE_* variables that name no setting: one line, or
   * null. Said, not refused (a file's unknown key is, exit 2): the
   * environment is shared with other programs and set by platforms, as
   * Kubernetes sets SCUTTLE_SERVICE_HOST, SCUTTLE_PORT, ... in every pod of
   * a namespace with a Service named scuttle (those are not said: no typo
   * of an operator's), so an exit would stop a node for a variable not its
   * own; a typo (SCUTTLE_LISTN) is then told, with the near match.
   */
  unknownEnv(): string | null {
    const known = [...Object.keys(this.options).filter((f) => f !== 'help').map(ConfigLoader.envName), ...this.also]
    const unknown = Object.keys(this.env)
      .filter((k) => k.startsWith('SCUTTLE_') && !known.includes(k) && !KUBERNETES.test(k))
      .sort()
    if (unknown.length === 0) return null
    const named = unknown.slice(0, 8).map((k) => {
      const near = known.find((n) => distance(k, n) <= 2)
      return near === undefined ? k : `${k} (did you mean ${near}?)`
    })
    const more = unknown.length > 8 ? `, and ${unknown.length - 8} more` : ''
    return `unknown environment variable${unknown.length > 1 ? 's' : ''} ${named.join(', ')}${more}: ignored; the known ones are ${known.join(', ')}`
  }

  /**
   * One command line holding every setting (file, then environment, then
   * flags: the last wins), and where each came from.
   * @throws UsageError for an unknown flag or setting, or a file that cannot be read.
   */
  load(argv: readonly string[]): { argv: string[]; sources: Map<string, string> } {
    const flags = readArgs(argv, this.options) as Record<string, unknown>
    const merged = new Map<string, { value: unknown; source: Source; where: string }>()
    const flag = flags.config as string | undefined
    const file = flag ?? this.env.SCUTTLE_CONFIG
    if (file !== undefined) {
      const named = flag !== undefined ? `--config ${file}` : `SCUTTLE_CONFIG=${file}`
      for (const [k, v] of Object.entries(this.readFile(file, named))) merged.set(k, { value: v, source: 'file', where: `in ${file}` })
    }
    for (const [flag, spec] of Object.entries(this.options)) {
      if (flag === 'config' || flag === 'help') continue
      const name = ConfigLoader.envName(flag)
      const text = this.env[name]
      if (text === undefined || text === '') continue
      let value: unknown = text
      if (spec.type === 'boolean') {
        // As in the file: true or false, nothing else.
        if (!/^(true|false)$/i.test(text)) throw new UsageError(`${name} must be true or false, not "${text}"`)
        value = /^true$/i.test(text)
      } else if (spec.multiple === true) value = text.split(',').map((s) => s.trim()).filter((s) => s !== '')
      merged.set(flag, { value, source: 'env', where: `by ${name}` })
    }
    for (const [flag, value] of Object.entries(flags)) {
      if (flag === 'config') continue
      merged.set(flag, { value, source: 'flag', where: '' })
    }
    const out: string[] = []
    const sources = new Map<string, string>()
    for (const [flag, { value, where }] of merged) {
      const spec = this.options[flag]
      if (where !== '') sources.set(flag, where)
      if (spec.type === 'boolean') {
        if (value === true) out.push(`--${flag}`)
        else if (value !== false) throw new UsageError(`--${flag} must be true or false, not ${JSON.stringify(value)} (set ${where})`)
        continue
      }
      const values = Array.isArray(value) ? value : [value]
      if (values.length > 1 && spec.multiple !== true) throw new UsageError(`--${flag} takes one value, not a list (set ${where})`)
      for (const v of values) {
        if (typeof v === 'object' && v !== null) {
          out.push(`--${flag}=${JSON.stringify(v)}`)
        } else if (typeof v === 'string' || typeof v === 'number') {
          out.push(`--${flag}=${v}`)
        } else {
          throw new UsageError(`--${flag} must be a string or a number, not ${JSON.stringify(v)} (set ${where})`)
        }
      }
    }
    return { argv: out, sources }
  }

  // `named`: how the file was named (--config FILE, or SCUTTLE_CONFIG=FILE), for errors.
  private readFile(file: string, named: string): Record<string, unknown> {
    let text: string
    let fd: number | undefined
    try {
      // Non-blocking, so that opening a FIFO does not wait for a writer;
      // a regular file only, read with a bound (/dev/zero never ends).
      fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0))
      const st = fs.fstatSync(fd)
      if (!st.isFile()) throw new UsageError(`${named}: not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isSocket() ? 'a socket' : 'a special file'}): give a JSON file of settings`)
      const buf = Buffer.alloc(MAX_CONFIG + 1)
      let n = 0
      for (let got = -1; got !== 0 && n <= MAX_CONFIG; n += got) got = fs.readSync(fd, buf, n, buf.length - n, null)
      if (n > MAX_CONFIG) throw new UsageError(`${named}: larger than 1 MiB (${Math.max(st.size, n)} bytes): not a configuration file`)
      text = buf.subarray(0, n).toString('utf8')
    } catch (err) {
      if (err instanceof UsageError) throw err
      const e = err as NodeJS.ErrnoException
      throw new UsageError(`${named}: cannot be read (${e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'a directory' : e.message})`)
    } finally {
      if (fd !== undefined) fs.closeSync(fd)
    }
    let o: unknown
    try {
      o = JSON.parse(text)
    } catch (err) {
      throw new UsageError(`${named}: not JSON (${(err as Error).message})`)
    }
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new UsageError(`${named}: must hold a JSON object of settings, such as {"id": "a"}`)
    for (const k of Object.keys(o)) {
      // Own flags only: "__proto__", "constructor" or "toString" are in every object.
      if (!Object.hasOwn(this.options, k) || k === 'config' || k === 'help') {
        const flags = Object.keys(this.options).filter((f) => f !== 'config' && f !== 'help')
        const near = flags.find((f) => distance(k, f) <= 2)
        throw new UsageError(`${named}: unknown setting ${JSON.stringify(k)}${near === undefined ? '' : ` (did you mean "${near}"?)`} (settings are the long flags: ${flags.join(', ')})`)
      }
    }
    return o as Record<string, unknown>
  }
}

// The largest configuration file read (settings take a few hundred bytes).
const MAX_CONFIG = 1 << 20

// What Kubernetes sets for a Service named scuttle (its host, its ports).
const KUBERNETES = /^SCUTTLE_(SERVICE_(HOST|PORT)(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$/

// Edits (insert, delete, replace) from a to b, for a near match.
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]
}
