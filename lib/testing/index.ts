/**
 * `simple-scuttle/testing`: property-based convergence tests of your own
 * policies and applications, for mocha, jest or node:test. Needs
 * fast-check (a peer dependency).
 *
 * - {@link checkPolicy}: the quick check of a `resolve` on its own (order
 *   independence, idempotence under duplicates, no side effects).
 * - {@link checkConvergence}: random schedules over in-process nodes
 *   running your configuration, healed and checked; a failure is shrunk
 *   and printed as a readable schedule that {@link replay} runs as is.
 * - {@link scheduleArbitrary} and {@link stepArbitrary}: the arbitraries
 *   behind it, to compose your own properties; {@link runSchedule} runs
 *   and checks one schedule; {@link describe} prints one.
 * - {@link Cluster} and {@link Model}: the harness and the reference model
 *   underneath, for tests that drive nodes step by step.
 *
 * See docs/testing.md.
 *
 * @packageDocumentation
 */
export { checkConvergence, ConvergenceError } from './check'
export type { ConvergenceOptions, ConvergenceReport } from './check'
export { checkPolicy, PolicyError, policyCaseArbitrary } from './policy'
export type { PolicyOptions, PolicyReport, PolicyCase, Delivery } from './policy'
export { runSchedule, replay, orderOf, ScheduleFailure, lehmer, dump } from './run'
export type { RunOptions, RunReport } from './run'
export {
  FULL,
  scheduleArbitrary,
  stepArbitrary,
  topologyArbitrary,
  smallIntegers,
  describe,
  describeStep,
  operationCount,
  scheduleToJSON,
  parseSchedule,
  checkSchedule,
} from './schedule'
export type { Schedule, Step, StepKind, ScheduleOptions, Names, ValueArbitrary } from './schedule'
export { Cluster, memory, storeObject, viewOf, entryOf } from './cluster'
export type { Persistence, Link, ClusterOptions } from './cluster'
export { Model, lwwOrder, lwwBeats, updateOf } from './model'
export type { Op, ModelOptions } from './model'
