/**
 * What a value must be to travel: JSON-safe, so that every node, every
 * codec and every store sees the same value.
 */

/**
 * Why JSON cannot carry `value` faithfully, or null if it can. Refused:
 * undefined anywhere, functions, symbols, bigints, NaN and ±Infinity,
 * cycles, sparse arrays, symbol-keyed properties, and objects other than
 * plain objects and arrays (a Date, Map or class instance would arrive as
 * something else). Nesting deeper than 512 levels is refused too.
 * Allocates nothing for values it accepts, apart from a key list per object.
 */
export function jsonProblem(value: unknown): string | null {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return null
    case 'number':
      return Number.isFinite(value) ? null : `${value} cannot be carried by JSON`
    case 'object': {
      if (value === null) return null
      let bad: string | null
      try {
        bad = objectProblem(value as object, 0)
      } catch (err) {
        bad = `could not be read: ${(err as Error)?.message}`
      }
      stack.length = 0
      if (bad === null) return null
      const at = trail.length === 0 ? 'the top' : trail.reverse().join('')
      trail.length = 0
      return `${bad} at ${at}`
    }
    default:
      return `a ${typeof value} cannot be carried by JSON`
  }
}

const MAX_DEPTH = 512
// The objects being walked (for cycles), and the path to a problem, built
// only once one is found.
const stack: object[] = []
const trail: string[] = []

function memberProblem(v: unknown, depth: number): string | null {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return null
    case 'number':
      return Number.isFinite(v) ? null : `holds ${v}, which JSON cannot carry,`
    case 'object':
      return v === null ? null : objectProblem(v as object, depth)
    default:
      return `holds a ${typeof v}, which JSON cannot carry,`
  }
}

function objectProblem(o: object, depth: number): string | null {
  for (let i = 0; i < depth; i++) if (stack[i] === o) return 'has a cycle'
  if (depth >= MAX_DEPTH) return `is nested more than ${MAX_DEPTH} levels deep`
  stack[depth] = o
  if (Array.isArray(o)) {
    for (let i = 0; i < o.length; i++) {
      const v: unknown = o[i]
      const bad = v === undefined && !(i in o) ? 'has a hole' : memberProblem(v, depth + 1)
      if (bad !== null) {
        trail.push(`[${i}]`)
        return bad
      }
    }
    return null
  }
  const proto = Object.getPrototypeOf(o)
  if (proto !== Object.prototype && proto !== null) {
    const name = (proto?.constructor as { name?: string } | undefined)?.name ?? 'object'
    return `holds a ${name}: only plain objects and arrays survive JSON,`
  }
  const keys = Object.keys(o)
  for (let i = 0; i < keys.length; i++) {
    const bad = memberProblem((o as Record<string, unknown>)[keys[i]], depth + 1)
    if (bad !== null) {
      trail.push(`.${keys[i]}`)
      return bad
    }
  }
  if (Object.getOwnPropertySymbols(o).length > 0) return 'has symbol keys'
  return null
}
