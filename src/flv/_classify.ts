import { inspectAudio } from "./_audio.ts";
import { inspectVideo } from "./_video.ts";

/** The two flags a `MediaFrame` carries, for any tag type (script tags are neither). */
export function classifyTag(type: number, body: Uint8Array): { keyframe: boolean; sequenceHeader: boolean } {
  if (type === 9) {
    const v = inspectVideo(body);
    return { keyframe: v.keyframe, sequenceHeader: v.sequenceHeader };
  }
  if (type === 8) return { keyframe: false, sequenceHeader: inspectAudio(body).sequenceHeader };
  return { keyframe: false, sequenceHeader: false };
}
