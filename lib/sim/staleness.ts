/**
 * Staleness bookkeeping (PROTOCOL.md section 1): a replica mu_p(q)(k) is
 * stale while q has a newer mapping of k than p, and its staleness is the
 * time since the oldest write of q to k that p still lacks.
 *
 * Kept incrementally, so a round costs O(deltas applied), not
 * O(nodes^2 x keys): per key the log of its writes (version, time), per key
 * how many replicas are fresh, and for the stale replicas the sum and a
 * histogram of the times of their oldest missing write. The histogram's
 * lowest non-empty time only moves forward (new stale replicas are always
 * stamped with the current time), so the maximum is amortised O(1).
 */

/** First index in ascending `a` whose value is greater than `v`. */
function firstAbove(a: readonly number[], v: number): number {
  let lo = 0
  let hi = a.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (a[mid] > v) hi = mid
    else lo = mid + 1
  }
  return lo
}

/**
 * Staleness of every remote replica of every key, on one time base: the
 * time a write is stamped with is either when it was admitted (the paper's
 * figure) or when the application asked for it (what the application sees,
 * backlog included).
 */
export class Staleness {
  /** Remote replicas that are stale now. */
  stale = 0
  private readonly versions: number[][] = []
  private readonly times: number[][] = []
  private readonly pending: Int32Array
  private readonly fresh: Int32Array
  private sum = 0
  private readonly histogram: number[] = []
  private oldest = 0

  /**
   * @param keys - keys in all.
   * @param replicas - remote replicas of each key (nodes - 1).
   */
  constructor(keys: number, readonly replicas: number) {
    for (let j = 0; j < keys; j++) {
      this.versions.push([])
      this.times.push([])
    }
    this.pending = new Int32Array(keys)
    this.fresh = new Int32Array(keys).fill(replicas)
  }

  /**
   * Key `j` was written at `time`: every replica that was fresh is now stale
   * since `time`. `version` is the write's version, or Infinity while it
   * waits for admission (then {@link admit} gives it one later).
   */
  write(j: number, time: number, version = Infinity): void {
    const versions = this.versions[j]
    if (version !== Infinity && this.pending[j] !== versions.length) {
      throw new Error('a write was admitted ahead of a waiting one')
    }
    versions.push(version)
    this.times[j].push(time)
    if (version !== Infinity) this.pending[j] = versions.length
    const f = this.fresh[j]
    if (f > 0) {
      this.fresh[j] = 0
      this.stale += f
      this.sum += f * time
      this.histogram[time] = (this.histogram[time] ?? 0) + f
    }
  }

  /** The oldest waiting write of key `j` was admitted at `version`; returns when it was written. */
  admit(j: number, version: number): number {
    const i = this.pending[j]++
    this.versions[j][i] = version
    return this.times[j][i]
  }

  /** When key `j`'s write at `version` was stamped (undefined if unknown). */
  timeOf(j: number, version: number): number | undefined {
    const versions = this.versions[j]
    const i = firstAbove(versions, version) - 1
    return i >= 0 && versions[i] === version ? this.times[j][i] : undefined
  }

  /** A remote replica of key `j` moved from version `from` to `to`. */
  receive(j: number, from: number, to: number): void {
    const versions = this.versions[j]
    const times = this.times[j]
    const before = firstAbove(versions, from)
    if (before >= versions.length) return // it was not stale (not a write we logged)
    const after = firstAbove(versions, to)
    if (after === before) return
    this.remove(times[before])
    if (after >= versions.length) {
      this.fresh[j]++
    } else {
      this.stale++
      this.sum += times[after]
      this.histogram[times[after]] = (this.histogram[times[after]] ?? 0) + 1
    }
  }

  /** Mean staleness over all remote replicas (fresh ones count 0) at `now`. */
  average(now: number, keys: number): number {
    return this.stale === 0 ? 0 : (this.stale * now - this.sum) / (keys * this.replicas)
  }

  /** Mean staleness over the stale replicas only, at `now`. */
  averageStale(now: number): number {
    return this.stale === 0 ? 0 : (this.stale * now - this.sum) / this.stale
  }

  /** Largest staleness of any replica at `now`. */
  maximum(now: number): number {
    if (this.stale === 0) return 0
    const h = this.histogram
    while (this.oldest < h.length && !(h[this.oldest] > 0)) this.oldest++
    return now - this.oldest
  }

  private remove(time: number): void {
    this.stale--
    this.sum -= time
    this.histogram[time]--
  }
}
