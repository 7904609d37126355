// ESM entry of simple-scuttle/sqlite in Node: the CommonJS build re-exported by name, so that
// import and require share one copy of each class.
import cjs from './dist/lib/node/sqlite.js'

export const { Store, StoreDamagedError, StoreError, openGossip, MissingPeerError } = cjs
