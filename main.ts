/** Entry point: load config, start the node, stop cleanly on SIGINT/SIGTERM. */

import { ConfigError, loadConfig, parseCliArgs } from "./src/config/mod.ts";
import { configureLogging, errorMessage, rootLogger } from "./src/log/mod.ts";
import { ListenError, startNode } from "./src/node.ts";

async function main(): Promise<number> {
  let config;
  try {
    config = await loadConfig(parseCliArgs(Deno.args).configPath);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  configureLogging(config.global.log.level, config.global.log.format);
  let node;
  try {
    node = await startNode(config);
  } catch (err) {
    if (err instanceof ListenError) {
      console.error(err.message);
      return 2;
    }
    rootLogger.error("node failed to start", { error: errorMessage(err) });
    return 1;
  }
  const stopped = Promise.withResolvers<void>();
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => stopped.resolve());
  await stopped.promise;
  rootLogger.info("shutting down");
  await node[Symbol.asyncDispose]();
  return 0;
}

Deno.exit(await main());
