// The proxy answering as one Redis for cross-group commands (docs/proxy-fanout.md): SCAN, KEYS,
// RANDOMKEY, DBSIZE, FLUSHDB, CONFIG, SCRIPT over a real 2-group cluster, compared with each group's
// master read directly.
import assert from 'node:assert/strict'
import {createServer, type AddressInfo, type Server} from 'node:net'
import {after, before, describe, test} from 'node:test'
import type {Redis} from 'ioredis'
import {slotOf} from '../src/topology/slots.js'
import {startCluster, type Cluster} from './harness/cluster.js'
import {waitFor} from './harness/process.js'

/** Every key of both groups, read directly, without rstore's own. */
async function directKeys(c: Cluster, pattern = '*'): Promise<string[]> {
  const all: string[] = []
  for (const g of c.groups) all.push(...(await g.client().keys(pattern)))
  return all.filter((k) => !k.startsWith('__rstore:')).sort()
}

/** A full SCAN through the proxy, calling between() after each step; the set of keys returned. */
async function scanAll(r: Redis, opts: (string | number)[], between: () => Promise<void> = async () => {}): Promise<string[]> {
  const seen = new Set<string>()
  let cursor = '0'
  let steps = 0
  do {
    const [next, keys] = (await r.call('SCAN', cursor, ...opts)) as [string, string[]]
    for (const k of keys) seen.add(k)
    cursor = next
    await between()
    assert.ok(++steps < 10_000, 'SCAN ends')
  } while (cursor !== '0')
  return [...seen].sort()
}

describe('fan-out commands through the proxy over two groups', () => {
  let c: Cluster
  let r: Redis
  const strings = Array.from({length: 300}, (_, i) => `str:${i}`)
  const hashes = Array.from({length: 60}, (_, i) => `hash:${i}`)

  before(async () => {
    c = await startCluster({groups: 2, proxies: 1})
    r = c.proxies[0]!.client()
    const p = r.pipeline()
    for (const k of strings) p.set(k, k)
    for (const k of hashes) p.hset(k, 'f', k)
    await p.exec()
  })
  after(async () => {
    await c?.stop()
  })

  test('the keys are spread over both groups; DBSIZE is the sum of the masters', async () => {
    const sizes = await Promise.all(c.groups.map((g) => g.client().dbsize()))
    assert.ok(sizes.every((n) => n > 0), `both groups hold keys: ${sizes}`)
    assert.equal(await r.dbsize(), sizes[0]! + sizes[1]!)
  })

  test('SCAN returns exactly the keys written, with COUNT, MATCH and TYPE', async () => {
    const all = [...strings, ...hashes].sort()
    assert.deepEqual(await directKeys(c), all)
    assert.deepEqual(await scanAll(r, ['COUNT', 7]), all)
    assert.deepEqual(await scanAll(r, ['MATCH', 'str:1*', 'COUNT', 50]), strings.filter((k) => k.startsWith('str:1')).sort())
    assert.deepEqual(await scanAll(r, ['TYPE', 'hash']), [...hashes].sort())
    assert.deepEqual(await scanAll(r, ['MATCH', 'nothing:*']), [])
  })

  test('SCAN refuses a cursor that is not a number and passes on Redis errors of its options', async () => {
    await assert.rejects(r.call('SCAN', 'abc'), /invalid cursor/)
    await assert.rejects(r.call('SCAN', '0', 'COUNT', 'x'), /not an integer/)
  })

  test("ioredis' scanStream through the proxy sees every key", async () => {
    const seen = new Set<string>()
    await new Promise<void>((resolve, reject) => {
      const s = r.scanStream({count: 20})
      s.on('data', (keys: string[]) => keys.forEach((k) => seen.add(k)))
      s.on('end', resolve)
      s.on('error', reject)
    })
    assert.deepEqual([...seen].sort(), await directKeys(c))
  })

  test('KEYS merges both groups; RANDOMKEY gives a key that exists', async () => {
    assert.deepEqual((await r.keys('*')).sort(), await directKeys(c))
    assert.deepEqual((await r.keys('hash:*')).sort(), await directKeys(c, 'hash:*'))
    const all = new Set(await directKeys(c))
    for (let i = 0; i < 10; i++) assert.ok(all.has((await r.randomkey())!))
  })

  test('CONFIG SET reaches every master, CONFIG GET answers once; a bad value names a group', async () => {
    assert.equal(await r.config('SET', 'maxmemory-policy', 'allkeys-lru'), 'OK')
    for (const g of c.groups) assert.deepEqual(await g.client().config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'allkeys-lru'])
    assert.deepEqual(await r.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'allkeys-lru'])
    const many = (await r.config('GET', 'maxmemory*')) as string[]
    assert.deepEqual(many, await c.groups[0]!.client().config('GET', 'maxmemory*'))
    await assert.rejects(r.config('SET', 'maxmemory-policy', 'no-such-policy'), /group 1/)
    assert.equal(await r.config('RESETSTAT'), 'OK')
    await assert.rejects(r.config('REWRITE'), /unsupported command 'config rewrite'/)
    await assert.rejects(r.call('CONFIG', 'GET'), /^ReplyError: ERR wrong number of arguments for 'config\|get' command$/)
    // What the proxy's backend user may now run is still out of reach of a script sent with EVAL.
    for (const lua of ["return redis.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')", "return redis.call('SCRIPT', 'FLUSH')", "return redis.call('FLUSHDB')"]) {
      await assert.rejects(r.eval(lua, 1, strings[0]!), /not allowed from script|NOPERM|can't run this command/, lua)
    }
    assert.deepEqual(await c.groups[1]!.client().config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'allkeys-lru'])
  })

  test('SCRIPT LOAD on every master: EVALSHA works on keys of each group; EXISTS and FLUSH', async () => {
    const sha = (await r.script('LOAD', "return redis.call('GET', KEYS[1])")) as string
    const k1 = strings.find((k) => c.groupOf(k) === 1)!
    const k2 = strings.find((k) => c.groupOf(k) === 2)!
    assert.equal(await r.evalsha(sha, 1, k1), k1)
    assert.equal(await r.evalsha(sha, 1, k2), k2)
    const bogus = '0'.repeat(40)
    assert.deepEqual(await r.script('EXISTS', sha, bogus), [1, 0])
    assert.equal(await r.script('FLUSH'), 'OK')
    assert.deepEqual(await r.script('EXISTS', sha), [0])
    await assert.rejects(r.evalsha(sha, 1, k1), /NOSCRIPT/)
  })

  test("INFO: Redis's sections and fields summed over the groups, the proxy's clients, and # Rstore", async () => {
    const parse = (text: string) => {
      const out = new Map<string, string>()
      for (const line of text.split(/\r?\n/)) if (line.includes(':') && !line.startsWith('#')) out.set(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1))
      return out
    }
    const direct = await Promise.all(c.groups.map(async (g) => parse(await g.client().info())))
    const all = await r.info()
    for (const section of ['# Server', '# Clients', '# Memory', '# Stats', '# Replication', '# CPU', '# Keyspace', '# Rstore']) {
      assert.ok(all.includes(section), `INFO has ${section}`)
    }
    const mine = parse(all)
    assert.equal(mine.get('redis_version'), direct[0]!.get('redis_version'))
    assert.equal(mine.get('groups'), '2')
    assert.match(mine.get('proxy_id')!, /^proxy_1/)
    const keys = (m: Map<string, string>) => Number(/keys=(\d+)/.exec(m.get('db0') ?? 'keys=0')![1])
    const sizes = await Promise.all(c.groups.map((g) => g.client().dbsize()))
    assert.equal(keys(mine), sizes[0]! + sizes[1]!)
    assert.ok(Number(mine.get('used_memory')) >= Number(direct[0]!.get('used_memory')) + Number(direct[1]!.get('used_memory')) * 0.5)
    const ks = await r.info('keyspace')
    assert.ok(!ks.includes('# Server') && !ks.includes('# Rstore') && ks.includes('# Keyspace'), ks)
    for (const g of [1, 2]) await r.set(strings.find((k) => c.groupOf(k) === g)!, 'again')
    const calls = (m: Map<string, string>) => Number(/calls=(\d+)/.exec(m.get('cmdstat_set') ?? 'calls=0')![1])
    const directSets = (await Promise.all(c.groups.map(async (g) => calls(parse(await g.client().info('commandstats')))))).reduce((a, b) => a + b)
    assert.ok(directSets >= 2)
    assert.equal(calls(parse(await r.info('commandstats'))), directSets)
  })

  test('LASTSAVE is the oldest of the masters', async () => {
    const direct = await Promise.all(c.groups.map((g) => g.client().lastsave()))
    assert.equal(await r.lastsave(), Math.min(...direct))
  })

  test('SCAN while a slot migrates returns every key, even those moved mid-scan; FLUSHDB is refused', async () => {
    // 40 keys in one slot of group 2, then that slot put migrating to group 1 with no mover: each
    // GET through the proxy moves its key, so keys change group while the scan runs.
    const tag = Array.from({length: 100}, (_, i) => `t${i}`).find((t) => c.groupOf(`{${t}}`) === 2)!
    const moving = Array.from({length: 40}, (_, i) => `{${tag}}:${i}`)
    for (const k of moving) await r.set(k, k)
    const slot = slotOf(moving[0]!)
    const store = await c.openStore()
    const epoch = await store.update(() => ({slots: [{id: slot, state: 'migrating', group: 1, from: 2}]}))
    await waitFor('proxy applies the migrating slot', async () => Number((await c.proxies[0]!.status()).epoch) >= epoch, 5000)
    const before = await directKeys(c)
    let next = 0
    const seen = await scanAll(r, ['COUNT', 10], async () => {
      for (let i = 0; i < 4 && next < moving.length; i++, next++) assert.equal(await r.get(moving[next]!), moving[next])
    })
    assert.ok(next > 0 && (await c.groups[0]!.client().exists(moving[0]!)) === 1, 'keys moved during the scan')
    assert.deepEqual(seen, before)
    await assert.rejects(r.flushdb(), /flushdb refused while a migration runs \(slot \d+ is migrating\)/)
    await assert.rejects(r.flushall(), /refused while a migration runs/)
    assert.deepEqual(await directKeys(c), before, 'nothing was flushed')
    // Finish by hand: move the rest, then the slot is online on group 1.
    for (const k of moving) assert.equal(await r.get(k), k)
    const online = await store.update(() => ({slots: [{id: slot, state: 'online', group: 1}]}))
    await waitFor('proxy applies the online slot', async () => Number((await c.proxies[0]!.status()).epoch) >= online, 5000)
  })

  test('--deny-commands turns FLUSHDB and CONFIG off; an unknown name stops the start', async () => {
    const p = await c.startProxy({id: 'proxy_deny', args: ['--deny-commands', 'FLUSHDB,config']})
    const d = p.client()
    await assert.rejects(d.flushdb(), /command 'flushdb' is disabled in this rstore proxy \(--deny-commands\)/)
    await assert.rejects(d.config('GET', 'maxmemory'), /command 'config' is disabled/)
    assert.ok((await d.dbsize()) > 0)
    await p.stop()
    const bad = await c.cli(['proxy', 'start', '--deny-commands', 'flushdb,nosuch', '--addr', '127.0.0.1:0'])
    assert.notEqual(bad.code, 0)
    assert.match(bad.stderr, /unknown command 'nosuch'/)
  })

  test('FLUSHDB empties both groups; a bad argument changes nothing', async () => {
    await assert.rejects(r.call('FLUSHDB', 'NOW'), /syntax error/)
    assert.ok((await r.dbsize()) > 0)
    assert.equal(await r.flushdb('ASYNC'), 'OK')
    await waitFor('both groups empty', async () => (await Promise.all(c.groups.map((g) => g.client().dbsize()))).every((n) => n === 0), 5000)
    assert.equal(await r.dbsize(), 0)
    assert.deepEqual(await scanAll(r, []), [])
    assert.equal(await r.randomkey(), null)
  })
})

describe('fan-out when a group master is not a Redis server', () => {
  let c: Cluster
  let liar: Server
  before(async () => {
    c = await startCluster({groups: 2, proxies: 1})
    // Answers every request with an HTTP line, as a web server on a mistyped address would.
    liar = createServer((sock) => sock.on('data', () => sock.write('HTTP/1.1 400 Bad Request\r\n\r\n')).on('error', () => {}))
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve))
  })
  after(async () => {
    await c?.stop()
    await new Promise((resolve) => liar?.close(resolve))
  })

  test('INFO, DBSIZE, SCAN and KEYS answer with an error naming the server; the proxy keeps serving', async () => {
    const store = await c.openStore()
    const addr = `127.0.0.1:${(liar.address() as AddressInfo).port}`
    const epoch = await store.update(() => ({groups: [{id: 2, servers: [{addr, role: 'master' as const}]}]}))
    await waitFor('epoch applied', async () => Number((await c.proxies[0]!.status()).epoch) >= epoch, 10_000)
    const r = c.proxies[0]!.client()
    const info = String(await r.call('INFO'))
    assert.match(info, /rstore_info_error:.*not a Redis server/, 'the failing group is named in # Rstore')
    for (const cmd of [['DBSIZE'], ['SCAN', '0', 'COUNT', '1000'], ['KEYS', '*']]) {
      let scanned: unknown
      try {
        // SCAN may answer group 1's part before it reaches group 2: follow the cursor to the end.
        let cursor = '0'
        do {
          const reply = (await r.call(cmd[0]!, ...(cmd[0] === 'SCAN' ? [cursor, ...cmd.slice(2)] : cmd.slice(1)))) as unknown
          if (cmd[0] !== 'SCAN') { scanned = reply; break }
          cursor = (reply as [string])[0]
        } while (cursor !== '0')
        assert.fail(`${cmd[0]} should have failed, got ${JSON.stringify(scanned)}`)
      } catch (err) {
        assert.match((err as Error).message, /not a Redis server/, `${cmd[0]}: ${(err as Error).message}`)
      }
    }
    await assert.rejects(r.get(`k{${slotKeyForGroup(c, 2)}}`), /not a Redis server/, "a data command gets the reason, never the peer's bytes")
    assert.equal(await r.ping(), 'PONG', 'the proxy is alive after the garbage replies')
    assert.equal(await r.set(`k{${slotKeyForGroup(c, 1)}}`, 'v'), 'OK', 'group 1 still serves')
  })
})

/** A key body whose slot group g serves under the initial assignment. */
function slotKeyForGroup(c: Cluster, g: number): string {
  for (let i = 0; ; i++) if (c.groupOf(`x${i}`) === g) return `x${i}`
}
