/**
 * `simple-scuttle node`: one gossip node over TCP, driven by commands on
 * stdin, one per line, each answered by one JSON line on stdout, in order
 * (see `help` below and the README). Logs go to stderr, one line each,
 * prefixed with the node's id. SIGTERM (or SIGINT) flushes and exits 0.
 */
import * as fs from 'fs'
import * as path from 'path'
import * as readline from 'readline'
import { CONTROL, parseAddress, startNode, type Address, type ScuttleNode } from '../lib/node/tcp'
import { ed25519 } from '../lib/node/security'
import { StoreDamagedError } from '../lib/node/store'
import { resolution } from '../lib/core/base'
import { isMembershipKey, type Member } from '../lib/core/membership'
import type { Security } from '../lib/core/types'
import { readArgs, UsageError } from './args'

const MAX_TIMER = 2 ** 31 - 1

export const usage = `usage: simple-scuttle node --id ID [options]

  --id ID               this node's id, unique in the cluster (required)
  --listen HOST:PORT    where to accept peers (default 127.0.0.1, any free port)
  --connect HOST:PORT   a peer to dial, and redial with backoff (repeatable)
  --cluster NAME        the cluster's name: peers of another cluster are
                        refused (default "default")
  --data DIR            keep state in DIR (SQLite) and restart from it
  --repair              with --data: repair a damaged DIR (copies set aside)
  --interval MS         gossip with one random peer, and heartbeat, every MS
                        (default 1000)
  --mtu N               updates per exchange (default 100)
  --mtu-bytes N         bytes per message on the wire, digests included
                        (at least 16384; set alike on every node)
  --ws HOST:PORT        also accept peers over WebSocket here
  --codec binary|ndjson the wire format this node writes (default binary;
                        ndjson to read the wire by eye)
  --keys DIR            signed updates: DIR/ID.pub.pem of every trusted node,
                        DIR/<this id>.key.pem of this one
  --metrics HOST:PORT   serve Prometheus metrics at http://HOST:PORT/metrics
  --phi N               failure detector threshold (default 8): a member is
                        dead once phi passes N
  --dead-grace MS       a member dead this long is dropped from the member
                        list (default 86400000, a day)
  --advertise HOST:PORT the address other members are told (default --listen)
  --meta JSON           metadata this node advertises (a JSON object)
  -h, --help            this text

stdin commands (each answered with one JSON line): help, set KEY JSON,
get KEY, del KEY, state, peers, members, status.
`

/** The command line of `node`. */
export interface Args {
  id: string
  listen: Address
  connect: Address[]
  cluster?: string
  data?: string
  interval?: number
  mtu?: number
  mtuBytes?: number
  keys?: string
  ws?: Address
  codec?: 'binary' | 'ndjson'
  repair?: boolean
  metrics?: Address
  phi?: number
  deadGrace?: number
  advertise?: string
  meta?: Record<string, unknown>
  help?: boolean
}

const OPTIONS = {
  id: { type: 'string' },
  listen: { type: 'string' },
  connect: { type: 'string', multiple: true },
  cluster: { type: 'string' },
  data: { type: 'string' },
  repair: { type: 'boolean' },
  interval: { type: 'string' },
  mtu: { type: 'string' },
  'mtu-bytes': { type: 'string' },
  ws: { type: 'string' },
  codec: { type: 'string' },
  keys: { type: 'string' },
  metrics: { type: 'string' },
  phi: { type: 'string' },
  'dead-grace': { type: 'string' },
  advertise: { type: 'string' },
  meta: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

function address(flag: string, text: string): Address {
  try {
    return parseAddress(text)
  } catch (err) {
    throw new UsageError(`--${flag}: ${(err as Error).message}`)
  }
}

/** Parse the command line of `node`. @throws UsageError saying what is wrong. */
export function parseArgs(args: readonly string[]): Args {
  const v = readArgs(args, OPTIONS)
  if (v.help === true) return { id: '', listen: { host: '127.0.0.1', port: 0 }, connect: [], help: true }
  if (v.id === undefined) throw new UsageError('--id is required')
  // Peers refuse such an id in a hello: say so now rather than never connect.
  if (CONTROL.test(v.id) || v.id.trim() !== v.id) throw new UsageError(`--id must not hold control or invisible characters, nor start or end with a space: ${JSON.stringify(v.id)}`)
  if (v.cluster !== undefined && CONTROL.test(v.cluster)) throw new UsageError(`--cluster must not hold control or invisible characters: ${JSON.stringify(v.cluster)}`)
  const number = (flag: string, text: string | undefined, ok: (n: number) => boolean, what: string): number | undefined => {
    if (text === undefined) return undefined
    const n = Number(text)
    if (text.trim() === '' || !ok(n)) throw new UsageError(`--${flag} must be ${what}, not "${text}"`)
    return n
  }
  const out: Args = {
    id: v.id,
    listen: v.listen === undefined ? { host: '127.0.0.1', port: 0 } : address('listen', v.listen),
    connect: (v.connect ?? []).map((c) => address('connect', c)),
    cluster: v.cluster,
    data: v.data,
    keys: v.keys,
    repair: v.repair === true,
    // Timers take at most 2^31 - 1 ms; Node would turn more into 1 ms.
    interval: number('interval', v.interval, (n) => n > 0 && n <= MAX_TIMER, `a positive number of milliseconds, at most ${MAX_TIMER}`),
    mtu: number('mtu', v.mtu, (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer'),
    mtuBytes: number('mtu-bytes', v['mtu-bytes'], (n) => Number.isSafeInteger(n) && n >= 16384, 'an integer of at least 16384'),
    ws: v.ws === undefined ? undefined : address('ws', v.ws),
    phi: number('phi', v.phi, (n) => n > 0 && Number.isFinite(n), 'a positive number'),
    deadGrace: number('dead-grace', v['dead-grace'], (n) => n >= 0 && Number.isFinite(n), 'a number of milliseconds'),
    metrics: v.metrics === undefined ? undefined : address('metrics', v.metrics),
    advertise: v.advertise,
  }
  if (v.advertise !== undefined) address('advertise', v.advertise)
  if (v.meta !== undefined) {
    let meta: unknown
    try {
      meta = JSON.parse(v.meta)
    } catch {
      throw new UsageError(`--meta must be a JSON object, such as '{"zone":"a"}', not ${v.meta}`)
    }
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new UsageError(`--meta must be a JSON object, such as '{"zone":"a"}', not ${v.meta}`)
    out.meta = meta as Record<string, unknown>
  }
  if (v.codec !== undefined) {
    if (v.codec !== 'binary' && v.codec !== 'ndjson') throw new UsageError(`--codec must be binary or ndjson, not "${v.codec}"`)
    out.codec = v.codec
  }
  if (out.repair === true && out.data === undefined) throw new UsageError('--repair needs --data')
  return out
}

/**
 * Signed updates from a directory of PEM files: `ID.pub.pem`, the public
 * key of every source to accept, and `ID.key.pem`, this node's private key
 * (made for example with `openssl genpkey -algorithm ed25519 -out a.key.pem`
 * and `openssl pkey -in a.key.pem -pubout -out a.pub.pem`).
 */
export function loadKeys(dir: string, id: string): Security {
  const publicKeys: Record<string, string> = {}
  for (const name of fs.readdirSync(dir)) {
    const m = /^(.+)\.pub\.pem$/.exec(name)
    if (m !== null) publicKeys[m[1]] = fs.readFileSync(path.join(dir, name), 'utf8')
  }
  const own = path.join(dir, `${id}.key.pem`)
  const privateKey = fs.existsSync(own) ? fs.readFileSync(own, 'utf8') : undefined
  return ed25519({ publicKeys, id, privateKey })
}

/** The stdin commands, as `help` lists them. */
export const COMMANDS: { command: string; answer: string }[] = [
  { command: 'help', answer: 'this list' },
  { command: 'set KEY JSON', answer: '{"ok":true,"key","version"} once durable; the value is JSON: set color "blue", set size {"w":3}' },
  { command: 'get KEY', answer: '{"key","value","version"} (null and null when absent or deleted)' },
  { command: 'del KEY', answer: '{"ok":true,"key","version"} once durable: KEY is deleted on every node (a later set brings it back)' },
  { command: 'state', answer: '{"state":{KEY:{"value","version","source_id"}}} (membership keys left out: see members)' },
  { command: 'peers', answer: '{"peers":[{"id","address","direction","transport","synced","behind":{"them","us"}}]}' },
  { command: 'members', answer: '{"members":[{"id","status":"live"|"dead","address","heartbeat","last_heartbeat_ms",...}]}' },
  { command: 'status', answer: '{"id","cluster","version","uptime_s","peers","synced","members":{"live","dead"},"keys",...}' },
]

// A value given on the command line: JSON, or an error that says so.
function jsonValue(key: string, text: string): { value: unknown } | { error: string } {
  if (text.trim() === '') return { error: `set ${key}: a value is needed: set KEY JSON, e.g. set ${key} "text"` }
  try {
    return { value: JSON.parse(text) }
  } catch {
    const bare = /^[^"{}[\]\s][^\s]*$/.test(text.trim())
    return {
      error: bare
        ? `set ${key}: value is not JSON: ${text} (values are JSON: a string is quoted, set ${key} ${JSON.stringify(text.trim())})`
        : `set ${key}: value is not JSON: ${text}`,
    }
  }
}

function member(m: Member): Record<string, unknown> {
  return {
    id: m.id,
    status: m.status,
    address: m.address,
    heartbeat: m.heartbeat,
    last_heartbeat_ms: m.lastHeard === null ? null : Math.round(m.lastHeard),
    interval_ms: m.interval === null ? null : Math.round(m.interval),
    phi: Math.round(m.phi * 100) / 100,
    started: m.started,
    self: m.self,
    meta: m.meta,
  }
}

const reserved = (key: string) => `${key}: keys under member/ and heartbeat/ are kept by membership, not written by hand (see members)`

/** Answer one command line; never throws. */
export async function command(node: ScuttleNode, line: string): Promise<unknown> {
  const text = line.trim()
  const space = text.indexOf(' ')
  const name = space < 0 ? text : text.slice(0, space)
  const rest = space < 0 ? '' : text.slice(space + 1).trim()
  const g = node.gossip
  switch (name) {
    case 'help':
      return { commands: COMMANDS }
    case 'set': {
      if (rest === '') return { ok: false, error: 'set needs a KEY and a JSON value: set KEY JSON' }
      const at = rest.indexOf(' ')
      const key = at < 0 ? rest : rest.slice(0, at)
      if (isMembershipKey(key)) return { ok: false, error: reserved(key) }
      const parsed = jsonValue(key, at < 0 ? '' : rest.slice(at + 1))
      if ('error' in parsed) return { ok: false, error: parsed.error }
      try {
        const version = await node.set(key, parsed.value)
        return { ok: true, key, version }
      } catch (err) {
        return { ok: false, error: (err as Error).message }
      }
    }
    case 'del': {
      if (rest === '') return { ok: false, error: 'del needs a KEY: del KEY' }
      if (isMembershipKey(rest)) return { ok: false, error: reserved(rest) }
      try {
        const version = await node.delete(rest)
        return { ok: true, key: rest, version }
      } catch (err) {
        return { ok: false, error: (err as Error).message }
      }
    }
    case 'get': {
      if (rest === '') return { ok: false, error: 'get needs a KEY: get KEY' }
      const u = g.get(rest)
      const held = u.version !== -Infinity
      return { key: rest, value: u.value, version: held ? u.version : null }
    }
    case 'state': {
      const state: Record<string, { value: unknown; version: number; source_id: string }> = {}
      for (const [k, u] of Object.entries(g.state)) {
        if (isMembershipKey(k)) continue
        Object.defineProperty(state, k, {
          value: { value: u.value, version: u.version, source_id: u.source_id },
          enumerable: true,
        })
      }
      return { state }
    }
    case 'peers':
      return { peers: node.peers() }
    case 'members':
      return { members: (node.membership?.members() ?? []).map(member) }
    case 'status': {
      const s = node.stats()
      let keys = 0
      for (const k of Object.keys(g.state)) if (!isMembershipKey(k)) keys++
      const m = node.membership
      return {
        id: g.id,
        cluster: node.cluster,
        version: g.version,
        uptime_s: Math.round((Date.now() - node.startedAt) / 100) / 10,
        listening: `${node.address().host}:${node.address().port}`,
        metrics: node.metricsAddress() === null ? null : `${node.metricsAddress()?.host}:${node.metricsAddress()?.port}`,
        data: node.store === null ? null : node.store.dir,
        peers: node.peers().length,
        // every connected peer's last exchange left it holding what we hold
        synced: node.synced(),
        connections: node.connections(),
        members: m === null ? null : m.counts(),
        keys,
        sources: g.history.sources.size,
        exchanges: { asked: s.asked, answered: s.answered },
        updates: { sent: s.updatesSent, received: s.updatesReceived },
        bytes: { sent: s.bytesSent, received: s.bytesReceived },
        invalid: s.invalid,
        slowest_peer_staleness_ms: node.staleness().reduce((w, p) => Math.max(w, p.ms), 0),
      }
    }
    default:
      return { ok: false, error: `unknown command "${name}"; commands: ${COMMANDS.map((c) => c.command).join(', ')}` }
  }
}

/**
 * What an error met while starting says to an operator, or null for a
 * defect (whose stack trace then helps).
 */
export function operatorError(err: unknown, args: Args): string | null {
  const e = err as Error & { code?: string; syscall?: string; address?: string; port?: number; path?: string; hostname?: string }
  if (!(e instanceof Error)) return null
  const where = e.address !== undefined ? `${e.address}:${e.port}` : ''
  // Which flag named that port (--listen unless another did).
  const flag = args.ws?.port === e.port && e.port !== 0 ? '--ws' : args.metrics?.port === e.port && e.port !== 0 ? '--metrics' : '--listen'
  switch (e.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the address is in use (another process holds the port; choose another ${flag})`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return `cannot resolve host ${JSON.stringify(e.hostname ?? '')}: no such host (check --listen, --ws and --metrics)`
    case 'EEXIST':
    case 'EISDIR':
      return `not a directory: ${e.path ?? e.message} (--data names a directory)`
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: no such address on this machine`
    case 'EACCES':
    case 'EPERM':
      return e.syscall === 'listen' || e.syscall === 'bind'
        ? `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`
        : `permission denied: ${e.path ?? e.message}`
    case 'ENOENT':
    case 'ENOTDIR':
      return `no such file or directory: ${e.path ?? e.message}`
  }
  if (e instanceof StoreDamagedError) return /--repair/.test(e.message) ? e.message : `${e.message} (start with --repair to keep what can be read; the damaged files are copied aside first)`
  if (/^store: /.test(e.message)) return e.message
  if (e instanceof TypeError || /key|PEM|ed25519|decoder/i.test(e.message)) return e.message
  return null
}

/** `simple-scuttle node ...`: runs until SIGTERM or SIGINT; resolves with the exit code. */
export async function nodeCommand(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  let args: Args
  try {
    args = parseArgs(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`simple-scuttle node: ${err.message}\n\n${usage}`)
    return 2
  }
  if (args.help === true) {
    out(usage)
    return 0
  }
  const prefix = `[${args.id}] `
  const log = (line: string) => process.stderr.write(`${prefix}${line}\n`)
  let node: ScuttleNode
  try {
    node = await startNode({
      id: args.id,
      // The command's documented policy: last writer wins.
      resolve: resolution.lww_vs_current_vers,
      listen: args.listen,
      connect: args.connect,
      cluster: args.cluster,
      data: args.data,
      store: args.repair === true ? { repair: true } : undefined,
      interval: args.interval,
      mtu: args.mtu,
      config: args.mtuBytes === undefined ? undefined : { mtu_bytes: args.mtuBytes },
      ws: args.ws,
      // --codec ndjson: every connection in NDJSON, for people reading the wire.
      codecs: args.codec === 'ndjson' ? ['ndjson'] : undefined,
      security: args.keys === undefined ? undefined : loadKeys(args.keys, args.id),
      metrics: args.metrics,
      membership: {
        threshold: args.phi,
        grace: args.deadGrace,
        address: args.advertise,
        meta: args.meta,
      },
      log,
    })
  } catch (err) {
    const said = operatorError(err, args)
    if (said === null) throw err
    log(`cannot start: ${said}`)
    return 1
  }
  // Answers go out in the order the commands came in.
  let queue: Promise<void> = Promise.resolve()
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  input.on('line', (line) => {
    if (line.trim().length === 0) return
    queue = queue.then(async () => {
      const answer = await command(node, line)
      out(`${JSON.stringify(answer)}\n`)
    })
  })
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      log(`${signal}: flushing and stopping`)
      input.close()
      queue
        .then(() => node.close())
        .then(
          () => resolve(0),
          (err: unknown) => {
            log(`stopping failed: ${(err as Error)?.message}`)
            resolve(1)
          },
        )
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}
