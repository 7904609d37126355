/**
 * One session between two peers, whatever carries its bytes (a TCP socket,
 * a WebSocket, in a browser or in Node): the hello, its authentication, the
 * choice of wire format, the limits on what the peer may send, and the
 * gate that counts a peer's floods and digests (`gate.ts`). The TCP node,
 * its WebSocket server and `joinNode` all open their connections through
 * it, with the same limits.
 *
 * Each end first writes one line of JSON, its hello:
 *
 * ```text
 * {"hello":"simple-scuttle","id":"a","codecs":["binary","ndjson"],"cluster":"c","nonce":"…","started":1700000000000}
 * ```
 *
 * An end whose hello carries a `nonce` then writes two more lines: once the
 * other's hello is in, `{"accept":true}` (with `"proof"`, see below, when it
 * has a key); once the other's accept is in (and its proof checked),
 * `{"open":true}`. Either may be `{"refused":CODE,"reason":TEXT}` instead,
 * after which it closes. The end's own policy (twins, see `admit`) is asked
 * only after the proof, so that no unauthenticated claim moves it. Gossip,
 * in the format the hellos agree on (see `handshake.ts`), follows the open
 * lines. A hello without `nonce` (a node before sessions) gets no further
 * line, and is refused where hellos must be authenticated.
 *
 * Authentication (`auth`, the node's `--keys`): each end signs `[its id,
 * its nonce, the other's nonce, cluster]` with its Ed25519 key; the other
 * checks the signature with the key it holds for that id. A peer without a
 * key, or whose proof fails, is refused: after the hello the session knows
 * its peer's id (`peerId`, `authenticated`). Fresh nonces on both sides
 * keep a proof from being replayed into another session. (It does not bind
 * the bytes that follow to the two ends, as TLS would: a relay that passes
 * bytes unchanged between two members can only drop them, and every update
 * it could inject is signed by its source.)
 *
 * Every refusal has a {@link RefusalCode}, which logs, metrics and tests
 * read; its text is for people.
 *
 * @packageDocumentation
 */
import { EventEmitter } from 'events'
import { Transform, type Duplex } from 'readable-stream'
import { reportInvalid, type InvalidCode } from '../codes'
import type { Gossip, PeerStream } from '../gossip'
import { badName, PROTOCOL } from '../shape'
import { parse, serialize, type Format } from './codec'
import { Gate, limitsFor, type GateObserver, type Limits } from './gate'
import { chooseFormat, codecsOf, type Hello } from './handshake'

/** Why a session was refused, by either end. */
export type RefusalCode =
  /** The connection did not start with a hello line. */
  | 'no_hello'
  /** A hello with a bad id, codecs or cluster name. */
  | 'bad_hello'
  /** The peer is of another cluster. */
  | 'other_cluster'
  /** The peer is this node (a dial to its own address). */
  | 'self'
  /** Another live node says it has this id. */
  | 'twin'
  /** A handover (`handover: true`) from a node this end did not refuse as a twin. */
  | 'handover'
  /** No wire format in common. */
  | 'no_codec'
  /** Hellos must be authenticated, and the peer's was not (no key, or an older node). */
  | 'unauthenticated'
  /** The peer's proof does not verify with the key held for its id. */
  | 'bad_proof'
  /** No hello, or no second line, within the time allowed. */
  | 'timeout'
  /** Past the connection limit, no slot could be freed. */
  | 'full'
  /** A browser's WebSocket from an origin neither this host nor allowed (`wsOrigins`). */
  | 'origin'
  /** The other end refused this one (its code is in `peerCode`). */
  | 'refused_by_peer'
  /** The peer speaks an older protocol (its hello says none, or a lower one): docs/wire.md, "Protocol". */
  | 'old_protocol'

/** Why a peer's input was refused after the hello (see `lib/codes.ts`). */
export type InputCode = InvalidCode

/** Every code a refusal may carry (the metrics' labels). */
export const REFUSAL_CODES: readonly RefusalCode[] = [
  'no_hello',
  'bad_hello',
  'other_cluster',
  'self',
  'twin',
  'handover',
  'no_codec',
  'unauthenticated',
  'bad_proof',
  'timeout',
  'full',
  'origin',
  'refused_by_peer',
  'old_protocol',
]

// Sentinels of Session.nextLine.
const TOO_LONG: unique symbol = Symbol('too long')
const NOT_JSON: unique symbol = Symbol('not JSON')

/** A session refused, by this end or the other: `code` says why. */
export class SessionError extends Error {
  /** The other end's code, when it refused (`code` is then `'refused_by_peer'`). */
  peerCode?: string
  /** With `twin`: the other twin's advertised address and start time, when the peer knows them. */
  twinAddress?: string
  twinStarted?: number
  /** With `twin`: the highest version of the id the peer holds (evidence that another node writes as it). */
  twinHolds?: number
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message)
    this.name = 'SessionError'
  }
}

/** Signs and checks hello proofs (the node's `--keys`; see `helloAuth` in `lib/node/security.ts`). */
export interface HelloAuth {
  /** A signature (base64) of `bytes` by this end's key. */
  sign(bytes: Uint8Array): string
  /** Whether `signature` is `id`'s over `bytes` (false for an id without a key). */
  verify(id: string, bytes: Uint8Array, signature: string): boolean
}

/** The bytes a hello proof signs. */
export function proofBytes(id: string, ownNonce: string, peerNonce: string, cluster: string): Uint8Array {
  return new TextEncoder().encode(`simple-scuttle/hello/1\n${JSON.stringify([id, ownNonce, peerNonce, cluster])}`)
}

/** A peer's hello as the session read it. */
export interface PeerHello extends Hello {
  readonly nonce?: string
  readonly started?: number
  readonly address?: string
  /** The peer hands writes over rather than gossips (see SessionOptions.handover). */
  readonly handover?: boolean
  /** Its heartbeats' interval, ms, if it runs membership (see SessionOptions.beats). */
  readonly beats?: number
}

/** Options of a {@link Session}. */
export interface SessionOptions {
  /** The cluster this end is of. */
  cluster: string
  /** Wire formats this end speaks, preferred first. */
  codecs: readonly Format[]
  /** When this end started, ms since the epoch (said in the hello: twins compare it). */
  started?: number
  /** The address this end advertises (said in the hello: a twin is told where its elder is). */
  address?: string
  /**
   * This end's heartbeat interval, ms, if it runs membership (said in the
   * hello: a live node with its id shows a write of it that often, so a
   * link claiming the id that shows none keeps no slot; docs/twins.md).
   */
  beats?: number
  /** Sign and check proofs: hellos must then be authenticated. */
  auth?: HelloAuth
  /** 16 random bytes, base64 (the session's nonce). Default: Web Crypto. */
  nonce?: () => string
  /** Longest NDJSON line, and binary frame, accepted. Defaults: the codec's. */
  maxLineLength?: number
  maxFrameLength?: number
  /**
   * Checks the end's own policy on a peer's hello (twins, limits): a
   * refusal, or null to accept. Called after the session's own checks. A
   * promise holds the session (its open line unsaid, what the peer sends
   * meanwhile kept) until it settles; only hellos with a nonce may wait.
   */
  admit?: (hello: PeerHello) => SessionError | null | Promise<SessionError | null>
  /** The limits on what the peer sends (see `gate.ts`). Default: `limitsFor` the node's mtu, a 1 s interval. */
  limits?: Limits
  /** What the owner hears of the peer's digests and updates as they pass the gate. */
  observer?: GateObserver
  /** Between the gossip stream and the serializer (a durable store's barrier). */
  barrier?: Transform
  /** Create the gossip stream with these (default: no local writes from the peer). */
  local_writes?: boolean
  /**
   * Say hello to hand writes over rather than to gossip (a node refused as
   * a twin, docs/operations.md "Twins"): once open, no gossip flows either
   * way; each end emits `'message'` for every JSON line the other sends
   * (with {@link Session.send}). A peer's hello with `handover: true` opens
   * such a session too, if its owner's `admit` lets it.
   */
  handover?: boolean
  /**
   * An accepting end's answer to an HTTP request (a browser or curl
   * pointed at the peer port): with it, this end says its hello once the
   * peer's first bytes are read (every dialing end speaks first), or after
   * HELLO_WAIT ms of silence, so that a first line `GET /path HTTP/1.1` is
   * answered `400` with this line, in HTTP, and refused (`no_hello`).
   */
  httpAnswer?: string
}

const HELLO_LINE_MAX = 4096

// How long an end with httpAnswer waits for the peer's first bytes before saying its hello.
const HELLO_WAIT = 200

// An HTTP request line (RFC 9112 3): method, target, version.
const HTTP_REQUEST = /^([A-Z]{1,20}) \S+ HTTP\/\d(\.\d)?\r?$/

function webNonce(): string {
  const c = (globalThis as { crypto?: { getRandomValues(a: Uint8Array): Uint8Array } }).crypto
  const b = new Uint8Array(16)
  if (c !== undefined) c.getRandomValues(b)
  // Without Web Crypto (Node 18) a nonce only tells sessions apart: proofs
  // need one nobody can guess, and the node passes node:crypto's.
  else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256)
  let s = ''
  for (const x of b) s += String.fromCharCode(x)
  return btoa(s)
}

/**
 * @internal Control characters, and the invisible ones that reorder or
 * hide text (bidi overrides, zero-width marks): none belongs in an id, a
 * cluster name or a log line.
 */
export const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u
const MAX_CLUSTER_LENGTH = 128

/** Why a cluster name is refused, or null. */
export function badCluster(name: unknown): string | null {
  if (typeof name !== 'string') return 'it is not a string'
  if (name.length === 0) return 'it is empty'
  if (name.length > MAX_CLUSTER_LENGTH) return `it is longer than ${MAX_CLUSTER_LENGTH} characters`
  if (CONTROL.test(name)) return 'it holds control characters'
  if (!/^(?:[^\ud800-\udfff]|[\ud800-\udbff][\udc00-\udfff])*$/.test(name)) return 'it holds an unpaired surrogate'
  return null
}

/** Why a peer's id is refused, or null. */
export function badPeerId(id: unknown): string | null {
  const bad = badName('id', id)
  if (bad !== null) return bad
  if (CONTROL.test(id as string)) return 'it holds control characters'
  return null
}

/**
 * One peer's session. Emits `'open'` () once both hellos (and proofs) are
 * in and gossip flows, `'refused'` (err: SessionError) when either end
 * refused the session, `'invalid'` (what, reason, code) for input the codec
 * or the gossip stream refused after it opened, and `'exceeded'` (code,
 * reason) when the peer passed a limit of the gate (code `'flood'`). The
 * owner ends the transport when it is refused or exceeded a limit.
 */
export class Session extends EventEmitter {
  /** The peer's id, once its hello is in (authenticated when `authenticated`). */
  peerId: string | null = null
  /** The peer proved its id with its key. */
  authenticated = false
  /** The peer's hello, once in. */
  peerHello: PeerHello | null = null
  /** The formats each way, once open. */
  writing: Format | null = null
  reading: Format | null = null
  /** The gossip stream of this peer (made at once; it flows once open). */
  readonly stream: PeerStream
  /** This end's nonce. */
  readonly nonce: string
  /** The limits the peer's messages meet (see `gate.ts`). */
  readonly gate: Gate
  // Which line of the peer's is awaited: its hello, its accept, its open;
  // then gossip flows.
  // While 'admitting', the end's policy is still deciding (see admit).
  private state: 'hello' | 'verdict' | 'admitting' | 'opening' | 'open' | 'handover' | 'closed' = 'hello'
  private head: Uint8Array[] = []
  private headLength = 0
  private readonly input: Transform
  // This end's hello while unsaid (see SessionOptions.httpAnswer), and the wait for the peer's first bytes.
  private unsaid: string | null = null
  private helloTimer: ReturnType<typeof setTimeout> | null = null

  constructor(
    readonly gossip: Gossip,
    readonly transport: Duplex,
    readonly options: SessionOptions,
  ) {
    super()
    if (options.auth !== undefined && options.nonce === undefined && (globalThis as { crypto?: unknown }).crypto === undefined) {
      throw new TypeError('hello proofs need unguessable nonces: pass SessionOptions.nonce (no Web Crypto here)')
    }
    this.nonce = (options.nonce ?? webNonce)()
    this.stream = gossip.createStream({ local_writes: options.local_writes ?? false })
    this.gate = new Gate(options.limits ?? limitsFor(gossip.mtu, 1000), options.observer ?? {}, (reason) => this.emit('exceeded', 'flood', reason))
    this.stream.exchange.admit = this.gate.admit
    const hello: Record<string, unknown> = { hello: 'simple-scuttle', id: gossip.id, codecs: options.codecs, cluster: options.cluster, nonce: this.nonce, protocol: PROTOCOL }
    if (options.started !== undefined) hello.started = options.started
    if (options.address !== undefined) hello.address = options.address
    if (options.handover === true) hello.handover = true
    if (options.beats !== undefined) hello.beats = options.beats
    if (options.httpAnswer === undefined) transport.write(`${JSON.stringify(hello)}\n`)
    else {
      this.unsaid = `${JSON.stringify(hello)}\n`
      this.helloTimer = setTimeout(() => this.sayHello(), HELLO_WAIT)
      ;(this.helloTimer as { unref?: () => void }).unref?.()
    }
    const session = this
    // Takes the hello lines off the front of the connection, then passes bytes.
    this.input = new Transform({
      transform(chunk: Uint8Array | string, _encoding, callback) {
        session.take(typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk)
        callback()
      },
    })
    ;(transport as Duplex).pipe(this.input)
  }

  private take(bytes: Uint8Array): void {
    if (this.state === 'admitting') {
      this.keep(bytes)
      return
    }
    // A hello (JSON) starts with "{"; an HTTP request with its method, in capitals: its first line decides.
    if (this.unsaid !== null && this.headLength === 0 && bytes.length > 0 && !(bytes[0] >= 65 && bytes[0] <= 90)) this.sayHello()
    else if (this.helloTimer !== null) {
      clearTimeout(this.helloTimer)
      this.helloTimer = null
    }
    while (bytes.length > 0 && (this.state === 'hello' || this.state === 'verdict' || this.state === 'opening')) {
      const line = this.nextLine(bytes, HELLO_LINE_MAX)
      if (line === TOO_LONG) {
        this.refuse(new SessionError('no_hello', `no ${this.state === 'hello' ? 'hello' : this.state === 'verdict' ? 'accept' : 'open'} line within ${HELLO_LINE_MAX} bytes`))
        return
      }
      if (line === null) return
      if (this.unsaid !== null) {
        const http = line.text === null ? null : HTTP_REQUEST.exec(line.text)
        if (http !== null) {
          this.answerHttp(http[1])
          return
        }
        this.sayHello()
      }
      bytes = line.rest
      const o = line.value
      if (o === NOT_JSON) {
        this.refuse(new SessionError('no_hello', this.state === 'hello' ? 'did not start with a hello' : `no ${this.state === 'verdict' ? 'accept' : 'open'} line after the hello`))
        return
      }
      if (this.state === 'hello') this.onHello(o)
      else if (this.state === 'verdict') this.onVerdict(o)
      else this.onOpen(o)
    }
    if (this.state === 'open') {
      if (bytes.length > 0) this.input.push(bytes)
    } else if (this.state === 'handover') {
      this.handoverLines(bytes)
    } else if (bytes.length > 0 && this.state !== 'closed') this.keep(bytes)
  }

  // Say this end's hello, if it waited (see SessionOptions.httpAnswer).
  private sayHello(): void {
    if (this.helloTimer !== null) clearTimeout(this.helloTimer)
    this.helloTimer = null
    const hello = this.unsaid
    this.unsaid = null
    if (hello === null || this.state === 'closed') return
    try {
      this.transport.write(hello)
    } catch {
      // The transport is gone: the owner hears of it.
    }
  }

  // An HTTP request on a peer port: answered in HTTP, in one line, and refused.
  private answerHttp(method: string): void {
    const answer = this.options.httpAnswer as string
    this.unsaid = null
    const body = `${answer}\n`
    try {
      this.transport.write(`HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${new TextEncoder().encode(body).length}\r\nconnection: close\r\n\r\n${body}`)
    } catch {
      // The transport is gone: nothing to tell.
    }
    this.close(new SessionError('no_hello', `an HTTP request (${method}) on the peer port: ${answer}`), true)
  }

  // While the policy decides (see admit), what the peer sends is kept: at most its open line.
  private keep(bytes: Uint8Array): void {
    if (this.headLength + bytes.length > HELLO_LINE_MAX) {
      this.refuse(new SessionError('no_hello', `more than ${HELLO_LINE_MAX} bytes before this end's open line`))
      return
    }
    this.head.push(bytes.slice())
    this.headLength += bytes.length
  }

  // The nonce of a hello being checked: its peer speaks sessions, and is told a refusal.
  private heardNonce: string | undefined = undefined

  // The next line of `bytes`, its JSON read (NOT_JSON if it is not), its
  // text (null if not UTF-8), and what follows it; null while the line is
  // incomplete (kept in head); TOO_LONG once it passes `max` bytes.
  private nextLine(bytes: Uint8Array, max: number): { value: unknown; text: string | null; rest: Uint8Array } | null | typeof TOO_LONG {
    const nl = bytes.indexOf(10)
    if (this.headLength + (nl < 0 ? bytes.length : nl) > max) return TOO_LONG
    if (nl < 0) {
      this.head.push(bytes.slice())
      this.headLength += bytes.length
      return null
    }
    this.head.push(bytes.subarray(0, nl))
    const line = this.joinHead()
    let value: unknown = NOT_JSON
    let text: string | null = null
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(line)
      value = JSON.parse(text)
    } catch {
      value = NOT_JSON
    }
    return { value, text, rest: bytes.subarray(nl + 1) }
  }

  private joinHead(): Uint8Array {
    const line = new Uint8Array(this.head.reduce((n, h) => n + h.length, 0))
    let at = 0
    for (const h of this.head) {
      line.set(h, at)
      at += h.length
    }
    this.head = []
    this.headLength = 0
    return line
  }

  private onHello(o: unknown): void {
    const h = o as PeerHello
    if (typeof o === 'object' && o !== null && typeof h.nonce === 'string') this.heardNonce = h.nonce
    if (typeof o !== 'object' || o === null || h.hello !== 'simple-scuttle' || typeof h.id !== 'string') {
      this.refuse(new SessionError('no_hello', 'did not start with a hello'))
      return
    }
    const codecs = h.codecs
    if (codecs !== undefined && !(Array.isArray(codecs) && codecs.length <= 16 && codecs.every((c) => typeof c === 'string'))) {
      this.refuse(new SessionError('bad_hello', 'hello with bad codecs'))
      return
    }
    if (h.nonce !== undefined && (typeof h.nonce !== 'string' || h.nonce.length < 16 || h.nonce.length > 64)) {
      this.refuse(new SessionError('bad_hello', 'hello with a bad nonce'))
      return
    }
    if (h.started !== undefined && !(typeof h.started === 'number' && Number.isSafeInteger(h.started) && h.started >= 0)) {
      this.refuse(new SessionError('bad_hello', 'hello with a bad start time'))
      return
    }
    if (h.address !== undefined && !(typeof h.address === 'string' && h.address.length <= 300 && !CONTROL.test(h.address))) {
      this.refuse(new SessionError('bad_hello', 'hello with a bad address'))
      return
    }
    if (h.beats !== undefined && !(typeof h.beats === 'number' && Number.isSafeInteger(h.beats) && h.beats > 0 && h.beats <= 3_600_000)) {
      this.refuse(new SessionError('bad_hello', 'hello with a bad heartbeat interval'))
      return
    }
    if (h.handover !== undefined && h.handover !== true) {
      this.refuse(new SessionError('bad_hello', 'hello with a bad handover flag'))
      return
    }
    const badId = badPeerId(h.id)
    if (badId !== null) {
      this.refuse(new SessionError('bad_hello', `hello with a bad id: ${badId}`))
      return
    }
    this.peerHello = h
    this.peerId = h.id
    // An older release drops a copy's `first` and would split replicas for
    // good (issue 18): mixing releases is refused, loudly.
    if (!(typeof h.protocol === 'number' && h.protocol >= PROTOCOL)) {
      this.refuse(new SessionError('old_protocol', `peer ${h.id} speaks protocol ${typeof h.protocol === 'number' ? h.protocol : 1}, older than this release's ${PROTOCOL}: refused (upgrade every node of the cluster together)`))
      return
    }
    const cluster = h.cluster ?? 'default'
    const badC = badCluster(cluster)
    if (badC !== null) {
      this.refuse(new SessionError('bad_hello', `hello with a bad cluster name: ${badC}`))
      return
    }
    if (cluster !== this.options.cluster) {
      this.refuse(
        new SessionError(
          'other_cluster',
          `peer ${h.id} is of cluster ${JSON.stringify(cluster)}, this node of ${JSON.stringify(this.options.cluster)}: refused, ` +
            'so that the two clusters do not merge (if they are one, give both the same --cluster)',
        ),
      )
      return
    }
    if (h.id === this.gossip.id && h.nonce === this.nonce) {
      this.refuse(new SessionError('self', 'connected to itself'))
      return
    }
    if (this.options.auth !== undefined && h.nonce === undefined) {
      this.refuse(new SessionError('unauthenticated', `peer ${h.id} did not authenticate its hello (no key, or a node before sessions): refused, since this node checks keys`))
      return
    }
    const theirs = codecsOf(h)
    this.writing = chooseFormat(this.options.codecs, theirs)
    this.reading = chooseFormat(theirs, this.options.codecs)
    if (this.writing === null || this.reading === null) {
      this.refuse(new SessionError('no_codec', `no wire format in common (ours: ${this.options.codecs.join(', ')}; theirs: ${theirs.join(', ')})`))
      return
    }
    if (h.nonce === undefined) {
      // A node before sessions: no further lines either way.
      const policy = this.options.admit?.(h) ?? null
      if (policy instanceof Promise) throw new TypeError('admit may not wait on a hello without a nonce')
      if (policy === null) this.open()
      else this.refuse(policy)
      return
    }
    const verdict: Record<string, unknown> = { accept: true }
    if (this.options.auth !== undefined) verdict.proof = this.options.auth.sign(proofBytes(this.gossip.id, this.nonce, h.nonce, this.options.cluster))
    this.transport.write(`${JSON.stringify(verdict)}\n`)
    this.state = 'verdict'
  }

  private onVerdict(o: unknown): void {
    const v = o as { accept?: unknown; proof?: unknown; refused?: unknown; reason?: unknown; twin?: unknown }
    const h = this.peerHello as PeerHello
    if (typeof o !== 'object' || o === null) {
      this.refuse(new SessionError('no_hello', 'no accept line after the hello'))
      return
    }
    if (typeof v.refused === 'string') {
      this.refusedByPeer(v)
      return
    }
    if (v.accept !== true) {
      this.refuse(new SessionError('no_hello', 'no accept line after the hello'))
      return
    }
    const auth = this.options.auth
    if (auth !== undefined) {
      if (typeof v.proof !== 'string' || v.proof.length > 200) {
        this.refuse(new SessionError('unauthenticated', `peer ${h.id} sent no proof of its id: refused, since this node checks keys`))
        return
      }
      let ok = false
      try {
        ok = auth.verify(h.id, proofBytes(h.id, h.nonce as string, this.nonce, this.options.cluster), v.proof)
      } catch {
        ok = false
      }
      if (!ok) {
        this.refuse(new SessionError('bad_proof', `peer ${h.id}'s proof does not verify with the key held for ${h.id} (no key for it in the keys directory, or another key)`))
        return
      }
      this.authenticated = true
      // What a peer signs on this stream is now taken only from that peer,
      // and only such a stream may serve a refetch (docs/deletes.md, rule 6).
      this.stream.authenticate(h.id as string)
    }
    const policy = this.options.admit?.(h) ?? null
    if (!(policy instanceof Promise)) {
      this.admitted(policy)
      return
    }
    this.state = 'admitting'
    policy.then(
      (p) => {
        if (this.state !== 'admitting') return
        this.state = 'verdict'
        this.admitted(p)
        // What the peer sent meanwhile (its open line) is read now.
        const kept = this.head.length === 0 ? null : this.joinHead()
        if (kept !== null) this.take(kept)
      },
      (err: unknown) => this.refuse(new SessionError('no_hello', `admission failed: ${(err as Error)?.message}`)),
    )
  }

  // The end's own policy decided: open, or refuse.
  private admitted(policy: SessionError | null): void {
    if (policy !== null) {
      this.refuse(policy)
      return
    }
    this.transport.write(`${JSON.stringify({ open: true })}\n`)
    this.state = 'opening'
  }

  private onOpen(o: unknown): void {
    const v = o as { open?: unknown; refused?: unknown }
    if (typeof o === 'object' && o !== null && typeof v.refused === 'string') {
      this.refusedByPeer(v as Record<string, unknown>)
      return
    }
    if (typeof o !== 'object' || o === null || v.open !== true) {
      this.refuse(new SessionError('no_hello', 'no open line after the accept'))
      return
    }
    this.open()
  }

  private refusedByPeer(v: Record<string, unknown>): void {
    const h = this.peerHello as PeerHello
    const code = String(v.refused).slice(0, 40)
    const err = new SessionError('refused_by_peer', `peer ${h.id} refused this node: ${String(v.reason ?? code).slice(0, 300)}`)
    err.peerCode = code
    if (typeof v.twin === 'string' && v.twin.length <= 300) err.twinAddress = v.twin
    if (typeof v.started === 'number' && Number.isSafeInteger(v.started)) err.twinStarted = v.started
    if (typeof v.holds === 'number' && Number.isSafeInteger(v.holds)) err.twinHolds = v.holds
    this.close(err, false)
  }

  private open(): void {
    if (this.options.handover === true || this.peerHello?.handover === true) {
      this.state = 'handover'
      this.emit('handover')
      return
    }
    this.state = 'open'
    const o = this.options
    const out = serialize({ format: this.writing as Format })
    const input = parse({ format: this.reading as Format, maxLineLength: o.maxLineLength, maxFrameLength: o.maxFrameLength })
    const invalid = (what: unknown, reason: string, code: InvalidCode) => reportInvalid(this, what, reason, code)
    input.on('invalid', invalid)
    out.on('invalid', invalid)
    this.stream.on('invalid', invalid)
    if (o.barrier === undefined) this.stream.pipe(out).pipe(this.transport)
    else this.stream.pipe(o.barrier).pipe(out).pipe(this.transport)
    this.input.pipe(input).pipe(this.stream)
    this.emit('open')
  }

  /**
   * Refuse the session with `err`: the peer is told why (when it speaks
   * sessions), and `'refused'` is emitted. The owner ends the transport.
   */
  refuse(err: SessionError, extra?: Record<string, unknown>): void {
    if (this.state === 'closed') return
    // The peer reads this end's hello before any refusal.
    this.sayHello()
    // Said in place of our accept or open line, never after it.
    // (A hello refused before it was taken is told too, when it speaks sessions.)
    const tell = (this.peerHello?.nonce ?? this.heardNonce) !== undefined && (this.state === 'hello' || this.state === 'verdict' || this.state === 'admitting')
    if (tell) {
      try {
        const twin = { twin: err.twinAddress, started: err.twinStarted, holds: err.twinHolds }
        this.transport.write(`${JSON.stringify({ refused: err.code, reason: err.message, ...twin, ...extra })}\n`)
      } catch {
        // The transport is gone: nothing to tell.
      }
    }
    this.close(err, true)
  }

  private close(err: SessionError, ours: boolean): void {
    this.state = 'closed'
    this.head = []
    this.emit('refused', err, ours)
  }

  // A handover session's lines, each emitted as 'message' (bounded as NDJSON
  // lines are, in characters: the longest value, three bytes a character in
  // UTF-8, is handed over too).
  private handoverLines(bytes: Uint8Array): void {
    const max = this.options.maxLineLength ?? 1 << 20
    while (bytes.length > 0 && this.state === 'handover') {
      const line = this.nextLine(bytes, 3 * max)
      if (line === TOO_LONG || (line !== null && (line.text?.length ?? 0) > max)) {
        this.close(new SessionError('bad_hello', `a handover line longer than ${max} characters`), true)
        return
      }
      if (line === null) return
      bytes = line.rest
      const o = line.value
      if (o === NOT_JSON) {
        this.close(new SessionError('bad_hello', 'a handover line that is not JSON'), true)
        return
      }
      this.emit('message', o)
    }
  }

  /** Send one JSON line on a handover session (see SessionOptions.handover). */
  send(o: unknown): void {
    if (this.state === 'handover') this.transport.write(`${JSON.stringify(o)}\n`)
  }

  /** Whether gossip flows (both hellos, and proofs, are in). */
  get isOpen(): boolean {
    return this.state === 'open'
  }

  /** Stop: unpipe and destroy the gossip stream (the owner closes the transport). */
  destroy(): void {
    if (this.helloTimer !== null) clearTimeout(this.helloTimer)
    this.state = 'closed'
    this.gate.stop()
    this.stream.unpipe()
    this.stream.destroy()
  }
}
