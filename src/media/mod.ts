export * from "./frame.ts";
export * from "./path.ts";
export * from "./subscriber.ts";
export * from "./hub.ts";
export { Emitter } from "./events.ts";
