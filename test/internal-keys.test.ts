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

  test('KEYS, SCAN and RANDOMKEY are refused, so no reply lists an internal key', async () => {
    for (const cmd of [['keys', '*'], ['scan', '0'], ['randomkey']]) {
      await assert.rejects(r.call(cmd[0]!, ...cmd.slice(1)), /unsupported command/)
    }
  })
})
