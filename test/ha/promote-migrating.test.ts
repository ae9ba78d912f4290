// A failover during a migration (docs/migration.md "A failover during a migration"): the promoted
// replica of the source group still holds a key the old master had already moved to the target (its
// deletion had not replicated; here injected on a writable replica). The promotion drops that stale
// copy before the record switch, so the next touch of the key does not MIGRATE it over the target's
// newer value (BUSYKEY, then REPLACE).
import assert from 'node:assert/strict'
import {test} from 'node:test'
import {slotOf} from '../../src/topology/slots.js'
import {startCluster} from '../harness/cluster.js'
import {waitFor} from '../harness/process.js'
import {startRedis, type RedisServer} from '../harness/redis.js'

test('promoting a lagging replica of a migration source drops its copies of keys the target holds', async () => {
  const c = await startCluster({groups: 2, proxies: 1, product: 'pm'})
  let replica: RedisServer | undefined
  try {
    replica = await startRedis()
    await c.cliOk(['server', 'add', '1', replica.addr, 'slave'])
    const tag = Array.from({length: 100}, (_, i) => `t${i}`).find((t) => c.groupOf(`{${t}}`) === 1)!
    const [k, untouched] = [`{${tag}}:moved`, `{${tag}}:still`]
    const p = c.proxies[0]!.client()
    await p.set(k, 'old')
    await p.set(untouched, 'here')
    const rc = replica.client()
    await waitFor('the replica has both keys', async () => (await rc.exists(k, untouched)) === 2, 10_000)
    const store = await c.openStore()
    const epoch = await store.update(() => ({slots: [{id: slotOf(k), state: 'migrating', group: 2, from: 1}]}))
    await waitFor('proxy applies the migrating slot', async () => Number((await c.proxies[0]!.status()).epoch) >= epoch, 5000)
    assert.equal(await p.set(k, 'new'), 'OK', 'the write moves the key to group 2, then writes it there')
    assert.equal(await c.groups[1]!.client().get(k), 'new')

    // The replica lags: its copy of the moved key is still there.
    await rc.config('SET', 'replica-read-only', 'no')
    await waitFor('the deletion replicated', async () => (await rc.exists(k)) === 0, 10_000)
    await rc.set(k, 'old')
    await c.killGroup(1)
    const res = await c.cli(['server', 'promote', '1', replica.addr, '--force', '--json'])
    assert.equal(res.code, 0, res.stderr)
    const warnings = (JSON.parse(res.stdout) as {warnings: string[]}).warnings
    assert.ok(warnings.some((w) => w.includes(`dropped 1 stale key(s) from ${replica!.addr}`)), warnings.join('; '))
    assert.equal(await rc.exists(k), 0, 'the stale copy is gone')
    assert.equal(await rc.get(untouched), 'here', 'a key not yet moved stays on the source')
    await waitFor('proxy applies the promotion', async () => Number((await c.proxies[0]!.status()).epoch) > epoch, 5000)
    assert.equal(await p.get(k), 'new', "the target's value, not the stale copy")
    assert.equal(await p.get(untouched), 'here')
  } finally {
    await replica?.stop()
    await c.stop()
  }
})
