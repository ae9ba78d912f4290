#!/usr/bin/env node
// The quick start's sample data, load generator and final check (see scripts/quickstart.sh).
//   node scripts/quickstart-load.mjs seed  <proxy host:port> <keys> <state.json>
//   node scripts/quickstart-load.mjs run   <proxy host:port> <state.json>      (until SIGINT/SIGTERM)
//   node scripts/quickstart-load.mjs check <proxy host:port> <state.json> <config.ini>
// One writer per key, so the last value of every key is known; the check reads every key through the
// proxy and looks on every group's master that the key is on the group that owns its slot.
import {readFileSync, writeFileSync} from 'node:fs'
import {execFileSync} from 'node:child_process'
import {dirname, join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {Redis} from 'ioredis'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const {slotOf} = await import(join(root, 'dist/src/topology/slots.js'))
const [cmd, addr, ...rest] = process.argv.slice(2)
const [host, port] = addr.split(':')
const client = () => {
  const r = new Redis({host, port: Number(port), maxRetriesPerRequest: 2})
  r.on('error', () => {})
  return r
}

if (cmd === 'seed') {
  const [n, stateFile] = [Number(rest[0]), rest[1]]
  const r = client()
  const state = {strings: {}, counters: {}}
  for (let i = 0; i < n; i += 1000) {
    const p = r.pipeline()
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      if (j % 2) p.incr(`qs:counter:${j}`), (state.counters[`qs:counter:${j}`] = 1)
      else p.set(`qs:user:${j}`, `v1`), (state.strings[`qs:user:${j}`] = 'v1')
    }
    const res = await p.exec()
    for (const [err] of res) if (err) throw err
  }
  writeFileSync(stateFile, JSON.stringify(state))
  console.log(`wrote ${n} sample keys through the proxy at ${addr}`)
  r.disconnect()
} else if (cmd === 'run') {
  const stateFile = rest[0]
  const state = JSON.parse(readFileSync(stateFile, 'utf8'))
  const names = [...Object.keys(state.strings), ...Object.keys(state.counters)]
  let running = true
  let ops = 0
  let errors = 0
  const stop = () => (running = false)
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  // 8 writers; writer w owns the keys with index % 8 == w (one writer per key).
  await Promise.all(
    Array.from({length: 8}, async (_, w) => {
      const r = client()
      const mine = names.filter((_, i) => i % 8 === w)
      let n = 1
      while (running) {
        const key = mine[Math.floor(Math.random() * mine.length)]
        try {
          if (key in state.counters) {
            const v = await r.incr(key)
            if (v !== state.counters[key] + 1) throw new Error(`INCR ${key} = ${v}, expected ${state.counters[key] + 1}`)
            state.counters[key] = v
          } else {
            const v = `v${++n}-${w}`
            if ((await r.set(key, v)) !== 'OK') throw new Error(`SET ${key} failed`)
            state.strings[key] = v
          }
          ops++
        } catch (err) {
          errors++
          if (errors <= 5) console.error(`load: ${err.message}`)
          delete state.counters[key]
          delete state.strings[key]
        }
      }
      r.disconnect()
    }),
  )
  writeFileSync(stateFile, JSON.stringify({...state, ops, errors}))
  console.log(`load generator: ${ops} writes through the proxy, ${errors} errors`)
} else if (cmd === 'check') {
  const [stateFile, config] = rest
  const state = JSON.parse(readFileSync(stateFile, 'utf8'))
  const rstore = (...a) => execFileSync(process.execPath, [join(root, 'bin/run.js'), ...a, '-c', config, '--json'], {encoding: 'utf8'})
  const ranges = JSON.parse(rstore('slot', 'list')).ranges
  const owner = []
  for (const rg of ranges) for (let s = rg.from; s <= rg.to; s++) owner[s] = rg.state === 'online' ? rg.group : 0
  const groups = JSON.parse(rstore('server', 'list'))
  const masters = new Map()
  for (const g of groups.groups ?? groups) {
    const m = (g.servers ?? []).find((s) => s.role === 'master')
    if (m) masters.set(g.id, m.addr)
  }
  const r = client()
  let wrong = 0
  let misplaced = 0
  const entries = [...Object.entries(state.strings), ...Object.entries(state.counters).map(([k, v]) => [k, String(v)])]
  for (let i = 0; i < entries.length; i += 1000) {
    const part = entries.slice(i, i + 1000)
    const got = await r.mget(...part.map(([k]) => k))
    part.forEach(([k, v], j) => {
      if (got[j] !== v) {
        wrong++
        if (wrong <= 5) console.log(`  WRONG ${k}: read ${got[j]}, last written ${v}`)
      }
    })
  }
  for (const [id, a] of masters) {
    const [h, p] = a.split(':')
    const m = new Redis({host: h, port: Number(p)})
    let cursor = '0'
    do {
      const [next, keys] = await m.scan(cursor, 'COUNT', 1000)
      cursor = next
      for (const k of keys) {
        if (k.startsWith('__rstore:') || owner[slotOf(k)] !== id) {
          misplaced++
          if (misplaced <= 5) console.log(`  MISPLACED ${k} (slot ${slotOf(k)}) on group ${id}, owner ${owner[slotOf(k)]}`)
        }
      }
    } while (cursor !== '0')
    m.disconnect()
  }
  r.disconnect()
  const perGroup = ranges.map((rg) => `slots ${rg.from}-${rg.to} ${rg.state} in group ${rg.group}`).join('; ')
  console.log(`check: ${entries.length} keys read through the proxy: ${wrong} differ from their last written value; ${misplaced} keys on a group that does not own their slot`)
  console.log(`       ${perGroup}; load: ${state.ops ?? 0} writes, ${state.errors ?? 0} errors`)
  const ok = wrong === 0 && misplaced === 0 && !state.errors
  console.log(ok ? 'QUICK START CHECK PASSED: every key is where it should be with its last value' : 'QUICK START CHECK FAILED')
  process.exit(ok ? 0 : 1)
} else {
  console.error('usage: quickstart-load.mjs seed|run|check ...')
  process.exit(2)
}
