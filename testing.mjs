// ESM entry of simple-scuttle/testing: the package is compiled to CommonJS; this re-exports it by name.
import cjs from './dist/lib/testing/index.js'

export const { FULL, checkConvergence, ConvergenceError, checkPolicy, PolicyError, policyCaseArbitrary, runSchedule, replay, orderOf, ScheduleFailure, lehmer, dump, scheduleArbitrary, stepArbitrary, topologyArbitrary, smallIntegers, describe, describeStep, operationCount, scheduleToJSON, parseSchedule, checkSchedule, Cluster, memory, storeObject, viewOf, entryOf, Model, lwwOrder, lwwBeats, updateOf } = cjs
export default cjs
