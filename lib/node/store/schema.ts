/**
 * state.db's format: SQLite (better-sqlite3, loaded when a store opens),
 * its tables, and a row of `mappings` (one source's newest mapping of a
 * key) written from an update and read back into one.
 *
 * Invariant: a row read back is the update that was written, checked as an
 * update from a peer is (its checksum, its JSON, the limits), or the reason
 * it is not one; reading a row never throws.
 */
import type Database from 'better-sqlite3'
import { checkedUpdate } from '../../shape'
import type { Update } from '../../types'
import { loadPeer } from '../peer'
import { rowCrc } from './checksum'

/** better-sqlite3, an optional peer dependency: loaded when a store opens. */
export const sqlite = (): typeof Database => loadPeer<typeof Database>('better-sqlite3', 'The SQLite store (simple-scuttle/sqlite, a node with data)')

/** The format this version reads and writes (`PRAGMA user_version`). */
export const FORMAT = 1
/** `PRAGMA application_id` of a store: "Scut". */
export const APPLICATION_ID = 0x53637574

// The value column of a delete and of a withdrawal (no JSON text is empty or "-").
const DELETED = ''
const WITHDRAWN = '-'
// A withdrawal naming the version it withdraws (R6): "~" and the version ("~" starts no JSON).
const WITHDRAWN_OF = '~'

export const SCHEMA = `
CREATE TABLE meta (
  one      INTEGER PRIMARY KEY CHECK (one = 1),
  id       TEXT    NOT NULL,
  reserved INTEGER NOT NULL,
  held     INTEGER,
  seq      INTEGER NOT NULL,
  crc      INTEGER NOT NULL
);
CREATE TABLE mappings (
  key       TEXT    NOT NULL,
  source_id TEXT    NOT NULL,
  version   INTEGER NOT NULL,
  value     TEXT    NOT NULL,
  signature TEXT,
  resolved  INTEGER NOT NULL DEFAULT 0,
  crc       INTEGER NOT NULL,
  PRIMARY KEY (key, source_id)
) WITHOUT ROWID;
CREATE INDEX mappings_by_source ON mappings (source_id, version);
CREATE TABLE deletes (
  one      INTEGER PRIMARY KEY CHECK (one = 1),
  record   TEXT    NOT NULL,
  crc      INTEGER NOT NULL
);
CREATE VIEW state AS
  SELECT key, value, source_id, version, signature FROM mappings WHERE resolved = 1 AND value <> '';
`

/** The columns of a mappings row that hold an update, as a raw statement returns them. */
export const ROW = 'SELECT key, source_id, version, value, signature, crc FROM mappings'

export type Row = [key: string, source_id: string, version: number, value: string, signature: string | null, crc: number]

/** The value column of `u`: its JSON, or the mark of a delete or a withdrawal. */
export function valueColumn(u: Update): string {
  if (u.withdrawn === true) return typeof u.value === 'number' ? `${WITHDRAWN_OF}${u.value}` : WITHDRAWN
  return u.deleted === true ? DELETED : JSON.stringify(u.value)
}

// The signature column of a copy issued again (R2): "^", its first version,
// and "^" and the signature if signed; "^^" before a signature of a write
// that is no copy but starts with "^". (Kept out of the value column, which
// the `state` view shows.)
const FIRST = '^'

/** The signature column of `u`: its signature, with its first version if it is a copy issued again (R2). */
export function signatureColumn(u: Update): string | null {
  const signature = u.signature
  if (u.first !== undefined) return signature === undefined ? `${FIRST}${u.first}` : `${FIRST}${u.first}${FIRST}${signature}`
  if (signature === undefined) return null
  return signature.startsWith(FIRST) ? `${FIRST}${FIRST}${signature}` : signature
}

// A signature column read back: the signature and the first version, or the reason it is none.
function signatureOf(column: string | null): { signature: string | undefined; first: number | undefined } | string {
  if (typeof column !== 'string') return { signature: undefined, first: undefined }
  if (!column.startsWith(FIRST)) return { signature: column, first: undefined }
  const m = /^\^([0-9]{0,16})(?:\^([\s\S]*))?$/.exec(column)
  if (m === null || (m[1] === '' && m[2] === undefined)) return 'its signature column does not read'
  return { signature: m[2], first: m[1] === '' ? undefined : Number(m[1]) }
}

/** A row read back as an update, or the reason it is not one. */
export function rowUpdate(row: Row): Update | string {
  const [key, source_id, version, value, signature, crc] = row
  if (typeof key !== 'string' || typeof source_id !== 'string' || typeof value !== 'string' || typeof version !== 'number') {
    return 'a column has the wrong type'
  }
  if (rowCrc(key, source_id, version, value, signature) !== crc) return 'its checksum does not match'
  let parsed: unknown = null
  const of = value.startsWith(WITHDRAWN_OF)
  // A delete (a tombstone) is stored with an empty value, which no JSON is.
  if (of) {
    if (!/^~[0-9]{1,16}$/.test(value)) return 'its withdrawal names no version'
    parsed = Number(value.slice(1))
  } else if (value !== DELETED && value !== WITHDRAWN) {
    try {
      parsed = JSON.parse(value)
    } catch {
      return 'its value is not JSON'
    }
  }
  const signed = signatureOf(signature)
  if (typeof signed === 'string') return signed
  // The same checks and limits as an update from a peer (checkedUpdate
  // copies what it checks).
  const u = {
    key,
    value: parsed,
    source_id,
    version,
    signature: signed.signature,
    first: signed.first,
    deleted: value === DELETED ? true : undefined,
    withdrawn: value === WITHDRAWN || of ? true : undefined,
  }
  try {
    return checkedUpdate(u, 'the row')
  } catch (err) {
    return (err as Error).message
  }
}
