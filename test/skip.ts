/**
 * Skip the running test (or a `before` hook's tests), saying why in the
 * output: mocha prints no reason of its own, and a skip without one reads
 * as a pass.
 */
export function skip(ctx: Mocha.Context, reason: string): never {
  console.log(`      skipped: ${reason}`)
  ctx.skip()
}

/** Why the Chromium tests skip, and how to run them. */
export const NO_CHROMIUM = (path: string): string =>
  `${path} not found; these tests drive Debian's Chromium (install it with: apt-get install -y chromium; .ci/run does)`
