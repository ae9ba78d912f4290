// A migration under the checked load through two proxies while an attacker keeps writing, deleting
// and reading rstore's own keys (`__rstore:*`) through both: every attack is refused, nothing is lost.
import assert from 'node:assert/strict'
import {describe, test} from 'node:test'
import type {Redis} from 'ioredis'
import {startCluster} from '../harness/cluster.js'
import {strandedKeys, Workload} from './workload.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const REFUSED = /^ERR key '__rstore:.*' is in rstore's reserved key space \(__rstore:\*\); rename it$/

/** Cycles through attacks on the pending sets of slots 0-127 until stop(); returns what got through. */
async function attack(clients: Redis[], stop: () => boolean): Promise<{tries: number; through: string[]}> {
  const through: string[] = []
  let tries = 0
  for (let i = 0; !stop(); i++) {
    const r = clients[i % clients.length]!
    const set = `__rstore:pending:${i % 128}`
    const calls: [string, (string | number)[]][] = [
      ['sadd', [set, `w:str:${i % 300}`]],
      ['del', [set]],
      ['set', [`__rstore:{w:str:${i % 300}}`, 'x']],
      ['get', [set]],
      ['eval', ["return redis.call('DEL', KEYS[1])", 1, set]],
      ['mset', [`w:attack:${i}`, '1', set, '2']],
    ]
    for (const [cmd, args] of calls) {
      tries++
      try {
        const reply = await r.call(cmd, ...args)
        through.push(`${cmd} ${args.join(' ')} -> ${String(reply)}`)
      } catch (err) {
        if (!REFUSED.test((err as Error).message)) through.push(`${cmd} ${args.join(' ')} -> ${(err as Error).message}`)
      }
    }
    await sleep(1)
  }
  return {tries, through}
}

for (const coordinator of (process.env.RSTORE_TEST_COORD ? [process.env.RSTORE_TEST_COORD] : ['embedded', 'etcd']) as ('embedded' | 'etcd')[]) {
  describe(`migrate under load and attack on __rstore:* (${coordinator} coordinator)`, () => {
    test('migrate 0 127 2: every attack refused, no key lost or stranded', {timeout: 90_000}, async (t) => {
      const c = await startCluster({groups: 2, proxies: 2, slots: 'group1', coordinator})
      let w: Workload | undefined
      try {
        w = new Workload([c.proxies[0]!.client(), c.proxies[1]!.client()], {initialPerKind: 300, growPerKind: 100, writers: 4})
        await w.populate()
        w.start()
        let running = true
        const attacker = attack([c.proxies[0]!.client(), c.proxies[1]!.client()], () => !running)
        await sleep(200)
        const out = await c.cli(['migrate', '0', '127', '2', '--lock-ttl', '2'], {timeoutMs: 60_000})
        await sleep(200)
        running = false
        const {tries, through} = await attacker
        await w.stop()
        t.diagnostic(`${tries} attacks; ${w.ops} writes, ${w.reads} read-backs`)
        assert.equal(out.code, 0, `migrate failed:\n${out.stderr}\n${out.stdout}`)
        assert.match(out.stdout, /128\/128 slot\(s\) moved/)
        assert.ok(tries > 100, `the attacker ran (${tries} tries)`)
        assert.deepEqual(through.slice(0, 10), [], 'attacks that were not refused')
        const finalRead = await w.verify([c.proxies[0]!.client(), c.proxies[1]!.client()])
        assert.deepEqual({errors: w.errors, wrong: w.wrong, finalRead}, {errors: [], wrong: [], finalRead: []})
        assert.ok(w.ops > 500, `the load ran (${w.ops} writes)`)
        const g1 = await strandedKeys(c.groups[0]!.client(), 0, 127)
        assert.deepEqual(g1.stranded.slice(0, 10), [], 'keys of slots 0-127 left on group 1')
        assert.deepEqual(g1.internal, [], 'internal keys left on group 1')
        const g2 = await strandedKeys(c.groups[1]!.client(), 128, 1023)
        assert.deepEqual(g2.stranded.slice(0, 10), [], 'keys of slots 128-1023 on group 2')
        assert.deepEqual(g2.internal, [], 'internal keys on group 2')
      } finally {
        await w?.stop()
        await c.stop()
      }
    })
  })
}
