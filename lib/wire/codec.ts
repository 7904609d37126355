/**
 * The wire: `serialize()` and `parse()` turn a gossip stream's objects into
 * bytes and back, in one of two formats:
 *
 * - `'binary'` (the default): length-prefixed frames in which source ids,
 *   field names and versions that climb by one are not repeated (see
 *   `lib/wire/binary.ts`); the fast one, and the smaller;
 * - `'ndjson'`: one JSON document per line, for people reading the wire.
 *
 * ```ts
 * gossip.pipe(serialize()).pipe(socket).pipe(parse()).pipe(gossip)
 * ```
 *
 * Both ends must use the same format (the TCP and WebSocket node agree on
 * it in their hello). Writes are coalesced: what is written in one turn of
 * the event loop leaves as one chunk (so one socket write per answer, not
 * one per update), or sooner once it passes 16 KiB, the next piece at 32 KiB
 * and so on up to 256 KiB (a long answer then leaves in pieces the peer
 * decodes while the rest is encoded, the first of them soon).
 *
 * `parse()` never throws and never buffers more than one line or frame:
 * garbage, over-long lines or frames and a partial end are dropped and
 * reported with an `'invalid'` event `(excerpt, reason, code)`. `serialize()`
 * likewise drops and reports objects it cannot encode.
 *
 * @packageDocumentation
 */
import { reportInvalid } from '../codes'
import { Transform } from 'readable-stream'
import { FrameDecoder, FrameEncoder, MAX_FRAME_LENGTH } from './binary'
import { jsonLine, MAX_LINE_LENGTH, parseNdjson } from './ndjson'

/** The wire formats: `'binary'` frames (the default) or `'ndjson'` lines. */
export type Format = 'binary' | 'ndjson'

/** Every format, the preferred first. */
export const FORMATS: readonly Format[] = Object.freeze(['binary', 'ndjson'] as Format[])

/** Options of {@link serialize}. */
export interface SerializeOptions {
  /** `'binary'` (default) or `'ndjson'`. */
  format?: Format
}

/** Options of {@link parse}. */
export interface ParseOptions {
  /** `'binary'` (default) or `'ndjson'`: what the other end's `serialize` writes. */
  format?: Format
  /**
   * NDJSON: the longest line accepted, in UTF-16 code units (characters for
   * ASCII), without its newline. A longer line is dropped without being
   * buffered whole. Default MAX_LINE_LENGTH (1 MiB).
   */
  maxLineLength?: number
  /**
   * Binary: the longest frame body accepted, in bytes; a longer one is
   * skipped as it arrives, never buffered. Default MAX_FRAME_LENGTH (4 MiB,
   * room for any update a node accepts).
   */
  maxFrameLength?: number
}

/** What {@link serialize} returns. */
export interface Serializer extends Transform {
  /** The format it writes. */
  readonly format: Format
  /**
   * `message` as one line of JSON, newline included, whatever the stream's
   * format (for a log of updates, as the original README's `persist`
   * example does).
   * @throws TypeError when JSON cannot encode it.
   */
  serialize(message: unknown): string
}

// Bytes gathered before they are pushed without waiting for the turn's end:
// a long answer leaves in pieces the peer decodes while the rest is encoded
// (measured: a 1.17 MB answer syncs in ~384 ms pushed per 256 KiB, ~580 ms
// per MiB, cold processes, 100k keys). The first piece of a turn is pushed
// at FIRST_FLUSH bytes, each next one at twice the last, up to FLUSH_BYTES:
// the peer starts on a long answer while the sender, cold, encodes the rest
// (measured, 100k keys, fresh processes: the peer's first bytes came ~110 ms
// into the sync with 256 KiB first, ~45 ms with 16 KiB first).
const FLUSH_BYTES = 256 << 10
const FIRST_FLUSH = 16 << 10

interface Batch {
  /** Append one message, or throw a TypeError and append nothing. */
  write(message: unknown): void
  /** Everything appended since the last take. */
  take(): Uint8Array | string
  readonly length: number
}

class Lines implements Batch {
  private lines: string[] = []
  length = 0
  write(message: unknown): void {
    const text = jsonLine(message)
    this.lines.push(text)
    this.length += text.length
  }
  take(): string {
    const out = this.lines.length === 1 ? this.lines[0] : this.lines.join('')
    this.lines = []
    this.length = 0
    return out
  }
}

function checkFormat(format: unknown): Format {
  if (format === undefined) return 'binary'
  if (format !== 'binary' && format !== 'ndjson') throw new TypeError("format must be 'binary' or 'ndjson'")
  return format
}

/**
 * A Transform from objects to bytes in `options.format` (default
 * `'binary'`). Objects it cannot encode (cycles, bigint, a bare function
 * or undefined) are dropped and reported with `'invalid'` `(object,
 * reason, 'unencodable')`; the stream carries on. What is written in one turn of the event
 * loop is pushed as one chunk, or in pieces from 16 KiB, each twice the
 * last, up to 256 KiB.
 */
export function serialize(options: SerializeOptions = {}): Serializer {
  if (options === null || typeof options !== 'object') throw new TypeError('serialize options must be an object')
  const format = checkFormat(options.format)
  const batch: Batch = format === 'binary' ? new FrameEncoder() : new Lines()
  let scheduled = false
  // Bytes at which this turn's next piece is pushed.
  let limit = FIRST_FLUSH
  const push = (): void => {
    if (batch.length > 0) out.push(batch.take())
  }
  const later = (): void => {
    scheduled = false
    limit = FIRST_FLUSH
    if (!out.destroyed && !out.writableFinished) push()
  }
  // Encode one object; true if it was taken.
  const take = (chunk: unknown): void => {
    try {
      batch.write(chunk)
    } catch (err) {
      reportInvalid(out, chunk, `cannot be encoded${format === 'ndjson' ? ' as JSON' : ''}: ${(err as Error)?.message}`, 'unencodable')
      return
    }
    if (batch.length >= limit) {
      push()
      if (limit < FLUSH_BYTES) limit *= 2
    }
    if (!scheduled) {
      scheduled = true
      queueMicrotask(later)
    }
  }
  // A write that found the readable side full owes a 'drain'.
  let owed = false
  const out = new Transform({
    writableObjectMode: true,
    readableObjectMode: false,
    transform(chunk: unknown, _encoding, callback) {
      take(chunk)
      callback()
    },
    flush(callback) {
      push()
      callback()
    },
  }) as Serializer & { format: Format }
  // The fast path: an object written while nothing waits on the writable
  // side is encoded at once, without the Writable machinery (a third of
  // the sender's time per update, measured). Backpressure is the readable
  // side's: false once it holds its highWaterMark, and 'drain' when it is
  // read below it.
  const slow = out.write.bind(out)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  out.write = function write(chunk: any, encoding?: any, callback?: any): boolean {
    if (chunk === null || chunk === undefined || out.writableEnded || out.destroyed || out.writableCorked > 0 || out.writableLength > 0) {
      return slow(chunk, encoding, callback)
    }
    take(chunk)
    const cb = typeof encoding === 'function' ? encoding : callback
    if (typeof cb === 'function') queueMicrotask(() => cb(null))
    if (out.readableLength < out.readableHighWaterMark) return true
    owed = true
    return false
  }
  const read = out._read.bind(out)
  out._read = function (size: number): void {
    read(size)
    if (owed) {
      owed = false
      queueMicrotask(() => out.emit('drain'))
    }
  }
  out.format = format
  out.serialize = jsonLine
  return out
}

/**
 * A Transform from bytes to objects, reading `options.format` (default
 * `'binary'`). Bad input is dropped and reported with `'invalid'`
 * `(excerpt, reason, code)`, never thrown; at most one line or frame is buffered.
 * NDJSON: empty lines are skipped and a trailing `\r` ignored; refused are
 * a line that is not JSON, a line longer than `maxLineLength`, a partial
 * line at the end. Binary: refused are a frame longer than
 * `maxFrameLength` (skipped as it arrives), a malformed message (it ends
 * its frame), invalid UTF-8, nesting deeper than MAX_DEPTH, a partial frame
 * at the end.
 */
export function parse(options: ParseOptions = {}): Transform {
  if (options === null || typeof options !== 'object') throw new TypeError('parse options must be an object')
  const format = checkFormat(options.format)
  if (format === 'ndjson') return parseNdjson(options.maxLineLength ?? MAX_LINE_LENGTH)
  return parseFrames(options.maxFrameLength ?? MAX_FRAME_LENGTH)
}

function parseFrames(max: number): Transform {
  if (!(Number.isSafeInteger(max) && max >= 1 && max <= 0xffffffff)) throw new TypeError('maxFrameLength must be a positive integer below 2^32')
  // The length prefix being read, and how many of its bytes are in.
  const head = new Uint8Array(4)
  let headHave = 0
  // The body being gathered: its length (-1 while reading a prefix), the
  // pieces so far and their total.
  let want = -1
  let pieces: Uint8Array[] = []
  let have = 0
  // Bytes left of a frame over the limit, skipped as they arrive.
  let skipping = 0

  // (One function and one decoder for every frame: a new one per frame
  // made the decoder's optimised code deoptimise at the second frame.)
  const emit = (m: unknown): void => {
    if (m === null) reportInvalid(stream, 'null', 'null is not a message', 'shape')
    else stream.push(m)
  }
  const decoder = new FrameDecoder()
  const frame = (body: Uint8Array): void => {
    const problem = decoder.decode(body, emit)
    if (problem !== null) reportInvalid(stream, problem.excerpt, problem.reason, 'frame')
  }

  const stream: Transform = new Transform({
    writableObjectMode: false,
    readableObjectMode: true,
    transform(chunk: Uint8Array | string, _encoding, callback) {
      if (typeof chunk === 'string') {
        reportInvalid(stream, chunk.slice(0, 120), 'text where binary frames were expected', 'frame')
        callback()
        return
      }
      const n = chunk.length
      let p = 0
      while (p < n) {
        if (skipping > 0) {
          const k = Math.min(skipping, n - p)
          skipping -= k
          p += k
          continue
        }
        if (want < 0) {
          head[headHave++] = chunk[p++]
          if (headHave < 4) continue
          headHave = 0
          const length = ((head[0] << 24) >>> 0) + (head[1] << 16) + (head[2] << 8) + head[3]
          if (length > max) {
            reportInvalid(stream, `length prefix ${length}`, `frame of ${length} bytes, over the limit of ${max}`, 'frame')
            skipping = length
          } else if (length > 0) {
            want = length
          }
          continue
        }
        const k = Math.min(want - have, n - p)
        if (have === 0 && k === want) {
          // The whole frame is in this chunk: no copy. (A Uint8Array, as a
          // frame gathered from pieces is: a Buffer here and a Uint8Array
          // there made the decoder's optimised code deoptimise.)
          want = -1
          frame(new Uint8Array(chunk.buffer, chunk.byteOffset + p, k))
        } else {
          pieces.push(chunk.slice(p, p + k))
          have += k
          if (have === want) {
            const body = new Uint8Array(want)
            let at = 0
            for (const piece of pieces) {
              body.set(piece, at)
              at += piece.length
            }
            pieces = []
            have = 0
            want = -1
            frame(body)
          }
        }
        p += k
      }
      callback()
    },
    flush(callback) {
      if (want >= 0 || headHave > 0) reportInvalid(stream, `${have + headHave} bytes`, 'partial frame at end of input', 'truncated')
      pieces = []
      callback()
    },
  })
  return stream
}
