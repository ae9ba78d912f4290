import {setTimeout as sleep} from 'node:timers/promises'
import {NotFoundError, RstoreError} from '../errors.js'
import {TopologyStore} from '../coord/topology-store.js'
import type {ProxyInfo} from '../topology/model.js'

/** The proxies registered now (each bound to its lease), sorted by id. */
export async function listProxies(store: TopologyStore): Promise<ProxyInfo[]> {
  return (await store.proxies()).sort((a, b) => a.id.localeCompare(b.id))
}

/**
 * Asks proxies to go online or offline (Reborn's `proxy online <id>`), then waits until they report
 * that state. An id matches the proxy itself and the workers of a `--cpu N` proxy (`<id>-<n>`).
 */
export async function setProxyState(store: TopologyStore, id: string, state: 'online' | 'offline', timeoutMs = 10_000): Promise<ProxyInfo[]> {
  const matches = (await store.proxies()).filter((p) => p.id === id || p.id.startsWith(`${id}-`))
  if (matches.length === 0) {
    throw new NotFoundError(`no proxy '${id}' is registered`, `start it with 'rstore proxy start --id ${id}' (see 'rstore proxy list')`)
  }
  const ops = [...new Set(matches.map((p) => p.id).concat(id))].map((pid) => ({
    type: 'put' as const,
    key: store.keys.proxyControl(pid),
    value: JSON.stringify({state}),
  }))
  await store.coord.txn([], ops)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const now = (await store.proxies()).filter((p) => matches.some((m) => m.id === p.id))
    if (now.length === matches.length && now.every((p) => p.state === state)) return now
    if (Date.now() > deadline) {
      const late = now.filter((p) => p.state !== state).map((p) => p.id)
      throw new RstoreError('ETIMEOUT', `proxy ${late.join(', ') || id} did not report '${state}' within ${timeoutMs / 1000} s; is it running and reaching the coordinator?`)
    }
    await sleep(100)
  }
}
