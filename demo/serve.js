#!/usr/bin/env node
'use strict'
/**
 * `npm run demo`: bundle the demo page with esbuild (platform browser, so a
 * Node-only import on the Gossip path fails the build), write the static
 * page to dist/demo-page/, and serve it on 127.0.0.1, printing one line: the
 * URL.
 *
 *   node demo/serve.js [--port N] [--host 127.0.0.1] [--out DIR] [--build-only] [--cluster N]
 *
 * With `--cluster N` (what `npm run demo` passes: 3) it also starts N
 * `simple-scuttle node` processes (from dist/, so build first) on
 * 127.0.0.1, each accepting WebSockets, and names them at /cluster.json:
 * the page then joins them as a member.
 *
 * Also a module: the browser test calls `start({port: 0, cluster: 3})`,
 * `nodes[i].command(line)` and `close()`.
 */
const { spawn } = require('node:child_process')
const readline = require('node:readline')
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
  // Nodes start once the page has an address: they let its origin in.
  let nodes = []
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
      'content-security-policy': `default-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'${nodes.map((n) => ` ${n.ws}`).join('')}`,
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
  try {
    nodes = await startCluster(options.cluster ?? 0, options.interval ?? 200, new URL(url).origin)
  } catch (err) {
    server.close()
    throw err
  }
  // The page asks for it in any case (no nodes: no cluster mode).
  files.set('cluster.json', Buffer.from(JSON.stringify({ nodes: nodes.map((n) => ({ id: n.id, ws: n.ws })) })))
  if (options.out) writeOut(files, options.out)
  const close = () =>
    Promise.all([
      new Promise((resolve) => {
        server.closeAllConnections?.()
        server.close(() => resolve())
      }),
      ...nodes.map((n) => n.stop()),
    ]).then(() => undefined)
  return { url, server, close, nodes }
}

/**
 * Start `n` node processes, each dialing the ones before it, each
 * accepting WebSockets. Resolves to [{id, ws, tcp, command(line), stop()}].
 */
async function startCluster(n, interval, origin) {
  const bin = path.join(ROOT, 'dist', 'bin', 'simple-scuttle.js')
  if (n > 0 && !fs.existsSync(bin)) throw new Error(`${path.relative(process.cwd(), bin)} is missing: run npm run build first`)
  const nodes = []
  try {
    for (let i = 0; i < n; i++) nodes.push(await startNode(bin, `node-${i + 1}`, nodes.map((x) => x.tcp), interval, origin))
  } catch (err) {
    await Promise.all(nodes.map((x) => x.stop()))
    throw err
  }
  return nodes
}

function startNode(bin, id, peers, interval, origin) {
  const args = [bin, 'node', '--id', id, '--listen', '127.0.0.1:0', '--ws', '127.0.0.1:0', '--interval', String(interval)]
  // The page is served from another port: a browser's WebSocket from it is let in by name.
  if (origin !== undefined) args.push('--ws-origin', origin)
  for (const p of peers) args.push('--connect', p)
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const answers = []
  readline.createInterface({ input: child.stdout }).on('line', (line) => answers.shift()?.(JSON.parse(line)))
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return new Promise((resolve, reject) => {
    let tcp = null
    let ws = null
    let started = false
    const log = readline.createInterface({ input: child.stderr })
    log.on('line', (line) => {
      if (process.env.DEMO_LOG) process.stderr.write(`${line}
`)
      const t = / listening on (\S+)(?: \(cluster .*\))?$/.exec(line)
      if (t) tcp = t[1]
      const w = / accepting WebSockets on (\S+)$/.exec(line)
      if (w) ws = w[1]
      if (!started && tcp !== null && ws !== null) {
        started = true
        resolve({
          id,
          tcp,
          ws,
          /** One command line (set KEY JSON, get KEY, state, peers); resolves to its JSON answer. */
          command(text) {
            return new Promise((done) => {
              answers.push(done)
              child.stdin.write(`${text}\n`)
            })
          },
          stop() {
            child.kill('SIGTERM')
            return exited
          },
        })
      }
    })
    child.once('exit', (code) => reject(new Error(`node ${id} exited with ${code} before listening`)))
  })
}

module.exports = { build, start, startCluster, writeOut }

if (require.main === module) {
  const args = process.argv.slice(2)
  const opt = (name) => {
    const i = args.indexOf(name)
    return i >= 0 ? args[i + 1] : undefined
  }
  const out = opt('--out') ?? path.join(ROOT, 'dist', 'demo-page')
  const port = Number(opt('--port') ?? process.env.PORT ?? 0)
  const host = opt('--host') ?? '127.0.0.1'
  const cluster = Number(opt('--cluster') ?? 0)
  const run = args.includes('--build-only')
    ? build().then(({ files }) => {
        writeOut(files, out)
        console.log(path.relative(process.cwd(), out) || '.')
      })
    : start({ port, host, out, cluster }).then(({ url, nodes }) => {
        console.log(url)
        for (const n of nodes) console.log(`${n.id}: tcp ${n.tcp}, ${n.ws}`)
        const stop = () => Promise.all(nodes.map((n) => n.stop())).then(() => process.exit(0))
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
  run.catch((err) => {
    console.error(`demo: ${err && err.errors ? err.errors.map((e) => e.text).join('\n') : err}`)
    process.exit(1)
  })
}
