/**
 * The core's failures that simple-scuttle/testing found, each kept with its
 * schedule in test/fixtures/testing-known-failures.json: the fixed ones
 * must stay fixed, and any still failing fails as recorded.
 */
import * as assert from 'assert'
import * as fs from 'fs'
import * as path from 'path'
import { base } from '../../lib'
import { ScheduleFailure, parseSchedule, replay, type Schedule } from '../../lib/testing'
import { ROOT } from '../consumer'
import { rejects } from '../rejects'

const { lww_vs_current_vers } = base.resolution

describe("the core's failures simple-scuttle/testing found (docs/testing.md, 'Known failures')", function () {
  this.timeout(120_000)

  // `fails`: still fails, as recorded (once it passes, it was fixed: drop
  // `fails`); without: fixed, and must stay so.
  const known = JSON.parse(fs.readFileSync(path.join(ROOT, 'test', 'fixtures', 'testing-known-failures.json'), 'utf8')) as {
    why: string
    fails?: string
    digestPart?: number
    schedule: Schedule
  }[]
  for (const k of known) {
    it(k.why, async () => {
      const run = replay({ resolve: lww_vs_current_vers, digest_part: k.digestPart }, parseSchedule(JSON.stringify(k.schedule)))
      if (k.fails === undefined) return await run
      const err = await rejects(run, ScheduleFailure)
      assert.match(`${err.when}: ${err.problems.join('\n')}`, new RegExp(k.fails))
    })
  }
})
