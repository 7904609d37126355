/**
 * Helpers for the tests of the SQLite store (store.test.ts,
 * salvage.test.ts): directories removed after each test, and two
 * in-memory nodes exchanging everything directly.
 */
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'
import { Clock, type Gossip } from '../../../lib'

/**
 * Call inside a describe: a function making a new directory, every one
 * removed after each test, and Clock.now put back (tests stub it).
 */
export function freshDirs(prefix = 'scuttle-store-'): () => string {
  const now = Clock.now
  const dirs: string[] = []
  afterEach(() => {
    Clock.now = now
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
  })
  return () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
    dirs.push(d)
    return d
  }
}

// Exchange everything between two in-memory nodes, directly.
export function exchange(a: Gossip, b: Gossip): void {
  const sa = a.createStream()
  const sb = b.createStream()
  for (let round = 0; round < 20; round++) {
    sa.gossip()
    let moved = 1
    while (moved > 0) {
      moved = 0
      for (let m = sa.read(); m !== null; m = sa.read()) {
        sb.write(m)
        moved++
      }
      for (let m = sb.read(); m !== null; m = sb.read()) {
        sa.write(m)
        moved++
      }
    }
  }
}

export async function settleStreams(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}
