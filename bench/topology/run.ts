/**
 * Topology change benchmark: what one routing change costs the writer (TopologyStore.update) and
 * every proxy (reload on each epoch). A 2-group cluster with 1 real proxy on the embedded
 * coordinator; N x store.update() flipping slot 0 between group 1 and group 2, each change waited
 * for until the proxy has applied it (as a migration's barrier does). Prints ms (wall and the writer's
 * CPU) per update and the proxy's CPU (utime+stime from /proc/<pid>/stat) per epoch, raw and net of
 * its idle polling.
 *
 *   npm run build && node dist/bench/topology/run.js [changes=1000]
 */
import {readFileSync} from 'node:fs'
import {startCluster} from '../../test/harness/cluster.js'
import type {ProxyInfo} from '../../src/topology/model.js'

const changes = Number(process.argv[2] ?? 1000)
const TICK_MS = 10 // USER_HZ is 100 on Linux

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) * TICK_MS // utime, stime (fields 14 and 15)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const c = await startCluster({groups: 2, proxies: 1})
try {
  const store = await c.openStore()
  const proxyKey = store.keys.proxy(c.proxies[0]!.id)
  const proxyRecord = async () => JSON.parse((await store.coord.get(proxyKey))!.value) as ProxyInfo
  const pid = (await proxyRecord()).pid
  const applied = async (epoch: number) => {
    for (;;) {
      if ((await proxyRecord()).appliedEpoch >= epoch) return
      await sleep(0.2)
    }
  }
  const flip = () =>
    store.update((topo) => ({slots: [{id: 0, state: 'online', group: topo.slots[0]!.group === 1 ? 2 : 1}]}))

  for (let i = 0; i < 20; i++) await applied(await flip()) // warm up (JIT) both sides

  // The idle proxy's own polling, to subtract.
  const idleMs = 3000
  const i0 = cpuMs(pid)
  await sleep(idleMs)
  const idleRate = (cpuMs(pid) - i0) / idleMs

  // 1) the writer alone: back-to-back updates (the proxy coalesces epochs meanwhile).
  let t0 = performance.now()
  const cpu0 = process.cpuUsage()
  let epoch = 0
  for (let i = 0; i < changes; i++) epoch = await flip()
  const burstMs = performance.now() - t0
  const burstCpu = process.cpuUsage(cpu0)
  await applied(epoch)

  // 2) paced: each change applied by the proxy before the next (one reload per epoch).
  let updMs = 0
  const p0 = cpuMs(pid)
  t0 = performance.now()
  for (let i = 0; i < changes; i++) {
    const u0 = performance.now()
    epoch = await flip()
    updMs += performance.now() - u0
    await applied(epoch)
  }
  const wall = performance.now() - t0
  const proxyCpu = cpuMs(pid) - p0

  console.log(`changes: ${changes}`)
  console.log(`update(), back to back: ${(burstMs / changes).toFixed(3)} ms per update`)
  console.log(`update(), back to back: ${((burstCpu.user + burstCpu.system) / 1000 / changes).toFixed(3)} ms CPU of the writer per update`)
  console.log(`update(), paced:        ${(updMs / changes).toFixed(3)} ms per update`)
  console.log(`paced wall:             ${(wall / changes).toFixed(3)} ms per epoch (update + proxy apply + ack)`)
  console.log(`proxy idle CPU:         ${(idleRate * 100).toFixed(1)}% of a core`)
  console.log(`proxy CPU per epoch:    ${(proxyCpu / changes).toFixed(3)} ms raw, ${((proxyCpu - idleRate * wall) / changes).toFixed(3)} ms net of idle`)
} finally {
  await c.stop()
}
