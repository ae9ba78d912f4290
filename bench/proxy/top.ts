/**
 * Summarizes a V8 .cpuprofile (from `bench/proxy/run.sh --profile`): the functions with the most
 * self time, and the same grouped by source file.
 *
 *   node dist/bench/proxy/top.js FILE.cpuprofile [--top 30]
 */
import {readFileSync} from 'node:fs'
import {parseArgs} from 'node:util'

interface ProfileNode {
  id: number
  callFrame: {functionName: string; url: string; lineNumber: number}
  hitCount?: number
}

interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const {values, positionals} = parseArgs({allowPositionals: true, options: {top: {type: 'string', default: '30'}}})
if (!positionals[0]) {
  console.error('usage: node dist/bench/proxy/top.js FILE.cpuprofile [--top 30]')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(positionals[0], 'utf8')) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfUs = new Map<number, number>()
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
let total = 0
for (const us of selfUs.values()) total += us

const fns = new Map<string, number>()
const files = new Map<string, number>()
for (const [id, us] of selfUs) {
  const f = byId.get(id)!.callFrame
  const file = f.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/') || '(native)'
  const name = `${f.functionName || '(anonymous)'}  ${file}${f.url ? `:${f.lineNumber + 1}` : ''}`
  fns.set(name, (fns.get(name) ?? 0) + us)
  files.set(file, (files.get(file) ?? 0) + us)
}
const show = (title: string, m: Map<string, number>, n: number) => {
  console.log(`\n${title}`)
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`)
  }
}
console.log(`total sampled: ${(total / 1e6).toFixed(2)} s`)
show('self time by function', fns, Number(values.top))
show('self time by file', files, 15)
