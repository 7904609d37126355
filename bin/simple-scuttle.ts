#!/usr/bin/env node
/**
 * The command-line entry point: `simple-scuttle <command> [options]`.
 */
import { demo } from './demo'
import { nodeCommand } from './node'
import { simulate } from './simulate'

const commands: Record<string, (args: string[]) => Promise<number>> = {
  demo: async () => ((await demo()) > 0 ? 0 : 1),
  node: (args) => nodeCommand(args),
  simulate: (args) => simulate(args),
}

async function main(argv: string[]): Promise<number> {
  const [name = 'demo', ...args] = argv
  const command = commands[name]
  if (command === undefined) {
    process.stderr.write(`unknown command "${name}"; commands: ${Object.keys(commands).join(', ')}\n`)
    return 2
  }
  return command(args)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    process.stderr.write(`${(err as Error)?.stack ?? String(err)}\n`)
    process.exitCode = 1
  },
)
