import {allCommands, lookupCommand, type CommandSpec} from '../resp/commands.js'
import {
  encodeArrayOfRaw,
  encodeBulk,
  encodeCommand,
  encodeError,
  encodeInt,
  encodeSimple,
  encodeValue,
  OK,
  PONG,
  decodeReplyOrError,
  RespError,
  type RespValue,
} from '../resp/resp.js'
import {createHash, timingSafeEqual} from 'node:crypto'
import {flushDirtySessions, type ReplySlot, type Session} from './session.js'
import type {BackendPool} from '../resp/backend.js'
import {mergeInfo, parseInfo} from './info-merge.js'

/** Version reported to clients; clients such as ioredis and redis-cli check it for features. */
export const REDIS_COMPAT_VERSION = '7.0.15'
export const RSTORE_VERSION = '0.1.0'

export interface LocalHost {
  password: string | undefined
  pool: BackendPool
  masters(): string[]
  info(): string
  sessions(): Session[]
  /** An AUTH (or HELLO AUTH) was refused: counted in /metrics. */
  onAuthFailure?(session: Session): void
}

/** Failed AUTH attempts a connection makes at full speed; later ones are answered more slowly. */
export const AUTH_FREE_FAILURES = 3
const AUTH_DELAY_FIRST_MS = 100
const AUTH_DELAY_MAX_MS = 2000

/**
 * After a few failures on one connection each further AUTH reply is delayed (100 ms, doubling, at
 * most 2 s), and the delays add up, so a pipelined guesser gets no more than one try per delay.
 */
function authDelayMs(session: Session): number {
  const over = session.authFailures - AUTH_FREE_FAILURES
  if (over <= 0) return 0
  const delay = Math.min(AUTH_DELAY_FIRST_MS * 2 ** (over - 1), AUTH_DELAY_MAX_MS)
  const now = Date.now()
  session.authDelayUntil = Math.max(now, session.authDelayUntil) + delay
  return session.authDelayUntil - now
}

/** Compares in time independent of where the strings differ (digests have equal length). */
function samePassword(a: string, b: string): boolean {
  const d = (x: string) => createHash('sha256').update(x).digest()
  return timingSafeEqual(d(a), d(b))
}

const lower = (b: Buffer | undefined) => (b ? b.toString('latin1').toLowerCase() : '')

/** Answers the commands the proxy serves itself. */
export function answerLocal(host: LocalHost, session: Session, spec: CommandSpec, args: Buffer[], slot: ReplySlot): void {
  const reply = (b: Buffer) => session.fill(slot, b)
  switch (spec.name) {
    case 'ping':
      if (args.length > 2) return reply(encodeError("ERR wrong number of arguments for 'ping' command"))
      return reply(args.length === 2 ? encodeBulk(args[1]!) : PONG)
    case 'echo':
      return reply(encodeBulk(args[1]!))
    case 'quit':
      reply(OK)
      session.closeAfterReplies()
      return
    case 'auth':
      return replyAuth(session, slot, auth(host, session, args.slice(1)))
    case 'select': {
      const db = args[1]!.toString()
      if (db === '0') return reply(OK)
      if (!/^-?\d+$/.test(db)) return reply(encodeError('ERR value is not an integer or out of range'))
      return reply(encodeError("ERR unsupported command 'select' in rstore proxy: only database 0 exists"))
    }
    case 'hello': {
      const failures = session.authFailures
      const r = hello(host, session, args)
      return session.authFailures > failures ? replyAuth(session, slot, r) : reply(r)
    }
    case 'client':
      return reply(client(host, session, args))
    case 'command':
      return reply(command(args))
    case 'info':
      return info(host, session, args, slot)
    case 'time': {
      const now = Date.now()
      return reply(encodeValue([String(Math.floor(now / 1000)), String((now % 1000) * 1000)]))
    }
    case 'readonly':
    case 'readwrite':
      return reply(OK)
    case 'reset':
      session.name = null
      session.authed = host.password === undefined
      return reply(encodeSimple('RESET'))
    case 'dbsize':
      return dbsize(host, session, slot)
    default:
      return reply(encodeError(`ERR unknown command '${spec.name}'`))
  }
}

/** An AUTH's reply: at once, or (a refusal after a few) delayed; later replies wait behind it in order. */
function replyAuth(session: Session, slot: ReplySlot, r: Buffer): void {
  const delay = r[0] === 0x2d ? authDelayMs(session) : 0
  if (delay === 0) return session.fill(slot, r)
  setTimeout(() => {
    session.fill(slot, r)
    flushDirtySessions()
  }, delay).unref()
}

function auth(host: LocalHost, session: Session, creds: Buffer[]): Buffer {
  if (creds.length > 2) return encodeError('ERR syntax error')
  if (host.password === undefined) {
    return encodeError(
      'ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?',
    )
  }
  const user = creds.length === 2 ? creds[0]!.toString() : 'default'
  const pass = creds[creds.length - 1]!.toString()
  if (samePassword(user, 'default') && samePassword(pass, host.password)) {
    session.authed = true
    return OK
  }
  session.authFailures++
  host.onAuthFailure?.(session)
  return encodeError('WRONGPASS invalid username-password pair or user is disabled.')
}

function hello(host: LocalHost, session: Session, args: Buffer[]): Buffer {
  let i = 1
  if (args.length > 1) {
    const ver = args[1]!.toString()
    if (!/^\d+$/.test(ver)) return encodeError('ERR Protocol version is not an integer or out of range')
    if (ver !== '2') return encodeError('NOPROTO unsupported protocol version: rstore proxy speaks RESP2 only')
    i = 2
  }
  for (; i < args.length; i++) {
    const opt = lower(args[i])
    if (opt === 'auth' && i + 2 < args.length) {
      const r = auth(host, session, [args[i + 1]!, args[i + 2]!])
      if (r[0] === 0x2d) return r
      i += 2
    } else if (opt === 'setname' && i + 1 < args.length) {
      session.name = args[++i]!
    } else {
      return encodeError(`ERR Syntax error in HELLO option '${args[i]!.toString()}'`)
    }
  }
  if (!session.authed) return encodeError('NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time')
  return encodeValue([
    'server', 'redis', 'version', REDIS_COMPAT_VERSION, 'proto', 2, 'id', session.id,
    'mode', 'standalone', 'role', 'master', 'modules', [],
  ])
}

function client(host: LocalHost, session: Session, args: Buffer[]): Buffer {
  const sub = lower(args[1])
  switch (sub) {
    case 'setname': {
      if (args.length !== 3) return encodeError("ERR wrong number of arguments for 'client|setname' command")
      const name = args[2]!
      if (/[\s]/.test(name.toString('latin1'))) return encodeError('ERR Client names cannot contain spaces, newlines or special characters.')
      session.name = name.length ? name : null
      return OK
    }
    case 'getname':
      return encodeBulk(session.name)
    case 'setinfo':
      if (args.length !== 4) return encodeError("ERR wrong number of arguments for 'client|setinfo' command")
      return OK
    case 'id':
      return encodeInt(session.id)
    case 'info':
      return encodeBulk(clientLine(session) + '\n')
    case 'list':
      return encodeBulk(host.sessions().map((s) => clientLine(s) + '\n').join(''))
    case 'no-evict':
    case 'no-touch':
    case 'reply':
      return sub === 'reply' ? encodeError("ERR unsupported command 'client reply' in rstore proxy") : OK
    default:
      return encodeError(`ERR unsupported command 'client ${sub}' in rstore proxy`)
  }
}

function clientLine(s: Session): string {
  const addr = `${s.socket.remoteAddress}:${s.socket.remotePort}`
  const age = Math.floor((Date.now() - s.connectedAt) / 1000)
  const idle = Math.floor((Date.now() - s.lastCommandAt) / 1000)
  return `id=${s.id} addr=${addr} name=${s.name?.toString() ?? ''} age=${age} idle=${idle} db=0`
}

function commandEntry(spec: CommandSpec): RespValue {
  const flags = spec.write ? ['write'] : spec.kind === 'local' ? ['fast'] : ['readonly']
  return [spec.name, spec.arity, flags, spec.firstKey, spec.lastKey, spec.step, [], [], [], []]
}

function command(args: Buffer[]): Buffer {
  const served = allCommands().filter((c) => c.kind !== 'unsupported')
  const sub = lower(args[1])
  if (!sub) return encodeValue(served.map(commandEntry))
  if (sub === 'count') return encodeInt(served.length)
  if (sub === 'docs') {
    // redis-cli 7 asks for docs at start for its hints; it works without them.
    return encodeArrayOfRaw([])
  }
  if (sub === 'info') {
    return encodeValue(
      args.slice(2).map((n) => {
        const spec = lookupCommand(lower(n))
        return spec && spec.kind !== 'unsupported' ? commandEntry(spec) : null
      }),
    )
  }
  if (sub === 'list') return encodeValue(served.map((c) => c.name))
  return encodeError(`ERR unsupported command 'command ${sub}' in rstore proxy`)
}

/** DBSIZE: the sum over every group's master. */
function dbsize(host: LocalHost, session: Session, slot: ReplySlot): void {
  const masters = host.masters()
  if (masters.length === 0) return session.fill(slot, encodeInt(0))
  let waiting = masters.length
  let sum = 0
  let error: Buffer | null = null
  for (const m of masters) {
    host.pool.get(m, session.id).send(encodeCommand(['DBSIZE']), (raw, err) => {
      if (err) error = encodeError(err)
      else {
        const v = decodeReplyOrError(raw!)
        if (typeof v === 'number') sum += v
        else error = v instanceof RespError ? encodeError(v.message) : raw!
      }
      if (--waiting === 0) session.fill(slot, error ?? encodeInt(sum))
    })
  }
}

/**
 * INFO [section ...]: the same INFO on every master, merged (src/proxy/info-merge.ts), plus an
 * `# Rstore` section. A group that fails leaves its numbers out and is named in `rstore_info_error`.
 */
function info(host: LocalHost, session: Session, args: Buffer[], slot: ReplySlot): void {
  const masters = host.masters()
  const sections = args.slice(1).map((a) => lower(a))
  const withRstore = sections.length === 0 || sections.some((s) => ['all', 'everything', 'default', 'rstore'].includes(s))
  const own = host.info()
  const ownServer = parseInfo(own)
  const rstore: [string, string][] = []
  for (const k of ['rstore_version', 'proxy_id', 'topology_epoch', 'proxy_state']) rstore.push([k, ownServer.get('Server')?.get(k) ?? ''])
  rstore.push(['groups', String(masters.length)])
  for (const k of ['used_memory', 'used_memory_rss']) rstore.push([`proxy_${k}`, ownServer.get('Memory')?.get(k) ?? ''])
  const texts: (string | undefined)[] = new Array(masters.length)
  const errors: string[] = []
  let waiting = masters.length
  const done = () => {
    if (errors.length) rstore.push(['rstore_info_error', errors.join('; ')])
    session.fill(slot, encodeBulk(mergeInfo(texts.filter((t): t is string => t !== undefined), own, rstore, withRstore)))
  }
  if (waiting === 0) return done()
  const cmd = encodeCommand(args)
  masters.forEach((m, i) => {
    host.pool.get(m, session.id).send(cmd, (raw, err) => {
      const v = err ? null : decodeReplyOrError(raw!)
      if (Buffer.isBuffer(v)) texts[i] = v.toString('utf8')
      else errors.push(`${m}: ${err ?? String((v as {message?: string})?.message ?? v)}`)
      if (--waiting === 0) done()
    })
  })
}
