/**
 * What a value must be to travel, and the limits every path shares: JSON-
 * safe, so that every node, every codec and every store sees the same
 * value; nested no deeper than {@link MAX_DEPTH}; no longer, as JSON text,
 * than {@link MAX_VALUE_LENGTH}, so that an update always fits in a line of
 * the wire (`MAX_LINE_LENGTH`). `set`, a stream, the wire, a snapshot, a
 * store object and the durable store all apply the same checks, so nothing
 * is accepted on one path that another would refuse.
 *
 * A value a node holds is immutable: `set` keeps a frozen copy (the caller's
 * object stays the caller's), and a value that arrives through a stream is
 * frozen where it is, so nothing done to an object afterwards changes
 * replicated state.
 */

/** Deepest nesting of objects and arrays in a value. */
export const MAX_DEPTH = 100
/**
 * Longest value, as JSON text in UTF-16 code units (characters, for ASCII):
 * 1 MiB less room for the rest of an update (key, source id, version,
 * signature), so that any update fits in one line of the wire.
 */
export const MAX_VALUE_LENGTH = (1 << 20) - (16 << 10)
/** Longest key, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024
/** Longest source id, in UTF-16 code units. */
export const MAX_ID_LENGTH = 256

/**
 * Why `value` cannot be carried faithfully, or null if it can. Refused:
 * undefined anywhere, functions, symbols, bigints, NaN and ±Infinity,
 * cycles, sparse arrays, symbol-keyed properties, objects other than plain
 * objects and arrays (a Date, Map or class instance would arrive as
 * something else), getters and a `toJSON` method (JSON would write other
 * than the data), nesting deeper than {@link MAX_DEPTH} and JSON text
 * longer than {@link MAX_VALUE_LENGTH}.
 */
export function jsonProblem(value: unknown): string | null {
  const r = admit(value, false, false)
  return r instanceof Refused ? r.reason : null
}

// A string token, or a number token, of JSON text.
const TOKENS = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g

/**
 * Why the JSON text `text` (which parses) would not be held as written, or
 * null: an integer a double does not hold exactly (beyond 2^53 - 1, a double
 * rounds it: 12345678901234567890 would be held as 12345678901234567000;
 * one it holds, as JSON.stringify writes it, passes). The
 * check of the entries that take JSON text (stdin, the admin endpoint, the
 * CLI client); a value given as data was a double already.
 */
export function jsonTextProblem(text: string): string | null {
  for (const m of text.matchAll(TOKENS)) {
    const t = m[0]
    if (t.charCodeAt(0) === 34 || t.includes('.') || t.includes('e') || t.includes('E')) continue
    // A double that JSON.stringify writes this way reads back exactly
    // (1e20 is "100000000000000000000"); one that does not was rounded.
    if (t !== '-0' && String(Number(t)) !== t) {
      const shown = t.length > 40 ? `${t.slice(0, 40)}...` : t
      return `holds the integer ${shown}, beyond 2^53 - 1, which a JSON number (a double) does not hold exactly: send it as a string ("${shown}")`
    }
  }
  return null
}

/**
 * @internal Why {@link admitValue} refused a value. What it admits is JSON
 * data (plain objects, arrays, primitives), never an instance of this.
 */
export class Refused {
  constructor(readonly reason: string) {}
}

/**
 * @internal Check `value` as {@link jsonProblem} does, and return what the
 * node may hold, or a {@link Refused}. With `copy`, what is held is a
 * frozen copy, each member read once (a snapshot: a getter is called once
 * and its result kept; the caller keeps its object). Without, it is the
 * value itself, frozen before it is read (a proxy frozen must then answer
 * as its target does, so what was checked is what is held), and it must be
 * data only. Each call walks with state of its own: code a getter or a
 * trap runs during the walk (a `set` of its own) cannot disturb it.
 */
export function admitValue(value: unknown, copy: boolean): unknown {
  // (plainValue's test, written out: one call less to inline at set.)
  if (typeof value === 'number' ? Number.isFinite(value) && !Object.is(value, -0) : typeof value === 'string' && value.length <= MAX_VALUE_LENGTH >> 3) return value
  return admit(value, copy, true)
}

/**
 * @internal Most values: a finite number other than -0, or a string too
 * short to pass the limit, which {@link admitValue} admits as they are.
 * Small enough to be inlined where a value is taken.
 */
export function plainValue(value: unknown): boolean {
  // (Object.is: a division by a value 0, seen first, had no feedback and
  // deoptimised the caller when a 0 came again.)
  return typeof value === 'number' ? Number.isFinite(value) && !Object.is(value, -0) : typeof value === 'string' && value.length <= MAX_VALUE_LENGTH >> 3
}

// Values this module froze whole after a full check: met again (an
// in-process peer passes its own), they need no second walk. Safe to share:
// what is in it stays true, as a frozen value cannot change.
const sealed = new WeakSet<object>()

function admit(value: unknown, copy: boolean, keep: boolean): unknown {
  switch (typeof value) {
    case 'string':
      if (value.length > MAX_VALUE_LENGTH >> 3 && JSON.stringify(value).length > MAX_VALUE_LENGTH) return new Refused(TOO_LONG)
      return value
    case 'boolean':
      return value
    case 'number':
      if (!Number.isFinite(value)) return new Refused(`${value} cannot be carried by JSON`)
      // JSON writes -0 as 0, a binary codec keeps it: refused on every path,
      // so that no entry stores a value other than the one written.
      if (value === 0 && 1 / value < 0) return new Refused(NEGATIVE_ZERO)
      return value
    case 'object': {
      if (value === null || (!copy && sealed.has(value))) return value
      const walk = new Walk(keep, copy && keep)
      let bad: string | null
      try {
        bad = walk.object(value, 0)
        if (bad === null && walk.high > MAX_VALUE_LENGTH) {
          // The bound is not decisive: measure what is held.
          if (walk.low > MAX_VALUE_LENGTH || JSON.stringify(walk.result).length > MAX_VALUE_LENGTH) bad = TOO_LONG
        }
      } catch (err) {
        bad = `could not be read: ${(err as Error)?.message}`
      }
      if (bad === null) {
        if (keep) sealed.add(walk.result as object)
        return walk.result
      }
      if (bad === TOO_LONG) return new Refused(bad)
      const trail = walk.trail
      return new Refused(`${bad} at ${trail === null ? 'the top' : trail.reverse().join('')}`)
    }
    default:
      return new Refused(`a ${typeof value} cannot be carried by JSON`)
  }
}

const TOO_LONG = `is longer than ${MAX_VALUE_LENGTH} characters as JSON`
const NEGATIVE_ZERO = '-0, which JSON carries as 0 (write 0)'

// One walk of one value: whether to freeze (keep) and copy, bounds on the
// JSON text's length, the admitted form of the member last walked, the
// objects being walked (for cycles), and the path to a problem, built only
// once one is found.
class Walk {
  low = 0
  high = 0
  result: unknown = undefined
  readonly stack: object[] = []
  trail: string[] | null = null

  constructor(
    readonly keep: boolean,
    readonly copy: boolean,
  ) {}

  // A member's problem, or null with its admitted form in this.result.
  member(v: unknown, depth: number): string | null {
    switch (typeof v) {
      case 'string':
        // Quotes, and each character escaped as \uXXXX at worst.
        this.low += v.length + 2
        this.high += 6 * v.length + 2
        this.result = v
        return null
      case 'boolean':
        this.low += 4
        this.high += 5
        this.result = v
        return null
      case 'number':
        if (!Number.isFinite(v)) return `holds ${v}, which JSON cannot carry,`
        this.low += 1
        this.high += 24
        if (v === 0 && 1 / v < 0) return `holds ${NEGATIVE_ZERO},`
        this.result = v
        return null
      case 'object':
        if (v === null) {
          this.low += 4
          this.high += 4
          this.result = v
          return null
        }
        return this.object(v, depth)
      default:
        return `holds a ${typeof v}, which JSON cannot carry,`
    }
  }

  object(o: object, depth: number): string | null {
    const stack = this.stack
    for (let i = 0; i < depth; i++) if (stack[i] === o) return 'has a cycle'
    if (depth >= MAX_DEPTH) return `is nested more than ${MAX_DEPTH} levels deep`
    // A length past the limit is certain before the walk ends: stop early.
    if (this.low > MAX_VALUE_LENGTH) return TOO_LONG
    stack[depth] = o
    const copy = this.copy
    // Kept as it is, the value is frozen before it is read: what the walk
    // reads is then what every later read gives.
    if (this.keep && !copy && !Object.isFrozen(o)) Object.freeze(o)
    // Read as it is, a toJSON method would make JSON write something else.
    if (!copy && typeof (o as { toJSON?: unknown }).toJSON === 'function') return 'has a toJSON method (only data survives JSON)'
    if (Array.isArray(o)) {
      const n = o.length
      const out: unknown[] | null = copy ? new Array(n) : null
      this.low += 2 + n
      this.high += 2 + n
      for (let i = 0; i < n; i++) {
        const v: unknown = o[i]
        const bad = v === undefined && !(i in o) ? 'has a hole' : this.member(v, depth + 1)
        if (bad !== null) return this.at(bad, `[${i}]`)
        if (out !== null) out[i] = this.result
      }
      this.result = out === null ? o : Object.freeze(out)
      return null
    }
    const proto = Object.getPrototypeOf(o)
    if (proto !== Object.prototype && proto !== null) {
      const name = (proto?.constructor as { name?: string } | undefined)?.name ?? 'object'
      return `holds a ${name}: only plain objects and arrays survive JSON,`
    }
    const keys = Object.keys(o)
    const out: Record<string, unknown> | null = copy ? {} : null
    this.low += 2 + keys.length
    this.high += 2 + keys.length
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]
      this.low += k.length + 3
      this.high += 6 * k.length + 3
      // Kept as it is, an accessor would stay live (a value that changes on
      // every read splits replicas); JSON never makes one.
      if (out === null && Object.getOwnPropertyDescriptor(o, k)?.get !== undefined) return this.at('has a getter (only data survives JSON)', `.${k}`)
      const bad = this.member((o as Record<string, unknown>)[k], depth + 1)
      if (bad !== null) return this.at(bad, `.${k}`)
      // defineProperty: a key such as "__proto__" stays an own data property.
      if (out !== null) Object.defineProperty(out, k, { value: this.result, enumerable: true, writable: true, configurable: true })
    }
    if (Object.getOwnPropertySymbols(o).length > 0) return 'has symbol keys'
    this.result = out === null ? o : Object.freeze(out)
    return null
  }

  // The problem `bad` found at `step` below the object walked.
  private at(bad: string, step: string): string {
    if (bad !== TOO_LONG) (this.trail ??= []).push(step)
    return bad
  }
}
