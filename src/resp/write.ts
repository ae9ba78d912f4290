import type {Socket} from 'node:net'

/** Below this many bytes a batch is copied into one buffer: one plain write beats a writev of many small pieces. */
const COPY_LIMIT = 256 * 1024

/** Writes a batch of buffers with one syscall where possible. */
export function writeBatch(sock: Socket, bufs: Buffer[]): void {
  if (bufs.length === 1) {
    sock.write(bufs[0]!)
    return
  }
  let total = 0
  for (const b of bufs) total += b.length
  if (total <= COPY_LIMIT) {
    sock.write(Buffer.concat(bufs, total))
    return
  }
  sock.cork()
  for (const b of bufs) sock.write(b)
  sock.uncork()
}
