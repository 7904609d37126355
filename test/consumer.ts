/**
 * Empty projects that install this package the way a stranger would: from
 * the tarball `npm pack` makes, with `npm ci`, offline (the registry's
 * tarballs come from the npm cache that installing this repository filled;
 * the lock is this repository's own, cut to what the project needs).
 *
 * Two kinds:
 * - 'main': the package alone, as `npm install simple-scuttle` gives it,
 *   installed with its install scripts run and no compiler (CC and CXX are
 *   `false`): what the main entry costs, and proof it compiles nothing;
 * - 'full': the package with its optional peers (better-sqlite3, ws,
 *   prom-client) and fast-check, for the documentation's examples.
 */
import { execFileSync } from 'child_process'
import * as fs from 'fs'
import * as os from 'os'
import * as path from 'path'

export const ROOT = path.join(__dirname, '..', '..')

interface LockEntry {
  version: string
  dev?: boolean
  dependencies?: Record<string, string>
}

// Every package `roots` need, by their lock paths, resolved as Node does:
// a dependency nested under its dependent first, then up its ancestors.
function closure(lock: Record<string, LockEntry>, roots: string[]): string[] {
  const seen = new Set<string>()
  const visit = (from: string, name: string): void => {
    let at: string | undefined
    for (let base = from; ; base = base.slice(0, Math.max(0, base.lastIndexOf('/node_modules/')))) {
      const candidate = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`
      if (lock[candidate] !== undefined) {
        at = candidate
        break
      }
      if (base === '') break
    }
    if (at === undefined || seen.has(at)) return
    seen.add(at)
    for (const dep of Object.keys(lock[at].dependencies ?? {})) visit(at, dep)
  }
  for (const r of roots) visit('', r)
  return [...seen]
}

/** The kinds of consumer project (see above). */
export type Kind = 'main' | 'full'

/** The optional peer dependencies, installed in a 'full' consumer only. */
export const PEERS = ['better-sqlite3', 'ws', 'prom-client']

const made = new Map<Kind, string>()
let packed: string | null = null

/** The package's tarball, packed once per process. */
export function tarball(): string {
  if (packed !== null) return packed
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'simple-scuttle-pack-'))
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8' })
  packed = path.join(dir, out.trim().split('\n').pop() as string)
  return packed
}

/**
 * The consumer project's directory (made once per process and kind), with
 * the package installed from its tarball.
 */
export function consumer(kind: Kind = 'full'): string {
  const known = made.get(kind)
  if (known !== undefined) return known
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `simple-scuttle-consumer-${kind}-`))
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')).packages as Record<string, LockEntry>
  const spec = `file:${tarball()}`
  const extra = kind === 'full' ? ['fast-check', ...PEERS] : []
  const dependencies = { 'simple-scuttle': spec, ...Object.fromEntries(extra.map((e) => [e, lock[`node_modules/${e}`].version])) }
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies },
    'node_modules/simple-scuttle': {
      version: pkg.version,
      resolved: spec,
      license: pkg.license,
      dependencies: pkg.dependencies,
      peerDependencies: pkg.peerDependencies,
      peerDependenciesMeta: pkg.peerDependenciesMeta,
      engines: pkg.engines,
    },
  }
  for (const at of closure(lock, [...Object.keys(pkg.dependencies), ...extra])) {
    const { dev: _dev, ...entry } = lock[at]
    packages[at] = entry
  }
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, dependencies }, null, 2))
  fs.writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }, null, 2))
  const args = ['ci', '--offline', '--no-audit', '--no-fund', '--silent']
  if (kind === 'main') {
    // Install scripts run, and any compile they tried would fail.
    execFileSync('npm', args, { cwd: dir, stdio: 'pipe', env: { ...process.env, CC: 'false', CXX: 'false' } })
  } else {
    // Install scripts are skipped: better-sqlite3's would compile SQLite
    // from source (no prebuilt binary can be fetched offline), over a
    // minute; the addon this repository's own install built is copied in.
    execFileSync('npm', [...args, '--ignore-scripts'], { cwd: dir, stdio: 'pipe' })
    fs.cpSync(path.join(ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'), path.join(dir, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'))
  }
  made.set(kind, dir)
  return dir
}

/** Compile `files` (in `dir`) with tsc in strict mode; returns tsc's output, throws when it fails. */
export function tsc(dir: string, files: string[], skipLibCheck: boolean): string {
  const config = {
    compilerOptions: {
      strict: true,
      module: 'node16',
      target: 'ES2022',
      esModuleInterop: true,
      skipLibCheck,
      outDir: 'out',
      noEmit: skipLibCheck, // the first pass emits, the second only checks
    },
    files,
  }
  const project = path.join(dir, `tsconfig.${skipLibCheck ? 'skip' : 'full'}.json`)
  fs.writeFileSync(project, JSON.stringify(config, null, 2))
  const bin = require.resolve('typescript/bin/tsc', { paths: [ROOT] })
  try {
    return execFileSync(process.execPath, [bin, '-p', project], { cwd: dir, encoding: 'utf8' })
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string }
    throw new Error(`tsc --strict${skipLibCheck ? ' --skipLibCheck' : ''} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`)
  }
}
