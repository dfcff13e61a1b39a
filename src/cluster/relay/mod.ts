export { RelayManager, type RelayManagerOptions } from "./manager.ts";
export { PullRelay, type RelayState } from "./pull.ts";
export { RelayServer } from "./serve.ts";
export * from "./wire.ts";
