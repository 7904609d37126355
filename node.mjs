// ESM entry of simple-scuttle/node in Node: the CommonJS build re-exported by name, so that
// import and require share one copy of each class.
import cjs from './dist/lib/node/index.js'

export const { ed25519, generateKeyPair, signedBytes, helloAuth, startNode, ScuttleNode, DEFAULT_CLUSTER, DEFAULT_PORT, DEFAULT_ADMIN_PORT, StoreFailedError, TwinError, AdminServer, MissingPeerError } = cjs
export const { CLOSE_CODES, ADMIN_CODES, FailureLimiter } = cjs
