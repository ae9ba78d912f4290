/**
 * Proxy benchmark (issue 3): two redis-servers, the rstore proxy over them (slots 0-511 -> group 1,
 * 512-1023 -> group 2) and Twemproxy (nutcracker) over the same two, then
 * `redis-benchmark -t set,get -c 50 -n N -r 100000 -P 1|16` against direct Redis (one server),
 * Twemproxy and rstore, interleaved, and a table of requests/s with the ratios rstore/Twemproxy and
 * rstore/direct. Everything started is stopped at the end.
 *
 *   bash bench/proxy/run.sh [--requests 200000] [--clients 50] [--repeat 1] [--rstore-cpu 1] [--profile [--profile-dir DIR]]
 *
 * --repeat N runs each measurement N times and keeps the best (the machine may be shared).
 * --profile runs the rstore proxy under `node --cpu-prof` and leaves its .cpuprofile in --profile-dir
 * (default $TMPDIR/rstore-bench-profiles); open it in Chrome DevTools or summarize it with
 * `node dist/bench/proxy/top.js FILE`.
 */
import {execFile} from 'node:child_process'
import {mkdirSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, resolve} from 'node:path'
import {parseArgs} from 'node:util'
import {startCluster, type Cluster} from '../../test/harness/cluster.js'
import {freePort, requireBinary, startProcess, waitFor, type Managed} from '../../test/harness/process.js'
import {RawClient} from '../../test/harness/raw.js'

const {values: opt} = parseArgs({
  options: {
    requests: {type: 'string', default: '200000'},
    clients: {type: 'string', default: '50'},
    keyspace: {type: 'string', default: '100000'},
    repeat: {type: 'string', default: '1'},
    'rstore-cpu': {type: 'string', default: '1'},
    profile: {type: 'boolean', default: false},
    'profile-dir': {type: 'string', default: join(tmpdir(), 'rstore-bench-profiles')},
  },
})

interface Result {
  set: number
  get: number
}

function benchmark(port: number, pipeline: number): Promise<Result> {
  const args = [
    '-h', '127.0.0.1', '-p', String(port), '-t', 'set,get', '-c', opt.clients!, '-n', opt.requests!,
    '-r', opt.keyspace!, '-P', String(pipeline), '--csv',
  ]
  return new Promise((resolvePromise, reject) => {
    execFile('redis-benchmark', args, {encoding: 'utf8', timeout: 600_000}, (err, stdout, stderr) => {
      if (err) return reject(new Error(`redis-benchmark ${args.join(' ')} failed: ${err.message}\n${stderr}`))
      const rps: Record<string, number> = {}
      for (const line of stdout.split('\n')) {
        const m = /^"(SET|GET)","([\d.]+)"/.exec(line)
        if (m) rps[m[1]!] = Number(m[2])
      }
      if (rps.SET === undefined || rps.GET === undefined) return reject(new Error(`unexpected redis-benchmark output:\n${stdout}\n${stderr}`))
      resolvePromise({set: rps.SET, get: rps.GET})
    })
  })
}

async function startTwemproxy(dir: string, servers: string[]): Promise<{port: number; proc: Managed}> {
  const bin = requireBinary('nutcracker', ['/usr/sbin/nutcracker'])
  const port = await freePort()
  const statsPort = await freePort()
  const conf = join(dir, 'nutcracker.yml')
  writeFileSync(
    conf,
    [
      'rstore_bench:',
      `  listen: 127.0.0.1:${port}`,
      '  hash: fnv1a_64',
      '  distribution: ketama',
      '  redis: true',
      '  auto_eject_hosts: false',
      '  preconnect: true',
      '  server_connections: 1',
      '  servers:',
      ...servers.map((s) => `   - ${s}:1`),
      '',
    ].join('\n'),
  )
  const proc = startProcess(bin, ['-c', conf, '-s', String(statsPort), '-a', '127.0.0.1', '-o', join(dir, 'nutcracker.log'), '-p', join(dir, 'nutcracker.pid')])
  await waitFor('nutcracker answers', async () => {
    if (proc.child.exitCode !== null) throw new Error(`nutcracker exited: ${proc.output()}`)
    const c = await RawClient.connect(port)
    try {
      return (await c.call('SET', 'bench:probe', '1')) === 'OK'
    } finally {
      c.close()
    }
  }, 10000, 100)
  return {port, proc}
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US')
}

async function main(): Promise<void> {
  requireBinary('redis-benchmark')
  const repeat = Math.max(1, Number(opt.repeat))
  const proxyArgs = ['--cpu', opt['rstore-cpu']!]
  let cluster: Cluster | undefined
  let twem: {port: number; proc: Managed} | undefined
  const profileDir = resolve(opt['profile-dir']!)
  try {
    cluster = await startCluster({groups: 2, proxies: 0, slots: 'split', proxyArgs})
    if (opt.profile) mkdirSync(profileDir, {recursive: true})
    await cluster.startProxy({nodeArgs: opt.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []})
    twem = await startTwemproxy(cluster.dir, cluster.groups.map((g) => g.addr))
    const targets: [string, number][] = [
      ['direct', cluster.groups[0]!.port],
      ['twemproxy', twem.port],
      ['rstore', cluster.proxies[0]!.port],
    ]
    console.log(`rstore proxy benchmark: redis-benchmark -t set,get -c ${opt.clients} -n ${opt.requests} -r ${opt.keyspace}, best of ${repeat}`)
    console.log(`direct = one redis-server ${cluster.groups[0]!.addr}; twemproxy and rstore over ${cluster.groups.map((g) => g.addr).join(' + ')}; rstore --cpu ${opt['rstore-cpu']}`)
    const rows: {pipeline: number; test: 'SET' | 'GET'; rps: Record<string, number>}[] = []
    for (const pipeline of [1, 16]) {
      const best: Record<string, Result> = {}
      for (let r = 0; r < repeat; r++) {
        for (const [name, port] of targets) {
          const res = await benchmark(port, pipeline)
          process.stderr.write(`  -P ${pipeline} ${name.padEnd(9)} SET ${fmt(res.set)}/s GET ${fmt(res.get)}/s\n`)
          const b = best[name]
          best[name] = {set: Math.max(b?.set ?? 0, res.set), get: Math.max(b?.get ?? 0, res.get)}
        }
      }
      for (const test of ['SET', 'GET'] as const) {
        const key = test === 'SET' ? 'set' : 'get'
        rows.push({pipeline, test, rps: Object.fromEntries(targets.map(([n]) => [n, best[n]![key]]))})
      }
    }
    const head = ['-P', 'test', 'direct rps', 'twemproxy rps', 'rstore rps', 'rstore/twemproxy', 'rstore/direct']
    const body = rows.map((r) => [
      String(r.pipeline), r.test, fmt(r.rps.direct!), fmt(r.rps.twemproxy!), fmt(r.rps.rstore!),
      `${(r.rps.rstore! / r.rps.twemproxy!).toFixed(2)}x`, `${(r.rps.rstore! / r.rps.direct!).toFixed(2)}x`,
    ])
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
    const line = (cells: string[]) => `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`
    console.log('')
    console.log(line(head))
    console.log(`|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`)
    for (const b of body) console.log(line(b))
    const p16 = rows.filter((r) => r.pipeline === 16).map((r) => r.rps.rstore! / r.rps.twemproxy!)
    const p1 = rows.filter((r) => r.pipeline === 1).map((r) => r.rps.rstore! / r.rps.direct!)
    console.log('')
    console.log(`targets: rstore >= 1.0x twemproxy at -P 16: ${p16.every((x) => x >= 1) ? 'met' : 'NOT met'} (${p16.map((x) => x.toFixed(2)).join(', ')}); ` +
      `rstore >= 0.9x direct at -P 1: ${p1.every((x) => x >= 0.9) ? 'met' : 'NOT met'} (${p1.map((x) => x.toFixed(2)).join(', ')})`)
  } finally {
    await twem?.proc.stop()
    await cluster?.stop()
    if (opt.profile) console.log(`cpu profiles in ${profileDir}`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
