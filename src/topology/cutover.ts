import {ValidationError} from '../errors.js'
import {checkName, RuleConfigError, type CompiledRules} from './rules.js'

/**
 * A double-write cutover of one rule's key space to one db group (docs/architecture.md, "SQL routing, cutover, backfill, verify"), stored at
 * `cutovers/<name>`.
 *
 * - double-write: writes go to the old place (the rule's own route; the read source) and the
 *   resulting value of each written key is then copied to the new group; reads stay on the old place.
 * - switched: reads come from the new group; writes go to the new group first and the resulting value
 *   is copied to the old place, so an abort loses nothing.
 * - finished: the rule routes to the new group (its shard was replaced); the old place is not written.
 * - aborted: back to the old place only.
 */
export type CutoverStep = 'double-write' | 'switched' | 'finished' | 'aborted'
export const ACTIVE_STEPS: readonly CutoverStep[] = ['double-write', 'switched']

export interface Cutover {
  name: string
  rule: string
  /** The db group the rule's key space moves to. */
  to: string
  step: CutoverStep
  /** The rule's shard before the cutover (restored by nothing: kept for the record). */
  fromShard: string
  /**
   * Set while the side that answers is about to change (switch, or abort after switch): every proxy
   * parks the key space's writes, so no two proxies write a key on different sides first.
   */
  hold?: boolean
  history: {step: CutoverStep; at: number; epoch: number}[]
}

export function isActive(c: Cutover): boolean {
  return (ACTIVE_STEPS as readonly string[]).includes(c.step)
}

export function parseCutover(v: unknown, key: string): Cutover {
  const o = v as Partial<Cutover>
  if (!o || typeof o !== 'object' || typeof o.name !== 'string' || typeof o.rule !== 'string' || typeof o.to !== 'string' || typeof o.step !== 'string') {
    throw new ValidationError(`stored ${key} is not a cutover record`)
  }
  return {
    name: o.name,
    rule: o.rule,
    to: o.to,
    step: o.step,
    fromShard: o.fromShard ?? '',
    ...(o.hold === true ? {hold: true} : {}),
    history: Array.isArray(o.history) ? o.history : [],
  }
}

/** Checks active cutovers against a compiled configuration: rule and group exist, one cutover per rule. */
export function validateCutovers(rules: CompiledRules, cutovers: Cutover[]): void {
  const byRule = new Map<string, string>()
  for (const c of cutovers) {
    checkName(c.name, 'cutover')
    if (!isActive(c)) continue
    if (!rules.rules.some((r) => r.rule.name === c.rule)) throw new RuleConfigError('unknown-ref', `cutover ${c.name}: rule ${c.rule} does not exist`)
    const g = rules.groups.get(c.to)
    if (!g) throw new RuleConfigError('unknown-ref', `cutover ${c.name}: dbgroup ${c.to} does not exist`)
    if (g.replicateMode === 'discard') throw new RuleConfigError('bad-field', `cutover ${c.name}: dbgroup ${c.to} discards writes`)
    const other = byRule.get(c.rule)
    if (other) throw new RuleConfigError('duplicate', `rule ${c.rule} is already being cut over by ${other}`)
    byRule.set(c.rule, c.name)
  }
}
