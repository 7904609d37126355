/**
 * `node --expose-gc dist/bench/layouts.js [N]`: heap + arrayBuffers bytes
 * per key of candidate per-key layouts for N (1,000,000) keys 'k0'... of
 * one source, built by hand (no library code), so that a layout can be
 * priced before anyone writes it. Issue 23's goal is 100 B/key; what each
 * layout holds is in its label. Results on Node 20 (no pointer
 * compression) are in bench/FINDINGS.md, "Fifth pass".
 */
const N = Number(process.argv[2] ?? 1_000_000)
const exposed = (globalThis as { gc?: () => void }).gc
if (exposed === undefined) throw new Error('run with --expose-gc')
const collect: () => void = exposed
const bytes = (): number => {
  const u = process.memoryUsage()
  return u.heapUsed + u.arrayBuffers
}
const base = Date.now() * 1000

function measure(label: string, build: () => unknown): void {
  collect()
  collect()
  const h0 = bytes()
  const keep = build()
  collect()
  collect()
  process.stdout.write(`${label.padEnd(72)} ${((bytes() - h0) / N).toFixed(1)}\n`)
  ;(globalThis as { keep?: unknown }).keep = keep
  ;(globalThis as { keep?: unknown }).keep = null
}

const update = (key: string, i: number): object => Object.freeze({ key, value: i, source_id: 'a', version: base + i })

function grown<T extends Float64Array | Int32Array>(a: T, make: (n: number) => T): T {
  const b = make(a.length * 2)
  b.set(a)
  return b
}

measure('key string + Map entry (Map<string, smi>)', () => {
  const m = new Map<string, number>()
  for (let i = 0; i < N; i++) m.set('k' + i, i)
  return m
})
measure('+ version number (Map<string, double>)', () => {
  const m = new Map<string, number>()
  for (let i = 0; i < N; i++) m.set('k' + i, base + i)
  return m
})
measure('Update objects in an array, no index (any layout keeping them)', () => {
  const log: object[] = []
  for (let i = 0; i < N; i++) log[log.length] = update('k' + i, i)
  return log
})
measure('today: Map key -> Update, per-source Update[] log', () => {
  const m = new Map<string, object>()
  const log: object[] = []
  for (let i = 0; i < N; i++) {
    const key = 'k' + i
    const u = update(key, i)
    m.set(key, u)
    log[log.length] = u
  }
  return [m, log]
})
measure('columns: Map key -> row, values[], keys[], Float64 versions, Int32 log', () => {
  const m = new Map<string, number>()
  const values: unknown[] = []
  const keys: string[] = []
  let versions = new Float64Array(1024)
  let log = new Int32Array(1024)
  for (let i = 0; i < N; i++) {
    const key = 'k' + i
    if (i === versions.length) {
      versions = grown(versions, (n) => new Float64Array(n))
      log = grown(log, (n) => new Int32Array(n))
    }
    m.set(key, i)
    keys[i] = key
    values[i] = i
    versions[i] = base + i
    log[i] = i
  }
  return [m, values, keys, versions, log]
})
