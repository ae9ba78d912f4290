// The proxies after a failover (docs/agent.md "Proxies after a failover"): a proxy that does not apply
// the promotion's epoch within --ha-barrier-timeout (here: stopped with SIGSTOP, its lease long
// enough to outlive the stop) does not hold the failover up; it is set offline, and once it runs
// again it refuses clients instead of serving, until an operator puts it back online.
import assert from 'node:assert/strict'
import {mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {test} from 'node:test'
import {masterOf} from '../../src/topology/model.js'
import {startCluster} from '../harness/cluster.js'
import {waitFor} from '../harness/process.js'
import {startRedis, type RedisServer} from '../harness/redis.js'
import {startAgent, type RunningAgent} from './agent-helpers.js'

test('a proxy that does not apply the failover epoch in time is set offline, and the failover is not held up', async () => {
  const c = await startCluster({groups: 1, proxies: 1, product: 'fb', slots: 'group1'})
  const replicas: RedisServer[] = []
  let agent: RunningAgent | undefined
  const stuck = await c.startProxy({args: ['--lease-ttl', '30']})
  try {
    for (let i = 0; i < 2; i++) replicas.push(await startRedis())
    for (const r of replicas) await c.cliOk(['server', 'add', '1', r.addr, 'slave'])
    const store = await c.openStore()
    const d = join(c.dir, 'agent')
    mkdirSync(d)
    agent = await startAgent(d, ['process.idle = sleep 309'], ['--ha', '--ha-id', 'solo', '--ha-lease-ttl', '2', '--ha-check-interval', '200', '--ha-down-after', '800', '--ha-barrier-timeout', '1000'], [
      `product = ${c.product}`,
      `coordinator_addr = ${join(c.dir, 'meta.db')}`,
    ])
    await waitFor('the agent leads', async () => (await agent!.status()).leader?.isLeader === true)
    const [good, bad] = [c.proxies[0]!.client(), stuck.client()]
    assert.equal(await bad.set('fb:k', 'before'), 'OK')

    stuck.proc.child.kill('SIGSTOP')
    const oldMaster = c.groups[0]!.addr
    await c.killGroup(1)
    await waitFor('the failover is done and its barrier has run', async () => ((await agent!.status()).failovers ?? [])[0]?.barrier !== undefined, 15_000, 50)
    const [rec] = (await agent.status()).failovers!
    assert.equal(rec!.result, 'promoted', rec!.detail)
    assert.deepEqual(rec!.barrier!.offline, [stuck.id])
    assert.match(rec!.barrier!.detail, new RegExp(`proxy ${stuck.id} .*did not apply epoch ${rec!.epoch} within 1000 ms: set offline`))
    assert.ok(rec!.barrier!.waitedMs < 3000, `barrier ended after ${rec!.barrier!.waitedMs} ms`)
    const newMaster = masterOf((await store.load()).groups.get(1)!)!.addr
    assert.notEqual(newMaster, oldMaster)
    assert.equal(await good.set('fb:k', 'after'), 'OK', 'the proxy that applied the epoch serves on the new master')
    assert.match(await (await fetch(`http://${agent.httpAddr}/metrics`)).text(), /^rstore_agent_proxies_offline_total 1$/m)

    // Running again, the stopped proxy applies the epoch and its offline state: it refuses, it does not serve.
    stuck.proc.child.kill('SIGCONT')
    await waitFor('the stopped proxy reports offline at the new epoch', async () => {
      const s = await stuck.status()
      return s.state === 'offline' && Number(s.epoch) >= rec!.epoch!
    }, 10_000)
    await assert.rejects(bad.get('fb:k'), /ERR proxy is offline/)
    await c.cliOk(['proxy', 'online', stuck.id])
    assert.equal(await bad.get('fb:k'), 'after', 'back online, it routes to the new master')
  } finally {
    stuck.proc.child.kill('SIGCONT')
    await agent?.proc.stop()
    await Promise.all(replicas.map((r) => r.stop().catch(() => {})))
    await c.stop()
  }
})
