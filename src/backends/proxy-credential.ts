/**
 * The proxy's Redis ACL user (docs/security.md): named by the operator (RSTORE_PROXY_BACKEND_USER and
 * its password), or created by `server add` as `rstore-proxy` with a random password kept in the
 * coordinator next to the topology, where every proxy of the product reads it at start.
 */
import {randomBytes} from 'node:crypto'
import {createOnly, type Coordinator} from '../coord/types.js'
import {KeyLayout} from '../coord/layout.js'
import {redisOps} from './redis-ops.js'
import {parseAddr} from '../topology/model.js'
import {adminSecurity, operatorProxyUser, PROXY_ACL_USER, type BackendSecurity} from '../resp/credentials.js'

export interface ProxyCredential {
  user: string
  password?: string
  /** Named by the operator: rstore does not create or change the user. */
  operator: boolean
}

export function proxyCredentialKey(product: string): string {
  return new KeyLayout(product).proxyCredential
}

async function stored(coord: Coordinator, product: string): Promise<ProxyCredential | undefined> {
  const kv = await coord.get(proxyCredentialKey(product))
  if (!kv) return undefined
  const v = JSON.parse(kv.value) as {user: string; password: string}
  return {user: v.user, password: v.password, operator: false}
}

/** The credential `server add` sets up: the operator's, else the stored one, else a new one (stored once). */
export async function ensureProxyCredential(coord: Coordinator, product: string): Promise<ProxyCredential> {
  const op = operatorProxyUser()
  if (op) return {...op, operator: true}
  const have = await stored(coord, product)
  if (have) return have
  const fresh = {user: PROXY_ACL_USER, password: randomBytes(24).toString('hex')}
  const res = await coord.txn([createOnly(proxyCredentialKey(product))], [{type: 'put', key: proxyCredentialKey(product), value: JSON.stringify(fresh)}])
  if (!res.succeeded) return (await stored(coord, product))! // another `server add` stored one first
  return {...fresh, operator: false}
}

/**
 * What a proxy logs in with: the operator's user, else the stored one; without either (servers added
 * before rstore made the user) the admin credential, and the caller warns.
 */
export async function proxySecurity(
  coord: Coordinator,
  product: string,
): Promise<{security: BackendSecurity; managed?: ProxyCredential; warning?: string}> {
  const admin = adminSecurity()
  const op = operatorProxyUser()
  if (op) return {security: {...op, tls: admin.tls}}
  const cred = await stored(coord, product)
  if (cred) return {security: {user: cred.user, password: cred.password, tls: admin.tls}, managed: cred}
  return {
    security: admin,
    warning: `no proxy ACL user for product '${product}' (run 'rstore server add' again on each server, or set RSTORE_PROXY_BACKEND_USER): scripts sent through this proxy can run FLUSHALL and other refused commands`,
  }
}

/**
 * A hook for BackendConn's refused AUTH: a server restarted without an ACL file has lost rstore's
 * user, so the proxy creates it again there with the admin credential (at most every 2 s per server).
 * Only the short-lived repair connection has admin rights; client commands keep the restricted user.
 */
export function proxyUserRepair(cred: ProxyCredential, hosts: () => string[], log: (line: string) => void): (addr: string, error: string) => void {
  const last = new Map<string, number>()
  const ops = redisOps()
  return (addr, error) => {
    if (!/WRONGPASS/.test(error) || Date.now() - (last.get(addr) ?? 0) < 2000) return
    last.set(addr, Date.now())
    const all = [...new Set([...hosts(), addr].map((a) => parseAddr(a).host))]
    ops.setupProxyUser!(addr, cred.user, cred.password!, all).then(
      () => log(`re-created ACL user ${cred.user} on ${addr} (it had lost it: ${error})`),
      (err: Error) => log(`could not re-create ACL user ${cred.user} on ${addr}: ${err.message}`),
    )
  }
}
