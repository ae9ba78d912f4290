/**
 * Idle cost of an embedded-coordinator watch: one process opens the coordinator file, starts one
 * watch and does nothing else for a while; prints its CPU (user+system) as a % of one core.
 *
 *   npm run build && node dist/bench/barrier/idle.js [seconds=10] [fswatch|nofswatch]
 */
import {join} from 'node:path'
import {EmbeddedCoordinator} from '../../src/coord/embedded.js'
import {removeDir, tempDir} from '../../test/harness/process.js'

const seconds = Number(process.argv[2] ?? 10)
const useFsWatch = (process.argv[3] ?? 'fswatch') !== 'nofswatch'
const dir = tempDir('idle')
try {
  const coord = await EmbeddedCoordinator.open(join(dir, 'meta.db'), {useFsWatch})
  let events = 0
  const w = await coord.watch('/x/', await coord.revision(), () => events++)
  await new Promise((r) => setTimeout(r, 500))
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await new Promise((r) => setTimeout(r, seconds * 1000))
  const c1 = process.cpuUsage(c0)
  const wall = performance.now() - t0
  console.log(`idle watch (${useFsWatch ? 'fs.watch on' : 'fs.watch off'}): ${(((c1.user + c1.system) / 1000 / wall) * 100).toFixed(2)}% of a core over ${seconds} s`)
  await w.close()
  await coord.close()
} finally {
  removeDir(dir)
}
