/**
 * A checked concurrent workload for migration tests: writers send strings (SET), counters (INCR),
 * hashes (HINCRBY), lists (RPUSH), sets (SADD), keys with a TTL (SET EX) and short-lived keys (SET PX)
 * through two proxies. Every key has exactly one writer, every write is awaited, so the expected
 * value of every key is known at every moment: each reply is checked, some writes are read back at
 * once through the other proxy, and verify() reads every key through every proxy at the end.
 */
import type {Redis} from 'ioredis'
import {slotOf} from '../../src/topology/slots.js'

export type Kind = 'str' | 'cnt' | 'hash' | 'list' | 'set' | 'ttl' | 'exp'
const KINDS: Kind[] = ['str', 'cnt', 'hash', 'list', 'set', 'ttl', 'exp']
export const TTL_SEC = 3600
const EXP_MS = 400

interface KeyState {
  kind: Kind
  /** Writes applied (0 = never written). */
  n: number
  /** hash: per field counts; list: length; set: members; str/ttl/exp: last value. */
  value: string
  fields: number[]
  lastWriteAt: number
}

export interface WorkloadOptions {
  /** Keys per kind written before the migration starts. */
  initialPerKind: number
  /** Extra keys per kind that only come into existence while the workload runs. */
  growPerKind: number
  writers: number
  /** Fraction of writes read back at once through the other proxy. */
  readBack?: number
  prefix?: string
}

export class Workload {
  readonly keys = new Map<string, KeyState>()
  readonly errors: string[] = []
  readonly wrong: string[] = []
  ops = 0
  reads = 0
  private running = false
  private loops: Promise<void>[] = []
  private readonly byWriter: string[][] = []
  private readonly prefix: string

  constructor(
    private readonly clients: Redis[],
    private readonly opts: WorkloadOptions,
  ) {
    this.prefix = opts.prefix ?? 'w'
    for (let w = 0; w < opts.writers; w++) this.byWriter.push([])
    let i = 0
    for (const kind of KINDS) {
      for (let k = 0; k < opts.initialPerKind + opts.growPerKind; k++) {
        const key = `${this.prefix}:${kind}:${k}`
        this.keys.set(key, {kind, n: 0, value: '', fields: [0, 0, 0], lastWriteAt: 0})
        this.byWriter[i++ % opts.writers]!.push(key)
      }
    }
  }

  /** Writes every initial key once (pipelined through the first proxy). */
  async populate(): Promise<void> {
    const batch: Promise<void>[] = []
    for (const [key, st] of this.keys) {
      const idx = Number(key.slice(key.lastIndexOf(':') + 1))
      if (idx >= this.opts.initialPerKind || st.kind === 'exp') continue
      batch.push(this.write(key, st, this.clients[0]!))
      if (batch.length >= 500) await Promise.all(batch.splice(0))
    }
    await Promise.all(batch)
  }

  private record(what: 'error' | 'wrong', text: string): void {
    const list = what === 'error' ? this.errors : this.wrong
    if (list.length < 200) list.push(text)
  }

  /** One write of key through client; checks the reply against the known state. */
  private async write(key: string, st: KeyState, client: Redis): Promise<void> {
    const n = st.n + 1
    let reply: unknown
    let expected: unknown
    try {
      switch (st.kind) {
        case 'str':
          expected = 'OK'
          reply = await client.set(key, `v${n}`)
          if (reply === 'OK') st.value = `v${n}`
          break
        case 'ttl':
          expected = 'OK'
          reply = await client.set(key, `t${n}`, 'EX', TTL_SEC)
          if (reply === 'OK') st.value = `t${n}`
          break
        case 'exp':
          expected = 'OK'
          reply = await client.set(key, `e${n}`, 'PX', EXP_MS)
          if (reply === 'OK') st.value = `e${n}`
          break
        case 'cnt':
          expected = n
          reply = await client.incr(key)
          break
        case 'hash': {
          const f = n % 3
          expected = st.fields[f]! + 1
          reply = await client.hincrby(key, `f${f}`, 1)
          if (reply === expected) st.fields[f]!++
          break
        }
        case 'list':
          expected = n
          reply = await client.rpush(key, `i${n}`)
          break
        case 'set':
          expected = 1
          reply = await client.sadd(key, `m${n}`)
          break
      }
    } catch (err) {
      this.record('error', `${st.kind} ${key} (slot ${slotOf(key)}) write ${n}: ${(err as Error).message}`)
      // The write may or may not have happened: a failed write makes the key's final value unknown.
      st.n = -1e9
      return
    }
    this.ops++
    st.lastWriteAt = Date.now()
    if (reply !== expected) {
      this.record('wrong', `${st.kind} ${key} (slot ${slotOf(key)}) write ${n}: expected ${String(expected)}, got ${String(reply)}`)
      st.n = -1e9
      return
    }
    st.n = n
  }

  /** Reads a key and compares with the expected state; returns a problem text or ''. */
  async check(key: string, st: KeyState, client: Redis, now = Date.now()): Promise<string> {
    if (st.n < 0) return ''
    const where = `${st.kind} ${key} (slot ${slotOf(key)})`
    try {
      switch (st.kind) {
        case 'str': {
          const v = await client.get(key)
          const want = st.n === 0 ? null : `v${st.n}`
          return v === want ? '' : `${where}: GET ${v}, want ${want}`
        }
        case 'ttl': {
          const [v, ttl] = await Promise.all([client.get(key), client.ttl(key)])
          if (st.n === 0) return v === null ? '' : `${where}: GET ${v}, want nil`
          if (v !== `t${st.n}`) return `${where}: GET ${v}, want t${st.n}`
          // The read may have waited in the proxy (behind a command on a held slot): the TTL is as
          // of when it ran, so the key's age counts until the reply, not from when it was asked.
          const age = (Math.max(now, Date.now()) - st.lastWriteAt) / 1000
          return ttl > 0 && ttl <= TTL_SEC && ttl >= TTL_SEC - age - 5 ? '' : `${where}: TTL ${ttl}, want about ${Math.round(TTL_SEC - age)}`
        }
        case 'exp': {
          const v = await client.get(key)
          if (st.n === 0 || now - st.lastWriteAt > EXP_MS + 1500) return v === null ? '' : `${where}: GET ${v} long after it expired`
          return v === null || v === `e${st.n}` ? '' : `${where}: GET ${v}, want e${st.n} or nil`
        }
        case 'cnt': {
          const v = await client.get(key)
          const want = st.n === 0 ? null : String(st.n)
          return v === want ? '' : `${where}: GET ${v}, want ${want}`
        }
        case 'hash': {
          const h = await client.hgetall(key)
          const want: Record<string, string> = {}
          st.fields.forEach((c, i) => c && (want[`f${i}`] = String(c)))
          const got = JSON.stringify(Object.entries(h).sort())
          return got === JSON.stringify(Object.entries(want).sort()) ? '' : `${where}: HGETALL ${got}, want ${JSON.stringify(want)}`
        }
        case 'list': {
          const l = await client.lrange(key, 0, -1)
          const ok = l.length === st.n && l.every((x, i) => x === `i${i + 1}`)
          return ok ? '' : `${where}: LRANGE has ${l.length} items (last ${l[l.length - 1]}), want i1..i${st.n}`
        }
        case 'set': {
          const m = await client.smembers(key)
          const ok = m.length === st.n && m.every((x) => Number(x.slice(1)) >= 1 && Number(x.slice(1)) <= st.n)
          return ok ? '' : `${where}: SMEMBERS has ${m.length}, want m1..m${st.n}`
        }
      }
    } catch (err) {
      return `${where}: read failed: ${(err as Error).message}`
    }
    return ''
  }

  start(): void {
    this.running = true
    this.loops = this.byWriter.map((keys, w) => this.writer(keys, w))
  }

  private async writer(keys: string[], w: number): Promise<void> {
    let i = w
    while (this.running) {
      const key = keys[Math.floor(Math.random() * keys.length)]!
      const st = this.keys.get(key)!
      if (st.n < 0) {
        await new Promise((r) => setTimeout(r, 5))
        continue
      }
      const client = this.clients[i++ % this.clients.length]!
      await this.write(key, st, client)
      if (Math.random() < (this.opts.readBack ?? 0.2) && st.n > 0) {
        const other = this.clients[i % this.clients.length]!
        this.reads++
        const problem = await this.check(key, st, other)
        if (problem) this.record(problem.includes('read failed') ? 'error' : 'wrong', `read-back: ${problem}`)
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false
    await Promise.all(this.loops)
    this.loops = []
  }

  /** Reads every key through every client; returns the problems (empty = all good). */
  async verify(clients: Redis[] = this.clients): Promise<string[]> {
    const problems: string[] = []
    const now = Date.now()
    const entries = [...this.keys]
    for (const client of clients) {
      for (let i = 0; i < entries.length; i += 200) {
        const res = await Promise.all(entries.slice(i, i + 200).map(([k, st]) => this.check(k, st, client, now)))
        for (const p of res) if (p && problems.length < 50) problems.push(p)
      }
    }
    return problems
  }

  /** Keys written at least once (for reporting). */
  written(): number {
    let n = 0
    for (const st of this.keys.values()) if (st.n > 0) n++
    return n
  }
}

/** Keys on a server (SCAN) whose slot is in [from, to], and internal `__rstore:` keys left over. */
export async function strandedKeys(server: Redis, from: number, to: number): Promise<{stranded: string[]; internal: string[]}> {
  const stranded: string[] = []
  const internal: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await server.scan(cursor, 'COUNT', 1000)
    cursor = next
    for (const k of keys) {
      if (k.startsWith('__rstore:')) internal.push(k)
      else {
        const s = slotOf(k)
        if (s >= from && s <= to) stranded.push(k)
      }
    }
  } while (cursor !== '0')
  return {stranded, internal}
}
