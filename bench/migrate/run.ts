/**
 * Migration benchmark (issue 4): N small keys in group 1 across all 1024 slots, a steady load
 * through the proxy (GET/SET on random keys at a fixed rate), `rstore migrate 0 511 2 --delay=0`.
 * Prints keys/s moved, total time, the load's p50/p99 before and during the move; then the same with
 * a bigger key count and the time ratio; then the source stall of moving big keys (the bound stated
 * in the README).
 *
 *   npm run build && node dist/bench/migrate/run.js [keys=1000000] [bigger=4000000|0] [embedded|etcd]
 *   (MIGRATE_ARGS='--batch 200' adds flags to the measured migrate; BENCH_BIG=0 skips the big keys)
 */
import {cpus} from 'node:os'
import {Redis} from 'ioredis'
import type {JobSummary} from '../../src/migrate/job-result.js'
import {startCluster, type Cluster} from '../../test/harness/cluster.js'

const keys = Number(process.argv[2] ?? 1_000_000)
const bigger = Number(process.argv[3] ?? 4_000_000)
const coordinator = (process.argv[4] ?? 'embedded') as 'embedded' | 'etcd'
const LOAD_RATE = 4000 // requests per second through the proxy
const LOAD_CLIENTS = 8

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

function fmt(ms: number): string {
  return Number.isFinite(ms) ? `${ms.toFixed(2)} ms` : '-'
}

/** A fixed-rate load through the proxy; latencies land in the current phase's array. */
class Load {
  phase: 'before' | 'during' | 'after' = 'before'
  readonly lat: Record<string, number[]> = {before: [], during: [], after: []}
  errors = 0
  private running = true
  private loops: Promise<void>[] = []

  constructor(
    private readonly clients: Redis[],
    private readonly keyCount: number,
  ) {}

  start(): void {
    const every = (LOAD_CLIENTS * 1000) / LOAD_RATE
    this.loops = this.clients.map(async (c, i) => {
      let next = performance.now() + (every * i) / LOAD_CLIENTS
      while (this.running) {
        const wait = next - performance.now()
        if (wait > 0) await sleep(wait)
        next += every
        const key = `bench:k:${Math.floor(Math.random() * this.keyCount)}`
        const phase = this.phase
        const t0 = performance.now()
        try {
          if (Math.random() < 0.5) await c.get(key)
          else await c.set(key, 'v'.repeat(32))
          this.lat[phase]!.push(performance.now() - t0)
        } catch {
          this.errors++
        }
      }
    })
  }

  async stop(): Promise<void> {
    this.running = false
    await Promise.all(this.loops)
  }

  stats(phase: string): {n: number; p50: number; p99: number; max: number} {
    const s = [...this.lat[phase]!].sort((a, b) => a - b)
    return {n: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s[s.length - 1] ?? NaN}
  }
}

/** What `rstore migrate --json` prints. */
type Summary = JobSummary

async function migrate(c: Cluster, extra: string[] = []): Promise<{summary: Summary; wallSec: number}> {
  const t0 = Date.now()
  const out = await c.cli(['migrate', '0', '511', '2', '--delay=0', '--json', ...extra], {timeoutMs: 3_600_000})
  const wallSec = (Date.now() - t0) / 1000
  if (out.code !== 0) throw new Error(`migrate failed (${out.code}): ${out.stderr}`)
  return {summary: JSON.parse(out.stdout) as Summary, wallSec}
}

async function runOnce(n: number): Promise<number> {
  const c = await startCluster({groups: 2, proxies: 1, slots: 'group1', coordinator, redisArgs: ['--enable-debug-command', 'yes']})
  try {
    const g1 = c.groups[0]!.client()
    let t = Date.now()
    await g1.call('DEBUG', 'POPULATE', String(n), 'bench:k', '32')
    console.log(`\n== ${n} keys (32-byte strings) in group 1, all 1024 slots online there; seeded in ${((Date.now() - t) / 1000).toFixed(1)} s`)
    const clients = Array.from({length: LOAD_CLIENTS}, () => c.proxies[0]!.client())
    const load = new Load(clients, n)
    load.start()
    await sleep(5000)
    load.phase = 'during'
    t = Date.now()
    const {summary: s, wallSec} = await migrate(c, (process.env.MIGRATE_ARGS ?? '').split(' ').filter(Boolean))
    load.phase = 'after'
    await sleep(1000)
    await load.stop()
    const [d1, d2] = [Number(await g1.dbsize()), Number(await c.groups[1]!.client().dbsize())]
    const before = load.stats('before')
    const during = load.stats('during')
    console.log(`migrate 0 511 2 --delay=0: ${s.keysMoved} keys moved in ${wallSec.toFixed(1)} s wall (command start to exit) = ${Math.round(s.keysMoved / wallSec)} keys/s overall`)
    console.log(`  mover: ${s.keysPerSecond} keys/s while moving; ${s.barriers} barriers, ${(s.barrierWaitMs / Math.max(1, s.barriers)).toFixed(1)} ms each (${(s.barrierWaitMs / 1000).toFixed(1)} s in all); ${s.changes} topology changes, ${(s.changeMs / Math.max(1, s.changes)).toFixed(1)} ms each; ${(s.migrateMs / 1000).toFixed(1)} s in MIGRATE`)
    console.log(`  after: group 1 holds ${d1} keys, group 2 holds ${d2} (sum ${d1 + d2}, seeded ${n})`)
    console.log(`  load ${LOAD_RATE} req/s (GET/SET 50/50, ${LOAD_CLIENTS} clients): before p50 ${fmt(before.p50)} p99 ${fmt(before.p99)} (n=${before.n}); during p50 ${fmt(during.p50)} p99 ${fmt(during.p99)} max ${fmt(during.max)} (n=${during.n}); p99 ratio ${(during.p99 / before.p99).toFixed(2)}; errors ${load.errors}`)
    return wallSec
  } finally {
    await c.stop()
  }
}

/** The source stall of moving big keys (each moved alone by one MIGRATE) and its effect on the load. */
async function bigKeys(): Promise<void> {
  const c = await startCluster({groups: 2, proxies: 1, slots: 'group1', coordinator})
  try {
    const g1 = c.groups[0]!.client()
    // Keys whose slot is in 0-511 (hash tag {a} is slot 15495 % 1024... pick tags by search).
    const {slotOf} = await import('../../src/topology/slots.js')
    const tags: string[] = []
    for (let i = 0; tags.length < 4; i++) if (slotOf(`t${i}`) <= 511) tags.push(`t${i}`)
    const mb = 1024 * 1024
    await g1.set(`big:{${tags[0]}}:str16`, Buffer.alloc(16 * mb, 120))
    await g1.set(`big:{${tags[1]}}:str64`, Buffer.alloc(64 * mb, 121))
    for (let i = 0; i < 500_000; i += 10_000) {
      const fields: string[] = []
      for (let j = i; j < i + 10_000; j++) fields.push(`f${j}`, `value-${j}`)
      await g1.hset(`big:{${tags[2]}}:hash500k`, ...fields)
    }
    for (let i = 0; i < 500_000; i += 10_000) {
      const members: string[] = []
      for (let j = i; j < i + 10_000; j++) members.push(String(j * 7), `m${j}`)
      await g1.zadd(`big:{${tags[3]}}:zset500k`, ...members)
    }
    const clients = Array.from({length: LOAD_CLIENTS}, () => c.proxies[0]!.client())
    const load = new Load(clients, 10_000)
    load.start()
    await sleep(3000)
    load.phase = 'during'
    const {summary: s} = await migrate(c, ['--big-key', String(mb)])
    await load.stop()
    console.log(`\n== big keys (moved alone, --big-key 1 MiB):`)
    for (const b of s.bigKeys) {
      console.log(`  ${b.key.padEnd(28)} ${(b.bytes / mb).toFixed(1).padStart(6)} MiB (MEMORY USAGE)  source stalled ${String(b.stallMs).padStart(5)} ms  = ${(b.stallMs / (b.bytes / mb)).toFixed(1)} ms/MiB`)
    }
    const before = load.stats('before')
    const during = load.stats('during')
    console.log(`  load meanwhile: before p99 ${fmt(before.p99)}; during p99 ${fmt(during.p99)}, max ${fmt(during.max)}`)
  } finally {
    await c.stop()
  }
}

console.log(`rstore migration benchmark: ${coordinator} coordinator, one proxy, two redis-server groups; ${cpus().length} cores shared by everything`)
const t1 = await runOnce(keys)
if (bigger > 0) {
  const t2 = await runOnce(bigger)
  console.log(`\ntime ratio ${bigger}/${keys} keys: ${(t2 / t1).toFixed(2)} (keys ratio ${(bigger / keys).toFixed(1)})`)
}
if (process.env.BENCH_BIG !== '0') await bigKeys()
