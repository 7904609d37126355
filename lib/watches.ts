/**
 * The node's watches (`gossip.watch`), indexed by key and by prefix behind
 * one `'change'` listener: a change looks up its key, and those of its
 * prefixes some watch names, so a set costs the same with 100,000 watches
 * as with none, and stopping a watch is a delete.
 */
import type { Update, WatchListener } from './types'

interface Watch {
  readonly fn: WatchListener
  // Order of watching: listeners of one change are called in it.
  readonly seq: number
  stopped: boolean
}

export class Watches {
  /** How many watches are live. */
  size = 0
  private readonly keys = new Map<string, Set<Watch>>()
  private readonly prefixes = new Map<string, Set<Watch>>()
  // The longest prefix watched so far (only grows): how many of a key's prefixes to look up.
  private longest = 0
  private seq = 0

  /** @param report - a listener threw (reported, not thrown: the others still hear the change). */
  constructor(private readonly report: (key: string, err: unknown) => void) {}

  /** The node's one `'change'` listener. */
  readonly listener = (key: string, entry: Update | undefined, how: 'local' | 'remote' | 'delete'): void => {
    let hits: Watch[] | undefined
    const exact = this.keys.get(key)
    if (exact !== undefined) hits = [...exact]
    if (this.prefixes.size > 0) {
      let groups = exact === undefined ? 0 : 1
      const collect = (set: Set<Watch> | undefined): void => {
        if (set === undefined) return
        groups++
        hits = hits === undefined ? [...set] : hits.concat([...set])
      }
      // Whichever is fewer: the key's prefixes, or the prefixes watched.
      if (this.prefixes.size <= Math.min(key.length, this.longest) + 1) {
        for (const [prefix, set] of this.prefixes) if (key.startsWith(prefix)) collect(set)
      } else {
        for (let n = Math.min(key.length, this.longest); n >= 0; n--) collect(this.prefixes.get(key.slice(0, n)))
      }
      if (groups > 1) (hits as Watch[]).sort((a, b) => a.seq - b.seq)
    }
    if (hits === undefined) return
    for (const w of hits) {
      // (One stopped by an earlier listener of this change is not called.)
      if (w.stopped) continue
      try {
        w.fn(key, entry, how)
      } catch (err) {
        this.report(key, err)
      }
    }
  }

  /** Watch `text`, a key (`exact`) or a prefix; returns the stop, true the first time it stops a watch. */
  add(text: string, exact: boolean, fn: WatchListener): () => boolean {
    const map = exact ? this.keys : this.prefixes
    if (!exact && text.length > this.longest) this.longest = text.length
    let set = map.get(text)
    if (set === undefined) map.set(text, (set = new Set()))
    const w: Watch = { fn, seq: this.seq++, stopped: false }
    set.add(w)
    this.size++
    return () => {
      if (w.stopped) return false
      w.stopped = true
      this.size--
      const s = map.get(text) as Set<Watch>
      s.delete(w)
      if (s.size === 0) map.delete(text)
      return true
    }
  }
}
