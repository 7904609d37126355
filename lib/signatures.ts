/**
 * Updates as they are made: our own writes (markers, and signed under
 * `config.security`), and a peer's update checked against its signature
 * (before anything else is done with it, so that a forgery moves nothing).
 */
import type { Security, Update } from './types'

// A local write that is a marker, or signed (see local).
export function ownUpdate(security: Security | undefined, id: string, key: string, value: unknown, version: number, marker: 'deleted' | 'withdrawn' | null, of: number | null, first?: number): Update {
  if (first !== undefined) {
    // A copy issued again (R2): the same update with its first version.
    const u: Update = { ...ownUpdate(undefined, id, key, value, version, marker, of), first }
    return Object.freeze(security === undefined ? u : { ...u, signature: security.sign({ ...u, signature: '' }) })
  }
  return Object.freeze(
    security !== undefined
      ? signed(security, id, key, marker === null ? value : marker === 'withdrawn' ? of : null, version, marker)
      : marker === 'deleted'
        ? { key, value: null, source_id: id, version, deleted: true as const }
        : marker === 'withdrawn'
          ? { key, value: of, source_id: id, version, withdrawn: true as const }
          : { key, value, source_id: id, version },
  )
}

// A write of ours, signed (config.security); `sign` sees an empty signature.
export function signed(security: Security, id: string, key: string, value: unknown, version: number, marker: 'deleted' | 'withdrawn' | null): Update {
  const update: { key: string; value: unknown; source_id: string; version: number; signature: string; deleted?: true; withdrawn?: true } =
    marker === 'deleted'
      ? { key, value, source_id: id, version, signature: '', deleted: true }
      : marker === 'withdrawn'
        ? { key, value, source_id: id, version, signature: '', withdrawn: true }
        : { key, value, source_id: id, version, signature: '' }
  update.signature = security.sign(update)
  return update
}

// The signature of a peer's update if `verify` accepts it, else undefined.
export function verified(security: Security, chunk: unknown, key: string, value: unknown, source_id: string, version: number, marker: 'deleted' | 'withdrawn' | null, first?: number): string | undefined {
  try {
    const signature: unknown = (chunk as { signature?: unknown }).signature
    if (typeof signature !== 'string') return undefined
    const plain: Update =
      marker === 'deleted'
        ? { key, value, source_id, version, signature, deleted: true }
        : marker === 'withdrawn'
          ? { key, value, source_id, version, signature, withdrawn: true }
          : { key, value, source_id, version, signature }
    // A copy's first version is signed too (R2): a relay cannot move its place.
    const update = first === undefined ? plain : { ...plain, first }
    return security.verify(update) === true ? signature : undefined
  } catch {
    return undefined
  }
}

// A peer's update that is a marker, or signed (see take).
export function peerUpdate(key: string, value: unknown, source_id: string, version: number, signature: string | undefined, deleted: boolean, withdrawn: boolean, first?: number): Update {
  if (first !== undefined) return Object.freeze({ ...peerUpdate(key, value, source_id, version, signature, deleted, withdrawn), first })
  return Object.freeze(
    signature === undefined
      ? deleted
        ? { key, value, source_id, version, deleted: true as const }
        : withdrawn
          ? { key, value, source_id, version, withdrawn: true as const }
          : { key, value, source_id, version }
      : deleted
        ? { key, value, source_id, version, signature, deleted: true as const }
        : withdrawn
          ? { key, value, source_id, version, signature, withdrawn: true as const }
          : { key, value, source_id, version, signature },
  )
}
