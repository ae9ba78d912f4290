/**
 * The client limits of docs/proxy-limits.md, against real redis-servers: Redis's pre-auth limits (with
 * the same error texts as a redis-server with requirepass), the per-client query buffer limit, the
 * clients' memory ceiling, read backpressure for a client that never reads, a protocol error that
 * closes at once, and failed AUTH counted and slowed. The proxy's RSS is read from /proc.
 */
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {after, before, describe, test} from 'node:test'
import {ARG_OVERHEAD_BYTES, ProtocolError, RequestParser} from '../src/resp/resp.js'
import {startCluster, type Cluster, type ClusterProxy} from './harness/cluster.js'
import {startRedis, type RedisServer} from './harness/redis.js'
import {waitFor} from './harness/process.js'
import {RawClient, ReplyError, cmd, exchange, type Reply} from './harness/raw.js'

const PASSWORD = 'limits-pw'
const MiB = 1024 * 1024

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m![1]) * 1024
}

function str(r: Reply): string {
  if (Buffer.isBuffer(r)) return r.toString()
  if (r instanceof ReplyError) return `-${r.message}`
  return String(r)
}

async function authed(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port)
  assert.equal(await c.call('AUTH', PASSWORD), 'OK')
  return c
}

/** Writes data in pieces until the peer closes (or everything is written); true when it closed. */
async function writeUntilClosed(c: RawClient, pieces: Iterable<Buffer>, waitMs = 3000): Promise<boolean> {
  for (const p of pieces) {
    if (c.closed || c.socket.destroyed) return true
    if (!c.socket.write(p)) await new Promise<void>((r) => { c.socket.once('drain', r); c.socket.once('close', r) })
  }
  return (await c.readAll(waitMs)).closed
}

function* emptyArgs(n: number, per = 65536): Generator<Buffer> {
  const piece = Buffer.from('$0\r\n\r\n'.repeat(per))
  for (let i = 0; i < n; i += per) yield piece
}

describe('RequestParser limits (unit)', () => {
  test('pre-auth: more than 10 arguments or a bulk over 16 KiB are refused with Redis’s texts; one request per feed', () => {
    const p = new RequestParser()
    p.preAuth = true
    assert.throws(() => p.feed(Buffer.from('*11\r\n')), (e: unknown) => e instanceof ProtocolError && e.message === 'unauthenticated multibulk length')
    const q = new RequestParser()
    q.preAuth = true
    assert.throws(() => q.feed(Buffer.from('*1\r\n$16385\r\n')), (e: unknown) => e instanceof ProtocolError && e.message === 'unauthenticated bulk length')
    const r = new RequestParser()
    r.preAuth = true
    const two = Buffer.concat([cmd('AUTH', 'x'), cmd('MSET', ...Array.from({length: 20}, (_, i) => `k${i}`))])
    assert.equal(r.feed(two).length, 1, 'only the AUTH while not authenticated')
    r.preAuth = false
    const rest = r.feed(Buffer.alloc(0))
    assert.equal(rest.length, 1)
    assert.equal(rest[0]!.args.length, 21, 'the request after it is parsed with the authed limits')
  })

  test('heldBytes counts a cut multibulk request’s bytes and a cost per argument; header lines are bounded at 64 KiB', () => {
    const p = new RequestParser()
    const head = Buffer.from('*1000000\r\n')
    const args = Buffer.from('$0\r\n\r\n'.repeat(10_000))
    p.feed(head)
    p.feed(args)
    assert.equal(p.heldBytes(), head.length + args.length + 10_000 * ARG_OVERHEAD_BYTES)
    p.feed(args)
    assert.equal(p.heldBytes(), head.length + 2 * args.length + 20_000 * ARG_OVERHEAD_BYTES, 'counted once per argument, not re-summed')
    assert.deepEqual(new RequestParser().feed(Buffer.from('*' + '1'.repeat(1000))), [], 'a long header may still end')
    assert.throws(() => new RequestParser().feed(Buffer.from('*' + '1'.repeat(65 * 1024))), /too big mbulk count string/)
  })
})

describe('client limits (proxy with a password, through real redis-servers)', () => {
  let c: Cluster
  let p: ClusterProxy
  let redis: RedisServer

  before(async () => {
    ;[c, redis] = await Promise.all([
      startCluster({groups: 2, proxies: 0}),
      startRedis(),
    ])
    // Set after start: the harness's readiness probe does not authenticate.
    await redis.client().config('SET', 'requirepass', PASSWORD)
    p = await c.startProxy({
      env: {RSTORE_PROXY_AUTH: PASSWORD},
      args: ['--client-query-buffer-limit', String(16 * MiB), '--client-output-buffer-limit', String(64 * MiB), '--maxmemory-clients', String(96 * MiB)],
    })
  })
  after(async () => {
    await Promise.all([c?.stop(), redis?.stop()])
  })

  test('the password comes from RSTORE_PROXY_AUTH (not the command line): NOAUTH, WRONGPASS, OK', async () => {
    const cl = await RawClient.connect(p.port)
    try {
      assert.equal(str(await cl.call('GET', 'x')), '-NOAUTH Authentication required.')
      assert.equal(str(await cl.call('AUTH', 'nope')), '-WRONGPASS invalid username-password pair or user is disabled.')
      assert.equal(await cl.call('AUTH', PASSWORD), 'OK')
      assert.equal(await cl.call('SET', 'limits:a', '1'), 'OK')
    } finally {
      cl.close()
    }
    assert.ok(!readFileSync(`/proc/${p.proc.child.pid}/cmdline`, 'utf8').includes(PASSWORD), 'the password is not in ps')
  })

  test('pre-auth limits: the same error as a redis-server with requirepass, and the connection is closed', async () => {
    const inputs = [
      Buffer.from('*1048576\r\n'),
      Buffer.from('*11\r\n'),
      Buffer.from('*2\r\n$4\r\nAUTH\r\n$100000\r\n'),
      Buffer.from('*1\r\n$16385\r\n'),
    ]
    for (const input of inputs) {
      const [fromRedis, fromProxy] = await Promise.all([exchange(redis.port, input, 1500), exchange(p.port, input, 1500)])
      assert.match(fromRedis.data.toString(), /^-ERR Protocol error: unauthenticated (multi)?bulk length\r\n$/, 'the reference')
      assert.equal(fromProxy.data.toString(), fromRedis.data.toString(), JSON.stringify(input.toString()))
      assert.ok(fromProxy.closed && fromRedis.closed)
    }
    // Within the limits before AUTH; and right after AUTH, in the same write, a big request is fine.
    const big = cmd('MSET', ...Array.from({length: 40}, (_, i) => [`limits:m${i}`, 'x'.repeat(20_000)]).flat())
    const r = await exchange(p.port, Buffer.concat([cmd('AUTH', PASSWORD), big, cmd('GET', 'limits:m39')]), 1500)
    assert.ok(r.data.toString().startsWith('+OK\r\n+OK\r\n$20000\r\n'), r.data.toString().slice(0, 40))
  })

  test('40 unauthenticated clients sending a million empty arguments each: closed at once, the proxy stays small', async () => {
    const rss0 = rssBytes(p.proc.child.pid!)
    const closed = await Promise.all(
      Array.from({length: 40}, async () => {
        const cl = await RawClient.connect(p.port)
        try {
          return await writeUntilClosed(cl, [Buffer.from('*1048576\r\n'), ...emptyArgs(1_048_575)], 3000)
        } finally {
          cl.close()
        }
      }),
    )
    assert.ok(closed.every(Boolean), 'every attacker was disconnected')
    assert.ok(rssBytes(p.proc.child.pid!) - rss0 < 100 * MiB, `RSS grew by ${((rssBytes(p.proc.child.pid!) - rss0) / MiB).toFixed(0)} MiB`)
    const ok = await authed(p.port)
    assert.equal(await ok.call('PING'), 'PONG')
    ok.close()
  })

  test('an authenticated client past --client-query-buffer-limit is closed; many of them stay under --maxmemory-clients', async () => {
    const before = Number(/^rstore_clients_closed_for_limits_total (\d+)/m.exec((await p.http('/metrics')).body)![1])
    // One client: a million empty arguments weigh 1M x the per-argument cost, far past 16 MiB.
    const one = await authed(p.port)
    assert.ok(await writeUntilClosed(one, [Buffer.from('*1048576\r\n'), ...emptyArgs(1_048_575)], 3000), 'closed past the query buffer limit')
    one.close()
    // Twelve clients of 12 MiB each (under the per-client limit, 144 MiB together, over the 96 MiB ceiling).
    const rss0 = rssBytes(p.proc.child.pid!)
    const value = Buffer.alloc(12 * MiB, 0x61)
    const many = await Promise.all(Array.from({length: 12}, () => authed(p.port)))
    await Promise.all(many.map((cl) => writeUntilClosed(cl, [Buffer.from(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${64 * MiB}\r\n`), value], 0)))
    await waitFor('the biggest clients are closed', () => many.filter((cl) => cl.closed).length >= 4, 10_000)
    const rss = rssBytes(p.proc.child.pid!)
    assert.ok(rss - rss0 < 96 * MiB + 64 * MiB, `RSS grew by ${((rss - rss0) / MiB).toFixed(0)} MiB (ceiling 96 MiB)`)
    assert.ok(many.some((cl) => !cl.closed), 'only enough clients to fit are closed')
    for (const cl of many) cl.close()
    const after = Number(/^rstore_clients_closed_for_limits_total (\d+)/m.exec((await p.http('/metrics')).body)![1])
    assert.ok(after - before >= 5, `closed for limits: ${after - before}`)
    const ok = await authed(p.port)
    assert.equal(await ok.call('PING'), 'PONG')
    ok.close()
  })

  test('a client that pipelines 50k GETs of 16 KB values and never reads: reading stops, the proxy stays small, every reply comes once it reads', async () => {
    const setup = await authed(p.port)
    assert.equal(await setup.call('SET', 'limits:big', 'v'.repeat(16_000)), 'OK')
    setup.close()
    const rss0 = rssBytes(p.proc.child.pid!)
    const cl = await authed(p.port)
    cl.socket.pause()
    const n = 50_000
    const get = cmd('GET', 'limits:big')
    const batch = Buffer.concat(Array.from({length: 1000}, () => get))
    for (let i = 0; i < n / 1000; i++) cl.socket.write(batch)
    await new Promise((r) => setTimeout(r, 2000))
    const grown = rssBytes(p.proc.child.pid!) - rss0
    // Served meanwhile: another client of the same proxy.
    const other = await authed(p.port)
    assert.equal(await other.call('PING'), 'PONG')
    other.close()
    assert.ok(grown < 200 * MiB, `RSS grew by ${(grown / MiB).toFixed(0)} MiB for ${(n * 16_000) / MiB} MiB of replies`)
    cl.socket.resume()
    const replies = await cl.read(n, 60_000)
    assert.ok(replies.every((r) => Buffer.isBuffer(r) && r.length === 16_000), 'every reply, in order, whole')
    assert.equal(await cl.call('PING'), 'PONG')
    cl.close()
  })

  test('a protocol error is answered and the connection closes at once: nothing more is read', async () => {
    const cl = await authed(p.port)
    const piece = Buffer.alloc(MiB, 0x61) // an inline request that never ends
    let written = 0
    const closed = await writeUntilClosed(cl, (function* () {
      for (let i = 0; i < 200; i++) {
        written += piece.length
        yield piece
      }
    })(), 3000)
    assert.ok(closed, 'closed')
    assert.ok(written < 64 * MiB, `${written / MiB} MiB went through before the close`)
    cl.close()
  })

  test('failed AUTH attempts are counted in /metrics and slowed after 3 per connection; the right password still works', async () => {
    const count = async () => Number(/^rstore_auth_failures_total (\d+)/m.exec((await p.http('/metrics')).body)![1])
    const before = await count()
    const cl = await RawClient.connect(p.port)
    const times: number[] = []
    for (let i = 0; i < 6; i++) {
      const t = Date.now()
      assert.match(str(await cl.call('AUTH', `wrong${i}`)), /^-WRONGPASS/)
      times.push(Date.now() - t)
    }
    assert.ok(times.slice(0, 3).every((t) => t < 80), `first three at full speed: ${times}`)
    assert.ok(times[3]! >= 90 && times[4]! >= 190 && times[5]! >= 390, `then 100, 200, 400 ms: ${times}`)
    // Pipelined guesses wait behind each other: 4 more take at least 800+1600+2000+2000 ms.
    const t = Date.now()
    cl.write(Buffer.concat([cmd('AUTH', 'a'), cmd('AUTH', 'b'), cmd('AUTH', 'c'), cmd('AUTH', PASSWORD)]))
    const r = await cl.read(4, 15_000)
    assert.ok(Date.now() - t >= 4000, `pipelined guesses took ${Date.now() - t} ms`)
    assert.deepEqual(r.map(str).map((s) => s.slice(0, 10)), ['-WRONGPASS', '-WRONGPASS', '-WRONGPASS', 'OK'])
    assert.equal(await cl.call('PING'), 'PONG')
    cl.close()
    assert.equal((await count()) - before, 9)
  })
})
