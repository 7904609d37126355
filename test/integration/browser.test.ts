/**
 * The library in a browser: the demo page bundles lib/ with esbuild for
 * platform browser (a Node-only import on the Gossip path fails the build),
 * and headless Chromium runs a network of real Gossip nodes in the page,
 * clicked like a user would, until every node reports the clicked values.
 *
 * Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y
 * chromium`); without it the browser part is skipped with a printed reason.
 * playwright-core only drives it: no browser is downloaded.
 */
import { strict as assert } from 'node:assert'
import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { NO_CHROMIUM, skip } from '../skip'

const CHROMIUM = '/usr/bin/chromium'

// The repository root, from dist/test/ (compiled) or test/ (ts-node).
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json')
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'simple-scuttle') return dir
    if (path.dirname(dir) === dir) throw new Error(`no simple-scuttle package.json above ${__dirname}`)
  }
}

const ROOT = repoRoot()
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts')

interface ClusterNode {
  id: string
  ws: string
  command(line: string): Promise<{ value?: unknown; ok?: boolean }>
}
interface DemoServer {
  build(): Promise<{ files: Map<string, Buffer>; inputs: string[] }>
  start(options?: { port?: number; host?: string; cluster?: number }): Promise<{ url: string; close(): Promise<void>; nodes: ClusterNode[] }>
}
// Plain CommonJS so that `npm run demo` needs no compile step.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const demo = require(path.join(ROOT, 'demo', 'serve.js')) as DemoServer

/** What the page exposes as `window.demo`. */
interface PageApi {
  clusterChecked?: boolean
  cluster: { id: string; peer(): string | null; set(k: string, v: unknown): void; get(k: string): unknown } | null
  ready: boolean
  tick: number
  paused: boolean
  values(key: string): unknown[]
  truth(): Record<string, unknown>
  converged(): boolean
  network: { history: Array<{ lostAnswers: number }>; nodes: unknown[]; links: unknown[] }
}
declare const window: Window & { demo: PageApi }

const NODE_BUILTINS = new Set(
  'assert buffer child_process cluster crypto dgram dns events fs http http2 https net os path process querystring readline stream string_decoder timers tls tty url util vm worker_threads zlib'.split(
    ' ',
  ),
)

describe('demo bundle (esbuild, platform browser)', function () {
  this.timeout(60_000)

  it('bundles the Gossip path of lib/ for the browser, with no Node built-in module', async function () {
    const { files, inputs } = await demo.build()
    for (const f of ['lib/gossip.ts', 'lib/base.ts', 'lib/history.ts', 'lib/reconcile.ts', 'lib/clock.ts']) {
      assert.ok(inputs.includes(f), `${f} is bundled (inputs: ${inputs.filter((i) => i.startsWith('lib/')).join(', ')})`)
    }
    const builtins = inputs.filter((i) => i.startsWith('node:') || NODE_BUILTINS.has(i))
    assert.deepEqual(builtins, [], 'no Node built-in in the bundle')
    for (const f of ['index.html', 'style.css', 'main.js', 'main.js.map']) assert.ok(files.has(f), `${f} is built`)
    // `events` for History comes from the npm package, not from Node.
    assert.ok(inputs.some((i) => i.endsWith('node_modules/events/events.js')), 'events resolves to the npm package')
  })

  it('bundles the main entry and simple-scuttle/idb (lib/index.ts, lib/browser/index.ts) with no Node built-in module', async function () {
    const esbuild = await import('esbuild')
    const result = await esbuild.build({
      absWorkingDir: ROOT,
      stdin: { contents: "export * from './lib'\nexport * from './lib/browser'\n", resolveDir: ROOT, loader: 'ts' },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    })
    const inputs = Object.keys(result.metafile.inputs)
    const builtins = inputs.filter((i) => i.startsWith('node:') || NODE_BUILTINS.has(i))
    assert.deepEqual(builtins, [], 'no Node built-in in the browser entries')
    assert.ok(inputs.includes('lib/wire/ndjson.ts'), 'the wire helpers are in the main entry')
    assert.ok(inputs.includes('lib/browser/idb-store.ts'), 'IdbStore is in simple-scuttle/idb')
  })

  it('type-checks the page source', function () {
    const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] })
    try {
      execFileSync(process.execPath, [tsc, '-p', path.join(ROOT, 'demo', 'tsconfig.json')], { cwd: ROOT, stdio: 'pipe' })
    } catch (err) {
      const e = err as { stdout?: Buffer; stderr?: Buffer }
      assert.fail(`tsc -p demo failed:\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`)
    }
  })
})

describe('demo page in headless Chromium', function () {
  this.timeout(60_000)
  let server: { url: string; close(): Promise<void> } | undefined
  let context: BrowserContext | undefined
  let profile: string | undefined
  let page: Page
  const errors: string[] = []

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) skip(this, NO_CHROMIUM(CHROMIUM))
    const { chromium } = await import('playwright-core')
    server = await demo.start({ port: 0, host: '127.0.0.1' })
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-chromium-'))
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 800 },
      timeout: 30_000,
    })
    page = context.pages()[0] ?? (await context.newPage())
    page.setDefaultTimeout(15_000)
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`)
    })
    fs.mkdirSync(ARTIFACTS, { recursive: true })
  })

  after(async function () {
    await context?.close()
    await server?.close()
    if (profile !== undefined) fs.rmSync(profile, { recursive: true, force: true })
  })

  afterEach(function () {
    const seen = errors.splice(0)
    assert.deepEqual(seen, [], 'the page logged no error')
  })

  async function open(query: string): Promise<void> {
    await page.goto(`${server!.url}?${query}`)
    await page.waitForFunction(() => window.demo?.ready === true)
  }

  /**
   * Resume the timer and wait until every node holds every write, or until
   * `bound` ticks passed; returns the ticks it took.
   */
  async function convergeWithin(bound: number): Promise<number> {
    const from = await page.evaluate(() => window.demo.tick)
    if (await page.evaluate(() => window.demo.paused)) await page.click('#pause')
    await page.waitForFunction(
      ({ from, bound }) => window.demo.converged() || window.demo.tick > from + bound,
      { from, bound },
      { timeout: 30_000 },
    )
    const { tick, converged } = await page.evaluate(() => ({ tick: window.demo.tick, converged: window.demo.converged() }))
    assert.ok(converged, `every node up to date within ${bound} ticks (still stale after ${tick - from})`)
    return tick - from
  }

  /** Every node reports `expected[key]` as its value of key, in the page and in the drawing. */
  async function assertEveryNodeHolds(expected: Record<string, number>): Promise<void> {
    const n = await page.evaluate(() => window.demo.network.nodes.length)
    assert.deepEqual(await page.evaluate(() => window.demo.truth()), expected, 'the writes the page made')
    for (const [key, value] of Object.entries(expected)) {
      const values = await page.evaluate((k) => window.demo.values(k), key)
      assert.deepEqual(values, Array(n).fill(value), `every node's get(${key}).value`)
    }
    const stale = await page.$$eval('[data-node]', (els) => els.map((el) => (el as SVGElement).dataset.stale))
    assert.deepEqual(stale, Array(n).fill('0'), 'every node drawn as up to date')
    const labels = await page.$$eval('[data-node]', (els) => els.map((el) => el.getAttribute('aria-label') ?? ''))
    assert.ok(labels.every((l) => l.includes('up to date')), 'every node labelled up to date')
  }

  it('a ring of 12: mouse and keyboard writes reach every node within 4n ticks', async function () {
    const n = 12
    await open(`topology=ring&n=${n}&mtu=4&order=depth&interval=40&drop=0&seed=1&paused=1`)
    assert.equal(await page.locator('[data-node]').count(), n)
    await page.click('[data-node="n0"]')
    await page.click('[data-node="n0"]')
    await page.click('[data-node="n5"]')
    await page.click('[data-node="n9"]')
    // Keyboard: focus node 0, arrow to node 3, write with Enter; node 4 with Space.
    await page.locator('[data-node="n0"]').focus()
    for (let i = 0; i < 3; i++) await page.keyboard.press('ArrowRight')
    await page.keyboard.press('Enter')
    await page.keyboard.press('ArrowRight')
    await page.keyboard.press('Space')
    assert.equal(await page.evaluate(() => (document.activeElement as SVGElement | null)?.dataset.node), 'n4')
    // Before any gossip, each of the 5 keys is stale on the 11 other nodes.
    assert.equal(await page.evaluate(() => window.demo.tick), 0)
    assert.equal(await page.evaluate(() => window.demo.converged()), false)
    assert.match((await page.textContent('#status')) ?? '', /55 stale mappings on 12 nodes/)
    // Two single steps, to catch the spread in the middle.
    for (let i = 0; i < 2; i++) await page.click('#step')
    assert.equal(await page.evaluate(() => window.demo.tick), 2)
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-spreading.png'), fullPage: true, animations: 'disabled' })
    const ticks = await convergeWithin(4 * n)
    await assertEveryNodeHolds({ n0: 2, n3: 1, n4: 1, n5: 1, n9: 1 })
    await page.click('#pause')
    await page.waitForFunction(() => document.getElementById('status')?.textContent?.includes('all nodes up to date'))
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo.png'), fullPage: true, animations: 'disabled' })
    console.log(`      ring of ${n}: converged ${ticks + 2} ticks after the writes`)
  })

  it('a random graph with lossy links, mtu 2 and breadth order, set with the controls', async function () {
    const n = 32
    await open('interval=20&seed=2&paused=1')
    await page.selectOption('#topology', 'random')
    await page.fill('#count', String(n))
    await page.fill('#mtu', '2')
    await page.press('#mtu', 'Tab')
    await page.check('input[name="order"][value="breadth"]')
    // Loss with the keyboard: five steps of 5%.
    await page.locator('#drop').focus()
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowRight')
    assert.equal(await page.textContent('#drop-out'), '25%')
    const url = new URL(page.url())
    assert.deepEqual(
      ['topology', 'n', 'mtu', 'order', 'drop'].map((k) => url.searchParams.get(k)),
      ['random', String(n), '2', 'breadth', '0.25'],
      'the controls are in the URL',
    )
    assert.equal(await page.locator('[data-node]').count(), n)
    for (const id of ['n0', 'n0', 'n7', 'n20', 'n31', 'n31', 'n31']) await page.click(`[data-node="${id}"]`)
    const ticks = await convergeWithin(4 * n)
    await assertEveryNodeHolds({ n0: 2, n7: 1, n20: 1, n31: 3 })
    const lost = await page.evaluate(() => window.demo.network.history.reduce((s, h) => s + h.lostAnswers, 0))
    assert.ok(lost > 0, 'some answers were lost on the way')
    console.log(`      random graph of ${n}, 25% loss, mtu 2: converged in ${ticks} ticks, ${lost} answers lost`)
  })

  it('a full mesh of 64 at phone width: no sideways scrolling, labelled controls, converges', async function () {
    const n = 64
    await page.setViewportSize({ width: 390, height: 844 })
    await open(`topology=mesh&n=${n}&mtu=8&interval=20&seed=3&paused=1`)
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 0, `page fits 390px (overflows by ${overflow}px)`)
    const unlabelled = await page.$$eval('input, select, button', (els) =>
      els
        .filter((el) => {
          const named = (el as HTMLInputElement).labels?.length || el.getAttribute('aria-label') || el.textContent?.trim()
          return !named
        })
        .map((el) => el.id || el.outerHTML),
    )
    assert.deepEqual(unlabelled, [], 'every control has a label')
    assert.equal(await page.locator('[data-node]').count(), n)
    assert.equal(await page.evaluate(() => window.demo.network.links.length), (n * (n - 1)) / 2)
    await page.click('[data-node="n10"]')
    await page.click('[data-node="n40"]')
    await page.click('#random-write')
    const written = await page.evaluate(() => window.demo.truth())
    const ticks = await convergeWithin(n)
    await assertEveryNodeHolds(written as Record<string, number>)
    await page.click('#pause')
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-phone.png'), fullPage: true, animations: 'disabled' })
    console.log(`      full mesh of ${n} at 390px: converged in ${ticks} ticks`)
  })
})

describe('the demo page as a member of a cluster of node processes', function () {
  this.timeout(60_000)
  let server: { url: string; close(): Promise<void>; nodes: ClusterNode[] } | undefined
  let context: BrowserContext | undefined
  let profile: string | undefined
  const errors: string[] = []

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) skip(this, NO_CHROMIUM(CHROMIUM))
    server = await demo.start({ port: 0, host: '127.0.0.1', cluster: 3 })
    const { chromium } = await import('playwright-core')
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'scuttle-chromium-'))
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    })
  })

  after(async function () {
    await context?.close()
    await server?.close()
    if (profile !== undefined) fs.rmSync(profile, { recursive: true, force: true })
  })

  /** Asks every node `get key` until each answers `value`. */
  async function everyNodeHolds(key: string, value: unknown): Promise<void> {
    const end = Date.now() + 20_000
    for (;;) {
      const answers = await Promise.all(server!.nodes.map((n) => n.command(`get ${key}`)))
      if (answers.every((a) => JSON.stringify(a.value) === JSON.stringify(value))) return
      if (Date.now() > end) assert.fail(`nodes answered ${JSON.stringify(answers)} for ${key}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  it('a write in the page is read back with get from every node process; a set on a node appears on the page', async function () {
    const page = context!.pages()[0] ?? (await context!.newPage())
    page.setDefaultTimeout(20_000)
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`))
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`)
    })
    await page.goto(`${server!.url}?paused=1&n=4`)
    await page.waitForFunction(() => window.demo?.cluster?.peer() != null)
    assert.ok(await page.isVisible('#cluster-panel'), 'the cluster panel shows')
    // The page -> the cluster: typed into the form, like a person would.
    await page.fill('#cluster-key', 'from-page')
    await page.fill('#cluster-value', '{"text":"héllo","n":1}')
    await page.click('#cluster-write')
    await everyNodeHolds('from-page', { text: 'héllo', n: 1 })
    // The cluster -> the page: a set on the last node (the page may be joined to any).
    const last = server!.nodes[server!.nodes.length - 1]
    const r = await last.command('set from-node "written by a node process"')
    assert.equal(r.ok, true)
    await page.waitForFunction(() => window.demo.cluster?.get('from-node') === 'written by a node process')
    await page.waitForFunction(() => document.getElementById('cluster-state')?.textContent?.includes('from-node'))
    // The page's watch saw both writes, saying how each came.
    await page.waitForFunction(() => document.getElementById('cluster-changes')?.textContent?.includes('remote from-node = "written by a node process"'))
    assert.ok((await page.textContent('#cluster-changes'))?.includes('local from-page = {"text":"héllo","n":1}'))
    // Deletes both ways: del on a node reaches the page (and its watch); Delete in the page reaches every node.
    assert.equal((await last.command('del from-node')).ok, true)
    await page.waitForFunction(() => window.demo.cluster?.get('from-node') === null)
    await page.waitForFunction(() => document.getElementById('cluster-changes')?.textContent?.includes('delete from-node'))
    await page.fill('#cluster-key', 'from-page')
    await page.click('#cluster-delete')
    await everyNodeHolds('from-page', null)
    await page.screenshot({ path: path.join(ARTIFACTS, 'demo-cluster.png'), fullPage: true, animations: 'disabled' })
    assert.deepEqual(errors, [], 'the page logged no error')
  })
})
