/**
 * A TopologyStore whose every update also carries the leader's fence (docs/agent.md "Failover"): the
 * promotion the leader runs through `promoteServer` switches the record only while the agent still
 * leads, in the same coordinator transaction, so a deposed leader's late promotion changes nothing.
 */
import {PreconditionFailedError, TopologyStore, type TopologyChange, type TopologyMeta} from '../coord/topology-store.js'
import type {Compare, Coordinator, Op} from '../coord/types.js'
import type {Topology} from '../topology/model.js'
import {DeposedError, type LeaderElection} from './leader.js'

export class FencedTopologyStore extends TopologyStore {
  constructor(
    coord: Coordinator,
    product: string,
    private readonly election: LeaderElection,
    private readonly token: number,
  ) {
    super(coord, product)
  }

  override async update(change: (topo: Topology, meta: TopologyMeta) => TopologyChange, extraCompares: Compare[] = [], extraOps: Op[] = []): Promise<number> {
    try {
      return await super.update(change, [this.election.fence(this.token), ...extraCompares], extraOps)
    } catch (err) {
      // The epoch did not move, so the compare that failed is the fence: leadership is gone.
      if (err instanceof PreconditionFailedError) {
        const kv = await this.coord.get(this.keys.agentLeader)
        if (!kv || kv.modRevision !== this.token) throw new DeposedError(this.election.id, this.token)
      }
      throw err
    }
  }
}
