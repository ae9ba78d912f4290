/**
 * Cross-process wake-ups for the embedded coordinator: a directory watch (inotify on Linux) that calls
 * back when one of a few files in it is written, created or removed (e.g. `meta.db-wake`, which a
 * process writes after each commit with a WakeSignal).
 *
 * It only makes a poller react sooner: callers keep a timer poll, so correctness never depends on it
 * (events can be dropped, coalesced or arrive before the commit is visible to readers). The watch is
 * unref()'d: it never keeps a process alive.
 */
import {closeSync, constants as fsc, openSync, watch, writeSync, type FSWatcher} from 'node:fs'

export interface FileWakeup {
  close(): void
}

/**
 * Watches directory dir and calls onChange for every event on one of the files named (the other
 * files of the directory, e.g. checkpoint databases, are ignored). Returns null if the platform or
 * the file system cannot watch (fs.watch threw). onError is called once if the watch fails later;
 * the watch is then closed.
 */
export function watchFiles(dir: string, fileNames: string[], onChange: () => void, onError: (err: Error) => void): FileWakeup | null {
  const names = new Set(fileNames)
  let w: FSWatcher
  try {
    w = watch(dir, {persistent: false}, (_event, name) => {
      // Some platforms give no file name: wake anyway (a spare poll is cheap).
      if (name === null || names.has(typeof name === 'string' ? name : String(name))) onChange()
    })
  } catch {
    return null
  }
  let closed = false
  const close = () => {
    if (closed) return
    closed = true
    try {
      w.close()
    } catch {
      // already closed
    }
  }
  w.on('error', (err: Error) => {
    if (closed) return
    close()
    onError(err)
  })
  w.unref()
  return {close}
}

const WAKE_BYTE = Buffer.from([0x2a])

/** Writes 1 byte (at offset 0) to a file to wake the processes watching it; best effort. */
export class WakeSignal {
  /** The file's descriptor (-1 until opened; null when it cannot be opened: no signal). */
  private fd: number | null = -1

  constructor(private readonly file: string) {}

  signal(): void {
    if (this.fd === -1) {
      try {
        this.fd = openSync(this.file, fsc.O_WRONLY | fsc.O_CREAT, 0o666)
      } catch {
        this.fd = null // e.g. no permission: other processes see this one's commits on their timer poll
      }
    }
    if (this.fd === null) return
    try {
      writeSync(this.fd, WAKE_BYTE, 0, 1, 0)
    } catch {
      // a full disk, say: the timer polls remain
    }
  }

  close(): void {
    if (typeof this.fd === 'number' && this.fd >= 0) closeSync(this.fd)
    this.fd = null
  }
}
