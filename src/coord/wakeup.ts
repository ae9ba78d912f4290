/**
 * Cross-process wake-ups for the embedded coordinator: a directory watch (inotify on Linux) that calls
 * back when one of a few files in it is written, created or removed (e.g. `meta.db-wake`, which a
 * process writes after each commit).
 *
 * It only makes a poller react sooner: callers keep a timer poll, so correctness never depends on it
 * (events can be dropped, coalesced or arrive before the commit is visible to readers). The watch is
 * unref()'d: it never keeps a process alive.
 */
import {watch, type FSWatcher} from 'node:fs'

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
