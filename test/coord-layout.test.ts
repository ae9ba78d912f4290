// README.md's coordinator data-model table and src/coord/layout.ts must list the same keys.
import assert from 'node:assert/strict'
import {readFileSync} from 'node:fs'
import {test} from 'node:test'
import {KeyLayout, keyPatterns, parseMigrationLock, productPrefix} from '../src/coord/layout.js'

function readmeKeys(): string[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const at = readme.indexOf('## Coordinator data model')
  assert.ok(at >= 0, 'README.md has a "Coordinator data model" section')
  const end = readme.indexOf('\n## ', at + 1)
  const section = readme.slice(at, end < 0 ? undefined : end)
  const rows = section.split('\n').filter((l) => l.startsWith('| `'))
  return rows.map((l) => /^\| `([^`]+)` \|/.exec(l)![1]!)
}

test('README data-model table lists exactly the layout key patterns', () => {
  const readme = readmeKeys()
  const layout = keyPatterns()
  assert.equal(new Set(layout).size, layout.length, 'layout patterns are unique')
  for (const p of layout) assert.ok(readme.includes(p), `README.md table misses '${p}'`)
  for (const p of readme) assert.ok(layout.includes(p), `README.md table lists '${p}', which src/coord/layout.ts does not define`)
})

test('the layout builds the same keys as before', () => {
  const l = new KeyLayout('shop')
  assert.equal(productPrefix('shop'), '/rstore/shop/')
  assert.equal(l.slot(7), '/rstore/shop/slots/7')
  assert.equal(l.group(2), '/rstore/shop/groups/2')
  assert.equal(l.epoch, '/rstore/shop/epoch')
  assert.equal(l.proxy('p1'), '/rstore/shop/proxies/p1')
  assert.equal(l.proxyControl('p1'), '/rstore/shop/proxyctl/p1')
  assert.equal(l.migrationLock, '/rstore/shop/locks/migration')
  assert.equal(l.migrationProgress, '/rstore/shop/progress/migration')
  assert.equal(l.config('dbunit', 'u'), '/rstore/shop/dbunits/u')
  assert.equal(l.config('dbgroup', 'g'), '/rstore/shop/dbgroups/g')
  assert.equal(l.config('shard', 's'), '/rstore/shop/shards/s')
  assert.equal(l.config('rule', 'r'), '/rstore/shop/rules/r')
  assert.equal(l.cutover('c'), '/rstore/shop/cutovers/c')
  assert.equal(l.proxyCredential, '/rstore/shop/backend-auth/proxy')
  assert.equal(l.parseSlot(l.slot(1023)), 1023)
  assert.equal(l.parseGroup(l.group(5)), 5)
  assert.equal(l.parseSlot(l.group(5)), undefined)
  assert.equal(l.parseSlot(l.slotsPrefix + 'x'), undefined)
})

test('parseMigrationLock: the holder, or undefined for a value that is not JSON', () => {
  assert.deepEqual(parseMigrationLock('{"job":"j1","host":"h","pid":3,"startedAt":1}'), {job: 'j1', host: 'h', pid: 3, startedAt: 1})
  assert.equal(parseMigrationLock('not json'), undefined)
})
