// ESM entry of simple-scuttle in Node: the CommonJS build re-exported by name, so that
// import and require share one copy of each class. Browser bundles take dist/esm/
// (the `browser` export condition), which bundlers can tree-shake.
import cjs from './dist/lib/index.js'

export const { Gossip, PeerStream, History, SourceLog, Clock, MAX_VERSION, RECORD_KEY, resolution, counter, Membership, PhiAccrual, MEMBER_PREFIX, HEARTBEAT_PREFIX, isMembershipKey, jsonProblem, MAX_DEPTH, MAX_VALUE_LENGTH, MAX_KEY_LENGTH, MAX_ID_LENGTH, serialize, parse, FORMATS, MAX_LINE_LENGTH, MAX_FRAME_LENGTH, websocketStream, gossipOver, joinNode, Session, SessionError, REFUSAL_CODES, proofBytes, MAX_FRAME_ITEMS, base, Base } = cjs
export const { INVALID_CODES } = cjs
export default cjs
