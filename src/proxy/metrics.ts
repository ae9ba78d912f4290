/** Counters and a latency histogram, rendered in Prometheus text format on /metrics. */

const BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000, 5000]

export class ProxyMetrics {
  readonly commands = new Map<string, number>()
  errors = 0
  totalCommands = 0
  connectionsTotal = 0
  rejectedConnections = 0
  /** AUTH / HELLO AUTH attempts refused (WRONGPASS). */
  authFailures = 0
  /** Clients closed for passing a query/output buffer limit or the clients' memory ceiling. */
  clientsClosedForLimits = 0
  private readonly bucketCounts = new Array<number>(BUCKETS_MS.length + 1).fill(0)
  private latencySumMs = 0
  /** Migration progress reported by the mover through the coordinator (optional). */
  migration: Record<string, number> = {}

  observe(command: string, ms: number, isError: boolean): void {
    this.totalCommands++
    this.commands.set(command, (this.commands.get(command) ?? 0) + 1)
    if (isError) this.errors++
    this.latencySumMs += ms
    let i = 0
    while (i < BUCKETS_MS.length && ms > BUCKETS_MS[i]!) i++
    this.bucketCounts[i]!++
  }

  render(extra: {connections: number; epoch: number; online: boolean; backends: {addr: string; state: string; inFlight: number; timeouts?: number}[]}): string {
    const lines: string[] = []
    const metric = (name: string, type: string, help: string) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    metric('rstore_commands_total', 'counter', 'Commands received, by name.')
    for (const [name, n] of [...this.commands].sort()) lines.push(`rstore_commands_total{command="${name}"} ${n}`)
    metric('rstore_command_errors_total', 'counter', 'Commands answered with an error.')
    lines.push(`rstore_command_errors_total ${this.errors}`)
    metric('rstore_command_latency_ms', 'histogram', 'Time from request to reply, in milliseconds.')
    let cumulative = 0
    BUCKETS_MS.forEach((b, i) => {
      cumulative += this.bucketCounts[i]!
      lines.push(`rstore_command_latency_ms_bucket{le="${b}"} ${cumulative}`)
    })
    cumulative += this.bucketCounts[BUCKETS_MS.length]!
    lines.push(`rstore_command_latency_ms_bucket{le="+Inf"} ${cumulative}`)
    lines.push(`rstore_command_latency_ms_sum ${this.latencySumMs.toFixed(3)}`, `rstore_command_latency_ms_count ${cumulative}`)
    metric('rstore_connections', 'gauge', 'Client connections open now.')
    lines.push(`rstore_connections ${extra.connections}`)
    metric('rstore_connections_total', 'counter', 'Client connections accepted since start.')
    lines.push(`rstore_connections_total ${this.connectionsTotal}`)
    metric('rstore_rejected_connections_total', 'counter', 'Connections refused (max clients).')
    lines.push(`rstore_rejected_connections_total ${this.rejectedConnections}`)
    metric('rstore_topology_epoch', 'gauge', 'Topology epoch applied by this proxy.')
    lines.push(`rstore_topology_epoch ${extra.epoch}`)
    metric('rstore_proxy_online', 'gauge', '1 when the proxy serves routed commands.')
    lines.push(`rstore_proxy_online ${extra.online ? 1 : 0}`)
    metric('rstore_backend_up', 'gauge', '1 when every connection to the backend server is up.')
    for (const b of extra.backends) lines.push(`rstore_backend_up{addr="${b.addr}"} ${b.state === 'up' ? 1 : 0}`)
    metric('rstore_backend_in_flight', 'gauge', 'Requests sent to the backend server and not yet answered.')
    for (const b of extra.backends) lines.push(`rstore_backend_in_flight{addr="${b.addr}"} ${b.inFlight}`)
    metric('rstore_backend_timeouts_total', 'counter', 'Requests failed because the backend server did not answer within --backend-timeout.')
    for (const b of extra.backends) lines.push(`rstore_backend_timeouts_total{addr="${b.addr}"} ${b.timeouts ?? 0}`)
    metric('rstore_auth_failures_total', 'counter', 'AUTH attempts refused with WRONGPASS.')
    lines.push(`rstore_auth_failures_total ${this.authFailures}`)
    metric('rstore_clients_closed_for_limits_total', 'counter', 'Clients closed past client-query-buffer-limit, client-output-buffer-limit or maxmemory-clients.')
    lines.push(`rstore_clients_closed_for_limits_total ${this.clientsClosedForLimits}`)
    metric('rstore_migration', 'gauge', 'Progress of the running migration job (slots and keys).')
    for (const [k, v] of Object.entries(this.migration)) lines.push(`rstore_migration{field="${k}"} ${v}`)
    return lines.join('\n') + '\n'
  }
}
