/**
 * An empty project that installs this package the way a stranger would:
 * from the tarball `npm pack` makes, with `npm ci`, offline (the registry's
 * tarballs come from the npm cache that installing this repository filled;
 * the lock is this repository's own, cut to what the package depends on).
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

let made: string | null = null

/**
 * The consumer project's directory (made once per process), with the
 * package installed from its tarball, and `extra` packages of this
 * repository's lock (test tools a user would have, such as fast-check).
 */
export function consumer(extra: string[] = ['fast-check']): string {
  if (made !== null) return made
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'simple-scuttle-consumer-'))
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], {
    cwd: ROOT,
    encoding: 'utf8',
  })
  const tarball = out.trim().split('\n').pop() as string
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')).packages as Record<string, LockEntry>
  const spec = `file:${tarball}`
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: { 'simple-scuttle': spec, ...Object.fromEntries(extra.map((e) => [e, lock[`node_modules/${e}`].version])) } },
    'node_modules/simple-scuttle': { version: pkg.version, resolved: spec, license: pkg.license, dependencies: pkg.dependencies },
  }
  for (const at of closure(lock, [...Object.keys(pkg.dependencies), ...extra])) {
    const { dev: _dev, ...entry } = lock[at]
    packages[at] = entry
  }
  const manifest = { name: 'consumer', private: true, dependencies: (packages[''] as { dependencies: unknown }).dependencies }
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2))
  fs.writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }, null, 2))
  // Install scripts are skipped: better-sqlite3's would compile SQLite from
  // source (no prebuilt binary can be fetched offline), over a minute; the
  // addon this repository's own install built is copied in instead.
  execFileSync('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--silent'], { cwd: dir, stdio: 'pipe' })
  fs.cpSync(path.join(ROOT, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'), path.join(dir, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'))
  made = dir
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
