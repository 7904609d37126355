/**
 * `simple-scuttle node`: one gossip node over TCP, driven by commands on
 * stdin, one per line, each answered by one JSON line on stdout, in order
 * (see `help` below and the README). Logs go to stderr, one line each,
 * prefixed with the node's id. SIGTERM (or SIGINT) flushes and exits 0.
 */
import * as crypto from 'crypto'
import * as fs from 'fs'
import * as path from 'path'
import * as readline from 'readline'
import { CONTROL, DEFAULT_ADMIN_PORT, DEFAULT_PORT, parseAddress, startNode, StoreFailedError, TwinError, type Address, type ScuttleNode, type TwinReport } from '../lib/node/tcp'
import { ed25519, helloAuth } from '../lib/node/security'
import { AdminServer, isLoopback, type AdminCode, type AdminRequest } from '../lib/node/admin'
import { StoreError } from '../lib/node/store'
import { MissingPeerError } from '../lib/node/peer'
import { resolution } from '../lib/base'
import { isMembershipKey, MAX_META_LENGTH, type Member } from '../lib/membership'
import { MAX_ID_LENGTH, jsonTextProblem } from '../lib/value'
import { badName } from '../lib/shape'
import type { Security } from '../lib/types'
import type { HelloAuth } from '../lib/wire/session'
import { readArgs, unreadable, UsageError } from './args'
import { ConfigLoader } from './config'
import { Logger, type LogFormat, type LogLevel } from './log'

const MAX_TIMER = 2 ** 31 - 1

export const usage = `usage: simple-scuttle node --id ID [options]

Every option may also come from a file (--config FILE, JSON: {"id": "a",
"connect": ["10.0.0.2:${DEFAULT_PORT}"]}) or the environment (SCUTTLE_ID,
SCUTTLE_CONNECT=h1:${DEFAULT_PORT},h2:${DEFAULT_PORT}, ...); the command line wins,
then the environment, then the file.

  --id ID               this node's id, unique in the cluster (required)
  --listen HOST:PORT    where to accept peers (default 127.0.0.1:${DEFAULT_PORT})
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
  --ws-origin ORIGIN    a browser origin allowed on --ws, such as
                        https://app.example (repeatable); besides, a page
                        naming this node by IP address or localhost
  --codec binary|ndjson the wire format this node writes (default binary;
                        ndjson to read the wire by eye)
  --keys DIR            signed updates and authenticated hellos: DIR/ID.pub.pem
                        of every trusted node, DIR/<this id>.key.pem of this one
  --admin HOST:PORT     serve the admin endpoint here (default port ${DEFAULT_ADMIN_PORT}):
                        simple-scuttle get|set|del|members|status --node HOST:PORT
  --admin-token-file F  the admin token (or SCUTTLE_ADMIN_TOKEN); needed when
                        --admin is not on loopback
  --admin-host NAME     a DNS name clients may reach --admin by (repeatable);
                        others are refused, as a rebinding web page would use
                        one (IP addresses and localhost need not be named)
  --admin-origin ORIGIN a web page's origin allowed to ask --admin, such as
                        https://ops.example (repeatable; default none)
  --metrics HOST:PORT   serve Prometheus metrics at http://HOST:PORT/metrics
                        (and /health, /ready)
  --http-timeout MS     on --admin and --metrics, a request's headers and body
                        must arrive within MS (default 3000)
  --max-connections N   peers connected at once, in and out (default 64)
  --max-members N       members tracked besides this node (default 1024)
  --phi N               failure detector threshold (default 8): a member is
                        dead once phi passes N
  --dead-grace MS       a member dead this long is dropped from the member
                        list (default 86400000, a day)
  --advertise HOST:PORT the address other members are told (default --listen)
  --meta JSON           metadata this node advertises (a JSON object)
  --log-level LEVEL     error, warn, info (default) or debug
  --log-format FORMAT   text (default: time, level, [id], message) or json
  --late keep|drop      this node's writes peers refuse as late (made before
                        deletes they collected while it heard from none of
                        them): write them again, or withdraw them (drop needs
                        --keys; default: log them, change nothing; see
                        docs/deletes.md)
  --config FILE         read options from FILE (JSON)
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
  maxConnections?: number
  maxMembers?: number
  advertise?: string
  meta?: Record<string, unknown>
  admin?: Address
  adminToken?: string
  adminHosts?: string[]
  adminOrigins?: string[]
  httpTimeout?: number
  wsOrigins?: string[]
  logLevel?: LogLevel
  logFormat?: LogFormat
  late?: 'keep' | 'drop'
  help?: boolean
  /** What was set but not used (unknown SCUTTLE_* variables), said at warn once the node logs. */
  warnings?: string[]
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
  'max-connections': { type: 'string' },
  'max-members': { type: 'string' },
  advertise: { type: 'string' },
  meta: { type: 'string' },
  admin: { type: 'string' },
  'admin-token-file': { type: 'string' },
  'admin-host': { type: 'string', multiple: true },
  'admin-origin': { type: 'string', multiple: true },
  'http-timeout': { type: 'string' },
  'ws-origin': { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  late: { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

function address(flag: string, text: string): Address {
  try {
    return parseAddress(text)
  } catch (err) {
    // A list where one address goes (SCUTTLE_CONNECT takes one, comma-separated; a file, a JSON array).
    const list = flag === 'connect' && text.includes(',') ? ' (one address per --connect: repeat the flag; a file takes a JSON array, SCUTTLE_CONNECT a comma-separated list)' : ''
    throw new UsageError(`--${flag}: ${(err as Error).message}${list}`, flag)
  }
}

/**
 * Parse the command line of `node`, with the settings of its `--config`
 * file and its environment (see `ConfigLoader`).
 * @throws UsageError saying what is wrong, and where it was set.
 */
export function parseArgs(args: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): Args {
  const loader = new ConfigLoader(OPTIONS, env, ['SCUTTLE_ADMIN_TOKEN', 'SCUTTLE_NODE'])
  const { argv, sources } = loader.load(args)
  try {
    const out = parseMerged(argv, env)
    const unknown = loader.unknownEnv()
    if (unknown !== null) out.warnings = [unknown]
    return out
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    // Say where a bad value was set when it was not on the command line.
    const where = err.flag === undefined ? undefined : sources.get(err.flag)
    throw where === undefined ? err : new UsageError(`${err.message} (set ${where})`, err.flag)
  }
}

function parseMerged(args: readonly string[], env: Readonly<Record<string, string | undefined>>): Args {
  const v = readArgs(args, OPTIONS)
  if (v.help === true) return { id: '', listen: { host: '127.0.0.1', port: DEFAULT_PORT }, connect: [], help: true }
  if (v.id === undefined) throw new UsageError('--id is required', 'id')
  // Peers refuse such an id in a hello: say so now rather than never connect.
  if (CONTROL.test(v.id) || v.id.trim() !== v.id) throw new UsageError(`--id must not hold control or invisible characters, nor start or end with a space: ${JSON.stringify(v.id)}`, 'id')
  if (v.id.length > MAX_ID_LENGTH) throw new UsageError(`--id must be at most ${MAX_ID_LENGTH} characters, not ${v.id.length}`, 'id')
  // What the library would refuse at start (empty, reserved): a usage error too.
  const badId = badName('--id', v.id)
  if (badId !== null) throw new UsageError(badId, 'id')
  if (v.cluster !== undefined && CONTROL.test(v.cluster)) throw new UsageError(`--cluster must not hold control or invisible characters: ${JSON.stringify(v.cluster)}`, 'cluster')
  const number = (flag: string, text: string | undefined, ok: (n: number) => boolean, what: string): number | undefined => {
    if (text === undefined) return undefined
    const n = Number(text)
    if (text.trim() === '' || !ok(n)) throw new UsageError(`--${flag} must be ${what}, not "${text}"`, flag)
    return n
  }
  const out: Args = {
    id: v.id,
    listen: v.listen === undefined ? { host: '127.0.0.1', port: DEFAULT_PORT } : address('listen', v.listen),
    connect: (v.connect ?? []).map((c) => {
      const a = address('connect', c)
      // Port 0 means "any free port" to listen on; dialed, it is refused forever.
      if (a.port === 0) throw new UsageError(`--connect: port 0 cannot be dialed (${c}): give the peer's --listen port`, 'connect')
      return a
    }),
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
    maxConnections: number('max-connections', v['max-connections'], (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer'),
    maxMembers: number('max-members', v['max-members'], (n) => Number.isSafeInteger(n) && n > 0, 'a positive integer'),
    metrics: v.metrics === undefined ? undefined : address('metrics', v.metrics),
    httpTimeout: number('http-timeout', v['http-timeout'], (n) => n > 0 && n <= MAX_TIMER, `a positive number of milliseconds, at most ${MAX_TIMER}`),
    advertise: v.advertise,
  }
  if (v.advertise !== undefined) address('advertise', v.advertise)
  if (v.meta !== undefined) {
    let meta: unknown
    try {
      meta = JSON.parse(v.meta)
    } catch {
      throw new UsageError(`--meta must be a JSON object, such as '{"zone":"a"}', not ${v.meta}`, 'meta')
    }
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new UsageError(`--meta must be a JSON object, such as '{"zone":"a"}', not ${v.meta}`, 'meta')
    // Membership refuses more at start (maxMetaLength): a usage error too.
    const length = JSON.stringify(meta).length
    if (length > MAX_META_LENGTH) throw new UsageError(`--meta is ${length} characters of JSON: at most ${MAX_META_LENGTH}`, 'meta')
    out.meta = meta as Record<string, unknown>
  }
  if (v.codec !== undefined) {
    if (v.codec !== 'binary' && v.codec !== 'ndjson') throw new UsageError(`--codec must be binary or ndjson, not "${v.codec}"`, 'codec')
    out.codec = v.codec
  }
  if (out.data === '') throw new UsageError('--data needs a directory: give a path, or leave --data out to keep state in memory', 'data')
  if (out.repair === true && out.data === undefined) throw new UsageError('--repair needs --data', 'repair')
  if (v.admin !== undefined) out.admin = address('admin', v.admin.includes(':') ? v.admin : `${v.admin}:${DEFAULT_ADMIN_PORT}`)
  const tokenFile = v['admin-token-file']
  if (tokenFile !== undefined) {
    try {
      out.adminToken = fs.readFileSync(tokenFile, 'utf8').trim()
    } catch (err) {
      throw new UsageError(
        `--admin-token-file ${tokenFile}: cannot be read (${unreadable(err)}): ` +
          ((err as NodeJS.ErrnoException).code === 'ENOENT' ? `write a token of 16 characters or more there (openssl rand -hex 16 > ${tokenFile})` : 'name a file this user can read, holding a token of 16 characters or more') +
          ', or give the token in SCUTTLE_ADMIN_TOKEN',
        'admin-token-file',
      )
    }
  } else if (env.SCUTTLE_ADMIN_TOKEN !== undefined && env.SCUTTLE_ADMIN_TOKEN !== '') out.adminToken = env.SCUTTLE_ADMIN_TOKEN
  if (out.adminToken !== undefined && out.adminToken.length < 16) {
    throw new UsageError(`${tokenFile !== undefined ? `--admin-token-file ${tokenFile}` : 'SCUTTLE_ADMIN_TOKEN'}: the token must be 16 characters or more, not ${out.adminToken.length}`, tokenFile !== undefined ? 'admin-token-file' : undefined)
  }
  // (Said at start too, by AdminServer; here it is a bad command line, exit 2, which systemd does not restart.)
  if (out.admin !== undefined && !isLoopback(out.admin.host) && out.adminToken === undefined) {
    throw new UsageError(`--admin on ${out.admin.host} needs a token of 16 characters or more (--admin-token-file, or SCUTTLE_ADMIN_TOKEN): it is reachable from other machines`, 'admin')
  }
  if (v['ws-origin'] !== undefined) {
    for (const o of v['ws-origin']) {
      if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) throw new UsageError(`--ws-origin must be an origin such as https://app.example:8443 (scheme, host, port; no path), not "${o}"`, 'ws-origin')
    }
    out.wsOrigins = v['ws-origin']
  }
  if (v['admin-origin'] !== undefined) {
    for (const o of v['admin-origin']) {
      if (!/^https?:\/\/[^/\s]+$/.test(o)) throw new UsageError(`--admin-origin must be an origin such as https://ops.example:8443 (scheme, host, port; no path), not "${o}"`, 'admin-origin')
    }
    out.adminOrigins = v['admin-origin']
  }
  if (v['admin-host'] !== undefined) {
    for (const h of v['admin-host']) {
      if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(h)) throw new UsageError(`--admin-host must be a DNS name without a port, such as admin.example, not "${h}"`, 'admin-host')
    }
    out.adminHosts = v['admin-host']
  }
  const level = v['log-level']
  if (level !== undefined) {
    if (!['error', 'warn', 'info', 'debug'].includes(level)) throw new UsageError(`--log-level must be error, warn, info or debug, not "${level}"`, 'log-level')
    out.logLevel = level as LogLevel
  }
  if (v.late !== undefined) {
    if (v.late !== 'keep' && v.late !== 'drop') throw new UsageError(`--late must be keep or drop, not "${v.late}"`, 'late')
    // Without keys any peer can report a write late: none may make the node withdraw its own.
    if (v.late === 'drop' && v.keys === undefined) throw new UsageError('--late drop needs --keys: without keys any peer could report this node\'s writes late and have them withdrawn', 'late')
    out.late = v.late
  }
  const format = v['log-format']
  if (format !== undefined) {
    if (format !== 'text' && format !== 'json') throw new UsageError(`--log-format must be text or json, not "${format}"`, 'log-format')
    out.logFormat = format
  }
  return out
}

/**
 * Signed updates from a directory of PEM files: `ID.pub.pem`, the public
 * key of every source to accept, and `ID.key.pem`, this node's private key
 * (made for example with `openssl genpkey -algorithm ed25519 -out a.key.pem`
 * and `openssl pkey -in a.key.pem -pubout -out a.pub.pem`).
 */
export function loadKeys(dir: string, id: string): { security: Security; auth: HelloAuth } {
  // A Map: a file named __proto__.pub.pem is a key like any other.
  const publicKeys = new Map<string, string>()
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new TypeError(
      `--keys ${dir}: cannot be read (${code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : unreadable(err)}): ` +
        `make it, holding this node's ${id}.key.pem and each trusted node's ID.pub.pem (openssl genpkey -algorithm ed25519 -out ${id}.key.pem; openssl pkey -in ${id}.key.pem -pubout -out ${id}.pub.pem), or point --keys at it`,
    )
  }
  // Each file read and parsed here, so that a bad one is named (OpenSSL's
  // errors name neither the file nor the fix).
  const read = (name: string, parse: (pem: string) => crypto.KeyObject): string => {
    let pem: string
    try {
      pem = fs.readFileSync(path.join(dir, name), 'utf8')
      const key = parse(pem)
      if (key.asymmetricKeyType !== 'ed25519') throw new Error(`a ${key.asymmetricKeyType ?? 'unknown'} key`)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      throw new TypeError(
        `--keys ${dir}: ${name} is not an Ed25519 ${name.endsWith('.pub.pem') ? 'public' : 'private'} key in PEM (${e.code === 'EACCES' ? 'permission denied' : oneLine(e.message)}); ` +
          'make one with openssl genpkey -algorithm ed25519 -out ID.key.pem, and openssl pkey -in ID.key.pem -pubout -out ID.pub.pem',
      )
    }
    return pem
  }
  for (const name of names) {
    const m = /^(.+)\.pub\.pem$/.exec(name)
    if (m !== null) publicKeys.set(m[1], read(name, (pem) => crypto.createPublicKey(pem)))
  }
  // Its own key signs its writes and proves its hello: peers refuse a hello without proof.
  if (!fs.existsSync(path.join(dir, `${id}.key.pem`))) throw new TypeError(`--keys ${dir}: no ${id}.key.pem, this node's own key (it signs its writes and proves its hello; peers refuse a node without one)`)
  const privateKey = read(`${id}.key.pem`, (pem) => crypto.createPrivateKey(pem))
  return { security: ed25519({ publicKeys, id, privateKey }), auth: helloAuth({ publicKeys, id, privateKey }) }
}

/** The stdin commands, as `help` lists them. */
export const COMMANDS: { command: string; answer: string }[] = [
  { command: 'help', answer: 'this list' },
  { command: 'set KEY JSON', answer: '{"ok":true,"key","version"} once durable; the value is JSON: set color "blue", set size {"w":3}' },
  { command: 'get KEY', answer: '{"key","value","version"} (null and null when absent or deleted)' },
  { command: 'del KEY', answer: '{"ok":true,"key","version"} once durable: KEY is deleted on every node (a later set brings it back)' },
  { command: 'state', answer: '{"state":{KEY:{"value","version","source_id"}}} (membership keys left out: see members)' },
  { command: 'peers', answer: '{"peers":[{"id","address","direction","transport","authenticated","answering","synced","behind":{"them","us"}}]}' },
  { command: 'members', answer: '{"members":[{"id","status":"live"|"dead","address","heartbeat","last_heartbeat_ms",...}]}' },
  { command: 'status', answer: '{"id","cluster","version","uptime_s","peers","synced","members":{"live","dead"},"keys",...}' },
]

// A value given on the command line: JSON, or an error that says so.
function jsonValue(key: string, text: string): { value: unknown } | { error: string } {
  if (text.trim() === '') return { error: `set ${key}: a value is needed: set KEY JSON, e.g. set ${key} "text"` }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    // (A value may be 1 MiB: the error shows its start.)
    if (text.length > 200) return { error: `set ${key}: value is not JSON: ${text.slice(0, 200)}...` }
    const bare = /^[^"{}[\]\s][^\s]*$/.test(text.trim())
    return {
      error: bare
        ? `set ${key}: value is not JSON: ${text} (values are JSON: a string is quoted, set ${key} ${JSON.stringify(text.trim())})`
        : `set ${key}: value is not JSON: ${text}`,
    }
  }
  const problem = jsonTextProblem(text)
  return problem === null ? { value } : { error: `set ${key}: the value ${problem}` }
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

/**
 * Why a command failed, as stdin and the admin endpoint answer it: the
 * admin endpoint's codes (lib/codes.ts, ADMIN_CODES), one code for one
 * failure whichever way it was asked.
 */
export type Failure = {
  ok: false
  code: AdminCode | 'store_failed' | 'twin'
  error: string
}

const failure = (code: Failure['code'], error: string): Failure => ({ ok: false, code, error })

// A refused write, with the code clients read.
function refusal(err: unknown): Failure {
  if (err instanceof StoreFailedError || err instanceof TwinError) return failure(err.code, err.message)
  return failure(err instanceof TypeError ? 'invalid' : 'refused', (err as Error)?.message ?? String(err))
}

const reserved = (key: string) => failure('invalid', `${key}: keys under member/ and heartbeat/ are kept by membership, not written by hand (see members)`)

// set and del, as stdin and the admin endpoint ask them.
async function setKey(node: ScuttleNode, key: string, text: string): Promise<Record<string, unknown>> {
  if (isMembershipKey(key)) return reserved(key)
  const parsed = jsonValue(key, text)
  if ('error' in parsed) return failure('invalid', parsed.error)
  try {
    return { ok: true, key, version: await node.set(key, parsed.value) }
  } catch (err) {
    return refusal(err)
  }
}

async function delKey(node: ScuttleNode, key: string): Promise<Record<string, unknown>> {
  if (isMembershipKey(key)) return reserved(key)
  try {
    return { ok: true, key, version: await node.delete(key) }
  } catch (err) {
    return refusal(err)
  }
}

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
      if (rest === '') return failure('invalid', 'set needs a KEY and a JSON value: set KEY JSON')
      const at = rest.indexOf(' ')
      return setKey(node, at < 0 ? rest : rest.slice(0, at), at < 0 ? '' : rest.slice(at + 1))
    }
    case 'del':
      if (rest === '') return failure('invalid', 'del needs a KEY: del KEY')
      return delKey(node, rest)
    case 'get': {
      if (rest === '') return failure('invalid', 'get needs a KEY: get KEY')
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
      // Counted as writes come (O(1)); walked only with a store object of the application's.
      let keys = g.history.tracksResolved ? g.history.liveCount : 0
      if (!g.history.tracksResolved) for (const k of Object.keys(g.state)) if (!isMembershipKey(k)) keys++
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
        // in sync with every peer that answers, one at least if it has peers: what /ready needs of peers
        synced: node.synced(),
        // what /ready says (docs/operations.md, Readiness)
        ready: node.ready(),
        writable: node.writeRefusal === null,
        connections: node.connections(),
        // (live and dead, as documented: the unproven are among the dead)
        members: m === null ? null : (({ live, dead }) => ({ live, dead }))(m.counts()),
        keys,
        sources: g.history.sources.size,
        exchanges: { asked: s.asked, answered: s.answered },
        updates: { sent: s.updatesSent, received: s.updatesReceived },
        bytes: { sent: s.bytesSent, received: s.bytesReceived },
        invalid: s.invalid,
        refused: s.refused,
        slowest_peer_staleness_ms: node.staleness().reduce((w, p) => Math.max(w, p.ms), 0),
      }
    }
    default:
      // (The admin endpoint's code for a path it does not serve.)
      return failure('not_found', `unknown command "${name}"; commands: ${COMMANDS.map((c) => c.command).join(', ')}`)
  }
}

/** Answer one admin request (see `lib/node/admin.ts`); never throws. */
export async function adminRun(node: ScuttleNode, r: AdminRequest): Promise<Record<string, unknown>> {
  const key = r.key ?? ''
  switch (r.command) {
    case 'get': {
      const u = node.gossip.get(key)
      return { key, value: u.value, version: u.version !== -Infinity ? u.version : null }
    }
    case 'set':
      return setKey(node, key, r.value ?? '')
    case 'del':
      return delKey(node, key)
    default:
      return (await command(node, r.command)) as Record<string, unknown>
  }
}

/**
 * What an error met while starting says to an operator, in one line with
 * what to do; an error not foreseen is said as "unexpected error", its
 * stack left to the debug level.
 */
export function operatorError(err: unknown, args: Args): string {
  const e = err as Error & { code?: string; syscall?: string; address?: string; port?: number; path?: string; hostname?: string }
  if (!(e instanceof Error)) return `unexpected error: ${oneLine(String(err))}`
  // Which flag named that address (--listen unless another did): by its
  // port, or by its host when the error has no port (EADDRNOTAVAIL).
  const flags: [string, Address | undefined][] = [['--ws', args.ws], ['--metrics', args.metrics], ['--admin', args.admin]]
  const named = flags.find(([, a]) => a !== undefined && (e.port === undefined ? a.host === e.address : a.port === e.port && e.port !== 0))
  const [flag, at] = named ?? ['--listen', args.listen]
  const where = e.address !== undefined ? `${e.address}:${e.port ?? at?.port}` : ''
  const data = args.data ?? ''
  const user = process.getuid === undefined ? 'this user' : `user ${process.getuid()}`
  // SQLite's and the file system's errors about the data directory.
  if (typeof e.code === 'string' && /^SQLITE_(READONLY|CANTOPEN|IOERR|FULL|PERM|AUTH)/.test(e.code)) {
    return e.code.startsWith('SQLITE_FULL')
      ? `data directory ${data} is full: free space there, or move it (--data)`
      : `data directory ${data} cannot be written (${e.message}): give ${user} write access to it and its files, or choose another --data`
  }
  switch (e.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the address is in use (another process holds the port; choose another ${flag})`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return `cannot resolve host ${JSON.stringify(e.hostname ?? '')}: no such host (check --listen, --ws, --admin and --metrics)`
    case 'EEXIST':
    case 'EISDIR':
      return `not a directory: ${e.path ?? e.message} (--data names a directory)`
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: no such address on this machine`
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return e.syscall === 'listen' || e.syscall === 'bind'
        ? `cannot listen on ${where}: permission denied (ports below 1024 need privileges)`
        : `permission denied: ${e.path ?? e.message}: give ${user} write access to it, or choose another ${args.data !== undefined && (e.path ?? '').startsWith(args.data) ? '--data' : 'path'}`
    case 'ENOENT':
      return `no such file or directory: ${e.path ?? e.message}${args.data !== undefined ? ' (--data is made if missing, but not under a file or a missing mount)' : ''}`
    case 'ENOTDIR':
      return `not a directory: a part of ${e.path ?? e.message} is a file`
    case 'ELOOP':
      return `too many symbolic links (a loop?): ${e.path ?? e.message}`
    case 'ENAMETOOLONG':
      return `name too long (a name in a path is at most 255 bytes): ${oneLine(e.path ?? e.message).slice(0, 100)}...`
    case 'ENOSPC':
      return `no space left for ${e.path ?? 'the data directory'}: free space there, or move --data`
  }
  if (e instanceof MissingPeerError) return `${e.message} (beside simple-scuttle: where it is installed, or with -g for a global install)`
  // A store's refusal says what to do (a damaged one: start with --repair).
  if (e instanceof StoreError) return oneLine(e.message)
  // Options refused, keys (loadKeys names the file and how to make one) included.
  if (e instanceof TypeError) return oneLine(e.message)
  return `unexpected error: ${e.code === undefined ? '' : `${e.code}: `}${oneLine(e.message)}`
}

// A message as one log line (a path or a value may hold line breaks).
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ')

/**
 * A data directory that this process cannot write, said before SQLite
 * (which would call a read-only database damaged): null when it can.
 */
export function unwritableData(dir: string): string | null {
  let probe = path.resolve(dir)
  // The first part of the path that exists must be a writable directory.
  for (;;) {
    const st = fs.statSync(probe, { throwIfNoEntry: false })
    if (st !== undefined) {
      if (!st.isDirectory()) return `--data ${dir}: ${probe} is not a directory`
      break
    }
    // A link to nothing: said as such (mkdir would fail on it with ENOENT).
    if (fs.lstatSync(probe, { throwIfNoEntry: false })?.isSymbolicLink() === true) {
      return `--data ${dir}: ${probe} is a symbolic link to ${fs.readlinkSync(probe)}, which does not exist (make the target, or point --data at a directory)`
    }
    const up = path.dirname(probe)
    if (up === probe) return `--data ${dir}: no part of the path exists`
    probe = up
  }
  // A kernel's file system (/proc, /sys, ...) holds no files of ours: said
  // by name, rather than as whichever errno it gives.
  const special = specialFileSystem(probe)
  if (special !== null) return `--data ${dir}: ${probe} is on a ${special} file system, which cannot hold a database: choose a directory on a disk, such as /var/lib/simple-scuttle`
  const user = process.getuid === undefined ? 'this user' : `user ${process.getuid()}`
  const files = probe === path.resolve(dir) ? fs.readdirSync(probe).filter((f) => /^(state\.db|lock\.db|acked)/.test(f)) : []
  for (const f of [probe, ...files.map((f) => path.join(probe, f))]) {
    try {
      fs.accessSync(f, fs.constants.W_OK | fs.constants.R_OK)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EROFS') return `data directory ${dir} cannot be written: ${f} is on a read-only file system (mount it read-write, or choose another --data)`
      return `data directory ${dir} cannot be written: ${f} is not writable by ${user} (give it write access, or choose another --data)`
    }
  }
  // Some file systems refuse writes whatever the mode bits say (/proc, read-only mounts).
  const test = path.join(probe, `.scuttle-write-test-${process.pid}`)
  try {
    fs.writeFileSync(test, '')
    fs.rmSync(test, { force: true })
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'EROFS' ? 'it is on a read-only file system' : code === 'ENOSPC' ? 'no space left' : code === 'EDQUOT' ? 'over the disk quota' : `a file cannot be made there (${code ?? oneLine((err as Error).message)})`
    return `data directory ${dir} cannot be written: ${probe}: ${why}: choose another --data, a directory on a writable disk`
  }
  return null
}

// File systems of the kernel's (statfs magic numbers), which cannot hold a database.
const SPECIAL: Record<number, string> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x1cd1: 'devpts',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x73636673: 'securityfs',
  0x74726163: 'tracefs',
  0x62656570: 'configfs',
  0xcafe4a11: 'bpf',
  0x6165676c: 'pstore',
  0xde5e81e4: 'efivarfs',
  0x19800202: 'mqueue',
}

function specialFileSystem(dir: string): string | null {
  try {
    return SPECIAL[fs.statfsSync(dir).type] ?? null
  } catch {
    return null
  }
}

// A clean stop waits this long (ms) at most for a peer to hold the node's writes.
const STOP_WAIT = 5000

/** `simple-scuttle node ...`: runs until SIGTERM or SIGINT; resolves with the exit code. */
export async function nodeCommand(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: Args
  try {
    args = parseArgs(argv, env)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    // Collectors reading JSON lines get one too, when JSON was asked for where it can be seen.
    const at = argv.findIndex((a) => a === '--log-format' || a.startsWith('--log-format='))
    const format = at < 0 ? env.SCUTTLE_LOG_FORMAT : argv[at].includes('=') ? argv[at].slice(argv[at].indexOf('=') + 1) : argv[at + 1]
    if (format === 'json') new Logger('', 'error', 'json').line(`${err.message} (see: simple-scuttle node --help)`, 'error')
    else process.stderr.write(`simple-scuttle node: ${err.message}\nsee: simple-scuttle node --help\n`)
    return 2
  }
  if (args.help === true) {
    out(usage)
    return 0
  }
  const logger = new Logger(args.id, args.logLevel ?? 'info', args.logFormat ?? 'text')
  const log = logger.line
  for (const w of args.warnings ?? []) log(w, 'warn')
  // A stop asked for while starting is kept, and done once started (the
  // default action would kill the node before it flushed). The handlers
  // stay for the whole stop: a second signal (^C twice, a wrapper and a
  // group kill) must not kill the node before it flushed and said where its
  // writes are (red team 21j).
  let stopAsked: string | null = null
  let onStop: (signal: string) => void = (signal) => (stopAsked ??= signal)
  process.on('SIGTERM', () => onStop('SIGTERM'))
  process.on('SIGINT', () => onStop('SIGINT'))
  // Whatever stops the start is one line; a stack, for an error not
  // foreseen, only at the debug level.
  const cannotStart = (err: unknown): number => {
    if (err instanceof Error && err.stack !== undefined) log(`start failed: ${err.stack.replace(/\n\s*/g, ' | ')}`, 'debug')
    log(`cannot start: ${operatorError(err, args)}`, 'error')
    return 1
  }
  let node: ScuttleNode
  let keys: ReturnType<typeof loadKeys> | undefined
  try {
    if (args.data !== undefined) {
      const bad = unwritableData(args.data)
      if (bad !== null) {
        log(`cannot start: ${bad}`, 'error')
        return 1
      }
    }
    keys = args.keys === undefined ? undefined : loadKeys(args.keys, args.id)
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
      wsOrigins: args.wsOrigins,
      // --codec ndjson: every connection in NDJSON, for people reading the wire.
      codecs: args.codec === 'ndjson' ? ['ndjson'] : undefined,
      security: keys?.security,
      auth: keys?.auth,
      late: args.late,
      metrics: args.metrics === undefined ? undefined : { ...args.metrics, requestTimeout: args.httpTimeout },
      advertise: args.advertise,
      maxConnections: args.maxConnections,
      // A clean stop waits (5 s at most) for a peer to hold this node's
      // writes: a restore from an older backup keeps only what left it.
      stopWait: STOP_WAIT,
      membership: {
        threshold: args.phi,
        grace: args.deadGrace,
        maxMembers: args.maxMembers,
        address: args.advertise,
        meta: args.meta,
      },
      log,
    })
  } catch (err) {
    return cannotStart(err)
  }
  let admin: AdminServer | null = null
  if (args.admin !== undefined) {
    try {
      admin = await AdminServer.start(
        {
          id: node.gossip.id,
          readiness: () => {
            const reason = node.notReady()
            // Ready is about reads; whether writes are served is said beside it (red team 21j).
            const refusal = node.writeRefusal
            return { ready: reason === null, joined: node.joined, synced: node.synced(), reason, writable: refusal === null, write_refusal: refusal?.message ?? null }
          },
          run: (r) => adminRun(node, r),
        },
        { at: args.admin, token: args.adminToken, hosts: args.adminHosts, origins: args.adminOrigins, requestTimeout: args.httpTimeout, log },
      )
    } catch (err) {
      await node.close().catch(() => undefined)
      return cannotStart(err)
    }
    const a = admin.address()
    log(`admin endpoint on http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port} (${args.adminToken === undefined ? 'no token' : 'token required'})`)
  }
  // Each command starts as soon as its line is read: a set or del applies
  // at once and joins the store's next group commit (writes waiting at the
  // same time share one transaction and one fsync). Answers still go out in
  // the order the commands came in, a set's or a del's only once it is
  // durable (node.set resolves after store.flush()); answers ready in the
  // same turn leave in one write.
  let queue: Promise<void> = Promise.resolve()
  let pending = ''
  let scheduled = false
  const release = (): void => {
    scheduled = false
    if (pending === '') return
    const chunk = pending
    pending = ''
    out(chunk)
  }
  const answer = (text: string): void => {
    pending += text
    if (scheduled) return
    scheduled = true
    setImmediate(release)
  }
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  input.on('line', (line) => {
    if (line.trim().length === 0) return
    // command() answers every error it expects; anything else still gets an answer, so later ones are not held up.
    const started = command(node, line).catch(refusal)
    queue = queue.then(async () => answer(`${JSON.stringify(await started)}\n`))
  })
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (why: string, code: number) => {
      if (stopping) {
        if (why.startsWith('SIG')) log(`${why}: stop already under way; waiting at most ${STOP_WAIT / 1000} s for a peer to hold this node's writes, then flushing`)
        return
      }
      stopping = true
      log(`${why}: flushing and stopping`)
      input.close()
      queue
        .then(release)
        .then(() => admin?.close())
        .then(() => node.close())
        .then(
          () => resolve(code),
          (err: unknown) => {
            log(`stopping failed: ${(err as Error)?.message}`, 'error')
            resolve(1)
          },
        )
    }
    onStop = (signal) => stop(signal, 0)
    if (stopAsked !== null) stop(stopAsked, 0)
    // A twin: the newer of two live nodes with one id stops, so that the
    // elder's writes (and its own, already durable here) are not hidden.
    node.on('twin', (t: TwinReport) => {
      if (!t.newer) return
      log(
        `cannot run: another live node has id ${node.gossip.id}${t.address === null ? '' : ` (at ${t.address})`}, started before this one. ` +
          'Stop one of them, or give this one another --id; this one stops now',
        'error',
      )
      // (After the writes it refused are answered: see TwinError.)
      setImmediate(() => stop('twin', 1))
    })
    // Writes of this node that peers refuse as late (made before deletes they
    // collected while this node heard from none of them, docs/deletes.md):
    // without --late, the operator chooses. The node says so and goes on
    // (a peer's report alone must not stop it): the writes stay where they
    // are until it is restarted with --late.
    if (args.late === undefined) {
      node.gossip.on('late', (updates: { key: string }[]) => {
        const keys = updates.slice(0, 5).map((u) => JSON.stringify(u.key)).join(', ')
        log(
          `${updates.length} writes of this node (${keys}${updates.length > 5 ? ', ...' : ''}) were made before deletes its peers collected ` +
            'while it heard from none of them, and they refuse them: until settled, the nodes that refuse them do not show them. ' +
            'Restart with --late keep (write them again: they win over those deletes) or --late drop (withdraw them); see docs/deletes.md. ' +
            '(If another node runs with this id, a twin, stop one of them first: its writes are what peers refuse.)',
          'error',
        )
      })
    }
    // Restored from a state older than what peers collected of this node's deletes.
    node.on('restoredStale', (reason: string) => {
      log(`cannot go on: ${reason}`, 'error')
      stop('restored from an old state', 3)
    })
  })
}
