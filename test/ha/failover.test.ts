// The leader agent's failover of a dead master (docs/agent.md "Failover"): real redis-servers (a
// master and two replicas), one agent with --ha on an embedded coordinator, kill -9 of the master.
import assert from 'node:assert/strict'
import {mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {after, test} from 'node:test'
import {DEFAULT_CONFIG} from '../../src/config.js'
import {openCoordinator} from '../../src/coord/index.js'
import {TopologyStore} from '../../src/coord/topology-store.js'
import {addServer} from '../../src/service/servers.js'
import {initSlots} from '../../src/service/slots.js'
import {masterOf} from '../../src/topology/model.js'
import {removeDir, tempDir, waitFor} from '../harness/process.js'
import {startRedis, type RedisServer} from '../harness/redis.js'
import {startAgent, type RunningAgent} from './agent-helpers.js'

const dir = tempDir('agent-failover')
after(() => removeDir(dir))

async function role(server: RedisServer): Promise<unknown[]> {
  const c = server.client()
  try {
    return (await c.call('ROLE')) as unknown[]
  } finally {
    c.disconnect()
  }
}

test('kill -9 of a master: the leader promotes the replica, the other follows it, the old master comes back as a replica', async () => {
  const cfg = {...DEFAULT_CONFIG, product: 'fo', coordinatorAddr: join(dir, 'meta.db')}
  const coord = await openCoordinator(cfg, {create: true})
  const store = new TopologyStore(coord, cfg.product)
  const servers: RedisServer[] = []
  let agent: RunningAgent | undefined
  try {
    for (let i = 0; i < 3; i++) servers.push(await startRedis())
    const [m, r1, r2] = servers as [RedisServer, RedisServer, RedisServer]
    await initSlots(store)
    await addServer(store, 1, m.addr, 'master')
    await addServer(store, 1, r1.addr, 'slave')
    await addServer(store, 1, r2.addr, 'slave')
    const cm = m.client()
    await cm.set('fo:key', 'v1')
    for (const r of [r1, r2]) await waitFor(`${r.addr} replicates`, async () => (await r.client().get('fo:key')) === 'v1', 10_000)
    cm.disconnect()

    const d = join(dir, 'agent')
    mkdirSync(d)
    agent = await startAgent(d, ['process.idle = sleep 306'], ['--ha', '--ha-id', 'solo', '--ha-lease-ttl', '2', '--ha-check-interval', '200', '--ha-down-after', '1000'], [
      `product = ${cfg.product}`,
      `coordinator_addr = ${cfg.coordinatorAddr}`,
    ])
    await waitFor('the agent leads', async () => (await agent!.status()).leader?.isLeader === true)

    // A master that answers causes nothing.
    await new Promise((r) => setTimeout(r, 1500))
    assert.deepEqual((await agent.status()).failovers, [])

    await m.proc.stop('SIGKILL')
    const t0 = Date.now()
    let promoted = ''
    await waitFor('a replica is recorded as the master', async () => {
      const now = masterOf((await store.load()).groups.get(1)!)?.addr
      promoted = now ?? ''
      return now !== undefined && now !== m.addr
    }, 10_000, 50)
    const took = Date.now() - t0
    assert.ok(took < 1000 + 1500, `promoted ${took} ms after kill -9 (down-after 1000 ms)`)
    const [winner, other] = promoted === r1.addr ? [r1, r2] : [r2, r1]
    assert.equal(winner.addr, promoted)
    assert.equal((await role(winner))[0], 'master')
    await waitFor('the other replica follows the new master', async () => {
      const r = await role(other)
      return r[0] === 'slave' && r[2] === winner.port
    })
    assert.equal(await winner.client().get('fo:key'), 'v1', 'the replicated write is on the new master')
    const st = await agent.status()
    assert.equal(st.failovers?.length, 1)
    assert.equal(st.failovers![0]!.result, 'promoted')
    assert.equal(st.failovers![0]!.oldMaster, m.addr)
    assert.equal(st.failovers![0]!.newMaster, winner.addr)
    const group = (await store.load()).groups.get(1)!
    assert.deepEqual(group.servers.find((s) => s.addr === m.addr)?.role, 'slave', 'the old master is recorded as a slave')

    // The old master restarted on its port (empty, a master by its own config) is told to follow.
    const back = await startRedis([], {port: m.port})
    servers.push(back)
    await waitFor('the old master becomes a replica of the new one', async () => {
      const r = await role(back)
      return r[0] === 'slave' && r[2] === winner.port
    }, 10_000)
    await waitFor('it has the data', async () => (await back.client().get('fo:key')) === 'v1', 10_000)
    assert.equal((await agent.status()).failovers?.length, 1, 'no second failover')
  } finally {
    await agent?.proc.stop()
    await coord.close()
    await Promise.all(servers.map((s) => s.stop().catch(() => {})))
  }
})

test('replica-priority 0 is never promoted: the other replica wins even where it would lose the tie', async () => {
  const cfg = {...DEFAULT_CONFIG, product: 'fp', coordinatorAddr: join(dir, 'meta-prio.db')}
  const coord = await openCoordinator(cfg, {create: true})
  const store = new TopologyStore(coord, cfg.product)
  const servers: RedisServer[] = []
  let agent: RunningAgent | undefined
  try {
    for (let i = 0; i < 3; i++) servers.push(await startRedis())
    const [m, ...replicas] = servers as [RedisServer, RedisServer, RedisServer]
    // Equal offsets fall to the lower address: that one is made unpromotable.
    const [never, chosen] = replicas.sort((a, b) => (a.addr < b.addr ? -1 : 1)) as [RedisServer, RedisServer]
    await initSlots(store)
    await addServer(store, 1, m.addr, 'master')
    await addServer(store, 1, never.addr, 'slave')
    await addServer(store, 1, chosen.addr, 'slave')
    await never.client().config('SET', 'replica-priority', '0')
    await m.client().set('fp:key', 'v')
    for (const r of [never, chosen]) await waitFor(`${r.addr} replicates`, async () => (await r.client().get('fp:key')) === 'v', 10_000)

    const d = join(dir, 'agent-prio')
    mkdirSync(d)
    agent = await startAgent(d, ['process.idle = sleep 307'], ['--ha', '--ha-id', 'solo', '--ha-lease-ttl', '2', '--ha-check-interval', '200', '--ha-down-after', '800'], [
      `product = ${cfg.product}`,
      `coordinator_addr = ${cfg.coordinatorAddr}`,
    ])
    await waitFor('the agent leads', async () => (await agent!.status()).leader?.isLeader === true)
    await m.proc.stop('SIGKILL')
    await waitFor('a failover is decided', async () => ((await agent!.status()).failovers ?? []).length > 0, 10_000, 50)
    const [rec] = (await agent.status()).failovers!
    assert.equal(rec!.result, 'promoted', rec!.detail)
    assert.equal(rec!.newMaster, chosen.addr)
    assert.match(rec!.detail, new RegExp(`skipped ${never.addr}: replica-priority 0`))
    assert.equal(masterOf((await store.load()).groups.get(1)!)?.addr, chosen.addr)
    await waitFor('the priority-0 replica follows the new master', async () => {
      const r = await role(never)
      return r[0] === 'slave' && r[2] === chosen.port
    })
  } finally {
    await agent?.proc.stop()
    await coord.close()
    await Promise.all(servers.map((s) => s.stop().catch(() => {})))
  }
})
