import type {RstoreConfig} from '../config.js'
import type {Coordinator} from './types.js'

export type {Compare, Coordinator, KeyValue, Lease, Op, TxnResult, WatchEvent, Watcher} from './types.js'
export {createOnly} from './types.js'
export {CompactedError, CoordinatorClosedError, LeaseNotFoundError} from './keys.js'

/** Opens the coordinator named by the config (embedded SQLite file by default, or etcd). */
export async function openCoordinator(cfg: RstoreConfig): Promise<Coordinator> {
  if (cfg.coordinator === 'etcd') {
    const {EtcdCoordinator} = await import('./etcd.js')
    return EtcdCoordinator.connect(
      cfg.coordinatorAddr
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
  }
  const {EmbeddedCoordinator} = await import('./embedded.js')
  return EmbeddedCoordinator.open(cfg.coordinatorAddr)
}
