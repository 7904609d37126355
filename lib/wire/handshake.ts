/**
 * The hello that opens a connection between two nodes, over TCP or a
 * WebSocket, and the choice of wire format it carries.
 *
 * Each end first sends one line of JSON, whatever the format that follows:
 *
 * ```text
 * {"hello":"simple-scuttle","id":"a","codecs":["binary","ndjson"]}
 * ```
 *
 * `codecs` lists the formats the sender reads and writes, preferred first.
 * Each end then writes in the first of its own formats that the other
 * lists, so both ends know what each direction carries once both hellos
 * are in. A hello without `codecs` (an older node) means NDJSON only.
 *
 * @packageDocumentation
 */
import { Transform } from 'readable-stream'
import { FORMATS, type Format } from './codec'

/** The `hello` field of every hello. */
export const HELLO = 'simple-scuttle'

/** Longest hello line accepted, in bytes, newline excluded. */
export const MAX_HELLO_LENGTH = 4096

/** A hello as received (checked by {@link HelloReader}). */
export interface Hello {
  readonly hello: typeof HELLO
  readonly id: string
  /** Formats the sender speaks, preferred first; absent: NDJSON only. */
  readonly codecs?: readonly string[]
  /** The sender's cluster; absent: `"default"` (see `NodeOptions.cluster`). */
  readonly cluster?: string
}

/** The hello line of node `id` speaking `codecs`, of `cluster` (none named: the default cluster). */
export function helloLine(id: string, codecs: readonly Format[] = FORMATS, cluster?: string): string {
  return `${JSON.stringify(cluster === undefined ? { hello: HELLO, id, codecs } : { hello: HELLO, id, codecs, cluster })}\n`
}

/** Checks a list of formats given as an option. */
export function checkCodecs(codecs: unknown): Format[] {
  if (!Array.isArray(codecs) || codecs.length === 0 || codecs.some((c) => !FORMATS.includes(c as Format))) {
    throw new TypeError(`codecs must be a non-empty list of ${FORMATS.map((f) => `'${f}'`).join(', ')}`)
  }
  return [...new Set(codecs as Format[])]
}

/**
 * The format a sender speaking `sender` (preferred first) writes to a
 * receiver speaking `receiver`: the first of the sender's the receiver
 * lists, or null when they share none.
 */
export function chooseFormat(sender: readonly string[], receiver: readonly string[]): Format | null {
  for (const f of sender) if (FORMATS.includes(f as Format) && receiver.includes(f)) return f as Format
  return null
}

/** The formats a received hello declares (NDJSON for a hello without any). */
export function codecsOf(hello: Hello): readonly string[] {
  return hello.codecs ?? ['ndjson']
}

/**
 * A byte Transform that takes the hello line off the front of a connection
 * and passes every byte after it through. Emits `'hello'` `(hello)` once,
 * synchronously, before any byte after it is pushed (so a listener can pipe
 * the reader to the right parser), or `'invalid'` `(excerpt, reason)` for a
 * connection that does not start with a hello (after which it passes
 * nothing). Buffers at most {@link MAX_HELLO_LENGTH} bytes.
 */
export class HelloReader extends Transform {
  private head: Uint8Array[] = []
  private headLength = 0
  private state: 'reading' | 'passing' | 'refused' = 'reading'

  constructor() {
    super({ readableObjectMode: false, writableObjectMode: false })
  }

  /** @internal */
  override _transform(chunk: Uint8Array | string, _encoding: unknown, callback: () => void): void {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk
    if (this.state === 'passing') {
      this.push(bytes)
    } else if (this.state === 'reading') {
      const nl = bytes.indexOf(10)
      const end = nl < 0 ? bytes.length : nl
      if (this.headLength + end > MAX_HELLO_LENGTH) {
        this.refuse('…', `no hello line within ${MAX_HELLO_LENGTH} bytes`)
      } else if (nl < 0) {
        this.head.push(bytes.slice())
        this.headLength += bytes.length
      } else {
        this.head.push(bytes.subarray(0, nl))
        this.hello(bytes.subarray(nl + 1))
      }
    }
    callback()
  }

  private refuse(excerpt: string, reason: string): void {
    this.state = 'refused'
    this.head = []
    this.emit('invalid', excerpt, reason)
  }

  private hello(rest: Uint8Array): void {
    const line = new Uint8Array(this.head.reduce((n, h) => n + h.length, 0))
    let at = 0
    for (const h of this.head) {
      line.set(h, at)
      at += h.length
    }
    this.head = []
    let text: string
    let hello: unknown
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(line)
      hello = JSON.parse(text)
    } catch {
      this.refuse(excerptOf(line), 'did not start with a hello')
      return
    }
    const problem = helloProblem(hello)
    if (problem !== null) {
      this.refuse(text.slice(0, 120), problem)
      return
    }
    this.state = 'passing'
    this.emit('hello', hello)
    if (rest.length > 0) this.push(rest)
  }
}

function excerptOf(b: Uint8Array): string {
  return Array.from(b.subarray(0, 40), (x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('')
}

// Why `o` is not a hello, or null.
function helloProblem(o: unknown): string | null {
  if (typeof o !== 'object' || o === null || (o as Hello).hello !== HELLO || typeof (o as Hello).id !== 'string') {
    return 'did not start with a hello'
  }
  const codecs = (o as Hello).codecs
  if (codecs !== undefined && !(Array.isArray(codecs) && codecs.length <= 16 && codecs.every((c) => typeof c === 'string'))) {
    return 'hello with bad codecs'
  }
  return null
}
