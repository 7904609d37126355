/**
 * `node dist/bench/instructions.js KIND N DIR...`: instructions executed by
 * one `set` of N keys on a fresh node (KIND `set`), one in-process sync
 * of N keys into an empty node (KIND `sync`), or the receiving side of a
 * wire sync in a fresh process (KIND `wire`: the bytes a node of N keys
 * sends an empty one in the binary format, recorded beforehand in another
 * process, fed to `parse()` piped into the empty node, cold as the wire
 * bench's client is), for the build in each DIR (a checkout with dist/),
 * counted by valgrind's callgrind over that region
 * only. On a machine shared with other work, wall and CPU time of a 100 ms
 * region vary by 10-30% from run to run; these counts vary by about 2%
 * (GC and JIT timing), so an A/B of a small change can be read from one
 * run. They are not time: a cache miss costs one instruction here (the
 * first Map lookup of a fresh key, a third of the time of a sync, is a few
 * percent of its instructions). Needs valgrind; slow (about 30 s per DIR at
 * N = 50,000).
 *
 * The region: after one untimed run of the same work in the same process
 * (the JIT warmed up) and a GC, the work runs inside a `JSON.parse`
 * reviver, and callgrind collects only while the reviver's caller
 * (V8's JsonParseInternalizer) is on the stack. A sync is synchronous once
 * both streams flow, so it lies wholly inside.
 *
 * Of the region, `compiling` is what TurboFan spent (functions a new node
 * deoptimised, or whose maps died with the warm-up's node, are compiled
 * again in it: a third of a sync's count at 50,000 keys). It moves by
 * several million with each inlining decision, so a change to the path
 * itself reads best in `outside_compiling`. Needs callgrind_annotate for
 * the split (null without it).
 */
import { execFileSync, spawnSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'

type Kind = 'set' | 'sync' | 'wire'

interface Lib {
  Gossip: new (id: string, config: object) => Node
  base: { resolution: { lww_vs_current_vers: unknown } }
  serialize(): Duplex
  parse(): Duplex
}
interface Duplex {
  pipe<T>(to: T): T
  on(event: 'data', f: (chunk: Uint8Array) => void): void
  resume(): void
  write(chunk: Uint8Array): boolean
}
interface Node {
  set(key: string, value: unknown): boolean
  createStream(): Duplex
  pipe<T>(to: T): T
  unpipe(to: unknown): void
  gossip(): void
  history: { _resolvedCount?: number }
  state: unknown
}

// Keys a node holds, in either release (the previous one's state is a Map).
function held(g: Node): number {
  return g.history._resolvedCount ?? (g.state as Map<string, unknown>).size
}

function load(dir: string, n: number): { lib: Lib; config: object } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const lib = require(path.resolve(dir, 'dist', 'lib')) as Lib
  return { lib, config: { resolve: lib.base.resolution.lww_vs_current_vers, mtu: n, max_history: Infinity } }
}

// What a node 'a' of n keys sends an empty node 'b' that gossips to it, in
// the binary format, written to `file` once the answer is out.
function record(dir: string, n: number, file: string): void {
  const { lib, config } = load(dir, n)
  const a = new lib.Gossip('a', config)
  for (let i = 0; i < n; i++) a.set('k' + i, i)
  const chunks: Uint8Array[] = []
  const s = a.createStream()
  s.pipe(lib.serialize()).on('data', (c) => chunks.push(Buffer.from(c)))
  const b = new lib.Gossip('b', config)
  b.pipe(lib.serialize()).pipe(lib.parse()).pipe(s)
  b.gossip()
  setTimeout(() => fs.writeFileSync(file, Buffer.concat(chunks)), 200)
}

// Bytes are fed in pieces of this size, as a socket brings them.
const PIECE = 64 << 10

function child(dir: string, kind: Kind, n: number, file?: string): void {
  const { lib, config } = load(dir, n)
  const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined)
  const fill = (id: string): Node => {
    const g = new lib.Gossip(id, config)
    for (let i = 0; i < n; i++) g.set('k' + i, i)
    return g
  }
  // A reviver is called once per value, here for the element and then for
  // the array; only the first runs inside the internalizer's frame (the
  // root's call is inlined into JSON.parse), so `f` runs there alone.
  const inRegion = (f: () => void): void => {
    JSON.parse('[0]', (k: string, v: unknown) => {
      if (k === '0') f()
      return v
    })
  }
  if (kind === 'wire') {
    const bytes = fs.readFileSync(file as string)
    const b = new lib.Gossip('b', config)
    const p = lib.parse()
    p.pipe(b)
    b.pipe(lib.serialize()).resume()
    setImmediate(() => {
      inRegion(() => {
        b.gossip()
        for (let i = 0; i < bytes.length; i += PIECE) p.write(bytes.subarray(i, i + PIECE))
      })
      if (held(b) !== n) throw new Error(`the wire sync was not synchronous: ${held(b)} of ${n}`)
    })
    return
  }
  if (kind === 'set') {
    fill('w')
    gc()
    const keys = Array.from({ length: n }, (_, i) => 'k' + i)
    const g = new lib.Gossip('m', config)
    inRegion(() => {
      for (let i = 0; i < n; i++) g.set(keys[i], i)
    })
    return
  }
  // Streams flow a tick after pipe(): the sync starts once they do.
  const sync = (a: Node, region: boolean, then: () => void): void => {
    const b = new lib.Gossip('b', config)
    a.pipe(b).pipe(a)
    setImmediate(() => {
      if (region) inRegion(() => b.gossip())
      else b.gossip()
      if (held(b) !== n) throw new Error(`the sync was not synchronous: ${held(b)} of ${n}`)
      a.unpipe(b)
      b.unpipe(a)
      then()
    })
  }
  sync(fill('w'), false, () => {
    const a = fill('a')
    gc()
    sync(a, true, () => undefined)
  })
}

// Instructions TurboFan spent compiling in the region, by function name
// (callgrind_annotate; null without it). The region recompiles what a new
// node deoptimises, and each inlining decision moves this by several
// million: a change to the path itself is read best outside it.
function compiling(out: string): number | null {
  const r = spawnSync('callgrind_annotate', ['--threshold=100', out], { encoding: 'utf8', maxBuffer: 256 << 20 })
  if (r.status !== 0) return null
  let sum = 0
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*([\d,]+) \([\s\d.]+%\)\s+(.*)$/.exec(line)
    if (m !== null && /compiler::|Zone|_Rb_tree/.test(m[2])) sum += Number(m[1].replace(/,/g, ''))
  }
  return sum
}

function count(dir: string, kind: Kind, n: number): { total: number; compiling: number | null } {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-instr-')), 'callgrind.out')
  const bytes = path.join(path.dirname(out), 'wire.bin')
  try {
    if (kind === 'wire') execFileSync(process.execPath, [__filename, 'record', dir, String(n), bytes])
    const r = spawnSync(
      'valgrind',
      [
        '--tool=callgrind',
        '--collect-atstart=no',
        '--toggle-collect=*JsonParseInternalizer*',
        `--callgrind-out-file=${out}`,
        process.execPath,
        '--expose-gc',
        // Deterministic as V8 allows: no concurrent compiling, marking or sweeping.
        '--single-threaded',
        '--predictable',
        __filename,
        'child',
        dir,
        kind,
        String(n),
        bytes,
      ],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    )
    const m = /Collected\s*:\s*(\d+)/.exec(r.stderr)
    if (r.status !== 0 || m === null) throw new Error(`callgrind of ${dir} failed: ${r.stderr.slice(-2000)}`)
    return { total: Number(m[1]), compiling: compiling(out) }
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true })
  }
}

function main(): void {
  const [kind, n, ...dirs] = process.argv.slice(2)
  if ((kind !== 'set' && kind !== 'sync' && kind !== 'wire') || !(Number(n) > 0) || dirs.length === 0) {
    throw new Error('usage: instructions set|sync|wire N DIR...')
  }
  execFileSync('valgrind', ['--version'])
  const counts = dirs.map((d) => count(d, kind, Number(n)))
  const rest = (c: { total: number; compiling: number | null }): number | null => (c.compiling === null ? null : c.total - c.compiling)
  const first = counts[0]
  const out = {
    kind,
    n: Number(n),
    node: process.version,
    dirs: dirs.map((d, i) => {
      const c = counts[i]
      const r = rest(c)
      const r0 = rest(first)
      return {
        dir: d,
        instructions: c.total,
        over_first: +(c.total / first.total).toFixed(3),
        compiling: c.compiling,
        outside_compiling: r,
        outside_over_first: r === null || r0 === null ? null : +(r / r0).toFixed(3),
      }
    }),
  }
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`)
}

if (process.argv[2] === 'child') child(process.argv[3], process.argv[4] as Kind, Number(process.argv[5]), process.argv[6])
else if (process.argv[2] === 'record') record(process.argv[3], Number(process.argv[4]), process.argv[5])
else if (require.main === module) main()
