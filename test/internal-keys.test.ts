// rstore's own key space (`__rstore:*`, the migration's pending sets) is refused to clients: a
// client that could write it could make a migration move a live key to the wrong group.
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import type {Redis} from 'ioredis'
import {startCluster, type Cluster} from './harness/cluster.js'

const REFUSED = /^ERR key '__rstore:.*' is in rstore's reserved key space \(__rstore:\*\); rename it$/

describe('reserved key space through the proxy', () => {
  let c: Cluster
  let r: Redis
  before(async () => {
    c = await startCluster({groups: 2, proxies: 1})
    r = c.proxies[0]!.client()
  })
  after(async () => {
    await c?.stop()
  })

  const attacks: [string, (string | number)[]][] = [
    ['set', ['__rstore:{s10}', 'userdata']],
    ['get', ['__rstore:{s10}']],
    ['sadd', ['__rstore:pending:10', 'victim20']],
    ['smembers', ['__rstore:pending:10']],
    ['sscan', ['__rstore:pending:10', '0']],
    ['del', ['__rstore:pending:19']],
    ['del', ['user1', '__rstore:pending:19']],
    ['unlink', ['__rstore:pending:19']],
    ['exists', ['__rstore:pending:19']],
    ['mget', ['a', '__rstore:x']],
    ['mset', ['a', '1', '__rstore:x', '2']],
    ['rename', ['__rstore:pending:10', 'mine']],
    ['rename', ['mine', '__rstore:pending:10']],
    ['sunionstore', ['mine', '__rstore:pending:10']],
    ['object', ['encoding', '__rstore:pending:10']],
    ['type', ['__rstore:pending:10']],
    ['eval', ["return redis.call('SADD', KEYS[1], ARGV[1])", 1, '__rstore:pending:10', 'victim20']],
    ['eval_ro', ["return redis.call('SMEMBERS', KEYS[1])", 1, '__rstore:pending:10']],
    ['evalsha', ['0000000000000000000000000000000000000000', 1, '__rstore:pending:10']],
    ['zunionstore', ['z', 2, 'a', '__rstore:z']],
    ['lmpop', [1, '__rstore:l', 'LEFT']],
  ]
  for (const [cmd, args] of attacks) {
    test(`${cmd} ${args.join(' ')} is refused`, async () => {
      await assert.rejects(r.call(cmd, ...args), (err: Error) => REFUSED.test(err.message))
    })
  }

  test('nothing of the attacks reached a server; user keys still work', async () => {
    for (const g of c.groups) assert.deepEqual(await g.client().keys('__rstore:*'), [])
    assert.equal(await r.set('__rstore', 'fine'), 'OK') // only the prefix with its colon is reserved
    assert.equal(await r.get('__rstore'), 'fine')
  })

  test('KEYS, SCAN and RANDOMKEY never list an internal key (docs/proxy-fanout.md)', async () => {
    await c.groups[0]!.client().sadd('__rstore:pending:7', '__rstore:intact')
    await c.groups[1]!.client().sadd('__rstore:pending:700', '__rstore:intact')
    await r.set('visible', '1')
    const direct: string[] = []
    for (const g of c.groups) direct.push(...(await g.client().keys('*')))
    const expected = direct.filter((k) => !k.startsWith('__rstore:')).sort()
    assert.ok(expected.includes('visible') && direct.length === expected.length + 2, `${direct}`)
    assert.deepEqual((await r.keys('*')).sort(), expected)
    let cursor = '0'
    const seen = new Set<string>()
    do {
      const [next, keys] = await r.scan(cursor, 'COUNT', 1)
      for (const k of keys) seen.add(k)
      cursor = next
    } while (cursor !== '0')
    assert.deepEqual([...seen].sort(), expected)
    for (let i = 0; i < 10; i++) {
      const k = await r.randomkey()
      assert.ok(expected.includes(k!), `RANDOMKEY ${k}`)
    }
    await r.del('visible')
    for (const g of c.groups) await g.client().del('__rstore:pending:7', '__rstore:pending:700')
  })
})
