export { buildHttpApp, describeStream, type HttpAppOptions, type PlayGate, playPathFromUrl } from "./_app.ts";
export { PlayerDroppedError } from "./_play.ts";
