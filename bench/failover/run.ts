/**
 * Failover benchmark: kill -9 of a master (two replicas) under a write load, side by side in one run
 *   - rstore: three `rstore agent start --ha` (majority confirmation), writes through one proxy;
 *   - Redis Sentinel: three sentinels, quorum 2, writes through ioredis' sentinel client;
 * with the same down-after and the same writers. Reported per round: the longest gap between two
 * acknowledged writes (what the clients see), writes lost (acknowledged, then missing), and the
 * ratio rstore / Sentinel.
 *
 *   npm run build && node dist/bench/failover/run.js [rounds] [down-after ms]
 */
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {Redis} from 'ioredis'
import {masterOf} from '../../src/topology/model.js'
import {startCluster} from '../../test/harness/cluster.js'
import {freePort, removeDir, requireBinary, startProcess, tempDir, waitFor, type Managed} from '../../test/harness/process.js'
import {startRedis, type RedisServer} from '../../test/harness/redis.js'
import {startAgent, type RunningAgent} from '../../test/ha/agent-helpers.js'

const rounds = Number(process.argv[2] ?? 2)
const downAfterMs = Number(process.argv[3] ?? 1000)
const WRITERS = 4

interface Outcome {
  gapMs: number
  acked: number
  lost: number
  errors: number
}

/** Writers of fresh keys; measures the longest gap between acknowledgements around the kill. */
async function underLoad(client: Redis, prefix: string, kill: () => Promise<void>, recovered: () => Promise<boolean>): Promise<Outcome> {
  const acks: {key: string; at: number}[] = []
  let errors = 0
  let running = true
  const loops = Array.from({length: WRITERS}, async (_, w) => {
    for (let i = 0; running; i++) {
      const key = `${prefix}:${w}:${i}`
      try {
        await client.set(key, 'x')
        acks.push({key, at: Date.now()})
      } catch {
        errors++
        await new Promise((r) => setTimeout(r, 2))
      }
    }
  })
  await new Promise((r) => setTimeout(r, 1000))
  const killedAt = Date.now()
  await kill()
  await waitFor('the failover', recovered, 60_000, 20)
  await new Promise((r) => setTimeout(r, 1000))
  running = false
  await Promise.all(loops)
  let gapMs = 0
  let prev = killedAt
  for (const a of acks) {
    if (a.at < killedAt) continue
    gapMs = Math.max(gapMs, a.at - prev)
    prev = a.at
  }
  let lost = 0
  for (let i = 0; i < acks.length; i += 500) {
    const batch = acks.slice(i, i + 500)
    const pipe = client.pipeline()
    for (const a of batch) pipe.exists(a.key)
    const res = (await pipe.exec())!
    lost += res.filter((r) => r[1] !== 1).length
  }
  return {gapMs, acked: acks.length, lost, errors}
}

async function replicaSet(): Promise<RedisServer[]> {
  const servers = [await startRedis(), await startRedis(), await startRedis()]
  for (const r of servers.slice(1)) await r.client().call('REPLICAOF', '127.0.0.1', String(servers[0]!.port))
  for (const r of servers.slice(1)) await waitFor('replica linked', async () => ((await r.client().call('ROLE')) as unknown[])[3] === 'connected', 10_000)
  return servers
}

async function rstoreRound(round: number): Promise<Outcome> {
  const c = await startCluster({groups: 1, proxies: 1, product: `bf${round}`, slots: 'group1'})
  const extra: RedisServer[] = []
  const agents: RunningAgent[] = []
  try {
    for (let i = 0; i < 2; i++) extra.push(await startRedis())
    for (const r of extra) await c.cliOk(['server', 'add', '1', r.addr, 'slave'])
    for (const r of extra) await waitFor('replica linked', async () => ((await r.client().call('ROLE')) as unknown[])[3] === 'connected', 10_000)
    for (const id of ['a', 'b', 'c']) {
      const d = join(c.dir, `agent-${id}`)
      mkdirSync(d)
      agents.push(await startAgent(d, ['process.idle = sleep 600'], ['--ha', '--ha-id', id, '--ha-check-interval', '100', '--ha-down-after', String(downAfterMs)], [
        `product = ${c.product}`,
        `coordinator_addr = ${join(c.dir, 'meta.db')}`,
      ]))
    }
    await waitFor('a leader and three agents', async () => (await agents[0]!.status()).agents?.length === 3 && (await agents[0]!.status()).leader?.leader !== null)
    const store = await c.openStore()
    const old = c.groups[0]!.addr
    const client = c.proxies[0]!.client()
    return await underLoad(client, 'r', () => c.killGroup(1), async () => {
      const topo = await store.load()
      if (masterOf(topo.groups.get(1)!)?.addr === old) return false
      return Number((await c.proxies[0]!.status()).epoch) >= topo.epoch
    })
  } finally {
    for (const a of agents) await a.proc.stop()
    await Promise.all(extra.map((r) => r.stop()))
    await c.stop()
  }
}

async function sentinelRound(): Promise<Outcome> {
  const servers = await replicaSet()
  const dir = tempDir('bench-sentinel')
  const sentinels: {proc: Managed; port: number}[] = []
  let client: Redis | undefined
  try {
    const bin = requireBinary('redis-server')
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      const conf = join(dir, `sentinel-${i}.conf`)
      writeFileSync(conf, [
        `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`,
        `sentinel monitor m 127.0.0.1 ${servers[0]!.port} 2`,
        `sentinel down-after-milliseconds m ${downAfterMs}`,
        'sentinel failover-timeout m 10000',
        'sentinel parallel-syncs m 1', '',
      ].join('\n'))
      sentinels.push({proc: startProcess(bin, [conf, '--sentinel']), port})
    }
    const ask = async (port: number, ...args: string[]) => {
      const s = new Redis({port, host: '127.0.0.1', maxRetriesPerRequest: 1})
      s.on('error', () => {})
      try {
        return await s.call('SENTINEL', ...args)
      } finally {
        s.disconnect()
      }
    }
    for (const s of sentinels) {
      await waitFor('the sentinel knows the replicas and the other sentinels', async () => {
        const replicas = (await ask(s.port, 'REPLICAS', 'm').catch(() => [])) as unknown[]
        const others = (await ask(s.port, 'SENTINELS', 'm').catch(() => [])) as unknown[]
        return replicas.length === 2 && others.length === 2
      }, 30_000, 100)
    }
    client = new Redis({sentinels: sentinels.map((s) => ({host: '127.0.0.1', port: s.port})), name: 'm'})
    client.on('error', () => {})
    const old = servers[0]!.port
    return await underLoad(client, 's', () => servers[0]!.proc.stop('SIGKILL'), async () => {
      const addr = (await ask(sentinels[0]!.port, 'GET-MASTER-ADDR-BY-NAME', 'm')) as string[]
      return Number(addr[1]) !== old
    })
  } finally {
    client?.disconnect()
    await Promise.all(sentinels.map((s) => s.proc.stop()))
    await Promise.all(servers.map((s) => s.stop()))
    removeDir(dir)
  }
}

const fmt = (o: Outcome) => `gap ${String(o.gapMs).padStart(5)} ms, ${String(o.acked).padStart(6)} acked, ${o.lost} lost, ${o.errors} errors`
console.log(`kill -9 of a master with two replicas, ${WRITERS} writers, down-after ${downAfterMs} ms, ${rounds} round(s)`)
const rows: {r: Outcome; s: Outcome}[] = []
for (let round = 1; round <= rounds; round++) {
  const s = await sentinelRound()
  const r = await rstoreRound(round)
  rows.push({r, s})
  console.log(`round ${round}: sentinel ${fmt(s)} | rstore ${fmt(r)} | gap ratio rstore/sentinel ${(r.gapMs / s.gapMs).toFixed(2)}`)
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const rg = mean(rows.map((x) => x.r.gapMs))
const sg = mean(rows.map((x) => x.s.gapMs))
console.log(`mean gap: rstore ${rg.toFixed(0)} ms, sentinel ${sg.toFixed(0)} ms: ${(rg / sg).toFixed(2)}x`)
process.exit(0)
