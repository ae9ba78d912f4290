/**
 * Proxy hardening, end to end over real redis-servers: a stopped backend (SIGSTOP) times out instead
 * of hanging its clients, the HTTP endpoint answers GET/HEAD only, and failed AUTH is counted and slowed.
 */
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {encodeCommand} from '../src/resp/resp.js'
import {migrateTimeoutMs} from '../src/resp/backend.js'
import {startCluster, type Cluster, type ClusterProxy} from './harness/cluster.js'
import {waitFor} from './harness/process.js'
import {RawClient, ReplyError, cmd, type Reply} from './harness/raw.js'

const TIMEOUT_MS = 1000

function keyIn(c: Cluster, g: number, prefix: string): string {
  for (let i = 0; ; i++) if (c.groupOf(`${prefix}${i}`) === g) return `${prefix}${i}`
}

function str(r: Reply): string {
  if (Buffer.isBuffer(r)) return r.toString()
  if (r instanceof ReplyError) return `-${r.message}`
  return String(r)
}

type Backend = {addr: string; state: string; timeouts: number}

async function backend(p: ClusterProxy, addr: string): Promise<Backend | undefined> {
  return ((await p.status()).backends as Backend[]).find((b) => b.addr === addr)
}

describe('proxy hardening', () => {
  let c: Cluster
  let p: ClusterProxy

  before(async () => {
    c = await startCluster({groups: 2, proxies: 1, proxyArgs: ['--backend-timeout', String(TIMEOUT_MS)], redisArgs: ['--enable-debug-command', 'yes']})
    p = c.proxies[0]!
  })
  after(async () => {
    for (const g of c?.groups ?? []) g.proc.child.kill('SIGCONT')
    await c?.stop()
  })

  test('a SIGSTOPped backend: its request times out, the server is down until PING answers; other groups are served', async () => {
    const k1 = keyIn(c, 1, 'to')
    const k2 = keyIn(c, 2, 'to')
    const addr2 = c.groups[1]!.addr
    const both = await RawClient.connect(p.port)
    const only1 = await RawClient.connect(p.port)
    const stopped = c.groups[1]!.proc.child
    try {
      assert.equal(await both.call('SET', k1, 'v1'), 'OK')
      assert.equal(await both.call('SET', k2, 'v2'), 'OK')
      assert.equal((await backend(p, addr2))?.state, 'up')
      stopped.kill('SIGSTOP')
      const t0 = Date.now()
      // A client of both groups: the group-2 request fails after the timeout, then its group-1 reply follows.
      both.write(Buffer.concat([cmd('GET', k2), cmd('GET', k1)]))
      const pending = both.read(2, 10_000)
      // A client of group 1 only is not held at all meanwhile.
      let slowest = 0
      let served = 0
      while (Date.now() - t0 < TIMEOUT_MS + 200) {
        const s = Date.now()
        assert.equal(str(await only1.call('GET', k1)), 'v1')
        slowest = Math.max(slowest, Date.now() - s)
        served++
      }
      const [r2, r1] = await pending
      const took = Date.now() - t0
      assert.equal(str(r2!), `-ERR backend ${addr2} timed out after ${TIMEOUT_MS} ms`)
      assert.equal(str(r1!), 'v1')
      assert.ok(took >= TIMEOUT_MS && took < TIMEOUT_MS * 2 + 500, `timed out after ${took} ms`)
      assert.ok(served > 10 && slowest < 500, `group-1 client: ${served} replies, slowest ${slowest} ms`)
      // Down, and refused at once while the PING probe gets no answer.
      const down = await backend(p, addr2)
      assert.equal(down?.state, 'down')
      assert.ok(down!.timeouts >= 1)
      const s = Date.now()
      assert.match(str(await both.call('GET', k2)), new RegExp(`^-ERR backend ${addr2.replace(/\./g, '\\.')} unavailable \\(timed out after ${TIMEOUT_MS} ms\\)$`))
      assert.ok(Date.now() - s < 300, 'refused at once while down')
      const m = (await p.http('/metrics')).body
      assert.match(m, new RegExp(`^rstore_backend_up\\{addr="${addr2}"\\} 0$`, 'm'))
      assert.match(m, new RegExp(`^rstore_backend_timeouts_total\\{addr="${addr2}"\\} [1-9]\\d*$`, 'm'))
      // Still stopped after several probe periods: still down.
      await new Promise((r) => setTimeout(r, TIMEOUT_MS * 2))
      assert.equal((await backend(p, addr2))?.state, 'down')
      stopped.kill('SIGCONT')
      await waitFor('group 2 up again', async () => (await backend(p, addr2))?.state === 'up', 15_000, 100)
      assert.equal(str(await both.call('GET', k2)), 'v2')
      assert.equal(str(await only1.call('GET', k1)), 'v1')
    } finally {
      stopped.kill('SIGCONT')
      both.close()
      only1.close()
    }
  })

  test('a slow but alive backend is not timed out: progress within the limit keeps the connection', async () => {
    const k1 = keyIn(c, 1, 'slow')
    const r = await RawClient.connect(p.port)
    const direct = c.groups[0]!.client()
    try {
      assert.equal(await r.call('SET', k1, 'x'), 'OK')
      // The server is busy for 0.6 of the timeout twice in a row: each reply comes within the limit.
      for (let i = 0; i < 2; i++) {
        const sleeping = direct.call('DEBUG', 'SLEEP', String((TIMEOUT_MS * 0.6) / 1000))
        await new Promise((res) => setTimeout(res, 20))
        assert.equal(str(await r.call('GET', k1)), 'x')
        await sleeping
      }
      assert.equal((await backend(p, c.groups[0]!.addr))?.state, 'up')
    } finally {
      r.close()
    }
  })

  test('MIGRATE sent by the proxy may take its own timeout on top of --backend-timeout', () => {
    assert.equal(migrateTimeoutMs(encodeCommand(['MIGRATE', '127.0.0.1', '7001', '', '0', '10000', 'KEYS', 'a', 'b'])), 10_000)
    assert.equal(migrateTimeoutMs(encodeCommand(['MIGRATE', '127.0.0.1', '7001', '', '0', '10000', 'REPLACE', 'KEYS', 'a'])), 10_000)
    assert.equal(migrateTimeoutMs(encodeCommand(['GET', 'MIGRATE-looking-key-000000000000000000000000'])), 0)
    assert.equal(migrateTimeoutMs(encodeCommand(['SET', 'k', 'v'])), 0)
  })

  test('/status and /metrics answer GET and HEAD only: 405 with Allow otherwise', async () => {
    for (const path of ['/status', '/metrics']) {
      for (const method of ['GET', 'HEAD']) {
        const res = await fetch(`http://${p.httpAddr}${path}`, {method, signal: AbortSignal.timeout(5000)})
        assert.equal(res.status, 200, `${method} ${path}`)
        const body = await res.text()
        assert.equal(body.length > 0, method === 'GET', `${method} ${path} body`)
      }
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const res = await fetch(`http://${p.httpAddr}${path}`, {method, body: method === 'DELETE' ? undefined : 'x', signal: AbortSignal.timeout(5000)})
        assert.equal(res.status, 405, `${method} ${path}`)
        assert.equal(res.headers.get('allow'), 'GET, HEAD')
        assert.match(await res.text(), /use GET or HEAD/)
      }
    }
    assert.equal((await p.http('/nope')).status, 404)
  })
})
