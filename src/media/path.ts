/**
 * Canonical stream paths. Every protocol turns what the client sent into a `StreamPath`
 * through `parseStreamPath`, so "live/cam%201?token=x" over HTTP and app "live" + name
 * "cam 1?token=x" over RTMP name the same stream, and the query never becomes part of it.
 */

declare const streamPathBrand: unique symbol;
/** `app/name` (2 to 4 segments), percent-decoded once, no query string. */
export type StreamPath = string & { readonly [streamPathBrand]: true };

export class InvalidStreamPathError extends Error {
  override name = "InvalidStreamPathError";
}

const SEGMENT = /^[A-Za-z0-9_.~\-@+=:]+$/;
const MAX_PATH_LENGTH = 256;

export interface ParsedStreamPath {
  path: StreamPath;
  /** The request parameters (e.g. `token`); never logged, never part of the path. */
  params: URLSearchParams;
}

/**
 * Parses `app/name[?query]` as received on the wire (still percent-encoded).
 * Throws `InvalidStreamPathError` for anything that is not a valid stream name.
 */
export function parseStreamPath(raw: string): ParsedStreamPath {
  const q = raw.indexOf("?");
  const pathPart = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const trimmed = pathPart.replace(/^\/+|\/+$/g, "");
  if (trimmed.length === 0 || trimmed.length > MAX_PATH_LENGTH * 3) {
    throw new InvalidStreamPathError("stream path is empty or too long");
  }
  const segments = trimmed.split("/").map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new InvalidStreamPathError("stream path has a malformed percent-escape");
    }
  });
  if (segments.length < 2 || segments.length > 4) {
    throw new InvalidStreamPathError("stream path must be app/name");
  }
  for (const s of segments) {
    if (!SEGMENT.test(s) || s === "." || s === "..") {
      throw new InvalidStreamPathError("stream path has an invalid segment");
    }
  }
  const path = segments.join("/");
  if (path.length > MAX_PATH_LENGTH) throw new InvalidStreamPathError("stream path is too long");
  return { path: path as StreamPath, params };
}

/** Builds the path from RTMP's separate app (from connect) and stream name (from publish/play). */
export function streamPathFromRtmp(app: string, streamName: string): ParsedStreamPath {
  const q = app.indexOf("?");
  const cleanApp = q < 0 ? app : app.slice(0, q);
  return parseStreamPath(`${cleanApp}/${streamName}`);
}
