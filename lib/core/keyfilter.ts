/**
 * The keys whose deletes a node collected, as a Bloom filter of fixed size
 * (4 KiB, four hashes): a reset carries it, so that the node reset drops,
 * of its own writes, only those of keys that may have been deleted. A false
 * positive drops a write as a reset without the filter would; a key never
 * reported absent when it was added. Past some thousands of collected keys
 * it says "maybe" to most keys, which is the behaviour without it.
 */
const BYTES = 4096
const BITS = BYTES * 8
const HASHES = 4

export class KeyFilter {
  readonly bits: Uint8Array

  constructor(bits?: Uint8Array) {
    this.bits = bits ?? new Uint8Array(BYTES)
  }

  add(key: string): void {
    const [h1, h2] = hashes(key)
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + i * h2) % BITS
      this.bits[bit >>> 3] |= 1 << (bit & 7)
    }
  }

  /** False: `key` was never added. True: it may have been. */
  has(key: string): boolean {
    const [h1, h2] = hashes(key)
    for (let i = 0; i < HASHES; i++) {
      const bit = (h1 + i * h2) % BITS
      if ((this.bits[bit >>> 3] & (1 << (bit & 7))) === 0) return false
    }
    return true
  }

  /** Add every key of `other`. */
  merge(other: KeyFilter): void {
    for (let i = 0; i < BYTES; i++) this.bits[i] |= other.bits[i]
  }

  /** As text for a digest's end: base64. */
  toText(): string {
    let s = ''
    for (let i = 0; i < BYTES; i++) s += String.fromCharCode(this.bits[i])
    return btoa(s)
  }

  /** The filter `text` (from toText) holds, or undefined for anything else. */
  static fromText(text: unknown): KeyFilter | undefined {
    if (typeof text !== 'string' || text.length !== Math.ceil(BYTES / 3) * 4) return undefined
    let raw: string
    try {
      raw = atob(text)
    } catch {
      return undefined
    }
    if (raw.length !== BYTES) return undefined
    const bits = new Uint8Array(BYTES)
    for (let i = 0; i < BYTES; i++) bits[i] = raw.charCodeAt(i)
    return new KeyFilter(bits)
  }
}

// Two 32-bit FNV-1a hashes of the key's UTF-16 units, the second made odd
// (double hashing, Kirsch and Mitzenmacher).
function hashes(key: string): [number, number] {
  let a = 0x811c9dc5
  let b = 0x01000193 ^ 0x9e3779b9
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193) >>> 0
    b = Math.imul(b ^ c, 0x5bd1e995) >>> 0
  }
  return [a, (b | 1) >>> 0]
}
