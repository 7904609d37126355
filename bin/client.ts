/**
 * The admin endpoint's client: `simple-scuttle get KEY`, `set KEY JSON`,
 * `del KEY`, `members`, `status`, `peers`, `state`, each with `--node
 * HOST:PORT` (or SCUTTLE_NODE; default 127.0.0.1:7947). Prints the node's
 * JSON answer on stdout and exits 0; exits 1 with one line on stderr when
 * the node cannot be reached or refuses, 2 for a bad command line.
 */
import * as fs from 'fs'
import * as http from 'http'
import { parseArgs } from 'util'
import { parseAddress, DEFAULT_ADMIN_PORT } from '../lib/node/tcp'
import { unreadable, UsageError } from './args'
import { MAX_VALUE_LENGTH } from '../lib/value'

/** The client commands and what they take. */
export const CLIENT_COMMANDS: Record<string, { args: string[]; what: string }> = {
  get: { args: ['KEY'], what: "a key's value and version" },
  set: { args: ['KEY', 'JSON'], what: 'write a key (the value is JSON: \'"blue"\', \'{"w":3}\'; - reads it from stdin)' },
  del: { args: ['KEY'], what: 'delete a key on every node' },
  members: { args: [], what: 'the members and their status' },
  status: { args: [], what: "the node's status" },
  peers: { args: [], what: 'the connected peers' },
  state: { args: [], what: 'every key the node holds' },
}

export const clientUsage = `usage: simple-scuttle <get KEY | set KEY JSON | del KEY | members | status | peers | state>
                      [--node HOST:PORT] [--token-file FILE] [--timeout MS]

Asks a running node through its admin endpoint (simple-scuttle node --admin).
  --node HOST:PORT   the node's --admin address (default SCUTTLE_NODE, else 127.0.0.1:${DEFAULT_ADMIN_PORT})
  --token-file FILE  the admin token (default SCUTTLE_ADMIN_TOKEN), needed when the node has one
  --timeout MS       give up after MS (default 10000)
A KEY or value starting with "-" (other than a number) goes after "--": simple-scuttle get -- -k
set KEY - reads the value from stdin (an argument holds at most 128 KiB on Linux; a value, up to
1 MiB less 16 KiB of JSON): simple-scuttle set config - < config.json
Prints the answer as JSON; exits 1 with one line when the node cannot be reached or refuses.
`

interface Request {
  method: string
  path: string
  body?: string
}

function request(name: string, positionals: string[]): Request {
  const spec = CLIENT_COMMANDS[name]
  if (positionals.length !== spec.args.length) {
    throw new UsageError(`${name} takes ${spec.args.length === 0 ? 'no arguments' : spec.args.join(' ')}${positionals.length > spec.args.length ? `, not "${positionals.slice(spec.args.length).join(' ')}"` : ''}`)
  }
  // A key "." or ".." is a dot segment, which HTTP clients and proxies
  // resolve away: sent percent-encoded (the endpoint reads the path as sent).
  const key = positionals[0] === undefined ? '' : encodeURIComponent(positionals[0]).replace(/^\.\.?$/, (d) => d.replace(/\./g, '%2E'))
  switch (name) {
    case 'get':
      return { method: 'GET', path: `/v1/kv/${key}` }
    case 'set':
      try {
        JSON.parse(positionals[1])
      } catch {
        throw new UsageError(`set ${positionals[0]}: the value is not JSON: ${positionals[1]} (a string is quoted: '${JSON.stringify(positionals[1])}')`)
      }
      return { method: 'PUT', path: `/v1/kv/${key}`, body: positionals[1] }
    case 'del':
      return { method: 'DELETE', path: `/v1/kv/${key}` }
    default:
      return { method: 'GET', path: `/v1/${name}` }
  }
}

const OPTIONS = { node: { type: 'string' }, 'token-file': { type: 'string' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const

// A JSON value that is a negative number (set n -5) is a positional, not
// an option: such arguments go after "--", the options' values kept.
function positionalNumbers(argv: readonly string[]): string[] {
  const options: string[] = []
  const positionals: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--') {
      positionals.push(...argv.slice(i + 1))
      break
    }
    if (/^-\d|^-\.\d/.test(a) || !a.startsWith('-') || a === '-') positionals.push(a)
    else {
      const name = /^--([^=]+)$/.exec(a)?.[1]
      // Joined, so that a value such as -1 is that option's (its check then says what is wrong).
      if (name !== undefined && Object.hasOwn(OPTIONS, name) && OPTIONS[name as keyof typeof OPTIONS].type === 'string' && i + 1 < argv.length) options.push(`${a}=${argv[++i]}`)
      else options.push(a)
    }
  }
  return [...options, '--', ...positionals]
}

// The longest value read from stdin: room for the longest value at three bytes a character, as the endpoint's body bound.
const MAX_STDIN = 3 * MAX_VALUE_LENGTH + (16 << 10)

// What stdin holds, or null past MAX_STDIN.
function readStdin(): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let n = 0
    process.stdin.on('data', (b: Buffer) => {
      n += b.length
      if (n <= MAX_STDIN) parts.push(b)
    })
    process.stdin.once('end', () => {
      if (n > MAX_STDIN) return resolve(null)
      // Invalid UTF-8 is refused, as the endpoint refuses it, not sent as U+FFFD (red team 21j).
      try {
        resolve(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(parts)))
      } catch {
        reject(new UsageError('stdin is not valid UTF-8 (a file in another encoding? convert it: iconv -t UTF-8)'))
      }
    })
    process.stdin.once('error', reject)
  })
}

/**
 * Runs one client command; resolves with the exit code. `input` gives what
 * stdin holds (for `set KEY -`), or null when it is too long.
 */
export async function clientCommand(
  name: string,
  argv: string[],
  out: (s: string) => void,
  err: (s: string) => void,
  env: NodeJS.ProcessEnv = process.env,
  input: () => Promise<string | null> = readStdin,
): Promise<number> {
  let req: Request
  let node: { host: string; port: number }
  let token: string | undefined
  let timeout: number
  try {
    // A key (or value) starting with "-" reads as an option: say how to write it.
    for (let i = 0; i < argv.length && argv[i] !== '--'; i++) {
      const a = argv[i]
      if (!a.startsWith('-') || a === '-' || /^-\d|^-\.\d/.test(a)) continue
      const known = /^--([^=]+)/.exec(a)?.[1] ?? (a === '-h' ? 'help' : '')
      if (!Object.hasOwn(OPTIONS, known)) throw new UsageError(`unknown option ${a} (a KEY or value starting with "-" goes after "--": simple-scuttle ${name} -- ${a}${name === 'set' ? ' JSON' : ''})`)
      if (OPTIONS[known as keyof typeof OPTIONS].type === 'string' && !a.includes('=')) i++
    }
    let parsed
    try {
      parsed = parseArgs({ args: positionalNumbers(argv), options: OPTIONS, allowPositionals: true, strict: true })
    } catch (err) {
      const e = err as Error & { code?: string }
      if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${/'([^']+)'/.exec(e.message)?.[1]}`)
      throw new UsageError(e.message.split('\n')[0])
    }
    if (parsed.values.help === true) {
      out(clientUsage)
      return 0
    }
    const positionals = parsed.positionals
    // Node reads an argument's bytes that are not UTF-8 as U+FFFD: refused,
    // as the endpoint refuses such bytes (a U+FFFD meant is "\ufffd" in JSON).
    for (const [i, a] of positionals.entries()) {
      if (a.includes('\ufffd')) throw new UsageError(`the ${i === 0 ? 'key' : 'value'} holds U+FFFD, which is what bytes that are not UTF-8 read as: give it in UTF-8${i === 0 ? '' : ' (or write the character as "\\ufffd" in the JSON)'}`)
    }
    if (name === 'set' && positionals.length === 2 && positionals[1] === '-') {
      let text: string | null
      try {
        text = await input()
      } catch (e) {
        throw e instanceof UsageError ? new UsageError(`set ${positionals[0]} -: ${e.message}`) : e
      }
      if (text === null) throw new UsageError(`set ${positionals[0]} -: stdin holds more than ${MAX_STDIN} bytes, past any value (at most ${MAX_VALUE_LENGTH} characters of JSON)`)
      if (text.trim() === '') throw new UsageError(`set ${positionals[0]} -: no value on stdin: pipe or redirect a JSON value into it (set ${positionals[0]} - < value.json)`)
      positionals[1] = text
    }
    req = request(name, positionals)
    const at = parsed.values.node ?? env.SCUTTLE_NODE ?? `127.0.0.1:${DEFAULT_ADMIN_PORT}`
    try {
      node = parseAddress(at)
    } catch (e) {
      throw new UsageError(`--node: ${(e as Error).message}`)
    }
    const file = parsed.values['token-file']
    if (file !== undefined) {
      try {
        token = fs.readFileSync(file, 'utf8').trim()
      } catch (e) {
        throw new UsageError(`--token-file ${file}: cannot be read (${unreadable(e)}): name the file the node's --admin-token-file names, or give the token in SCUTTLE_ADMIN_TOKEN`)
      }
    } else token = env.SCUTTLE_ADMIN_TOKEN
    const t = parsed.values.timeout
    timeout = t === undefined ? 10_000 : Number(t)
    if (!(Number.isFinite(timeout) && timeout > 0)) throw new UsageError(`--timeout must be a positive number of milliseconds, not "${t}"`)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    err(`simple-scuttle ${name}: ${e.message}\nsee: simple-scuttle ${name} --help\n`)
    return 2
  }
  const where = `${node.host}:${node.port}`
  return new Promise<number>((resolve) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    const r = http.request({ host: node.host, port: node.port, method: req.method, path: req.path, headers, timeout }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (b: Buffer) => parts.push(b))
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8')
        let body: Record<string, unknown> | null = null
        try {
          body = JSON.parse(text) as Record<string, unknown>
        } catch {
          body = null
        }
        if (res.statusCode === 200 && body !== null) {
          out(`${JSON.stringify(body)}\n`)
          resolve(0)
          return
        }
        const why = body !== null && typeof body.error === 'string' ? body.error : `HTTP ${res.statusCode} ${text.slice(0, 400).trim()}`
        const code = body !== null && typeof body.code === 'string' ? ` [${body.code}]` : ''
        err(`simple-scuttle ${name}: node ${where} refused${code}: ${why}\n`)
        resolve(1)
      })
    })
    r.on('timeout', () => r.destroy(Object.assign(new Error(`no answer within ${timeout} ms`), { code: 'ETIMEDOUT' })))
    r.on('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ECONNREFUSED'
          ? 'connection refused (is the node running with --admin on that address?)'
          : e.code === 'ENOTFOUND'
            ? 'no such host'
            : e.message
      err(`simple-scuttle ${name}: cannot reach node ${where}: ${why}\n`)
      resolve(1)
    })
    r.end(req.body)
  })
}
