#!/usr/bin/env node
/**
 * The command-line entry point: `simple-scuttle <command> [options]`.
 *
 * Exit codes: 0 done, 1 failed (said why on stderr in one line, without a
 * stack trace when it is the operator's to fix), 2 a bad command line (said
 * what is wrong, and where to read the usage).
 */
import * as fs from 'fs'
import * as path from 'path'
import { readArgs } from './args'
import { demo } from './demo'
import { nodeCommand } from './node'
import { CLIENT_COMMANDS, clientCommand } from './client'
import { simulate } from './simulate'

export const usage = `usage: simple-scuttle [--help] [--version] <command> [options]

commands:
  node       run one gossip node over TCP, driven by its admin endpoint
             (--admin) or commands on stdin (simple-scuttle node --help)
  get KEY, set KEY JSON, del KEY, members, status, peers, state
             ask a running node through its admin endpoint
             (--node HOST:PORT; simple-scuttle get --help)
  simulate   the paper's experiment on real Gossip streams
             (simple-scuttle simulate --help)
  demo       six nodes in a ring, in this process, until they agree
             (the default command)
  help       this text

options:
  -h, --help      this text
  -v, --version   the version
`

const commands: Record<string, (args: string[]) => Promise<number>> = {
  demo: async () => ((await demo()) > 0 ? 0 : 1),
  node: (args) => nodeCommand(args),
  simulate: (args) => simulate(args),
}

/** This package's version, from its package.json. */
export function version(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json')
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'simple-scuttle') return String(pkg.version)
    }
    if (path.dirname(dir) === dir) return 'unknown'
  }
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s)): Promise<number> {
  // Options before the command are the entry point's; the rest the command's.
  const at = argv.findIndex((a) => !a.startsWith('-'))
  const own = at < 0 ? argv : argv.slice(0, at)
  const [name = 'demo', ...args] = at < 0 ? [] : argv.slice(at)
  let flags: { help?: boolean; version?: boolean }
  try {
    flags = readArgs(own, { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } })
  } catch (err) {
    process.stderr.write(`simple-scuttle: ${(err as Error).message}\nsee: simple-scuttle --help\n`)
    return 2
  }
  if (flags.help === true || name === 'help') {
    out(usage)
    return 0
  }
  if (flags.version === true) {
    out(`${version()}\n`)
    return 0
  }
  if (name in CLIENT_COMMANDS) return clientCommand(name, args, out, (s) => process.stderr.write(s))
  const command = commands[name]
  if (command === undefined) {
    process.stderr.write(`simple-scuttle: unknown command "${name}"\nsee: simple-scuttle --help\n`)
    return 2
  }
  return command(args)
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      // A defect, not the operator's doing: the stack helps whoever fixes it.
      process.stderr.write(`simple-scuttle: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
      process.exitCode = 1
    },
  )
}
