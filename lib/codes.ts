/**
 * Codes: why an input was refused, in one word that logs, metrics and
 * tests read; the text beside each is for people and may change. Every
 * `'invalid'` event carries one as its third argument, `(object, reason,
 * code)`; `simple-scuttle node` counts them as
 * `scuttle_invalid_total{reason=CODE}`. The table in docs/operations.md
 * ("Codes") explains each, and test/codes.test.ts checks that it lists
 * every one.
 *
 * @packageDocumentation
 */

/** Every code an `'invalid'` report may carry. */
export const INVALID_CODES = [
  // The bytes and the message (the codecs, the four shapes).
  'not_json',
  'line_too_long',
  'frame',
  'truncated',
  'unencodable',
  'shape',
  'key',
  'value',
  'source_id',
  'version',
  'digest',
  // A peer of an older protocol (docs/wire.md, "Protocol").
  'old_peer',
  // What the node makes of a well-formed update.
  'ahead',
  'too_big',
  'signature',
  'local_write',
  'one_way',
  'node_error',
  'twin_writes',
  'late',
  'notice_unsigned',
  'restored_stale',
  // A node's limits on one peer (lib/node).
  'flood',
  'member',
  // Membership's reports.
  'member_record',
  'members_full',
] as const

/** Why an input was refused (see {@link INVALID_CODES}). */
export type InvalidCode = (typeof INVALID_CODES)[number]

/**
 * Codes of the admin endpoint's refusals (`{"ok":false,"code"}`, lib/node/admin.ts),
 * besides those of the node it passes on (`store_failed`, `twin`); stdin's
 * error lines carry the same code for the same failure.
 */
export const ADMIN_CODES = [
  'invalid',
  'unauthorized',
  'too_many_attempts',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'unsupported_media_type',
  'bad_request',
  'too_large',
  'refused',
] as const

/** Why the admin endpoint refused a request (see {@link ADMIN_CODES}). */
export type AdminCode = (typeof ADMIN_CODES)[number]

/** What `'invalid'` is reported on: a stream, a node, a codec. */
export interface Reporter {
  emit(event: 'invalid', ...args: unknown[]): boolean
}

/**
 * Report `what` as refused on `on`: `'invalid'` `(what, reason, code)`.
 * Every report goes through here, so that each carries a code (the layers
 * test finds any other `emit('invalid', ...)`).
 */
export function reportInvalid(on: Reporter, what: unknown, reason: string, code: InvalidCode): void {
  on.emit('invalid', what, reason, code)
}

/** A TypeError thrown for a refused local input, carrying the code an `'invalid'` report of the same input would. */
export interface InputError extends TypeError {
  readonly code: InvalidCode
}

/** A {@link InputError}: `set` and `delete` throw these, so callers read `err.code` as they read an `'invalid'` report's. */
export function inputError(code: InvalidCode, message: string): InputError {
  return Object.assign(new TypeError(message), { code })
}
