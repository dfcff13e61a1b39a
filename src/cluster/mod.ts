export { Cluster, type ClusterEvents, type ClusterIdentity, VERSION } from "./cluster.ts";
export type { NodeLoad, NodeSummary, SessionRecord } from "./protocol/types.ts";
export { NodeState } from "./protocol/types.ts";
