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
 * something else), nesting deeper than {@link MAX_DEPTH} and JSON text
 * longer than {@link MAX_VALUE_LENGTH}.
 */
export function jsonProblem(value: unknown): string | null {
  return admitValue(value, false, false)
}

/** @internal The value {@link admitValue} admitted (a frozen copy, or the value frozen). */
export const admitted = { value: undefined as unknown }

// Values this module froze whole: met again (an in-process peer passes its
// own), they need no second walk.
const sealed = new WeakSet<object>()

/**
 * @internal Check `value` as {@link jsonProblem} does; when it passes, and
 * `keep` is set, put in `admitted.value` what the node may hold: a frozen
 * copy when `copy` is set (the caller keeps its object), else the value
 * itself, frozen. Returns the problem, or null.
 */
export function admitValue(value: unknown, copy: boolean, keep = true): string | null {
  // (plainValue's test, written out: one call less to inline at set.)
  if (typeof value === 'number' ? Number.isFinite(value) && !Object.is(value, -0) : typeof value === 'string' && value.length <= MAX_VALUE_LENGTH >> 3) {
    admitted.value = value
    return null
  }
  return admitOther(value, copy, keep)
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

// admitValue, for what its fast path leaves.
function admitOther(value: unknown, copy: boolean, keep: boolean): string | null {
  switch (typeof value) {
    case 'string':
      if (value.length > MAX_VALUE_LENGTH >> 3 && JSON.stringify(value).length > MAX_VALUE_LENGTH) return tooLong()
      admitted.value = value
      return null
    case 'boolean':
      admitted.value = value
      return null
    case 'number':
      if (!Number.isFinite(value)) return `${value} cannot be carried by JSON`
      // JSON writes -0 as 0: a copy takes 0; a value kept as it is cannot.
      if (value === 0 && 1 / value < 0) {
        if (!copy && keep) return NEGATIVE_ZERO
        admitted.value = 0
        return null
      }
      admitted.value = value
      return null
    case 'object': {
      if (value === null || (!copy && sealed.has(value))) {
        admitted.value = value
        return null
      }
      walk.keep = keep
      walk.copy = copy && keep
      walk.low = 0
      walk.high = 0
      let bad: string | null
      let result: unknown
      try {
        bad = objectProblem(value, 0)
        result = walk.result
      } catch (err) {
        bad = `could not be read: ${(err as Error)?.message}`
      }
      stack.length = 0
      walk.result = undefined
      if (bad === null && walk.high > MAX_VALUE_LENGTH) {
        // The bound is not decisive: measure.
        if (walk.low > MAX_VALUE_LENGTH || JSON.stringify(result ?? value).length > MAX_VALUE_LENGTH) bad = tooLong()
      }
      if (bad === null) {
        if (keep) {
          sealed.add(result as object)
          admitted.value = result
        }
        return null
      }
      const at = trail.length === 0 ? 'the top' : trail.reverse().join('')
      trail.length = 0
      return bad === TOO_LONG ? bad : `${bad} at ${at}`
    }
    default:
      return `a ${typeof value} cannot be carried by JSON`
  }
}

const TOO_LONG = `is longer than ${MAX_VALUE_LENGTH} characters as JSON`
const NEGATIVE_ZERO = '-0, which JSON carries as 0'

function tooLong(): string {
  trail.length = 0
  return TOO_LONG
}

// The state of one walk: whether to freeze (keep) and copy, the bounds on
// the JSON text's length, and the copy or frozen object of the last member.
const walk = { keep: true, copy: false, low: 0, high: 0, result: undefined as unknown }
// The objects being walked (for cycles), and the path to a problem, built
// only once one is found.
const stack: object[] = []
const trail: string[] = []

// A member's problem, or null with its admitted form in walk.result.
function memberProblem(v: unknown, depth: number): string | null {
  switch (typeof v) {
    case 'string':
      // Quotes, and each character escaped as \uXXXX at worst.
      walk.low += v.length + 2
      walk.high += 6 * v.length + 2
      walk.result = v
      return null
    case 'boolean':
      walk.low += 4
      walk.high += 5
      walk.result = v
      return null
    case 'number':
      if (!Number.isFinite(v)) return `holds ${v}, which JSON cannot carry,`
      walk.low += 1
      walk.high += 24
      if (v === 0 && 1 / v < 0) {
        if (walk.keep && !walk.copy) return `holds ${NEGATIVE_ZERO},`
        walk.result = 0
        return null
      }
      walk.result = v
      return null
    case 'object':
      if (v === null) {
        walk.low += 4
        walk.high += 4
        walk.result = v
        return null
      }
      return objectProblem(v, depth)
    default:
      return `holds a ${typeof v}, which JSON cannot carry,`
  }
}

function objectProblem(o: object, depth: number): string | null {
  for (let i = 0; i < depth; i++) if (stack[i] === o) return 'has a cycle'
  if (depth >= MAX_DEPTH) return `is nested more than ${MAX_DEPTH} levels deep`
  // A length past the limit is certain before the walk ends: stop early.
  if (walk.low > MAX_VALUE_LENGTH) return TOO_LONG
  stack[depth] = o
  const copy = walk.copy
  if (Array.isArray(o)) {
    const n = o.length
    const out: unknown[] | null = copy ? new Array(n) : null
    walk.low += 2 + n
    walk.high += 2 + n
    for (let i = 0; i < n; i++) {
      const v: unknown = o[i]
      const bad = v === undefined && !(i in o) ? 'has a hole' : memberProblem(v, depth + 1)
      if (bad !== null) {
        if (bad !== TOO_LONG) trail.push(`[${i}]`)
        return bad
      }
      if (out !== null) out[i] = walk.result
    }
    walk.result = finish(out ?? o)
    return null
  }
  const proto = Object.getPrototypeOf(o)
  if (proto !== Object.prototype && proto !== null) {
    const name = (proto?.constructor as { name?: string } | undefined)?.name ?? 'object'
    return `holds a ${name}: only plain objects and arrays survive JSON,`
  }
  const keys = Object.keys(o)
  const out: Record<string, unknown> | null = copy ? {} : null
  walk.low += 2 + keys.length
  walk.high += 2 + keys.length
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]
    walk.low += k.length + 3
    walk.high += 6 * k.length + 3
    // Kept as it is, an accessor would stay live (a value that changes on
    // every read splits replicas); JSON never makes one.
    if (out === null && Object.getOwnPropertyDescriptor(o, k)?.get !== undefined) return 'has a getter (only data survives JSON)'
    const bad = memberProblem((o as Record<string, unknown>)[k], depth + 1)
    if (bad !== null) {
      if (bad !== TOO_LONG) trail.push(`.${k}`)
      return bad
    }
    // defineProperty: a key such as "__proto__" stays an own data property.
    if (out !== null) Object.defineProperty(out, k, { value: walk.result, enumerable: true, writable: true, configurable: true })
  }
  if (Object.getOwnPropertySymbols(o).length > 0) return 'has symbol keys'
  walk.result = finish(out ?? o)
  return null
}

function finish<T extends object>(o: T): T {
  return walk.keep && !Object.isFrozen(o) ? Object.freeze(o) : o
}
