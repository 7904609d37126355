/** Test helper: awaits `p` and returns the error it rejects with, failing unless it is a `type`. */
import * as assert from 'assert'

export async function rejects<E extends Error>(p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await p
  } catch (err) {
    if (err instanceof type) return err
    throw err
  }
  assert.fail(`expected ${type.name}`)
}
