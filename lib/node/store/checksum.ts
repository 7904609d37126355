/**
 * The store's checksums: CRC-32 (zlib's polynomial, reflected) of the UTF-8
 * of a text, the bytes `Buffer.from(text)` gives (a lone surrogate is
 * written as U+FFFD). Every row of state.db's `mappings`, its `meta` row and
 * record of deletes, lock.db's identity row and the `acked` witness carry
 * one, so that damage is seen when a row is read, not taken for data.
 *
 * Invariant: `rowCrc(key, source_id, version, value, signature)` is
 * `crc32` of `key NUL source_id NUL version NUL value NUL signature`
 * however it is summed (test/node/store/checksum.test.ts). Pure functions:
 * nothing is kept between calls but the constant table.
 */
import * as zlib from 'zlib'

// The table of the reflected polynomial, one entry a byte.
const CRC_TABLE = ((): Int32Array => {
  const t = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[n] = c
  }
  return t
})()

/** CRC-32 of `text`'s UTF-8: zlib's where Node has it (20.15 and later). */
export const crc32: (text: string) => number = typeof zlib.crc32 === 'function' ? (text) => zlib.crc32(text) : (text) => (crcOf(-1, text) ^ -1) >>> 0

// CRC-32 of a string's UTF-8, one byte at a time, continuing from `crc`
// (start at -1, end with (crc ^ -1) >>> 0): the same bytes Buffer.from(text)
// gives, a lone surrogate written as U+FFFD.
function crcOf(crc: number, text: string): number {
  const t = CRC_TABLE
  const n = text.length
  for (let i = 0; i < n; i++) {
    let c = text.charCodeAt(i)
    if (c < 0x80) {
      crc = t[(crc ^ c) & 0xff] ^ (crc >>> 8)
      continue
    }
    if (c < 0x800) {
      crc = t[(crc ^ (0xc0 | (c >> 6))) & 0xff] ^ (crc >>> 8)
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < n ? text.charCodeAt(i + 1) : 0
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          // A pair: one code point of four bytes.
          i++
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00)
          crc = t[(crc ^ (0xf0 | (c >> 18))) & 0xff] ^ (crc >>> 8)
          crc = t[(crc ^ (0x80 | ((c >> 12) & 0x3f))) & 0xff] ^ (crc >>> 8)
          crc = t[(crc ^ (0x80 | ((c >> 6) & 0x3f))) & 0xff] ^ (crc >>> 8)
          crc = t[(crc ^ (0x80 | (c & 0x3f))) & 0xff] ^ (crc >>> 8)
          continue
        }
        c = 0xfffd
      }
      crc = t[(crc ^ (0xe0 | (c >> 12))) & 0xff] ^ (crc >>> 8)
      crc = t[(crc ^ (0x80 | ((c >> 6) & 0x3f))) & 0xff] ^ (crc >>> 8)
    }
    crc = t[(crc ^ (0x80 | (c & 0x3f))) & 0xff] ^ (crc >>> 8)
  }
  return crc
}

// A zero byte, between columns.
function crcZero(crc: number): number {
  return CRC_TABLE[crc & 0xff] ^ (crc >>> 8)
}

// crcOf(crc, String(version)) without building the string, for the integers
// a version is (others go through String()).
function crcVersion(crc: number, version: number): number {
  if (!(Number.isSafeInteger(version) && version >= 0)) return crcOf(crc, String(version))
  // Two int32 halves of eight digits each (a double's division may be one off: mended).
  let hi = Math.floor(version / 1e8)
  let lo = version - hi * 1e8
  if (lo < 0) {
    hi--
    lo += 1e8
  } else if (lo >= 1e8) {
    hi++
    lo -= 1e8
  }
  return hi > 0 ? crcDigits(crcDigits(crc, hi, false), lo, true) : crcDigits(crc, lo, false)
}

// The decimal digits of `n` (an integer, 0 <= n < 1e8), most significant
// first: all eight when `padded` (the low half of a longer number), else
// from its first non-zero digit (0 is one digit). The digits are packed
// into an int32, four bits each, least significant lowest, then summed
// from the top: no buffer is kept between calls.
function crcDigits(crc: number, n: number, padded: boolean): number {
  let packed = 0
  let count = 0
  do {
    const q = (n / 10) | 0
    packed |= (n - q * 10) << (count << 2)
    n = q
    count++
  } while (padded ? count < 8 : n > 0)
  const t = CRC_TABLE
  for (let shift = (count - 1) << 2; shift >= 0; shift -= 4) crc = t[(crc ^ (48 + ((packed >>> shift) & 15))) & 0xff] ^ (crc >>> 8)
  return crc
}

/**
 * The CRC-32 a mappings row carries (over every column but `resolved`):
 * of `key NUL source_id NUL version NUL value NUL signature` in UTF-8.
 * Small rows are summed here column by column (no string is built, no call
 * into zlib: at a restart this runs once per row); large ones by zlib.
 */
export function rowCrc(key: string, source_id: string, version: number, value: string, signature: string | null): number {
  if (value.length > 256) return crc32(`${key}\u0000${source_id}\u0000${version}\u0000${value}\u0000${signature ?? ''}`)
  let crc = crcOf(-1, key)
  crc = crcOf(crcZero(crc), source_id)
  crc = crcVersion(crcZero(crc), version)
  crc = crcOf(crcZero(crc), value)
  crc = crcZero(crc)
  if (signature !== null) crc = crcOf(crc, signature)
  return (crc ^ -1) >>> 0
}

/** The CRC-32 of lock.db's identity row. */
export function identityCrc(id: string, reserved: number): number {
  return crc32(`identity\u0000${id}\u0000${reserved}`)
}

/** The CRC-32 of state.db's meta row. */
export function metaCrc(id: string, reserved: number, held: number | null, seq: number): number {
  return crc32(`${id}\u0000${reserved}\u0000${held ?? ''}\u0000${seq}`)
}
