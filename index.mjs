// ESM entry: the package is compiled to CommonJS; this re-exports it by name.
import cjs from './dist/lib/index.js'

export const { Gossip, PeerStream, History, SourceLog, Clock, MAX_VERSION, RECORD_KEY, resolution, counter, base, Base, IdbStore, openIdbGossip, Membership, PhiAccrual, MEMBER_PREFIX, HEARTBEAT_PREFIX, isMembershipKey } = cjs
export const { serialize, parse, FORMATS, MAX_FRAME_LENGTH, websocketStream, gossipOver, joinNode, jsonProblem, MAX_LINE_LENGTH, MAX_DEPTH, MAX_VALUE_LENGTH, MAX_KEY_LENGTH, MAX_ID_LENGTH, Store, StoreDamagedError, openGossip, ed25519, generateKeyPair, signedBytes, startNode, ScuttleNode, DEFAULT_CLUSTER, DEFAULT_PORT, DEFAULT_ADMIN_PORT, StoreFailedError, TwinError, AdminServer, helloAuth, Session, SessionError, REFUSAL_CODES, proofBytes, MAX_FRAME_ITEMS } = cjs
export default cjs
