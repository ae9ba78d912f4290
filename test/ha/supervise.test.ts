// rstore agent start / stop with real processes: a redis-server killed with kill -9 is restarted, a
// crash-looping command backs off, and agent stop leaves no process behind (docs/agent.md).
import assert from 'node:assert/strict'
import {existsSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, test} from 'node:test'
import {Redis} from 'ioredis'
import {runCli} from '../harness/cluster.js'
import {freePort, removeDir, requireBinary, tempDir, waitFor} from '../harness/process.js'
import {alive, startAgent} from './agent-helpers.js'

const dirs: string[] = []
after(() => dirs.forEach(removeDir))
function dir(): string {
  const d = tempDir('agent')
  dirs.push(d)
  return d
}

async function ping(port: number): Promise<string> {
  const c = new Redis({host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null, commandTimeout: 1000})
  c.on('error', () => {})
  try {
    return await c.ping()
  } finally {
    c.disconnect()
  }
}

test('a supervised redis-server killed with kill -9 is restarted: new pid, answers PING, restarts counted', async () => {
  const d = dir()
  const port = await freePort()
  const redis = requireBinary('redis-server')
  const agent = await startAgent(d, [
    'backoff_ms = 100',
    `process.redis1 = ${redis} --port ${port} --bind 127.0.0.1 --save "" --appendonly no --dir ${d}`,
  ])
  try {
    await waitFor('redis1 answers PING', async () => (await ping(port)) === 'PONG')
    const before = (await agent.status()).processes[0]!
    assert.equal(before.state, 'running')
    assert.equal(before.restarts, 0)
    assert.equal(Number(readFileSync(join(d, 'run', 'redis1.pid'), 'utf8')), before.pid)
    process.kill(before.pid!, 'SIGKILL')
    const t0 = Date.now()
    await waitFor('redis1 restarted with a new pid', async () => {
      const p = (await agent.status()).processes[0]!
      return p.state === 'running' && p.pid !== before.pid && (await ping(port)) === 'PONG'
    })
    const backIn = Date.now() - t0
    const now = (await agent.status()).processes[0]!
    assert.equal(now.restarts, 1)
    assert.equal(now.lastExit?.signal, 'SIGKILL')
    assert.ok(!alive(before.pid!), 'the killed pid is gone')
    assert.ok(backIn < 2000, `back within 2 s (took ${backIn} ms)`)
    assert.equal(Number(readFileSync(join(d, 'run', 'redis1.pid'), 'utf8')), now.pid, 'the pidfile names the new pid')
    assert.match(readFileSync(join(d, 'logs', 'redis1.log'), 'utf8'), /\(restart 1\)/)
  } finally {
    await agent.proc.stop()
  }
})

test('a command that crashes at once is restarted with a doubling delay, not in a spin', async () => {
  const d = dir()
  const agent = await startAgent(d, ['backoff_ms = 100', 'backoff_max_ms = 800', "process.crasher = sh -c 'echo crashing; exit 7'"])
  try {
    const t0 = Date.now()
    await new Promise((r) => setTimeout(r, 2500))
    const p = (await agent.status()).processes[0]!
    const elapsed = Date.now() - t0
    // Delays 100, 200, 400, 800, 800...: about 5 restarts in 2.5 s; a spin would make hundreds.
    assert.ok(p.restarts >= 3 && p.restarts <= 7, `restarts in ${elapsed} ms: ${p.restarts}`)
    assert.equal(p.lastExit?.code, 7)
    const starts = readFileSync(join(d, 'logs', 'crasher.log'), 'utf8').split('\n').filter((l) => l.startsWith('--- ')).map((l) => Date.parse(l.split(' ')[1]!))
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!)
    assert.ok(gaps.length >= 3, `starts logged: ${starts.length}`)
    // Each gap is at least its delay, and the delay reaches the cap (800 ms) without passing it much.
    assert.ok(gaps[0]! >= 90 && gaps[1]! >= 190 && gaps[2]! >= 390, `gaps ${gaps.join(', ')}`)
    for (const g of gaps.slice(3)) assert.ok(g >= 790 && g < 1500, `capped gap ${g}`)
    assert.equal(readFileSync(join(d, 'logs', 'crasher.log'), 'utf8').match(/^crashing$/gm)?.length, starts.length)
  } finally {
    await agent.proc.stop()
  }
})

test('agent stop stops the agent and every process it runs, their children too, and removes the pidfiles', async () => {
  const d = dir()
  const grandchildFile = join(d, 'grandchild.pid')
  const agent = await startAgent(d, [
    'process.one = sleep 300',
    `process.two = sh -c 'sleep 301 & echo $! > ${grandchildFile}; wait'`,
  ])
  await waitFor('the grandchild pid is written', () => existsSync(grandchildFile) && readFileSync(grandchildFile, 'utf8').trim() !== '')
  const st = await agent.status()
  const pids = [...st.processes.map((p) => p.pid!), Number(readFileSync(grandchildFile, 'utf8'))]
  assert.equal(pids.length, 3)
  for (const pid of pids) assert.ok(alive(pid), `pid ${pid} runs`)
  // A second agent on the same config is refused: it would run every process twice.
  const second = await runCli(['agent', 'start', '-c', agent.configFile], {cwd: d})
  assert.equal(second.code, 1)
  assert.match(second.stderr, /already running .*pid \d+/)
  const res = await runCli(['agent', 'stop', '-c', agent.configFile, '--json'], {cwd: d})
  assert.equal(res.code, 0, res.stderr)
  assert.equal(JSON.parse(res.stdout).pid, st.pid)
  assert.ok(!alive(st.pid), 'the agent is gone')
  for (const pid of pids) assert.ok(!alive(pid), `pid ${pid} is gone (${procState(pid)})`)
  for (const f of ['agent.pid', 'one.pid', 'two.pid']) assert.ok(!existsSync(join(d, 'run', f)), `${f} removed`)
  await waitFor('the agent process exited', () => agent.proc.child.exitCode !== null)
  assert.equal(agent.proc.child.exitCode, 0)
  const again = await runCli(['agent', 'stop', '-c', agent.configFile], {cwd: d})
  assert.equal(again.code, 1)
  assert.match(again.stderr, /no agent is running/)
})

test('SIGTERM to the agent stops its processes', async () => {
  const d = dir()
  const agent = await startAgent(d, ['process.one = sleep 302'])
  const pid = (await agent.status()).processes[0]!.pid!
  assert.ok(alive(pid))
  await agent.proc.stop('SIGTERM')
  assert.ok(!alive(pid), 'the supervised process is gone')
  assert.match(agent.proc.output(), /SIGTERM: stopping 1 process/)
})

function procState(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return 'no /proc entry'
  }
}

test('an agent killed with kill -9 leaves its processes; the next agent on the config stops them before starting its own', async () => {
  const d = dir()
  const first = await startAgent(d, ['process.one = sleep 304'])
  const leftover = (await first.status()).processes[0]!.pid!
  first.proc.child.kill('SIGKILL')
  await waitFor('the first agent is gone', () => first.proc.child.exitCode !== null || first.proc.child.signalCode !== null)
  assert.ok(alive(leftover), 'its process outlived it (SIGKILL cannot be handled)')
  const second = await startAgent(d, ['process.one = sleep 304'])
  try {
    await waitFor('the new process runs', async () => (await second.status()).processes[0]!.state === 'running')
    const now = (await second.status()).processes[0]!
    assert.notEqual(now.pid, leftover)
    assert.ok(!alive(leftover), 'the leftover was stopped')
    assert.match(second.proc.output(), new RegExp(`pid ${leftover} is still running from an earlier agent`))
  } finally {
    await second.proc.stop()
  }
})
