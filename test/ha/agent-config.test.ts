// The [agent] section of config.ini (docs/agent.md "Config") and the restart delays it sets.
import assert from 'node:assert/strict'
import {existsSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {after, test} from 'node:test'
import {DEFAULT_AGENT, loadConfig, parseIni, splitCommandLine} from '../../src/config.js'
import {ValidationError} from '../../src/errors.js'
import {nextQuickExits, restartDelay} from '../../src/ha/backoff.js'
import {runCli} from '../harness/cluster.js'
import {removeDir, tempDir} from '../harness/process.js'

const dir = tempDir('agent-config')
after(() => removeDir(dir))

test('[agent]: settings and process.<name> lines; keys before it stay top-level; paths relative to the file', () => {
  const file = join(dir, 'config.ini')
  writeFileSync(
    file,
    [
      'product = shop',
      '[agent]',
      'pidfile = run/agent.pid',
      'log_dir = /var/log/rstore',
      'backoff_ms = 250   # first delay',
      'process.redis1 = redis-server /etc/redis/6379.conf',
      `process.proxy1 = rstore proxy start --addr 127.0.0.1:19000 --id "proxy 1" --note 'a  b'`,
    ].join('\n'),
  )
  const cfg = loadConfig(file)
  assert.equal(cfg.product, 'shop')
  assert.deepEqual(cfg.agent, {
    ...DEFAULT_AGENT,
    pidfile: join(dir, 'run/agent.pid'),
    logDir: '/var/log/rstore',
    backoffMs: 250,
    processes: [
      {name: 'redis1', argv: ['redis-server', '/etc/redis/6379.conf']},
      {name: 'proxy1', argv: ['rstore', 'proxy', 'start', '--addr', '127.0.0.1:19000', '--id', 'proxy 1', '--note', 'a  b']},
    ],
  })
  const plain = join(dir, 'plain.ini')
  writeFileSync(plain, 'product = shop\n[rstore]\ncoordinator = embedded\n')
  assert.equal(loadConfig(plain).agent, undefined, 'no [agent] section: no agent config')
})

test('[agent]: hostile or mistyped lines are refused with the line named', () => {
  const bad: [string[], RegExp][] = [
    [['pidfle = x'], /x\.ini:2: unknown \[agent\] setting 'pidfle'/],
    [['process.a/b = sleep 1'], /invalid process name 'a\/b'/],
    [['process.a = sleep 1', 'process.a = sleep 2'], /process 'a' is declared twice/],
    [['process.a = sh -c "echo'], /unterminated "/],
    [['process.a = ""'.replace('""', '')], /empty command line/],
    [['backoff_ms = -5'], /backoff_ms must be a whole number/],
    [['backoff_max_ms = 1e9'], /backoff_max_ms must be a whole number/],
    [['pidfile ='], /pidfile is empty/],
  ]
  for (const [lines, re] of bad) {
    assert.throws(() => parseIni(['[agent]', ...lines].join('\n'), 'x.ini'), (err: unknown) => err instanceof ValidationError && re.test(err.message), lines.join(' | '))
  }
})

test('splitCommandLine: quotes group words, escapes inside double quotes, empty quotes are an argument', () => {
  assert.deepEqual(splitCommandLine(`a "b \\"c\\"" 'd e' f""g ''`, 'x'), ['a', 'b "c"', 'd e', 'fg', ''])
  assert.deepEqual(splitCommandLine('   ', 'x'), [])
})

test('restart delays double after each quick exit up to the cap and start over after a stable run', () => {
  const policy = {backoffMs: 100, backoffMaxMs: 1000, stableAfterMs: 5000}
  assert.deepEqual([1, 2, 3, 4, 5, 6, 100].map((n) => restartDelay(policy, n)), [100, 200, 400, 800, 1000, 1000, 1000])
  assert.equal(nextQuickExits(policy, 4, 10), 5)
  assert.equal(nextQuickExits(policy, 4, 5000), 1)
  // A cap below the first delay never shortens the first delay.
  assert.equal(restartDelay({...policy, backoffMaxMs: 10}, 3), 100)
})

test('agent start: an --ha-* flag without --ha is refused in one line and nothing starts', async () => {
  const cfgFile = join(dir, 'ha-only.ini')
  writeFileSync(cfgFile, ['[agent]', `pidfile = ${join(dir, 'ha-only', 'agent.pid')}`, `log_dir = ${join(dir, 'ha-only')}`, 'process.idle = sleep 300', ''].join('\n'))
  const res = await runCli(['agent', 'start', '-c', cfgFile, '--ha-down-after', '500', '--ha-id=x'])
  assert.notEqual(res.code, 0)
  assert.match(res.stderr, /--ha-down-after, --ha-id apply only with --ha: add --ha or leave them out/)
  assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr)
  assert.equal(existsSync(join(dir, 'ha-only', 'agent.pid')), false, 'no agent pidfile: nothing started')
})
