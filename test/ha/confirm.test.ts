// The majority confirmation of a down master (docs/agent.md "Confirmation"): three real agents with
// --ha on one embedded coordinator, a real master and two replicas. A leader that alone sees the
// master down (its backend user does not exist: every PING fails, as behind a partition) is held
// back by the two agents that see it up; after a real kill -9 of the master, a leader whose third
// agent is dead (kill -9) still promotes: an unreachable agent does not block.
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
import {runCli} from '../harness/cluster.js'
import {freePort, removeDir, tempDir, waitFor} from '../harness/process.js'
import {startRedis, type RedisServer} from '../harness/redis.js'
import {startAgent, type RunningAgent} from './agent-helpers.js'

const dir = tempDir('agent-confirm')
after(() => removeDir(dir))

test('a master only the leader sees down is not failed over; a dead agent does not block a real failover', async () => {
  const cfg = {...DEFAULT_CONFIG, product: 'cf', coordinatorAddr: join(dir, 'meta.db')}
  const coord = await openCoordinator(cfg, {create: true})
  const store = new TopologyStore(coord, cfg.product)
  const servers: RedisServer[] = []
  const agents = new Map<string, RunningAgent>()
  const top = [`product = ${cfg.product}`, `coordinator_addr = ${cfg.coordinatorAddr}`]
  const flags = (id: string) => ['--ha', '--ha-id', id, '--ha-lease-ttl', '2', '--ha-check-interval', '200', '--ha-down-after', '800']
  const start = async (id: string, env?: NodeJS.ProcessEnv) => {
    const d = join(dir, id)
    mkdirSync(d)
    const a = await startAgent(d, [`process.idle = sleep 30${id.length}`], flags(id), top, env)
    agents.set(id, a)
    return a
  }
  try {
    for (let i = 0; i < 3; i++) servers.push(await startRedis())
    const [m, r1, r2] = servers as [RedisServer, RedisServer, RedisServer]
    await initSlots(store)
    await addServer(store, 1, m.addr, 'master')
    await addServer(store, 1, r1.addr, 'slave')
    await addServer(store, 1, r2.addr, 'slave')

    // The blind agent leads first; its PINGs fail on AUTH of a user that does not exist.
    const blind = await start('blind', {...process.env, RSTORE_BACKEND_USER: 'nosuchuser', RSTORE_BACKEND_PASSWORD: 'x'})
    await waitFor('blind leads', async () => (await blind.status()).leader?.isLeader === true)
    await start('b')
    await start('c')
    await waitFor('three agents registered', async () => (await blind.status()).agents?.length === 3)

    await waitFor('the blind leader records its outage as unconfirmed', async () => ((await blind.status()).failovers ?? []).length > 0, 10_000)
    const [rec] = (await blind.status()).failovers!
    assert.equal(rec!.result, 'unconfirmed')
    // c may register after the leader's decision (one record per outage): then b alone held it back.
    const m3 = /^1 of ([23]) live agent\(s\) see it down/.exec(rec!.detail)
    assert.ok(m3, rec!.detail)
    assert.match(rec!.detail, /b: up/)
    if (m3[1] === '3') assert.match(rec!.detail, /c: up/)
    await new Promise((r) => setTimeout(r, 1500))
    assert.equal((await blind.status()).failovers!.length, 1, 'one record per outage, not one per check')
    assert.equal(masterOf((await store.load()).groups.get(1)!)?.addr, m.addr, 'the master is unchanged')

    // What the leader asks: /check answers for recorded servers only.
    const b = agents.get('b')!
    const up = (await (await fetch(`http://${b.httpAddr}/check?addr=${m.addr}`)).json()) as {up: boolean}
    assert.equal(up.up, true)
    const stranger = await fetch(`http://${b.httpAddr}/check?addr=127.0.0.1:1`)
    assert.equal(stranger.status, 404)
    assert.match(((await stranger.json()) as {error: {message: string}}).error.message, /not a server of product 'cf'/)
    assert.equal((await fetch(`http://${b.httpAddr}/check`)).status, 400)
    const metrics = await (await fetch(`http://${blind.httpAddr}/metrics`)).text()
    assert.match(metrics, /^rstore_agent_failovers_total\{result="unconfirmed"\} 1$/m)
    assert.match(metrics, /^rstore_agent_leader 1$/m)
    assert.match(metrics, /^rstore_agent_master_checks_total\{result="failed"\} \d+$/m)

    // The blind leader stops; b or c leads; the other is killed; then the master really dies.
    await blind.proc.stop()
    agents.delete('blind')
    let leader: RunningAgent | undefined
    await waitFor('b or c leads', async () => {
      for (const id of ['b', 'c']) if ((await agents.get(id)!.status()).leader?.isLeader) leader = agents.get(id)
      return leader !== undefined
    }, 10_000)
    const otherId = leader === agents.get('b') ? 'c' : 'b'
    await agents.get(otherId)!.proc.stop('SIGKILL')
    await m.proc.stop('SIGKILL')
    await waitFor('a replica is promoted', async () => {
      const now = masterOf((await store.load()).groups.get(1)!)?.addr
      return now !== undefined && now !== m.addr
    }, 10_000, 50)
    const done = (await leader!.status()).failovers!.find((f) => f.result === 'promoted')
    assert.ok(done, JSON.stringify((await leader!.status()).failovers))
    assert.match(done.detail, /^(1 of 1|2 of 2) live agent\(s\) see it down/)
    const newMaster = masterOf((await store.load()).groups.get(1)!)!.addr
    assert.ok([r1.addr, r2.addr].includes(newMaster))
    assert.match(await (await fetch(`http://${leader!.httpAddr}/metrics`)).text(), /^rstore_agent_failovers_total\{result="promoted"\} 1$/m)

    // `rstore agent status`: the leader from the coordinator, each agent's processes and failovers.
    const leaderId = (await leader!.status()).leader!.self
    await waitFor('the killed agent is no longer registered', async () => (await leader!.status()).agents?.length === 1, 10_000)
    const cli = await runCli(['agent', 'status', '-c', leader!.configFile])
    assert.equal(cli.code, 0, cli.stderr)
    assert.match(cli.stdout, new RegExp(`^product cf: leader ${leaderId} \\(host .*fencing token \\d+\\)$`, 'm'))
    assert.match(cli.stdout, new RegExp(`^agent ${leaderId} \\(leader\\) ${leader!.httpAddr} pid \\d+ .*: 1/1 processes running$`, 'm'))
    assert.match(cli.stdout, new RegExp(`group 1 ${m.addr} -> ${newMaster}: promoted after \\d+ ms down, epoch \\d+`))
    const json = JSON.parse((await runCli(['agent', 'status', '-c', leader!.configFile, '--json'])).stdout) as {leader: {id: string}; agents: {id: string; status?: {failovers: {result: string}[]}}[]}
    assert.equal(json.leader.id, leaderId)
    assert.deepEqual(json.agents.map((a) => a.id), [leaderId])
    assert.deepEqual(json.agents[0]!.status!.failovers.map((f) => f.result), ['promoted'])
    const none = await runCli(['agent', 'status', '-c', leader!.configFile, '--product', 'nobody'])
    assert.notEqual(none.code, 0)
    assert.match(none.stderr, /^Error: no agent with --ha is registered for product 'nobody'/)
    const closed = `127.0.0.1:${await freePort()}`
    const deaf = await runCli(['agent', 'status', '-c', leader!.configFile, '--addr', closed])
    assert.notEqual(deaf.code, 0)
    assert.match(deaf.stderr, new RegExp(`^Error: agent at ${closed} does not answer GET /status: ECONNREFUSED`))
    assert.equal(deaf.stderr.trim().split('\n').length, 1, 'one line')
  } finally {
    for (const a of agents.values()) await a.proc.stop().catch(() => {})
    await coord.close()
    await Promise.all(servers.map((s) => s.stop().catch(() => {})))
  }
})
