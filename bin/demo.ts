/**
 * `simple-scuttle demo`: several nodes in a ring, each writes, they gossip
 * in rounds, and the demo prints how the state spread until all agree.
 */
import { Gossip, base } from '../lib'

export async function demo(out: (line: string) => void = console.log): Promise<number> {
  const n = 6
  const config = { resolve: base.resolution.lww_vs_current_vers, mtu: 4 }
  const nodes = Array.from({ length: n }, (_, i) => new Gossip(`node-${i}`, config))
  // A ring: node i talks to node i+1 over a pair of dedicated streams.
  const links = nodes.map((g, i) => {
    const a = g.createStream()
    const b = nodes[(i + 1) % n].createStream()
    a.pipe(b).pipe(a)
    return a
  })
  nodes.forEach((g, i) => {
    for (let k = 0; k < 3; k++) g.set(`${g.id}/item-${k}`, `written by ${g.id}`)
    if (i % 2 === 0) g.set('leader', g.id) // a contested key: last writer wins
  })
  out(`${n} nodes in a ring, mtu ${config.mtu}; each wrote 3 keys, and every other node wrote "leader".`)
  const keys = new Set(nodes.flatMap((g) => Object.keys(g.state)))
  const total = new Set(['leader', ...nodes.flatMap((g) => [0, 1, 2].map((k) => `${g.id}/item-${k}`))]).size
  for (let round = 1; round <= 50; round++) {
    links.forEach((s) => s.gossip())
    // Let the piped streams deliver this round's exchanges.
    await new Promise((resolve) => setImmediate(resolve))
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve))
    const counts = nodes.map((g) => Object.keys(g.state).length)
    const leaders = new Set(nodes.map((g) => g.get('leader').value))
    out(`round ${String(round).padStart(2)}: keys held ${counts.join(' ')} (of ${total}); leader seen as ${[...leaders].join(', ')}`)
    if (counts.every((c) => c === total) && leaders.size === 1) {
      out(`converged after ${round} rounds: every node holds ${total} keys and agrees leader = ${[...leaders][0]}`)
      return round
    }
  }
  out(`not converged after 50 rounds (${keys.size} keys known)`)
  return -1
}
