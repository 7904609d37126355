#!/usr/bin/env node
'use strict'
/**
 * `npm run demo`: bundle the demo page with esbuild (platform browser, so a
 * Node-only import on the Gossip path fails the build), write the static
 * page to dist/demo-page/, and serve it on 127.0.0.1, printing one line: the
 * URL.
 *
 *   node demo/serve.js [--port N] [--host 127.0.0.1] [--out DIR] [--build-only]
 *
 * Also a module: the browser test calls `start({port: 0})` and `close()`.
 */
const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')

const HERE = __dirname
const ROOT = path.join(HERE, '..')
const STATIC = ['index.html', 'style.css', 'favicon.svg']
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
}

/**
 * Bundle the page. Resolves to `{files, inputs}`: file name -> contents, and
 * the source files esbuild bundled (relative to the repository root).
 */
async function build() {
  const esbuild = require('esbuild')
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [path.join(HERE, 'main.ts')],
    outfile: path.join(ROOT, 'dist', 'demo-page', 'main.js'),
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['es2020'],
    sourcemap: 'linked',
    minify: false,
    write: false,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
  })
  const files = new Map()
  for (const f of result.outputFiles) files.set(path.basename(f.path), Buffer.from(f.contents))
  for (const name of STATIC) files.set(name, fs.readFileSync(path.join(HERE, name)))
  return { files, inputs: Object.keys(result.metafile.inputs) }
}

/** Write a build's files to `dir`. */
function writeOut(files, dir) {
  fs.mkdirSync(dir, { recursive: true })
  for (const [name, data] of files) fs.writeFileSync(path.join(dir, name), data)
}

/**
 * Build and serve. Resolves to `{url, server, close()}`.
 * @param {{port?: number, host?: string, out?: string}} [options]
 */
async function start(options = {}) {
  const host = options.host ?? '127.0.0.1'
  const { files } = await build()
  if (options.out) writeOut(files, options.out)
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const name = url.pathname === '/' ? 'index.html' : url.pathname.slice(1)
    const body = files.get(name)
    if ((req.method !== 'GET' && req.method !== 'HEAD') || body === undefined) {
      res.writeHead(body === undefined ? 404 : 405, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(body === undefined ? 'not found\n' : 'method not allowed\n')
      return
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(name)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'",
    })
    res.end(req.method === 'HEAD' ? undefined : body)
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const { port } = server.address()
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/`
  const close = () =>
    new Promise((resolve) => {
      server.closeAllConnections?.()
      server.close(() => resolve())
    })
  return { url, server, close }
}

module.exports = { build, start, writeOut }

if (require.main === module) {
  const args = process.argv.slice(2)
  const opt = (name) => {
    const i = args.indexOf(name)
    return i >= 0 ? args[i + 1] : undefined
  }
  const out = opt('--out') ?? path.join(ROOT, 'dist', 'demo-page')
  const port = Number(opt('--port') ?? process.env.PORT ?? 0)
  const host = opt('--host') ?? '127.0.0.1'
  const run = args.includes('--build-only')
    ? build().then(({ files }) => {
        writeOut(files, out)
        console.log(path.relative(process.cwd(), out) || '.')
      })
    : start({ port, host, out }).then(({ url }) => console.log(url))
  run.catch((err) => {
    console.error(`demo: ${err && err.errors ? err.errors.map((e) => e.text).join('\n') : err}`)
    process.exit(1)
  })
}
