// After `tsc -p tsconfig.esm.json`, which compiles the browser build (the
// main entry and simple-scuttle/idb) as ES modules into dist/esm:
// - relative imports get their file names: ES module resolution (webpack's,
//   Node's) does not guess extensions;
// - readable-stream is imported by class (Transform, Duplex) from its
//   internals, not from its index, which would bring pipeline, compose, the
//   operators and stream/promises to every browser bundle (about 4 KiB
//   min+gzip; test/package/package.test.ts measures the bundle);
// - the folder is marked as ES modules.
// Each import stays on its line, so the source maps still hold.
const fs = require('fs')
const path = require('path')

const dir = path.join(__dirname, '..', 'dist', 'esm')
const STREAMS = { Transform: 'transform', Duplex: 'duplex' }
const walk = (d) => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]))

for (const file of walk(dir).filter((f) => f.endsWith('.js'))) {
  const text = fs.readFileSync(file, 'utf8')
  const out = text
    .replace(/^((?:import|export)\b[^'"]*?from\s+|import\s+)'(\.{1,2}\/[^']*)'/gm, (_, head, spec) => {
      if (spec.endsWith('.js')) return `${head}'${spec}'`
      const target = path.resolve(path.dirname(file), spec)
      if (fs.existsSync(`${target}.js`)) return `${head}'${spec}.js'`
      if (fs.existsSync(path.join(target, 'index.js'))) return `${head}'${spec}/index.js'`
      throw new Error(`${path.relative(dir, file)}: cannot resolve ${spec}`)
    })
    .replace(/^import\s*\{([^}]*)\}\s*from\s*'readable-stream';/gm, (_, names) =>
      names
        .split(',')
        .map((n) => n.trim())
        .filter((n) => n !== '')
        .map((n) => {
          if (!(n in STREAMS)) throw new Error(`${path.relative(dir, file)}: readable-stream's ${n} has no entry in scripts/esm.js`)
          return `import ${n} from 'readable-stream/lib/internal/streams/${STREAMS[n]}.js';`
        })
        .join(' '),
    )
  if (/from\s*'readable-stream'/.test(out)) throw new Error(`${path.relative(dir, file)}: an import of readable-stream that scripts/esm.js does not know`)
  if (out !== text) fs.writeFileSync(file, out)
}
fs.writeFileSync(path.join(dir, 'package.json'), '{ "type": "module", "sideEffects": false }\n')
