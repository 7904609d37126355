/**
 * The NDJSON format of the wire (see `./codec`, `serialize({format:
 * 'ndjson'})` and `parse({format: 'ndjson'})`): newline-delimited JSON,
 * for people reading the wire.
 *
 * One JSON document per line. `parse()` never throws and never buffers more
 * than its line limit: input that is not JSON, lines over the limit and a
 * partial last line are dropped and reported with an `'invalid'` event
 * `(excerpt, reason, code)`. `serialize()` likewise drops and reports objects JSON
 * cannot encode. Values are checked at `gossip.set` with {@link jsonProblem}
 * so a value JSON would mangle is refused where it is written, not lost in
 * transit.
 *
 * @packageDocumentation
 */
import { reportInvalid } from '../codes'
import { jsonTextProblem } from '../value'
import { Transform } from 'readable-stream'

/** The default longest NDJSON line, in UTF-16 code units (1 MiB). */
export const MAX_LINE_LENGTH = 1 << 20

const EXCERPT = 120

function excerpt(s: string): string {
  return s.length > EXCERPT ? `${s.slice(0, EXCERPT)}…` : s
}

/**
 * `message` as one line of JSON, newline included.
 * @throws TypeError when JSON cannot encode it.
 */
export function jsonLine(message: unknown): string {
  const text = JSON.stringify(message)
  if (text === undefined) throw new TypeError('JSON has no text for it')
  return `${text}\n`
}

/**
 * A Transform from bytes to objects: each line of JSON becomes one object.
 * Empty lines are skipped; a trailing `\r` is ignored. Bad input is dropped
 * and reported with `'invalid'` `(excerpt, reason, code)`, never thrown:
 * - a line that is not JSON;
 * - a line longer than `maxLineLength` (its excess is skipped as it
 *   arrives, so memory stays bounded by the limit);
 * - a partial line when the input ends.
 */
// Digits enough for an integer past 2^53 - 1 (9007199254740991).
const BIG_DIGITS = /\d{17}|9\d{15}/

export function parseNdjson(max: number): Transform {
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
      reportInvalid(stream, excerpt(text), `line longer than ${max} characters`, 'line_too_long')
      return
    }
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      reportInvalid(stream, excerpt(text), 'not JSON', 'not_json')
      return
    }
    // An integer a double would round is refused, as at the other text
    // entries (stdin, admin, CLI): the same limit on every path. Only a line
    // with such a run of digits is scanned (versions are 16 digits below 9).
    if (BIG_DIGITS.test(text)) {
      const lossy = jsonTextProblem(text)
      if (lossy !== null) {
        reportInvalid(stream, excerpt(text), `value ${lossy}`, 'value')
        return
      }
    }
    // Object mode cannot carry null; it is bad input like any other.
    if (value === null) reportInvalid(stream, 'null', 'null is not a message', 'shape')
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
          reportInvalid(stream, excerpt(pending + text.slice(start, start + EXCERPT)), `line longer than ${max} characters`, 'line_too_long')
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
      if (!skipping && rest.trim().length > 0) reportInvalid(stream, excerpt(rest), 'partial line at end of input', 'truncated')
      callback()
    },
  })
  return stream
}
