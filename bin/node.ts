/**
 * `simple-scuttle node`: one gossip node over TCP, driven by commands on
 * stdin, one per line, each answered by one JSON line on stdout, in order:
 *
 *   set KEY JSON   {"ok":true,"key":KEY,"version":N} once durable, or {"ok":false,"error":...}
 *   get KEY        {"key":KEY,"value":V,"version":N} (null and null when absent)
 *   state          {"state":{KEY:{"value":V,"version":N,"source_id":S},...}}
 *   peers          {"peers":[{"id":ID,"address":"HOST:PORT","direction":"in"|"out"},...]}
 *
 * Logs go to stderr. SIGTERM (or SIGINT) flushes and exits 0.
 */
import * as fs from 'fs'
import * as path from 'path'
import * as readline from 'readline'
import { parseAddress, startNode, type Address, type ScuttleNode } from '../lib/node/tcp'
import { ed25519 } from '../lib/node/security'
import { resolution } from '../lib/core/base'
import type { Security } from '../lib/core/types'

export const usage =
  'usage: simple-scuttle node --id ID --listen HOST:PORT [--connect HOST:PORT]... ' +
  '[--data DIR [--repair]] [--interval MS] [--mtu N] [--mtu-bytes N] [--keys DIR] [--ws HOST:PORT] [--codec binary|ndjson]'

interface Args {
  id: string
  listen: Address
  connect: Address[]
  data?: string
  interval?: number
  mtu?: number
  mtuBytes?: number
  keys?: string
  ws?: Address
  codec?: 'binary' | 'ndjson'
  repair?: boolean
}

/** Parse the command line of `node`; throws an Error with the usage on mistakes. */
export function parseArgs(args: string[]): Args {
  let id: string | undefined
  let listen: Address = { host: '127.0.0.1', port: 0 }
  const connect: Address[] = []
  let data: string | undefined
  let interval: number | undefined
  let mtu: number | undefined
  let mtuBytes: number | undefined
  let ws: Address | undefined
  let codec: 'binary' | 'ndjson' | undefined
  let keys: string | undefined
  let repair = false
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]
    if (flag === '--repair') {
      repair = true
      continue
    }
    const value = args[i + 1]
    if (value === undefined) throw new Error(`${flag} needs a value\n${usage}`)
    i++
    switch (flag) {
      case '--id':
        id = value
        break
      case '--listen':
        listen = parseAddress(value)
        break
      case '--connect':
        connect.push(parseAddress(value))
        break
      case '--data':
        data = value
        break
      case '--interval':
        interval = Number(value)
        if (!(interval > 0)) throw new Error(`--interval must be a positive number of milliseconds\n${usage}`)
        break
      case '--mtu':
        mtu = Number(value)
        if (!(Number.isSafeInteger(mtu) && mtu > 0)) throw new Error(`--mtu must be a positive integer\n${usage}`)
        break
      case '--mtu-bytes':
        mtuBytes = Number(value)
        if (!(Number.isSafeInteger(mtuBytes) && mtuBytes >= 16384)) throw new Error(`--mtu-bytes must be an integer of at least 16384\n${usage}`)
        break
      case '--ws':
        ws = parseAddress(value)
        break
      case '--codec':
        if (value !== 'binary' && value !== 'ndjson') throw new Error(`--codec must be binary or ndjson\n${usage}`)
        codec = value
        break
      case '--keys':
        keys = value
        break
      default:
        throw new Error(`unknown option ${flag}\n${usage}`)
    }
  }
  if (id === undefined) throw new Error(`--id is required\n${usage}`)
  if (repair && data === undefined) throw new Error(`--repair needs --data\n${usage}`)
  return { id, listen, connect, data, interval, mtu, mtuBytes, keys, repair, ws, codec }
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

/** Answer one command line; never throws. */
export async function command(node: ScuttleNode, line: string): Promise<unknown> {
  const text = line.trim()
  const space = text.indexOf(' ')
  const name = space < 0 ? text : text.slice(0, space)
  const rest = space < 0 ? '' : text.slice(space + 1).trim()
  const g = node.gossip
  switch (name) {
    case 'set': {
      const at = rest.indexOf(' ')
      const key = at < 0 ? rest : rest.slice(0, at)
      const json = at < 0 ? '' : rest.slice(at + 1)
      let value: unknown
      try {
        value = JSON.parse(json)
      } catch {
        return { ok: false, error: `set ${key}: value is not JSON: ${json}` }
      }
      try {
        const version = await node.set(key, value)
        return { ok: true, key, version }
      } catch (err) {
        return { ok: false, error: (err as Error).message }
      }
    }
    case 'get': {
      const u = g.get(rest)
      const held = u.version !== -Infinity
      return { key: rest, value: u.value, version: held ? u.version : null }
    }
    case 'state': {
      const state: Record<string, { value: unknown; version: number; source_id: string }> = {}
      for (const [k, u] of Object.entries(g.state)) {
        Object.defineProperty(state, k, {
          value: { value: u.value, version: u.version, source_id: u.source_id },
          enumerable: true,
        })
      }
      return { state }
    }
    case 'peers':
      return { peers: node.peers() }
    default:
      return { ok: false, error: `unknown command "${name}"; commands: set KEY JSON, get KEY, state, peers` }
  }
}

/** `simple-scuttle node ...`: runs until SIGTERM or SIGINT; resolves with the exit code. */
export async function nodeCommand(argv: string[]): Promise<number> {
  let args: Args
  try {
    args = parseArgs(argv)
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`)
    return 2
  }
  const node = await startNode({
    id: args.id,
    // The command's documented policy: last writer wins.
    resolve: resolution.lww_vs_current_vers,
    listen: args.listen,
    connect: args.connect,
    data: args.data,
    store: args.repair === true ? { repair: true } : undefined,
    interval: args.interval,
    mtu: args.mtu,
    config: args.mtuBytes === undefined ? undefined : { mtu_bytes: args.mtuBytes },
    ws: args.ws,
    // --codec ndjson: every connection in NDJSON, for people reading the wire.
    codecs: args.codec === 'ndjson' ? ['ndjson'] : undefined,
    security: args.keys === undefined ? undefined : loadKeys(args.keys, args.id),
    log: (line) => process.stderr.write(`[${args.id}] ${line}\n`),
  })
  // Answers go out in the order the commands came in.
  let queue: Promise<void> = Promise.resolve()
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  input.on('line', (line) => {
    if (line.trim().length === 0) return
    queue = queue.then(async () => {
      const answer = await command(node, line)
      process.stdout.write(`${JSON.stringify(answer)}\n`)
    })
  })
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      process.stderr.write(`[${args.id}] ${signal}: flushing and stopping\n`)
      input.close()
      queue
        .then(() => node.close())
        .then(
          () => resolve(0),
          (err: unknown) => {
            process.stderr.write(`[${args.id}] ${(err as Error)?.message}\n`)
            resolve(1)
          },
        )
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
}
