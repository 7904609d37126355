/**
 * The optional peer dependencies (better-sqlite3, ws, prom-client) are
 * loaded here, when a feature that needs one is first used, so that the
 * main entry and `simple-scuttle/node` install and load without them.
 *
 * @packageDocumentation
 */

/** The optional packages, and what each is for. */
export type OptionalPeer = 'better-sqlite3' | 'ws' | 'prom-client'

/** A feature was used whose optional package is not installed. */
export class MissingPeerError extends Error {
  /** `missing_peer`, for logs and answers. */
  readonly code = 'missing_peer'
  constructor(
    /** The package to install. */
    readonly peer: OptionalPeer,
    /** What needed it. */
    readonly feature: string,
    override readonly cause: Error,
  ) {
    super(`${feature} needs the package ${peer}, which is not installed: run npm install ${peer}`)
    this.name = 'MissingPeerError'
  }
}

/** The package `name`, required now; a {@link MissingPeerError} when it is not installed. */
export function loadPeer<T>(name: OptionalPeer, feature: string): T {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(name) as T
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    // Only the package itself missing; a failure inside it is its own.
    if (e.code === 'MODULE_NOT_FOUND' && e.message.startsWith(`Cannot find module '${name}'`)) throw new MissingPeerError(name, feature, e)
    throw err
  }
}
