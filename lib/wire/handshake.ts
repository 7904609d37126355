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
import { PROTOCOL } from '../shape'
import { FORMATS, type Format } from './codec'

/** The `hello` field of every hello. */
export const HELLO = 'simple-scuttle'

/** A hello as received (checked by the session, see `session.ts`). */
export interface Hello {
  readonly hello: typeof HELLO
  readonly id: string
  /** Formats the sender speaks, preferred first; absent: NDJSON only. */
  readonly codecs?: readonly string[]
  /** The sender's cluster; absent: `"default"` (see `NodeOptions.cluster`). */
  readonly cluster?: string
  /** The sender's protocol; absent: an older release, refused (docs/wire.md, "Protocol"). */
  readonly protocol?: number
}

/** The hello line of node `id` speaking `codecs`, of `cluster` (none named: the default cluster). */
export function helloLine(id: string, codecs: readonly Format[] = FORMATS, cluster?: string): string {
  return `${JSON.stringify(cluster === undefined ? { hello: HELLO, id, codecs, protocol: PROTOCOL } : { hello: HELLO, id, codecs, cluster, protocol: PROTOCOL })}\n`
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
