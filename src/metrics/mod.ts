/**
 * Metrics: a small Prometheus registry (`MetricsRegistry`: declare, `inc`, `set`, scrape-time
 * collectors), the node's metric set (`createNodeMetrics`) and the `/metrics` route.
 * Every metric is documented in docs/metrics.md.
 */

export {
  type CollectedFamily,
  escapeLabelValue,
  type FamilyDef,
  formatValue,
  type Labels,
  MetricsRegistry,
  type MetricType,
  renderFamily,
  type Sample,
} from "./_registry.ts";
export { type ClusterSource, createNodeMetrics, MetricNames, type NodeMetricsOptions } from "./_node.ts";
export { buildMetricsApp, EXPOSITION_CONTENT_TYPE } from "./_app.ts";
