/**
 * Command lines read with `node:util`'s `parseArgs`, its errors said the
 * short way ("unknown option --x", "--id needs a value").
 */
import { parseArgs, type ParseArgsConfig } from 'util'

/** A mistake on the command line: exit 2, said in one line with a pointer to --help. */
export class UsageError extends Error {
  /** `usage`, for whoever reads codes rather than text. */
  readonly code = 'usage'

  /** @param flag the long flag (without `--`) the mistake is about, if one: so a caller can say where it was set. */
  constructor(
    message: string,
    readonly flag?: string,
  ) {
    super(message)
  }
}

type Options = NonNullable<ParseArgsConfig['options']>

/**
 * `parseArgs` in strict mode without positionals.
 * @throws UsageError for an unknown option, a missing value or a positional.
 */
export function readArgs<O extends Options>(args: readonly string[], options: O): ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'] {
  // A negative number after a flag that takes a value is that value (its
  // check then says what is wrong with it), not an unknown option.
  const joined: string[] = []
  for (let i = 0; i < args.length; i++) {
    const name = /^--([^=]+)$/.exec(args[i])?.[1]
    if (name !== undefined && options[name]?.type === 'string' && i + 1 < args.length && /^-\d/.test(args[i + 1])) {
      joined.push(`${args[i]}=${args[i + 1]}`)
      i++
    } else joined.push(args[i])
  }
  try {
    const { values, tokens } = parseArgs({ args: joined, options, strict: true, allowPositionals: false, tokens: true })
    // A flag that takes one value, given twice: the first would be dropped without a word.
    const seen = new Map<string, string | undefined>()
    for (const t of tokens) {
      if (t.kind !== 'option' || options[t.name]?.type !== 'string' || options[t.name]?.multiple === true) continue
      if (seen.has(t.name)) throw new UsageError(`--${t.name} given twice (${JSON.stringify(seen.get(t.name))}, then ${JSON.stringify(t.value)}): it takes one value`, t.name)
      seen.set(t.name, t.value)
    }
    return values
  } catch (err) {
    if (err instanceof UsageError) throw err
    const e = err as Error & { code?: string }
    const quoted = /'([^']+)'/.exec(e.message)?.[1] ?? ''
    switch (e.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
        throw new UsageError(`unknown option ${quoted}`)
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
        if (/does not take an argument/.test(e.message)) throw new UsageError(`${quoted} takes no value`, flagOf(quoted))
        throw new UsageError(`${quoted.split(' ')[0]} needs a value`, flagOf(quoted))
      case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
        throw new UsageError(`unexpected argument ${quoted}`)
      default:
        throw new UsageError(e.message)
    }
  }
}

// The long flag parseArgs quoted ("--port <value>", "-p, --port"), without its dashes.
function flagOf(quoted: string): string | undefined {
  return /--([^\s=]+)/.exec(quoted)?.[1]
}

/** Why a file could not be read, in words (an errno code alone tells an operator little). */
export function unreadable(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  switch (e.code) {
    case 'ENOENT':
      return 'no such file'
    case 'EACCES':
    case 'EPERM':
      return `permission denied (user ${process.getuid?.() ?? '?'} cannot read it)`
    case 'EISDIR':
      return 'a directory, not a file'
    case 'ENOTDIR':
      return 'a part of the path is a file'
    case 'ELOOP':
      return 'too many symbolic links (a loop?)'
    default:
      return e.message.replace(/[\r\n]+/g, ' ')
  }
}
