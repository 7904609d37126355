/**
 * A readable side's push() without readable-stream's machinery per chunk
 * where it would hand the chunk on at once.
 *
 * @packageDocumentation
 */
import type { Duplex, ReadableState } from 'readable-stream'

// What emitNow() reads of readable-stream's state (4.x) besides the typed part.
type FlowState = ReadableState & { errored: unknown; awaitDrainWriters: unknown; dataEmitted: boolean }

/**
 * `push(m)` of an object-mode readable side (`m` not null), done as
 * readable-stream's own push does it when the stream flows with nothing
 * buffered and no read() under way: 'data' is emitted at once. Without its
 * machinery per chunk (readableAddChunk, addChunk, a listenerCount lookup:
 * ~5% of the receiving side of a wire sync, measured), and without the
 * read(0) it schedules after (with nothing buffered, a flowing stream's
 * next read() asks for more itself). False, having done nothing the stream
 * could see, when push() must take `m` (to buffer it, or report an error);
 * with no 'data' listener emit() returns false, and push() buffers it as
 * it would have.
 */
export function emitNow(stream: Duplex, m: unknown): boolean {
  const state = stream._readableState as FlowState
  if (state.flowing !== true || state.length !== 0 || state.sync || state.ended || state.destroyed || state.errored !== null || state.awaitDrainWriters !== null) return false
  // As push() would: a chunk came (a read() waiting on _read is answered).
  state.reading = false
  if (!stream.emit('data', m)) return false
  state.dataEmitted = true
  return true
}
