export { buildHttpApp, describeStream, type HttpAppOptions, type PlayGate, playPathFromUrl } from "./_app.ts";
