/** Client URLs for a node, per protocol: what allocation and redirect hand to players. */

import type { NodeSummary } from "../protocol/types.ts";

/** Query parameter a redirected request carries, so the next node never redirects it again. */
export const REDIRECT_MARKER = "cluster_redirected";

export type ClientProtocol = "http-flv" | "ws-flv" | "rtmp";

/** Maps the protocol names clients use to the ones we serve (unknown → http-flv). */
export function normaliseProtocol(p: string): ClientProtocol {
  const s = p.toLowerCase();
  if (s === "rtmp") return "rtmp";
  if (s === "ws-flv" || s === "ws" || s === "wsflv" || s === "websocket") return "ws-flv";
  return "http-flv";
}

function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

export function clientUrl(
  node: Pick<NodeSummary, "address" | "rtmp_addr">,
  path: string,
  protocol: ClientProtocol,
  query?: URLSearchParams,
): string {
  const q = query && [...query].length > 0 ? `?${query}` : "";
  switch (protocol) {
    case "rtmp":
      return `rtmp://${node.rtmp_addr || node.address}/${encodePath(path)}${q}`;
    case "ws-flv":
      return `ws://${node.address}/${encodePath(path)}.flv${q}`;
    case "http-flv":
      return `http://${node.address}/${encodePath(path)}.flv${q}`;
  }
}
