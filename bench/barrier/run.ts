/**
 * Barrier latency benchmark: what one migration barrier costs (topology change -> every proxy applies
 * it and acknowledges -> the writer knows). A 2-group cluster with P real proxies on the embedded (or
 * etcd) coordinator; N x store.update() flipping slot 0 between group 1 and group 2 (as `--force` does,
 * straight through TopologyStore.update), each followed by the barrier. Prints the barrier's mean,
 * median, p90 and max in ms, and the whole round (update + barrier).
 *
 *   npm run build && node dist/bench/barrier/run.js [changes=100] [proxies=1] [embedded|etcd] [acks|poll]
 *
 * `acks` waits with one long-lived ProxyAcks (what the mover should use); `poll` with waitForProxies()
 * (a ProxyAcks per barrier; it polled the proxies' records every 2-10 ms before ProxyAcks existed).
 */
import {startCluster} from '../../test/harness/cluster.js'
import {ProxyAcks, waitForProxies} from '../../src/migrate/barrier.js'

const changes = Number(process.argv[2] ?? 100)
const proxies = Number(process.argv[3] ?? 1)
const coordinator = (process.argv[4] ?? 'embedded') as 'embedded' | 'etcd'
const mode = process.argv[5] ?? 'acks'

function stats(xs: number[]): string {
  const s = xs.slice().sort((a, b) => a - b)
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!
  const mean = s.reduce((a, b) => a + b, 0) / s.length
  return `mean ${mean.toFixed(2)}  median ${q(0.5).toFixed(2)}  p90 ${q(0.9).toFixed(2)}  max ${s[s.length - 1]!.toFixed(2)} ms`
}

const c = await startCluster({groups: 2, proxies, coordinator})
try {
  const store = await c.openStore()
  const opts = {timeoutMs: 30_000}
  const acks = mode === 'acks' ? new ProxyAcks(store) : null
  const wait = (epoch: number) => (acks ? acks.wait(epoch, opts) : waitForProxies(store, epoch, opts))
  const flip = () => store.update((topo) => ({slots: [{id: 0, state: 'online', group: topo.slots[0]!.group === 1 ? 2 : 1}]}))

  for (let i = 0; i < 20; i++) await wait(await flip()) // warm up (JIT) both sides
  const barrierMs: number[] = []
  const roundMs: number[] = []
  for (let i = 0; i < changes; i++) {
    const t0 = performance.now()
    const epoch = await flip()
    const t1 = performance.now()
    await wait(epoch)
    const t2 = performance.now()
    barrierMs.push(t2 - t1)
    roundMs.push(t2 - t0)
  }
  await acks?.close()
  console.log(`${coordinator}, ${proxies} prox${proxies === 1 ? 'y' : 'ies'}, ${mode}, ${changes} changes`)
  console.log(`barrier:          ${stats(barrierMs)}`)
  console.log(`update + barrier: ${stats(roundMs)}`)
} finally {
  await c.stop()
}
