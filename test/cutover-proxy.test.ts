// The acceptance test through REAL proxies: two `rstore proxy start` processes, the config and
// every cutover step through the built binary. Rule a's key space moves from Redis to MariaDB (start ->
// backfill -> switch -> finish); rule b's moves to PostgreSQL and is aborted after switch. Concurrent
// load the whole time: one writer per key (SET, INCR, HINCRBY, RPUSH), alternating proxies, every reply
// checked. Also `rstore route` for a slot key and a rule key.
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import type {Redis} from 'ioredis'
import {openStore, type KeyStore} from '../src/backends/index.js'
import {formatReply} from '../src/backends/reply.js'
import {slotOf} from '../src/topology/slots.js'
import {startCluster, type Cluster} from './harness/cluster.js'
import {startMariaDb, type MariaDbServer} from './harness/mariadb.js'
import {startPostgres, type PostgresServer} from './harness/postgres.js'
import {startRedis, type RedisServer} from './harness/redis.js'
import {startAll} from './harness/process.js'

let c: Cluster
let rr: RedisServer
let my: MariaDbServer
let pg: PostgresServer
let direct: Redis
let mySql: KeyStore
let pgSql: KeyStore

before(async () => {
  ;[c, rr, my, pg] = await startAll([startCluster({groups: 1, proxies: 2, slots: 'group1'}), startRedis(), startMariaDb(), startPostgres()] as const)
  direct = rr.client()
})
const T0 = Date.now()
const log = (m: string) => process.env.CUTOVER_DEBUG && console.error(`[${Date.now() - T0} ms] ${m}`)
after(async () => {
  if (process.env.CUTOVER_DEBUG) for (const p of c?.proxies ?? []) console.error(`--- ${p.id} (exit ${p.proc.child.exitCode})\n${p.proc.output().slice(-3000)}`)
  direct?.disconnect()
  await mySql?.close().catch(() => {})
  await pgSql?.close().catch(() => {})
  await c?.stop()
  await Promise.all([rr?.stop(), my?.stop(), pg?.stop()])
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** One writer per key prefix: INCR, HINCRBY, RPUSH, SET through one proxy, GET back through the other. */
class Writer {
  n = 0
  errors: string[] = []
  stopped = false
  readonly clients: Redis[]
  constructor(readonly prefix: string) {
    this.clients = c.proxies.map((p) => p.client())
  }
  async step(): Promise<void> {
    const i = this.n + 1
    const w = this.clients[i % 2]!
    const r = this.clients[(i + 1) % 2]!
    const expect = async (what: string, got: Promise<unknown>, want: unknown) => {
      try {
        const g = await got
        if (String(g) !== String(want)) this.errors.push(`${this.prefix} #${i} ${what}: got ${String(g)}, want ${String(want)}`)
      } catch (err) {
        this.errors.push(`${this.prefix} #${i} ${what}: ${(err as Error).message}`)
      }
    }
    await expect('INCR', w.incr(`${this.prefix}:n`), i)
    await expect('HINCRBY', w.hincrby(`${this.prefix}:h`, 'f', 2), 2 * i)
    await expect('RPUSH', w.rpush(`${this.prefix}:l`, String(i)), i)
    await expect('SET', w.set(`${this.prefix}:s`, `v${i}`), 'OK')
    await expect('GET', r.get(`${this.prefix}:s`), `v${i}`)
    await expect('GET n', r.get(`${this.prefix}:n`), i)
    this.n = i
  }
  async loop(): Promise<void> {
    while (!this.stopped && this.errors.length < 20) await this.step()
  }
}

/**
 * Many clients on the same few counters through both proxies: every INCR that was answered must be in
 * the final value, so an update lost while the proxies change sides (switch, abort) shows.
 */
class SharedCounters {
  readonly counted = new Map<string, number>()
  errors: string[] = []
  stopped = false
  constructor(readonly keys: string[]) {
    for (const k of keys) this.counted.set(k, 0)
  }
  async client(r: Redis, seed: number): Promise<void> {
    for (let i = seed; !this.stopped && this.errors.length < 20; i++) {
      const k = this.keys[i % this.keys.length]!
      try {
        await r.incr(k)
        this.counted.set(k, this.counted.get(k)! + 1)
      } catch (err) {
        this.errors.push(`INCR ${k}: ${(err as Error).message}`)
      }
    }
  }
}

async function sqlGet(s: KeyStore, ...argv: string[]): Promise<string> {
  return formatReply(await s.command(...(argv as [string, ...string[]])))
}

describe('cutover through two real proxies', () => {
  test('rstore route for a slot key (no rules yet)', async () => {
    const s = JSON.parse(await c.cliOk(['route', 'plain-key', '--json']))
    assert.equal(s.kind, 'slot')
    assert.equal(s.slot, slotOf('plain-key'))
    assert.equal(s.state, 'online')
    assert.equal(s.group, 1)
    assert.match(await c.cliOk(['route', 'plain-key']), /slot/)
    assert.equal(await c.proxies[0]!.client().set('plain-key', 'x'), 'OK')
  })

  test('a: redis -> mariadb to the end; b: redis -> postgres, aborted after switch; under load', {timeout: 120_000}, async () => {
    await Promise.all([
      c.cliOk(['dbunit', 'add', 'r', '--type', 'redis', '--server', rr.addr]),
      c.cliOk(['dbunit', 'add', 'my', '--json-value', JSON.stringify({type: 'mysql', url: my.url, maxOpen: 8})]),
      c.cliOk(['dbunit', 'add', 'pg', '--json-value', JSON.stringify({type: 'postgres', url: pg.url, maxOpen: 8})]),
    ])
    await Promise.all([
      c.cliOk(['dbgroup', 'add', 'gr', '--type', 'redis', '--item', 'r']),
      c.cliOk(['dbgroup', 'add', 'gmy', '--type', 'mysql', '--item', 'my']),
      c.cliOk(['dbgroup', 'add', 'gpg', '--type', 'postgres', '--item', 'pg']),
    ])
    await c.cliOk(['shard', 'add', 's', '--shard-type', 'hash', '--item', 'dbgroup:gr'])
    await c.cliOk(['rule', 'add', 'a', '--regexp', 'a:(\\d+):.*', '--hash-slot', '1', '--shard', 's', '--example', 'a:1:x', '--order', '1'])
    await c.cliOk(['rule', 'add', 'b', '--regexp', 'b:.*', '--shard', 's', '--example', 'b:1', '--order', '2'])

    log('config done')
    // rstore route for a rule key and for a key no rule claims
    const rt = JSON.parse(await c.cliOk(['route', 'a:3:n', '--json']))
    assert.equal(rt.kind, 'rule')
    assert.equal(rt.path.rule, 'a')
    assert.equal(rt.path.capture, '3')
    assert.equal(rt.path.dbgroup, 'gr')
    assert.match(await c.cliOk(['route', 'a:3:n']), /^dbgroup\s+gr \(redis, /m)
    assert.equal(JSON.parse(await c.cliOk(['route', 'plain-key', '--json'])).kind, 'unregistered')

    // both proxies serve the rules (the config commands do not wait for them)
    log('route done')
    const p0 = c.proxies[0]!.client()
    const p1 = c.proxies[1]!.client()
    const t0 = Date.now()
    for (;;) {
      const ok = await Promise.all([p0, p1].map((p) => p.get('plain-key').then(() => false, (e: Error) => /not registered/.test(e.message))))
      if (ok.every(Boolean)) break
      assert.ok(Date.now() - t0 < 10_000, 'proxies did not load the rules')
      await sleep(20)
    }
    log('rules loaded')
    assert.equal(await p0.set('a:1:probe', 'p'), 'OK')
    assert.equal(await direct.get('a:1:probe'), 'p') // served by the rule's Redis, not the slot group

    log('probe ok')
    const writers = [...Array.from({length: 6}, (_, i) => new Writer(`a:${i}`)), ...Array.from({length: 6}, (_, i) => new Writer(`b:${i}`))]
    for (const w of writers) for (let k = 0; k < 3; k++) await w.step()
    log('pre-steps done')
    for (let i = 0; i < 50; i++) {
      assert.equal(await p0.set(`a:${i}:cold`, `c${i}`), 'OK')
      assert.equal(await p1.set(`b:cold:${i}`, `c${i}`), 'OK')
    }
    const shared = new SharedCounters(['a:7:ctr', 'a:8:ctr', 'b:ctr:1', 'b:ctr:2'])
    const loops = [...writers.map((w) => w.loop()), ...Array.from({length: 8}, (_, i) => shared.client(c.proxies[i % 2]!.client(), i))]
    const cut = async (...args: string[]) => (log(args.join(' ')), JSON.parse)(await c.cliOk(['cutover', ...args, '--json'], {timeoutMs: 60_000}))
    try {
      await Promise.all([cut('start', 'ca', '--rule', 'a', '--to', 'gmy'), cut('start', 'cb', '--rule', 'b', '--to', 'gpg')])
      const bf = async (to: string, target: string, match: string) =>
        JSON.parse(await c.cliOk(['backfill', '--to', to, '--source', rr.addr, '--target', target, '--match', match, '--json'], {timeoutMs: 60_000}))
      log("backfill")
      // one backfill job at a time per product (the checkpoint database refuses a second one)
      const ba = await bf('mysql', my.url, 'a:*')
      const bb = await bf('postgres', pg.url, 'b:*')
      assert.ok(ba.copied >= 50 && bb.copied >= 50, `backfill copied ${JSON.stringify(ba)} ${JSON.stringify(bb)}`)

      const [wa, wb] = await Promise.all([cut('switch', 'ca'), cut('switch', 'cb')])
      assert.equal(wa.verify.different, 0, JSON.stringify(wa.verify))
      assert.equal(wb.verify.different, 0, JSON.stringify(wb.verify))
      assert.ok(wa.verify.compared >= 50 + 6 * 4)
      assert.equal((await cut('status', 'ca')).cutover.step, 'switched')
      await sleep(300) // load on the switched routing

      log("sqlonly")
      // reads are served from SQL now: a key put only into the SQL stores is visible through both proxies
      mySql = await openStore(my.url)
      pgSql = await openStore(pg.url)
      await mySql.command('SET', 'a:9:sqlonly', 'from-mariadb')
      await pgSql.command('SET', 'b:sqlonly', 'from-postgres')
      for (const p of [p0, p1]) {
        assert.equal(await p.get('a:9:sqlonly'), 'from-mariadb')
        assert.equal(await p.get('b:sqlonly'), 'from-postgres')
      }

      const fa = await cut('finish', 'ca')
      assert.equal(fa.cutover.step, 'finished')
      const ab = await cut('abort', 'cb')
      assert.equal(ab.cutover.step, 'aborted')
      const st = await cut('status', 'cb')
      assert.equal(st.cutover.step, 'aborted')
      assert.deepEqual(st.proxiesBehind, [])
      // b is back on Redis: the SQL-only key is gone from the proxies' view
      for (const p of [p0, p1]) assert.equal(await p.get('b:sqlonly'), null)

      // a's Redis copy no longer changes while the load goes on
      const frozen = await Promise.all(writers.filter((w) => w.prefix.startsWith('a:')).map((w) => direct.get(`${w.prefix}:n`)))
      const nAtFinish = writers.map((w) => w.n)
      await sleep(500)
      assert.ok(writers.every((w, i) => w.n > nAtFinish[i]! || w.errors.length), 'the load stopped')
      assert.deepEqual(await Promise.all(writers.filter((w) => w.prefix.startsWith('a:')).map((w) => direct.get(`${w.prefix}:n`))), frozen)
    } finally {
      for (const w of writers) w.stopped = true
      shared.stopped = true
      await Promise.all(loops)
    }

    assert.deepEqual(writers.flatMap((w) => w.errors), [])
    assert.deepEqual(shared.errors, [])
    for (const [k, n] of shared.counted) {
      assert.ok(n > 50, `${k}: only ${n} increments`)
      for (const p of [p0, p1]) assert.equal(await p.get(k), String(n), `${k}: every answered INCR counted`)
      // and in the store that serves it now: MariaDB for a, Redis for b
      if (k.startsWith('a:')) assert.equal(await sqlGet(mySql, 'GET', k), `"${n}"`)
      else assert.equal(await direct.get(k), String(n))
    }
    assert.ok(writers.every((w) => w.n > 10), `writes per writer: ${writers.map((w) => w.n)}`)
    for (const w of writers) {
      const sql = w.prefix.startsWith('a:')
      // through both proxies
      for (const p of [p0, p1]) {
        assert.equal(await p.get(`${w.prefix}:n`), String(w.n))
        assert.equal(await p.hget(`${w.prefix}:h`, 'f'), String(2 * w.n))
        assert.equal(await p.llen(`${w.prefix}:l`), w.n)
        assert.deepEqual(await p.lrange(`${w.prefix}:l`, 0, -1), Array.from({length: w.n}, (_, k) => String(k + 1)))
        assert.equal(await p.get(`${w.prefix}:s`), `v${w.n}`)
      }
      // and in the store that serves it now: MariaDB for a, Redis for b (nothing lost by the abort)
      if (sql) {
        assert.equal(await sqlGet(mySql, 'GET', `${w.prefix}:n`), `"${w.n}"`)
        assert.equal(await sqlGet(mySql, 'HGET', `${w.prefix}:h`, 'f'), `"${2 * w.n}"`)
        assert.equal(await sqlGet(mySql, 'LLEN', `${w.prefix}:l`), `:${w.n}`)
      } else {
        assert.equal(await direct.get(`${w.prefix}:n`), String(w.n))
        assert.equal(await direct.hget(`${w.prefix}:h`, 'f'), String(2 * w.n))
        assert.equal(await direct.llen(`${w.prefix}:l`), w.n)
        assert.equal(await direct.get(`${w.prefix}:s`), `v${w.n}`)
      }
    }
    for (const i of [0, 7, 49]) {
      assert.equal(await sqlGet(mySql, 'GET', `a:${i}:cold`), `"c${i}"`)
      assert.equal(await p1.get(`a:${i}:cold`), `c${i}`)
      assert.equal(await p0.get(`b:cold:${i}`), `c${i}`)
      assert.equal(await direct.get(`b:cold:${i}`), `c${i}`)
    }
    // rstore route now shows the finished rule on MariaDB
    assert.equal(JSON.parse(await c.cliOk(['route', 'a:3:n', '--json'])).path.dbgroup, 'gmy')
    assert.equal(JSON.parse(await c.cliOk(['route', 'b:3', '--json'])).path.dbgroup, 'gr')
  })
})
