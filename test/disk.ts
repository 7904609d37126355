/**
 * A model of what a crash leaves of a store's directory: what each fsync
 * made durable, observed on the fsyncs themselves (fs.fsync, fdatasync and
 * their Sync forms are wrapped), plus what SQLite makes durable by itself
 * (a completed checkpoint syncs the log and the database file). A crash
 * keeps, of each file, its durable content overwritten by any prefix (in
 * file order) of what was written since; a file whose name no fsync of the
 * directory has covered yet may be gone altogether.
 */
import * as fs from 'fs'
import * as path from 'path'
import { Store } from '../lib/node/sqlite'

type FsyncFn = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void
type FsyncSyncFn = (fd: number) => void

// The module object itself: `import * as` gives read-only bindings.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const real = require('fs') as { fsync: FsyncFn; fsyncSync: FsyncSyncFn; fdatasync: FsyncFn; fdatasyncSync: FsyncSyncFn }

export class Disk {
  private readonly durable = new Map<string, Buffer>()
  private names = new Set<string>()
  private readonly saved = { fsync: real.fsync, fsyncSync: real.fsyncSync, fdatasync: real.fdatasync, fdatasyncSync: real.fdatasyncSync }
  private readonly checkpoint = Store.prototype.checkpoint

  constructor(private readonly dir: string) {
    for (const name of ['fsync', 'fdatasync'] as const) {
      const orig = this.saved[name]
      real[name] = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void): void => {
        const seen = this.look(fd)
        orig(fd, (err) => {
          if (!err) seen()
          cb(err)
        })
      }) as FsyncFn
    }
    for (const name of ['fsyncSync', 'fdatasyncSync'] as const) {
      const orig = this.saved[name]
      real[name] = (fd: number): void => {
        const seen = this.look(fd)
        orig(fd)
        seen()
      }
    }
    const disk = this
    const checkpoint = this.checkpoint
    Store.prototype.checkpoint = function (this: Store): boolean {
      const done = checkpoint.call(this)
      if (done && path.resolve(this.dir) === path.resolve(disk.dir)) disk.settled()
      return done
    }
  }

  restore(): void {
    Object.assign(real, this.saved)
    Store.prototype.checkpoint = this.checkpoint
  }

  /** SQLite synced the database and the log (a checkpoint, or the creation of the database). */
  settled(): void {
    for (const name of ['state.db', 'state.db-wal']) {
      const file = path.join(this.dir, name)
      if (fs.existsSync(file)) this.durable.set(name, fs.readFileSync(file))
    }
  }

  /** Whether the directory entry `name` survives any crash. */
  named(name: string): boolean {
    return this.names.has(name)
  }

  /** Bytes of `name` that survive any crash. */
  safe(name: string): Buffer {
    return this.durable.get(name) ?? Buffer.alloc(0)
  }

  /**
   * What a crash now leaves of `name`: null if the file is gone; `cut` in
   * [0, 1] picks how much of what was written since its last fsync made it.
   */
  image(name: string, cut: number, dropName: boolean): Buffer | null {
    const file = path.join(this.dir, name)
    if (!fs.existsSync(file)) return null
    // lock.db is SQLite's with synchronous=FULL: durable at every write.
    if (name === 'lock.db') return fs.readFileSync(file)
    if (dropName && !this.names.has(name)) return null
    const now = fs.readFileSync(file)
    const before = this.safe(name)
    let first = 0
    while (first < before.length && first < now.length && before[first] === now[first]) first++
    const at = first + Math.floor(cut * (now.length - first))
    return Buffer.concat([now.subarray(0, at), before.subarray(Math.min(at, before.length))])
  }

  /** Crash `store` (kill -9 or a power cut) and leave on disk what the model says survives. */
  crash(store: Store, cut: number, dropName: boolean): void {
    const names = ['state.db', 'state.db-wal', 'acked', 'lock.db']
    const images = names.map((n) => [n, this.image(n, cut, dropName)] as const)
    store._abandon()
    for (const [name, data] of images) {
      const file = path.join(this.dir, name)
      if (data === null) fs.rmSync(file, { force: true })
      else fs.writeFileSync(file, data)
    }
    fs.rmSync(path.join(this.dir, 'state.db-shm'), { force: true })
  }

  // What an fsync of `fd` called now makes durable, to record once it is done.
  private look(fd: number): () => void {
    const st = fs.fstatSync(fd)
    if (st.isDirectory()) {
      if (st.ino !== fs.statSync(this.dir).ino) return () => undefined
      const names = new Set(fs.readdirSync(this.dir))
      return () => (this.names = names)
    }
    if (!fs.existsSync(this.dir)) return () => undefined
    const name = fs.readdirSync(this.dir).find((n) => fs.statSync(path.join(this.dir, n)).ino === st.ino)
    if (name === undefined) return () => undefined
    const content = fs.readFileSync(path.join(this.dir, name))
    return () => this.durable.set(name, content)
  }
}
