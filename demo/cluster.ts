/**
 * The page as a real member of a cluster of `simple-scuttle node`
 * processes (started by `npm run demo`): a Gossip of its own, joined over a
 * WebSocket to one node with joinNode. A write here is read back with `get`
 * on any node process; a `set` on a node appears here.
 */
import { Gossip } from '../lib/gossip'
import { isMembershipKey } from '../lib/membership'
import { lww_vs_current_vers } from '../lib/resolution'
import { joinNode, type Joined } from '../lib/wire/join'

export interface ClusterApi {
  readonly id: string
  /** The node connected to now, or null. */
  peer(): string | null
  set(key: string, value: unknown): void
  get(key: string): unknown
  delete(key: string): void
  /** What the page's watch saw, newest first: "local|remote|delete KEY[ = VALUE]". */
  changes(): string[]
}

interface ClusterInfo {
  nodes: { id: string; ws: string }[]
}

function $(id: string): HTMLElement {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`#${id} missing from the page`)
  return el
}

/** Join the cluster the server names at /cluster.json, if any; resolves to its API or null. */
export async function startCluster(): Promise<ClusterApi | null> {
  let info: ClusterInfo
  try {
    const res = await fetch('/cluster.json')
    if (!res.ok) return null
    info = (await res.json()) as ClusterInfo
  } catch {
    return null
  }
  if (!Array.isArray(info.nodes) || info.nodes.length === 0) return null
  const id = `page-${Math.floor(Math.random() * 1e6)}`
  const gossip = new Gossip(id, { resolve: lww_vs_current_vers })
  const target = info.nodes[Math.floor(Math.random() * info.nodes.length)]
  const member: Joined = joinNode(gossip, target.ws, { interval: 200, backoff: { min: 100, max: 2000 } })
  const panel = $('cluster-panel')
  panel.hidden = false
  $('cluster-nodes').textContent = info.nodes.map((n) => `${n.id} (${n.ws})`).join(', ')
  const status = $('cluster-status')
  const list = $('cluster-state')
  const render = (): void => {
    status.textContent = member.peer === null ? `${id}: connecting…` : `${id}: joined ${member.peer}`
    const rows = Object.keys(gossip.state)
      .sort()
      .map((k) => {
        const u = gossip.state[k]
        return `${k} = ${JSON.stringify(u.value)} (from ${u.source_id})`
      })
    list.textContent = rows.length === 0 ? 'No keys yet.' : rows.join('\n')
  }
  gossip.history.on('update', render)
  setInterval(render, 250)
  // A watch on a key prefix (gossip.watch): every change, with how it came.
  const changes: string[] = []
  const shown = $('cluster-changes')
  let stop = (): void => undefined
  const watch = (prefix: string): void => {
    stop()
    stop = gossip.watch({ prefix }, (key, entry, how) => {
      if (isMembershipKey(key)) return
      changes.unshift(`${how} ${key}${entry === undefined ? '' : ` = ${JSON.stringify(entry.value)}`}`)
      if (changes.length > 20) changes.length = 20
      shown.textContent = changes.join('\n')
      render()
    })
  }
  watch('')
  $('cluster-watch-form').addEventListener('submit', (event) => {
    event.preventDefault()
    watch(($('cluster-watch') as HTMLInputElement).value)
  })
  $('cluster-delete').addEventListener('click', () => {
    const key = ($('cluster-key') as HTMLInputElement).value.trim()
    if (key.length === 0) return
    try {
      gossip.delete(key)
    } catch (err) {
      status.textContent = (err as Error).message
    }
    render()
  })
  const form = $('cluster-form') as HTMLFormElement
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const key = ($('cluster-key') as HTMLInputElement).value.trim()
    const text = ($('cluster-value') as HTMLInputElement).value
    if (key.length === 0) return
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      value = text
    }
    try {
      gossip.set(key, value)
    } catch (err) {
      status.textContent = (err as Error).message
    }
    render()
  })
  render()
  return {
    id,
    peer: () => member.peer,
    set: (key, value) => {
      gossip.set(key, value)
      render()
    },
    get: (key) => gossip.get(key).value,
    delete: (key) => {
      gossip.delete(key)
      render()
    },
    changes: () => [...changes],
  }
}
