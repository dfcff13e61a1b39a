export { Cluster, type ClusterEvents, type ClusterIdentity, type RelayService, VERSION } from "./cluster.ts";
export type { NodeLoad, NodeSummary, SessionRecord } from "./types.ts";
export { NodeState } from "./types.ts";
