/**
 * The peer (`scuttlebutt`) measured in a process of its own: the target
 * processes spawn `node dist/bench/peer.js <sync|set> <N>` once per round.
 *
 * Why not in the target's process: after one scuttlebutt sync, a bare
 * readable-stream Transform pair in the same process runs about 3x slower
 * for the rest of its life (shared code such as EventEmitter's emit turns
 * megamorphic), which would slow ours and the limit by the peer's doing.
 * The child runs one untimed warm-up of the same work, then the measured
 * one, and prints its milliseconds.
 */
import { execFileSync } from 'child_process'
import { gc, model, now, peerFilled, peerSync } from './common'

/** Milliseconds for the peer to do `kind` with `n` keys, in a fresh child process. */
export function peerInChild(kind: 'sync' | 'set', n: number): number {
  const out = execFileSync(process.execPath, ['--expose-gc', __filename, kind, String(n)], { encoding: 'utf8' })
  const ms = Number(out.trim().split('\n').pop())
  if (!Number.isFinite(ms)) throw new Error(`peer ${kind} printed ${out}`)
  return ms
}

async function once(kind: string, n: number): Promise<number> {
  if (kind === 'sync') {
    const a = peerFilled('peer-a', n)
    gc()
    const r = await peerSync(a)
    if (r.held !== n) throw new Error(`scuttlebutt synced ${r.held} of ${n}`)
    return r.ms
  }
  const keys = new Array<string>(n)
  for (let i = 0; i < n; i++) keys[i] = 'k' + i
  const m = model('peer-a')
  gc()
  const t0 = now()
  for (let i = 0; i < n; i++) m.set(keys[i], i)
  const t = now() - t0
  if (Object.keys(m.store).length !== n) throw new Error('scuttlebutt set lost keys')
  return t
}

async function main(kind: string, n: number): Promise<void> {
  await once(kind, n)
  process.stdout.write(`${await once(kind, n)}\n`)
}

if (require.main === module) {
  main(process.argv[2], Number(process.argv[3])).catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
