/**
 * The wire: newline-delimited JSON between object-mode gossip streams and
 * byte streams such as TCP sockets.
 *
 * ```ts
 * gossip.pipe(serialize()).pipe(socket).pipe(parse()).pipe(gossip)
 * ```
 *
 * One JSON document per line. `parse()` never throws and never buffers more
 * than its line limit: input that is not JSON, lines over the limit and a
 * partial last line are dropped and reported with an `'invalid'` event
 * `(excerpt, reason)`. `serialize()` likewise drops and reports objects JSON
 * cannot encode. Values are checked at `gossip.set` with {@link jsonProblem}
 * so a value JSON would mangle is refused where it is written, not lost in
 * transit.
 *
 * @packageDocumentation
 */
import { Transform } from 'readable-stream'

/** Options of {@link parse}. */
export interface ParseOptions {
  /**
   * Longest line accepted, in UTF-16 code units (characters for ASCII),
   * without its newline. A longer line is dropped without being buffered
   * whole. Default 1 MiB (1048576).
   */
  maxLineLength?: number
}

/** The default {@link ParseOptions.maxLineLength}. */
export const MAX_LINE_LENGTH = 1 << 20

const EXCERPT = 120

function excerpt(s: string): string {
  return s.length > EXCERPT ? `${s.slice(0, EXCERPT)}…` : s
}

/** What {@link serialize} returns. */
export interface Serializer extends Transform {
  /**
   * The line the stream would write for `message`, without writing it (for
   * a log of updates, as the original README's `persist` example does).
   * @throws TypeError when JSON cannot encode it.
   */
  serialize(message: unknown): string
}

function line(message: unknown): string {
  const text = JSON.stringify(message)
  if (text === undefined) throw new TypeError('JSON has no text for it')
  return `${text}\n`
}

/**
 * A Transform from objects to bytes: each object becomes one line of JSON.
 * Objects JSON cannot encode (cycles, bigint, a bare function or undefined)
 * are dropped and reported with `'invalid'` `(object, reason)`; the stream
 * carries on.
 */
export function serialize(): Serializer {
  const out = new Transform({
    writableObjectMode: true,
    readableObjectMode: false,
    transform(chunk: unknown, _encoding, callback) {
      let text: string
      try {
        text = line(chunk)
      } catch (err) {
        out.emit('invalid', chunk, `cannot be encoded as JSON: ${(err as Error)?.message}`)
        callback()
        return
      }
      out.push(text)
      callback()
    },
  }) as Serializer
  out.serialize = line
  return out
}

/**
 * A Transform from bytes to objects: each line of JSON becomes one object.
 * Empty lines are skipped; a trailing `\r` is ignored. Bad input is dropped
 * and reported with `'invalid'` `(excerpt, reason)`, never thrown:
 * - a line that is not JSON;
 * - a line longer than `maxLineLength` (its excess is skipped as it
 *   arrives, so memory stays bounded by the limit);
 * - a partial line when the input ends.
 */
export function parse(options: ParseOptions = {}): Transform {
  const max = options.maxLineLength ?? MAX_LINE_LENGTH
  if (!(Number.isSafeInteger(max) && max >= 1)) throw new TypeError('maxLineLength must be a positive integer')
  // TextDecoder (in Node and browsers alike) keeps a split UTF-8 sequence for
  // the next chunk.
  const decoder = new TextDecoder('utf-8')
  let pending = ''
  // True while skipping the rest of an over-long line.
  let skipping = false

  function line(stream: Transform, text: string): void {
    if (text.length > 0 && text.charCodeAt(text.length - 1) === 13) text = text.slice(0, -1)
    if (text.length === 0) return
    if (text.length > max) {
      stream.emit('invalid', excerpt(text), `line longer than ${max} characters`)
      return
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      stream.emit('invalid', excerpt(text), 'not JSON')
      return
    }
    // Object mode cannot carry null; it is bad input like any other.
    if (value === null) stream.emit('invalid', 'null', 'null is not a message')
    else stream.push(value)
  }

  const stream: Transform = new Transform({
    writableObjectMode: false,
    readableObjectMode: true,
    transform(chunk: Buffer | string, _encoding, callback) {
      const text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true })
      let start = 0
      for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
        if (skipping) skipping = false
        else line(stream, pending.length > 0 ? pending + text.slice(start, nl) : text.slice(start, nl))
        pending = ''
        start = nl + 1
      }
      if (!skipping && start < text.length) {
        if (pending.length + text.length - start > max) {
          stream.emit('invalid', excerpt(pending + text.slice(start, start + EXCERPT)), `line longer than ${max} characters`)
          pending = ''
          skipping = true
        } else {
          pending += text.slice(start)
        }
      }
      callback()
    },
    flush(callback) {
      const rest = pending + decoder.decode()
      pending = ''
      if (!skipping && rest.trim().length > 0) stream.emit('invalid', excerpt(rest), 'partial line at end of input')
      callback()
    },
  })
  return stream
}
