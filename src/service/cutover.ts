import {setTimeout as sleep} from 'node:timers/promises'
import {openStore, type KeyStore} from '../backends/index.js'
import type {RstoreConfig} from '../config.js'
import {PreconditionFailedError, type TopologyStore} from '../coord/topology-store.js'
import type {Op} from '../coord/types.js'
import {ConflictError, NotFoundError, RstoreError, ValidationError} from '../errors.js'
import {waitForProxies} from '../migrate/barrier.js'
import {createJob, findJobs, openCheckpoints, updateJob, type Job, type JobState} from '../migrate/checkpoints.js'
import {compareSnapshots} from '../backends/snapshot.js'
import {isActive, validateCutovers, type Cutover, type CutoverStep} from '../topology/cutover.js'
import {checkName, compileRules, unitStoreUrl, type CompiledRules, type DbUnit, type Rule, type RulesConfig, type Shard} from '../topology/rules.js'
import {showKey} from '../topology/key-text.js'
import {loadRulesConfig} from './rules-config.js'

/**
 * `rstore cutover start|status|switch|finish|abort` (docs/architecture.md, "SQL routing, cutover, backfill, verify"): moves one rule's key space
 * to one db group online. Each step is one coordinator transaction that bumps the epoch, followed by
 * the proxy barrier (every online proxy has applied it) and a record in the checkpoint database.
 */

export interface CutoverOptions {
  /** How long to wait for every proxy to apply a step (ms). */
  barrierTimeoutMs?: number
  log?: (line: string) => void
  /** Opens a unit's store (tests); default src/backends openStore. */
  openStore?: (unit: DbUnit) => Promise<KeyStore>
  /**
   * Stops the step (Ctrl-C, a server's cancel): before its transaction nothing changes; during the
   * verify of a switch nothing changes either; during the proxies' barrier the step stays recorded
   * and the proxies apply it as they catch up. Either way the error is ESTOPPED.
   */
  signal?: AbortSignal
}

export interface CutoverResult {
  cutover: Cutover
  epoch: number
  /** ms waited for the proxies. */
  barrierMs: number
  verify?: CutoverVerifyResult
}

export interface CutoverVerifyResult {
  compared: number
  different: number
  first: {key: string; reason: string; detail: string}[]
}

const ATTEMPTS = 8
/** Re-reads of a suspected difference before it counts (see verifyCutover). */
const RECHECK_ROUNDS = 12

/** Throws ESTOPPED when the step's signal is aborted; `changed` says whether the step was written. */
function stopIfAsked(opts: CutoverOptions, name: string, changed: string | undefined): void {
  if (!opts.signal?.aborted) return
  throw new RstoreError(
    'ESTOPPED',
    changed ? `cutover ${name}: stopped on request while the proxies applied ${changed}` : `cutover ${name}: stopped on request; nothing changed`,
    changed ? `the step is recorded; the proxies apply it as they catch up: see 'rstore cutover status ${name}'` : undefined,
  )
}

function cutoverKey(store: TopologyStore, name: string): string {
  return store.keys.cutover(name)
}

/** The db groups a rule's shard tree can route to. */
export function groupsOfRule(rules: CompiledRules, rule: Rule): string[] {
  const out = new Set<string>()
  const seen = new Set<string>()
  const walk = (shard: string) => {
    if (seen.has(shard)) return
    seen.add(shard)
    for (const it of rules.shards.get(shard)?.shard.shardMap ?? []) {
      if (it.refType === 'dbgroup') out.add(it.refName)
      else walk(it.refName)
    }
  }
  walk(rule.shardName)
  return [...out]
}

/** Applies one step in one transaction with the epoch bump (retried on concurrent changes), then the barrier. */
async function step(
  store: TopologyStore,
  cfg: RstoreConfig,
  name: string,
  opts: CutoverOptions,
  make: (ctx: {config: RulesConfig; rules: CompiledRules; current?: Cutover; cutovers: Cutover[]}) => {cutover: Cutover; config?: RulesConfig; ops?: Op[]},
  before?: (ctx: {rules: CompiledRules; current?: Cutover}) => Promise<void>,
): Promise<{cutover: Cutover; epoch: number; barrierMs: number}> {
  checkName(name, 'cutover')
  let epoch = 0
  let cutover: Cutover | undefined
  for (let attempt = 1; ; attempt++) {
    stopIfAsked(opts, name, undefined)
    const {config, epoch: loadedEpoch, epochRevision, cutovers} = await loadRulesConfig(store)
    const rules = compileRules(config)
    const current = cutovers.find((c) => c.name === name)
    if (before && attempt === 1) await before({rules, current})
    stopIfAsked(opts, name, undefined)
    const res = make({config, rules, current, cutovers})
    // update() writes exactly loadedEpoch + 1 (it compares the epoch key's revision read here)
    const h = res.cutover.history[res.cutover.history.length - 1]
    if (h && h.epoch === 0) h.epoch = loadedEpoch + 1
    const next = res.config ? compileRules(res.config) : rules
    const others = cutovers.filter((c) => c.name !== name)
    validateCutovers(next, [...others, res.cutover])
    const ops: Op[] = [...(res.ops ?? []), {type: 'put', key: cutoverKey(store, name), value: JSON.stringify(res.cutover)}]
    try {
      epoch = await store.update(() => ({}), [{key: store.keys.epoch, modRevision: epochRevision}], ops)
      cutover = res.cutover
      break
    } catch (err) {
      if (!(err instanceof PreconditionFailedError)) throw err
      if (attempt >= ATTEMPTS) throw new ConflictError(`the configuration kept changing during cutover ${name}; try again`)
      await sleep(10 * attempt)
    }
  }
  let barrierMs: number
  try {
    barrierMs = await waitForProxies(store, epoch, {
      timeoutMs: opts.barrierTimeoutMs ?? 30_000,
      log: opts.log,
      check: () => stopIfAsked(opts, name, `step ${cutover.step} (epoch ${epoch})`),
      resumeHint: `the step is recorded (epoch ${epoch}); the proxies apply it when they catch up — run 'rstore cutover status ${name}'`,
    })
  } finally {
    // Written to the coordinator: the checkpoint record follows, whether the proxies caught up or not.
    record(cfg, cutover)
  }
  return {cutover, epoch, barrierMs}
}

function withStep(c: Omit<Cutover, 'step' | 'history'> & {history?: Cutover['history']}, s: CutoverStep): Cutover {
  return {name: c.name, rule: c.rule, to: c.to, fromShard: c.fromShard, step: s, history: [...(c.history ?? []), {step: s, at: Date.now(), epoch: 0}]}
}

/** Records the step in the checkpoint database (job kind 'cutover', one per cutover name and start). */
function record(cfg: RstoreConfig, c: Cutover): void {
  const db = openCheckpoints(cfg.checkpointDir, cfg.product)
  try {
    const state: JobState = c.step === 'finished' ? 'done' : c.step === 'aborted' ? 'cancelled' : 'running'
    const job = findJobs<Cutover>(db, 'cutover', {args: {name: c.name}, states: ['running', 'paused', 'failed']})[0]
    if (job) updateJob(db, job.id, {state, progress: c})
    else createJob(db, 'cutover', {name: c.name}, c, state)
  } finally {
    db.close()
  }
}

export async function startCutover(store: TopologyStore, cfg: RstoreConfig, name: string, rule: string, to: string, opts: CutoverOptions = {}): Promise<CutoverResult> {
  if (!rule || !to) throw new ValidationError('cutover start needs --rule and --to')
  return step(store, cfg, name, opts, ({rules, current, cutovers}) => {
    if (current && isActive(current)) {
      if (current.rule === rule && current.to === to && current.step === 'double-write') return {cutover: current}
      throw new ConflictError(`cutover ${name} is already at step ${current.step} (rule ${current.rule} to ${current.to}); finish or abort it first`)
    }
    const r = rules.rules.find((x) => x.rule.name === rule)?.rule
    if (!r) throw new NotFoundError(`rule ${rule} does not exist`)
    if (!rules.groups.has(to)) throw new NotFoundError(`dbgroup ${to} does not exist`)
    const from = groupsOfRule(rules, r)
    if (from.includes(to)) throw new ConflictError(`rule ${rule} already routes to dbgroup ${to} (its groups: ${from.join(', ')}); cut over to a group it does not use`)
    const other = cutovers.find((c) => c.rule === rule && isActive(c))
    if (other) throw new ConflictError(`rule ${rule} is already being cut over by ${other.name}`)
    return {cutover: withStep({name, rule, to, fromShard: r.shardName}, 'double-write')}
  })
}

export async function switchCutover(store: TopologyStore, cfg: RstoreConfig, name: string, opts: CutoverOptions & {force?: boolean} = {}): Promise<CutoverResult> {
  let verify: CutoverVerifyResult | undefined
  const {cutovers} = await loadRulesConfig(store)
  const now = cutovers.find((c) => c.name === name)
  if (now?.step === 'double-write' && !now.hold) {
    // Verify, then hold the writes everywhere before the new side starts answering.
    await holdWrites(store, cfg, name, opts, 'double-write', async ({rules, current}) => {
      const c = requireStep(name, current, ['double-write'])
      if (opts.force) return
      verify = await verifyCutover(rules, c, opts)
      if (verify.different > 0) {
        const f = verify.first[0]!
        throw new ConflictError(
          `cutover ${name}: verify found ${verify.different} difference(s) between the old place and ${c.to} (first: ${f.key}: ${f.detail}); ` +
            `run 'rstore backfill' (or verify --repair) and switch again, or switch --force`,
        )
      }
    })
  }
  const res = await step(store, cfg, name, opts, ({current}) => {
    const c = requireStep(name, current, ['double-write', 'switched'])
    if (c.step === 'switched') return {cutover: released(c)}
    return {cutover: withStep(released(c), 'switched')}
  })
  return {...res, verify}
}

/**
 * Sets the cutover's hold (its step unchanged) and waits until every proxy has applied it: from then
 * on no proxy writes the key space, and every copy of the step has landed, so the side that answers
 * can change without two proxies writing a key on different sides first.
 */
async function holdWrites(
  store: TopologyStore,
  cfg: RstoreConfig,
  name: string,
  opts: CutoverOptions,
  at: CutoverStep,
  before?: (ctx: {rules: CompiledRules; current?: Cutover}) => Promise<void>,
): Promise<void> {
  await step(store, cfg, name, opts, ({current}) => ({cutover: {...requireStep(name, current, [at]), hold: true}}), before)
}

/** The cutover without its hold. */
function released(c: Cutover): Cutover {
  const {hold: _hold, ...rest} = c
  return rest
}

export async function finishCutover(store: TopologyStore, cfg: RstoreConfig, name: string, opts: CutoverOptions = {}): Promise<CutoverResult> {
  return step(store, cfg, name, opts, ({config, current}) => {
    const c = requireStep(name, current, ['switched'])
    const shardName = `cutover.${name}`
    const shard: Shard = {name: shardName, shardType: 'hash', shardMap: [{refType: 'dbgroup', refName: c.to, shardStr: ''}], mark: `created by cutover ${name}`}
    const rule = config.rules.find((r) => r.name === c.rule)
    if (!rule) throw new NotFoundError(`rule ${c.rule} does not exist`)
    const existing = config.shards.find((s) => s.name === shardName)
    if (existing && JSON.stringify(existing.shardMap) !== JSON.stringify(shard.shardMap)) throw new ConflictError(`shard ${shardName} exists with other items; remove it first`)
    const nextRule: Rule = {...rule, shardName}
    const next: RulesConfig = {
      ...config,
      shards: existing ? config.shards : [...config.shards, shard],
      rules: config.rules.map((r) => (r.name === c.rule ? nextRule : r)),
    }
    return {
      cutover: withStep(c, 'finished'),
      config: next,
      ops: [
        ...(existing ? [] : [{type: 'put' as const, key: store.keys.config('shard', shardName), value: JSON.stringify(shard)}]),
        {type: 'put', key: store.keys.config('rule', c.rule), value: JSON.stringify(nextRule)},
      ],
    }
  })
}

export async function abortCutover(store: TopologyStore, cfg: RstoreConfig, name: string, opts: CutoverOptions = {}): Promise<CutoverResult> {
  // From 'switched', back in two steps, each applied by every proxy before the next:
  // - hold the writes, then 'double-write' (the old place answers and is written first): with the
  //   writes held, no two proxies write a key on different sides first, and a proxy still held reads
  //   the new side, which every write through 'double-write' reaches before it is answered;
  // - then 'aborted'. Going from the hold straight to 'aborted' would let a proxy still held read the
  //   new side after another proxy had written the old place only (a stale read).
  const {cutovers} = await loadRulesConfig(store)
  const now = cutovers.find((c) => c.name === name)
  if (now?.step === 'switched') {
    if (!now.hold) await holdWrites(store, cfg, name, opts, 'switched')
    await step(store, cfg, name, opts, ({current}) => {
      const c = requireStep(name, current, ['double-write', 'switched'])
      return {cutover: c.step === 'switched' ? withStep(released(c), 'double-write') : released(c)}
    })
  }
  return step(store, cfg, name, opts, ({current}) => ({cutover: withStep(released(requireStep(name, current, ['double-write', 'switched'])), 'aborted')}))
}

export async function cutoverStatus(store: TopologyStore, cfg: RstoreConfig, name: string): Promise<{cutover: Cutover; epoch: number; proxiesBehind: string[]; job?: Job<Cutover>}> {
  checkName(name, 'cutover')
  const {cutovers, epoch} = await loadRulesConfig(store)
  const c = cutovers.find((x) => x.name === name)
  if (!c) throw new NotFoundError(`cutover ${name} does not exist`)
  const last = c.history[c.history.length - 1]?.epoch ?? epoch
  const proxiesBehind = (await store.proxies()).filter((p) => !(p.appliedEpoch >= last)).map((p) => p.id)
  let job: Job<Cutover> | undefined
  try {
    const db = openCheckpoints(cfg.checkpointDir, cfg.product)
    try {
      job = findJobs<Cutover>(db, 'cutover', {args: {name}}).sort((a, b) => b.updatedAt - a.updatedAt)[0]
    } finally {
      db.close()
    }
  } catch {
    // no checkpoint database: the coordinator record is enough
  }
  return {cutover: c, epoch, proxiesBehind, job}
}

function requireStep(name: string, c: Cutover | undefined, allowed: CutoverStep[]): Cutover {
  if (!c) throw new NotFoundError(`cutover ${name} does not exist (start it with 'rstore cutover start ${name} --rule R --to DBGROUP')`)
  if (!allowed.includes(c.step)) throw new ConflictError(`cutover ${name} is at step ${c.step}; this needs ${allowed.join(' or ')}`)
  return c
}

/**
 * Compares the rule's keys on the old place (each old group's first master) with the new group's first
 * master, both ways (a key on one side only is a difference). TTLs within 2 s.
 */
export async function verifyCutover(rules: CompiledRules, c: Cutover, opts: CutoverOptions = {}): Promise<CutoverVerifyResult> {
  const opener = opts.openStore ?? ((u: DbUnit) => openStore(unitStoreUrl(u)))
  const rule = rules.rules.find((r) => r.rule.name === c.rule)?.rule
  if (!rule) throw new NotFoundError(`rule ${c.rule} does not exist`)
  const master = (g: string) => {
    const u = rules.writeUnits(g)[0]
    if (!u) throw new ConflictError(`dbgroup ${g} has no enabled master to verify against`)
    return rules.units.get(u)!
  }
  const opened: KeyStore[] = []
  const open = async (u: DbUnit) => {
    const s = await opener(u)
    opened.push(s)
    return s
  }
  const res: CutoverVerifyResult = {compared: 0, different: 0, first: []}
  /** Candidate differences: key -> the old group it belongs to. Re-checked in later rounds. */
  let suspects = new Map<string, {key: Buffer; group: string}>()
  try {
    const target = await open(master(c.to))
    const oldStores = new Map<string, KeyStore>()
    for (const g of groupsOfRule(rules, rule)) oldStores.set(g, await open(master(g)))
    const ownGroup = (key: Buffer): string | undefined => {
      try {
        const p = rules.route(key)
        return p && p.rule === c.rule ? p.dbgroup : undefined
      } catch {
        return undefined
      }
    }
    /**
     * ordered (the re-checks): the old side first, then the new one. The new side lags by at most the
     * copy in flight, so a key being written still matches when its copy lands between the two reads.
     */
    const check = async (keys: Buffer[], g: string, ordered = false): Promise<{key: Buffer; reason: string; detail: string}[]> => {
      const src = oldStores.get(g)!
      const [a, b] = ordered ? [await src.readKeys(keys), await target.readKeys(keys)] : await Promise.all([src.readKeys(keys), target.readKeys(keys)])
      const out: {key: Buffer; reason: string; detail: string}[] = []
      keys.forEach((k, i) => {
        if (!a[i]) {
          if (b[i]) out.push({key: k, reason: 'extra', detail: `on ${c.to} but not on ${g}`})
          return
        }
        const d = compareSnapshots(a[i]!, b[i]!, 2000)
        if (d) out.push({key: k, ...d})
      })
      return out
    }
    const scanAll = async (s: KeyStore, each: (keys: Buffer[]) => Promise<void>) => {
      let cursor = '0'
      do {
        stopIfAsked(opts, c.name, undefined)
        const page = await s.scan(cursor, undefined, 1000)
        cursor = page.cursor
        if (page.keys.length) await each(page.keys)
      } while (cursor !== '0')
    }
    // round 1: old -> new, then keys only on the new side
    for (const [g, src] of oldStores) {
      await scanAll(src, async (page) => {
        const keys = page.filter((k) => ownGroup(k) === g)
        if (!keys.length) return
        res.compared += keys.length
        for (const d of await check(keys, g)) suspects.set(d.key.toString('latin1'), {key: d.key, group: g})
      })
    }
    await scanAll(target, async (page) => {
      for (const k of page) {
        const g = ownGroup(k)
        if (!g || !oldStores.has(g) || suspects.has(k.toString('latin1'))) continue
        if (!(await oldStores.get(g)!.readKey(k))) {
          res.compared++
          suspects.set(k.toString('latin1'), {key: k, group: g})
        }
      }
    })
    // Later rounds re-read only the suspects: a key merely in flight (written, not yet copied) matches
    // in some round. A key written without pause may be caught mid-copy several times running, so the
    // rounds are many, short and jittered (not in step with a writer's period); a real difference
    // costs about a second.
    let last: {key: Buffer; reason: string; detail: string}[] = []
    for (let round = 0; round < RECHECK_ROUNDS && suspects.size; round++) {
      if (round) await sleep(20 + Math.random() * 80)
      stopIfAsked(opts, c.name, undefined)
      last = []
      const next = new Map<string, {key: Buffer; group: string}>()
      for (const {key, group} of suspects.values()) {
        for (const d of await check([key], group, true)) {
          last.push(d)
          next.set(key.toString('latin1'), {key, group})
        }
      }
      suspects = next
    }
    res.different = last.length
    res.first = last.slice(0, 10).map((d) => ({key: showKey(d.key), reason: d.reason, detail: d.detail}))
  } finally {
    await Promise.all(opened.map((s) => s.close().catch(() => {})))
  }
  return res
}
