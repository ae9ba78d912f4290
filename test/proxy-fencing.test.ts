/**
 * Rule 5 (fencing): a proxy whose coordinator lease has expired refuses routed commands until it has
 * registered again, so a proxy holding a stale topology never writes to a group that lost a slot.
 */
import assert from 'node:assert/strict'
import {after, before, test} from 'node:test'
import {startCluster, type Cluster} from './harness/cluster.js'
import {waitFor} from './harness/process.js'
import {RawClient, ReplyError} from './harness/raw.js'

let c: Cluster
before(async () => {
  c = await startCluster({groups: 2, proxies: 1, coordinator: 'etcd', proxyArgs: ['--lease-ttl', '2']})
})
after(async () => {
  await c?.stop()
})

test('a proxy that loses its etcd lease refuses routed commands, then serves again once registered', async () => {
  const r = await RawClient.connect(c.proxies[0]!.port)
  const etcd = c.etcd!.proc.child
  try {
    assert.equal(await r.call('SET', 'fence:k', 'v1'), 'OK')
    etcd.kill('SIGSTOP')
    let refused = ''
    try {
      await waitFor('the proxy to fence itself', async () => {
        const rep = await r.call('GET', 'fence:k')
        if (rep instanceof ReplyError) refused = rep.message
        return rep instanceof ReplyError
      }, 15000, 100)
      // Local commands still answer while fenced.
      assert.equal(await r.call('PING'), 'PONG')
    } finally {
      etcd.kill('SIGCONT')
    }
    assert.match(refused, /^ERR proxy lost its coordinator session/)
    await waitFor('the proxy to register again and serve', async () => (await r.call('GET', 'fence:k'))?.toString() === 'v1', 20000, 200)
    const list = JSON.parse(await c.cliOk(['proxy', 'list', '--json'])) as {id: string; state: string}[]
    assert.deepEqual(list.map((p) => [p.id, p.state]), [[c.proxies[0]!.id, 'online']])
  } finally {
    etcd.kill('SIGCONT')
    r.close()
  }
})
