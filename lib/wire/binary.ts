/**
 * The binary wire format, `'binary'`: length-prefixed frames of messages,
 * each frame decodable on its own, with what repeats within an answer
 * written once.
 *
 * A frame is a 4-byte big-endian body length, then the body: messages, one
 * after another, each starting with an opcode byte. Within a frame:
 * - field names are implied by the opcode (an update, a signed update, a
 *   digest entry, the end of a digest, a local write, or any other JSON
 *   value);
 * - a source id is written once, then named by its index in the frame, or
 *   not at all when it is the previous message's;
 * - a version is written as its difference from the source's previous
 *   version plus one (so a source's versions climbing by one cost no byte)
 *   or, for a source new to the frame, from the previous version written.
 *
 * Values are tagged, as in MessagePack, and so laid out that a value never
 * takes more bytes than its JSON text (strings and containers long enough
 * to need a length end with a 0xff byte instead, which UTF-8 never holds;
 * numbers that are not integers are written as packed decimal digits when
 * that is shorter than a float64). A frame of the protocol's messages
 * (updates, local writes, digest entries and ends) therefore never takes
 * more bytes than their NDJSON lines (each line's field names pay for the
 * frame's 4-byte length many times over), so a byte bound on NDJSON (see
 * `mtu_bytes`) bounds this format too. (Any other JSON value travels too,
 * at one byte more than its JSON text.)
 *
 * The decoder never throws and buffers at most one frame (bounded by
 * `maxFrameLength`, whatever the length prefix claims): a malformed message
 * ends its frame with one `'invalid'` report, and the next frame starts
 * afresh. Strings must be valid UTF-8; nesting deeper than MAX_DEPTH, and
 * counts beyond what the frame's bytes could hold, are refused before
 * anything is allocated for them.
 *
 * @packageDocumentation
 */
import { PROTOCOL } from '../shape'
import { MAX_DEPTH, MAX_VALUE_LENGTH } from '../value'

/**
 * The default longest frame body accepted, in bytes: 4 MiB, room for any
 * update a node accepts (a value of MAX_VALUE_LENGTH characters of JSON
 * takes at most three bytes per character in UTF-8).
 */
export const MAX_FRAME_LENGTH = 4 << 20

/**
 * Most values (items of containers included) decoded from one frame: twice
 * what the longest value can hold (each takes a character of JSON and a
 * separator). A frame of tiny items costs far more memory decoded than its
 * bytes (an empty array: 1 byte, some 60 decoded), so the count stops it
 * as it is decoded, not after.
 */
export const MAX_FRAME_ITEMS = MAX_VALUE_LENGTH + 1

/** Frames are closed once their body passes this many bytes. */
export const FRAME_TARGET = 256 << 10

// Opcodes: the kind in the low 3 bits, flags above.
const UPDATE = 1
const SIGNED = 2
const DIGEST = 3
const DONE = 4
const LOCAL = 5
const OTHER = 6
// Updates and digest entries: the previous message's source; the source's
// previous version plus one.
const SAME_SOURCE = 0x08
const NEXT_VERSION = 0x10
// Digest entries: the entry says `protocol: PROTOCOL` (a digest's first; an
// older decoder fails on the bit).
const ENTRY_PROTOCOL = 0x20
// Ends of digests.
const REPLY = 0x08
const RATE = 0x10
const AFTER = 0x20
const THROUGH = 0x40
// The end says `protocol: PROTOCOL` (every end of this release; an older
// decoder fails on the bit, so it cannot read this release's ends).
const PROTOCOL_FLAG = 0x80

// Value tags: 0x00-0x7f integers 0-127; 0x80-0x8f maps of 0-15 members;
// 0x90-0x9f arrays of 0-15 items; 0xa0-0xbf strings of 0-31 bytes.
const NULL = 0xc0
const FALSE = 0xc1
const TRUE = 0xc2
const POS_INT = 0xc3 // varint
const NEG_INT = 0xc4 // varint of the absolute value
const FLOAT64 = 0xc5 // 8 bytes, little-endian
const DECIMAL = 0xc6 // the number's text, packed two characters a byte, ending with nibble 15
const STR = 0xc7 // UTF-8 up to 0xff
const JSON_STR = 0xc8 // a string JSON must escape (lone surrogates): its JSON text without quotes, up to 0xff
const ARRAY = 0xc9 // items up to END
const MAP = 0xca // (string, value) pairs up to END
const END = 0xff

const TEXT_DECODER = new TextDecoder('utf-8', { fatal: true })
const TEXT_ENCODER = new TextEncoder()
const DECIMAL_CHARS = '0123456789.-e+'

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }

// 0 as a double, the first value of the fields that hold versions: a field
// first given a small integer holds it as one, and the first version (a
// microsecond clock reading, past 2^31) changes the field's representation,
// which deoptimises every function that reads the object (measured: the
// decoder's every method, once per process).
const ZERO = -0

/** A message the decoder found malformed (its reason). */
class Malformed extends Error {}

const wellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: () => boolean }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?:^|[^\ud800-\udbff])[\udc00-\udfff]/.test(s)

function plain(o: object): boolean {
  const p = Object.getPrototypeOf(o)
  return p === Object.prototype || p === null
}

/**
 * Writes messages into frames. `write(message)` appends one (or throws a
 * TypeError for what JSON could not carry either, writing nothing);
 * `take()` closes the frame and hands over the bytes written so far.
 */
export class FrameEncoder {
  private buf: Uint8Array
  private view: DataView
  private pos = 0
  // Where the open frame's length goes, or -1.
  private frameStart = -1
  private sources = new Map<string, number>()
  private lastVersion: number[] = []
  private lastSource = -1
  private prevVersion = ZERO
  private depth = 0
  // The source whose last version the message being written changed, and
  // what it was: a message that fails puts it back.
  private undoIndex = -1
  private undoVersion = ZERO

  constructor(private readonly frameTarget = FRAME_TARGET) {
    this.buf = new Uint8Array(64 << 10)
    this.view = new DataView(this.buf.buffer)
  }

  /** Bytes written and not yet taken. */
  get length(): number {
    return this.pos
  }

  /** Append `message`; on a TypeError nothing of it is kept. */
  write(message: unknown): void {
    if (this.frameStart < 0) this.openFrame()
    const start = this.pos
    const sources = this.sources.size
    const lastSource = this.lastSource
    const prevVersion = this.prevVersion
    this.undoIndex = -1
    try {
      this.message(message)
    } catch (err) {
      // Undo: the frame's state as it was before this message.
      this.pos = start
      if (this.sources.size !== sources) {
        for (const [id, i] of this.sources) if (i >= sources) this.sources.delete(id)
        this.lastVersion.length = sources
      } else if (this.undoIndex >= 0) this.lastVersion[this.undoIndex] = this.undoVersion
      this.lastSource = lastSource
      this.prevVersion = prevVersion
      this.depth = 0
      throw err instanceof TypeError ? err : new TypeError((err as Error)?.message ?? String(err))
    }
    if (this.pos - this.frameStart - 4 >= this.frameTarget) this.closeFrame()
  }

  /** Close the open frame and return every byte written since the last take. */
  take(): Uint8Array {
    if (this.frameStart >= 0) this.closeFrame()
    const out = this.buf.subarray(0, this.pos)
    // The bytes are handed over: the next ones go to a new buffer.
    this.buf = new Uint8Array(Math.max(64 << 10, Math.min(this.buf.length, 4 << 20)))
    this.view = new DataView(this.buf.buffer)
    this.pos = 0
    return out
  }

  private openFrame(): void {
    this.room(4)
    this.frameStart = this.pos
    this.pos += 4
    this.sources.clear()
    this.lastVersion.length = 0
    this.lastSource = -1
    this.prevVersion = 0
  }

  private closeFrame(): void {
    const length = this.pos - this.frameStart - 4
    if (length === 0) this.pos = this.frameStart
    else this.view.setUint32(this.frameStart, length)
    this.frameStart = -1
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.pos))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  private byte(b: number): void {
    this.room(1)
    this.buf[this.pos++] = b
  }

  private varint(n: number): void {
    this.room(8)
    const buf = this.buf
    let p = this.pos
    while (n >= 0x80) {
      buf[p++] = (n % 0x80) | 0x80
      n = Math.floor(n / 0x80)
    }
    buf[p++] = n
    this.pos = p
  }

  private message(m: unknown): void {
    if (typeof m === 'object' && m !== null && !Array.isArray(m) && plain(m)) {
      const o = m as Record<string, unknown>
      if (o.digest === true) {
        if (this.digest(o)) return
      } else if (o.digest === undefined && typeof o.key === 'string' && o.value !== undefined) {
        if (this.update(o)) return
      }
    }
    this.byte(OTHER)
    this.value(m, false)
  }

  private update(o: Record<string, unknown>): boolean {
    const source = o.source_id
    const version = o.version
    const n = Object.keys(o).length
    if (source === undefined && version === undefined) {
      if (n !== 2) return false
      this.byte(LOCAL)
      this.string(o.key as string)
      this.value(o.value, false)
      return true
    }
    if (typeof source !== 'string' || !isVersion(version)) return false
    const signature = o.signature
    let op: number
    if (signature === undefined) {
      if (n !== 4) return false
      op = UPDATE
    } else {
      if (typeof signature !== 'string' || n !== 5) return false
      op = SIGNED
    }
    const at = this.pos
    this.byte(op)
    this.sourceAndVersion(at, source, version)
    this.string(o.key as string)
    this.value(o.value, false)
    if (op === SIGNED) this.string(signature as string)
    return true
  }

  private digest(o: Record<string, unknown>): boolean {
    const n = Object.keys(o).length
    if (o.done === true) {
      let op = DONE
      let fields = 2
      const { reply, rate, after, through, protocol } = o
      if (protocol !== undefined) {
        if (protocol !== PROTOCOL) return false
        op |= PROTOCOL_FLAG
        fields++
      }
      if (reply !== undefined) {
        if (reply !== true) return false
        op |= REPLY
        fields++
      }
      if (rate !== undefined) {
        if (typeof rate !== 'number' || !Number.isFinite(rate)) return false
        op |= RATE
        fields++
      }
      if (after !== undefined) {
        if (typeof after !== 'string') return false
        op |= AFTER
        fields++
      }
      if (through !== undefined) {
        if (typeof through !== 'string') return false
        op |= THROUGH
        fields++
      }
      if (fields !== n) return false
      this.byte(op)
      if (rate !== undefined) {
        this.room(8)
        this.view.setFloat64(this.pos, (rate as number) + 0, true) // -0 is 0, as in JSON
        this.pos += 8
      }
      if (after !== undefined) this.string(after as string)
      if (through !== undefined) this.string(through as string)
      return true
    }
    const source = o.source_id
    const version = o.version
    const protocol = o.protocol
    if (n !== (protocol === undefined ? 3 : 4) || typeof source !== 'string' || !isVersion(version)) return false
    if (protocol !== undefined && protocol !== PROTOCOL) return false
    const at = this.pos
    this.byte(protocol === undefined ? DIGEST : DIGEST | ENTRY_PROTOCOL)
    this.sourceAndVersion(at, source, version)
    return true
  }

  // The source and version of the message whose opcode is at `at`.
  private sourceAndVersion(at: number, source: string, version: number): void {
    let index = this.sources.get(source)
    if (index !== undefined && index === this.lastSource) {
      this.buf[at] |= SAME_SOURCE
    } else if (index !== undefined) {
      this.varint(index)
    } else {
      index = this.sources.size
      this.varint(index)
      this.string(source)
      this.sources.set(source, index)
      this.lastVersion.push(-1)
    }
    this.lastSource = index
    const last = this.lastVersion[index]
    this.undoIndex = index
    this.undoVersion = last
    const base = last >= 0 ? last + 1 : this.prevVersion
    if (last >= 0 && version === base) {
      this.buf[at] |= NEXT_VERSION
    } else {
      const d = version - base
      if (d >= 0) this.varint(d * 2)
      else this.varint(-d * 2 - 1)
    }
    this.lastVersion[index] = version
    this.prevVersion = version
  }

  private string(s: string): void {
    const n = s.length
    this.room(n * 3 + 2)
    const buf = this.buf
    const tagAt = this.pos
    let p = tagAt + 1
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) break
      buf[p++] = c
    }
    if (i < n) {
      if (!wellFormed(s)) {
        // JSON's escapes keep lone surrogates; the text is well-formed.
        const text = JSON.stringify(s)
        this.pos = tagAt
        this.room(text.length * 3 + 2)
        this.buf[this.pos++] = JSON_STR
        const r = TEXT_ENCODER.encodeInto(text.slice(1, -1), this.buf.subarray(this.pos))
        this.pos += r.written as number
        this.buf[this.pos++] = END
        return
      }
      const r = TEXT_ENCODER.encodeInto(s.slice(i), buf.subarray(p))
      p += r.written as number
    }
    const bytes = p - tagAt - 1
    if (bytes <= 31) {
      buf[tagAt] = 0xa0 | bytes
    } else {
      buf[tagAt] = STR
      buf[p++] = END
    }
    this.pos = p
  }

  private number(x: number): void {
    if (Number.isSafeInteger(x)) {
      if (x >= 0 && x < 0x80) {
        this.byte(x)
      } else if (x >= 0) {
        this.byte(POS_INT)
        this.varint(x)
      } else {
        this.byte(NEG_INT)
        this.varint(-x)
      }
      return
    }
    if (!Number.isFinite(x)) {
      // As JSON writes it.
      this.byte(NULL)
      return
    }
    const text = String(x)
    if (text.length >= 17) {
      this.room(9)
      this.buf[this.pos++] = FLOAT64
      this.view.setFloat64(this.pos, x, true)
      this.pos += 8
      return
    }
    this.room(2 + (text.length >> 1))
    const buf = this.buf
    buf[this.pos++] = DECIMAL
    let hi = -1
    for (let i = 0; i <= text.length; i++) {
      const nibble = i === text.length ? 15 : DECIMAL_CHARS.indexOf(text[i])
      if (hi < 0) hi = nibble
      else {
        buf[this.pos++] = (hi << 4) | nibble
        hi = -1
      }
    }
    if (hi >= 0) buf[this.pos++] = (hi << 4) | 15
  }

  // A JSON value as JSON.stringify would see it: `member` is true inside an
  // object, where what JSON skips (undefined, functions) is skipped by the caller.
  private value(v: unknown, _member: boolean): void {
    switch (typeof v) {
      case 'string':
        this.string(v)
        return
      case 'number':
        this.number(v)
        return
      case 'boolean':
        this.byte(v ? TRUE : FALSE)
        return
      case 'object':
        if (v === null) {
          this.byte(NULL)
          return
        }
        if (++this.depth > MAX_DEPTH + 2) throw new TypeError(`nested more than ${MAX_DEPTH} levels deep (or a cycle)`)
        try {
          if (typeof (v as { toJSON?: unknown }).toJSON === 'function' || !(Array.isArray(v) || plain(v))) {
            // What JSON makes of it (a Date's string, a Map's {}...).
            const text = JSON.stringify(v)
            if (text === undefined) this.byte(NULL)
            else this.value(JSON.parse(text), false)
          } else if (Array.isArray(v)) {
            this.array(v)
          } else {
            this.map(v as Record<string, unknown>)
          }
        } finally {
          this.depth--
        }
        return
      case 'bigint':
        throw new TypeError('a bigint cannot be carried')
      default:
        // undefined, functions and symbols are null in an array, as in JSON
        // (and skipped in an object by map()); a bare one cannot be sent.
        if (this.depth === 0) throw new TypeError(`a bare ${typeof v} cannot be carried`)
        this.byte(NULL)
    }
  }

  private array(a: unknown[]): void {
    const n = a.length
    if (n < 16) this.byte(0x90 | n)
    else this.byte(ARRAY)
    for (let i = 0; i < n; i++) this.value(a[i], false)
    if (n >= 16) this.byte(END)
  }

  private map(o: Record<string, unknown>): void {
    const keys = Object.keys(o)
    let n = 0
    for (const k of keys) {
      const t = typeof o[k]
      if (t !== 'undefined' && t !== 'function' && t !== 'symbol') n++
    }
    if (n < 16) this.byte(0x80 | n)
    else this.byte(MAP)
    for (const k of keys) {
      const v = o[k]
      const t = typeof v
      if (t === 'undefined' || t === 'function' || t === 'symbol') continue
      this.string(k)
      this.value(v, true)
    }
    if (n >= 16) this.byte(END)
  }
}

function isVersion(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** Where a frame's decoding stopped, and why, for the `'invalid'` report. */
export interface FrameProblem {
  reason: string
  /** The first bytes of the frame, as hex. */
  excerpt: string
}

/**
 * Decodes one frame body (without its length) into messages, calling
 * `emit` for each. Returns null, or the problem that ended the frame early
 * (the messages before it were emitted). Never throws, except what `emit`
 * throws.
 */
export function decodeFrame(body: Uint8Array, emit: (message: unknown) => void): FrameProblem | null {
  return new FrameDecoder().decode(body, emit)
}

/**
 * {@link decodeFrame} for a stream of frames, one after another: one
 * decoder whose state each frame starts afresh. (A decoder per frame gave
 * each frame new arrays of sources and versions, whose elements' kind the
 * first frame had changed: the decoder's optimised code deoptimised at the
 * second frame, measured.) Not reentrant: `emit` must not decode with it.
 */
export class FrameDecoder {
  private readonly d = new Decoder()

  /** As {@link decodeFrame}. */
  decode(body: Uint8Array, emit: (message: unknown) => void): FrameProblem | null {
    const d = this.d
    d.reset(body)
    try {
      while (d.pos < body.length) {
        let message: unknown
        try {
          message = d.message()
        } catch (err) {
          if (!(err instanceof Malformed) && !(err instanceof RangeError) && !(err instanceof TypeError) && !(err instanceof SyntaxError)) throw err
          return { reason: err instanceof Malformed ? err.message : `malformed: ${(err as Error).message}`, excerpt: hex(body) }
        }
        emit(message)
      }
      return null
    } finally {
      // The frame's bytes are not kept past it.
      d.reset(EMPTY)
    }
  }
}

const EMPTY = new Uint8Array(0)

function hex(b: Uint8Array): string {
  let s = ''
  for (let i = 0; i < Math.min(b.length, 32); i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16)
  return b.length > 32 ? `${s}…` : s
}

const fcc = String.fromCharCode

// Up to 16 bytes of ASCII as a string, or null if one is not ASCII.
function shortAscii(b: Uint8Array, p: number, n: number): string | null {
  let or = 0
  for (let i = p; i < p + n; i++) or |= b[i]
  if (or >= 0x80) return null
  switch (n) {
    case 0:
      return ''
    case 1:
      return fcc(b[p])
    case 2:
      return fcc(b[p], b[p + 1])
    case 3:
      return fcc(b[p], b[p + 1], b[p + 2])
    case 4:
      return fcc(b[p], b[p + 1], b[p + 2], b[p + 3])
    case 5:
      return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4])
    case 6:
      return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5])
    case 7:
      return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6])
    case 8:
      return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7])
    default:
      return fcc(b[p], b[p + 1], b[p + 2], b[p + 3], b[p + 4], b[p + 5], b[p + 6], b[p + 7]) + shortAscii(b, p + 8, n - 8)
  }
}

class Decoder {
  pos = 0
  // Values decoded in this frame, and the least JSON the value being
  // decoded takes (see MAX_FRAME_ITEMS and MAX_VALUE_LENGTH).
  private items = 0
  private json = 0
  private readonly sources: string[] = []
  private readonly lastVersion: number[] = []
  private lastSource = -1
  private prevVersion = ZERO
  private buf: Uint8Array = EMPTY
  private view: DataView | null = null

  /** Start on the frame `buf`, as a new decoder would. */
  reset(buf: Uint8Array): void {
    this.buf = buf
    this.view = null
    this.pos = 0
    this.items = 0
    this.json = 0
    this.sources.length = 0
    this.lastVersion.length = 0
    this.lastSource = -1
    this.prevVersion = ZERO
    this.source = ''
    this.version = ZERO
  }

  // For the few float64s (a rate, a number that is no short decimal).
  private float64(at: number): number {
    const b = this.buf
    const view = (this.view ??= new DataView(b.buffer, b.byteOffset, b.byteLength))
    return view.getFloat64(at, true)
  }

  private fail(reason: string): never {
    throw new Malformed(reason)
  }

  private byte(): number {
    if (this.pos >= this.buf.length) this.fail('message cut at the end of its frame')
    return this.buf[this.pos++]
  }

  private varint(): number {
    let n = 0
    let scale = 1
    for (;;) {
      const b = this.byte()
      n += (b & 0x7f) * scale
      if (b < 0x80) break
      scale *= 0x80
      if (scale > 2 ** 56) this.fail('varint longer than 8 bytes')
    }
    if (n > Number.MAX_SAFE_INTEGER) this.fail('integer beyond the safe range')
    return n
  }

  message(): unknown {
    const op = this.byte()
    switch (op & 7) {
      case UPDATE:
      case SIGNED: {
        this.sourceAndVersion(op)
        const source_id = this.source
        const version = this.version
        const key = this.string()
        this.json = 0
        const value = this.value(0)
        if ((op & 7) === UPDATE) return { key, value, source_id, version }
        const signature = this.string()
        return { key, value, source_id, version, signature }
      }
      case DIGEST: {
        this.sourceAndVersion(op & ~ENTRY_PROTOCOL)
        if ((op & ENTRY_PROTOCOL) !== 0) return { digest: true, source_id: this.source, version: this.version, protocol: PROTOCOL }
        return { digest: true, source_id: this.source, version: this.version }
      }
      case DONE: {
        const done: Record<string, unknown> = { digest: true, done: true }
        if ((op & REPLY) !== 0) done.reply = true
        if ((op & PROTOCOL_FLAG) !== 0) done.protocol = PROTOCOL
        if ((op & RATE) !== 0) {
          if (this.pos + 8 > this.buf.length) this.fail('message cut at the end of its frame')
          done.rate = this.float64(this.pos)
          this.pos += 8
        }
        if ((op & AFTER) !== 0) done.after = this.string()
        if ((op & THROUGH) !== 0) done.through = this.string()
        return done
      }
      case LOCAL: {
        if (op !== LOCAL) this.fail(`unknown opcode 0x${op.toString(16)}`)
        const key = this.string()
        this.json = 0
        return { key, value: this.value(0) }
      }
      case OTHER:
        if (op !== OTHER) this.fail(`unknown opcode 0x${op.toString(16)}`)
        this.json = 0
        return this.value(0)
      default:
        return this.fail(`unknown opcode 0x${op.toString(16)}`)
    }
  }

  // The last sourceAndVersion() read.
  private source = ''
  private version = ZERO

  private sourceAndVersion(op: number): void {
    if (op > 0x1f) this.fail(`unknown opcode 0x${op.toString(16)}`)
    let index: number
    if ((op & SAME_SOURCE) !== 0) {
      if (this.lastSource < 0) this.fail('names the previous source before any')
      index = this.lastSource
    } else {
      index = this.varint()
      if (index === this.sources.length) {
        this.sources.push(this.string())
        this.lastVersion.push(-1)
      } else if (index > this.sources.length) {
        this.fail(`source ${index} is not in the frame`)
      }
    }
    this.lastSource = index
    const last = this.lastVersion[index]
    let version: number
    if ((op & NEXT_VERSION) !== 0) {
      if (last < 0) this.fail('a next version of a source without one')
      version = last + 1
    } else {
      const z = this.varint()
      const d = z % 2 === 0 ? z / 2 : -(z + 1) / 2
      version = (last >= 0 ? last + 1 : this.prevVersion) + d
    }
    if (!Number.isSafeInteger(version) || version < 0) this.fail('version out of range')
    this.lastVersion[index] = version
    this.prevVersion = version
    this.source = this.sources[index]
    this.version = version
  }

  private string(): string {
    const tag = this.byte()
    if (tag >= 0xa0 && tag <= 0xbf) return this.utf8(tag & 0x1f)
    if (tag === STR) return this.terminated(false)
    if (tag === JSON_STR) return this.terminated(true)
    return this.fail(`expected a string, found tag 0x${tag.toString(16)}`)
  }

  private terminated(json: boolean): string {
    const end = this.buf.indexOf(END, this.pos)
    if (end < 0) this.fail('string without its end')
    const s = this.utf8(end - this.pos)
    this.pos++
    if (!json) return s
    const parsed: unknown = JSON.parse(`"${s}"`)
    if (typeof parsed !== 'string') this.fail('escaped string is not a string')
    return parsed
  }

  private utf8(n: number): string {
    const buf = this.buf
    const start = this.pos
    const end = start + n
    if (end > buf.length) this.fail('string cut at the end of its frame')
    this.pos = end
    if (n <= 16) {
      // Short ASCII, the common case, without a decoder call.
      const s = shortAscii(buf, start, n)
      if (s !== null) return s
    }
    try {
      return TEXT_DECODER.decode(buf.subarray(start, end))
    } catch {
      return this.fail('string is not valid UTF-8')
    }
  }

  // The value being decoded takes `n` more characters of JSON, counted
  // exactly (but for escapes and digits) and before what they stand for is
  // built, so that a value past the limit costs no more to refuse than the
  // largest one taken. (Each value counts a separator after it: one more
  // than the value has, hence the limit plus one.)
  private chars(n: number): void {
    if ((this.json += n) > MAX_VALUE_LENGTH + 1) this.fail(`value longer than ${MAX_VALUE_LENGTH} characters as JSON`)
  }

  // A string value: its characters and quotes (its JSON is at least that).
  private text(s: string): string {
    this.chars(s.length + 1)
    return s
  }

  private value(depth: number): Json {
    // Every value takes at least its first character and the separator
    // after it (an empty container adds its end, a string its length and
    // closing quote).
    if (++this.items > MAX_FRAME_ITEMS) this.fail(`more than ${MAX_FRAME_ITEMS} values in one frame`)
    if ((this.json += 2) > MAX_VALUE_LENGTH + 1) this.fail(`value longer than ${MAX_VALUE_LENGTH} characters as JSON`)
    const tag = this.byte()
    if (tag < 0x80) return tag
    if (tag >= 0xa0 && tag <= 0xbf) return this.text(this.utf8(tag & 0x1f))
    if (tag < 0xa0) {
      if (depth >= MAX_DEPTH + 1) this.fail(`nested more than ${MAX_DEPTH} levels deep`)
      const n = tag & 0x0f
      return tag < 0x90 ? this.map(depth, n) : this.array(depth, n)
    }
    switch (tag) {
      case NULL:
        this.chars(3)
        return null
      case FALSE:
        this.chars(4)
        return false
      case TRUE:
        this.chars(3)
        return true
      case POS_INT:
        return this.varint()
      case NEG_INT: {
        const n = this.varint()
        return n === 0 ? 0 : -n
      }
      case FLOAT64: {
        if (this.pos + 8 > this.buf.length) this.fail('number cut at the end of its frame')
        const x = this.float64(this.pos)
        this.pos += 8
        if (!Number.isFinite(x)) this.fail('a number JSON cannot carry')
        return x
      }
      case DECIMAL:
        return this.decimal()
      case STR:
        return this.text(this.terminated(false))
      case JSON_STR:
        return this.text(this.terminated(true))
      case ARRAY:
      case MAP:
        if (depth >= MAX_DEPTH + 1) this.fail(`nested more than ${MAX_DEPTH} levels deep`)
        return tag === ARRAY ? this.array(depth, -1) : this.map(depth, -1)
      default:
        return this.fail(`unknown tag 0x${tag.toString(16)}`)
    }
  }

  private decimal(): number {
    let text = ''
    for (;;) {
      const b = this.byte()
      const hi = b >> 4
      const lo = b & 15
      if (hi === 15) break
      if (hi >= DECIMAL_CHARS.length) this.fail('bad decimal digit')
      text += DECIMAL_CHARS[hi]
      if (lo === 15) break
      if (lo >= DECIMAL_CHARS.length) this.fail('bad decimal digit')
      text += DECIMAL_CHARS[lo]
      if (text.length > 32) this.fail('decimal number too long')
    }
    const x = Number(text)
    if (text.length === 0 || !Number.isFinite(x)) this.fail(`not a number: "${text}"`)
    return x
  }

  // n items, or up to END when n < 0.
  private array(depth: number, n: number): Json[] {
    const out: Json[] = []
    if (n >= 0) {
      for (let i = 0; i < n; i++) out.push(this.value(depth + 1))
    } else {
      const buf = this.buf
      for (;;) {
        if (this.pos >= buf.length) this.fail('array without its end')
        if (buf[this.pos] === END) {
          this.pos++
          break
        }
        out.push(this.value(depth + 1))
      }
    }
    // Its end: the last item's separator, if any, stood for it.
    if (out.length === 0) this.chars(1)
    return out
  }

  private map(depth: number, n: number): { [k: string]: Json } {
    const out: { [k: string]: Json } = {}
    const buf = this.buf
    for (let i = 0; n < 0 || i < n; i++) {
      if (n < 0) {
        if (this.pos >= buf.length) this.fail('map without its end')
        if (buf[this.pos] === END) {
          this.pos++
          // Its end (as in array).
          if (i === 0) this.chars(1)
          return out
        }
      }
      const k = this.string()
      // The key, its quotes and colon.
      this.chars(k.length + 3)
      const v = this.value(depth + 1)
      // As JSON.parse does: "__proto__" is an own property like any other.
      if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true })
      else out[k] = v
    }
    if (n === 0) this.chars(1)
    return out
  }
}
