/** The machine and tool versions, for the report. */

import { tool } from "./media.ts";
import { NMS_DIR } from "./servers.ts";

async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    return (new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr)).trim();
  } catch {
    return "";
  }
}

export async function machineInfo() {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const memKiB = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? NaN);
  let nms = "";
  try {
    nms =
      JSON.parse(await Deno.readTextFile(`${NMS_DIR}/node_modules/node-media-server/package.json`)).version;
  } catch {
    // not installed
  }
  return {
    nproc: navigator.hardwareConcurrency,
    cpuModel: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memGiB: Math.round(memKiB / 1024 / 1024 * 10) / 10,
    kernel: Deno.osRelease(),
    os: (await Deno.readTextFile("/etc/os-release").catch(() => "")).match(/PRETTY_NAME="([^"]+)"/)?.[1] ??
      "",
    loadavg: Deno.loadavg().map((x) => x.toFixed(2)).join(" "),
    loadavgEnd: "",
    versions: {
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      nginx: (await run("nginx", ["-v"])).replace(/^nginx version:\s*/, ""),
      nginxRtmp: await run("dpkg-query", ["-W", "-f=${Version}", "libnginx-mod-rtmp"]),
      node: await run("node", ["--version"]),
      nms,
      ffmpeg: (await run(tool("ffmpeg"), ["-version"])).split("\n")[0] ?? "",
    },
  };
}
