// ESM entry of simple-scuttle/idb in Node: the CommonJS build re-exported by name, so that
// import and require share one copy of each class. Browser bundles take dist/esm/
// (the `browser` export condition), which bundlers can tree-shake.
import cjs from './dist/lib/browser/index.js'

export const { IdbStore, openIdbGossip } = cjs
