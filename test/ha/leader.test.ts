// Leader election of the HA agents on one embedded coordinator (docs/agent.md "Leader election"):
// one leader at a time, a dead leader replaced within its lease TTL, a deposed leader's action refused.
import assert from 'node:assert/strict'
import {mkdirSync} from 'node:fs'
import {join} from 'node:path'
import {after, test} from 'node:test'
import {DEFAULT_CONFIG, type RstoreConfig} from '../../src/config.js'
import {openCoordinator} from '../../src/coord/index.js'
import {KeyLayout} from '../../src/coord/layout.js'
import {TopologyStore} from '../../src/coord/topology-store.js'
import {FencedTopologyStore} from '../../src/ha/fenced-store.js'
import {DeposedError, LeaderElection} from '../../src/ha/leader.js'
import {removeDir, tempDir, waitFor} from '../harness/process.js'
import {alive, startAgent, type RunningAgent} from './agent-helpers.js'

const dirs: string[] = []
after(() => dirs.forEach(removeDir))

async function embedded(): Promise<{dir: string; cfg: RstoreConfig}> {
  const dir = tempDir('agent-ha')
  dirs.push(dir)
  const cfg = {...DEFAULT_CONFIG, product: 'ha', coordinatorAddr: join(dir, 'meta.db')}
  await (await openCoordinator(cfg, {create: true})).close()
  return {dir, cfg}
}

test('one leader at a time; a stalled leader is replaced and its late fenced action is refused', async () => {
  const {cfg} = await embedded()
  const keys = new KeyLayout(cfg.product)
  const [ca, cb] = [await openCoordinator(cfg), await openCoordinator(cfg)]
  const a = new LeaderElection(ca, keys, 'a', 2, () => {})
  const b = new LeaderElection(cb, keys, 'b', 2, () => {})
  try {
    await a.campaign()
    await b.campaign()
    assert.equal(a.isLeader, true)
    assert.equal(b.isLeader, false)
    assert.equal(b.status().leader?.id, 'a')
    const tokenA = a.token!
    assert.equal(b.status().token, tokenA)
    const marker = keys.prefix + 'test/marker'
    await a.fencedTxn([], [{type: 'put', key: marker, value: 'a1'}])
    // a stalls (its keep-alive stops, it still believes it leads); b campaigns until it takes over.
    a.stall()
    const t0 = Date.now()
    b.start()
    await waitFor('b becomes the leader', () => b.isLeader, 8000)
    assert.ok(Date.now() - t0 < 2000 + 1500, `taken over within the TTL and a campaign round (${Date.now() - t0} ms)`)
    assert.ok(b.token! > tokenA, 'the new token is larger')
    assert.equal(a.isLeader, true, 'the stalled leader has not noticed')
    await assert.rejects(a.fencedTxn([], [{type: 'put', key: marker, value: 'a2'}]), (err: unknown) => err instanceof DeposedError && /fencing token \d+ is stale/.test(err.message))
    assert.equal((await ca.get(marker))?.value, 'a1', "the deposed leader's write did not happen")
    await b.fencedTxn([], [{type: 'put', key: marker, value: 'b1'}])
    assert.equal((await ca.get(marker))?.value, 'b1')
    // A deposed leader's topology change (a promotion goes through one) is refused by the fenced store.
    const stale = new FencedTopologyStore(ca, cfg.product, a, tokenA)
    await assert.rejects(stale.update(() => ({groups: [{id: 9, servers: []}]})), DeposedError)
    assert.equal((await new TopologyStore(ca, cfg.product).load()).groups.has(9), false, 'nothing was written')
    await new FencedTopologyStore(cb, cfg.product, b, b.token!).update(() => ({groups: [{id: 9, servers: []}]}))
    assert.equal((await new TopologyStore(ca, cfg.product).load()).groups.has(9), true, "the leader's change is written")
    // The caller's own compare failing is a plain refusal, not a deposition.
    const res = await b.fencedTxn([{key: marker, value: 'other'}], [{type: 'put', key: marker, value: 'b2'}])
    assert.equal(res.succeeded, false)
  } finally {
    await a.stop()
    await b.stop()
    await ca.close()
    await cb.close()
  }
})

test('two agents with --ha: exactly one leader; kill -9 of the leader and the other takes over within the lease TTL', async () => {
  const {dir, cfg} = await embedded()
  const top = ['product = ha', `coordinator_addr = ${cfg.coordinatorAddr}`]
  const agents: RunningAgent[] = []
  try {
    for (const id of ['agent-a', 'agent-b']) {
      const d = join(dir, id)
      mkdirSync(d)
      agents.push(await startAgent(d, [`process.idle = sleep 303`], ['--ha', '--ha-id', id, '--ha-lease-ttl', '2'], top))
    }
    await waitFor('a leader is elected', async () => (await Promise.all(agents.map((a) => a.status()))).some((s) => s.leader?.isLeader))
    // Both see the same single leader once the follower has read the key.
    await waitFor('both agents name the leader', async () => {
      const st = await Promise.all(agents.map((a) => a.status()))
      return st.every((s) => s.leader?.leader?.id !== undefined && s.leader.leader.id === st[0]!.leader?.leader?.id)
    })
    const st = await Promise.all(agents.map((a) => a.status()))
    assert.equal(st.filter((s) => s.leader!.isLeader).length, 1, 'exactly one leader')
    const li = st.findIndex((s) => s.leader!.isLeader)
    const [leader, follower] = [agents[li]!, agents[1 - li]!]
    const oldToken = st[li]!.leader!.token!
    const orphan = st[li]!.processes[0]!.pid!
    leader.proc.child.kill('SIGKILL')
    const t0 = Date.now()
    await waitFor('the follower takes over', async () => (await follower.status()).leader!.isLeader, 10_000, 100)
    const took = Date.now() - t0
    assert.ok(took <= 2000 + 1500, `took over in ${took} ms (TTL 2 s, a campaign every 0.67 s)`)
    const now = (await follower.status()).leader!
    assert.equal(now.leader?.id, follower === agents[0] ? 'agent-a' : 'agent-b')
    assert.ok(now.token! > oldToken, 'a larger fencing token')
    // The killed agent could not stop its process (SIGKILL): stop it here, it is not the agent's to keep.
    if (alive(orphan)) process.kill(orphan, 'SIGKILL')
  } finally {
    for (const a of agents) await a.proc.stop()
  }
})
