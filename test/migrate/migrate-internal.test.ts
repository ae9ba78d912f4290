// The mover and rstore's own key space: a pending set written by something other than a proxy (an
// old client, straight on the master) must not make the mover take a live key off its group.
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'
import {startCluster, type Cluster} from '../harness/cluster.js'
import {slotRanges, startMover, until} from './helpers.js'
import {slotOf} from '../../src/topology/slots.js'

describe('mover and the pending sets', () => {
  let c: Cluster
  before(async () => {
    c = await startCluster({groups: 2, proxies: 1})
  })
  after(async () => {
    await c?.stop()
  })

  test('a pending-set member of another slot is skipped, reported, and stays readable', async () => {
    const r = c.proxies[0]!.client()
    assert.equal(slotOf('victim20'), 404)
    await r.set('victim20', 'precious')
    await r.set('{s10}', 'mine')
    const s10 = slotOf('{s10}')
    // Straight on group 1's master (an old client, bypassing the proxy's refusal).
    await c.groups[0]!.client().sadd(`__rstore:pending:${s10}`, 'victim20')
    const res = await c.cli(['migrate', String(s10), String(s10), '2'])
    assert.equal(res.code, 0, res.stderr)
    const out = res.stdout + res.stderr
    assert.match(out, /1\/1 slot\(s\) moved/)
    assert.match(out, new RegExp(`slot ${s10}: skipped 1 pending-set member\\(s\\) of other slots \\(e\\.g\\. 'victim20', slot 404\\)`))
    assert.equal(await r.get('victim20'), 'precious')
    assert.equal(await c.groups[0]!.client().get('victim20'), 'precious', 'victim20 stayed on group 1, its owner')
    assert.equal(await c.groups[1]!.client().get('victim20'), null)
    assert.equal(await r.get('{s10}'), 'mine')
    assert.equal(await c.groups[1]!.client().get('{s10}'), 'mine')
  })

  test("a user key named '__rstore:...' is refused instead of being stranded by a migration", async () => {
    const r = c.proxies[0]!.client()
    await assert.rejects(r.set('__rstore:{s5}', 'userdata'), /ERR key '__rstore:\{s5\}' is in rstore's reserved key space/)
    const s5 = slotOf('{s5}')
    await c.cliOk(['migrate', String(s5), String(s5), '2'])
    for (const g of c.groups) assert.equal(await g.client().exists('__rstore:{s5}'), 0)
  })

  test('a pending set deleted on the master mid-migration loses no key', {timeout: 60_000}, async () => {
    const r = c.proxies[0]!.client()
    const keysOf = (slot: number, n: number) => {
      const out: string[] = []
      for (let i = 0; out.length < n; i++) if (slotOf(`k${i}`) === slot) out.push(`k${i}`)
      return out
    }
    for (const k of keysOf(17, 150)) await r.set(k, 'old')
    // --delay: slot 17 takes ~1.5 s, long after the scan, while slot 19 is still queued (pending).
    const mover = startMover(c, ['migrate', '17', '19', '2', '--delay', '10'])
    await until('slot 17 migrating', async () => (await slotRanges(c)).some((x) => x.from === 17 && x.state === 'migrating'), 20_000, 20)
    const late = keysOf(19, 5)
    for (const k of late) await r.set(k, 'written-after-scan')
    // The only record of these keys is the pending set: an old client deletes it on the master.
    assert.equal(await c.groups[0]!.client().del('__rstore:pending:19'), 1)
    assert.equal(await mover.exited, 0, mover.output())
    assert.match(mover.output(), /slot 19: its pending set on group 1 was tampered with; a scan of the source found 5 key\(s\)/)
    for (const k of late) assert.equal(await r.get(k), 'written-after-scan', k)
    for (const k of late) assert.equal(await c.groups[0]!.client().exists(k), 0, `${k} left on group 1`)
  })
})
