/**
 * `node dist/bench/profile.js FILE_OR_DIR... [--top N]`: summarise V8 CPU
 * profiles (`node --cpu-prof`): self time by function (name, file:line) and
 * by file, summed over every profile given, as shares of the sampled time
 * with idle left out (and the idle and GC shares said apart). What
 * bench/FINDINGS.md quotes.
 */
import * as fs from 'fs'
import * as path from 'path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}

interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

function files(args: string[]): string[] {
  const out: string[] = []
  for (const a of args) {
    if (fs.statSync(a).isDirectory()) {
      for (const f of fs.readdirSync(a)) if (f.endsWith('.cpuprofile')) out.push(path.join(a, f))
    } else out.push(a)
  }
  return out
}

function short(url: string): string {
  const i = url.lastIndexOf('/dist/')
  if (i >= 0) return url.slice(i + 6)
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) return url.slice(nm + 14)
  return url.replace(/^node:/, '')
}

export function summarise(paths: string[], top = 25): string {
  const byFn = new Map<string, number>()
  const byFile = new Map<string, number>()
  let total = 0
  let idle = 0
  let gc = 0
  for (const file of paths) {
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile
    const nodes = new Map<number, ProfileNode>()
    for (const n of p.nodes) nodes.set(n.id, n)
    // Self time per node from samples and their time deltas (µs).
    const self = new Map<number, number>()
    for (let i = 0; i < p.samples.length; i++) {
      const dt = p.timeDeltas[i + 1] ?? 0
      self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt)
    }
    for (const [id, us] of self) {
      const n = nodes.get(id) as ProfileNode
      const name = n.callFrame.functionName || '(anonymous)'
      total += us
      if (name === '(idle)') {
        idle += us
        continue
      }
      if (name === '(garbage collector)') gc += us
      const where = n.callFrame.url === '' ? '' : ` ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`
      const key = `${name}${where}`
      byFn.set(key, (byFn.get(key) ?? 0) + us)
      const f = n.callFrame.url === '' ? `(${name})` : short(n.callFrame.url)
      byFile.set(f, (byFile.get(f) ?? 0) + us)
    }
  }
  const busy = total - idle
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)}%`
  const lines = [
    `${paths.length} profile(s): ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (idle ${((100 * idle) / total).toFixed(0)}%), GC ${pct(gc)} of busy`,
    '',
    'self time by function (share of busy):',
  ]
  for (const [k, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`)
  lines.push('', 'self time by file:')
  for (const [k, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${k}`)
  return lines.join('\n')
}

if (require.main === module) {
  const args = process.argv.slice(2)
  const t = args.indexOf('--top')
  const top = t >= 0 ? Number(args[t + 1]) : 25
  if (t >= 0) args.splice(t, 2)
  process.stdout.write(`${summarise(files(args), top)}\n`)
}
