import {spawn, type ChildProcess} from 'node:child_process'
import type {Redis} from 'ioredis'
import {RSTORE_BIN, type Cluster} from '../harness/cluster.js'
import {slotOf} from '../../src/topology/slots.js'

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface Mover {
  child: ChildProcess
  output(): string
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>
}

/** Starts `rstore <args>` on the cluster in the background (the mover, to be killed or waited for). */
export function startMover(c: Cluster, args: string[], env: NodeJS.ProcessEnv = {}): Mover {
  const child = spawn(process.execPath, [RSTORE_BIN, ...args, ...c.coordinatorArgs], {cwd: c.dir, stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, ...env}})
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  // Killed with this test process if still running; the hook goes when the mover ends (the
  // failpoint test starts a dozen movers: no pile of listeners).
  const killOnExit = () => child.exitCode === null && child.kill('SIGKILL')
  process.on('exit', killOnExit)
  child.on('exit', () => process.off('exit', killOnExit))
  return {child, output: () => out, exited}
}

export interface SlotRangeRow {
  from: number
  to: number
  state: string
  group: number
  fromGroup?: number
  pending?: boolean
  hold?: boolean
}

export async function slotRanges(c: Cluster): Promise<SlotRangeRow[]> {
  return (JSON.parse(await c.cliOk(['slot', 'list', '--json'])) as {ranges: SlotRangeRow[]}).ranges
}

/** The owner group of each slot from the slot table (throws if any slot is not online). */
export function owners(ranges: SlotRangeRow[]): number[] {
  const out: number[] = []
  for (const r of ranges) {
    if (r.state !== 'online' || r.pending) throw new Error(`slots ${r.from}-${r.to} are ${r.state}${r.pending ? ' (pending)' : ''}`)
    for (let s = r.from; s <= r.to; s++) out[s] = r.group
  }
  return out
}

/** Every key of every group lives on the group that owns its slot; no internal key is left. */
export async function misplacedKeys(groups: Redis[], owner: number[]): Promise<string[]> {
  const bad: string[] = []
  for (let g = 0; g < groups.length; g++) {
    let cursor = '0'
    do {
      const [next, keys] = await groups[g]!.scan(cursor, 'COUNT', 1000)
      cursor = next
      for (const k of keys) {
        if (k.startsWith('__rstore:')) bad.push(`internal key ${k} left on group ${g + 1}`)
        else if (owner[slotOf(k)] !== g + 1) bad.push(`${k} (slot ${slotOf(k)}) is on group ${g + 1}, owner is ${owner[slotOf(k)]}`)
        if (bad.length > 20) return bad
      }
    } while (cursor !== '0')
  }
  return bad
}

export interface JobRow {
  id: string
  kind: string
  state: string
  running: boolean
  progress: {slotsDone: number; slotsTotal: number; keysMoved: number; phase: string; error?: string}
}

export async function jobs(c: Cluster): Promise<JobRow[]> {
  return JSON.parse(await c.cliOk(['jobs', '--json'])) as JobRow[]
}

/** Polls until check() returns a truthy value. */
export async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      const v = await check()
      if (v) return v
    } catch (err) {
      last = err
    }
    await sleep(everyMs)
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
}
