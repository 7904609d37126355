/**
 * The `node` command with the command loop issue 23 asks for, for the
 * benchmarks only (bin/node.ts keeps its own loop until it is changed the
 * same way): every command starts as soon as its line is read (a `set`
 * applies at once and joins the store's next group commit), and answers
 * still go out in the order the commands came in, each `set` only once it
 * is durable; answers ready in the same turn leave in one write.
 *
 * Same arguments as `simple-scuttle node` (parsed by bin/node.ts).
 */
import * as readline from 'readline'
import { command, parseArgs } from '../bin/node'
import { resolution } from '../lib/base'
import { startNode } from '../lib/node/tcp'

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === 'node') argv.shift()
  const args = parseArgs(argv)
  const log = (line: string): void => void process.stderr.write(`[${args.id}] ${line}\n`)
  const node = await startNode({
    id: args.id,
    resolve: resolution.lww_vs_current_vers,
    listen: args.listen,
    connect: args.connect,
    cluster: args.cluster,
    data: args.data,
    interval: args.interval,
    mtu: args.mtu,
    membership: {},
    log,
  })
  let tail: Promise<void> = Promise.resolve()
  let out = ''
  let writing = false
  const emit = (text: string): void => {
    out += text
    if (writing) return
    writing = true
    setImmediate(() => {
      writing = false
      const chunk = out
      out = ''
      process.stdout.write(chunk)
    })
  }
  const input = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  input.on('line', (line) => {
    if (line.trim().length === 0) return
    // Started now; answered in order.
    const answer = command(node, line)
    tail = tail.then(async () => emit(`${JSON.stringify(await answer)}\n`))
  })
  const stop = (): void => {
    input.close()
    void tail.then(() => node.close()).then(() => process.exit(0))
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

void main()
