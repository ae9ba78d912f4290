import {parseInt64} from '../numbers.js'
import {CommandError, type Reply} from '../reply.js'
import type {KeyType} from '../types.js'

/** Type codes in the key table. */
export const T = {string: 0, hash: 1, list: 2, set: 3, zset: 4} as const
export const TYPE_NAMES: KeyType[] = ['string', 'hash', 'list', 'set', 'zset']

/** Thrown inside a transaction to run it again (a concurrent insert of the same key won). */
export class RetryTx extends Error {}

export interface KeyState {
  type: number
  expireAt: number | null
}

/** Table names: the key table and the data table of each type code. */
export interface Tables {
  keys: string
  data: string[]
}

export type Handler = (args: Buffer[], now: number) => Promise<Reply>
/** Command name -> [arity as Redis counts it (negative: at least), handler]. */
export type CommandTable = Record<string, [number, Handler]>

export const ERR_INT = 'ERR value is not an integer or out of range'
export const ERR_FLOAT = 'ERR value is not a valid float'
export const ERR_SYNTAX = 'ERR syntax error'

export const num = (v: unknown): number => Number(v)
export const expiryOf = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v))
export const upper = (b: Buffer) => b.toString('latin1').toUpperCase()

export function int64Arg(b: Buffer, err = ERR_INT): bigint {
  const v = parseInt64(b)
  if (v === null) throw new CommandError(err)
  return v
}

export function dedupe(bufs: Buffer[]): Buffer[] {
  const seen = new Set<string>()
  const out: Buffer[] = []
  for (const b of bufs) {
    const h = b.toString('latin1')
    if (!seen.has(h)) {
      seen.add(h)
      out.push(b)
    }
  }
  return out
}

export function chunks<X>(xs: X[], n: number): X[][] {
  const out: X[][] = []
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n))
  return out
}
